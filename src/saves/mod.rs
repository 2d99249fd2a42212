//! Cloud saves: every turn of a session kept as a base or a diff in
//! content-addressed, compressed, optionally encrypted blobs with a hash chain; exact rebuild
//! of any turn, verification, restore with archives, retention, and master-key rotation.
//! The algorithms (planning a turn, rebuilding and verifying a chain, the blob codec, keys)
//! are awf_core's `save` and `codec`; these modules keep the rows.

/// Storing and loading blobs.
pub mod blobs;
/// `awf.save_details`: one save for an operator.
pub mod details;
/// This backend's copies of recent head states.
pub mod head_cache;
/// Master keyring (from `awf.master_key_file`) and per-user data keys.
pub mod keys;
/// `awf.save_export_link`, `awf.save_export_redeem`: one-use download links of exports.
pub mod links;
/// `awf.save_materialize`, `awf.save_materialize_bytes`, `awf.save_verify`,
/// `awf.save_verify_sample`.
pub mod materialize;
/// The notification a save sends when its head moves.
pub mod notify;
/// `awf.save_create_or_attach`, `awf.save_persist_turn`, `awf.save_persist_sealed`, and the
/// hook that persists every applied session turn.
pub mod persist;
/// `awf.save_export`, `awf.save_delete`, `awf.user_delete`, `awf.user_quota`: export with
/// checksums, deletion with tombstones, whole-user erasure, quota.
pub mod privacy;
/// `awf.save_restore`, `awf.save_archive_restore`.
pub mod restore;
/// `awf.retention_enforce`.
pub mod retention;
/// Save rows and the turns stored for them.
pub mod store;

#[cfg(any(test, feature = "pg_test"))]
mod tests;
