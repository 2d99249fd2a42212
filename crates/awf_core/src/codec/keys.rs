//! Envelope keys: blobs are encrypted under data keys, and data keys are stored only wrapped
//! (encrypted) under a master key. Rotating the master key re-wraps the few data keys and
//! rewrites no blob, because a blob's header names its data key, never the master key.
//!
//! Key file format (what [`MasterKey::from_key_file`] reads and [`MasterKey::to_key_file`]
//! writes): UTF-8 text with exactly one key line, either `<64 hex digits>` or
//! `<id>:<64 hex digits>`. Blank lines and lines starting with `#` are ignored, as is
//! whitespace around the line. Without an id the key is named `mk-` followed by 16 hex digits
//! of a labelled SHA-256 of the key, so two different unnamed keys never share an id and a
//! rotation is noticed as "wrong master key" rather than as a failed tag.
//!
//! Rotation uses a [`Keyring`] file instead: the same line format, one key per line, the new
//! (current) key first and the retired keys after it. The current key wraps new data keys;
//! the others only unwrap, until [`Keyring::rewrap_to_current`] has moved every wrapped data
//! key to the current key and the old lines can be deleted.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::aead::{self, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};

/// Magic bytes of a serialized [`WrappedKey`].
const WRAP_MAGIC: &[u8; 4] = b"AWFK";
/// Version of the [`WrappedKey`] byte format.
const WRAP_VERSION: u8 = 1;
/// Longest key id in bytes: ids are length-prefixed with one byte.
pub const MAX_KEY_ID_LEN: usize = 255;

/// Refuses ids that cannot be length-prefixed with a byte or would garble messages and files.
pub(crate) fn check_key_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(format!("{what} id must not be empty")));
    }
    if id.len() > MAX_KEY_ID_LEN {
        return Err(Error::invalid(format!(
            "{what} id is {} bytes long; the limit is {MAX_KEY_ID_LEN} bytes of UTF-8",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) || id.trim() != id {
        return Err(Error::invalid(format!(
            "{what} id {id:?} must not contain control characters or surrounding whitespace"
        )));
    }
    Ok(())
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    OsRng.fill_bytes(&mut key);
    key
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

fn key_from_slice(what: &str, bytes: &[u8]) -> Result<[u8; KEY_LEN]> {
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| {
        Error::invalid(format!(
            "{what} must be {KEY_LEN} bytes (AES-256), got {} bytes",
            bytes.len()
        ))
    })
}

/// Decodes straight into a fixed array so no heap copy of the key is left behind, and never
/// echoes the input: a malformed key file must not leak key material into logs.
fn key_from_hex(what: &str, text: &str) -> Result<[u8; KEY_LEN]> {
    let text = text.trim();
    if let Some(pos) = text.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "{what} must be {} hex digits; found a non-hex character at position {pos}",
            2 * KEY_LEN
        )));
    }
    if text.len() != 2 * KEY_LEN {
        return Err(Error::invalid(format!(
            "{what} must be {} hex digits ({KEY_LEN} bytes), got {} hex digits",
            2 * KEY_LEN,
            text.len()
        )));
    }
    let mut key = [0u8; KEY_LEN];
    hex::decode_to_slice(text, &mut key)
        .map_err(|_| Error::invalid(format!("{what} is not valid hex")))?;
    Ok(key)
}

/// Overwrites key bytes when a key is dropped. Best effort: moves may have left copies, and
/// the AES key schedule inside aes-gcm is not wiped (its `zeroize` feature is not enabled).
fn wipe(key: &mut [u8; KEY_LEN]) {
    key.fill(0);
    // Keeps the optimizer from treating the overwrite of a dying value as a dead store.
    std::hint::black_box(key);
}

/// A key-encryption key, loaded from a key file; it only ever wraps and unwraps data keys.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: [u8; KEY_LEN],
}

/// A content-encryption key that blobs are sealed under; its id is written in each blob header.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    key: [u8; KEY_LEN],
}

