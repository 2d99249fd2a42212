//! awf_client: the device side of awf_lifecycle cloud saves, for game clients to link.
//!
//! A [`Device`] records turns locally in a crash-safe store whether or not the network is
//! there, and `sync` reconciles them with the server over HTTP: every turn it pulls is
//! verified against its own chain before it is applied, its requests are signed and the
//! server's signed answers checked, its own turns are never applied twice, and conflicts come
//! back as the server's report. The algorithms (hashing, the chain, patches, signatures) are
//! awf_core's.

/// Retry delays with jitter.
pub mod backoff;
/// A device on a save: record, sync, verify.
pub mod device;
/// Device-side failures.
pub mod error;
/// The durable local store (SQLite).
pub mod store;
/// Signed device requests with retries.
pub mod transport;

pub use backoff::Backoff;
pub use device::{Device, Registration, SyncReport};
pub use error::{Error, Result};
