//! Client-sealed turns: a device encrypts each state under a seal key that never leaves the
//! devices of its user, so the server stores, hashes and chains bytes it cannot read.
//!
//! A sealed turn is a blob of the [`codec`](crate::codec) format (zstd, then AES-256-GCM under
//! the seal key, the header as associated data) whose plaintext is the RFC 8785 bytes of
//! `{"prev_chain": …, "save_id": …, "state": …, "turn_id": …}`. Binding the save, the turn and
//! the chain hash of the turn before inside the ciphertext means the server (which builds the
//! chain itself and so could chain any bytes) cannot replay an old sealed state as a new turn,
//! move one between saves, or splice turns of another branch into a chain: [`open`] refuses a
//! turn whose sealed save id, turn id or previous chain hash is not the one it was asked for.
//!
//! The key id in every blob header is a labelled hash of the key, so a device holding another
//! key learns "sealed under seal-…, not the key this device holds" instead of a failed tag.
//! Compression happens before encryption, so the stored length tells the server how well a
//! state compresses; states are the game's own data, not text an attacker can mix secrets
//! into, which is what makes that leak exploitable elsewhere.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::codec::{self, DataKey, EncodeOptions};
use crate::error::{Error, ErrorKind, Result};

/// Length of a seal key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// A device's seal key.
#[derive(Clone)]
pub struct SealKey {
    key: DataKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id())
    }
}

impl SealKey {
    /// A key from 64 hex characters (surrounding whitespace ignored, as in a key file).
    pub fn from_hex(text: &str) -> Result<SealKey> {
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == KEY_LEN)
            .ok_or_else(|| Error::invalid("a seal key is 64 hex characters (32 bytes)"))?;
        SealKey::from_bytes(&bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealKey> {
        if bytes.len() != KEY_LEN {
            return Err(Error::invalid("a seal key is 32 bytes"));
        }
        let digest = Sha256::new()
            .chain_update(b"awf client seal key id\0")
            .chain_update(bytes)
            .finalize();
        let id = format!("seal-{}", hex::encode(&digest[..8]));
        Ok(SealKey {
            key: DataKey::from_bytes(&id, bytes)?,
        })
    }

    /// A fresh random key, in hex (what a key file holds).
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        hex::encode(bytes)
    }

    /// The key's id as written in the blobs sealed under it (a hash; it reveals nothing of
    /// the key).
    pub fn id(&self) -> &str {
        self.key.id()
    }
}

/// Where a sealed turn sits: its save, its turn, and the chain hash of the turn before it.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub save_id: &'a str,
    pub turn_id: i64,
    pub prev_chain: &'a str,
}

/// Seals the state of the turn at `at` (a fresh random nonce every time).
pub fn seal(key: &SealKey, at: Place<'_>, state: &Value) -> Result<Vec<u8>> {
    let plain = crate::canonical::canonical_bytes(&json!({
        "prev_chain": at.prev_chain.to_ascii_lowercase(),
        "save_id": at.save_id.to_ascii_lowercase(),
        "state": state,
        "turn_id": at.turn_id,
    }))?;
    codec::encode(&plain, &EncodeOptions::default().with_key(&key.key))
}

/// The id of the key a sealed turn was sealed under (`None` for bytes that are no sealed
/// turn of this format, or not encrypted).
pub fn sealed_key_id(sealed: &[u8]) -> Option<String> {
    codec::header(sealed).ok().and_then(|h| h.key_id)
}

