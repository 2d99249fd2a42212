//! The connection pool shared by every handler.

use crate::error::AppError;
use crate::extract::Caller;
use crate::heads::Heads;
use crate::metrics::Metrics;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// How long a request may hold the database, and how much it may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `statement_timeout` (and `lock_timeout`) of every pooled connection.
    pub statement_timeout: Duration,
    /// Longest wait for a free pooled connection; past it the request gets 503.
    pub pool_wait: Duration,
    /// Largest request body; past it 413.
    pub max_body_bytes: usize,
    /// Most sync long polls and event streams waiting at once; past it 503.
    pub max_waiters: usize,
    /// Longest life of one sync event stream; the device reconnects after it.
    pub max_stream: Duration,
    /// Whether sync requests must carry a signature (401 otherwise).
    pub require_signatures: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            statement_timeout: Duration::from_secs(10),
            pool_wait: Duration::from_secs(2),
            max_body_bytes: 4 * 1024 * 1024,
            max_waiters: 1024,
            max_stream: Duration::from_secs(300),
            require_signatures: true,
        }
    }
}

/// State handed to every route: the database pool, the request limits, the request metrics
/// and the waiters on save heads.
#[derive(Clone)]
pub struct AppState {
    pool: Pool,
    limits: Limits,
    metrics: Metrics,
    heads: Heads,
}

impl AppState {
    /// Builds the pool from a connection string with the default [`Limits`]; connections are
    /// opened lazily.
    pub fn connect(database_url: &str, pool_size: usize) -> Result<Self, AppError> {
        Self::connect_with(database_url, pool_size, Limits::default())
    }

    /// Builds the pool with explicit limits.
    pub fn connect_with(
        database_url: &str,
        pool_size: usize,
        limits: Limits,
    ) -> Result<Self, AppError> {
        let mut pg: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e| AppError::config(format!("invalid database URL: {e}")))?;
        // Every statement of every request is bounded, whatever the database's defaults.
        let ms = limits.statement_timeout.as_millis().max(1);
        let mut options = pg.get_options().unwrap_or("").to_owned();
        options.push_str(&format!(" -c statement_timeout={ms} -c lock_timeout={ms}"));
        pg.options(options.trim());
        let heads = Heads::new(limits.max_waiters, pg.clone());
        let mgr = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(limits.pool_wait))
            .create_timeout(Some(limits.pool_wait))
            .build()
            .map_err(|e| AppError::config(format!("cannot build the connection pool: {e}")))?;
        Ok(AppState {
            pool,
            limits,
            metrics: Metrics::default(),
            heads,
        })
    }

    /// The request limits this server runs with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The request counts and latencies so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The waiters on save heads, and the listener that wakes them.
    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    /// Open and idle pooled connections.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Takes a connection from the pool; 503 when none frees up within the pool wait.
    pub async fn conn(&self) -> Result<Object, AppError> {
        self.pool.get().await.map_err(AppError::from)
    }

    /// Runs one SQL statement for `caller` and returns its one row: in a transaction that first
    /// presents the caller's credential to the database (`awf.act_as_admin` or
    /// `awf.act_as_device`), which verifies it and acts for that caller until the transaction
    /// ends, so nothing carries over to the next request on the pooled connection.
    pub async fn call(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, AppError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        match caller {
            Caller::Admin(a) => tx.execute("SELECT awf.act_as_admin($1)", &[&a.key]).await?,
            Caller::Device(d) => {
                tx.execute(
                    "SELECT awf.act_as_device($1, $2)",
                    &[&d.device_id, &d.token],
                )
                .await?
            }
        };
        let row = tx.query_one(sql, params).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// [`AppState::call`] for a statement whose one column is `jsonb`.
    pub async fn json(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<serde_json::Value, AppError> {
        Ok(self.call(caller, sql, params).await?.get(0))
    }
}
