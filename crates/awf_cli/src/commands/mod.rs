//! Running a parsed command: connect, make the one SQL call it maps to, print the result.

/// `admin-key`, `audit-verify`, `retention`, `hash`, `extension-version`, completions, man.
mod admin;
/// `device register|record|sync|status`, over the device client.
mod device;
/// `snapshot`, `recap`, `export`, `import`, `wal`.
mod lifecycle;
/// `sync status|verify|export|stats|conflicts`.
mod sync;

use crate::cli::{Cli, Command};
use crate::errors::CliError;
use crate::output::Out;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use serde_json::Value;
use std::io::Read;

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let out = Out { json: cli.json };
    let url = cli.database_url;
    match cli.command {
        Command::Snapshot(c) => lifecycle::snapshot(&mut connect(url)?, out, c),
        Command::Recap {
            session,
            last_turns,
        } => lifecycle::recap(&mut connect(url)?, out, &session, last_turns),
        Command::Export {
            session,
            output,
            no_redact,
        } => lifecycle::export(&mut connect(url)?, out, &session, output, no_redact),
        Command::Import {
            file,
            preserve_turn_id,
        } => {
            let bundle = read_json(&file)?;
            lifecycle::import(&mut connect(url)?, out, &bundle, preserve_turn_id)
        }
        Command::Wal(c) => lifecycle::wal(&mut connect(url)?, out, c),
        Command::Reconcile { session } => lifecycle::wal(
            &mut connect(url)?,
            out,
            crate::cli::Wal::Reconcile { session },
        ),
        Command::Sync(c) => sync::run(&mut connect(url)?, out, c),
        Command::Verify { save_id } => sync::run(
            &mut connect(url)?,
            out,
            crate::cli::Sync::Verify(crate::cli::VerifyArgs {
                save_id: Some(save_id),
                sample: None,
            }),
        ),
        Command::Stats => sync::run(&mut connect(url)?, out, crate::cli::Sync::Stats),
        Command::AdminKey(c) => admin::admin_key(&mut connect(url)?, out, c),
        Command::Device(c) => device::run(out, c),
        Command::AuditVerify => admin::audit_verify(&mut connect(url)?, out),
        Command::Retention => admin::retention(&mut connect(url)?, out),
        Command::Hash { file } => {
            let doc = read_json(&file)?;
            admin::hash(&mut connect(url)?, out, &doc)
        }
        Command::ExtensionVersion => admin::extension_version(&mut connect(url)?, out),
        Command::Completions { shell } => {
            admin::completions(shell);
            Ok(())
        }
        Command::Man => admin::man(),
    }
}

fn connect(url: Option<String>) -> Result<Client, CliError> {
    let url = url.ok_or_else(|| {
        CliError::Usage("no database: pass --database-url or set DATABASE_URL".into())
    })?;
    Client::connect(&url, NoTls).map_err(|e| CliError::Connect(format!("cannot connect: {e}")))
}

/// The one `jsonb` value a statement returns.
fn one(db: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Value, CliError> {
    Ok(db.query_one(sql, params)?.get(0))
}

/// The rows of a set-returning function, each as a JSON object:
/// `SELECT to_jsonb(r) FROM <call> r`.
fn rows(
    db: &mut Client,
    call: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Value>, CliError> {
    let sql = format!("SELECT to_jsonb(r) FROM {call} r");
    Ok(db.query(&sql, params)?.iter().map(|r| r.get(0)).collect())
}

fn read_json(path: &str) -> Result<Value, CliError> {
    let mut text = String::new();
    let res = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    res.map_err(|e| CliError::Usage(format!("cannot read {path}: {e}")))?;
    awf_core::json::parse_str(&text)
        .map_err(|e| CliError::Usage(format!("{path}: invalid JSON: {}", e.message)))
}

/// Writes `bytes` to `path`, or to standard output without one.
fn write_out(path: Option<&str>, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    match path {
        Some(p) => {
            std::fs::write(p, bytes).map_err(|e| CliError::Usage(format!("cannot write {p}: {e}")))
        }
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|e| CliError::Usage(format!("cannot write to standard output: {e}"))),
    }
}

/// Prints a `{ok, ...}` report; a report that is not ok is exit 4.
fn report(
    out: Out,
    v: &Value,
    failure: &str,
    human: impl FnOnce(&Value) -> String,
) -> Result<(), CliError> {
    out.object(v, human);
    if v["ok"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(CliError::Failed(failure.to_owned()))
    }
}

/// A short `key: value` listing of an object's scalar members, for human output.
fn fields(v: &Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None => v.to_string(),
    }
}
