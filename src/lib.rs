//! awf_lifecycle: durable, idempotent game/story sessions inside PostgreSQL.
//!
//! This crate only adapts `awf_core` to SQL. Every algorithm (hashing, diffing, merging,
//! codecs, redaction, recap) lives in `crates/awf_core`; the modules below turn those calls
//! into SQL functions and map errors onto SQLSTATEs. Tables, roles and policies are in
//! one `sql/<feature>.sql` file per feature; grants and SQL-language helpers in `sql/finalize.sql`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

// The fresh-install DDL, one file per feature, in this order; sql/finalize.sql (grants and
// SQL-language helpers) runs after the functions exist.
pgrx::extension_sql_file!("../sql/identity.sql", name = "ddl_identity", bootstrap);
pgrx::extension_sql_file!(
    "../sql/sessions.sql",
    name = "ddl_sessions",
    requires = ["ddl_identity"]
);
pgrx::extension_sql_file!(
    "../sql/wal.sql",
    name = "ddl_wal",
    requires = ["ddl_sessions"]
);
pgrx::extension_sql_file!(
    "../sql/snapshots.sql",
    name = "ddl_snapshots",
    requires = ["ddl_wal"]
);
pgrx::extension_sql_file!(
    "../sql/audit.sql",
    name = "ddl_audit",
    requires = ["ddl_snapshots"]
);
pgrx::extension_sql_file!(
    "../sql/saves.sql",
    name = "ddl_saves",
    requires = ["ddl_audit"]
);
pgrx::extension_sql_file!(
    "../sql/sync.sql",
    name = "ddl_sync",
    requires = ["ddl_saves"]
);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

// Plumbing every feature uses.
/// The one table from awf_core error kinds to SQLSTATEs.
mod errors;
/// Settings under `awf.` and their getters.
mod gucs;
/// The `jsonb` argument type: too-deep documents are 22023, not a panic.
mod jsonb;
/// Secret files (master keyring, signing secret), cached per backend until they change.
mod key_files;
/// Row locks no other role can take, and the bound on every wait (`awf.lock_timeout_ms`).
mod locks;
/// Running SQL (every statement prepared once per backend) and reading its results.
mod spi;

// Features, one folder each, with their SQL functions, their DDL in the matching `sql/` file,
// and their `#[pg_test]`s beside them.
/// The hash-chained audit log, metric counters, running as the tables' owner, and the admin
/// read functions (`awf.audit_verify`, `awf.audit_query`, `awf.sync_stats`, `awf.save_details`,
/// `awf.device_details`).
mod audit;
/// Who a call acts for (`awf.act_as`, `awf.acting_admin`) and admin keys
/// (`awf.admin_key_create`, `_list`, `_revoke`, `awf.act_as_admin`).
mod identity;
/// `awf.canonical_json`, `awf.canonical_hash`, `awf.json_diff`, `awf.json_patch_apply`,
/// `awf.json_merge`, `awf.redact`, `awf.version`: immutable helpers over jsonb.
mod pure;
/// Cloud saves: persist, materialize, verify, restore, retention, keys, privacy.
mod saves;
/// Sessions (`awf.session_upsert`, `awf.recap`) and row access to sessions, turns and WAL entries.
mod sessions;
/// `awf.snapshot_create`, `_restore`, `_delete`, `_prune`.
mod snapshots;
/// Cross-device sync: devices, sync up and down, conflicts, signing.
mod sync;
/// Export and import of a session: `awf.session_export`, `awf.session_import`.
mod transfer;
/// The turn write-ahead log (`awf.turn_submit`, `awf.wal_append`, `awf.wal_apply`),
/// reconciliation and cleanup, and the startup background worker.
mod wal;

/// Registers settings and, when preloaded, the startup background worker.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    // Long loops in awf_core poll this, so statement_timeout and pg_cancel_backend reach them.
    awf_core::budget::set_interrupt_check(check_for_interrupts);
    wal::bgworker::init();
}

/// PostgreSQL's CHECK_FOR_INTERRUPTS: raises the pending cancel or timeout as an ERROR.
fn check_for_interrupts() {
    pgrx::check_for_interrupts!();
}

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
