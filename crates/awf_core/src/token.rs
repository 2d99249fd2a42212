//! Device sync tokens: random, shown to the device once, stored only as a hash.

use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use rand::rngs::OsRng;
use rand::RngCore;

/// A new sync token: 32 random bytes from the OS, as 64 lowercase hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a token (SHA-256 hex). Refuses text that cannot be a token, so a typo
/// is reported as such rather than as a mismatch.
pub fn token_hash(token: &str) -> Result<String> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::not_allowed(
            "sync token is malformed: expected 64 hex characters",
        ));
    }
    Ok(sha256_hex(token.to_ascii_lowercase().as_bytes()))
}

/// What every admin key starts with: tells keys from sync tokens at a glance, and lets secret
/// scanners (and this crate's redaction) find a leaked one.
pub const ADMIN_KEY_PREFIX: &str = "awfk_";

/// A new admin key: the prefix and 32 random bytes from the OS as 64 lowercase hex characters.
pub fn new_admin_key() -> String {
    format!("{ADMIN_KEY_PREFIX}{}", new_token())
}

/// The stored form of an admin key (SHA-256 hex of the whole key, hex digits lowercased).
/// Text that cannot be a key is refused as not authenticated.
pub fn admin_key_hash(key: &str) -> Result<String> {
    let ok = key
        .strip_prefix(ADMIN_KEY_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(Error::not_authenticated(format!(
            "admin key is malformed: expected {ADMIN_KEY_PREFIX} and 64 hex characters"
        )));
    }
    Ok(sha256_hex(key.to_ascii_lowercase().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(
            token_hash(&a).unwrap(),
            token_hash(&a.to_uppercase()).unwrap()
        );
        assert_ne!(token_hash(&a).unwrap(), token_hash(&b).unwrap());
        assert_eq!(token_hash(&a).unwrap(), token_hash(&a).unwrap());
        assert!(token_hash("short").is_err());
        let k = new_admin_key();
        assert!(k.starts_with(ADMIN_KEY_PREFIX) && k.len() == 69);
        assert_eq!(
            admin_key_hash(&k).unwrap(),
            sha256_hex(k.as_bytes()),
            "the hash of the key's text"
        );
        assert_ne!(
            admin_key_hash(&k).unwrap(),
            admin_key_hash(&new_admin_key()).unwrap()
        );
        for bad in [
            "",
            "awfk_",
            &k[5..],
            &format!("{k}0"),
            &k.replace("awfk_", "awfx_"),
        ] {
            assert_eq!(
                admin_key_hash(bad).unwrap_err().kind,
                crate::ErrorKind::NotAuthenticated
            );
        }
        assert!(token_hash(&"g".repeat(64)).is_err());
    }
}
