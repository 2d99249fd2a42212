//! awf_core: the pure algorithms of awf_lifecycle. No pgrx, no tokio: the extension, the HTTP
//! server and the CLI call these and never re-implement them.

pub mod budget;
pub mod error;
pub mod json;

/// Turn payloads (`txt` + `acts`) and the default, all-or-nothing act applier.
pub mod acts;
/// The `zip` export format: the JSON Lines archive in a one-entry zip file.
pub mod archive_zip;
/// The hash chain over audit-log rows and its verifier.
pub mod audit_chain;
/// The self-checking session bundle of export and import: build, redact, checksum, verify.
pub mod bundle;
/// RFC 8785 canonical bytes and SHA-256 content hashes.
pub mod canonical;
/// The hash chain over turns and its verifier.
pub mod chain;
/// Client-sealed turns: states a device encrypts under its own seal key before upload.
pub mod client_seal;
/// Blob codec: zstd, optional AES-256-GCM, versioned header; envelope keys.
pub mod codec;
/// The conflict resolver: which branch stays, which are archived.
pub mod conflict;
/// Structural diff producing RFC 6902 patches (arrays aligned by LCS).
pub mod diff;
/// The one UUID parser and the one constant-time comparison of secrets.
pub mod ids;
/// Checksummed JSON Lines (a SHA-256 per line, a manifest line): the save export format.
pub mod jsonl;
/// Three-way merge with conflict reporting.
pub mod merge;
/// RFC 7396 JSON Merge Patch.
pub mod merge_patch;
/// RFC 6902 JSON Patch apply.
pub mod patch;
/// Deterministic recap composition.
pub mod recap;
/// Secret and PII redaction with a report.
pub mod redact;
/// Cloud save turns: plan each turn's base, diff or sealed blob; rebuild and verify a save.
pub mod save;

/// The notification a save sends when its head moves.
pub mod signal;
/// Signed sync payloads: per-save HMAC keys, request and answer signatures.
pub mod signing;
/// The sync protocol's pure logic: request parsing, patch-chain replay, branch planning, the
/// shared-prefix walk and the conflict decision.
pub mod sync;

/// Device sync tokens: generation and hashing.
pub mod token;

pub use budget::{Budget, Limits};
pub use error::{Error, ErrorKind, Result};
