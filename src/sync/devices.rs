//! Devices and their sync tokens. A token is shown once, at registration or rotation; only
//! its SHA-256 is stored, and it expires after `awf.sync_token_ttl_days`.

use crate::audit;
use crate::errors::raise;
use crate::gucs;
use crate::identity::DeviceScope;
use crate::jsonb::JsonB;
use crate::spi::col;
use awf_core::{token, Error};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use serde_json::json;

/// An authenticated device. While it lives, the call acts for the device's user (row-level
/// security shows that user's rows and no other's), whoever the caller is.
#[must_use = "the call acts for the device's user only while the Device lives"]
pub struct Device {
    pub device_id: String,
    pub user_id_hash: String,
    _acting: DeviceScope,
}

/// Checks a device's token; refuses (42501) an unknown device, a wrong or expired token, all
/// with one message, so a caller cannot probe which device ids exist.
///
/// A refused call rolls back, and its audit row must not roll back with it: a short-lived
/// background worker writes it (`sync_refused`) with the reason, and the server log gets a
/// line too. The device row is read as the extension's owner: the caller does not act for
/// any user yet, so row-level security would hide it.
pub fn authenticate(
    c: &mut SpiClient<'_>,
    device_id: &str,
    sync_token: &str,
    f: &'static str,
) -> Device {
    let user = verify(c, device_id, sync_token, f);
    Device {
        device_id: device_id.to_owned(),
        _acting: DeviceScope::enter(&user),
        user_id_hash: user,
    }
}

/// Verifies a device's credential (as [`authenticate`] does) and acts for the device's user
/// for the rest of the transaction, like `awf.act_as`, with the device named as the actor of
/// its audit rows. Returns the user. Granted to `awf_gateway`: the HTTP server calls it for
/// device requests before the one call the request maps to.
#[pg_extern(volatile, parallel_unsafe)]
fn act_as_device(device_id: &str, sync_token: &str) -> String {
    const F: &str = "act_as_device";
    let user = crate::locks::connect_mut(|c| verify(c, device_id, sync_token, F));
    let local = pgrx::pg_sys::GucAction::GUC_ACTION_LOCAL;
    crate::identity::set_guarded(c"awf.user_id_hash", &user, local, F);
    crate::identity::set_guarded(c"awf.acting_device", device_id, local, F);
    user
}

/// Checks a device's credential and returns its user; see [`authenticate`].
fn verify(c: &mut SpiClient<'_>, device_id: &str, sync_token: &str, f: &'static str) -> String {
    let refuse = |why: &str| -> ! {
        let shown = awf_core::error::excerpt(device_id, 128);
        log!("awf audit: {f} refused for device {shown:?}: {why}");
        crate::wal::bgworker::audit_refusal(f, device_id, why);
        raise(
            Error::not_allowed(format!(
                "device {device_id:?} is not authorized: unknown device, or a wrong or expired sync token"
            )),
            f,
        )
    };
    let hash = match token::token_hash(sync_token) {
        Ok(h) => h,
        Err(_) => refuse("the sync token is malformed"),
    };
    let owner = crate::audit::AsOwner::enter(c);
    let t = crate::spi::run(
        c,
        "SELECT user_id_hash, token_hash, token_expires_at < now() FROM awf.devices
             WHERE device_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        Some(1),
        &[device_id.into()],
    )
    .expect("select awf.devices");
    if t.is_empty() {
        refuse("unknown device");
    }
    let t = t.first();
    let user: String = col(&t, 1);
    let stored: String = col(&t, 2);
    let expired: bool = col(&t, 3);
    if !awf_core::ids::secrets_equal(hash.as_bytes(), stored.as_bytes()) {
        refuse("wrong sync token");
    }
    if expired {
        refuse("the sync token expired; rotate it or register the device again");
    }
    crate::spi::run(
        c,
        "UPDATE awf.devices SET last_seen_at = pg_catalog.now()
         WHERE device_id OPERATOR(pg_catalog.=) $1",
        None,
        &[device_id.into()],
    )
    .expect("update awf.devices");
    drop(owner);
    user
}

/// Refuses (42501) a device acting on another user's save, and P0002 for no such save. The
/// owner is read past row-level security, so the refusal is a refusal, audited as such.
pub fn check_owner(c: &mut SpiClient<'_>, device: &Device, save_id: Uuid, f: &'static str) {
    match crate::saves::store::save_belongs_to(c, save_id, &device.user_id_hash) {
        Some(true) => {}
        None => raise(
            Error::not_found(format!("save {save_id} does not exist")),
            f,
        ),
        Some(false) => {
            log!(
                "awf audit: {f} refused for device {:?}: save {save_id} belongs to another user",
                device.device_id
            );
            crate::wal::bgworker::audit_refusal(
                f,
                &device.device_id,
                "the save belongs to another user",
            );
            raise(
                Error::not_allowed(format!(
                    "device {:?} may not use save {save_id}: it belongs to another user",
                    device.device_id
                )),
                f,
            );
        }
    }
}

/// Records the newest turn a device has seen (as the owner: callers cannot write devices).
pub fn saw_turn(c: &mut SpiClient<'_>, device_id: &str, turn: Option<i64>) {
    let _owner = crate::audit::AsOwner::enter(c);
    crate::spi::run(
        c,
        "UPDATE awf.devices SET last_turn_seen = $2 WHERE device_id OPERATOR(pg_catalog.=) $1",
        None,
        &[device_id.into(), turn.into()],
    )
    .expect("update awf.devices");
}

