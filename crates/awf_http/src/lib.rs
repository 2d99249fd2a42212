//! awf_http: the HTTP companion of awf_lifecycle. Every route maps one request onto one SQL
//! call; the logic lives in the extension, so this crate holds routing, request/response
//! shapes and the SQLSTATE → HTTP status table, nothing else.

pub mod config;
pub mod db;
pub mod error;
pub mod extract;
mod routes;

pub use config::Config;
pub use db::AppState;
pub use routes::router;
