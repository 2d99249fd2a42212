//! Cloud save turns: what to store for each turn, and the exact,
//! checked rebuild of any stored turn.
//!
//! A save stores one row per turn: its [`Kind`](crate::save::Kind), a content-addressed blob,
//! the content hash of the turn's state and its chain hash ([`crate::chain::link`]). The blob is
//! - for a **base**, the state's RFC 8785 canonical bytes (so its blob hash equals its content
//!   hash);
//! - for a **diff**, the canonical bytes of the RFC 6902 patch from the previous turn's state;
//! - for a **sealed** turn, the opaque bytes a client encrypted itself: the server cannot read
//!   them, so their content hash is the SHA-256 of those bytes, and they are still chained.
//!
//! Blob hashes are SHA-256 of the *plaintext* blob; compression and encryption
//! ([`crate::codec`]) are the caller's business on both sides, so everything here sees
//! plaintext only.
//!
//! A save starts at an **origin** `(origin_turn, origin_prev_chain)`: its first stored turn is
//! `origin_turn + 1` and links to `origin_prev_chain` ([`crate::chain::GENESIS`] for a new save;
//! after retention pruning, the chain hash of the last pruned turn). The first stored turn must
//! be a base or sealed, since no state precedes it.
//!
//! Rebuilding turn `t` replays the blobs from the last base (or sealed turn) at or before `t`,
//! checking on the way that every blob matches its hash, that the chain verifies from the
//! origin, and that every replayed state hashes to what was recorded, so a rebuilt state is
//! byte for byte the one that was persisted, or the call fails with `Error::integrity`
//! (SQLSTATE XX001) naming the turn.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::budget::{Budget, Limits};
use crate::canonical::{canonical_bytes, sha256_hex, write_canonical};
use crate::chain::{self, Link};
use crate::diff::diff_value;
use crate::error::{Error, Result};
use crate::json::parse;
use crate::patch::apply_in_place;

/// What a stored turn's blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The whole state's canonical bytes.
    Base,
    /// The canonical bytes of the RFC 6902 patch from the previous turn's state.
    Diff,
    /// Client-sealed bytes the server cannot read.
    Sealed,
}

impl Kind {
    /// The name stored in the database: `base`, `diff` or `sealed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Diff => "diff",
            Kind::Sealed => "sealed",
        }
    }

    /// Whether a rebuild can start at this turn without any earlier one.
    pub fn is_restart(self) -> bool {
        matches!(self, Kind::Base | Kind::Sealed)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Kind> {
        match s {
            "base" => Ok(Kind::Base),
            "diff" => Ok(Kind::Diff),
            "sealed" => Ok(Kind::Sealed),
            _ => Err(Error::invalid(format!(
                "save turn kind {s:?} is not one of \"base\", \"diff\", \"sealed\""
            ))),
        }
    }
}

/// What to store for one turn, as computed by [`plan`] or [`plan_sealed`].
#[derive(Clone, PartialEq, Eq)]
pub struct Planned {
    /// Base, diff or sealed.
    pub kind: Kind,
    /// The plaintext blob to store (the caller compresses and encrypts it).
    pub blob: Vec<u8>,
    /// SHA-256 hex of `blob`: the blob's content address.
    pub blob_hash: String,
    /// SHA-256 hex of the state's canonical bytes (of the sealed bytes for a sealed turn).
    pub content_hash: String,
    /// `chain::link(prev_chain, turn_id, content_hash)`.
    pub chain_hash: String,
    /// Canonical size of the full state (the sealed size for a sealed turn), for quotas and stats.
    pub state_bytes: usize,
}

impl fmt::Debug for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Blobs are large and, for sealed turns, opaque: their length is what helps in a log.
        f.debug_struct("Planned")
            .field("kind", &self.kind)
            .field("blob_len", &self.blob.len())
            .field("blob_hash", &self.blob_hash)
            .field("content_hash", &self.content_hash)
            .field("chain_hash", &self.chain_hash)
            .field("state_bytes", &self.state_bytes)
            .finish()
    }
}

