//! Cloud saves and sync: status, verify, export, stats, conflicts.

use super::{one, report, rows, write_out};
use crate::cli::{ExportFormat, Sync};
use crate::errors::CliError;
use crate::output::{spinner, Out};
use postgres::Client;
use serde_json::{json, Value};

pub fn run(db: &mut Client, out: Out, cmd: Sync) -> Result<(), CliError> {
    match cmd {
        Sync::Status { save_id: None } | Sync::Stats => {
            let v = one(db, "SELECT awf.sync_stats()", &[])?;
            out.object(&v, stats_text);
        }
        Sync::Status { save_id: Some(id) } => {
            let v = one(db, "SELECT awf.save_details($1::text::uuid)", &[&id])?;
            out.object(&v, stats_text);
        }
        Sync::Verify(args) => match (args.save_id, args.sample) {
            (Some(id), _) => {
                let v = spinner("verifying", || {
                    one(db, "SELECT awf.save_verify($1::text::uuid)", &[&id])
                })?;
                report(out, &v, "save verification failed", |v| {
                    if v["ok"] == Value::Bool(true) {
                        format!("save {id}: ok ({} turns checked)", v["turns_checked"])
                    } else {
                        format!(
                            "save {id}: FAILED at turn {}: {}",
                            v["first_bad_turn"],
                            v["reason"].as_str().unwrap_or("")
                        )
                    }
                })?;
            }
            (None, Some(pct)) => {
                if !(0.0..=100.0).contains(&pct) {
                    return Err(CliError::Usage("--sample is a percentage, 0 to 100".into()));
                }
                let r = spinner("verifying a sample of saves", || {
                    rows(db, "awf.save_verify_sample($1)", &[&pct])
                })?;
                out.rows(
                    &r,
                    &[
                        ("SAVE", "save_id"),
                        ("OK", "ok"),
                        ("FIRST BAD TURN", "first_bad_turn"),
                        ("REASON", "reason"),
                    ],
                );
                let bad = r.iter().filter(|x| x["ok"] != Value::Bool(true)).count();
                if bad > 0 {
                    return Err(CliError::Failed(format!(
                        "{bad} of {} sampled saves failed verification",
                        r.len()
                    )));
                }
            }
            (None, None) => unreachable!("clap requires --save-id or --sample"),
        },
        Sync::Export {
            save_id,
            format,
            output,
            include_audit,
        } => {
            let sql_format = match format {
                ExportFormat::Json => "json",
                ExportFormat::Jsonl | ExportFormat::Zip => "jsonl",
            };
            if format == ExportFormat::Zip && output.is_none() {
                return Err(CliError::Usage(
                    "a zip export needs --output FILE (it is binary)".into(),
                ));
            }
            let text: String = spinner("exporting", || {
                db.query_one(
                    "SELECT awf.save_export($1::text::uuid, $2, $3)",
                    &[&save_id, &sql_format, &include_audit],
                )
                .map(|r| r.get(0))
            })?;
            let bytes = if format == ExportFormat::Zip {
                let name = awf_core::archive_zip::entry_name(&save_id);
                awf_core::archive_zip::jsonl_to_zip(&name, &text)
                    .map_err(|e| CliError::Usage(e.message))?
            } else {
                text.into_bytes()
            };
            write_out(output.as_deref(), &bytes)?;
            if let Some(path) = output {
                let summary = json!({"save_id": save_id, "output": path, "bytes": bytes.len()});
                out.object(&summary, |_| {
                    format!("save {save_id} exported to {path} ({} bytes)", bytes.len())
                });
            }
        }
        Sync::Conflicts { save_id } => {
            let r = rows(db, "awf.conflicts($1::text::uuid)", &[&save_id])?;
            out.rows(
                &r,
                &[
                    ("ID", "conflict_id"),
                    ("SAVE", "save_id"),
                    ("DEVICE", "device_id"),
                    ("STRATEGY", "strategy"),
                    ("CHOSEN", "chosen"),
                    ("ARCHIVE", "archive_id"),
                    ("AT", "created_at"),
                ],
            );
        }
    }
    Ok(())
}

/// Statistics or details as nested `key: value` lines.
fn stats_text(v: &Value) -> String {
    fn walk(v: &Value, indent: usize, out: &mut Vec<String>) {
        if let Some(map) = v.as_object() {
            for (k, x) in map {
                if x.is_object() {
                    out.push(format!("{:indent$}{k}:", ""));
                    walk(x, indent + 2, out);
                } else {
                    out.push(format!("{:indent$}{k}: {x}", ""));
                }
            }
        }
    }
    let mut lines = Vec::new();
    walk(v, 0, &mut lines);
    lines.join("\n")
}
