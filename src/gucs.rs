//! Settings under the `awf.` prefix, set like any PostgreSQL setting
//! (`ALTER SYSTEM`, `ALTER DATABASE ... SET`, `SET`). One static per setting, one `init()`
//! that registers them all, and a getter per setting for the rest of the crate.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Age after which applied WAL entries may be removed by `awf.wal_cleanup()`.
static WAL_MAX_AGE_DAYS: GucSetting<i32> = GucSetting::<i32>::new(7);
/// Age after which `awf.snapshot_prune()` removes snapshots.
static SNAPSHOT_MAX_AGE_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);
/// Snapshots kept per session by `awf.snapshot_prune()` (newest first).
static SNAPSHOT_MAX_COUNT: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Most sentences in a recap.
static RECAP_MAX_SENTENCES: GucSetting<i32> = GucSetting::<i32>::new(6);
/// Most words in one recap sentence.
static RECAP_MAX_WORDS_PER_SENTENCE: GucSetting<i32> = GucSetting::<i32>::new(24);
/// Whether `awf.session_export()` redacts secrets and PII unless told otherwise.
static EXPORT_REDACT_SENSITIVE: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Largest export bundle, in MB.
static EXPORT_MAX_SIZE_MB: GucSetting<i32> = GucSetting::<i32>::new(50);
/// How long a save's download link works, in minutes.
static EXPORT_LINK_MINUTES: GucSetting<i32> = GucSetting::<i32>::new(15);
/// A host backend's act applier: a function `(state jsonb, acts jsonb, turn_id bigint) → jsonb`.
static ACT_APPLIER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// The user whose rows a non-admin caller may see (row-level security). Superuser-only: it is
/// set by `awf.act_as` (transaction-local) and by the device-facing functions, never by `SET`.
static USER_ID_HASH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// The admin key this transaction presented (its name). Superuser-only: set transaction-locally
/// by `awf.act_as_admin` after it verified the key, never by `SET`.
static ADMIN_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// The device whose credential this transaction presented. Superuser-only: set
/// transaction-locally by `awf.act_as_device` after it verified the credential.
static ACTING_DEVICE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// Whether the background worker reconciles the WAL when the server starts.
static RECONCILE_ON_START: GucSetting<bool> = GucSetting::<bool>::new(true);
/// A cloud save stores a base (the whole state) every this many turns, diffs in between.
static SYNC_SNAPSHOT_EVERY: GucSetting<i32> = GucSetting::<i32>::new(25);
/// zstd level of cloud-save blobs.
static SYNC_ZSTD_LEVEL: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Whether new saves are client-sealed unless their creator says otherwise.
static SYNC_CLIENT_SEALED: GucSetting<bool> = GucSetting::<bool>::new(false);
/// Largest diff of one turn, in KB.
static SYNC_MAX_DIFF_BYTES_KB: GucSetting<i32> = GucSetting::<i32>::new(128);
static SYNC_MAX_UPLOAD_TURNS: GucSetting<i32> = GucSetting::<i32>::new(5000);
/// Largest cloud save, in MB.
static SYNC_MAX_SAVE_BYTES_MB: GucSetting<i32> = GucSetting::<i32>::new(200);
/// Storage quota per user, in MB.
static SYNC_USER_QUOTA_MB: GucSetting<i32> = GucSetting::<i32>::new(1024);
/// Share of saves `awf.save_verify_sample()` checks, in percent.
static SYNC_VERIFY_SAMPLE_PCT: GucSetting<f64> = GucSetting::<f64>::new(5.0);
/// Age after which `awf.retention_enforce()` prunes save history and archives, in days.
static SYNC_RETENTION_DAYS: GucSetting<i32> = GucSetting::<i32>::new(365);
/// Days a device's sync token stays valid.
static SYNC_TOKEN_TTL_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);
/// Most units of work one call may spend (see `awf_core::budget`).
static MAX_WORK_UNITS: GucSetting<i32> = GucSetting::<i32>::new(100_000_000);
/// Most JSON values one call may build beyond its input.
static MAX_BUILT_NODES: GucSetting<i32> = GucSetting::<i32>::new(2_000_000);
/// Most megabytes of JSON text (strings, numbers, member names) one call may build.
static MAX_BUILT_MB: GucSetting<i32> = GucSetting::<i32>::new(256);
/// Longest wait for any lock the extension takes, in milliseconds (then 55P03).
static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5_000);
/// The master key file: one `id:hex` key per line, the first one current.
static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// The deployment secret that sync signing keys are derived from: 64+ hex characters.
static SIGNING_SECRET_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// How far a signed sync request's timestamp may be from the server's clock, in seconds.
static SYNC_SIGNATURE_WINDOW_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(300);