/// Gives a device a new token. As the owner: no caller role may write `awf.devices`, or it
/// could set its own expiry.
/// Issues a new token: (token, expiry as RFC 3339 UTC text, seconds until it expires). The
/// seconds let a device schedule its refresh without parsing dates or trusting its clock.
fn issue(c: &mut SpiClient<'_>, device_id: &str) -> (String, String, i64) {
    let _owner = crate::audit::AsOwner::enter(c);
    let tok = token::new_token();
    let hash = token::token_hash(&tok).expect("a new token is well formed");
    let t = crate::spi::run(c,

            "UPDATE awf.devices SET token_hash = $2,
                    token_expires_at = now() + make_interval(days => $3), rotated_at = now()
             WHERE device_id = $1
             RETURNING to_char(token_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                       extract(epoch FROM token_expires_at - now())::bigint",
            Some(1),
            &[
                device_id.into(),
                hash.into(),
                gucs::sync_token_ttl_days().into(),
            ],
        )
        .expect("update awf.devices");
    let row = t.first();
    (tok, col(&row, 1), col(&row, 2))
}

/// Registers a device for a user (and optionally the session it plays) and returns a new
/// sync token: `{device_id, sync_token, expires_at}`, and `signing_key` (as
/// `awf.sync_signing_key` returns it) when the session has a save and the deployment has a
/// signing secret. The token is shown only here; only its
/// hash is stored. Registering a known device of the same user issues it a new token; a device
/// of another user is refused (42501).
#[pg_extern(volatile, parallel_unsafe)]
fn device_register(
    device_id: Option<&str>,
    user_id_hash: Option<&str>,
    session_id: default!(Option<Uuid>, "NULL"),
) -> JsonB {
    const F: &str = "device_register";
    let device_id = crate::errors::required(device_id, "device_id", F);
    let user_id_hash = crate::errors::required(user_id_hash, "user_id_hash", F);
    if device_id.trim().is_empty() || user_id_hash.is_empty() {
        raise(
            Error::invalid("device_id and user_id_hash must not be empty"),
            F,
        );
    }
    crate::identity::require_acting_for(user_id_hash, F);
    crate::locks::connect_mut(|c| {
        if let Some(sid) = session_id {
            // Read as the caller: a session it cannot see does not exist for it.
            let t = crate::spi::run(
                c,
                "SELECT user_id_hash FROM awf.sessions WHERE session_id = $1",
                Some(1),
                &[sid.into()],
            )
            .expect("select awf.sessions");
            if t.is_empty() {
                raise(Error::not_found(format!("session {sid} does not exist")), F);
            }
            if col::<String>(&t.first(), 1) != user_id_hash {
                raise(
                    Error::not_allowed(format!("session {sid} belongs to another user")),
                    F,
                );
            }
        }
        let owner = crate::audit::AsOwner::enter(c);
        let t = crate::spi::run(c,

                "INSERT INTO awf.devices (device_id, user_id_hash, session_id, token_hash, token_expires_at)
                 VALUES ($1, $2, $3, '', pg_catalog.now())
                 ON CONFLICT (device_id) DO UPDATE SET session_id = coalesce(EXCLUDED.session_id, awf.devices.session_id)
                 WHERE awf.devices.user_id_hash OPERATOR(pg_catalog.=) EXCLUDED.user_id_hash
                 RETURNING user_id_hash",
                Some(1),
                &[device_id.into(), user_id_hash.into(), session_id.into()],
            )
            .expect("upsert awf.devices");
        drop(owner);
        if t.is_empty() {
            log!("awf audit: device_register refused for device {device_id:?}: it belongs to another user");
            crate::wal::bgworker::audit_refusal(F, device_id, "the device belongs to another user");
            raise(
                Error::not_allowed(format!("device {device_id:?} belongs to another user")),
                F,
            );
        }
        let (tok, expires, expires_in) = issue(c, device_id);
        audit::record(
            c,
            "device_register",
            session_id,
            json!({"device_id": device_id, "expires_at": expires}),
        );
        let mut out = json!({"device_id": device_id, "sync_token": tok, "expires_at": expires,
                             "expires_in_seconds": expires_in});
        // A device registered for a session with a save gets that save's signing key here,
        // over the channel that just authenticated it (when the deployment signs).
        if let Some(key) = session_id.and_then(|sid| super::signing::session_key(c, sid)) {
            out["signing_key"] = key;
        }
        JsonB(out)
    })
}

/// Replaces a device's sync token (the current one must be valid); returns the new one.
#[pg_extern(volatile, parallel_unsafe)]
fn device_rotate_token(device_id: &str, sync_token: &str) -> JsonB {
    const F: &str = "device_rotate_token";
    crate::locks::connect_mut(|c| {
        let _device = authenticate(c, device_id, sync_token, F);
        let (tok, expires, expires_in) = issue(c, device_id);
        audit::record(
            c,
            "device_rotate_token",
            None,
            json!({"device_id": device_id, "expires_at": expires}),
        );
        JsonB(
            json!({"device_id": device_id, "sync_token": tok, "expires_at": expires,
                     "expires_in_seconds": expires_in}),
        )
    })
}
