//! Command definitions and their SQL calls.

use postgres::{Client, NoTls};
use serde_json::Value;
use std::io::Read;

/// The `awf` command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "awf",
    version,
    about = "Operate awf_lifecycle sessions and saves"
)]
pub struct Cli {
    /// PostgreSQL connection string of a database with the awf_lifecycle extension.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the extension version the database runs.
    ExtensionVersion,
    /// Print the canonical SHA-256 hash of a JSON document (a file, or - for standard input).
    Hash {
        /// Path of the JSON document, or - for standard input.
        file: String,
    },
    /// Reconcile unapplied WAL entries (awf.wal_reconcile); one JSON line per entry.
    Reconcile {
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
    },
    /// Rebuild and check every turn of a save (awf.save_verify); exit 4 when it fails.
    Verify {
        /// The save's id.
        save_id: String,
    },
    /// Check the audit log's hash chain (awf.audit_verify); exit 4 when it is broken.
    AuditVerify,
    /// Apply every retention setting (awf.retention_enforce).
    Retention,
    /// Print cloud-save and sync statistics (awf.sync_stats).
    Stats,
    /// Manage the admin keys of admin tools over HTTP (needs awf_admin).
    #[command(subcommand)]
    AdminKey(AdminKey),
}

#[derive(Debug, clap::Subcommand)]
enum AdminKey {
    /// Create a named key and print it once (only its hash is stored):
    /// `{"name", "key", "created_at"}`.
    Create {
        /// The key's name; it is the actor in the audit row of every action taken with it.
        name: String,
        /// Replace an existing key of that name (the old one stops working).
        #[arg(long)]
        replace: bool,
    },
    /// List the keys (never the keys themselves): one JSON line per key.
    List,
    /// Revoke a key by name; it stops working at once.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// A failure, with the exit code scripts can branch on.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or unreadable input (exit 2).
    Usage(String),
    /// The database refused the call; carries the SQLSTATE (exit 1).
    Sql { code: String, message: String },
    /// The database could not be reached (exit 3).
    Connect(String),
    /// A verification found a problem (exit 4); the report was printed.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Sql { .. } => 1,
            CliError::Usage(_) => 2,
            CliError::Connect(_) => 3,
            CliError::Failed(_) => 4,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Connect(m) | CliError::Failed(m) => f.write_str(m),
            CliError::Sql { code, message } => write!(f, "{message} (SQLSTATE {code})"),
        }
    }
}

impl From<postgres::Error> for CliError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => CliError::Sql {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => CliError::Connect(format!("database error: {e}")),
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::ExtensionVersion => {
            let mut db = connect(cli.database_url)?;
            let v: String = db.query_one("SELECT awf.version()", &[])?.get(0);
            println!("{v}");
        }
        Command::Hash { file } => {
            let doc = read_json(&file)?;
            let mut db = connect(cli.database_url)?;
            let h: String = db
                .query_one("SELECT awf.canonical_hash($1::jsonb)", &[&doc])?
                .get(0);
            println!("{h}");
        }
        Command::Reconcile { session } => {
            let mut db = connect(cli.database_url)?;
            let rows = db.query(
                "SELECT to_jsonb(r) FROM awf.wal_reconcile($1::text::uuid) r",
                &[&session],
            )?;
            for row in rows {
                let v: Value = row.get(0);
                println!("{v}");
            }
        }
        Command::Verify { save_id } => {
            let mut db = connect(cli.database_url)?;
            let v: Value = db
                .query_one("SELECT awf.save_verify($1::text::uuid)", &[&save_id])?
                .get(0);
            report(&v, "save verification failed")?;
        }
        Command::AuditVerify => {
            let mut db = connect(cli.database_url)?;
            let v: Value = db.query_one("SELECT awf.audit_verify()", &[])?.get(0);
            report(&v, "the audit chain is broken")?;
        }
        Command::Retention => {
            let mut db = connect(cli.database_url)?;
            let v: Value = db.query_one("SELECT awf.retention_enforce()", &[])?.get(0);
            println!("{}", pretty(&v));
        }
        Command::Stats => {
            let mut db = connect(cli.database_url)?;
            let v: Value = db.query_one("SELECT awf.sync_stats()", &[])?.get(0);
            println!("{}", pretty(&v));
        }
        Command::AdminKey(cmd) => admin_key(connect(cli.database_url)?, cmd)?,
    }
    Ok(())
}

fn admin_key(mut db: Client, cmd: AdminKey) -> Result<(), CliError> {
    match cmd {
        AdminKey::Create { name, replace } => {
            let v: Value = db
                .query_one("SELECT awf.admin_key_create($1, $2)", &[&name, &replace])?
                .get(0);
            println!("{}", pretty(&v));
        }
        AdminKey::List => {
            for row in db.query("SELECT to_jsonb(k) FROM awf.admin_key_list() k", &[])? {
                let v: Value = row.get(0);
                println!("{v}");
            }
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
            println!("{}", serde_json::json!({"name": name, "revoked": true}));
        }
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Prints a `{ok, ...}` report; a report that is not ok is exit 4.
fn report(v: &Value, failure: &str) -> Result<(), CliError> {
    println!("{}", pretty(v));
    if v["ok"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(CliError::Failed(failure.to_owned()))
    }
}

fn connect(url: Option<String>) -> Result<Client, CliError> {
    let url = url.ok_or_else(|| {
        CliError::Usage("no database: pass --database-url or set DATABASE_URL".into())
    })?;
    Client::connect(&url, NoTls).map_err(|e| CliError::Connect(format!("cannot connect: {e}")))
}

fn read_json(path: &str) -> Result<Value, CliError> {
    let mut text = String::new();
    let res = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    res.map_err(|e| CliError::Usage(format!("cannot read {path}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{path}: invalid JSON: {e}")))
}
