//! Blob codec of the cloud save: zstd, then optional AES-256-GCM, behind a versioned header.
//!
//! Blobs are content-addressed elsewhere by the SHA-256 of their plaintext canonical bytes; this
//! module only turns plaintext into stored bytes and back. Layout (v1), all integers
//! little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `AWFB` |
//! | 4 | 1 | format version, 1 |
//! | 5 | 1 | codec: 0 none, 1 zstd |
//! | 6 | 1 | cipher: 0 none, 1 AES-256-GCM |
//! | 7 | 1 | key id length L (0 when unencrypted, 1..=255 when encrypted) |
//! | 8 | L | data key id, UTF-8 |
//! | 8+L | 12 | nonce, only when encrypted |
//! | .. | 8 | plaintext length, u64 |
//!
//! The body follows. Encrypted: AES-GCM ciphertext of the codec output followed by the 16-byte
//! tag, with the whole header as associated data, so editing the key id, codec, length or nonce
//! fails the tag. Unencrypted: the codec output followed by an 8-byte check, the first bytes of
//! SHA-256(header‖codec output). The check only catches corruption, not forgery (anyone can
//! recompute it); cloud-save rebuild also compares the SHA-256 of the decoded plaintext with the
//! blob's address, and zstd frames carry their own content checksum as a second line.
//!
//! The plaintext length bounds decompression, so a blob that inflates beyond what it declares (a
//! zip bomb) is stopped at that length, and declared lengths over a limit are refused up front.

pub mod aead;
pub mod keys;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub use keys::{rewrap, DataKey, MasterKey, WrappedKey, MAX_KEY_ID_LEN};

/// Magic bytes that open every blob.
pub const MAGIC: &[u8; 4] = b"AWFB";
/// The blob format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Largest plaintext encode accepts and decode inflates by default (1 GiB).
pub const MAX_PLAIN_LEN: u64 = 1 << 30;
/// The zstd level [`EncodeOptions::default`] uses (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Length of the unkeyed check that ends an unencrypted blob.
pub const CHECK_LEN: usize = 8;

const FIXED_HEADER_LEN: usize = 4 + 1 + 1 + 1 + 1 + 8;

/// How the plaintext is compressed inside a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is (tiny blobs, where a zstd frame would only add bytes).
    None,
    /// One zstd frame with content size and content checksum.
    Zstd,
}

/// How the compressed bytes are encrypted inside a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// Not encrypted; an 8-byte SHA-256 check guards against corruption.
    None,
    /// AES-256-GCM under a data key named in the header.
    Aes256Gcm,
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
        }
    }
    fn from_id(id: u8) -> Result<Codec> {
        match id {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Zstd),
            _ => Err(Error::invalid(format!("blob codec id {id} is unknown"))),
        }
    }
}

impl Cipher {
    fn id(self) -> u8 {
        match self {
            Cipher::None => 0,
            Cipher::Aes256Gcm => 1,
        }
    }
    fn from_id(id: u8) -> Result<Cipher> {
        match id {
            0 => Ok(Cipher::None),
            1 => Ok(Cipher::Aes256Gcm),
            _ => Err(Error::invalid(format!("blob cipher id {id} is unknown"))),
        }
    }
}

/// What a blob header says, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    /// Format version (always [`FORMAT_VERSION`] for a header that parsed).
    pub version: u8,
    /// Compression of the plaintext.
    pub codec: Codec,
    /// Encryption of the compressed bytes.
    pub cipher: Cipher,
    /// Id of the data key the blob is sealed under; `None` when unencrypted.
    pub key_id: Option<String>,
    /// The AES-GCM nonce; `None` when unencrypted.
    pub nonce: Option<[u8; aead::NONCE_LEN]>,
    /// Length of the decoded plaintext.
    pub plain_len: u64,
    /// Bytes taken by the header.
    pub header_len: usize,
    /// Bytes after the header: codec output plus the GCM tag or the unencrypted check.
    pub body_len: usize,
}

/// Settings for [`encode`].
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// zstd level 1..=22, or 0 to store uncompressed.
    pub level: i32,
    /// Data key to seal under; `None` leaves the blob unencrypted.
    pub key: Option<&'a DataKey>,
}

