//! awf_http: the HTTP companion of awf_lifecycle. Every route maps one request onto one SQL
//! call; the logic lives in the extension, so this crate holds routing, request/response
//! shapes and the SQLSTATE → HTTP status table, nothing else.

/// Server settings from flags or the environment.
pub mod config;
/// The connection pool and how one request's SQL runs.
pub mod db;
/// The error type and the SQLSTATE → status table.
pub mod error;
/// Extractors: bodies, queries, paths, credentials.
pub mod extract;
/// Waking long polls and event streams when a save's head moves (LISTEN/NOTIFY).
pub mod heads;
/// Request metrics and `GET /metrics`.
pub mod metrics;
/// The OpenAPI document and the responses every route shares.
pub mod openapi;
/// The request id of logs, responses and 500 bodies.
pub mod request_id;
mod routes;
/// Signed sync requests and answers.
pub mod signed;

pub use config::Config;
pub use db::AppState;
pub use routes::{openapi, router};
