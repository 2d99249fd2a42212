//! Admin keys: named bearer credentials for admin tools that reach the extension through the
//! HTTP gateway. Only a key's SHA-256 is stored; the key itself is shown once, when created.
//!
//! `awf.admin_key_create`, `awf.admin_key_list` and `awf.admin_key_revoke` are for `awf_admin`.
//! `awf.act_as_admin(key)` is for the gateway role (`awf_gateway`): it verifies the key and
//! gives the rest of the transaction admin rights, under the key's name, which the audit log
//! records as the actor (`key:<name>`). The gateway's login has no admin rights without a key.

use crate::audit;
use crate::errors::raise;
use crate::spi::col;
use awf_core::{token, Error};
use pgrx::prelude::*;
use serde_json::json;

/// Key names: short, printable, and safe to show in logs and audit rows.
const MAX_NAME_LEN: usize = 64;

fn check_name(name: &str, f: &'static str) {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b"_.-".contains(&b))
        });
    if !ok {
        raise(
            Error::invalid(format!(
                "an admin key name is 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and _.- \
                 (not first), got {:?}",
                awf_core::error::excerpt(name, 80)
            )),
            f,
        );
    }
}

/// Creates an admin key named `name` and returns `{name, key, created_at}`; the key is shown
/// only here. A name with an active key is refused (23505) unless `replace`, which revokes the
/// old key in the same step (a rotation). A revoked name can be created again.
#[pg_extern(volatile, parallel_unsafe)]
fn admin_key_create(name: &str, replace: default!(bool, false)) -> crate::jsonb::JsonB {
    const F: &str = "admin_key_create";
    crate::identity::require_admin(F);
    check_name(name, F);
    let key = token::new_admin_key();
    let hash = token::admin_key_hash(&key).expect("a new key is well formed");
    crate::locks::connect_mut(|c| {
        let created_by = crate::identity::actor();
        let t = audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "INSERT INTO awf.admin_keys AS k (name, key_hash, created_by)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                   SET key_hash = excluded.key_hash, created_by = excluded.created_by,
                       created_at = pg_catalog.now(), last_used_at = NULL, revoked_at = NULL
                   WHERE k.revoked_at IS NOT NULL OR $4
                 RETURNING created_at::text",
                Some(1),
                &[
                    name.into(),
                    hash.as_str().into(),
                    created_by.as_str().into(),
                    replace.into(),
                ],
            )
            .expect("insert into awf.admin_keys")
        });
        if t.is_empty() {
            raise(
                Error::conflict(format!(
                    "admin key {name:?} exists; revoke it first, or pass replace => true"
                )),
                F,
            );
        }
        let created_at: String = col(&t.first(), 1);
        audit::record(
            c,
            "admin_key_create",
            None,
            json!({"name": name, "replaced": replace}),
        );
        crate::jsonb::JsonB(json!({"name": name, "key": key, "created_at": created_at}))
    })
}

/// Every admin key, active or revoked (never the key or its hash), by name.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_unsafe)]
fn admin_key_list() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(created_at, TimestampWithTimeZone),
        name!(created_by, String),
        name!(last_used_at, Option<TimestampWithTimeZone>),
        name!(revoked_at, Option<TimestampWithTimeZone>),
    ),
> {
    crate::identity::require_admin("admin_key_list");
    let rows = crate::locks::connect_mut(|c| {
        audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "SELECT name, created_at, created_by, last_used_at, revoked_at
                 FROM awf.admin_keys ORDER BY name",
                None,
                &[],
            )
            .expect("select awf.admin_keys")
            .map(|r| {
                (
                    r.get::<String>(1).unwrap().unwrap(),
                    r.get::<TimestampWithTimeZone>(2).unwrap().unwrap(),
                    r.get::<String>(3).unwrap().unwrap(),
                    r.get::<TimestampWithTimeZone>(4).unwrap(),
                    r.get::<TimestampWithTimeZone>(5).unwrap(),
                )
            })
            .collect::<Vec<_>>()
        })
    });
    TableIterator::new(rows)
}

/// Revokes the active key named `name` (P0002 when there is none). Requests presenting it
/// fail from the next transaction on; one already under way keeps its rights until it ends.
#[pg_extern(volatile, parallel_unsafe)]
fn admin_key_revoke(name: &str) -> bool {
    const F: &str = "admin_key_revoke";
    crate::identity::require_admin(F);
    check_name(name, F);
    crate::locks::connect_mut(|c| {
        let t = audit::as_owner(c, |c| {
            crate::spi::run(
                c,
                "UPDATE awf.admin_keys SET revoked_at = pg_catalog.now()
                 WHERE name OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL RETURNING name",
                Some(1),
                &[name.into()],
            )
            .expect("update awf.admin_keys")
        });
        if t.is_empty() {
            raise(
                Error::not_found(format!("no active admin key is named {name:?}")),
                F,
            );
        }
        audit::record(c, "admin_key_revoke", None, json!({"name": name}));
        true
    })
}

