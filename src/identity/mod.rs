//! Who a call acts for, and what the caller may do.
//!
//! Row-level security shows a non-admin caller only the rows of `awf.user_id_hash`. That
//! setting is superuser-only, so no caller can name a user with `SET`: a trusted game backend
//! (a member of `awf_app`) names the user for one transaction with `awf.act_as(user)`, and the
//! device-facing functions set it themselves, for the length of the call, to the user of the
//! device whose credential they verified.

/// `awf.admin_key_create`, `_list`, `_revoke`, `awf.act_as_admin`: admin tools' credentials.
pub mod admin_keys;

use crate::errors::raise;
use awf_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// The longest user id hash accepted (ids are hashes; this only bounds hostile input).
const MAX_USER_ID_LEN: usize = 256;

/// Names the user the rest of this transaction acts for (row-level security then shows only
/// that user's rows). Granted to `awf_app`, the trusted backend role; the name ends with the
/// transaction, so a pooled connection never carries one end user into the next request.
#[pg_extern(volatile, parallel_unsafe)]
fn act_as(user_id_hash: &str) -> String {
    check_user_id(user_id_hash, "act_as");
    set_user(user_id_hash, pg_sys::GucAction::GUC_ACTION_LOCAL);
    user_id_hash.to_owned()
}

/// The user this transaction acts for (NULL: none), as row-level security reads it. A Rust
/// function, not `current_setting()`: calling it loads the library, which defines the setting,
/// so a value a non-superuser `SET` before the library was loaded is discarded, never read.
#[pg_extern(stable, parallel_safe)]
fn acting_user() -> Option<String> {
    crate::gucs::user_id_hash()
}

/// Refuses an empty or oversized user id (22023).
pub fn check_user_id(user_id_hash: &str, f: &'static str) {
    if user_id_hash.is_empty() || user_id_hash.len() > MAX_USER_ID_LEN {
        raise(
            Error::invalid(format!(
                "user_id_hash must be 1 to {MAX_USER_ID_LEN} bytes, not {}",
                user_id_hash.len()
            )),
            f,
        );
    }
}

fn set_user(user_id_hash: &str, action: pg_sys::GucAction::Type) {
    set_guarded(c"awf.user_id_hash", user_id_hash, action, "act_as");
}

/// Sets one of the superuser-only identity settings (`awf.user_id_hash`, `awf.admin_key`,
/// `awf.acting_device`) for the caller. The functions calling this are the only doors to
/// them, each guarded by its EXECUTE grant and by the check it made first.
pub fn set_guarded(
    name: &std::ffi::CStr,
    value: &str,
    action: pg_sys::GucAction::Type,
    f: &'static str,
) {
    let value = CString::new(value)
        .unwrap_or_else(|_| raise(Error::invalid("the value must not contain NUL bytes"), f));
    // SAFETY: a plain backend call. The context says "as the superuser" because the settings
    // are superuser-only.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// Acts for a verified device's user until dropped (the end of the device-facing call), then
/// restores whatever the transaction had before; an ERROR's abort restores it too.
pub struct DeviceScope {
    nest_level: i32,
}

impl DeviceScope {
    /// Acts for `user_id_hash`, the owner of a device whose credential was just verified.
    pub fn enter(user_id_hash: &str) -> DeviceScope {
        // SAFETY: plain backend call; the level is closed in Drop.
        let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
        set_user(user_id_hash, pg_sys::GucAction::GUC_ACTION_SAVE);
        DeviceScope { nest_level }
    }
}

impl Drop for DeviceScope {
    fn drop(&mut self) {
        // While unwinding from an ERROR the abort restores the setting, and calling into
        // PostgreSQL then could raise again.
        if !std::thread::panicking() {
            // SAFETY: closes the level opened in enter, restoring the setting's prior value.
            unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) };
        }
    }
}

