//! Operators' extras: admin keys, the audit chain, retention, hashing, the version, and the
//! generated shell completions and man page.

use super::{one, report, rows};
use crate::cli::{AdminKey, Cli};
use crate::errors::CliError;
use crate::output::{spinner, Out};
use clap::CommandFactory;
use postgres::Client;
use serde_json::{json, Value};

pub fn admin_key(db: &mut Client, out: Out, cmd: AdminKey) -> Result<(), CliError> {
    match cmd {
        AdminKey::Create { name, replace } => {
            let v = one(
                db,
                "SELECT awf.admin_key_create($1, $2)",
                &[&name, &replace],
            )?;
            out.object(&v, |v| {
                format!(
                    "admin key {name}: {}\nshown once: keep it now (only its hash is stored)",
                    v["key"].as_str().unwrap_or("")
                )
            });
        }
        AdminKey::List => {
            let r = rows(db, "awf.admin_key_list()", &[])?;
            out.rows(
                &r,
                &[
                    ("NAME", "name"),
                    ("CREATED", "created_at"),
                    ("BY", "created_by"),
                    ("LAST USED", "last_used_at"),
                    ("REVOKED", "revoked_at"),
                ],
            );
        }
        AdminKey::Revoke { name } => {
            let revoked: bool = db
                .query_one("SELECT awf.admin_key_revoke($1)", &[&name])?
                .get(0);
            if !revoked {
                return Err(CliError::Sql {
                    code: "P0002".into(),
                    message: format!("there is no active admin key named {name:?}"),
                });
            }
            out.object(&json!({"name": name, "revoked": true}), |_| {
                format!("admin key {name} revoked")
            });
        }
    }
    Ok(())
}

pub fn audit_verify(db: &mut Client, out: Out) -> Result<(), CliError> {
    let v = spinner("verifying the audit chain", || {
        one(db, "SELECT awf.audit_verify()", &[])
    })?;
    report(out, &v, "the audit chain is broken", |v| {
        if v["ok"] == Value::Bool(true) {
            format!("audit chain: ok ({} rows)", v["rows_checked"])
        } else {
            format!("audit chain: BROKEN\n{}", super::fields(v))
        }
    })
}

pub fn retention(db: &mut Client, out: Out) -> Result<(), CliError> {
    let v = spinner("enforcing retention", || {
        one(db, "SELECT awf.retention_enforce()", &[])
    })?;
    out.object(&v, super::fields);
    Ok(())
}

pub fn hash(db: &mut Client, out: Out, doc: &Value) -> Result<(), CliError> {
    let h: String = db
        .query_one("SELECT awf.canonical_hash($1::jsonb)", &[doc])?
        .get(0);
    out.object(&json!({"hash": h}), |_| h.clone());
    Ok(())
}

pub fn extension_version(db: &mut Client, out: Out) -> Result<(), CliError> {
    let v: String = db.query_one("SELECT awf.version()", &[])?.get(0);
    out.object(&json!({"extension_version": v}), |_| v.clone());
    Ok(())
}

pub fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "awf", &mut std::io::stdout());
}

pub fn man() -> Result<(), CliError> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|e| CliError::Usage(format!("cannot write the man page: {e}")))
}