impl Default for EncodeOptions<'_> {
    fn default() -> Self {
        EncodeOptions {
            level: DEFAULT_ZSTD_LEVEL,
            key: None,
        }
    }
}

impl<'a> EncodeOptions<'a> {
    /// Unencrypted at the given zstd level (0 = uncompressed).
    pub fn level(level: i32) -> Self {
        EncodeOptions { level, key: None }
    }

    /// The same options, sealing under `key`.
    pub fn with_key(self, key: &'a DataKey) -> Self {
        EncodeOptions {
            key: Some(key),
            ..self
        }
    }
}

/// Finds the data key a blob header names.
pub trait KeyLookup {
    /// The data key with this id, or `None` if it is not available.
    fn data_key(&self, id: &str) -> Option<&DataKey>;
}

/// A key lookup that knows no keys, for stores that never encrypt.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl KeyLookup for NoKeys {
    fn data_key(&self, _id: &str) -> Option<&DataKey> {
        None
    }
}

impl KeyLookup for DataKey {
    fn data_key(&self, id: &str) -> Option<&DataKey> {
        (self.id() == id).then_some(self)
    }
}

impl KeyLookup for Option<&DataKey> {
    fn data_key(&self, id: &str) -> Option<&DataKey> {
        self.filter(|k| k.id() == id)
    }
}

impl KeyLookup for Vec<DataKey> {
    fn data_key(&self, id: &str) -> Option<&DataKey> {
        self.iter().find(|k| k.id() == id)
    }
}

impl KeyLookup for HashMap<String, DataKey> {
    fn data_key(&self, id: &str) -> Option<&DataKey> {
        self.get(id).filter(|k| k.id() == id)
    }
}

/// Compresses, optionally encrypts, and prefixes the header.
///
/// With a zstd level, a plaintext that zstd would not shrink is stored with [`Codec::None`]
/// instead (the header records which), so tiny blobs do not pay for a frame.
pub fn encode(plain: &[u8], opts: &EncodeOptions<'_>) -> Result<Vec<u8>> {
    if plain.len() as u64 > MAX_PLAIN_LEN {
        return Err(Error::limit(format!(
            "blob plaintext is {} bytes; the limit is {MAX_PLAIN_LEN} bytes",
            plain.len()
        )));
    }
    let compressed = match opts.level {
        0 => None,
        1..=22 => {
            let frame = zstd_compress(plain, opts.level)?;
            (frame.len() < plain.len()).then_some(frame)
        }
        other => {
            return Err(Error::invalid(format!(
                "zstd level {other} is out of range: use 1..=22, or 0 to store uncompressed"
            )))
        }
    };
    let (codec, body) = match &compressed {
        Some(frame) => (Codec::Zstd, frame.as_slice()),
        None => (Codec::None, plain),
    };

    let mut out;
    match opts.key {
        Some(key) => {
            let mut nonce = [0u8; aead::NONCE_LEN];
            OsRng.fill_bytes(&mut nonce);
            out = write_header(
                codec,
                Cipher::Aes256Gcm,
                key.id(),
                Some(&nonce),
                plain.len(),
            );
            let sealed = aead::seal(key.key(), &nonce, &out, body);
            out.extend_from_slice(&sealed);
        }
        None => {
            out = write_header(codec, Cipher::None, "", None, plain.len());
            out.reserve(body.len() + CHECK_LEN);
            out.extend_from_slice(body);
            let check = unencrypted_check(&out);
            out.extend_from_slice(&check);
        }
    }
    Ok(out)
}

/// Decodes a blob, refusing plaintexts longer than [`MAX_PLAIN_LEN`].
pub fn decode(blob: &[u8], keys: &dyn KeyLookup) -> Result<Vec<u8>> {
    decode_limited(blob, keys, MAX_PLAIN_LEN)
}

