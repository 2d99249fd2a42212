//! `awf-http`: serves the awf_lifecycle HTTP API on a local address.

use awf_http::{router, AppState, Config};
use clap::Parser;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "awf_http=info,tower_http=info".into());
    // Colors only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if config.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let state = AppState::connect_with(&config.database_url, config.pool_size, config.limits())?;
    state.heads().start();
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    tracing::info!("awf-http listening on http://{}", listener.local_addr()?);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = stopping_tx.send(());
    });
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("open requests outlived the shutdown grace period; exiting"),
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (what `kill` and service managers send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
