//! Shared helpers for awf_core's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The third-party conformance suites: `$AWF_SUITES_DIR`, else `../shared/suites` from the
/// project root.
pub fn suites() -> PathBuf {
    let p = std::env::var_os("AWF_SUITES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/suites")
        });
    assert!(
        p.is_dir(),
        "conformance suites not found at {} (they live beside the checkout in ../shared/suites)",
        p.display()
    );
    p
}

/// Reads and parses one JSON file of a suite with serde_json (not with the code under test).
pub fn read_json(rel: &str) -> serde_json::Value {
    let path = suites().join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
