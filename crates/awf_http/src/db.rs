//! The connection pool shared by every handler.

use crate::error::AppError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};

/// State handed to every route: the database pool, and the token that authorizes
/// registering devices (none: registration over HTTP is off).
#[derive(Clone)]
pub struct AppState {
    pool: Pool,
    admin_token: Option<std::sync::Arc<str>>,
}

impl AppState {
    /// Builds the pool from a connection string; connections are opened lazily.
    pub fn connect(database_url: &str, pool_size: usize) -> Result<Self, AppError> {
        let pg: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e| AppError::config(format!("invalid database URL: {e}")))?;
        let mgr = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .build()
            .map_err(|e| AppError::config(format!("cannot build the connection pool: {e}")))?;
        Ok(AppState {
            pool,
            admin_token: None,
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

    /// Takes a connection from the pool.
    pub async fn conn(&self) -> Result<Object, AppError> {
        self.pool.get().await.map_err(AppError::from)
    }
}
