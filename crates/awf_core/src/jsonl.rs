//! Checksummed JSON Lines: the export format of `awf.save_export`, built and verified here so
//! the extension, the CLI and the tests share one definition.
//!
//! # Lines
//!
//! Every line is the RFC 8785 canonical form of `{"record": R, "sha256": H}` followed by a
//! newline (`\n`), where `R` is a JSON object with a string `type` and `H` is the lowercase hex
//! SHA-256 of the canonical bytes of `R`. Canonical form sorts `record` before `sha256` and
//! adds no whitespace, so a line is exactly
//!
//! ```text
//! {"record":<canonical R>,"sha256":"<64 hex digits>"}
//! ```
//!
//! and a checker finds `R`'s bytes without any JSON serializer: they are the line without its
//! first [`LINE_PREFIX`]`.len()` (10) and last [`SUFFIX_LEN`] (77) bytes. Hashing that
//! substring is the whole per-line check.
//!
//! # Manifest
//!
//! The last line's record is the manifest:
//!
//! ```text
//! {"type": "manifest", "format": F, "version": 1, "records": N,
//!  "counts": {<type>: <records of that type>}, "archive_sha256": A, ...caller's fields}
//! ```
//!
//! `N` is the number of lines before the manifest, and `A` is the SHA-256 of the
//! concatenation of their `H` values in order, each as 64 lowercase hex digits followed by
//! `\n` (exactly the text `sha256sum` would hash for a file of one hash per line). So `A`
//! covers every record, their order and their number, while the manifest line's own `H` covers
//! the manifest. A changed, dropped, duplicated, reordered or truncated line fails the check.
//!
//! # Single-document form
//!
//! The same records as one canonical JSON document, `{"manifest": M, "records": [{"record":
//! R, "sha256": H}, ...]}`, with the same `H` and the same manifest `M` (so the same
//! `archive_sha256`). Checking it needs an RFC 8785 serializer to re-hash each `R`; the
//! JSON Lines form needs only SHA-256.
//!
//! The checksums detect corruption, truncation and careless edits; they are not a signature
//! (anyone can recompute them after a deliberate edit).

use crate::canonical::{canonical_bytes, canonical_string, sha256_hex};
use crate::error::{Error, Result};
use crate::json::{brief, parse, type_name, Map};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The version of this container format, written into every manifest.
pub const VERSION: i64 = 1;

/// What every line starts with.
pub const LINE_PREFIX: &str = "{\"record\":";

/// What separates the record from its hash at the end of a line.
pub const HASH_MEMBER: &str = ",\"sha256\":\"";

/// Bytes after the record in a line: [`HASH_MEMBER`], 64 hex digits, `"}`.
pub const SUFFIX_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// The `type` of the manifest record.
pub const MANIFEST_TYPE: &str = "manifest";

/// One record as written: its canonical text and the SHA-256 of that text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    record: String,
    sha256: String,
}

/// Accumulates records, then renders them as JSON Lines or as one document with the manifest.
#[derive(Debug, Clone)]
pub struct Builder {
    format: String,
    max_bytes: Option<usize>,
    bytes: usize,
    entries: Vec<Entry>,
    counts: BTreeMap<String, u64>,
}

