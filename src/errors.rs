//! Raising awf_core errors as PostgreSQL errors.
//!
//! A `#[pg_extern]` returning `Result<_, E>` would report SQLSTATE 22000 for every error, and
//! a panic reports XX000; callers need to branch on the kind, so every error goes through
//! [`sqlstate`] and is raised with its own code.

use awf_core::{Error, ErrorKind};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// The SQLSTATE of each error kind; the HTTP server maps these on to statuses.
pub fn sqlstate(kind: ErrorKind) -> PgSqlErrorCode {
    match kind {
        ErrorKind::NotFound => PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, // P0002
        ErrorKind::Conflict => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION, // 23505
        ErrorKind::InvalidInput => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, // 22023
        ErrorKind::InvalidText => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, // 22P02
        ErrorKind::LimitExceeded => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, // 54000
        ErrorKind::Integrity => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, // XX001
        ErrorKind::NotAllowed => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, // 42501
        ErrorKind::NotAuthenticated => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, // 28000
    }
}

/// Raises `err` as an ERROR with its SQLSTATE; does not return.
#[track_caller]
pub fn raise(err: Error, function: &'static str) -> ! {
    ErrorReport::new(sqlstate(err.kind), err.message, function).report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Unwraps an awf_core result or raises its error.
pub trait OrRaise<T> {
    /// The value, or an ERROR naming `function` as the place it happened.
    fn or_raise(self, function: &'static str) -> T;
}

impl<T> OrRaise<T> for Result<T, Error> {
    #[track_caller]
    fn or_raise(self, function: &'static str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e, function),
        }
    }
}

/// The value of a required argument of a function that is not STRICT (it has optional
/// arguments): NULL is refused with a message naming the argument, not a panic (XX000).
#[track_caller]
pub fn required<T>(value: Option<T>, name: &str, function: &'static str) -> T {
    value.unwrap_or_else(|| raise(Error::invalid(format!("{name} must not be NULL")), function))
}
