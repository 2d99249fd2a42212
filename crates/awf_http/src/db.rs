//! The connection pool shared by every handler.

use crate::error::AppError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};

/// State handed to every route: the database pool.
#[derive(Clone)]
pub struct AppState {
    pool: Pool,
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
        Ok(AppState { pool })
    }

    /// Takes a connection from the pool.
    pub async fn conn(&self) -> Result<Object, AppError> {
        self.pool.get().await.map_err(AppError::from)
    }
}