/// Registers an integer setting. Work and size limits, the quota, the token lifetime and the
/// base interval (a base every turn would bypass the diff-size cap) are superuser-only
/// (`Suset`): a caller must not lift its own limits with `SET`. Retention settings stay
/// settable: only admin-only functions read them.
fn define_int(
    name: &'static std::ffi::CStr,
    short: &'static std::ffi::CStr,
    setting: &'static GucSetting<i32>,
    min: i32,
    max: i32,
) {
    let n = name.to_bytes();
    let is_limit = [
        &b"awf.sync_max_"[..],
        b"awf.max_",
        b"awf.sync_snapshot_every",
        b"awf.sync_user_quota",
        b"awf.sync_token_ttl",
        // A caller's own level 22 would cost every save it writes many times the CPU.
        b"awf.sync_zstd_level",
        b"awf.export_max_",
        // A caller must not mint links that outlive the deployment's policy.
        b"awf.export_link_",
        // A wider window keeps more nonces and lets older captured requests through.
        b"awf.sync_signature_",
    ]
    .iter()
    .any(|p| n.starts_with(p));
    let context = if is_limit {
        GucContext::Suset
    } else {
        GucContext::Userset
    };
    GucRegistry::define_int_guc(
        name,
        short,
        c"",
        setting,
        min,
        max,
        context,
        GucFlags::default(),
    )
}

/// Registers every setting; called once from `_PG_init`.
pub fn init() {
    define_int(
        c"awf.wal_max_age_days",
        c"Days after which applied WAL entries may be cleaned up.",
        &WAL_MAX_AGE_DAYS,
        0,
        36500,
    );
    define_int(
        c"awf.snapshot_max_age_days",
        c"Days after which snapshots are pruned.",
        &SNAPSHOT_MAX_AGE_DAYS,
        0,
        36500,
    );
    define_int(
        c"awf.snapshot_max_count",
        c"Snapshots kept per session when pruning.",
        &SNAPSHOT_MAX_COUNT,
        0,
        1_000_000,
    );
    define_int(
        c"awf.recap_max_sentences",
        c"Most sentences in a recap.",
        &RECAP_MAX_SENTENCES,
        2,
        100,
    );
    define_int(
        c"awf.recap_max_words_per_sentence",
        c"Most words in one recap sentence.",
        &RECAP_MAX_WORDS_PER_SENTENCE,
        1,
        1000,
    );
    define_int(
        c"awf.export_max_size_mb",
        c"Largest session export bundle, in MB.",
        &EXPORT_MAX_SIZE_MB,
        1,
        1024,
    );
    define_int(
        c"awf.export_link_minutes",
        c"How long a save's one-use download link works, in minutes.",
        &EXPORT_LINK_MINUTES,
        1,
        1_440,
    );
    define_int(
        c"awf.lock_timeout_ms",
        c"Longest wait, in milliseconds, for any lock the extension takes (then SQLSTATE 55P03).",
        &LOCK_TIMEOUT_MS,
        1,
        3_600_000,
    );
    define_int(
        c"awf.max_work_units",
        c"Most units of work (values visited, compared, hashed or shifted) one call may spend.",
        &MAX_WORK_UNITS,
        1_000,
        i32::MAX,
    );
    define_int(
        c"awf.max_built_nodes",
        c"Most JSON values one call may build (patch copies, acts, diffs).",
        &MAX_BUILT_NODES,
        1_000,
        i32::MAX,
    );
    define_int(
        c"awf.max_built_mb",
        c"Most megabytes of JSON text (strings, numbers, member names) one call may build.",
        &MAX_BUILT_MB,
        1,
        1 << 20,
    );
    // Superuser-only: an unredacted export is an admin right (session_export's argument),
    // not something any caller switches on for itself.
    GucRegistry::define_bool_guc(
        c"awf.export_redact_sensitive",
        c"Redact secrets and PII in exports unless the caller says otherwise.",
        c"",
        &EXPORT_REDACT_SENSITIVE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"awf.act_applier",
        c"Function (state jsonb, acts jsonb, turn_id bigint) returning jsonb that applies acts instead of the built-in applier.",
        c"Empty means the built-in applier. Superuser-only, since every turn runs it.",
        &ACT_APPLIER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"awf.user_id_hash",
        c"The user this transaction acts for; row-level security shows a non-admin caller only that user's rows.",
        c"Set with awf.act_as(user_id_hash), for one transaction; superuser-only otherwise.",
        &USER_ID_HASH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"awf.admin_key",
        c"The admin key this transaction presented (its name); the call has admin rights.",
        c"Set with awf.act_as_admin(key), for one transaction; superuser-only otherwise.",
        &ADMIN_KEY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"awf.acting_device",
        c"The device whose credential this transaction presented.",
        c"Set with awf.act_as_device(device_id, sync_token), for one transaction; superuser-only otherwise.",
        &ACTING_DEVICE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"awf.reconcile_on_start",
        c"Reconcile unapplied WAL entries in a background worker at server start.",
        c"Needs awf_lifecycle in shared_preload_libraries.",
        &RECONCILE_ON_START,
        GucContext::Sighup,
        GucFlags::default(),
    );
    init_sync();
}

