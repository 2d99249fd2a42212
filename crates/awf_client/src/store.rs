//! The device's durable state, in one SQLite file: its credentials, the last turn the server
//! confirmed (id, chain hash, state), and the queue of turns recorded since.
//!
//! SQLite rather than an append-only file: every change the client makes is several facts at
//! once (a pulled turn moves the confirmed head *and* drops the queued turn it matches), and a
//! SQLite transaction in WAL mode with `synchronous = FULL` makes each such change atomic and
//! durable at commit, whatever point the process is killed at. An append-only log would need
//! its own torn-write detection and replay to give the same guarantee.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::Path;

/// Who the device is and how it talks to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub device_id: String,
    pub token: String,
    /// When the token stops working (as the server wrote it, RFC 3339 UTC).
    pub token_expires_at: String,
    /// The same, as Unix seconds on this device's clock (receipt time plus the server's
    /// `expires_in_seconds`), for scheduling the refresh.
    pub token_expires_unix: i64,
    pub save_id: String,
    /// The save's signing key (hex), when the deployment signs.
    pub signing_key: Option<String>,
    /// The save is client-sealed: this device seals every state before upload and opens
    /// every state it pulls, with its seal key.
    pub sealed: bool,
}

/// The newest turn the server confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    pub turn_id: i64,
    pub chain_hash: String,
    pub state: Value,
}

/// A turn recorded on the device and not yet confirmed by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub turn_id: i64,
    pub state: Value,
    pub content_hash: String,
    pub chain_hash: String,
    /// On a sealed save, the state as sealed when it was recorded: these exact bytes are what
    /// the content and chain hashes cover, so a retried upload sends them again.
    pub sealed: Option<Vec<u8>>,
}

/// The open store. The connection sits behind a mutex so a `Device` can be moved into and
/// shared by async tasks (every call is short and local).
pub struct Store {
    db: std::sync::Mutex<Connection>,
}

impl Store {
    /// Opens (creating when new) the store at `path`.
    ///
    /// The file is created readable by this user only (it holds the token and the signing key;
    /// SQLite gives its WAL file the same mode), and the connection holds the store exclusively
    /// for as long as the `Store` lives: a second process opening it meanwhile waits up to two
    /// seconds and then gets an error, so two processes never interleave a sync and a record.
    pub fn open(path: &Path) -> Result<Store> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::Store(format!("cannot create {}: {e}", path.display())))?;
        }
        let db = Connection::open(path).map_err(Error::store)?;
        db.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(Error::store)?;
        db.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             BEGIN EXCLUSIVE; COMMIT;
             CREATE TABLE IF NOT EXISTS identity (
               one INTEGER PRIMARY KEY CHECK (one = 1),
               device_id TEXT NOT NULL, token TEXT NOT NULL, token_expires_at TEXT NOT NULL,
               token_expires_unix INTEGER NOT NULL, save_id TEXT NOT NULL, signing_key TEXT,
               sealed INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS confirmed (
               one INTEGER PRIMARY KEY CHECK (one = 1),
               turn_id INTEGER NOT NULL, chain_hash TEXT NOT NULL, state TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS queue (
               turn_id INTEGER PRIMARY KEY, state TEXT NOT NULL,
               content_hash TEXT NOT NULL, chain_hash TEXT NOT NULL, sealed BLOB);
             CREATE TABLE IF NOT EXISTS orphaned (
               seq INTEGER PRIMARY KEY AUTOINCREMENT, turn_id INTEGER NOT NULL,
               state TEXT NOT NULL, orphaned_at INTEGER NOT NULL);",
        )
        .map_err(Error::store)?;
        // Stores made before sealed saves lack these columns.
        add_column(&db, "identity", "sealed", "INTEGER NOT NULL DEFAULT 0")?;
        add_column(&db, "queue", "sealed", "BLOB")?;
        Ok(Store {
            db: std::sync::Mutex::new(db),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device's identity, once registered.
    pub fn identity(&self) -> Result<Option<Identity>> {
        self.db()
            .query_row(
                "SELECT device_id, token, token_expires_at, token_expires_unix, save_id, signing_key,
                        sealed
                 FROM identity",
                [],
                |r| {
                    Ok(Identity {
                        device_id: r.get(0)?,
                        token: r.get(1)?,
                        token_expires_at: r.get(2)?,
                        token_expires_unix: r.get(3)?,
                        save_id: r.get(4)?,
                        signing_key: r.get(5)?,
                        sealed: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(Error::store)
    }

    /// Stores the identity (replacing the old one, as after a token rotation).
    pub fn set_identity(&mut self, id: &Identity) -> Result<()> {
        self.db()
            .execute(
                "INSERT OR REPLACE INTO identity
                   (one, device_id, token, token_expires_at, token_expires_unix, save_id, signing_key,
                    sealed)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id.device_id,
                    id.token,
                    id.token_expires_at,
                    id.token_expires_unix,
                    id.save_id,
                    id.signing_key,
                    id.sealed
                ],
            )
            .map(drop)
            .map_err(Error::store)
    }

    /// The confirmed head, if the device has synced at all.
    pub fn confirmed(&self) -> Result<Option<Confirmed>> {
        self.db()
            .query_row(
                "SELECT turn_id, chain_hash, state FROM confirmed",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(Error::store)?
            .map(|(turn_id, chain_hash, state)| {
                Ok(Confirmed {
                    turn_id,
                    chain_hash,
                    state: parse(&state)?,
                })
            })
            .transpose()
    }

    /// The queued turns, oldest first.
    pub fn queue(&self) -> Result<Vec<Queued>> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT turn_id, state, content_hash, chain_hash, sealed FROM queue ORDER BY turn_id",
            )
            .map_err(Error::store)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })
            .map_err(Error::store)?;
        let mut out = Vec::new();
        for row in rows {
            let (turn_id, state, content_hash, chain_hash, sealed) = row.map_err(Error::store)?;
            out.push(Queued {
                turn_id,
                state: parse(&state)?,
                content_hash,
                chain_hash,
                sealed,
            });
        }
        Ok(out)
    }

    /// Appends a recorded turn to the queue (durable when this returns).
    pub fn enqueue(&mut self, q: &Queued) -> Result<()> {
        self.db()
            .execute(
                "INSERT INTO queue (turn_id, state, content_hash, chain_hash, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    q.turn_id,
                    q.state.to_string(),
                    q.content_hash,
                    q.chain_hash,
                    q.sealed
                ],
            )
            .map(drop)
            .map_err(Error::store)
    }

    /// In one transaction: makes `head` the confirmed turn, and drops queued turns up to
    /// `drop_through` (all of them with `None` and `clear`).
    pub fn confirm(
        &mut self,
        head: &Confirmed,
        drop_through: Option<i64>,
        clear: bool,
    ) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction().map_err(Error::store)?;
        set_confirmed(&tx, head)?;
        if clear {
            tx.execute("DELETE FROM queue", []).map_err(Error::store)?;
        } else if let Some(t) = drop_through {
            tx.execute("DELETE FROM queue WHERE turn_id <= ?1", params![t])
                .map_err(Error::store)?;
        }
        tx.commit().map_err(Error::store)
    }
}

