//! The session bundle: the self-checking file `awf.session_export` writes and
//! `awf.session_import` reads.
//!
//! The SQL side gathers the rows; this module owns the format: it builds the bundle, redacts
//! it, checksums it, enforces the size limit, and verifies a bundle before anything is
//! imported from it.
//!
//! # Shape (version 1)
//!
//! ```text
//! {
//!   "format":   "awf.session-bundle",
//!   "version":  1,
//!   "sections": {
//!     "session":   { ...the session row... },
//!     "state":     { ...the state document... },
//!     "turns":     [ ...turn rows... ],
//!     "wal":       [ ...WAL rows... ],
//!     "snapshots": [ ...snapshot rows... ],
//!     "metadata":  { ...exported_at, source database, extension version... }
//!   },
//!   "checksums": {
//!     "sections": { "session": "<hex>", "state": "<hex>", ... one per section },
//!     "bundle":   "<hex>"
//!   },
//!   "redaction": { "applied": true, "report": { "counts": {...}, "findings": [...], "total": n } }
//! }
//! ```
//!
//! `redaction.report` is `null` exactly when `redaction.applied` is false. Report pointers are
//! relative to the bundle root (`/sections/state/player/email`), so each one addresses the
//! replaced value in the bundle as written.
//!
//! # Checksums
//!
//! Every hash is SHA-256, lowercase hex, over RFC 8785 canonical bytes ([`crate::canonical`]):
//! - `checksums.sections.<name>` is the content hash of that section's value;
//! - `checksums.bundle` is the content hash of the bundle with `sections` and
//!   `checksums.bundle` removed, i.e. of
//!   `{"checksums":{"sections":{...}},"format":...,"redaction":{...},"version":1}`.
//!   The section checksums stand in for the sections, so the large content is hashed once,
//!   while the format, the version, every section checksum and the redaction report are
//!   covered: a tampered report is detected. (By hand: `jq 'del(.sections, .checksums.bundle)'`,
//!   canonicalize, `sha256sum`.)
//!
//! Canonical bytes make the checksums independent of how the bundle was stored in between:
//! jsonb reorders keys and rewrites `1.50e1` as `15.0`, neither of which changes them.
//!
//! The checksums detect corruption, truncation and edits made without recomputing them; they
//! are not a signature, since anyone can recompute them after a deliberate edit.
//!
//! # Strictness
//!
//! [`verify`] refuses, with `Error::invalid` and a message that names what failed, anything
//! that is not exactly a version-1 bundle: a missing or unknown section, an unknown top-level
//! field, a section of the wrong JSON type, any checksum mismatch. Nothing is silently dropped
//! or ignored, because an import that quietly skipped part of a bundle would look successful.

use crate::budget::{Budget, Limits};
use crate::canonical::{canonical_bytes_within, content_hash_within, sha256_hex};
use crate::error::{Error, Result};
use crate::json::{brief, type_name, Map};
use crate::redact::{redact, RedactOptions, RedactionReport};
use serde_json::{json, Value};
use std::fmt;

/// The value of the `format` field of every bundle.
pub const FORMAT: &str = "awf.session-bundle";

/// The bundle format version this code writes and the newest it reads.
pub const VERSION: i64 = 1;

/// The sections of a bundle, in the order they are documented and checked.
pub const SECTIONS: [&str; 6] = ["session", "state", "turns", "wal", "snapshots", "metadata"];

/// The top-level fields of a version-1 bundle.
const TOP_LEVEL: [&str; 5] = ["format", "version", "sections", "checksums", "redaction"];

const MIB: f64 = 1024.0 * 1024.0;

/// The rows of one session, as gathered by the SQL side.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInput {
    /// The `awf.sessions` row as an object.
    pub session: Value,
    /// The state document (an object).
    pub state: Value,
    /// The `awf.turns` rows.
    pub turns: Vec<Value>,
    /// The `awf.turn_wal` rows.
    pub wal: Vec<Value>,
    /// The `awf.snapshots` rows.
    pub snapshots: Vec<Value>,
    /// Provenance supplied by the caller (exported_at, source database, extension version).
    pub metadata: Value,
}

