//! AES-256-GCM with a 96-bit nonce and a 128-bit tag, the one AEAD of the blob codec and of key
//! wrapping. Kept apart so it can be checked against Wycheproof vectors on its own.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use crate::error::{Error, Result};

/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (the 96-bit IV GCM is designed for).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Encrypts `plain` and returns ciphertext‖tag; `aad` is authenticated but not encrypted.
///
/// # Panics
/// Only when `plain` exceeds GCM's limit of 2^36 − 32 bytes (64 GiB), which no caller in this
/// crate can reach: the blob codec refuses plaintexts over [`super::MAX_PLAIN_LEN`] first.
pub fn seal(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plain, aad })
        .expect("AES-GCM plaintext within the 64 GiB limit")
}

/// Checks the tag and decrypts ciphertext‖tag; any mismatch is an integrity error.
pub fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_and_tag: &[u8],
) -> Result<Vec<u8>> {
    if ct_and_tag.len() < TAG_LEN {
        return Err(Error::integrity(format!(
            "AES-GCM input of {} bytes is shorter than its {TAG_LEN}-byte tag",
            ct_and_tag.len()
        )));
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct_and_tag,
                aad,
            },
        )
        // The aead crate's error is opaque on purpose (no oracle), so the message cannot say more.
        .map_err(|_| Error::integrity("AES-GCM authentication failed: wrong key or tampered data"))
}
