//! What can go wrong on a device, told apart so a game can react: keep playing offline, show a
//! conflict, or stop trusting the server.

/// A device-side failure.
#[derive(Debug)]
pub enum Error {
    /// The server could not be reached (or kept answering 503) after the retries.
    Offline(String),
    /// The server answered with an error: HTTP status, SQLSTATE and message.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer did not verify (signature, content hash or chain): nothing of it was applied.
    Untrusted(String),
    /// The local store failed.
    Store(String),
    /// The device is not set up (no identity, no confirmed turn).
    NotReady(String),
    /// The save is client-sealed and this device holds no seal key, or another one than its
    /// turns were sealed under: nothing was opened or applied.
    Sealed(String),
}

impl Error {
    pub(crate) fn store(e: rusqlite::Error) -> Error {
        Error::Store(e.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Offline(m) => write!(f, "offline: {m}"),
            Error::Refused {
                status,
                code,
                message,
            } => write!(f, "refused by the server ({status}, {code}): {message}"),
            Error::Untrusted(m) => write!(f, "the server's answer does not verify: {m}"),
            Error::Store(m) => write!(f, "local store: {m}"),
            Error::NotReady(m) => write!(f, "not ready: {m}"),
            Error::Sealed(m) => write!(f, "sealed save: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