impl Store {
    /// In one transaction: makes `head` the confirmed turn and moves every queued turn to the
    /// orphaned ones (kept until the caller clears them); returns the moved turns.
    pub fn orphan_queue(&mut self, head: &Confirmed, now: i64) -> Result<Vec<Queued>> {
        let moved = self.queue()?;
        let mut db = self.db();
        let tx = db.transaction().map_err(Error::store)?;
        set_confirmed(&tx, head)?;
        tx.execute(
            "INSERT INTO orphaned (turn_id, state, orphaned_at)
             SELECT turn_id, state, ?1 FROM queue ORDER BY turn_id",
            params![now],
        )
        .map_err(Error::store)?;
        tx.execute("DELETE FROM queue", []).map_err(Error::store)?;
        tx.commit().map_err(Error::store)?;
        Ok(moved)
    }

    /// The orphaned turns' states, oldest first.
    pub fn orphaned(&self) -> Result<Vec<(i64, Value)>> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT turn_id, state FROM orphaned ORDER BY seq")
            .map_err(Error::store)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(Error::store)?;
        let mut out = Vec::new();
        for row in rows {
            let (t, st) = row.map_err(Error::store)?;
            out.push((t, parse(&st)?));
        }
        Ok(out)
    }

    /// Forgets the orphaned turns (the caller has dealt with them).
    pub fn clear_orphaned(&mut self) -> Result<()> {
        self.db()
            .execute("DELETE FROM orphaned", [])
            .map(drop)
            .map_err(Error::store)
    }
}

fn set_confirmed(tx: &rusqlite::Transaction<'_>, head: &Confirmed) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO confirmed (one, turn_id, chain_hash, state) VALUES (1, ?1, ?2, ?3)",
        params![head.turn_id, head.chain_hash, head.state.to_string()],
    )
    .map(drop)
    .map_err(Error::store)
}

/// Adds `column` to `table` unless it is there.
fn add_column(db: &Connection, table: &str, column: &str, decl: &str) -> Result<()> {
    let present: bool = db
        .query_row(
            &format!("SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            params![column],
            |r| r.get(0),
        )
        .map_err(Error::store)?;
    if !present {
        db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
            .map_err(Error::store)?;
    }
    Ok(())
}

fn parse(text: &str) -> Result<Value> {
    awf_core::json::parse_str(text)
        .map_err(|e| Error::Store(format!("a stored state is not JSON: {}", e.message)))
}
