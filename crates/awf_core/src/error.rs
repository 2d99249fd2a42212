//! The one error type of awf_core.
//!
//! Every failure carries an [`ErrorKind`]; the extension maps kinds to SQLSTATEs and the HTTP
//! server maps SQLSTATEs to statuses (DESIGN §5), so the kind is the contract and the message is
//! for people.

use std::fmt;

/// What went wrong, in the terms of DESIGN §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A thing the caller named does not exist.
    NotFound,
    /// The request contradicts what is already recorded (duplicate with another payload, stale base).
    Conflict,
    /// The input is malformed or an argument is out of its domain.
    InvalidInput,
    /// A size or quota limit would be exceeded.
    LimitExceeded,
    /// Stored data does not match its hash, chain or authentication tag.
    Integrity,
    /// The caller may not do this.
    NotAllowed,
}

/// An error with its kind and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

/// Result alias used across awf_core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Integrity, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAllowed, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
