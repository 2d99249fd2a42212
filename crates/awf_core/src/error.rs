//! The one error type of awf_core.
//!
//! Every failure carries an [`ErrorKind`]; the extension maps kinds to SQLSTATEs and the HTTP
//! server maps SQLSTATEs to statuses, so the kind is the contract and the message is
//! for people.

use std::fmt;

/// What went wrong, in the terms of the SQLSTATE table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A thing the caller named does not exist.
    NotFound,
    /// The request contradicts what is already recorded (duplicate with another payload, stale base).
    Conflict,
    /// The input is malformed or an argument is out of its domain.
    InvalidInput,
    /// A value's text is not of its type (a UUID that is not one): PostgreSQL's 22P02.
    InvalidText,
    /// A size or quota limit would be exceeded.
    LimitExceeded,
    /// Stored data does not match its hash, chain or authentication tag.
    Integrity,
    /// The caller may not do this.
    NotAllowed,
    /// The credential the caller presented is not valid (unknown, revoked or malformed).
    NotAuthenticated,
}

/// An error with its kind and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

/// Result alias used across awf_core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest message an error keeps, in bytes. Messages quote the input they refuse (a
/// device id, a path, a number); a megabyte of it would be echoed back to the caller and
/// written to the server log, so the rest is cut and its length said instead.
pub const MAX_MESSAGE_BYTES: usize = 1024;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: clip(message.into()),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn invalid_text(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidText, message)
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
    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAuthenticated, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `message` cut to [`MAX_MESSAGE_BYTES`], with what was cut said.
fn clip(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    excerpt(&message, MAX_MESSAGE_BYTES)
}

/// At most `max` bytes of `s`, cut on a character boundary, followed by how long `s` was when
/// anything was cut: for quoting caller input in messages and log lines.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… (cut from {} bytes)", &s[..cut], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let short = Error::invalid("device \"a\" is unknown");
        assert_eq!(short.message, "device \"a\" is unknown");
        let long = Error::invalid(format!("device \"{}\" is unknown", "€".repeat(500_000)));
        assert!(
            long.message.len() < MAX_MESSAGE_BYTES + 64,
            "{}",
            long.message.len()
        );
        assert!(long.message.starts_with("device \"€€"));
        assert!(long.message.ends_with("(cut from 1500020 bytes)"));
    }
}
