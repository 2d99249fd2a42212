//! The hash chain over audit-log rows (every admin action and sync decision is
//! written to the audit log, and an edited or deleted row must be detectable).
//!
//! Every row stores `prev_hash`, the `row_hash` of the row before it ([`GENESIS`] for the
//! first), and
//!
//! ```text
//! row_hash = hex(SHA-256("awf-audit-v1\n" || prev_hash || "\n" || content_hash))
//! content_hash = canonical::content_hash({"action", "actor", "at_us", "details", "device_id",
//!                                         "id", "save_id", "session_id"})
//! ```
//!
//! The content object has exactly those eight members: `id` and `at_us` (the row's timestamp as
//! microseconds since the Unix epoch, which is how PostgreSQL stores a `timestamptz`, so it is
//! exact and independent of `TimeZone` and `DateStyle`) are decimal strings so no value is
//! limited to JCS's 2^53; `session_id`, `save_id`, `device_id` are strings or null; `details` is
//! the JSON document. When `details` holds a number that RFC 8785 refuses (beyond 2^53, or more
//! precise than a double), the row is still hashed: such numbers are written as
//! `{"$number": "<exact text>"}` and the content object gains `"numbers": "exact"`, so the
//! fallback can never collide with a row hashed the normal way.
//!
//! [`Verifier`] walks rows in id order and names the first row that does not verify.

use crate::canonical::{canonical_bytes, canonical_number, sha256_hex};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

pub use crate::chain::GENESIS;

/// Domain tag and version, so an audit hash never equals a turn chain hash or a content hash.
const DOMAIN: &[u8] = b"awf-audit-v1\n";

/// The content of one audit row: everything but its two hashes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub id: i64,
    /// The row's `at`, in microseconds since 1970-01-01 00:00:00 UTC.
    pub at_us: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub session_id: Option<&'a str>,
    pub save_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub details: &'a Value,
}

/// The JSON object whose canonical bytes are hashed (see the module documentation).
pub fn content(e: &Entry<'_>) -> Value {
    let mut v = json!({
        "id": e.id.to_string(),
        "at_us": e.at_us.to_string(),
        "actor": e.actor,
        "action": e.action,
        "session_id": e.session_id,
        "save_id": e.save_id,
        "device_id": e.device_id,
        "details": e.details,
    });
    if canonical_bytes(e.details).is_err() {
        v["details"] = exact_numbers(e.details);
        v["numbers"] = json!("exact");
    }
    v
}

/// `details` with every number RFC 8785 refuses replaced by `{"$number": "<text>"}`.
fn exact_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) if canonical_number(n).is_err() => json!({"$number": n.to_string()}),
        Value::Array(items) => Value::Array(items.iter().map(exact_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), exact_numbers(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// SHA-256 hex of the canonical bytes of [`content`]. Never fails (see the fallback above).
pub fn content_hash(e: &Entry<'_>) -> String {
    let bytes = canonical_bytes(&content(e))
        .expect("audit content canonicalizes once refused numbers are replaced by text");
    sha256_hex(&bytes)
}

/// The row hash for a row whose content hashes to `content_hash`, after a row hashed `prev`.
pub fn link(prev: &str, content_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(content_hash.as_bytes());
    hex::encode(h.finalize())
}

/// The `row_hash` of entry `e` chained after `prev`: `link(prev, content_hash(e))`.
pub fn row_hash(prev: &str, e: &Entry<'_>) -> String {
    link(prev, &content_hash(e))
}

/// One stored row: its content and the hashes recorded with it (NULL when someone inserted the
/// row without going through the audit functions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stored<'a> {
    pub entry: Entry<'a>,
    pub prev_hash: Option<&'a str>,
    pub row_hash: Option<&'a str>,
}

/// The first row that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The id of the row.
    pub id: i64,
    /// The last row before it that verified, if any.
    pub last_good_id: Option<i64>,
    /// For people: what is wrong and what it usually means.
    pub reason: String,
    /// The value the chain expects there.
    pub expected: String,
    /// The value stored there (None for NULL).
    pub found: Option<String>,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit chain broken at id {}: {}; expected {}, found {}",
            self.id,
            self.reason,
            self.expected,
            self.found.as_deref().unwrap_or("NULL")
        )
    }
}

