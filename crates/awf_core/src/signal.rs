//! The notification a save sends when its head moves, so waiting devices wake without polling.
//!
//! The extension sends `NOTIFY awf_save_head, '<key>'` in the transaction that moves a save's
//! head (delivered at commit, never for a rolled-back move); the HTTP server listens and wakes
//! the long polls and event streams of that save. Any database role may `LISTEN`, so the
//! payload is not the save id but a one-way key of it: a listener learns that *some* save moved,
//! and which one only if it already knows the save's id.

use crate::canonical::sha256_hex;

/// The channel every save's head notification is sent on.
pub const HEAD_CHANNEL: &str = "awf_save_head";

/// The payload for `save_id` (a UUID in any case): 32 hex characters of
/// SHA-256(`awf.save_head:` ‖ lowercase id).
pub fn head_key(save_id: &str) -> String {
    let mut h = sha256_hex(format!("awf.save_head:{}", save_id.to_ascii_lowercase()).as_bytes());
    h.truncate(32);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_case_blind_and_distinct() {
        let a = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
        assert_eq!(head_key(a), head_key(&a.to_ascii_uppercase()));
        assert_eq!(head_key(a).len(), 32);
        assert_ne!(
            head_key(a),
            head_key("7d444840-9dc0-11d1-b245-5ffdce74fad3")
        );
        // Pinned, so the extension and every server version agree on the payload.
        assert_eq!(
            head_key(a),
            sha256_hex(b"awf.save_head:7d444840-9dc0-11d1-b245-5ffdce74fad2")[..32]
        );
    }
}
