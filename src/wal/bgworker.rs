//! Crash recovery without application code: when awf_lifecycle is in
//! `shared_preload_libraries`, a background worker starts once the server accepts
//! connections and runs `awf.wal_reconcile()` in every database that has the extension.
//!
//! A launcher connects to `postgres`, lists the databases, and starts one short-lived dynamic
//! worker per database (a worker can only ever connect to one database).

use crate::gucs;
use crate::wal::reconcile;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

/// Registers the launcher; a no-op unless the library is being preloaded.
pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new("awf_lifecycle WAL reconcile launcher")
        .set_type("awf_lifecycle")
        .set_library("awf_lifecycle")
        .set_function("awf_reconcile_launcher")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load();
}

/// Launcher: one reconcile worker per database that allows connections, one at a time.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn awf_reconcile_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    if !gucs::reconcile_on_start() {
        log!("awf_lifecycle: awf.reconcile_on_start is off; not reconciling");
        return;
    }
    let databases: Vec<String> = BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
                None,
                &[],
            )
            .expect("list databases")
            .filter_map(|row| row.get::<String>(1).ok().flatten())
            .collect()
        })
    });
    for db in databases {
        if BackgroundWorker::sigterm_received() {
            return;
        }
        let worker = BackgroundWorkerBuilder::new(&format!("awf_lifecycle WAL reconcile in {db}"))
            .set_type("awf_lifecycle")
            .set_library("awf_lifecycle")
            .set_function("awf_reconcile_database")
            .enable_spi_access()
            .set_extra(&db)
            .set_notify_pid(unsafe { pg_sys::MyProcPid })
            .set_restart_time(None)
            .load_dynamic();
        match worker {
            Ok(w) => {
                let _ = w.wait_for_startup();
                let _ = w.wait_for_shutdown();
            }
            Err(_) => log!("awf_lifecycle: could not start a reconcile worker for {db}"),
        }
    }
}

/// Worker: reconciles every unapplied WAL entry of one database, if it has the extension.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn awf_reconcile_database(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let db = BackgroundWorker::get_extra().to_owned();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    let summary = BackgroundWorker::transaction(|| {
        crate::locks::connect_mut(|c| {
            let installed = crate::spi::run(
                c,
                "SELECT 1 FROM pg_extension WHERE extname = 'awf_lifecycle'",
                Some(1),
                &[],
            )
            .expect("check pg_extension");
            if installed.is_empty() {
                return None;
            }
            let outcomes = reconcile::reconcile(c, None);
            let applied = outcomes.iter().filter(|o| o.fixed()).count();
            Some((outcomes.len(), applied))
        })
    });
    if let Some((seen, fixed)) = summary {
        log!(
            "awf_lifecycle: reconciled database {db}: {seen} unapplied WAL entries, {fixed} fixed"
        );
    }
}

/// Writes the audit row of a refused device call from a short-lived worker of its own: the
/// refused call rolls back, and its audit row must not roll back with it. Fire and forget;
/// when no worker slot is free, or this backend started one less than a second ago, the
/// refusal stays in the server log only.
pub fn audit_refusal(function: &str, device_id: &str, reason: &str) {
    // A flood of bad tokens must not use up max_worker_processes: at most one worker per
    // backend per second; beyond that the refusal is in the server log only.
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    if LAST.with(|l| {
        l.get()
            .is_some_and(|t| now.duration_since(t).as_secs_f64() < 1.0)
    }) {
        log!("awf audit: refusal of {function} for device {device_id:?} not recorded in awf.audit_log (rate limit)");
        return;
    }
    LAST.with(|l| l.set(Some(now)));
    // bgw_extra holds 128 bytes: function, reason and as much of the device id as fits.
    let mut extra = format!("{function}\u{1f}{reason}\u{1f}{device_id}");
    while extra.len() > 127 {
        extra.pop();
    }
    let db = unsafe { pg_sys::MyDatabaseId };
    let started = BackgroundWorkerBuilder::new("awf_lifecycle refusal audit")
        .set_type("awf_lifecycle")
        .set_library("awf_lifecycle")
        .set_function("awf_audit_refusal")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(u32::from(db) as usize)))
        .set_extra(&extra)
        .set_restart_time(None)
        .load_dynamic();
    if started.is_err() {
        log!("awf audit: no worker slot to record the refusal of {function} for device {device_id:?}");
    }
}

/// Worker: records one refusal in `awf.audit_log` (action `sync_refused`).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn awf_audit_refusal(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    let extra = BackgroundWorker::get_extra().to_owned();
    let mut parts = extra.splitn(3, '\u{1f}');
    let (function, reason, device) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    BackgroundWorker::transaction(|| {
        crate::locks::connect_mut(|c| {
            crate::audit::record(
                c,
                "sync_refused",
                None,
                serde_json::json!({"function": function, "device_id": device, "reason": reason}),
            );
        })
    });
}