/// Registers the cloud-save settings.
fn init_sync() {
    GucRegistry::define_bool_guc(
        c"awf.sync_client_sealed",
        c"New saves expect client-sealed uploads unless awf.save_create_or_attach says otherwise.",
        c"Devices then encrypt each state with their own seal key; the server cannot read the save.",
        &SYNC_CLIENT_SEALED,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_int(
        c"awf.sync_snapshot_every",
        c"A cloud save stores a base every this many turns.",
        &SYNC_SNAPSHOT_EVERY,
        1,
        100_000,
    );
    define_int(
        c"awf.sync_zstd_level",
        c"zstd level of cloud-save blobs.",
        &SYNC_ZSTD_LEVEL,
        1,
        22,
    );
    define_int(
        c"awf.sync_max_upload_turns",
        c"Most turns one awf.sync_up request may carry.",
        &SYNC_MAX_UPLOAD_TURNS,
        1,
        1_000_000,
    );
    define_int(
        c"awf.sync_max_diff_bytes_kb",
        c"Largest diff of one turn, in KB.",
        &SYNC_MAX_DIFF_BYTES_KB,
        1,
        1_048_576,
    );
    define_int(
        c"awf.sync_max_save_bytes_mb",
        c"Largest cloud save, in MB.",
        &SYNC_MAX_SAVE_BYTES_MB,
        1,
        1_048_576,
    );
    define_int(
        c"awf.sync_user_quota_mb",
        c"Cloud-save storage quota per user, in MB.",
        &SYNC_USER_QUOTA_MB,
        1,
        1_048_576,
    );
    define_int(
        c"awf.sync_retention_days",
        c"Days of save history and archives kept by awf.retention_enforce().",
        &SYNC_RETENTION_DAYS,
        1,
        36500,
    );
    define_int(
        c"awf.sync_token_ttl_days",
        c"Days a device's sync token stays valid.",
        &SYNC_TOKEN_TTL_DAYS,
        1,
        3650,
    );
    GucRegistry::define_float_guc(
        c"awf.sync_verify_sample_pct",
        c"Share of saves awf.save_verify_sample() checks, in percent.",
        c"",
        &SYNC_VERIFY_SAMPLE_PCT,
        0.0,
        100.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"awf.master_key_file",
        c"File with the cloud-save master key(s): one id:hex64 per line, the first is current.",
        c"Readable by the server's OS user only. Empty: blobs are not encrypted. Superuser-only, and hidden from others.",
        &MASTER_KEY_FILE,
        GucContext::Suset,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"awf.signing_secret_file",
        c"File with the deployment secret that per-save sync signing keys are derived from (64+ hex).",
        c"Readable by the server's OS user only. Empty: sync requests cannot be signed. Superuser-only, and hidden from others.",
        &SIGNING_SECRET_FILE,
        GucContext::Suset,
        GucFlags::SUPERUSER_ONLY,
    );
    define_int(
        c"awf.sync_signature_window_seconds",
        c"How far a signed sync request's timestamp may be from the server's clock, in seconds.",
        &SYNC_SIGNATURE_WINDOW_SECONDS,
        10,
        3_600,
    );
}

pub fn sync_client_sealed() -> bool {
    SYNC_CLIENT_SEALED.get()
}
pub fn sync_snapshot_every() -> i64 {
    SYNC_SNAPSHOT_EVERY.get() as i64
}
pub fn sync_zstd_level() -> i32 {
    SYNC_ZSTD_LEVEL.get()
}
pub fn sync_max_upload_turns() -> usize {
    SYNC_MAX_UPLOAD_TURNS.get() as usize
}
pub fn sync_max_diff_bytes() -> usize {
    SYNC_MAX_DIFF_BYTES_KB.get() as usize * 1024
}
pub fn sync_max_save_bytes() -> i64 {
    SYNC_MAX_SAVE_BYTES_MB.get() as i64 * 1024 * 1024
}
pub fn sync_user_quota_bytes() -> i64 {
    SYNC_USER_QUOTA_MB.get() as i64 * 1024 * 1024
}
pub fn sync_verify_sample_pct() -> f64 {
    SYNC_VERIFY_SAMPLE_PCT.get()
}
pub fn sync_token_ttl_days() -> i32 {
    SYNC_TOKEN_TTL_DAYS.get()
}
pub fn sync_retention_days() -> i32 {
    SYNC_RETENTION_DAYS.get()
}
/// The configured signing secret file, if any.
pub fn signing_secret_file() -> Option<String> {
    SIGNING_SECRET_FILE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.trim().is_empty())
}
pub fn sync_signature_window_seconds() -> i64 {
    SYNC_SIGNATURE_WINDOW_SECONDS.get() as i64
}

