//! `awf-http`: serves the awf_lifecycle HTTP API on a local address.

use awf_http::{router, AppState, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "awf_http=info".into()),
        )
        .init();
    let config = Config::parse();
    let state = AppState::connect_with(&config.database_url, config.pool_size, config.limits())?;
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    tracing::info!("awf-http listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
