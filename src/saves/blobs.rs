//! Blobs: content-addressed by the SHA-256 of their plaintext, encoded by awf_core's codec
//! (zstd, then AES-256-GCM under the user's data key when a master key is configured).

use crate::saves::keys;
use crate::spi::col;
use awf_core::codec::{self, keys::DataKey, EncodeOptions};
use awf_core::{canonical, Error, ErrorKind, Result};
use pgrx::spi::SpiClient;

/// A blob ready to be written: its address and its encoded bytes (`None` when it exists).
pub struct Encoded {
    pub blob_hash: String,
    pub key_id: String,
    pub stored_bytes: i32,
    pub plain_bytes: i32,
    data: Option<Vec<u8>>,
}

/// Encodes a blob unless an identical one (same plaintext, same key) is stored already; nothing
/// is written yet, so the caller can check limits against `stored_bytes` first.
pub fn encode(
    c: &mut SpiClient<'_>,
    plain: &[u8],
    blob_hash: &str,
    key: Option<&DataKey>,
    level: i32,
) -> Result<Encoded> {
    let key_id = key.map(|k| k.id().to_owned()).unwrap_or_default();
    let t = crate::spi::run(
        c,
        "SELECT stored_bytes FROM awf.save_blobs WHERE blob_hash = $1 AND key_id = $2",
        Some(1),
        &[blob_hash.into(), key_id.as_str().into()],
    )
    .expect("select awf.save_blobs");
    let plain_bytes =
        i32::try_from(plain.len()).map_err(|_| Error::limit("a blob cannot exceed 2 GB"))?;
    if !t.is_empty() {
        return Ok(Encoded {
            blob_hash: blob_hash.to_owned(),
            key_id,
            stored_bytes: col(&t.first(), 1),
            plain_bytes,
            data: None,
        });
    }
    let mut opts = EncodeOptions::level(level);
    if let Some(k) = key {
        opts = opts.with_key(k);
    }
    let data = codec::encode(plain, &opts)?;
    Ok(Encoded {
        blob_hash: blob_hash.to_owned(),
        key_id,
        stored_bytes: data.len() as i32,
        plain_bytes,
        data: Some(data),
    })
}

/// Writes an encoded blob (a no-op for one that already exists).
pub fn write(c: &mut SpiClient<'_>, blob: &Encoded) {
    if let Some(data) = &blob.data {
        // Blobs are shared by content across users, so only the extension writes them (as the
        // tables' owner): a caller could otherwise plant bytes under a hash another user's
        // state will have, and ON CONFLICT would keep them.
        let _owner = crate::audit::AsOwner::enter(c);
        crate::spi::run(
            c,
            "INSERT INTO awf.save_blobs (blob_hash, key_id, data, plain_bytes, stored_bytes)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            None,
            &[
                blob.blob_hash.as_str().into(),
                blob.key_id.as_str().into(),
                data.as_slice().into(),
                blob.plain_bytes.into(),
                blob.stored_bytes.into(),
            ],
        )
        .expect("insert into awf.save_blobs");
    }
}

/// Loads and decodes a blob, checking its tag (encrypted) or checksum and its SHA-256.
pub fn load(c: &mut SpiClient<'_>, blob_hash: &str, key_id: &str) -> Result<Vec<u8>> {
    let t = crate::spi::run(
        c,
        "SELECT data FROM awf.save_blobs WHERE blob_hash = $1 AND key_id = $2",
        Some(1),
        &[blob_hash.into(), key_id.into()],
    )
    .expect("select awf.save_blobs");
    if t.is_empty() {
        return Err(Error::integrity(format!("blob {blob_hash} is missing")));
    }
    let data: Vec<u8> = col(&t.first(), 1);
    let plain = decode(c, &data, blob_hash, key_id, &mut None)?;
    let got = canonical::sha256_hex(&plain);
    if got != blob_hash {
        return Err(Error::integrity(format!(
            "blob {blob_hash} decodes to bytes hashing {got}"
        )));
    }
    Ok(plain)
}

/// Decodes stored blob bytes, checking their tag (encrypted) or checksum but not the SHA-256
/// of the plaintext (the caller does: awf_core's rebuild checks every blob it replays).
/// `key` keeps the data key between calls, since a save's blobs share one.
pub fn decode(
    c: &mut SpiClient<'_>,
    data: &[u8],
    blob_hash: &str,
    key_id: &str,
    key: &mut Option<DataKey>,
) -> Result<Vec<u8>> {
    let decoded = if key_id.is_empty() {
        codec::decode(data, &codec::NoKeys)
    } else {
        if key.as_ref().is_none_or(|k| k.id() != key_id) {
            *key = Some(keys::data_key_by_id(c, key_id)?);
        }
        codec::decode(data, key.as_ref().expect("set above"))
    };
    // These bytes were written by this extension: a header it cannot parse or a length over
    // its limit means they changed since, which is corruption (XX001), not bad input. A
    // missing key stays what it is.
    decoded.map_err(|e| match e.kind {
        ErrorKind::NotFound | ErrorKind::Integrity => e,
        _ => Error::integrity(format!("stored blob {blob_hash} is corrupt: {}", e.message)),
    })
}
