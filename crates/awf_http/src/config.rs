//! Server settings, read from flags or the environment.

use clap::Parser;
use std::net::SocketAddr;

/// Command-line and environment configuration of `awf-http`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "awf-http",
    version,
    about = "HTTP companion of the awf_lifecycle extension"
)]
pub struct Config {
    /// PostgreSQL connection string of a database with the awf_lifecycle extension.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Address to listen on. Keep it on loopback unless a proxy with TLS sits in front.
    #[arg(long, env = "AWF_HTTP_BIND", default_value = "127.0.0.1:8787")]
    pub bind: SocketAddr,

    /// Largest number of pooled database connections.
    #[arg(long, env = "AWF_HTTP_POOL_SIZE", default_value_t = 8)]
    pub pool_size: usize,

    /// `statement_timeout` and `lock_timeout` of every request's SQL, in milliseconds.
    #[arg(long, env = "AWF_HTTP_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub statement_timeout_ms: u64,

    /// Longest wait for a pooled connection before answering 503, in milliseconds.
    #[arg(long, env = "AWF_HTTP_POOL_WAIT_MS", default_value_t = 2_000)]
    pub pool_wait_ms: u64,

    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "AWF_HTTP_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most sync long polls and event streams waiting at once; past it they get 503.
    #[arg(long, env = "AWF_HTTP_MAX_WAITERS", default_value_t = 1024)]
    pub max_waiters: usize,

    /// Longest life of one sync event stream, in seconds; the device then reconnects.
    #[arg(long, env = "AWF_HTTP_MAX_STREAM_SECONDS", default_value_t = 300)]
    pub max_stream_seconds: u64,

    /// Whether sync requests (up, down, events) must be signed with the save's key
    /// (`X-AWF-Signature`); a signature that is sent is checked either way.
    #[arg(long, env = "AWF_HTTP_REQUIRE_SIGNATURES", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_signatures: bool,

    /// After SIGTERM or Ctrl-C, how long open requests (and event streams) may take to finish,
    /// in seconds, before the server exits anyway.
    #[arg(long, env = "AWF_HTTP_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Log lines as `text` or `json` (one object per line); the level comes from `RUST_LOG`
    /// (default `awf_http=info,tower_http=info`).
    #[arg(long, env = "AWF_HTTP_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Config {
    /// The request limits these settings describe.
    pub fn limits(&self) -> crate::db::Limits {
        crate::db::Limits {
            statement_timeout: std::time::Duration::from_millis(self.statement_timeout_ms),
            pool_wait: std::time::Duration::from_millis(self.pool_wait_ms),
            max_body_bytes: self.max_body_bytes,
            max_waiters: self.max_waiters,
            max_stream: std::time::Duration::from_secs(self.max_stream_seconds),
            require_signatures: self.require_signatures,
        }
    }
}