/// Plans the row of turn `turn_id` with state `state`, linked after `prev_chain`.
///
/// The turn is a base when `make_base` is set or there is no `prev_state` (the first turn after
/// the origin, or after a sealed turn); otherwise a diff from `prev_state`, which must be the
/// state of turn `turn_id - 1`. The state is canonicalized once: its bytes give the content
/// hash, the size and, for a base, the blob. Fails with `Error::invalid` if `state` holds a
/// number RFC 8785 cannot represent exactly.
pub fn plan(
    prev_state: Option<&Value>,
    prev_chain: &str,
    turn_id: i64,
    state: &Value,
    make_base: bool,
    budget: &mut Budget,
) -> Result<Planned> {
    let bytes = canonical_bytes(state)?;
    let content_hash = sha256_hex(&bytes);
    let state_bytes = bytes.len();
    let chain_hash = chain::link(prev_chain, turn_id, &content_hash);
    let (kind, blob, blob_hash) = match prev_state {
        Some(prev) if !make_base => {
            // The patch's values are copies of parts of `state`, which just canonicalized, so
            // this cannot fail on numbers; `?` keeps it honest anyway.
            let blob = canonical_bytes(&diff_value(prev, state, budget)?)?;
            let blob_hash = sha256_hex(&blob);
            (Kind::Diff, blob, blob_hash)
        }
        // A base blob is the canonical state itself: same bytes, same hash.
        _ => (Kind::Base, bytes, content_hash.clone()),
    };
    Ok(Planned {
        kind,
        blob,
        blob_hash,
        content_hash,
        chain_hash,
        state_bytes,
    })
}

/// Plans the row of a client-sealed turn: the blob is `sealed` as is, and its content hash is
/// SHA-256 of those bytes (the server cannot see the state inside).
pub fn plan_sealed(prev_chain: &str, turn_id: i64, sealed: &[u8]) -> Planned {
    let content_hash = sha256_hex(sealed);
    Planned {
        kind: Kind::Sealed,
        blob: sealed.to_vec(),
        blob_hash: content_hash.clone(),
        chain_hash: chain::link(prev_chain, turn_id, &content_hash),
        content_hash,
        state_bytes: sealed.len(),
    }
}

/// Whether turn `turn_id` of a save with origin `origin_turn` should be stored as a base.
///
/// True exactly for `turn_id = origin_turn + 1 + k * every` with `k ≥ 0`: the first turn after
/// the origin (which has no previous state to diff from) and every `every`-th turn after it, so
/// a rebuild replays at most `every - 1` diffs. With origin 0 and `every = 25` the bases are
/// turns 1, 26, 51, …; `every ≤ 1` makes every turn a base. Turns at or before the origin are
/// not turns of the save: false. Retention that moves the origin to just before a base keeps
/// the same cadence, since that moves it by a multiple of `every`.
pub fn base_every(turn_id: i64, origin_turn: i64, every: i64) -> bool {
    // i128: no overflow for any i64 arguments.
    let since = i128::from(turn_id) - i128::from(origin_turn) - 1;
    since >= 0 && since % i128::from(every.max(1)) == 0
}

/// One stored turn as read back from the database, with its blob already decoded to plaintext.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StoredTurn<'a> {
    pub turn_id: i64,
    pub kind: Kind,
    /// The decoded (decompressed, decrypted) plaintext blob.
    pub blob: &'a [u8],
    pub blob_hash: &'a str,
    pub content_hash: &'a str,
    pub chain_hash: &'a str,
}

impl StoredTurn<'_> {
    /// The turn's chain link, for [`chain::verify`].
    pub fn link(&self) -> Link {
        Link {
            turn_id: self.turn_id,
            content_hash: self.content_hash.to_owned(),
            chain_hash: self.chain_hash.to_owned(),
        }
    }
}