/// Verifies an admin key and gives the rest of this transaction admin rights under its name
/// (returned). A malformed, unknown or revoked key is refused with one message (28000), so a
/// caller learns nothing about which names exist. Granted to `awf_gateway` only.
#[pg_extern(volatile, parallel_unsafe)]
fn act_as_admin(key: &str) -> String {
    const F: &str = "act_as_admin";
    let refuse = |why: &str| -> ! {
        log!("awf audit: {F} refused: {why}");
        raise(
            Error::not_authenticated("the admin key is not valid (unknown, revoked or malformed)"),
            F,
        )
    };
    let Ok(hash) = token::admin_key_hash(key) else {
        refuse("malformed key")
    };
    let name = crate::locks::connect_mut(|c| {
        audit::as_owner(c, |c| {
            let t = crate::spi::run(
                c,
                "SELECT name FROM awf.admin_keys
                     WHERE key_hash OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL",
                Some(1),
                &[hash.as_str().into()],
            )
            .expect("select awf.admin_keys");
            let name: Option<String> = if t.is_empty() {
                None
            } else {
                t.first().get(1).expect("read name")
            };
            if let Some(n) = &name {
                // Last use to the minute, without ever waiting: concurrent requests with one
                // key must not queue on its row until the slowest of them commits.
                crate::spi::run(
                    c,
                    "UPDATE awf.admin_keys SET last_used_at = pg_catalog.now()
                     WHERE name = (SELECT name FROM awf.admin_keys
                                   WHERE name OPERATOR(pg_catalog.=) $1
                                     AND (last_used_at IS NULL
                                          OR last_used_at < pg_catalog.now() - interval '1 minute')
                                   FOR UPDATE SKIP LOCKED)",
                    None,
                    &[n.as_str().into()],
                )
                .expect("update awf.admin_keys");
            }
            name
        })
    });
    let Some(name) = name else {
        refuse("unknown or revoked key")
    };
    crate::identity::set_guarded(
        c"awf.admin_key",
        &name,
        pgrx::pg_sys::GucAction::GUC_ACTION_LOCAL,
        F,
    );
    name
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, one, run};
    use pgrx::prelude::*;

    fn gateway_login(role: &str) {
        run(&format!(
            "DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ));
        run(&format!("GRANT awf_gateway TO {role}"));
    }

    #[pg_test]
    fn a_key_gives_the_gateway_admin_rights_under_its_name() {
        let created = json("SELECT awf.admin_key_create('ops')");
        let key = created["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("awfk_"));
        assert_sqlstate("SELECT awf.admin_key_create('ops')", "23505");
        assert_sqlstate("SELECT awf.admin_key_create('Ops')", "22023");
        assert_sqlstate("SELECT awf.admin_key_create('')", "22023");
        run("SELECT awf.session_upsert('00000000-0000-4000-8000-000000000001', 'u1', '{}')");
        gateway_login("awf_test_gw");
        run("SET ROLE awf_test_gw");
        // Without a key: the acting user's rows only, and no admin function.
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.sessions"), Some(0));
        assert_sqlstate("SELECT awf.sync_stats()", "42501");
        assert_sqlstate("SELECT awf.admin_key_list()", "42501");
        assert_sqlstate("SELECT awf.act_as_admin('awfk_nope')", "28000");
        assert_sqlstate("SELECT set_config('awf.admin_key', 'ops', true)", "42501");
        assert_eq!(
            one::<String>(&format!("SELECT awf.act_as_admin('{key}')")).as_deref(),
            Some("ops")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.sessions"), Some(1));
        assert!(json("SELECT awf.sync_stats()").is_object());
        // The audit row of an admin action names the key.
        run("SELECT awf.snapshot_create('00000000-0000-4000-8000-000000000001', 'by key')");
        run("RESET ROLE");
        assert_eq!(
            one::<String>(
                "SELECT actor FROM awf.audit_log WHERE action = 'snapshot_create' ORDER BY id DESC LIMIT 1"
            )
            .as_deref(),
            Some("key:ops")
        );
        // Revoked: refused with the same message as an unknown key.
        assert!(one::<bool>("SELECT awf.admin_key_revoke('ops')").unwrap());
        assert_sqlstate("SELECT awf.admin_key_revoke('ops')", "P0002");
        assert_sqlstate(&format!("SELECT awf.act_as_admin('{key}')"), "28000");
        let listed = json(
            "SELECT jsonb_agg(jsonb_build_object('name', name, 'revoked', revoked_at IS NOT NULL))
             FROM awf.admin_key_list()",
        );
        assert_eq!(
            listed,
            serde_json::json!([{"name": "ops", "revoked": true}])
        );
        // A revoked name can be issued again; replace rotates an active one.
        let again = json("SELECT awf.admin_key_create('ops')");
        let rotated = json("SELECT awf.admin_key_create('ops', true)");
        assert_ne!(again["key"], rotated["key"]);
        assert_sqlstate(
            &format!(
                "SELECT awf.act_as_admin('{}')",
                again["key"].as_str().unwrap()
            ),
            "28000",
        );
    }

    #[pg_test]
    fn only_admins_manage_keys_and_only_the_gateway_presents_them() {
        run("DO $$ BEGIN CREATE ROLE awf_test_kapp; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("GRANT awf_app TO awf_test_kapp");
        let key = json("SELECT awf.admin_key_create('k1')")["key"]
            .as_str()
            .unwrap()
            .to_owned();
        run("SET ROLE awf_test_kapp");
        assert_sqlstate("SELECT awf.admin_key_create('k2')", "42501");
        assert_sqlstate("SELECT awf.admin_key_revoke('k1')", "42501");
        assert_sqlstate(&format!("SELECT awf.act_as_admin('{key}')"), "42501");
        assert_sqlstate("SELECT * FROM awf.admin_keys", "42501");
        run("RESET ROLE");
    }
}
