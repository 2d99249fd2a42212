//! The command line, as clap definitions: one subcommand per seed command, grouped the way
//! the seeds name them (`snapshot ...`, `wal ...`, `sync ...`), plus the operators' extras.
//! Today's earlier spellings (`reconcile`, `verify SAVE`, `stats`) stay as hidden aliases.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `awf` command line.
#[derive(Debug, Parser)]
#[command(
    name = "awf",
    version,
    about = "Operate awf_lifecycle sessions and saves",
    after_help = "Exit codes: 0 ok, 1 refused by the database, 2 usage, 3 cannot connect, \
                  4 integrity failure, 5 not found, 6 conflict, 7 over a limit, 8 not allowed."
)]
pub struct Cli {
    /// PostgreSQL connection string of a database with the awf_lifecycle extension.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Print JSON for scripts (one document, or JSON lines for lists) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshots of a session: create, list, restore, delete.
    #[command(subcommand)]
    Snapshot(Snapshot),
    /// Compose a session's recap (awf.recap).
    Recap {
        #[arg(long)]
        session: String,
        /// How many of the newest turns' lines to use (0 to 1000).
        #[arg(long, alias = "lastTurns", default_value_t = 3)]
        last_turns: i32,
    },
    /// Export a session as a self-checking bundle (awf.session_export), secrets redacted.
    Export {
        #[arg(long)]
        session: String,
        /// Write the bundle here (default: standard output).
        #[arg(long)]
        output: Option<String>,
        /// Export secrets and PII as they are (needs awf_admin).
        #[arg(long)]
        no_redact: bool,
    },
    /// Import a bundle (awf.session_import) as a new session.
    Import {
        /// The bundle file, or - for standard input.
        #[arg(long)]
        file: String,
        /// Keep the bundle's turn ids.
        #[arg(long, alias = "preserveTurnId")]
        preserve_turn_id: bool,
    },
    /// The turn write-ahead log: reconcile, list, cleanup.
    #[command(subcommand)]
    Wal(Wal),
    /// Cloud saves and device sync: status, verify, export, stats, conflicts.
    #[command(subcommand)]
    Sync(Sync),
    /// Admin keys of admin tools over HTTP (needs awf_admin).
    #[command(subcommand)]
    AdminKey(AdminKey),
    /// Play a save as a device over HTTP (the device client): register, record, sync, status.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Check the audit log's hash chain (awf.audit_verify); exit 4 when it is broken.
    AuditVerify,
    /// Apply every retention setting (awf.retention_enforce).
    Retention,
    /// Print the canonical SHA-256 hash of a JSON document (a file, or - for standard input).
    Hash {
        /// Path of the JSON document, or - for standard input.
        file: String,
    },
    /// Print the extension version the database runs.
    ExtensionVersion,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Alias of `wal reconcile`.
    #[command(hide = true)]
    Reconcile {
        #[arg(long)]
        session: Option<String>,
    },
    /// Alias of `sync verify --save-id`.
    #[command(hide = true)]
    Verify { save_id: String },
    /// Alias of `sync stats`.
    #[command(hide = true)]
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum Snapshot {
    /// Snapshot a session's state now (awf.snapshot_create).
    Create {
        #[arg(long)]
        session: String,
        #[arg(long)]
        label: Option<String>,
    },
    /// A session's snapshots, newest first (awf.snapshot_list).
    List {
        #[arg(long)]
        session: String,
    },
    /// Put a snapshot's state back (awf.snapshot_restore).
    Restore {
        #[arg(long)]
        session: String,
        #[arg(long)]
        snapshot: i64,
    },
    /// Delete a snapshot (awf.snapshot_delete).
    Delete {
        #[arg(long)]
        session: String,
        #[arg(long)]
        snapshot: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum Wal {
    /// Apply or settle every unapplied entry (awf.wal_reconcile); one row per entry.
    Reconcile {
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
    },
    /// A session's entries, oldest first (awf.wal_list).
    List {
        #[arg(long)]
        session: String,
    },
    /// Delete applied entries older than N days (awf.wal_cleanup).
    Cleanup {
        #[arg(long)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum Sync {
    /// Cloud saves at a glance (awf.sync_stats), or one save in detail (awf.save_details).
    Status {
        #[arg(long)]
        save_id: Option<String>,
    },
    /// Rebuild and check a save (awf.save_verify), or a sample of all saves
    /// (awf.save_verify_sample); exit 4 when any fails.
    Verify(VerifyArgs),
    /// Export a save's whole history with checksums (awf.save_export).
    Export {
        #[arg(long)]
        save_id: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write the archive here (default: standard output; required for zip).
        #[arg(long)]
        output: Option<String>,
        /// Include the save's audit rows (needs admin rights).
        #[arg(long)]
        include_audit: bool,
    },
    /// Counts across saves, blobs, devices and conflicts (awf.sync_stats).
    Stats,
    /// Resolved conflicts, newest first (awf.conflicts).
    Conflicts {
        #[arg(long)]
        save_id: Option<String>,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct VerifyArgs {
    /// The save to verify.
    #[arg(long)]
    pub save_id: Option<String>,
    /// Verify this percentage of all saves instead (0 to 100).
    #[arg(long)]
    pub sample: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Checksummed JSON Lines.
    Jsonl,
    /// One JSON document.
    Json,
    /// The JSON Lines archive in a zip file.
    Zip,
}

#[derive(Debug, Subcommand)]
pub enum AdminKey {
    /// Create a named key and print it once (only its hash is stored).
    Create {
        /// The key's name; it is the actor in the audit row of every action taken with it.
        name: String,
        /// Replace an existing key of that name (the old one stops working).
        #[arg(long)]
        replace: bool,
    },
    /// List the keys (never the keys themselves).
    List,
    /// Revoke a key by name; it stops working at once.
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Register this device (with an admin key) and pull the save into a new local store.
    Register {
        #[command(flatten)]
        at: DeviceAt,
        /// A file holding the admin key (such as scripts/run's .awf/http-admin-token); or set
        /// AWF_ADMIN_KEY. Never on the command line, where `ps` and shell history show it.
        #[arg(long)]
        admin_key_file: Option<String>,
        #[arg(long)]
        device_id: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        session: String,
        #[arg(long)]
        save_id: String,
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Record the next turn locally (no network): the current state with an RFC 6902 patch
    /// applied, or a whole new state from a file.
    Record {
        #[arg(long)]
        store: String,
        #[command(flatten)]
        seal: SealArgs,
        /// An RFC 6902 patch (JSON) to apply to the current state.
        #[arg(long, conflicts_with = "state_file")]
        patch: Option<String>,
        /// A file with the whole new state.
        #[arg(long)]
        state_file: Option<String>,
    },
    /// Sync with the server: pull and verify, push the queue, report a conflict.
    Sync {
        #[command(flatten)]
        at: DeviceAt,
        /// Keep syncing every this many seconds (offline rounds keep the queue).
        #[arg(long)]
        every: Option<u64>,
        /// With --every, stop after this many rounds (default: keep syncing until stopped).
        #[arg(long, requires = "every")]
        rounds: Option<u32>,
        /// The conflict strategy to upload with (the server's default otherwise).
        #[arg(long)]
        strategy: Option<String>,
        #[command(flatten)]
        seal: SealArgs,
    },
    /// The local store: confirmed turn and chain hash, queued turns, state.
    Status {
        #[arg(long)]
        store: String,
    },
    /// Write a new random seal key (64 hex characters) to a new file readable by this user
    /// only, for the devices of a client-sealed save to share.
    SealKey {
        /// The key file to create (never overwritten).
        #[arg(long)]
        output: String,
    },
}

/// The seal key of a client-sealed save: a file holding 64 hex characters (as `awf device
/// seal-key` writes), or the key itself in AWF_CLIENT_SEAL_KEY. Never on the command line.
#[derive(Debug, Args)]
pub struct SealArgs {
    #[arg(long)]
    pub seal_key_file: Option<String>,
}

/// Where the device's store is and which server it syncs with.
#[derive(Debug, Args)]
pub struct DeviceAt {
    /// The device's local store (a SQLite file).
    #[arg(long)]
    pub store: String,
    /// The HTTP server (or set AWF_SERVER).
    #[arg(long, env = "AWF_SERVER", default_value = "http://127.0.0.1:8787")]
    pub server: String,
}