/// Refuses (42501) to write rows of `user_id_hash` unless the call acts for that user or the
/// caller is an admin. The extension writes its tables as their owner (no other role has
/// INSERT or UPDATE on them), so this is the check a row-level security WITH CHECK policy
/// would make. Call it before entering the owner's rights, which would make anyone an admin.
pub fn require_acting_for(user_id_hash: &str, f: &'static str) {
    check_user_id(user_id_hash, f);
    if is_admin() || crate::gucs::user_id_hash().as_deref() == Some(user_id_hash) {
        return;
    }
    raise(
        Error::not_allowed(match crate::gucs::user_id_hash() {
            Some(_) => "the call acts for another user; name this one with awf.act_as".to_owned(),
            None => "the call acts for no user; name one with awf.act_as".to_owned(),
        }),
        f,
    );
}

/// Whether the call has admin rights: the calling role is a superuser or has the rights of
/// `awf_admin`, or the transaction presented a valid admin key (`awf.act_as_admin`).
pub fn is_admin() -> bool {
    is_admin_role() || crate::gucs::admin_key().is_some()
}

/// Whether the calling role itself is a superuser or has the rights of `awf_admin`.
pub fn is_admin_role() -> bool {
    // SAFETY: plain catalog lookups inside a transaction; a missing role gives InvalidOid.
    unsafe {
        let me = pg_sys::GetUserId();
        if pg_sys::superuser_arg(me) {
            return true;
        }
        let admin = pg_sys::get_role_oid(c"awf_admin".as_ptr(), true);
        admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(me, admin)
    }
}

/// Whether this transaction has admin rights, for row-level security: the gateway role sees
/// every row only after presenting an admin key.
#[pg_extern(stable, parallel_safe)]
fn acting_admin() -> bool {
    is_admin()
}

/// Refuses (42501) a call without admin rights. The admin functions the HTTP gateway may call
/// are granted to `awf_gateway`, which has admin rights only with a verified admin key, so
/// each of them checks here before anything else.
pub fn require_admin(f: &'static str) {
    if !is_admin() {
        raise(
            Error::not_allowed("this function needs admin rights (awf_admin, or an admin key)"),
            f,
        );
    }
}

/// Who the audit log names for this call: the admin key (`key:<name>`), else the device whose
/// credential the transaction presented (`device:<id>`), else the calling role (the one the
/// extension switched away from when it runs as the table owner).
pub fn actor() -> String {
    if let Some(key) = crate::gucs::admin_key() {
        return format!("key:{key}");
    }
    if let Some(device) = crate::gucs::acting_device() {
        return format!("device:{device}");
    }
    // SAFETY: GetUserId is always valid inside a transaction; with noerr = false a missing
    // role raises an ERROR instead of returning NULL.
    unsafe {
        let name = pg_sys::GetUserNameFromId(crate::audit::calling_role(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, one, run};
    use pgrx::prelude::*;

    fn login(role: &str, member_of: &str) {
        run(&format!(
            "DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ));
        run(&format!("GRANT {member_of} TO {role}"));
    }

    #[pg_test]
    fn no_caller_but_the_superuser_can_set_the_identity() {
        login("awf_test_id_app", "awf_app");
        run("SET ROLE awf_test_id_app");
        assert_sqlstate("SET awf.user_id_hash = 'someone'", "42501");
        assert_sqlstate("SELECT set_config('awf.user_id_hash', 'x', false)", "42501");
        assert_sqlstate("SELECT set_config('awf.user_id_hash', 'x', true)", "42501");
        run("RESET ROLE");
    }

    #[pg_test]
    fn act_as_names_the_user() {
        login("awf_test_id_app2", "awf_app");
        run("SET ROLE awf_test_id_app2");
        assert_eq!(
            one::<String>("SELECT awf.act_as('u-42')").as_deref(),
            Some("u-42")
        );
        assert_eq!(
            one::<String>("SELECT awf.current_user_id_hash()").as_deref(),
            Some("u-42")
        );
        assert_sqlstate("SELECT awf.act_as('')", "22023");
        run("RESET ROLE");
        // Transaction-local: the next transaction acts for nobody (tests/tests/identity.rs).
    }

    #[pg_test]
    fn only_trusted_backends_may_act_as_a_user() {
        run("DO $$ BEGIN CREATE ROLE awf_test_id_nobody; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("SET ROLE awf_test_id_nobody");
        assert_sqlstate("SELECT awf.act_as('u-1')", "42501");
        run("RESET ROLE");
    }
}