/// A data key encrypted under a master key: the only form in which data keys are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Id of the wrapped data key (the id blob headers carry).
    pub data_key_id: String,
    /// Id of the master key this was wrapped under.
    pub master_key_id: String,
    /// The AES-GCM nonce, fresh for every wrap.
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted data key followed by the GCM tag (48 bytes).
    pub ciphertext: Vec<u8>,
}

impl MasterKey {
    /// A master key from raw key bytes; refuses anything but 32 bytes.
    pub fn from_bytes(id: &str, bytes: &[u8]) -> Result<MasterKey> {
        check_key_id("master key", id)?;
        Ok(MasterKey {
            id: id.to_owned(),
            key: key_from_slice("master key", bytes)?,
        })
    }

    /// A master key from 64 hex digits (surrounding whitespace allowed).
    pub fn from_hex(id: &str, hex_key: &str) -> Result<MasterKey> {
        check_key_id("master key", id)?;
        Ok(MasterKey {
            id: id.to_owned(),
            key: key_from_hex("master key", hex_key)?,
        })
    }

    /// Parses a key file (`hex` or `id:hex`, see the module docs).
    pub fn from_key_file(text: &str) -> Result<MasterKey> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines
            .next()
            .ok_or_else(|| Error::invalid("master key file holds no key line"))?;
        if lines.next().is_some() {
            return Err(Error::invalid(
                "master key file holds more than one key line; keep one key per file",
            ));
        }
        parse_key_line(line)
    }

    /// A fresh random master key, for `awf` key generation and for tests.
    pub fn generate(id: &str) -> Result<MasterKey> {
        check_key_id("master key", id)?;
        Ok(MasterKey {
            id: id.to_owned(),
            key: random_key(),
        })
    }

    /// The key file text for this key (`id:hex` and a newline); it is secret.
    pub fn to_key_file(&self) -> String {
        format!("{}:{}\n", self.id, hex::encode(self.key))
    }

    /// This key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts a data key under this master key with a fresh nonce.
    pub fn wrap(&self, data_key: &DataKey) -> WrappedKey {
        let nonce = random_nonce();
        let aad = wrap_aad(&data_key.id, &self.id);
        let ciphertext = aead::seal(&self.key, &nonce, &aad, &data_key.key);
        WrappedKey {
            data_key_id: data_key.id.clone(),
            master_key_id: self.id.clone(),
            nonce,
            ciphertext,
        }
    }

    /// Decrypts a wrapped data key; a different master id is refused before any decryption.
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey> {
        if wrapped.master_key_id != self.id {
            return Err(Error::invalid(format!(
                "data key {:?} is wrapped under master key {:?}, not under {:?}; load that \
                 master key, or rewrap the data key if the master key was rotated",
                wrapped.data_key_id, wrapped.master_key_id, self.id
            )));
        }
        check_key_id("data key", &wrapped.data_key_id)?;
        let aad = wrap_aad(&wrapped.data_key_id, &wrapped.master_key_id);
        let mut plain =
            aead::open(&self.key, &wrapped.nonce, &aad, &wrapped.ciphertext).map_err(|_| {
                Error::integrity(format!(
                    "cannot unwrap data key {:?} with master key {:?}: wrong key material or \
                     a tampered wrapped key",
                    wrapped.data_key_id, self.id
                ))
            })?;
        let key = key_from_slice("unwrapped data key", &plain);
        plain.fill(0);
        Ok(DataKey {
            id: wrapped.data_key_id.clone(),
            key: key.map_err(|e| Error::integrity(e.message))?,
        })
    }
}

/// Parses one trimmed key file line, `hex` or `id:hex`; shared by the single-key and keyring
/// readers so both accept exactly the same lines.
fn parse_key_line(line: &str) -> Result<MasterKey> {
    match line.rsplit_once(':') {
        Some((id, hex_key)) => MasterKey::from_hex(id.trim(), hex_key),
        None => {
            let key = key_from_hex("master key", line)?;
            Ok(MasterKey {
                id: fingerprint_id(&key),
                key,
            })
        }
    }
}

/// Re-wraps a data key from the old master key to the new one; no blob is touched.
pub fn rewrap(wrapped: &WrappedKey, old: &MasterKey, new: &MasterKey) -> Result<WrappedKey> {
    let data_key = old.unwrap(wrapped)?;
    Ok(new.wrap(&data_key))
}

