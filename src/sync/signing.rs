//! Signed sync payloads (the protocol is awf_core's `signing`): the per-save key a device
//! signs with, the check of a signed request (signature, timestamp window, one-use nonce) and
//! the signature of an answer. The deployment secret comes from the file named by
//! `awf.signing_secret_file` (superuser-only, read by the server process); it never leaves
//! the backend, only keys derived from it for one save do, to callers who can see that save.

use crate::errors::raise;
use crate::gucs;
use crate::jsonb::JsonB;
use awf_core::signing::{self, Signature};
use awf_core::Error;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{PgLogLevel, PgSqlErrorCode, Uuid};
use serde_json::json;

/// The deployment secret. A missing, unreadable or malformed secret is the deployment's
/// problem, not the caller's: 55000 with a message that names no path (the setting is hidden),
/// the details in the server log.
fn secret(f: &'static str) -> Vec<u8> {
    let unusable = |detail: String| -> ! {
        pgrx::warning!("awf_lifecycle: {f}: {detail}");
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "this deployment has no usable sync signing secret (see the server log)",
            f,
        )
        .report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    };
    let Some(path) = gucs::signing_secret_file() else {
        unusable("awf.signing_secret_file is not set".into())
    };
    crate::key_files::load("awf.signing_secret_file", &path, signing::parse_secret)
        .unwrap_or_else(|why| unusable(why))
}

/// The signing key of a save the caller can see (row-level security decides: a device's user
/// sees its own saves, an admin every save): `{save_id, key, algorithm, header}`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_signing_key(save_id: Uuid) -> JsonB {
    const F: &str = "sync_signing_key";
    crate::locks::connect_mut(|c| {
        crate::saves::store::save(c, save_id, false);
    });
    JsonB(key_json(save_id, F))
}

/// The signing key of a session's save, for `awf.device_register`: `None` when the session
/// has no save or the deployment has no signing secret. The caller has been checked to act
/// for the session's user.
pub fn session_key(c: &mut SpiClient<'_>, session_id: Uuid) -> Option<serde_json::Value> {
    gucs::signing_secret_file()?;
    let save: Option<Uuid> = crate::audit::as_owner(c, |c| {
        crate::spi::one(
            c,
            "SELECT save_id FROM awf.saves WHERE session_id = $1",
            &[session_id.into()],
        )
    });
    Some(key_json(save?, "device_register"))
}

fn key_json(save_id: Uuid, f: &'static str) -> serde_json::Value {
    json!({
        "save_id": save_id.to_string(),
        "key": signing::save_key_hex(&secret(f), &save_id.to_string()),
        "algorithm": "HMAC-SHA256",
        "header": signing::HEADER,
    })
}

/// Checks a signed sync request: `signature` is the `X-AWF-Signature` header, `path` the
/// request's path and query as sent, `body_sha256` the SHA-256 of its body. Refuses (28000)
/// a malformed or wrong signature, a timestamp outside `awf.sync_signature_window_seconds`,
/// and a nonce used before with the save's key; records the nonce. Called in the transaction
/// of the request's own call, so a request that fails can be retried with the same signature.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_request_verify(
    save_id: Uuid,
    method: &str,
    path: &str,
    body_sha256: &str,
    signature: &str,
) {
    const F: &str = "sync_request_verify";
    let fail = |why: &str| -> ! { raise(Error::not_authenticated(why), F) };
    let sig = Signature::parse(signature).unwrap_or_else(|e| raise(e, F));
    if path.len() > 4096 || method.len() > 16 {
        fail("the signed request's method or path is out of bounds");
    }
    if !is_sha256_hex(body_sha256) {
        raise(Error::invalid("body_sha256 must be 64 hex characters"), F);
    }
    let window = gucs::sync_signature_window_seconds();
    let now = unix_now();
    // abs_diff: a hostile t (i64::MIN) must not overflow into "in the window".
    if sig.t.abs_diff(now) > window as u64 {
        fail(&format!(
            "the request's signature time is more than {window} s from the server's clock"
        ));
    }
    let key = signing::save_key(&secret(F), &save_id.to_string());
    let message = signing::request_string(method, path, sig.t, &sig.nonce, body_sha256);
    if !signing::verify(&key, &message, &sig.mac) {
        fail("the request's signature does not verify");
    }
    crate::locks::connect_mut(|c| {
        if !remember_nonce(c, save_id, &sig.nonce, sig.t, now - 2 * window) {
            fail("the request's nonce was used before: a replay");
        }
    });
}

/// Signs an answer to a signed request: the `X-AWF-Signature` header for `status`, the
/// request's `nonce` and the SHA-256 of the answer's body.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_response_sign(save_id: Uuid, status: i32, nonce: &str, body_sha256: &str) -> String {
    const F: &str = "sync_response_sign";
    if !(100..=599).contains(&status) || !is_sha256_hex(body_sha256) {
        raise(
            Error::invalid("status must be 100 to 599 and body_sha256 64 hex characters"),
            F,
        );
    }
    if !signing::is_nonce(nonce) {
        raise(
            Error::invalid("nonce must be 16 to 64 characters of A-Z a-z 0-9 - _"),
            F,
        );
    }
    let key = signing::save_key(&secret(F), &save_id.to_string());
    let t = unix_now();
    let mac = signing::sign(
        &key,
        &signing::response_string(status as u16, nonce, t, body_sha256),
    );
    Signature {
        t,
        nonce: nonce.to_owned(),
        mac,
    }
    .header()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Records a save's nonce with its signature time; false when it was there already. Each call
/// also forgets up to 64 nonces signed before `forget_before` (two windows ago: a request that
/// old is refused by its time anyway), skipping rows another request is deleting, so the table
/// holds about two windows of requests and no request waits on another's cleanup.
fn remember_nonce(
    c: &mut SpiClient<'_>,
    save_id: Uuid,
    nonce: &str,
    t: i64,
    forget_before: i64,
) -> bool {
    crate::audit::as_owner(c, |c| {
        crate::spi::run(
            c,
            "DELETE FROM awf.sync_nonces WHERE ctid = ANY (ARRAY(
               SELECT ctid FROM awf.sync_nonces WHERE t < $1
               LIMIT 64 FOR UPDATE SKIP LOCKED))",
            None,
            &[forget_before.into()],
        )
        .expect("forget old nonces");
        let t = crate::spi::run(
            c,
            "INSERT INTO awf.sync_nonces (save_id, nonce, t) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING 1",
            None,
            &[save_id.into(), nonce.into(), t.into()],
        )
        .expect("insert into awf.sync_nonces");
        t.len() == 1
    })
}