/// How to export: whether and how to redact, and the size limit.
#[derive(Clone)]
pub struct ExportOptions {
    /// Replace secrets and PII in every section (on by default at the SQL level).
    pub redact: bool,
    /// Salt of the redaction tags; see [`crate::redact`].
    pub salt: String,
    /// Largest canonical size of the finished bundle, in bytes; `None` means no limit.
    pub max_bytes: Option<usize>,
}

// The salt keeps redaction tags from being a dictionary lookup, so it stays out of logs.
impl fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportOptions")
            .field("redact", &self.redact)
            .field("salt", &"<hidden>")
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Builds a bundle from `input`: redacts (if asked), checksums, and checks the size.
///
/// Returns `Error::invalid` if a section has the wrong JSON type or holds a number RFC 8785
/// cannot canonicalize exactly, and `Error::limit` if the bundle's canonical size exceeds
/// `opts.max_bytes`. Nothing partial is returned on error. Deterministic: the same input and
/// options give the same canonical bytes. Redaction and hashing charge `budget`.
pub fn build(input: BundleInput, opts: &ExportOptions, budget: &mut Budget) -> Result<Value> {
    let BundleInput {
        session,
        state,
        turns,
        wal,
        snapshots,
        metadata,
    } = input;
    let mut sections = Map::new();
    sections.insert("session".into(), session);
    sections.insert("state".into(), state);
    sections.insert("turns".into(), Value::Array(turns));
    sections.insert("wal".into(), Value::Array(wal));
    sections.insert("snapshots".into(), Value::Array(snapshots));
    sections.insert("metadata".into(), metadata);
    for name in SECTIONS {
        check_section_type(name, &sections[name])?;
    }

    // Redaction runs once over all sections (one report, one tag space per export) and before
    // hashing, so the checksums describe exactly the bytes that leave the database.
    let redaction = if opts.redact {
        let redacted = redact(
            &Value::Object(sections),
            &RedactOptions::new(opts.salt.as_str()),
            budget,
        )?;
        sections = match redacted.document {
            Value::Object(m) => m,
            _ => return Err(Error::invalid("redaction changed the sections object")),
        };
        json!({"applied": true, "report": report_value(redacted.report)?})
    } else {
        json!({"applied": false, "report": null})
    };

    let mut section_sums = Map::new();
    let mut sections_len = 0usize;
    for name in SECTIONS {
        let bytes = section_bytes(name, &sections[name], budget)?;
        sections_len += bytes.len();
        section_sums.insert(name.into(), Value::String(sha256_hex(&bytes)));
    }

    let mut bundle = Map::new();
    bundle.insert("format".into(), Value::String(FORMAT.into()));
    bundle.insert("version".into(), json!(VERSION));
    bundle.insert("checksums".into(), json!({ "sections": section_sums }));
    bundle.insert("redaction".into(), redaction);
    let mut bundle = Value::Object(bundle);
    let bundle_sum = content_hash_within(&bundle, budget)?;

    // The canonical size without serializing the sections a second time: JCS writes each
    // member independently, so the size with the sections in place is the size with `null`
    // in their stead, minus those nulls, plus the section lengths measured above.
    let mut null_sections = Map::new();
    for name in SECTIONS {
        null_sections.insert(name.into(), Value::Null);
    }
    bundle["sections"] = Value::Object(null_sections);
    bundle["checksums"]["bundle"] = Value::String(bundle_sum);
    let size = canonical_bytes_within(&bundle, budget)?.len() - SECTIONS.len() * "null".len()
        + sections_len;
    if let Some(max) = opts.max_bytes {
        if size > max {
            return Err(too_large(size, max));
        }
    }
    bundle["sections"] = Value::Object(sections);
    Ok(bundle)
}