impl fmt::Debug for StoredTurn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTurn")
            .field("turn_id", &self.turn_id)
            .field("kind", &self.kind)
            .field("blob_len", &self.blob.len())
            .field("blob_hash", &self.blob_hash)
            .field("content_hash", &self.content_hash)
            .field("chain_hash", &self.chain_hash)
            .finish()
    }
}

/// A rebuilt turn: a readable state, or the bytes of a client-sealed turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Rebuilt {
    /// A base or diff turn, replayed and checked.
    State {
        turn_id: i64,
        state: Value,
        /// The state's canonical bytes: exactly the bytes that were persisted.
        bytes: Vec<u8>,
        content_hash: String,
    },
    /// A sealed turn: its opaque bytes, for the client to open.
    Sealed {
        turn_id: i64,
        bytes: Vec<u8>,
        /// SHA-256 hex of `bytes`.
        content_hash: String,
    },
}

impl Rebuilt {
    /// The rebuilt turn.
    pub fn turn_id(&self) -> i64 {
        match self {
            Rebuilt::State { turn_id, .. } | Rebuilt::Sealed { turn_id, .. } => *turn_id,
        }
    }

    /// The canonical state bytes, or the sealed bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Rebuilt::State { bytes, .. } | Rebuilt::Sealed { bytes, .. } => bytes,
        }
    }

    /// The turn's verified content hash.
    pub fn content_hash(&self) -> &str {
        match self {
            Rebuilt::State { content_hash, .. } | Rebuilt::Sealed { content_hash, .. } => {
                content_hash
            }
        }
    }

    /// The state, unless the turn is sealed.
    pub fn state(&self) -> Option<&Value> {
        match self {
            Rebuilt::State { state, .. } => Some(state),
            Rebuilt::Sealed { .. } => None,
        }
    }
}