/// Decodes a blob whose declared plaintext length must not exceed `max_plain_len`.
///
/// Malformed headers are `InvalidInput`, a missing data key is `NotFound`, a declared length
/// over the limit is `LimitExceeded`, and a failed tag, check, zstd frame or length is
/// `Integrity`.
pub fn decode_limited(blob: &[u8], keys: &dyn KeyLookup, max_plain_len: u64) -> Result<Vec<u8>> {
    let h = header(blob)?;
    if h.plain_len > max_plain_len {
        return Err(Error::limit(format!(
            "blob declares {} plaintext bytes; the limit is {max_plain_len}",
            h.plain_len
        )));
    }
    let (head, body) = blob.split_at(h.header_len);

    let opened;
    let codec_output: &[u8] = match (&h.key_id, h.nonce) {
        (Some(key_id), Some(nonce)) => {
            let key = keys.data_key(key_id).ok_or_else(|| {
                Error::not_found(format!(
                    "blob is encrypted under data key {key_id:?}, which is not available"
                ))
            })?;
            opened = aead::open(key.key(), &nonce, head, body).map_err(|_| {
                Error::integrity(format!(
                    "blob failed AES-GCM authentication under data key {key_id:?}: wrong key or \
                     tampered blob"
                ))
            })?;
            &opened
        }
        _ => {
            let (data, check) = body.split_at(body.len() - CHECK_LEN);
            let expected = unencrypted_check(&blob[..blob.len() - CHECK_LEN]);
            if check != expected {
                return Err(Error::integrity(
                    "unencrypted blob failed its checksum: the stored bytes are corrupted",
                ));
            }
            data
        }
    };

    let plain = match h.codec {
        Codec::None => codec_output.to_vec(),
        Codec::Zstd => zstd_decompress(codec_output, h.plain_len)?,
    };
    if plain.len() as u64 != h.plain_len {
        return Err(Error::integrity(format!(
            "blob decoded to {} bytes but its header declares {}",
            plain.len(),
            h.plain_len
        )));
    }
    Ok(plain)
}

/// Parses and validates a blob header without any key (codec, cipher, key id, lengths).
pub fn header(blob: &[u8]) -> Result<BlobHeader> {
    let mut r = Reader::new(blob, "blob");
    if r.take(4)? != MAGIC {
        return Err(Error::invalid("not an awf blob: magic bytes are not AWFB"));
    }
    let version = r.u8()?;
    if version != FORMAT_VERSION {
        return Err(Error::invalid(format!(
            "blob format version {version} is not supported (this build reads version \
             {FORMAT_VERSION})"
        )));
    }
    let codec = Codec::from_id(r.u8()?)?;
    let cipher = Cipher::from_id(r.u8()?)?;
    let key_id = r.short_str("key id")?;
    let (key_id, nonce) = match cipher {
        Cipher::None => {
            if !key_id.is_empty() {
                return Err(Error::invalid(
                    "unencrypted blob names a data key; its header is malformed",
                ));
            }
            (None, None)
        }
        Cipher::Aes256Gcm => {
            keys::check_key_id("blob data key", &key_id)?;
            let nonce: [u8; aead::NONCE_LEN] = r
                .take(aead::NONCE_LEN)?
                .try_into()
                .expect("NONCE_LEN bytes");
            (Some(key_id), Some(nonce))
        }
    };
    let plain_len = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let header_len = r.pos;
    let body_len = blob.len() - header_len;
    let trailer = match cipher {
        Cipher::None => CHECK_LEN,
        Cipher::Aes256Gcm => aead::TAG_LEN,
    };
    if body_len < trailer {
        return Err(Error::integrity(format!(
            "blob is truncated: its body has {body_len} bytes, fewer than its {trailer}-byte \
             trailer"
        )));
    }
    if codec == Codec::None && (body_len - trailer) as u64 != plain_len {
        return Err(Error::integrity(format!(
            "uncompressed blob stores {} bytes but its header declares {plain_len}",
            body_len - trailer
        )));
    }
    Ok(BlobHeader {
        version,
        codec,
        cipher,
        key_id,
        nonce,
        plain_len,
        header_len,
        body_len,
    })
}