impl Builder {
    /// A builder for records of format `format` (named in the manifest). `max_bytes` bounds the
    /// size of the rendered JSON Lines; [`Builder::push`] fails with `Error::limit` past it.
    pub fn new(format: &str, max_bytes: Option<usize>) -> Builder {
        Builder {
            format: format.to_owned(),
            max_bytes,
            bytes: 0,
            entries: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Adds a record: a JSON object with a string `type` other than `manifest`. Fails with
    /// `Error::invalid` for anything else or a number RFC 8785 cannot write exactly, and with
    /// `Error::limit` when the export would exceed its size limit.
    pub fn push(&mut self, record: &Value) -> Result<()> {
        let kind = record_type(record)?;
        if kind == MANIFEST_TYPE {
            return Err(Error::invalid(
                "a record of type \"manifest\" is written by the builder, not pushed",
            ));
        }
        let text = canonical_string(record)?;
        let line_bytes = LINE_PREFIX.len() + text.len() + SUFFIX_LEN + 1;
        if let Some(max) = self.max_bytes {
            if self.bytes + line_bytes > max {
                return Err(Error::limit(format!(
                    "the export would exceed {max} bytes (at record {} of type \"{kind}\")",
                    self.entries.len() + 1
                )));
            }
        }
        self.bytes += line_bytes;
        *self.counts.entry(kind.to_owned()).or_insert(0) += 1;
        let sha256 = sha256_hex(text.as_bytes());
        self.entries.push(Entry {
            record: text,
            sha256,
        });
        Ok(())
    }

    /// Number of records pushed (the manifest not included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `archive_sha256` of the records pushed so far.
    pub fn archive_sha256(&self) -> String {
        archive_sha256(self.entries.iter().map(|e| e.sha256.as_str()))
    }

    /// The manifest record: `extra`'s fields plus `type`, `format`, `version`, `records`,
    /// `counts` and `archive_sha256` (which win over fields of the same name in `extra`).
    pub fn manifest(&self, extra: Map<String, Value>) -> Value {
        let mut m = extra;
        m.insert("type".into(), json!(MANIFEST_TYPE));
        m.insert("format".into(), json!(self.format));
        m.insert("version".into(), json!(VERSION));
        m.insert("records".into(), json!(self.entries.len()));
        m.insert("counts".into(), json!(self.counts));
        m.insert("archive_sha256".into(), json!(self.archive_sha256()));
        Value::Object(m)
    }

    /// Renders the records and the manifest as JSON Lines (every line ends with `\n`).
    pub fn into_jsonl(self, extra: Map<String, Value>) -> Result<String> {
        let manifest = canonical_string(&self.manifest(extra))?;
        let mut out = String::with_capacity(self.bytes + manifest.len() + SUFFIX_LEN + 16);
        for e in &self.entries {
            push_line(&mut out, &e.record, &e.sha256);
        }
        let sha = sha256_hex(manifest.as_bytes());
        push_line(&mut out, &manifest, &sha);
        Ok(out)
    }

    /// Renders `{"manifest": M, "records": [{"record": R, "sha256": H}, ...]}` canonically.
    pub fn into_json(self, extra: Map<String, Value>) -> Result<String> {
        let manifest = canonical_string(&self.manifest(extra))?;
        let mut out = String::with_capacity(self.bytes + manifest.len() + 32);
        out.push_str("{\"manifest\":");
        out.push_str(&manifest);
        out.push_str(",\"records\":[");
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(LINE_PREFIX);
            out.push_str(&e.record);
            out.push_str(HASH_MEMBER);
            out.push_str(&e.sha256);
            out.push_str("\"}");
        }
        out.push_str("]}");
        Ok(out)
    }
}

fn push_line(out: &mut String, record: &str, sha256: &str) {
    out.push_str(LINE_PREFIX);
    out.push_str(record);
    out.push_str(HASH_MEMBER);
    out.push_str(sha256);
    out.push_str("\"}\n");
}

fn record_type(record: &Value) -> Result<&str> {
    let obj = record.as_object().ok_or_else(|| {
        Error::invalid(format!(
            "an export record must be a JSON object, got {}",
            type_name(record)
        ))
    })?;
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => Ok(t),
        Some(other) => Err(Error::invalid(format!(
            "an export record's \"type\" must be a non-empty string, got {}",
            brief(other)
        ))),
        None => Err(Error::invalid("an export record has no \"type\"")),
    }
}

/// The SHA-256 hex of the canonical bytes of a record: its `sha256` in a line.
pub fn record_sha256(record: &Value) -> Result<String> {
    Ok(sha256_hex(&canonical_bytes(record)?))
}

/// The line of a record (without its newline).
pub fn line(record: &Value) -> Result<String> {
    let text = canonical_string(record)?;
    let sha = sha256_hex(text.as_bytes());
    let mut out = String::with_capacity(text.len() + LINE_PREFIX.len() + SUFFIX_LEN + 1);
    push_line(&mut out, &text, &sha);
    out.pop();
    Ok(out)
}

