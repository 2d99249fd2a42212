//! The connection pool shared by every handler.

use crate::error::AppError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::time::Duration;

/// How long a request may hold the database, and how much it may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `statement_timeout` (and `lock_timeout`) of every pooled connection.
    pub statement_timeout: Duration,
    /// Longest wait for a free pooled connection; past it the request gets 503.
    pub pool_wait: Duration,
    /// Largest request body; past it 413.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            statement_timeout: Duration::from_secs(10),
            pool_wait: Duration::from_secs(2),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// State handed to every route: the database pool, and the token that authorizes
/// registering devices (none: registration over HTTP is off).
#[derive(Clone)]
pub struct AppState {
    pool: Pool,
    admin_token: Option<std::sync::Arc<str>>,
    limits: Limits,
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
            admin_token: None,
            limits,
        })
    }

    /// Enables `POST /v1/devices` for callers presenting this bearer token.
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty()).map(Into::into);
        self
    }

    /// The token that authorizes device registration, if one is configured.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The request limits this server runs with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes a connection from the pool; 503 when none frees up within the pool wait.
    pub async fn conn(&self) -> Result<Object, AppError> {
        self.pool.get().await.map_err(AppError::from)
    }
}