/// The configured master key file, if any.
pub fn master_key_file() -> Option<String> {
    MASTER_KEY_FILE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.trim().is_empty())
}

/// A fresh work and size budget for one call, from `awf.max_work_units`,
/// `awf.max_built_nodes` and `awf.max_built_mb`.
pub fn budget() -> awf_core::Budget {
    awf_core::Budget::new(awf_core::Limits {
        max_work: MAX_WORK_UNITS.get() as u64,
        max_nodes: MAX_BUILT_NODES.get() as u64,
        max_bytes: (MAX_BUILT_MB.get() as u64) << 20,
    })
}

pub fn lock_timeout_ms() -> i32 {
    LOCK_TIMEOUT_MS.get()
}
pub fn wal_max_age_days() -> i32 {
    WAL_MAX_AGE_DAYS.get()
}
pub fn snapshot_max_age_days() -> i32 {
    SNAPSHOT_MAX_AGE_DAYS.get()
}
pub fn snapshot_max_count() -> i32 {
    SNAPSHOT_MAX_COUNT.get()
}
pub fn recap_max_sentences() -> usize {
    RECAP_MAX_SENTENCES.get() as usize
}
pub fn recap_max_words_per_sentence() -> usize {
    RECAP_MAX_WORDS_PER_SENTENCE.get() as usize
}
pub fn export_redact_sensitive() -> bool {
    EXPORT_REDACT_SENSITIVE.get()
}
pub fn export_link_minutes() -> i32 {
    EXPORT_LINK_MINUTES.get()
}
pub fn export_max_bytes() -> usize {
    EXPORT_MAX_SIZE_MB.get() as usize * 1024 * 1024
}
/// The configured act applier, if any (empty counts as none).
pub fn act_applier() -> Option<String> {
    ACT_APPLIER
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.trim().is_empty())
}
/// The user this transaction acts for, if any (empty counts as none).
pub fn user_id_hash() -> Option<String> {
    USER_ID_HASH
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
}
/// The name of the admin key this transaction presented, if any.
pub fn admin_key() -> Option<String> {
    ADMIN_KEY
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
}
/// The device whose credential this transaction presented, if any.
pub fn acting_device() -> Option<String> {
    ACTING_DEVICE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
}
pub fn reconcile_on_start() -> bool {
    RECONCILE_ON_START.get()
}
