//! The sync protocol's pure logic: what `awf.sync_up` decides, with no database. The
//! extension reads the save, calls these, and writes what they return.
//!
//! An upload goes through, in order:
//! 1. [`request::parse`]: the request's shape (ids, base, strategy, merge rule).
//! 2. [`request::Request::client_turns`]: the device's turns replayed from the ancestor's
//!    state (full states or RFC 6902 patches, each on the one before), every copy charged to
//!    the budget.
//! 3. [`branch::plan`]: each turn planned once (base or diff, content and chain hash), the
//!    plans the save then writes as they are.
//! 4. [`branch::shared_prefix`]: the turns the save already holds (a retry, a device that
//!    synced elsewhere) are shared history, not a conflict.
//! 5. [`decide::decide`]: the two branches from the common ancestor and which one stays.

/// Branch planning, claimed-chain checks and the shared-prefix walk.
pub mod branch;
/// The two branches of a conflict, the resolution, and the conflict report.
pub mod decide;
/// Parsing a sync request and replaying its turns.
pub mod request;
