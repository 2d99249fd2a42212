//! Where the extension waits: serialization points that no other role can take hostage, and a
//! bound on every wait it starts.
//!
//! Advisory locks are not used: any role can take any advisory key, so one
//! `SELECT pg_advisory_lock(...)` from any login could stall every caller. The extension
//! serializes on rows of `awf.locks` instead, which no role but the owner can read, let alone
//! lock (`FOR UPDATE` needs the UPDATE privilege). Every lock the extension takes waits at
//! most `awf.lock_timeout_ms` (or the caller's own shorter `lock_timeout`), then fails with
//! 55P03.

use crate::audit::AsOwner;
use crate::gucs;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use std::ffi::CString;

/// Takes the transaction-long lock `name` (e.g. `audit`, `quota:<user>`), creating its row on
/// first use. Held until the transaction ends; bounded by the lock timeout of
/// [`connect_mut`].
pub fn named(c: &mut SpiClient<'_>, name: &str) {
    let _owner = AsOwner::enter(c);
    crate::spi::run(
        c,
        "INSERT INTO awf.locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        None,
        &[name.into()],
    )
    .expect("insert into awf.locks");
    crate::spi::run(
        c,
        "SELECT 1 FROM awf.locks WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        None,
        &[name.into()],
    )
    .expect("lock awf.locks");
}

/// `Spi::connect_mut` for an extension call: every statement of the call, whichever row it
/// waits for (a `FOR UPDATE`, an `UPDATE` of a row another transaction holds), waits at most
/// the lock timeout; and every statement runs with `search_path` pinned to `pg_catalog,
/// pg_temp`, so the checks a call makes as the caller (the row-level security reads that prove
/// its right to the rows it then writes as the owner, the quota sums) cannot be bent by an
/// operator or function the caller put in front on its own path. Every entry point that
/// writes goes through here, and all its SQL names the `awf` schema.
pub fn connect_mut<R>(f: impl FnOnce(&mut SpiClient<'_>) -> R) -> R {
    pgrx::spi::Spi::connect_mut(|c| {
        let _path = Setting::enter(c"search_path", c"pg_catalog, pg_temp");
        let _lock_timeout = Setting::lock_timeout();
        f(c)
    })
}

/// Locks (`mode`: `FOR NO KEY UPDATE`, `FOR UPDATE` or `FOR SHARE`) the row of `awf.<table>` whose `key` is `id`,
/// if the caller can see it; false when row-level security hides it or it does not exist.
/// The lock is taken as the owner: a locking read needs UPDATE, which no caller role has, so
/// no caller can hold the row hostage outside the functions either. Read the row after this,
/// not before, to see its newest version. `table`, `key` and `mode` are the extension's own
/// constants, never input.
pub fn lock_visible<T: pgrx::IntoDatum + Copy>(
    c: &mut SpiClient<'_>,
    table: &'static str,
    key: &'static str,
    id: T,
    mode: &'static str,
) -> bool {
    let visible = format!("SELECT 1 FROM awf.{table} WHERE {key} = $1");
    let seen = crate::spi::run(c, &visible, Some(1), &[id.into()])
        .unwrap_or_else(|e| panic!("{visible}: {e}"));
    if seen.is_empty() {
        return false;
    }
    let lock = format!("SELECT 1 FROM awf.{table} WHERE {key} OPERATOR(pg_catalog.=) $1 {mode}");
    crate::audit::as_owner(c, |c| {
        crate::spi::run(c, &lock, None, &[id.into()]).unwrap_or_else(|e| panic!("{lock}: {e}"))
    });
    true
}

/// A setting changed for a scope (`None`: left as it was); dropping it restores the caller's.
pub(crate) struct Setting(Option<i32>);

impl Setting {
    /// Sets `name` to `value` until dropped, the way a function's `SET` clause does.
    pub(crate) fn enter(name: &std::ffi::CStr, value: &std::ffi::CStr) -> Setting {
        // SAFETY: plain backend calls; the level opened here is closed in Drop, or by the
        // abort an ERROR (such as a lock timeout) leads to.
        let level = unsafe {
            let level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            level
        };
        Setting(Some(level))
    }

    /// `lock_timeout` lowered to `awf.lock_timeout_ms`, unless the caller's is shorter.
    fn lock_timeout() -> Setting {
        let ours = gucs::lock_timeout_ms();
        // SAFETY: reading a backend global.
        let callers = unsafe { pg_sys::LockTimeout };
        if ours == 0 || (callers > 0 && callers <= ours) {
            return Setting(None);
        }
        let value = CString::new(ours.to_string()).expect("digits");
        Setting::enter(c"lock_timeout", &value)
    }
}

impl Drop for Setting {
    fn drop(&mut self) {
        // While unwinding from an ERROR the abort restores the setting, and calling into
        // PostgreSQL then could raise again.
        if let (Some(level), false) = (self.0, std::thread::panicking()) {
            // SAFETY: closes the level opened in `enter`.
            unsafe { pg_sys::AtEOXact_GUC(true, level) };
        }
    }
}
