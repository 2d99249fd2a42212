//! Session lifecycle: snapshots, recap, export and import, and the write-ahead log.

use super::{fields, one, rows, write_out};
use crate::cli::{Snapshot, Wal};
use crate::errors::CliError;
use crate::output::{spinner, Out};
use postgres::Client;
use serde_json::{json, Value};

pub fn snapshot(db: &mut Client, out: Out, cmd: Snapshot) -> Result<(), CliError> {
    match cmd {
        Snapshot::Create { session, label } => {
            let v = one(
                db,
                "SELECT awf.snapshot_create($1::text::uuid, $2)",
                &[&session, &label],
            )?;
            out.object(&v, |v| {
                format!(
                    "snapshot {} of session {session} at turn {}",
                    v["snapshot_id"], v["turn_id"]
                )
            });
        }
        Snapshot::List { session } => {
            let r = rows(db, "awf.snapshot_list($1::text::uuid)", &[&session])?;
            out.rows(
                &r,
                &[
                    ("ID", "id"),
                    ("TURN", "turn_id"),
                    ("CREATED", "created_at"),
                    ("LABEL", "label"),
                    ("BYTES", "size_bytes"),
                ],
            );
        }
        Snapshot::Restore { session, snapshot } => {
            let v = one(
                db,
                "SELECT awf.snapshot_restore($1::text::uuid, $2)",
                &[&session, &snapshot],
            )?;
            out.object(&v, |v| {
                format!(
                    "session {session} restored to snapshot {snapshot} (turn {})",
                    v["turn_id"]
                )
            });
        }
        Snapshot::Delete { session, snapshot } => {
            let deleted: bool = db
                .query_one(
                    "SELECT awf.snapshot_delete($1::text::uuid, $2)",
                    &[&session, &snapshot],
                )?
                .get(0);
            if !deleted {
                return Err(CliError::Sql {
                    code: "P0002".into(),
                    message: format!("session {session} has no snapshot {snapshot}"),
                });
            }
            out.object(
                &json!({"session_id": session, "snapshot_id": snapshot, "deleted": true}),
                |_| format!("snapshot {snapshot} of session {session} deleted"),
            );
        }
    }
    Ok(())
}

pub fn recap(db: &mut Client, out: Out, session: &str, last_turns: i32) -> Result<(), CliError> {
    let v = one(
        db,
        "SELECT awf.recap($1::text::uuid, $2)",
        &[&session, &last_turns],
    )?;
    out.object(&v, |v| {
        let mut s = v["text"].as_str().unwrap_or("").to_owned();
        if let Some(objectives) = v["objectives"].as_array().filter(|o| !o.is_empty()) {
            s.push_str("\n\nobjectives:");
            for o in objectives {
                s.push_str(&format!(
                    "\n  [{}] {}",
                    o["priority"],
                    o["text"].as_str().unwrap_or("")
                ));
            }
        }
        if let Some(n) = v["skipped_count"].as_u64() {
            s.push_str(&format!(
                "\n\n{n} unreadable part(s) of the state skipped (see --json)"
            ));
        }
        s
    });
    Ok(())
}

pub fn export(
    db: &mut Client,
    out: Out,
    session: &str,
    output: Option<String>,
    no_redact: bool,
) -> Result<(), CliError> {
    let redact = !no_redact;
    let bundle = spinner("exporting", || {
        one(
            db,
            "SELECT awf.session_export($1::text::uuid, $2)",
            &[&session, &redact],
        )
    })?;
    let text = serde_json::to_vec_pretty(&bundle).expect("JSON serializes");
    match output {
        Some(path) => {
            write_out(Some(&path), &text)?;
            let summary = json!({"session_id": session, "output": path, "bytes": text.len(),
                                 "redacted": redact});
            out.object(&summary, |_| {
                format!(
                    "session {session} exported to {path} ({} bytes)",
                    text.len()
                )
            });
        }
        None => {
            write_out(None, &text)?;
            println!();
        }
    }
    Ok(())
}

pub fn import(db: &mut Client, out: Out, bundle: &Value, preserve: bool) -> Result<(), CliError> {
    let v = spinner("importing", || {
        one(
            db,
            "SELECT awf.session_import($1::jsonb, $2)",
            &[bundle, &preserve],
        )
    })?;
    out.object(&v, fields);
    Ok(())
}

pub fn wal(db: &mut Client, out: Out, cmd: Wal) -> Result<(), CliError> {
    match cmd {
        Wal::Reconcile { session } => {
            let r = spinner("reconciling", || {
                rows(db, "awf.wal_reconcile($1::text::uuid)", &[&session])
            })?;
            out.rows(
                &r,
                &[
                    ("SESSION", "session_id"),
                    ("TURN", "turn_id"),
                    ("ACTION", "action"),
                    ("DETAIL", "detail"),
                ],
            );
        }
        Wal::List { session } => {
            let r = rows(db, "awf.wal_list($1::text::uuid)", &[&session])?;
            out.rows(
                &r,
                &[
                    ("ID", "id"),
                    ("TURN", "turn_id"),
                    ("APPLIED", "applied"),
                    ("ATTEMPTS", "attempts"),
                    ("CREATED", "created_at"),
                    ("LAST ERROR", "last_error"),
                ],
            );
        }
        Wal::Cleanup { days } => {
            let interval = format!("{days} days");
            let n: i64 = db
                .query_one("SELECT awf.wal_cleanup($1::text::interval)", &[&interval])?
                .get(0);
            out.object(&json!({"deleted": n, "older_than_days": days}), |_| {
                format!("{n} applied WAL entries older than {days} days deleted")
            });
        }
    }
    Ok(())
}