/// Checks rows one at a time, in increasing id order, so a log of any length verifies in
/// constant memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    prev: String,
    last_id: Option<i64>,
    checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier for a log from its first row.
    pub fn new() -> Self {
        Verifier {
            prev: GENESIS.to_owned(),
            last_id: None,
            checked: 0,
        }
    }

    /// A verifier that continues after row `last_id`, whose stored `row_hash` is `prev`.
    pub fn resume(prev: &str, last_id: i64) -> Self {
        Verifier {
            prev: prev.to_owned(),
            last_id: Some(last_id),
            checked: 0,
        }
    }

    /// Checks the next row. A row is broken when its id does not increase, when its
    /// `prev_hash` is not the previous row's `row_hash` (the row before it was deleted, or this
    /// row was inserted, or the column was edited), or when its `row_hash` is not [`row_hash`]
    /// of its content (the row was edited). After a break the verifier state is unchanged.
    pub fn check(&mut self, row: &Stored<'_>) -> Result<(), Break> {
        let e = &row.entry;
        let broken = |reason: &str, expected: String, found: Option<&str>| Break {
            id: e.id,
            last_good_id: self.last_id,
            reason: reason.to_owned(),
            expected,
            found: found.map(str::to_owned),
        };
        if let Some(last) = self.last_id {
            if e.id <= last {
                return Err(broken(
                    "ids do not increase: rows must be checked in id order",
                    format!("an id greater than {last}"),
                    Some(&e.id.to_string()),
                ));
            }
        }
        if row.prev_hash != Some(self.prev.as_str()) {
            let reason = match (row.prev_hash, self.last_id) {
                (None, _) => "prev_hash is missing: the row was not written by the audit functions",
                (Some(_), None) => {
                    "prev_hash is not the genesis hash: rows before this one were deleted, or it was inserted"
                }
                (Some(_), Some(_)) => {
                    "prev_hash is not the row_hash of the row before it: a row in between was deleted, or this row was inserted"
                }
            };
            return Err(broken(reason, self.prev.clone(), row.prev_hash));
        }
        let want = row_hash(&self.prev, e);
        if row.row_hash != Some(want.as_str()) {
            let reason = if row.row_hash.is_none() {
                "row_hash is missing: the row was not written by the audit functions"
            } else {
                "row_hash does not match the row's content: the row was edited"
            };
            return Err(broken(reason, want, row.row_hash));
        }
        self.prev = want;
        self.last_id = Some(e.id);
        self.checked += 1;
        Ok(())
    }

    /// Rows verified so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The `row_hash` of the last verified row ([`GENESIS`] or the resume point before any).
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// The id of the last verified row (or the resume point).
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        id: i64,
        at_us: i64,
        actor: String,
        action: String,
        save_id: Option<String>,
        details: Value,
        prev: Option<String>,
        hash: Option<String>,
    }

    impl Row {
        fn entry(&self) -> Entry<'_> {
            Entry {
                id: self.id,
                at_us: self.at_us,
                actor: &self.actor,
                action: &self.action,
                session_id: None,
                save_id: self.save_id.as_deref(),
                device_id: None,
                details: &self.details,
            }
        }
        fn stored(&self) -> Stored<'_> {
            Stored {
                entry: self.entry(),
                prev_hash: self.prev.as_deref(),
                row_hash: self.hash.as_deref(),
            }
        }
    }

    /// A chain of `n` rows with ids 10, 20, ... (gaps, as a sequence leaves after rollbacks).
    fn chain(n: i64) -> Vec<Row> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|i| {
                let mut r = Row {
                    id: i * 10,
                    at_us: 1_700_000_000_000_000 + i,
                    actor: "admin".into(),
                    action: format!("act{i}"),
                    save_id: (i % 2 == 0).then(|| "0e6c1a52-0000-4000-8000-000000000001".into()),
                    details: json!({"n": i, "label": "x"}),
                    prev: Some(prev.clone()),
                    hash: None,
                };
                let h = row_hash(&prev, &r.entry());
                r.hash = Some(h.clone());
                prev = h;
                r
            })
            .collect()
    }

    fn verify(rows: &[Row]) -> Result<u64, Break> {
        let mut v = Verifier::new();
        for r in rows {
            v.check(&r.stored())?;
        }
        Ok(v.checked())
    }

    #[test]
    fn link_is_sha256_of_the_documented_encoding() {
        let c = "cd".repeat(32);
        let expected = sha256_hex(format!("awf-audit-v1\n{GENESIS}\n{c}").as_bytes());
        assert_eq!(link(GENESIS, &c), expected);
        assert_ne!(link(GENESIS, &c), crate::chain::link(GENESIS, 0, &c));
    }

    #[test]
    fn content_is_the_documented_object() {
        let d = json!({"b": 1, "a": [true, null]});
        let e = Entry {
            id: 7,
            at_us: -5,
            actor: "bob",
            action: "x",
            session_id: Some("s"),
            save_id: None,
            device_id: Some("dev"),
            details: &d,
        };
        let text = crate::canonical::canonical_string(&content(&e)).unwrap();
        assert_eq!(
            text,
            r#"{"action":"x","actor":"bob","at_us":"-5","details":{"a":[true,null],"b":1},"device_id":"dev","id":"7","save_id":null,"session_id":"s"}"#
        );
        assert_eq!(content_hash(&e), sha256_hex(text.as_bytes()));
    }

    #[test]
    fn a_whole_chain_verifies() {
        let rows = chain(50);
        assert_eq!(verify(&rows), Ok(50));
        let mut v = Verifier::resume(rows[9].hash.as_deref().unwrap(), rows[9].id);
        for r in &rows[10..] {
            v.check(&r.stored()).unwrap();
        }
        assert_eq!(v.head(), rows[49].hash.as_deref().unwrap());
        assert_eq!(v.last_id(), Some(500));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn every_edit_is_named_at_its_row() {
        type Edit = fn(&mut Row);
        let edits: [(&str, Edit); 8] = [
            ("details", |r| r.details["n"] = json!(999)),
            ("action", |r| r.action = "other".into()),
            ("actor", |r| r.actor = "mallory".into()),
            ("at", |r| r.at_us += 1),
            ("save_id", |r| r.save_id = Some("forged".into())),
            ("id", |r| r.id += 1),
            ("row_hash", |r| r.hash = Some("0".repeat(64))),
            ("row_hash null", |r| r.hash = None),
        ];
        for (what, edit) in edits {
            let mut rows = chain(10);
            edit(&mut rows[4]);
            let b = verify(&rows).unwrap_err();
            assert_eq!(b.id, rows[4].id, "{what}: {b}");
            assert_eq!(b.last_good_id, Some(40), "{what}");
        }
    }

    #[test]
    fn deleted_rows_are_named_at_the_next_row() {
        let mut rows = chain(10);
        rows.remove(4);
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.id, b.last_good_id), (60, Some(40)), "{b}");
        assert!(b.reason.contains("deleted"), "{b}");

        let mut rows = chain(3);
        rows.remove(0);
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.id, b.last_good_id), (20, None), "{b}");
    }

    #[test]
    fn inserted_rows_are_named() {
        // Without hashes.
        let mut rows = chain(5);
        let mut forged = chain(1).remove(0);
        forged.id = 25;
        forged.prev = None;
        forged.hash = None;
        rows.insert(2, forged);
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.id, b.last_good_id), (25, Some(20)), "{b}");
        // With hashes computed correctly after row 20: the row after it no longer links.
        let mut rows = chain(5);
        let prev = rows[1].hash.clone().unwrap();
        let mut forged = chain(1).remove(0);
        forged.id = 25;
        forged.prev = Some(prev.clone());
        forged.hash = Some(row_hash(&prev, &forged.entry()));
        rows.insert(2, forged);
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.id, b.last_good_id), (30, Some(25)), "{b}");
        // Out of order.
        let mut rows = chain(5);
        rows.swap(1, 2);
        assert_eq!(verify(&rows).unwrap_err().id, 30);
    }

    #[test]
    fn details_with_numbers_jcs_refuses_still_hash() {
        let big: Value = serde_json::from_str(r#"{"seed": 18446744073709551615}"#).unwrap();
        let text: Value =
            serde_json::from_str(r#"{"seed": {"$number": "18446744073709551615"}}"#).unwrap();
        let e = |d| Entry {
            id: 1,
            at_us: 0,
            actor: "a",
            action: "b",
            session_id: None,
            save_id: None,
            device_id: None,
            details: d,
        };
        let h = content_hash(&e(&big));
        assert_eq!(h.len(), 64);
        assert_ne!(h, content_hash(&e(&text)), "the fallback is marked");
        let bigger: Value = serde_json::from_str(r#"{"seed": 18446744073709551614}"#).unwrap();
        assert_ne!(h, content_hash(&e(&bigger)));
    }
}
