//! The hash chain over turns.
//!
//! The chain hash of turn n covers the chain hash of turn n-1, the turn id and the content
//! hash of turn n, so the head hash alone commits to the whole history: editing, dropping,
//! inserting or reordering any earlier turn changes every later chain hash.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The `prev` of the first link of a chain: 64 zeros, so the first link needs no special case.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain tag and version, so a chain hash can never collide with another SHA-256 use in the
/// system (content hashes, blob ids) and a future encoding can coexist with this one.
const DOMAIN: &[u8] = b"awf-chain-v1\n";

/// Chain hash of one turn: SHA-256 hex over `awf-chain-v1\n{prev}\n{turn_id}\n{content_hash}`.
///
/// Hashes are hex and the turn id is decimal, so none of the three fields can contain the
/// `\n` separator and the encoding is unambiguous ([`verify`] refuses non-hex hashes).
pub fn link(prev_chain_hex: &str, turn_id: i64, content_hash_hex: &str) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev_chain_hex.as_bytes());
    h.update(b"\n");
    h.update(turn_id.to_string().as_bytes());
    h.update(b"\n");
    h.update(content_hash_hex.as_bytes());
    hex::encode(h.finalize())
}

/// One recorded turn of a chain: its id, the content hash of its state, and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    pub turn_id: i64,
    pub content_hash: String,
    pub chain_hash: String,
}

/// The first link that does not verify, with what was expected there and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// Position in the slice given to [`verify`].
    pub index: usize,
    /// The turn id recorded at that position.
    pub turn_id: i64,
    /// The expected value (a chain hash, or the expected turn id in decimal).
    pub expected: String,
    /// The value recorded there.
    pub found: String,
    /// Why the link is broken, for people.
    pub reason: String,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hash chain broken at link {} (turn {}): {}; expected {}, found {}",
            self.index, self.turn_id, self.reason, self.expected, self.found
        )
    }
}

impl std::error::Error for BrokenLink {}

/// A broken chain means stored history no longer matches its hashes: an integrity failure.
impl From<BrokenLink> for Error {
    fn from(b: BrokenLink) -> Error {
        Error::integrity(b.to_string())
    }
}

fn is_hash_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks `links` in order, starting from `start_prev` (usually [`GENESIS`], or the chain hash
/// just before a verified suffix), and names the first broken link.
///
/// A link is broken when its hashes are not 64 lowercase hex digits, when its turn id is not
/// the previous link's plus one (so gaps, duplicates and reordering are caught even before
/// the hashes are looked at), or when its chain hash is not [`link`] of the previous chain
/// hash, its turn id and its content hash. The first link's turn id is free, because a
/// suffix of a chain verifies from the chain hash before it.
pub fn verify(start_prev: &str, links: &[Link]) -> std::result::Result<(), BrokenLink> {
    let mut prev = start_prev;
    let mut prev_turn: Option<i64> = None;
    for (index, l) in links.iter().enumerate() {
        let broken = |expected: String, found: String, reason: &str| BrokenLink {
            index,
            turn_id: l.turn_id,
            expected,
            found,
            reason: reason.to_owned(),
        };
        if let Some(p) = prev_turn {
            let want = p.checked_add(1);
            if want != Some(l.turn_id) {
                return Err(broken(
                    want.map_or_else(|| "none (turn id overflow)".into(), |t| t.to_string()),
                    l.turn_id.to_string(),
                    "turn id does not follow the previous turn by one",
                ));
            }
        }
        if !is_hash_hex(&l.content_hash) {
            return Err(broken(
                "64 lowercase hex digits".into(),
                l.content_hash.clone(),
                "content hash is malformed",
            ));
        }
        let want = link(prev, l.turn_id, &l.content_hash);
        if l.chain_hash != want {
            return Err(broken(
                want,
                l.chain_hash.clone(),
                "chain hash does not match the previous chain hash, turn id and content hash",
            ));
        }
        prev = &l.chain_hash;
        prev_turn = Some(l.turn_id);
    }
    Ok(())
}

/// Builds the links for `(turn_id, content_hash)` pairs in order, starting from `start_prev`.
pub fn build<S: AsRef<str>>(start_prev: &str, turns: &[(i64, S)]) -> Vec<Link> {
    let mut prev = start_prev.to_owned();
    turns
        .iter()
        .map(|(turn_id, content_hash)| {
            let content_hash = content_hash.as_ref();
            let chain_hash = link(&prev, *turn_id, content_hash);
            prev.clone_from(&chain_hash);
            Link {
                turn_id: *turn_id,
                content_hash: content_hash.to_owned(),
                chain_hash,
            }
        })
        .collect()
}

/// Chain hash of the last link, or `start_prev` for an empty chain: what to store as the head.
pub fn head<'a>(start_prev: &'a str, links: &'a [Link]) -> &'a str {
    links.last().map_or(start_prev, |l| l.chain_hash.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::sha256_hex;

    // `link` streams its fields into the hasher instead of building the string; this pins
    // that the result is exactly the documented encoding.
    #[test]
    fn link_is_sha256_of_the_documented_encoding() {
        let c = "ab".repeat(32);
        let expected = sha256_hex(format!("awf-chain-v1\n{GENESIS}\n7\n{c}").as_bytes());
        assert_eq!(link(GENESIS, 7, &c), expected);
        assert_eq!(GENESIS.len(), 64);
        assert_ne!(link(GENESIS, 7, &c), link(GENESIS, 70, &c));
        assert_ne!(link(GENESIS, -1, &c), link(GENESIS, 1, &c));
    }
}