/// Rebuilds turn `target` of a save and checks everything it relies on.
///
/// Arguments, so that the chain is verified from the origin while only the blobs from the last
/// base are read:
/// - `origin_prev_chain`, `origin_turn`: the save's origin (see the module docs);
/// - `earlier`: the chain links of the stored turns `origin_turn + 1` up to just before
///   `turns[0]`, in order (empty when `turns` starts right after the origin);
/// - `turns`: the stored turns with their decoded blobs, consecutive, from a base or sealed
///   turn at or before `target` (normally the last one: `max(turn_id) where kind in ('base',
///   'sealed') and turn_id <= target`) through at least `target`. Passing every turn from the
///   origin with `earlier` empty works too; blobs before the last base or sealed turn at or
///   before `target` are then not read.
///
/// Checks, each failure an `Error::integrity` naming the turn, in this order: the first stored
/// turn is `origin_turn + 1`; the chain (turn ids consecutive, chain hashes) verifies from
/// `origin_prev_chain` through `target`; then for each replayed turn, the blob matches its blob
/// hash, a base blob is exactly the state's canonical bytes, and a diff parses and applies to
/// the previous state; the state reached at `target` matches its recorded content hash (one
/// canonicalization per rebuild: intermediate states are not canonicalized, since intact blobs
/// replay deterministically; [`verify`] checks every turn's). Turns after `target` are not
/// looked at.
///
/// To rebuild without reading the chain from the origin, pass the turns from the last base
/// with `origin_turn` = that base's turn - 1 and `origin_prev_chain` = that turn's chain hash
/// (what `chain_at` gives), and `earlier` empty: the chain is then checked from the base.
///
/// Returns [`Rebuilt::Sealed`] when `target` is sealed; a diff right after a sealed turn has no
/// readable state to apply to, which is an integrity error. A `target` outside the stored range
/// is `Error::not_found`; `turns` that do not start at a base or sealed turn at or before
/// `target` (when `earlier` is not empty), or a `target` among `earlier`, is `Error::invalid`.
pub fn rebuild(
    origin_prev_chain: &str,
    origin_turn: i64,
    earlier: &[Link],
    turns: &[StoredTurn<'_>],
    target: i64,
) -> Result<Rebuilt> {
    let first_id = earlier
        .first()
        .map(|l| l.turn_id)
        .or_else(|| turns.first().map(|t| t.turn_id));
    let last_id = turns
        .last()
        .map(|t| t.turn_id)
        .or_else(|| earlier.last().map(|l| l.turn_id));
    let (Some(first_id), Some(last_id)) = (first_id, last_id) else {
        return Err(Error::not_found(format!(
            "turn {target} is not stored: the save holds no turns after its origin \
             (turn {origin_turn})"
        )));
    };
    if target <= origin_turn || target > last_id {
        return Err(Error::not_found(format!(
            "turn {target} is not stored: the save holds turns {} to {last_id}",
            origin_turn.saturating_add(1)
        )));
    }
    check_first_turn(origin_turn, first_id)?;

    // The chain through `target`: cheap (one small SHA-256 per turn), and it proves the ids
    // are consecutive, so positions below are turn ids minus the origin.
    let end = turns
        .iter()
        .position(|t| t.turn_id >= target)
        .map_or(turns.len(), |i| i + 1);
    let links: Vec<Link> = earlier
        .iter()
        .cloned()
        .chain(turns[..end].iter().map(StoredTurn::link))
        .collect();
    chain::verify(origin_prev_chain, &links)?;
    if links.last().map(|l| l.turn_id) != Some(target) {
        // Only reachable when `earlier` ends at or after `target` (ids are consecutive now).
        return Err(Error::invalid(format!(
            "turn {target} is among the chain-only links; pass the stored turns with their \
             blobs from the last base at or before turn {target}"
        )));
    }
    let target_at = end - 1;

    let Some(start) = turns[..=target_at]
        .iter()
        .rposition(|t| t.kind.is_restart())
    else {
        let t = &turns[0];
        return Err(if earlier.is_empty() {
            no_state_before(t, &Cursor::Empty, origin_turn)
        } else {
            Error::invalid(format!(
                "the stored turns passed start at turn {}, a diff; start them at the last base \
                 or sealed turn at or before turn {target}",
                t.turn_id
            ))
        });
    };

    let mut cursor = Cursor::Empty;
    let mut bytes = Vec::new();
    for t in &turns[start..=target_at] {
        // Every blob is checked against its content address on the way; the replayed state
        // only at the target (one canonicalization, not one per diff): intact blobs replay
        // deterministically, so a state that differs at the target is the only one that can
        // be returned wrong. `verify` checks every turn's state.
        let last = t.turn_id == target;
        step(&mut cursor, t, &mut bytes, origin_turn, last)?;
    }
    let t = &turns[target_at];
    Ok(match cursor {
        Cursor::State(state) => Rebuilt::State {
            turn_id: t.turn_id,
            state,
            bytes,
            content_hash: t.content_hash.to_owned(),
        },
        Cursor::Sealed | Cursor::Empty => Rebuilt::Sealed {
            turn_id: t.turn_id,
            bytes,
            content_hash: t.content_hash.to_owned(),
        },
    })
}

/// The outcome of [`verify`]: for a DBA, so problems are reported, never raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// True when every turn and the head check out.
    pub ok: bool,
    /// How many turns passed every check (all of them when `ok`).
    pub turns_checked: usize,
    /// The first turn that failed a check (a missing turn's id when one is missing).
    pub first_bad_turn: Option<i64>,
    /// Why that turn failed, for people.
    pub reason: Option<String>,
}

