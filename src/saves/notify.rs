//! Tells listeners a save's head moved: `NOTIFY awf_save_head, '<key>'` (awf_core's
//! `signal`), so the HTTP server wakes the devices waiting on that save. Sent in the
//! transaction that moves the head, so it arrives at commit and never for a rollback;
//! PostgreSQL folds repeats within one transaction into one.

use awf_core::signal;
use pgrx::spi::SpiClient;
use pgrx::Uuid;

/// Queues the head notification of `save_id`.
pub fn head_moved(c: &mut SpiClient<'_>, save_id: Uuid) {
    let key = signal::head_key(&save_id.to_string());
    crate::spi::run(
        c,
        "SELECT pg_catalog.pg_notify($1, $2)",
        None,
        &[signal::HEAD_CHANNEL.into(), key.into()],
    )
    .expect("pg_notify");
}
