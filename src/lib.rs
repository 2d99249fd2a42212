//! awf_lifecycle: durable, idempotent game/story sessions inside PostgreSQL.
//!
//! This crate only adapts `awf_core` to SQL. Every algorithm (hashing, diffing, merging,
//! codecs, redaction, recap) lives in `crates/awf_core`; the modules below turn those calls
//! into SQL functions and map errors onto SQLSTATEs.

::pgrx::pg_module_magic!(name, version);

/// The one table from awf_core error kinds to SQLSTATEs (DESIGN §5).
mod errors;
/// `awf.canonical_json`, `awf.canonical_hash`, `awf.json_diff`, `awf.json_patch_apply`,
/// `awf.json_merge`, `awf.redact`, `awf.version`: immutable helpers over jsonb.
mod pure;

/// Required by `cargo pgrx test`: one-off setup and postgresql.conf settings for the test cluster.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

/// Test helpers shared by the `#[pg_test]` modules.
#[cfg(any(test, feature = "pg_test"))]
mod testing;
