//! Key material for encrypted saves. The master keyring comes from the file named by
//! `awf.master_key_file` (superuser-only, read by the server process); per-user data keys are
//! stored wrapped in `awf.data_keys` and unwrapped in memory only when a blob is encoded or
//! decoded. Without a key file, blobs are compressed but not encrypted.

use crate::audit;
use crate::errors::OrRaise;
use crate::gucs;
use crate::jsonb::JsonB;
use crate::spi::col;
use awf_core::codec::keys::{DataKey, Keyring, WrappedKey};
use awf_core::{Error, Result};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use serde_json::json;

/// The master keyring, or `None` when no key file is configured (saves are not encrypted).
pub fn keyring() -> Result<Option<Keyring>> {
    let Some(path) = gucs::master_key_file() else {
        return Ok(None);
    };
    crate::key_files::load("awf.master_key_file", &path, Keyring::from_key_file)
        .map(Some)
        .map_err(Error::invalid)
}

/// The data key that encrypts a user's new blobs, created (and wrapped) on first use; `None`
/// when no master key is configured.
pub fn data_key_for(c: &mut SpiClient<'_>, user_id_hash: &str) -> Result<Option<DataKey>> {
    let Some(ring) = keyring()? else {
        return Ok(None);
    };
    if let Some(key) = stored_key(c, &ring, user_id_hash)? {
        return Ok(Some(key));
    }
    let id = format!("dk-{}", uuid_hex(c));
    let key = DataKey::generate(&id)?;
    let wrapped = ring.current().wrap(&key);
    // Two saves of one user may create the key at once: the loser uses the winner's. As the
    // owner: a caller able to insert data keys could plant one that breaks key rotation.
    let owner = crate::audit::AsOwner::enter(c);
    let inserted = crate::spi::run(c,
        "INSERT INTO awf.data_keys (user_id_hash, key_id, wrapped, master_key_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id_hash) DO NOTHING RETURNING 1",
        None,
        &[
            user_id_hash.into(),
            id.as_str().into(),
            wrapped.to_bytes().into(),
            ring.current().id().into(),
        ],
    )
    .expect("insert into awf.data_keys");
    drop(owner);
    if inserted.is_empty() {
        // Another transaction created it first; it committed, so read it (in REPEATABLE READ
        // it may be invisible to this snapshot: then retry the transaction).
        return match stored_key(c, &ring, user_id_hash)? {
            Some(key) => Ok(Some(key)),
            None => Err(Error::new(
                awf_core::ErrorKind::Conflict,
                "the user's data key was created concurrently; retry the transaction",
            )),
        };
    }
    Ok(Some(key))
}

/// A user's stored data key, unwrapped, if there is one.
fn stored_key(
    c: &mut SpiClient<'_>,
    ring: &Keyring,
    user_id_hash: &str,
) -> Result<Option<DataKey>> {
    let t = crate::spi::run(
        c,
        "SELECT wrapped FROM awf.data_keys WHERE user_id_hash = $1",
        Some(1),
        &[user_id_hash.into()],
    )
    .expect("select awf.data_keys");
    if t.is_empty() {
        return Ok(None);
    }
    let wrapped: Vec<u8> = col(&t.first(), 1);
    ring.unwrap(&WrappedKey::from_bytes(&wrapped)?).map(Some)
}

/// The data key with this id, to decode a blob that names it.
pub fn data_key_by_id(c: &mut SpiClient<'_>, key_id: &str) -> Result<DataKey> {
    let Some(ring) = keyring()? else {
        return Err(Error::invalid(format!(
            "blob is encrypted under data key {key_id}, but awf.master_key_file is not set"
        )));
    };
    let t = crate::spi::run(
        c,
        "SELECT wrapped FROM awf.data_keys WHERE key_id = $1",
        Some(1),
        &[key_id.into()],
    )
    .expect("select awf.data_keys");
    if t.is_empty() {
        return Err(Error::integrity(format!(
            "data key {key_id} no longer exists: the blobs it encrypted cannot be decrypted"
        )));
    }
    let wrapped: Vec<u8> = col(&t.first(), 1);
    ring.unwrap(&WrappedKey::from_bytes(&wrapped)?)
}

fn uuid_hex(c: &mut SpiClient<'_>) -> String {
    let t = crate::spi::run(
        c,
        "SELECT replace(gen_random_uuid()::text, '-', '')",
        Some(1),
        &[],
    )
    .expect("gen_random_uuid");
    col(&t.first(), 1)
}

/// Re-wraps every data key under the keyring's current master key (the first line of
/// `awf.master_key_file`); blobs are not touched. Rotate by putting the new key first in the
/// file (keeping the old one after it), reloading, calling this, then removing the old line.
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_master_key() -> JsonB {
    const F: &str = "rotate_master_key";
    let ring = keyring().or_raise(F).unwrap_or_else(|| {
        crate::errors::raise(
            Error::invalid("awf.master_key_file is not set: there is no master key to rotate to"),
            F,
        )
    });
    crate::locks::connect_mut(|c| {
        let rows: Vec<(String, Vec<u8>)> = crate::spi::run(
            c,
            "SELECT user_id_hash, wrapped FROM awf.data_keys ORDER BY user_id_hash FOR UPDATE",
            None,
            &[],
        )
        .expect("select awf.data_keys")
        .map(|r| {
            (
                r.get::<String>(1).unwrap().unwrap(),
                r.get::<Vec<u8>>(2).unwrap().unwrap(),
            )
        })
        .collect();
        let mut rewrapped = 0i64;
        for (user, bytes) in &rows {
            let wrapped = WrappedKey::from_bytes(bytes).or_raise(F);
            if let Some(new) = ring.rewrap_to_current(&wrapped).or_raise(F) {
                crate::spi::run(
                    c,
                    "UPDATE awf.data_keys SET wrapped = $2, master_key_id = $3, rotated_at = now()
                     WHERE user_id_hash = $1",
                    None,
                    &[
                        user.as_str().into(),
                        new.to_bytes().into(),
                        ring.current().id().into(),
                    ],
                )
                .expect("update awf.data_keys");
                rewrapped += 1;
            }
        }
        let result = json!({
            "data_keys": rows.len(),
            "rewrapped": rewrapped,
            "master_key_id": ring.current().id(),
        });
        audit::record(c, "rotate_master_key", None, result.clone());
        JsonB(result)
    })
}
