//! The audit log and the event counters behind the `awf.metrics` view.

use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

/// Records an admin action in `awf.audit_log` (same transaction as the action).
pub fn record(c: &mut SpiClient<'_>, action: &str, session_id: Option<Uuid>, details: Value) {
    c.update(
        "INSERT INTO awf.audit_log (action, session_id, details) VALUES ($1, $2, $3)",
        None,
        &[action.into(), session_id.into(), JsonB(details).into()],
    )
    .expect("insert into awf.audit_log");
}

/// Adds `by` to a counter of the metrics view. The shard is the backend's, so concurrent
/// sessions do not queue on one row; a rolled-back transaction rolls its counts back too.
pub fn bump(c: &mut SpiClient<'_>, name: &str, by: i64) {
    if by == 0 {
        return;
    }
    c.update(
        "INSERT INTO awf.metric_counters (name, shard, value)
         VALUES ($1, pg_backend_pid() % 16, $2)
         ON CONFLICT (name, shard) DO UPDATE SET value = awf.metric_counters.value + EXCLUDED.value",
        None,
        &[name.into(), by.into()],
    )
    .expect("update awf.metric_counters");
}