/// Opens a sealed turn that must have been sealed at `at`, inflating at most `max_plain_len`
/// bytes. `at.prev_chain` empty skips the previous-chain check (a base pulled on its own, with
/// no turn before it to check against). A turn sealed under another key is `NotFound` naming
/// both key ids; a failed tag, or a turn sealed elsewhere, is `Integrity`.
pub fn open(key: &SealKey, at: Place<'_>, sealed: &[u8], max_plain_len: u64) -> Result<Value> {
    let turn_id = at.turn_id;
    let h = codec::header(sealed).map_err(|e| {
        Error::integrity(format!("turn {turn_id} is no sealed turn: {}", e.message))
    })?;
    match h.key_id.as_deref() {
        None => {
            return Err(Error::integrity(format!(
                "turn {turn_id} is not encrypted: a sealed turn always is"
            )))
        }
        Some(id) if id != key.id() => {
            return Err(Error::not_found(format!(
                "turn {turn_id} is sealed under {id}, not under this device's seal key {}",
                key.id()
            )))
        }
        Some(_) => {}
    }
    let plain =
        codec::decode_limited(sealed, &key.key, max_plain_len).map_err(|e| match e.kind {
            ErrorKind::LimitExceeded => e,
            _ => Error::integrity(format!("turn {turn_id} does not open: {}", e.message)),
        })?;
    let v = crate::json::parse(&plain)
        .map_err(|e| Error::integrity(format!("turn {turn_id} opens to no JSON: {}", e.message)))?;
    let same_save = v["save_id"].as_str() == Some(at.save_id.to_ascii_lowercase().as_str());
    let same_prev = at.prev_chain.is_empty()
        || v["prev_chain"].as_str() == Some(at.prev_chain.to_ascii_lowercase().as_str());
    if !same_save || v["turn_id"].as_i64() != Some(turn_id) || !same_prev {
        return Err(Error::integrity(format!(
            "the bytes given as turn {turn_id} of save {} after chain {} were sealed as turn {} \
             of save {} after chain {}",
            at.save_id, at.prev_chain, v["turn_id"], v["save_id"], v["prev_chain"]
        )));
    }
    match v {
        Value::Object(mut m) => match m.remove("state") {
            Some(state @ Value::Object(_)) => Ok(state),
            _ => Err(Error::integrity(format!(
                "turn {turn_id} opens to no state object"
            ))),
        },
        _ => Err(Error::integrity(format!(
            "turn {turn_id} opens to no object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "0e6f3b4e-4f7e-4f4b-9d55-2d3c1b5a6f70";
    const PREV: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes(&[b; KEY_LEN]).unwrap()
    }

    fn at<'a>(save_id: &'a str, turn_id: i64, prev_chain: &'a str) -> Place<'a> {
        Place {
            save_id,
            turn_id,
            prev_chain,
        }
    }

    #[test]
    fn a_sealed_state_opens_with_its_key_at_its_place_only() {
        let state = json!({"hp": 7, "npcs": [{"id": "a"}], "note": "secret words"});
        let sealed = seal(&key(1), at(SAVE, 5, PREV), &state).unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"secret words"));
        let open_at = |k: u8, p: Place<'_>, max: u64| open(&key(k), p, &sealed, max);
        assert_eq!(open_at(1, at(SAVE, 5, PREV), 1 << 20).unwrap(), state);
        // Upper-case ids are the same; an empty previous chain skips that check (a base).
        let upper = SAVE.to_uppercase();
        assert_eq!(
            open_at(1, at(&upper, 5, &PREV.to_uppercase()), 1 << 20).unwrap(),
            state
        );
        assert_eq!(open_at(1, at(SAVE, 5, ""), 1 << 20).unwrap(), state);
        assert_eq!(sealed_key_id(&sealed).as_deref(), Some(key(1).id()));

        let e = open_at(2, at(SAVE, 5, PREV), 1 << 20).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert!(e.message.contains(key(1).id()) && e.message.contains(key(2).id()));
        let other = "11111111-2222-3333-4444-555555555555";
        let other_prev = "bb00000000000000000000000000000000000000000000000000000000000000";
        for wrong in [
            at(SAVE, 6, PREV),
            at(other, 5, PREV),
            at(SAVE, 5, other_prev),
        ] {
            let e = open_at(1, wrong, 1 << 20).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
        }
        let e = open_at(1, at(SAVE, 5, PREV), 8).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded, "{e}");
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let p = at(SAVE, 1, PREV);
        let sealed = seal(&key(3), p, &json!({"a": [1, 2, 3]})).unwrap();
        for i in 0..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 0x40;
            assert!(open(&key(3), p, &b, 1 << 20).is_err(), "byte {i}");
            assert!(open(&key(3), p, &sealed[..i], 1 << 20).is_err(), "cut {i}");
        }
        // An unencrypted blob of the same format is no sealed turn.
        let plain = codec::encode(b"{}", &EncodeOptions::default()).unwrap();
        assert_eq!(
            open(&key(3), p, &plain, 1 << 20).unwrap_err().kind,
            ErrorKind::Integrity
        );
    }

    #[test]
    fn sealing_twice_gives_different_bytes_and_keys_parse_from_hex() {
        let s = json!({"x": 1});
        let p = at(SAVE, 1, PREV);
        assert_ne!(seal(&key(4), p, &s).unwrap(), seal(&key(4), p, &s).unwrap());
        let hex = SealKey::generate_hex();
        assert_eq!(hex.len(), 64);
        let k = SealKey::from_hex(&format!(" {hex}\n")).unwrap();
        assert!(k.id().starts_with("seal-"));
        assert_eq!(SealKey::from_hex(&hex).unwrap().id(), k.id());
        assert!(SealKey::from_hex("abcd").is_err());
        assert!(SealKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{k:?}").contains(&hex));
    }
}