/// SHA-256 hex of the hashes in order, each as written followed by `\n`: a manifest's
/// `archive_sha256`.
pub fn archive_sha256<I, S>(hashes: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut text = String::new();
    for h in hashes {
        text.push_str(h.as_ref());
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// Splits a line (without its newline) into the exact text of its record and the hash it
/// claims, checking only the frame; `n` (1-based) is for messages.
pub fn split_line(line: &str, n: usize) -> Result<(&str, &str)> {
    let bad = || {
        Error::invalid(format!(
            "line {n} is not an export line: expected {LINE_PREFIX}...{HASH_MEMBER}<64 hex>\"}}"
        ))
    };
    if line.len() < LINE_PREFIX.len() + SUFFIX_LEN || !line.starts_with(LINE_PREFIX) {
        return Err(bad());
    }
    let cut = line.len() - SUFFIX_LEN;
    // The suffix is ASCII when well formed; a cut inside a multi-byte character is not.
    let (Some(record), Some(suffix)) = (line.get(LINE_PREFIX.len()..cut), line.get(cut..)) else {
        return Err(bad());
    };
    let Some(hash) = suffix
        .strip_prefix(HASH_MEMBER)
        .and_then(|s| s.strip_suffix("\"}"))
    else {
        return Err(bad());
    };
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    Ok((record, hash))
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The records before the manifest, parsed, in order.
    pub records: Vec<Value>,
    /// The manifest record.
    pub manifest: Value,
    /// The manifest's `archive_sha256`, recomputed and matching.
    pub archive_sha256: String,
}

/// Checks a JSON Lines export: the frame, canonical form and hash of every line, and the
/// manifest (last line; record count, per-type counts and `archive_sha256`). Trailing blank
/// lines are ignored. A hash, count or archive mismatch is `Error::integrity`; text that is
/// not an export at all (empty, a line without the frame, a record that is not canonical
/// JSON) is `Error::invalid`. Messages name the line.
pub fn verify_jsonl(text: &str) -> Result<Verified> {
    // Trailing blank lines (a shell redirect of psql output adds one) carry nothing; a
    // truncated export fails below, because its last line is not the manifest.
    let body = text.trim_end_matches('\n');
    if body.is_empty() {
        return Err(Error::invalid("an export holds at least its manifest line"));
    }
    let mut records = Vec::new();
    let mut hashes = Vec::new();
    for (i, l) in body.split('\n').enumerate() {
        let n = i + 1;
        let (record, claimed) = split_line(l, n)?;
        let got = sha256_hex(record.as_bytes());
        if got != claimed {
            return Err(Error::integrity(format!(
                "line {n}: sha256 mismatch (the line says {claimed}, its record hashes {got})"
            )));
        }
        let value = parse(record.as_bytes())
            .map_err(|e| Error::invalid(format!("line {n}: {}", e.message)))?;
        if canonical_bytes(&value)? != record.as_bytes() {
            return Err(Error::invalid(format!(
                "line {n}: the record is not in RFC 8785 canonical form"
            )));
        }
        records.push(value);
        hashes.push(claimed.to_owned());
    }
    let manifest = records.pop().expect("split yields at least one line");
    hashes.pop();
    check_manifest(&records, &hashes, manifest)
}

/// Checks the single-document form: every record's hash (re-computed over its canonical
/// bytes) and the manifest, as [`verify_jsonl`] does.
pub fn verify_json(text: &str) -> Result<Verified> {
    let doc = parse(text.as_bytes())?;
    let Value::Object(mut doc) = doc else {
        return Err(Error::invalid("an export document must be a JSON object"));
    };
    if doc.len() != 2 {
        return Err(Error::invalid(
            "an export document has exactly two members, \"manifest\" and \"records\"",
        ));
    }
    let manifest = doc
        .remove("manifest")
        .ok_or_else(|| Error::invalid("the export document has no \"manifest\""))?;
    let Some(Value::Array(entries)) = doc.remove("records") else {
        return Err(Error::invalid(
            "the export document has no \"records\" array",
        ));
    };
    let mut records = Vec::with_capacity(entries.len());
    let mut hashes = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let n = i + 1;
        let Value::Object(mut e) = e else {
            return Err(Error::invalid(format!("record {n} is not an object")));
        };
        let (record, claimed) = (e.remove("record"), e.remove("sha256"));
        let (Some(record), Some(Value::String(claimed)), true) = (record, claimed, e.is_empty())
        else {
            return Err(Error::invalid(format!(
                "record {n} must be {{\"record\": ..., \"sha256\": \"<hex>\"}}"
            )));
        };
        let got = record_sha256(&record)?;
        if got != claimed {
            return Err(Error::integrity(format!(
                "record {n}: sha256 mismatch (the export says {claimed}, the record hashes {got})"
            )));
        }
        records.push(record);
        hashes.push(claimed);
    }
    check_manifest(&records, &hashes, manifest)
}

fn check_manifest(records: &[Value], hashes: &[String], manifest: Value) -> Result<Verified> {
    if record_type(&manifest).ok() != Some(MANIFEST_TYPE) {
        return Err(Error::integrity(
            "the last record is not the manifest (export truncated?)",
        ));
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let kind = record_type(r)
            .map_err(|e| Error::invalid(format!("record {}: {}", i + 1, e.message)))?;
        if kind == MANIFEST_TYPE {
            return Err(Error::integrity(format!(
                "record {} is a manifest, but only the last record may be one",
                i + 1
            )));
        }
        *counts.entry(kind.to_owned()).or_insert(0) += 1;
    }
    if manifest.get("records").and_then(Value::as_u64) != Some(records.len() as u64) {
        return Err(Error::integrity(format!(
            "the manifest counts {} records, the export holds {}",
            manifest
                .get("records")
                .map(brief)
                .unwrap_or_else(|| "none".into()),
            records.len()
        )));
    }
    if manifest.get("counts") != Some(&json!(counts)) {
        return Err(Error::integrity(format!(
            "the manifest's per-type counts {} differ from the export's {}",
            manifest
                .get("counts")
                .map(brief)
                .unwrap_or_else(|| "none".into()),
            json!(counts)
        )));
    }
    let archive = archive_sha256(hashes);
    match manifest.get("archive_sha256") {
        Some(Value::String(a)) if *a == archive => {}
        other => {
            return Err(Error::integrity(format!(
                "archive_sha256 mismatch: the manifest says {}, the records give {archive}",
                other.map(brief).unwrap_or_else(|| "none".into())
            )))
        }
    }
    Ok(Verified {
        records: records.to_vec(),
        manifest,
        archive_sha256: archive,
    })
}

/// Standard base64 (RFC 4648 §4, with padding): how export records carry bytes.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Builder {
        let mut b = Builder::new("awf.test", None);
        b.push(&json!({"type": "header", "name": "é €", "n": 1}))
            .unwrap();
        b.push(&json!({"type": "turn", "turn_id": 1, "content": {"b": [1, 2.5], "a": null}}))
            .unwrap();
        b.push(&json!({"type": "turn", "turn_id": 2, "content": "x\"\n"}))
            .unwrap();
        b
    }

    fn extra() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("save_id".into(), json!("s1"));
        m.insert("records".into(), json!("ignored"));
        m
    }

    #[test]
    fn lines_are_canonical_and_hash_their_record_substring() {
        let text = sample().into_jsonl(extra()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(text.ends_with('\n'));
        for (i, l) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(canonical_string(&v).unwrap(), *l, "line {i} is canonical");
            let (record, hash) = split_line(l, i + 1).unwrap();
            assert_eq!(record, canonical_string(&v["record"]).unwrap());
            assert_eq!(hash, record_sha256(&v["record"]).unwrap());
            assert_eq!(hash, v["sha256"].as_str().unwrap());
            assert_eq!(*l, line(&v["record"]).unwrap());
        }
        assert_eq!(
            lines[1],
            r#"{"record":{"content":{"a":null,"b":[1,2.5]},"turn_id":1,"type":"turn"},"sha256":""#
                .to_owned()
                + &sha256_hex(br#"{"content":{"a":null,"b":[1,2.5]},"turn_id":1,"type":"turn"}"#)
                + "\"}"
        );
    }

    #[test]
    fn the_manifest_counts_and_chains_the_line_hashes() {
        let text = sample().into_jsonl(extra()).unwrap();
        let v = verify_jsonl(&text).unwrap();
        assert_eq!(v.records.len(), 3);
        let m = &v.manifest;
        assert_eq!(m["type"], json!("manifest"));
        assert_eq!(m["format"], json!("awf.test"));
        assert_eq!(m["version"], json!(1));
        assert_eq!(m["records"], json!(3), "builder fields win over extra ones");
        assert_eq!(m["save_id"], json!("s1"));
        assert_eq!(m["counts"], json!({"header": 1, "turn": 2}));
        let hashes: String = text
            .lines()
            .take(3)
            .map(|l| format!("{}\n", &l[l.len() - 66..l.len() - 2]))
            .collect();
        assert_eq!(m["archive_sha256"], json!(sha256_hex(hashes.as_bytes())));
        assert_eq!(v.archive_sha256, sha256_hex(hashes.as_bytes()));
    }

    #[test]
    fn the_document_form_has_the_same_hashes() {
        let jsonl = verify_jsonl(&sample().into_jsonl(extra()).unwrap()).unwrap();
        let text = sample().into_json(extra()).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_string(&doc).unwrap(), text, "emitted canonically");
        let v = verify_json(&text).unwrap();
        assert_eq!(v, jsonl);
        assert_eq!(doc["manifest"], jsonl.manifest);
    }

    #[test]
    fn tampering_is_detected() {
        let text = sample().into_jsonl(extra()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();

        let edited = text.replacen("\"turn_id\":2", "\"turn_id\":3", 1);
        let e = verify_jsonl(&edited).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Integrity);
        assert!(e.message.contains("line 3"), "{}", e.message);

        // A re-hashed edit still breaks the archive checksum.
        let rehashed = line(&json!({"type": "turn", "turn_id": 3, "content": "x\"\n"})).unwrap();
        let e = verify_jsonl(&join(&[lines[0], lines[1], &rehashed, lines[3]])).unwrap_err();
        assert!(e.message.contains("archive_sha256"), "{}", e.message);

        let e = verify_jsonl(&join(&[lines[0], lines[2], lines[1], lines[3]])).unwrap_err();
        assert!(e.message.contains("archive_sha256"), "{}", e.message);
        let e = verify_jsonl(&join(&[lines[0], lines[1], lines[3]])).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Integrity, "{}", e.message);
        let e = verify_jsonl(&join(&[lines[0], lines[1], lines[2]])).unwrap_err();
        assert!(e.message.contains("manifest"), "{}", e.message);
        assert!(
            verify_jsonl(&text[..text.len() - 1]).is_ok(),
            "newlines separate lines"
        );
        assert!(verify_jsonl(&format!("{text}\n")).is_ok(), "psql adds one");
        assert!(verify_jsonl(&text[..text.len() - 2]).is_err(), "truncated");
        assert!(verify_jsonl(&text.replacen(" €", "\\u0020€", 1)).is_err());
        assert!(verify_jsonl("{\"record\":{}}\n").is_err());
        assert!(verify_jsonl("").is_err());

        let doc = sample().into_json(extra()).unwrap();
        let e = verify_json(&doc.replacen("2.5", "2.25", 1)).unwrap_err();
        assert!(e.message.contains("record 2"), "{}", e.message);
        assert!(verify_json("{\"manifest\":{},\"records\":[]}").is_err());
    }

    #[test]
    fn a_line_that_is_not_canonical_is_refused() {
        let record = r#"{"type":"x","a":1}"#;
        let text = format!(
            "{LINE_PREFIX}{record}{HASH_MEMBER}{}\"}}\n",
            sha256_hex(record.as_bytes())
        );
        let e = verify_jsonl(&text).unwrap_err();
        assert!(e.message.contains("canonical"), "{}", e.message);
    }

    #[test]
    fn push_checks_records_and_the_size_limit() {
        let mut b = Builder::new("awf.test", Some(200));
        assert!(b.push(&json!([1])).is_err());
        assert!(b.push(&json!({"no_type": 1})).is_err());
        assert!(b.push(&json!({"type": "manifest"})).is_err());
        let huge: Value = serde_json::from_str(r#"{"type": "t", "n": 1e400}"#).unwrap();
        assert!(b.push(&huge).is_err());
        b.push(&json!({"type": "t", "s": "x".repeat(50)})).unwrap();
        let e = b
            .push(&json!({"type": "t", "s": "x".repeat(100)}))
            .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::LimitExceeded);
        assert_eq!(b.len(), 1);
        let empty = Builder::new("awf.test", None);
        assert!(empty.is_empty());
        let v = verify_jsonl(&empty.into_jsonl(Map::new()).unwrap()).unwrap();
        assert_eq!(v.manifest["records"], json!(0));
        assert_eq!(v.archive_sha256, sha256_hex(b""));
    }

    #[test]
    fn split_line_refuses_a_broken_frame() {
        let good = line(&json!({"type": "t"})).unwrap();
        assert!(split_line(&good, 1).is_ok());
        assert!(split_line(&good[1..], 1).is_err());
        assert!(split_line(&good.replace("\"sha256\"", "\"sha257\""), 1).is_err());
        assert!(split_line(&good.to_uppercase(), 1).is_err());
        assert!(split_line("{\"record\":", 1).is_err());
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
        assert_eq!(base64_encode(&[0xde, 0xad, 0xbe, 0xef]), "3q2+7w==");
        assert_eq!(base64_encode(&[0xff, 0xff, 0xfe]), "///+");
    }
}