/// The master keys of a key file during rotation: the current key wraps, every key unwraps.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: MasterKey,
    older: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring from the current key and the retired ones; refuses two keys with one id.
    pub fn new(current: MasterKey, older: Vec<MasterKey>) -> Result<Keyring> {
        let ring = Keyring { current, older };
        // Unwrapping picks the key by id, so a repeated id would make the choice ambiguous
        // (and a copy-paste slip in the key file would go unnoticed).
        let ids: Vec<&str> = ring.keys().map(MasterKey::id).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(Error::invalid(format!(
                    "key file names master key {id:?} more than once; keep one line per key"
                )));
            }
        }
        Ok(ring)
    }

    /// Parses a keyring file: one `hex` or `id:hex` line per key, the first one current.
    ///
    /// Blank lines and `#` comments are skipped. Errors name the line number, never its text,
    /// so a malformed file does not leak key material into logs.
    pub fn from_key_file(text: &str) -> Result<Keyring> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_key_line(line)
                .map_err(|e| Error::new(e.kind, format!("key file line {}: {}", n + 1, e)))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(Error::invalid(
                "key file holds no key line; put the current master key on the first line",
            ));
        }
        let current = keys.remove(0);
        Keyring::new(current, keys)
    }

    /// The key file text of this keyring (current key first); it is secret.
    pub fn to_key_file(&self) -> String {
        self.keys().map(MasterKey::to_key_file).collect()
    }

    /// The key that wraps new data keys (the first line of the key file).
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Every key, current first, then the retired ones in file order.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.older)
    }

    /// The key with this id, current or retired.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys().find(|k| k.id == id)
    }

    /// Wraps a data key under the current key.
    pub fn wrap(&self, data_key: &DataKey) -> WrappedKey {
        self.current.wrap(data_key)
    }

    /// Unwraps a data key with whichever key of the ring it was wrapped under.
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey> {
        match self.get(&wrapped.master_key_id) {
            Some(key) => key.unwrap(wrapped),
            None => {
                let ids: Vec<&str> = self.keys().map(MasterKey::id).collect();
                Err(Error::not_found(format!(
                    "data key {:?} is wrapped under master key {:?}, which the key file lacks \
                     (it holds {}); add that key's line after the current key, or restore the \
                     key file from before the rotation",
                    wrapped.data_key_id,
                    wrapped.master_key_id,
                    ids.join(", ")
                )))
            }
        }
    }

    /// Re-wraps a data key under the current key; `None` when it already is under it.
    ///
    /// Rotation runs this over every stored wrapped key and writes back the `Some`s; once none
    /// is left, the retired lines can be removed from the key file.
    pub fn rewrap_to_current(&self, wrapped: &WrappedKey) -> Result<Option<WrappedKey>> {
        if wrapped.master_key_id == self.current.id {
            return Ok(None);
        }
        let data_key = self.unwrap(wrapped)?;
        Ok(Some(self.current.wrap(&data_key)))
    }
}

/// Binds the wrap to both ids, so a wrapped key cannot be relabelled as another data key or
/// presented as wrapped under another master key. It is the serialized prefix before the nonce.
fn wrap_aad(data_key_id: &str, master_key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(7 + data_key_id.len() + master_key_id.len());
    aad.extend_from_slice(WRAP_MAGIC);
    aad.push(WRAP_VERSION);
    aad.push(data_key_id.len() as u8);
    aad.extend_from_slice(data_key_id.as_bytes());
    aad.push(master_key_id.len() as u8);
    aad.extend_from_slice(master_key_id.as_bytes());
    aad
}

/// The id of a key file line without an id: a labelled hash, so it reveals nothing of the key.
fn fingerprint_id(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"awf master key id\0")
        .chain_update(key)
        .finalize();
    format!("mk-{}", hex::encode(&digest[..8]))
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate(id: &str) -> Result<DataKey> {
        check_key_id("data key", id)?;
        Ok(DataKey {
            id: id.to_owned(),
            key: random_key(),
        })
    }

    /// A data key from raw key bytes; refuses anything but 32 bytes.
    pub fn from_bytes(id: &str, bytes: &[u8]) -> Result<DataKey> {
        check_key_id("data key", id)?;
        Ok(DataKey {
            id: id.to_owned(),
            key: key_from_slice("data key", bytes)?,
        })
    }

    /// This key's id, as written in the headers of blobs sealed under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