/// Recomputes the bundle checksum of `bundle` from its fields, ignoring the stored one.
///
/// This is the content hash of the bundle with `sections` and `checksums.bundle` removed (see
/// the module documentation). `bundle` must be a JSON object.
pub fn bundle_checksum(bundle: &Value) -> Result<String> {
    manifest_checksum(bundle, &mut Budget::new(Limits::stored_history()))
}

/// [`bundle_checksum`] charging `budget` (the redaction report is as long as the exporter
/// made it).
fn manifest_checksum(bundle: &Value, budget: &mut Budget) -> Result<String> {
    let obj = bundle
        .as_object()
        .ok_or_else(|| Error::invalid(format!("not a bundle: {}", describe_non_object(bundle))))?;
    // Copy everything but the sections, which are the bulk and are covered by their checksums.
    let mut manifest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "sections")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::Object(sums)) = manifest.get_mut("checksums") {
        sums.remove("bundle");
    }
    content_hash_within(&Value::Object(manifest), budget)
}

/// A bundle that passed [`verify`]: every section present, well typed and matching its
/// checksum. Borrows from the verified value, so nothing is copied.
#[derive(Debug, Clone)]
pub struct VerifiedBundle<'a> {
    /// The six sections, as in the bundle.
    pub sections: &'a Map<String, Value>,
    /// The bundle checksum (`checksums.bundle`), verified.
    pub bundle_checksum: String,
    /// Whether the exporter redacted the sections.
    pub redacted: bool,
    /// The redaction report (`counts`, `findings`, `total`) when `redacted`.
    pub redaction_report: Option<&'a Map<String, Value>>,
    session: &'a Map<String, Value>,
    state: &'a Map<String, Value>,
    turns: &'a [Value],
    wal: &'a [Value],
    snapshots: &'a [Value],
    metadata: &'a Map<String, Value>,
}

impl<'a> VerifiedBundle<'a> {
    /// The session row.
    pub fn session(&self) -> &'a Map<String, Value> {
        self.session
    }
    /// The state document.
    pub fn state(&self) -> &'a Map<String, Value> {
        self.state
    }
    /// The turn rows, in the order the exporter wrote them.
    pub fn turns(&self) -> &'a [Value] {
        self.turns
    }
    /// The WAL rows, in the order the exporter wrote them.
    pub fn wal(&self) -> &'a [Value] {
        self.wal
    }
    /// The snapshot rows, in the order the exporter wrote them.
    pub fn snapshots(&self) -> &'a [Value] {
        self.snapshots
    }
    /// The exporter's metadata.
    pub fn metadata(&self) -> &'a Map<String, Value> {
        self.metadata
    }
}

