//! Cross-device sync: devices with sync tokens, `awf.sync_up` (fast
//! forward, or a conflict resolved by strategy with the losing branch archived whole),
//! `awf.sync_down`, and conflicts as an API. The resolver is awf_core's `conflict`; the save
//! machinery is `crate::saves`.

/// `awf.conflict_resolve` and conflict statistics.
pub mod conflicts;
/// `awf.device_register`, `awf.device_rotate_token`, and token checks.
pub mod devices;
/// `awf.sync_down`.
pub mod down;
/// `awf.sync_signing_key`, `awf.sync_request_verify`, `awf.sync_response_sign`.
pub mod signing;
/// `awf.sync_stats`, `awf.device_details`: counts and devices for operators.
pub mod stats;
/// `awf.sync_up`.
pub mod up;

#[cfg(any(test, feature = "pg_test"))]
mod tests;
