//! One error type for every handler, and the one table from SQLSTATE to HTTP status.
//! The body is always `{"error": {"code": ..., "message": ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: String,
    message: String,
}

/// Maps a PostgreSQL SQLSTATE to the HTTP status the client sees.
pub fn status_for_sqlstate(code: &str) -> StatusCode {
    match code {
        "P0002" => StatusCode::NOT_FOUND,
        "23505" | "40001" | "40P01" => StatusCode::CONFLICT,
        "22P02" => StatusCode::BAD_REQUEST,
        "22023" => StatusCode::UNPROCESSABLE_ENTITY,
        "54000" => StatusCode::PAYLOAD_TOO_LARGE,
        "42501" => StatusCode::FORBIDDEN,
        "28000" | "28P01" => StatusCode::UNAUTHORIZED,
        // A statement or lock timeout, a cancel, a full server: the request may well succeed
        // if retried shortly, so it is not the server's fault (500) but its load (503).
        "57014" | "55P03" | "53300" | "57P01" | "57P03" => StatusCode::SERVICE_UNAVAILABLE,
        c if c.starts_with("22") => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl AppError {
    /// An error with an explicit status and code, for failures found before SQL runs.
    /// The message is cut as awf_core cuts its own: a parser's complaint can quote megabytes of
    /// the body it refused.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code: code.to_owned(),
            message: awf_core::error::excerpt(&message.into(), awf_core::error::MAX_MESSAGE_BYTES),
        }
    }

    /// 404 for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "42704", "no such route")
    }

    /// 405 for a route that does not take this method.
    pub fn wrong_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "0A000",
            "this route does not take this method",
        )
    }

    /// A request the server could not parse (bad JSON, wrong content type).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "22P02", message)
    }

    /// A startup configuration problem.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "F0000", message)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let status = status_for_sqlstate(code);
                if status.is_server_error() {
                    // Integrity failures and unknown server errors are alerts for operators.
                    tracing::error!(sqlstate = code, message = db.message(), "database error");
                }
                AppError::new(status, code, db.message())
            }
            None => {
                tracing::error!(error = %e, "database connection error");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "08006",
                    "the database is unavailable",
                )
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => pg.into(),
            other => {
                tracing::error!(error = %other, "connection pool error");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "08006",
                    "the database is unavailable",
                )
            }
        }
    }
}

impl AppError {
    /// The response body: `{"error": {"code", "message"}}`. A 500 never echoes internal text
    /// (SQL messages can name tables, keys, hashes): the client gets the SQLSTATE and the
    /// request id, the log gets the details under that id.
    pub fn body(&self) -> serde_json::Value {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            let id = crate::request_id::current();
            tracing::error!(request_id = %id, code = %self.code, message = %self.message, "internal error");
            json!({ "error": { "code": self.code, "message": "internal error", "request_id": id } })
        } else {
            json!({ "error": { "code": self.code, "message": self.message } })
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = self.body();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Busy or unreachable: tell clients when to retry, rather than have them hammer.
            let retry = [(axum::http::header::RETRY_AFTER, "1")];
            return (self.status, retry, Json(body)).into_response();
        }
        (self.status, Json(body)).into_response()
    }
}