/// Checks that `bundle` is an intact version-1 session bundle; see the module documentation.
///
/// Every failure is `Error::invalid` with a message that says what failed, e.g.
/// `section "turns" checksum mismatch: expected …, computed …` or
/// `missing section "wal" (bundle truncated?)`. Hashing charges `budget` (over it is
/// `Error::limit`).
pub fn verify<'a>(bundle: &'a Value, budget: &mut Budget) -> Result<VerifiedBundle<'a>> {
    let obj = bundle
        .as_object()
        .ok_or_else(|| Error::invalid(format!("not a bundle: {}", describe_non_object(bundle))))?;

    match obj.get("format") {
        None => {
            return Err(Error::invalid(format!(
                "not a bundle: no \"format\" field (expected \"{FORMAT}\")"
            )))
        }
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "not a bundle: format is {}, expected \"{FORMAT}\"",
                brief(other)
            )))
        }
    }
    check_version(obj.get("version"))?;
    if let Some(key) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "unknown top-level field \"{key}\" in a version {VERSION} bundle (expected {})",
            TOP_LEVEL.join(", ")
        )));
    }

    let sections = match obj.get("sections") {
        None => return Err(Error::invalid("missing \"sections\" (bundle truncated?)")),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Error::invalid(format!(
                "\"sections\" must be a JSON object, got {}",
                type_name(other)
            )))
        }
    };
    for name in SECTIONS {
        let value = sections.get(name).ok_or_else(|| {
            Error::invalid(format!("missing section \"{name}\" (bundle truncated?)"))
        })?;
        check_section_type(name, value)?;
    }
    if let Some(key) = sections.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "unknown section \"{key}\" (a version {VERSION} bundle has {})",
            SECTIONS.join(", ")
        )));
    }

    let checksums = expect_object(obj.get("checksums"), "checksums")?;
    let section_sums = expect_object(checksums.get("sections"), "checksums.sections")?;
    let stored_bundle_sum = match checksums.get("bundle") {
        None => return Err(Error::invalid("missing \"checksums.bundle\"")),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Error::invalid(format!(
                "\"checksums.bundle\" must be a string, got {}",
                type_name(other)
            )))
        }
    };
    if let Some(key) = checksums
        .keys()
        .find(|k| !matches!(k.as_str(), "sections" | "bundle"))
    {
        return Err(Error::invalid(format!(
            "unknown field \"{key}\" in \"checksums\" (expected sections, bundle)"
        )));
    }
    if let Some(key) = section_sums
        .keys()
        .find(|k| !SECTIONS.contains(&k.as_str()))
    {
        return Err(Error::invalid(format!(
            "checksum for unknown section \"{key}\" in \"checksums.sections\""
        )));
    }

    let (redacted, redaction_report) = check_redaction(obj.get("redaction"))?;

    // Section checksums first: when content was edited, the message names the section.
    for name in SECTIONS {
        let stored = match section_sums.get(name) {
            None => {
                return Err(Error::invalid(format!(
                    "missing checksum for section \"{name}\" in \"checksums.sections\""
                )))
            }
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "checksum of section \"{name}\" must be a string, got {}",
                    type_name(other)
                )))
            }
        };
        let computed = sha256_hex(&section_bytes(name, &sections[name], budget)?);
        if *stored != computed {
            return Err(Error::invalid(format!(
                "section \"{name}\" checksum mismatch: expected {stored}, computed {computed} \
                 (the section was changed after export)"
            )));
        }
    }
    let computed = manifest_checksum(bundle, budget)?;
    if *stored_bundle_sum != computed {
        return Err(Error::invalid(format!(
            "bundle checksum mismatch: expected {stored_bundle_sum}, computed {computed} \
             (the format, version, section checksums or redaction report were changed after \
             export)"
        )));
    }

    Ok(VerifiedBundle {
        sections,
        bundle_checksum: computed,
        redacted,
        redaction_report,
        session: as_object("session", &sections["session"])?,
        state: as_object("state", &sections["state"])?,
        turns: as_array("turns", &sections["turns"])?,
        wal: as_array("wal", &sections["wal"])?,
        snapshots: as_array("snapshots", &sections["snapshots"])?,
        metadata: as_object("metadata", &sections["metadata"])?,
    })
}

/// The JSON type each section must have: the row-like ones are objects, the lists arrays.
fn check_section_type(name: &str, value: &Value) -> Result<()> {
    match name {
        "turns" | "wal" | "snapshots" => as_array(name, value).map(|_| ()),
        _ => as_object(name, value).map(|_| ()),
    }
}

fn as_object<'a>(name: &str, value: &'a Value) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(name, "a JSON object", value))
}

fn as_array<'a>(name: &str, value: &'a Value) -> Result<&'a [Value]> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(name, "a JSON array", value))
}

fn wrong_type(name: &str, want: &str, value: &Value) -> Error {
    Error::invalid(format!(
        "section \"{name}\" must be {want}, got {}",
        type_name(value)
    ))
}

/// Canonical bytes of one section, with the section named in the error.
fn section_bytes(name: &str, value: &Value, budget: &mut Budget) -> Result<Vec<u8>> {
    canonical_bytes_within(value, budget)
        .map_err(|e| Error::new(e.kind, format!("section \"{name}\": {e}")))
}

