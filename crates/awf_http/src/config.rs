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

    /// Bearer token a backend presents to register devices (`POST /v1/devices`). Without
    /// it, device registration over HTTP is refused: a device must not enroll itself for
    /// any user it names.
    #[arg(long, env = "AWF_HTTP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Largest number of pooled database connections.
    #[arg(long, env = "AWF_HTTP_POOL_SIZE", default_value_t = 8)]
    pub pool_size: usize,
}
