//! Identifiers and secrets: the one UUID parser every crate uses, and the one comparison of
//! secrets (token hashes, signatures) that takes the same time wherever two values differ.

use crate::error::{excerpt, Error, Result};
use subtle::ConstantTimeEq;
pub use uuid::Uuid;

/// Parses a UUID named `what` (for the message): 32 hex digits, plain, hyphenated
/// `8-4-4-4-12` or in braces, either case, surrounding whitespace ignored. Every form accepted
/// is one PostgreSQL's `uuid` type accepts too (so the `urn:uuid:` form the `uuid` crate also
/// reads is refused). Errors are 22P02, as PostgreSQL's own are.
pub fn parse_uuid(what: &str, text: &str) -> Result<Uuid> {
    let t = text.trim();
    let bad = || {
        Error::invalid_text(format!(
            "{what} must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got {:?}",
            excerpt(text, 64)
        ))
    };
    // A UUID's text is at most 38 bytes (braced); anything longer is refused unread.
    if t.len() > 38 || t.starts_with("urn:") {
        return Err(bad());
    }
    Uuid::try_parse(t).map_err(|_| bad())
}

/// Whether two secrets are equal, in time that depends on their lengths only, not on where
/// they differ (a byte-by-byte `==` would tell an attacker how much of a guess was right).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn uuid_forms() {
        let want = "0e6c1a52-0000-4000-8000-000000000001";
        for form in [
            want,
            "0E6C1A52-0000-4000-8000-000000000001",
            "0e6c1a52000040008000000000000001",
            "{0e6c1a52-0000-4000-8000-000000000001}",
            "  0e6c1a52-0000-4000-8000-000000000001\n",
        ] {
            assert_eq!(parse_uuid("id", form).unwrap().to_string(), want, "{form}");
        }
        let huge = "0".repeat(1 << 20);
        for bad in [
            "",
            "xyz",
            "0e6c1a52-0000-4000-8000-00000000000g",
            "0e6c1a52-0000-4000-8000-0000000000011",
            "urn:uuid:0e6c1a52-0000-4000-8000-000000000001",
            "{0e6c1a5200004000800000000000000 1}",
            huge.as_str(),
        ] {
            let e = parse_uuid("save_id", bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidText, "{bad:.40}");
            assert!(
                e.message.starts_with("save_id must be a UUID"),
                "{}",
                e.message
            );
            assert!(
                e.message.len() < 300,
                "the message quotes a bounded excerpt"
            );
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(secrets_equal(b"", b""));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"xbc"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"abc", b""));
    }
}