fn write_header(
    codec: Codec,
    cipher: Cipher,
    key_id: &str,
    nonce: Option<&[u8; aead::NONCE_LEN]>,
    plain_len: usize,
) -> Vec<u8> {
    // Key ids were validated (≤ 255 bytes) when the DataKey was made.
    debug_assert!(key_id.len() <= MAX_KEY_ID_LEN);
    let mut h = Vec::with_capacity(FIXED_HEADER_LEN + key_id.len() + aead::NONCE_LEN);
    h.extend_from_slice(MAGIC);
    h.push(FORMAT_VERSION);
    h.push(codec.id());
    h.push(cipher.id());
    h.push(key_id.len() as u8);
    h.extend_from_slice(key_id.as_bytes());
    if let Some(nonce) = nonce {
        h.extend_from_slice(nonce);
    }
    h.extend_from_slice(&(plain_len as u64).to_le_bytes());
    h
}

fn unencrypted_check(header_and_data: &[u8]) -> [u8; CHECK_LEN] {
    let digest = Sha256::digest(header_and_data);
    digest[..CHECK_LEN].try_into().expect("CHECK_LEN bytes")
}

thread_local! {
    // One zstd context per thread, each reused from call to call: creating a context costs
    // about as much as compressing a whole turn's patch (its tables are allocated and zeroed),
    // and a rebuild decodes up to one blob per diff since its base.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_compress(plain: &[u8], level: i32) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| Error::invalid(format!("zstd compression failed: {e}"));
    COMPRESSOR.with_borrow_mut(|slot| {
        match slot {
            Some((at, c)) if *at != level => {
                c.set_compression_level(level).map_err(fail)?;
                *at = level;
            }
            Some(_) => {}
            None => {
                let mut c = zstd::bulk::Compressor::new(level).map_err(fail)?;
                // The frame checksum is a second corruption check under the blob's own, and it
                // also catches a decompressor that misbehaves.
                c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                    .map_err(fail)?;
                *slot = Some((level, c));
            }
        }
        let (_, c) = slot.as_mut().expect("set above");
        // Each call starts a new frame (ZSTD_compress2 resets the session, keeping parameters).
        c.compress(plain).map_err(fail)
    })
}

/// Inflates one zstd frame, never producing more than `plain_len` + 1 bytes, so a frame that
/// lies about its size cannot exhaust memory; the caller compares the exact length.
fn zstd_decompress(frame: &[u8], plain_len: u64) -> Result<Vec<u8>> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        let ctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        // A frame that failed half way leaves the context mid-frame: start clean every time.
        ctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly)
            .map_err(|code| {
                Error::integrity(format!(
                    "zstd context reset failed: {}",
                    zstd::zstd_safe::get_error_name(code)
                ))
            })?;
        inflate(
            zstd::stream::read::Decoder::with_context(frame, ctx).single_frame(),
            plain_len,
        )
    })
}

/// Reads the one frame `decoder` holds, never more than `plain_len` + 1 bytes.
fn inflate(decoder: zstd::stream::read::Decoder<'_, &[u8]>, plain_len: u64) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| Error::integrity(format!("blob zstd frame is corrupt: {e}"));
    // Grow as data arrives rather than trusting the declared length with one allocation.
    let mut out = Vec::with_capacity(plain_len.min(1 << 20) as usize);
    let mut limited = decoder.take(plain_len + 1);
    limited.read_to_end(&mut out).map_err(corrupt)?;
    let decoder = limited.into_inner();
    if out.len() as u64 > plain_len {
        return Err(Error::integrity(format!(
            "blob inflates beyond the {plain_len} bytes its header declares"
        )));
    }
    let rest = decoder.finish();
    if !rest.is_empty() {
        return Err(Error::integrity(format!(
            "blob has {} bytes after its zstd frame",
            rest.len()
        )));
    }
    Ok(out)
}

/// A bounds-checked cursor; running off the end is a malformed (truncated) header.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| {
            Error::invalid(format!(
                "{} is truncated: {} bytes, header needs at least {}",
                self.what,
                self.buf.len(),
                self.pos + n
            ))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn short_str(&mut self, field: &str) -> Result<String> {
        let len = self.u8()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid(format!("{} {field} is not UTF-8", self.what)))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}