fn check_version(version: Option<&Value>) -> Result<()> {
    let n = match version {
        None => return Err(Error::invalid("bundle has no \"version\" field")),
        Some(Value::Number(n)) => n,
        Some(other) => {
            return Err(Error::invalid(format!(
                "bundle version {} is not an integer",
                brief(other)
            )))
        }
    };
    // Read through the canonical form so `1.0` and `1e0` (which jsonb may produce) count as 1.
    let text = crate::canonical::canonical_number(n).unwrap_or_else(|_| n.to_string());
    match text.parse::<i64>() {
        Ok(v) if v > VERSION => Err(Error::invalid(format!(
            "bundle version {v} is newer than this extension supports ({VERSION})"
        ))),
        Ok(v) if v < 1 => Err(Error::invalid(format!(
            "bundle version {v} is not valid (versions start at 1)"
        ))),
        Ok(_) => Ok(()),
        Err(_) => Err(Error::invalid(format!(
            "bundle version {text} is not an integer"
        ))),
    }
}

/// Checks the `redaction` block: `applied` is a boolean and `report` is a report exactly when
/// it is true.
fn check_redaction(block: Option<&Value>) -> Result<(bool, Option<&Map<String, Value>>)> {
    let block = expect_object(block, "redaction")?;
    if let Some(key) = block
        .keys()
        .find(|k| !matches!(k.as_str(), "applied" | "report"))
    {
        return Err(Error::invalid(format!(
            "unknown field \"{key}\" in \"redaction\" (expected applied, report)"
        )));
    }
    let applied = match block.get("applied") {
        Some(Value::Bool(b)) => *b,
        None => return Err(Error::invalid("missing \"redaction.applied\"")),
        Some(other) => {
            return Err(Error::invalid(format!(
                "\"redaction.applied\" must be a boolean, got {}",
                type_name(other)
            )))
        }
    };
    let report = block.get("report").unwrap_or(&Value::Null);
    if !applied {
        return if report.is_null() {
            Ok((false, None))
        } else {
            Err(Error::invalid(
                "\"redaction.report\" must be null when \"redaction.applied\" is false",
            ))
        };
    }
    let report = report.as_object().ok_or_else(|| {
        Error::invalid(format!(
            "\"redaction.report\" must be a JSON object when \"redaction.applied\" is true, got {}",
            type_name(report)
        ))
    })?;
    let findings = report.get("findings").and_then(Value::as_array);
    let counts = report.get("counts").and_then(Value::as_object);
    let total = report.get("total").and_then(Value::as_u64);
    match (findings, counts, total) {
        (Some(f), Some(_), Some(t)) if t == f.len() as u64 => Ok((true, Some(report))),
        _ => Err(Error::invalid(
            "\"redaction.report\" must have \"counts\" (object), \"findings\" (array) and \
             \"total\" (the number of findings)",
        )),
    }
}

fn expect_object<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a Map<String, Value>> {
    match v {
        None => Err(Error::invalid(format!(
            "missing \"{what}\" (bundle truncated?)"
        ))),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(Error::invalid(format!(
            "\"{what}\" must be a JSON object, got {}",
            type_name(other)
        ))),
    }
}

/// The report as JSON, with pointers made relative to the bundle root.
fn report_value(mut report: RedactionReport) -> Result<Value> {
    for f in &mut report.findings {
        f.pointer.insert_str(0, "/sections");
    }
    serde_json::to_value(&report)
        .map_err(|e| Error::invalid(format!("redaction report not serializable: {e}")))
}

fn too_large(size: usize, max: usize) -> Error {
    // The GUC is in MB; the byte counts make the message exact when one decimal rounds.
    let limit_mb = max as f64 / MIB;
    let limit = if max.is_multiple_of(1024 * 1024) {
        format!("{}", max / (1024 * 1024))
    } else {
        let s = format!("{limit_mb:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    Error::limit(format!(
        "export is {:.1} MB ({size} bytes), over awf.export_max_size_mb = {limit} ({max} bytes); \
         prune snapshots or the WAL, or raise the setting",
        size as f64 / MIB
    ))
}

fn describe_non_object(v: &Value) -> String {
    format!("expected a JSON object, got {}", type_name(v))
}