impl WrappedKey {
    /// Serializes as `AWFK`, version 1, u8-prefixed data key id, u8-prefixed master key id,
    /// 12-byte nonce, 48 bytes of ciphertext‖tag.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = wrap_aad(&self.data_key_id, &self.master_key_id);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses [`WrappedKey::to_bytes`] output, refusing any other version, length or id.
    pub fn from_bytes(bytes: &[u8]) -> Result<WrappedKey> {
        let mut r = super::Reader::new(bytes, "wrapped key");
        if r.take(4)? != WRAP_MAGIC {
            return Err(Error::invalid(
                "not a wrapped key: magic bytes are not AWFK",
            ));
        }
        let version = r.u8()?;
        if version != WRAP_VERSION {
            return Err(Error::invalid(format!(
                "wrapped key format version {version} is not supported (expected {WRAP_VERSION})"
            )));
        }
        let data_key_id = r.short_str("data key id")?;
        check_key_id("data key", &data_key_id)?;
        let master_key_id = r.short_str("master key id")?;
        check_key_id("master key", &master_key_id)?;
        let nonce: [u8; NONCE_LEN] = r.take(NONCE_LEN)?.try_into().expect("NONCE_LEN bytes");
        let ciphertext = r.rest().to_vec();
        if ciphertext.len() != KEY_LEN + TAG_LEN {
            return Err(Error::invalid(format!(
                "wrapped key ciphertext is {} bytes; expected {}",
                ciphertext.len(),
                KEY_LEN + TAG_LEN
            )));
        }
        Ok(WrappedKey {
            data_key_id,
            master_key_id,
            nonce,
            ciphertext,
        })
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The ciphertext is not secret, but it is noise in logs.
        f.debug_struct("WrappedKey")
            .field("data_key_id", &self.data_key_id)
            .field("master_key_id", &self.master_key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_forms() {
        let hex_key = "00".repeat(31) + "ff";
        let k = MasterKey::from_key_file(&format!("# comment\n\n prod-2025:{hex_key} \n")).unwrap();
        assert_eq!(k.id(), "prod-2025");
        let k2 = MasterKey::from_key_file(&hex_key).unwrap();
        assert!(k2.id().starts_with("mk-") && k2.id().len() == 19);
        let again = MasterKey::from_key_file(&k.to_key_file()).unwrap();
        assert_eq!(again.key, k.key);
        assert_eq!(again.id(), k.id());
    }

    #[test]
    fn key_file_errors_do_not_echo_key() {
        let short = "ab".repeat(31);
        let e = MasterKey::from_key_file(&short).unwrap_err();
        assert!(e.message.contains("got 62 hex digits"), "{}", e.message);
        assert!(!e.message.contains(&short));
        let e = MasterKey::from_hex("m", &("zz".to_owned() + &"ab".repeat(31))).unwrap_err();
        assert!(e.message.contains("position 0"), "{}", e.message);
        assert!(MasterKey::from_key_file("").is_err());
        assert!(
            MasterKey::from_key_file(&format!("{}\n{}", "00".repeat(32), "11".repeat(32))).is_err()
        );
        assert!(MasterKey::from_bytes("m", &[0; 31]).is_err());
        assert!(DataKey::from_bytes("d", &[0; 33]).is_err());
        assert!(DataKey::generate("").is_err());
        assert!(DataKey::generate(&"x".repeat(256)).is_err());
        assert!(DataKey::generate(&"é".repeat(127)).is_ok());
    }

    #[test]
    fn debug_hides_key() {
        let k = DataKey::from_bytes("d", &[0xab; 32]).unwrap();
        let s = format!("{k:?}");
        assert!(!s.contains("ab, ") && !s.contains("171") && s.contains("redacted"));
    }

    #[test]
    fn keyring_rotation_flow() {
        let a = MasterKey::generate("A").unwrap();
        let b = MasterKey::generate("B").unwrap();
        let d = DataKey::generate("d1").unwrap();

        let ring_a = Keyring::from_key_file(&a.to_key_file()).unwrap();
        assert_eq!(ring_a.current().id(), "A");
        let w = ring_a.wrap(&d);
        assert_eq!(w.master_key_id, "A");
        assert_eq!(ring_a.rewrap_to_current(&w).unwrap(), None);

        // Rotation: B becomes current, A stays to unwrap what is still under it.
        let file = format!("# rotated\n{}\n{}", b.to_key_file(), a.to_key_file());
        let ring_ba = Keyring::from_key_file(&file).unwrap();
        assert_eq!(ring_ba.current().id(), "B");
        assert_eq!(ring_ba.unwrap(&w).unwrap().key, d.key);
        let w2 = ring_ba.rewrap_to_current(&w).unwrap().expect("moved to B");
        assert_eq!(w2.master_key_id, "B");
        assert_eq!(w2.data_key_id, "d1");
        assert_eq!(ring_ba.rewrap_to_current(&w2).unwrap(), None);

        // After rotation B alone unwraps; A alone no longer can, and says what is missing.
        let ring_b = Keyring::from_key_file(&b.to_key_file()).unwrap();
        assert_eq!(ring_b.unwrap(&w2).unwrap().key, d.key);
        let e = ring_a.unwrap(&w2).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::NotFound);
        assert!(
            e.message.contains("\"B\"") && e.message.contains("lacks"),
            "{}",
            e.message
        );
        assert_eq!(
            ring_a.rewrap_to_current(&w2).unwrap_err().kind,
            crate::ErrorKind::NotFound
        );

        // The serialized ring reads back with the same order.
        let again = Keyring::from_key_file(&ring_ba.to_key_file()).unwrap();
        let ids: Vec<&str> = again.keys().map(MasterKey::id).collect();
        assert_eq!(ids, ["B", "A"]);
    }

    #[test]
    fn keyring_file_errors() {
        let e = Keyring::from_key_file("# only a comment\n\n").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidInput);
        let k = "11".repeat(32);
        let e = Keyring::from_key_file(&format!("{k}\n{k}\n")).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
        let e = Keyring::from_key_file(&format!(
            "x:{k}\ny:{}\nx:{}\n",
            "22".repeat(32),
            "33".repeat(32)
        ))
        .unwrap_err();
        assert!(e.message.contains("\"x\""), "{}", e.message);
        let short = "ab".repeat(31);
        let e = Keyring::from_key_file(&format!("x:{k}\n\n{short}\n")).unwrap_err();
        assert!(e.message.starts_with("key file line 3:"), "{}", e.message);
        assert!(!e.message.contains(&short) && !e.message.contains(&k));
        // Unnamed keys get their fingerprint ids, as in single-key files.
        let ring = Keyring::from_key_file(&format!("{k}\nold:{}", "22".repeat(32))).unwrap();
        assert_eq!(
            ring.current().id(),
            MasterKey::from_key_file(&k).unwrap().id()
        );
        assert!(ring.get("old").is_some() && ring.get("nope").is_none());
    }

    #[test]
    fn wrapped_key_round_trip_and_relabel_refused() {
        let m = MasterKey::generate("m1").unwrap();
        let d = DataKey::generate("d1").unwrap();
        let w = m.wrap(&d);
        let bytes = w.to_bytes();
        assert_eq!(bytes.len(), 4 + 1 + 1 + 2 + 1 + 2 + 12 + 48);
        let back = WrappedKey::from_bytes(&bytes).unwrap();
        assert_eq!(back, w);
        assert_eq!(m.unwrap(&back).unwrap().key, d.key);
        let mut relabelled = w.clone();
        relabelled.data_key_id = "d2".into();
        assert_eq!(
            m.unwrap(&relabelled).unwrap_err().kind,
            crate::ErrorKind::Integrity
        );
        for cut in 0..bytes.len() {
            assert!(WrappedKey::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