/// Checks a whole save in one pass: rebuilds every turn from the origin, bases resetting the
/// state, with the checks of [`rebuild`] at each turn, and reports the first failure instead
/// of raising it.
///
/// `turns` are all stored turns from `origin_turn + 1`, in order, with decoded blobs. `head`,
/// when given, is the save's recorded head `(turn_id, chain_hash)`: the last stored turn must
/// be that turn with that chain hash, which catches turns lost from the end (nothing else
/// can). At each turn the id is checked first, then its chain link, then its blob and state,
/// so the report names the earliest turn at fault. Every turn costs one canonicalization.
pub fn verify(
    origin_prev_chain: &str,
    origin_turn: i64,
    turns: &[StoredTurn<'_>],
    head: Option<(i64, &str)>,
) -> VerifyReport {
    let bad = |checked: usize, turn: i64, reason: String| VerifyReport {
        ok: false,
        turns_checked: checked,
        first_bad_turn: Some(turn),
        reason: Some(reason),
    };
    let links: Vec<Link> = turns.iter().map(StoredTurn::link).collect();
    let chain_break = chain::verify(origin_prev_chain, &links).err();

    let mut cursor = Cursor::Empty;
    let mut buf = Vec::new();
    let mut expected = origin_turn.checked_add(1);
    let mut prev_id = origin_turn;
    for (i, t) in turns.iter().enumerate() {
        match expected {
            Some(e) if e == t.turn_id => {}
            Some(e) if e < t.turn_id => {
                let reason = if i == 0 {
                    format!(
                        "turn {e} is missing: the save's origin is turn {origin_turn} but its \
                         first stored turn is {}",
                        t.turn_id
                    )
                } else {
                    format!(
                        "turn {e} is missing: turn {prev_id} is followed by turn {}",
                        t.turn_id
                    )
                };
                return bad(i, e, reason);
            }
            _ => {
                let reason = if i == 0 {
                    format!(
                        "turn {} is stored although the save's origin is turn {origin_turn}",
                        t.turn_id
                    )
                } else {
                    format!(
                        "turn {} is out of order: it follows turn {prev_id}",
                        t.turn_id
                    )
                };
                return bad(i, t.turn_id, reason);
            }
        }
        if let Some(b) = chain_break.as_ref().filter(|b| b.index == i) {
            return bad(i, t.turn_id, b.to_string());
        }
        if let Err(e) = step(&mut cursor, t, &mut buf, origin_turn, true) {
            return bad(i, t.turn_id, e.message);
        }
        prev_id = t.turn_id;
        expected = t.turn_id.checked_add(1);
    }

    let n = turns.len();
    if let Some((head_turn, head_chain)) = head {
        let last_chain = turns.last().map_or(origin_prev_chain, |t| t.chain_hash);
        if head_turn > prev_id {
            return bad(
                n,
                prev_id.saturating_add(1),
                format!(
                    "turns {} to {head_turn} are missing: the save's head is turn {head_turn} but \
                     its last stored turn is {prev_id}",
                    prev_id.saturating_add(1)
                ),
            );
        }
        if head_turn < prev_id {
            return bad(
                n,
                head_turn.saturating_add(1),
                format!(
                    "turns {} to {prev_id} are stored beyond the save's head (turn {head_turn})",
                    head_turn.saturating_add(1)
                ),
            );
        }
        if head_chain != last_chain {
            return bad(
                n,
                head_turn,
                format!(
                    "the save's head chain hash {head_chain} differs from the chain hash \
                     {last_chain} of its last turn {head_turn}: history was rewritten or the \
                     head is stale"
                ),
            );
        }
    }
    VerifyReport {
        ok: true,
        turns_checked: n,
        first_bad_turn: None,
        reason: None,
    }
}

/// Where a replay stands: nothing yet, a readable state, or past a sealed turn.
enum Cursor {
    Empty,
    State(Value),
    Sealed,
}

fn check_first_turn(origin_turn: i64, first_id: i64) -> Result<()> {
    if origin_turn.checked_add(1) != Some(first_id) {
        return Err(Error::integrity(format!(
            "the save's origin is turn {origin_turn}, so its first stored turn must be {}, but \
             it is turn {first_id}",
            origin_turn.saturating_add(1)
        )));
    }
    Ok(())
}

fn no_state_before(t: &StoredTurn<'_>, cursor: &Cursor, origin_turn: i64) -> Error {
    match cursor {
        Cursor::Sealed => Error::integrity(format!(
            "turn {} is a diff but turn {} is sealed: a diff needs the readable state before it",
            t.turn_id,
            t.turn_id.saturating_sub(1)
        )),
        _ => Error::integrity(format!(
            "turn {} is a diff but no base precedes it since the save's origin \
             (turn {origin_turn})",
            t.turn_id
        )),
    }
}

/// Replays one stored turn onto `cursor`. With `check_state`, leaves the turn's canonical (or
/// sealed) bytes in `bytes` and checks a diff's resulting state against the turn's content
/// hash; without it (a turn a rebuild passes through), a diff only has its blob checked and
/// `bytes` is left stale. Any mismatch is an integrity error naming the turn.
fn step(
    cursor: &mut Cursor,
    t: &StoredTurn<'_>,
    bytes: &mut Vec<u8>,
    origin_turn: i64,
    check_state: bool,
) -> Result<()> {
    let id = t.turn_id;
    let blob_sha = sha256_hex(t.blob);
    if blob_sha != t.blob_hash {
        return Err(Error::integrity(format!(
            "turn {id}: the {} blob does not match its blob hash (recorded {}, computed \
             {blob_sha}); the stored blob is corrupt",
            t.kind, t.blob_hash
        )));
    }
    match t.kind {
        Kind::Base | Kind::Sealed => {
            // A base blob is the canonical state, and a sealed blob is hashed as is, so the
            // hash just computed must be the content hash: no parse-and-canonicalize needed to
            // check it. (JCS output canonicalizes to itself, so the parsed base re-serializes
            // to these very bytes.)
            if blob_sha != t.content_hash {
                return Err(Error::integrity(format!(
                    "turn {id}: the {} blob is not the content recorded for the turn (content \
                     hash {}, blob hash {blob_sha})",
                    t.kind, t.content_hash
                )));
            }
            *cursor = if t.kind == Kind::Base {
                let state = parse(t.blob).map_err(|e| {
                    Error::integrity(format!("turn {id}: the base blob is not JSON: {e}"))
                })?;
                Cursor::State(state)
            } else {
                Cursor::Sealed
            };
            bytes.clear();
            bytes.extend_from_slice(t.blob);
        }
        Kind::Diff => {
            let Cursor::State(state) = cursor else {
                return Err(no_state_before(t, cursor, origin_turn));
            };
            let patch = parse(t.blob).map_err(|e| {
                Error::integrity(format!("turn {id}: the diff blob is not JSON: {e}"))
            })?;
            let mut replay = Budget::new(Limits::stored_history());
            apply_in_place(state, &patch, &mut replay).map_err(|e| {
                Error::integrity(format!(
                    "turn {id}: the diff does not apply to the state of turn {}: {e}",
                    id.saturating_sub(1)
                ))
            })?;
            if !check_state {
                return Ok(());
            }
            // A corrupt diff can still apply; only the content hash shows it produced another
            // state. This costs one canonicalization (measured in docs/performance.md); the
            // buffer is reused so it allocates once per verify.
            bytes.clear();
            write_canonical(state, bytes).map_err(|e| {
                Error::integrity(format!(
                    "turn {id}: the state after the diff cannot be canonicalized: {e}"
                ))
            })?;
            let got = sha256_hex(bytes);
            if got != t.content_hash {
                return Err(Error::integrity(format!(
                    "turn {id}: the diff yields a state with content hash {got}, but the turn \
                     records {}; the diff (or one since the last base) is corrupt",
                    t.content_hash
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::GENESIS;
    use crate::ErrorKind;
    use serde_json::json;

    /// Owned rows, as the extension would hold them after reading a save.
    struct Row {
        turn_id: i64,
        p: Planned,
    }

    fn view(rows: &[Row]) -> Vec<StoredTurn<'_>> {
        rows.iter()
            .map(|r| StoredTurn {
                turn_id: r.turn_id,
                kind: r.p.kind,
                blob: &r.p.blob,
                blob_hash: &r.p.blob_hash,
                content_hash: &r.p.content_hash,
                chain_hash: &r.p.chain_hash,
            })
            .collect()
    }

    fn small_save(n: i64, every: i64) -> (Vec<Row>, Vec<Value>) {
        let mut rows = Vec::new();
        let mut states = Vec::new();
        let mut prev: Option<Value> = None;
        let mut chain = GENESIS.to_owned();
        for t in 1..=n {
            let s = json!({"turn": t, "hp": 100 - t, "log": (1..=t).collect::<Vec<_>>()});
            let p = plan(
                prev.as_ref(),
                &chain,
                t,
                &s,
                base_every(t, 0, every),
                &mut Budget::default(),
            )
            .unwrap();
            chain.clone_from(&p.chain_hash);
            rows.push(Row { turn_id: t, p });
            prev = Some(s.clone());
            states.push(s);
        }
        (rows, states)
    }

    #[test]
    fn kind_names_round_trip() {
        for k in [Kind::Base, Kind::Diff, Kind::Sealed] {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(
            "Base".parse::<Kind>().unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn base_cadence() {
        let bases: Vec<i64> = (0..=60).filter(|&t| base_every(t, 0, 25)).collect();
        assert_eq!(bases, [1, 26, 51]);
        let bases: Vec<i64> = (95..=130).filter(|&t| base_every(t, 100, 25)).collect();
        assert_eq!(bases, [101, 126]);
        assert!((1..10).all(|t| base_every(t, 0, 1) && base_every(t, 0, 0)));
        assert!(!base_every(0, 0, 1) && !base_every(-5, 0, 1));
        assert!(base_every(i64::MIN + 1, i64::MIN, 7));
        assert!(base_every(i64::MAX, i64::MIN, i64::MAX));
        assert!(!base_every(i64::MAX, i64::MIN, 3));
        assert!(base_every(i64::MAX, i64::MIN, 2));
    }

    #[test]
    fn plan_kinds_and_hashes() {
        let a = json!({"x": 1, "y": [1, 2]});
        let b = json!({"x": 2, "y": [1, 2]});
        let p = plan(None, GENESIS, 1, &a, false, &mut Budget::default()).unwrap();
        assert_eq!(p.kind, Kind::Base);
        assert_eq!(p.blob, br#"{"x":1,"y":[1,2]}"#);
        assert_eq!(p.blob_hash, p.content_hash);
        assert_eq!(p.state_bytes, p.blob.len());
        assert_eq!(p.chain_hash, chain::link(GENESIS, 1, &p.content_hash));

        let q = plan(
            Some(&a),
            &p.chain_hash,
            2,
            &b,
            false,
            &mut Budget::default(),
        )
        .unwrap();
        assert_eq!(q.kind, Kind::Diff);
        assert_eq!(q.blob, br#"[{"op":"replace","path":"/x","value":2}]"#);
        assert_eq!(q.blob_hash, sha256_hex(&q.blob));
        assert_eq!(q.content_hash, crate::canonical::content_hash(&b).unwrap());
        assert_eq!(q.state_bytes, 17);
        assert_eq!(
            plan(Some(&a), &p.chain_hash, 2, &b, true, &mut Budget::default())
                .unwrap()
                .kind,
            Kind::Base
        );

        let bad = crate::json::parse_str(r#"{"x":1e400}"#).unwrap();
        assert_eq!(
            plan(None, GENESIS, 1, &bad, true, &mut Budget::default())
                .unwrap_err()
                .kind,
            ErrorKind::InvalidInput
        );

        let s = plan_sealed(GENESIS, 1, b"opaque");
        assert_eq!(s.kind, Kind::Sealed);
        assert_eq!(s.content_hash, sha256_hex(b"opaque"));
        assert_eq!(s.blob_hash, s.content_hash);
        assert_eq!(s.state_bytes, 6);
        assert!(format!("{s:?}").contains("blob_len: 6"));
    }

    #[test]
    fn rebuild_small_save_every_turn_both_ways() {
        let (rows, states) = small_save(12, 4);
        let turns = view(&rows);
        let links: Vec<Link> = turns.iter().map(StoredTurn::link).collect();
        for target in 1..=12i64 {
            let want = canonical_bytes(&states[target as usize - 1]).unwrap();
            // Everything from the origin.
            let r = rebuild(GENESIS, 0, &[], &turns, target).unwrap();
            assert_eq!((r.turn_id(), r.bytes()), (target, want.as_slice()));
            assert_eq!(r.content_hash(), sha256_hex(&want));
            assert!(r.state().is_some());
            // Chain-only links, then blobs from the last base.
            let base = (1..=target).rev().find(|&t| base_every(t, 0, 4)).unwrap();
            let split = (base - 1) as usize;
            let r2 = rebuild(GENESIS, 0, &links[..split], &turns[split..], target).unwrap();
            assert_eq!(r2, r);
        }
    }

    #[test]
    fn rebuild_range_and_argument_errors() {
        let (rows, _) = small_save(6, 3);
        let turns = view(&rows);
        let links: Vec<Link> = turns.iter().map(StoredTurn::link).collect();
        for target in [0, -1, 7] {
            let e = rebuild(GENESIS, 0, &[], &turns, target).unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound, "{target}: {e}");
        }
        assert_eq!(
            rebuild(GENESIS, 0, &[], &[], 1).unwrap_err().kind,
            ErrorKind::NotFound
        );
        // Blobs start at a diff (turn 5) while turn 4 is the base.
        let e = rebuild(GENESIS, 0, &links[..4], &turns[4..], 5).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        // Target among the chain-only links.
        let e = rebuild(GENESIS, 0, &links[..5], &turns[5..], 4).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        // The first stored turn does not follow the origin.
        let e = rebuild(GENESIS, 1, &[], &turns, 3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
        // A wrong origin chain hash breaks the first link.
        let e = rebuild(&"1".repeat(64), 0, &[], &turns, 3).unwrap_err();
        assert!(e.message.contains("(turn 1)"), "{e}");
    }

    #[test]
    fn diff_without_a_base_is_integrity() {
        let a = json!({"x": 1});
        let b = json!({"x": 2});
        let p = plan(Some(&a), GENESIS, 1, &b, false, &mut Budget::default()).unwrap();
        let rows = [Row { turn_id: 1, p }];
        let turns = view(&rows);
        let e = rebuild(GENESIS, 0, &[], &turns, 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Integrity);
        assert!(e.message.contains("no base precedes"), "{e}");
        let r = verify(GENESIS, 0, &turns, None);
        assert_eq!(r.first_bad_turn, Some(1));
        assert_eq!(r.turns_checked, 0);
    }

    #[test]
    fn verify_head_checks() {
        let (rows, _) = small_save(5, 2);
        let turns = view(&rows);
        let head = rows[4].p.chain_hash.as_str();
        assert!(verify(GENESIS, 0, &turns, Some((5, head))).ok);
        assert!(verify(GENESIS, 0, &turns, None).ok);
        let r = verify(GENESIS, 0, &turns[..4], Some((5, head)));
        assert_eq!(
            (r.ok, r.first_bad_turn, r.turns_checked),
            (false, Some(5), 4)
        );
        let r = verify(GENESIS, 0, &turns, Some((4, rows[3].p.chain_hash.as_str())));
        assert_eq!(r.first_bad_turn, Some(5));
        let r = verify(GENESIS, 0, &turns, Some((5, GENESIS)));
        assert_eq!(r.first_bad_turn, Some(5));
        assert!(verify(GENESIS, 0, &[], Some((0, GENESIS))).ok);
        assert_eq!(
            verify(GENESIS, 0, &[], Some((1, GENESIS))).first_bad_turn,
            Some(1)
        );
    }
}
