//! Signed sync payloads: each save has an HMAC-SHA256 key derived from a deployment secret
//! (HKDF-SHA256, salt `awf-sync-signing-v1`, info the lowercase save id). A device signs each
//! sync request, and the server each answer to a signed request, in one header:
//!
//! ```text
//! X-AWF-Signature: t=<unix seconds>, n=<nonce>, s=<64 hex HMAC>
//! ```
//!
//! over these lines (no trailing newline), the body's SHA-256 in lowercase hex:
//!
//! ```text
//! request:  AWF1-REQUEST \n METHOD \n path?query \n t \n n \n sha256(body)
//! response: AWF1-RESPONSE \n status \n n of the request \n t \n sha256(body)
//! ```
//!
//! The server refuses a request whose `t` is outside its window or whose `n` it has seen, so
//! a captured request cannot be replayed; the device checks the answer's signature and that
//! it echoes its own nonce, so an answer cannot be forged or swapped.

use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying a signature, both ways.
pub const HEADER: &str = "x-awf-signature";

/// Shortest deployment secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A nonce is 16 to 64 characters of `[A-Za-z0-9_-]`.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// The signing key of one save.
pub fn save_key(secret: &[u8], save_id: &str) -> [u8; 32] {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"awf-sync-signing-v1"), secret);
    let mut key = [0u8; 32];
    hk.expand(save_id.to_ascii_lowercase().as_bytes(), &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

/// [`save_key`] as lowercase hex, as devices receive it.
pub fn save_key_hex(secret: &[u8], save_id: &str) -> String {
    hex::encode(save_key(secret, save_id))
}

/// A key in hex (as devices receive it) back to bytes.
pub fn key_from_hex(key: &str) -> Result<Vec<u8>> {
    hex::decode(key).map_err(|_| Error::invalid("a signing key is 64 hex characters"))
}

/// Reads a deployment secret file: 64 or more hex characters (surrounding whitespace ignored).
pub fn parse_secret(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    let bytes = hex::decode(t)
        .map_err(|_| Error::invalid("the signing secret file must hold hex characters only"))?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(Error::invalid(format!(
            "the signing secret must be at least {MIN_SECRET_BYTES} bytes ({} hex characters)",
            2 * MIN_SECRET_BYTES
        )));
    }
    Ok(bytes)
}

/// The lowercase-hex SHA-256 of a body (of the empty body for a GET).
pub fn body_hash(body: &[u8]) -> String {
    sha256_hex(body)
}

/// What a request's signature covers.
pub fn request_string(method: &str, path: &str, t: i64, nonce: &str, body_sha256: &str) -> String {
    format!(
        "AWF1-REQUEST\n{}\n{path}\n{t}\n{nonce}\n{body_sha256}",
        method.to_ascii_uppercase()
    )
}

/// What an answer's signature covers.
pub fn response_string(status: u16, nonce: &str, t: i64, body_sha256: &str) -> String {
    format!("AWF1-RESPONSE\n{status}\n{nonce}\n{t}\n{body_sha256}")
}

/// HMAC-SHA256 of `message` under `key`, as lowercase hex.
pub fn sign(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `message`, compared in constant time.
pub fn verify(key: &[u8], message: &str, signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    crate::ids::secrets_equal(&mac.finalize().into_bytes(), &sig)
}

/// Whether `n` can be a nonce: 16 to 64 characters of `[A-Za-z0-9_-]`.
pub fn is_nonce(n: &str) -> bool {
    NONCE_LEN.contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Unix seconds when it was made.
    pub t: i64,
    /// The signer's nonce.
    pub nonce: String,
    /// The HMAC, 64 lowercase hex characters.
    pub mac: String,
}

impl Signature {
    /// The header value: `t=<t>, n=<nonce>, s=<mac>`.
    pub fn header(&self) -> String {
        format!("t={}, n={}, s={}", self.t, self.nonce, self.mac)
    }

    /// Parses a header value; anything malformed is refused as not authenticated.
    pub fn parse(value: &str) -> Result<Signature> {
        let bad = |why: &str| {
            Error::not_authenticated(format!(
                "the signature header is malformed ({why}): expected `t=<unix seconds>, n=<nonce>, s=<64 hex>`"
            ))
        };
        if value.len() > 256 {
            return Err(bad("too long"));
        }
        let (mut t, mut n, mut s) = (None, None, None);
        for part in value.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| bad("a part is not k=v"))?;
            let slot = match k {
                "t" => &mut t,
                "n" => &mut n,
                "s" => &mut s,
                _ => return Err(bad("unknown part")),
            };
            if slot.replace(v.to_owned()).is_some() {
                return Err(bad("a repeated part"));
            }
        }
        let t: i64 = t
            .ok_or_else(|| bad("no t"))?
            .parse()
            .map_err(|_| bad("t is not a number"))?;
        let nonce = n.ok_or_else(|| bad("no n"))?;
        if !is_nonce(&nonce) {
            return Err(bad("n must be 16 to 64 characters of A-Z a-z 0-9 - _"));
        }
        let mac = s.ok_or_else(|| bad("no s"))?.to_ascii_lowercase();
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("s must be 64 hex characters"));
        }
        Ok(Signature { t, nonce, mac })
    }
}

/// Signs a request: the header value a device sends.
pub fn sign_request(
    key: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
    t: i64,
    nonce: &str,
) -> String {
    let mac = sign(
        key,
        &request_string(method, path, t, nonce, &body_hash(body)),
    );
    Signature {
        t,
        nonce: nonce.to_owned(),
        mac,
    }
    .header()
}

/// Checks an answer's signature header against the body and the request's nonce.
pub fn verify_response(key: &[u8], status: u16, nonce: &str, body: &[u8], header: &str) -> bool {
    let Ok(sig) = Signature::parse(header) else {
        return false;
    };
    sig.nonce == nonce
        && verify(
            key,
            &response_string(status, nonce, sig.t, &body_hash(body)),
            &sig.mac,
        )
}

/// A new random nonce: 32 hex characters.
pub fn new_nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "7D444840-9DC0-11D1-B245-5FFDCE74FAD2";

    fn secret() -> Vec<u8> {
        (0u8..32).collect()
    }

    // The expected values below were computed with Python's hmac and hashlib (HKDF written
    // out from RFC 5869), not with this crate.
    #[test]
    fn keys_and_signatures_match_an_independent_implementation() {
        let key = save_key(&secret(), SAVE);
        assert_eq!(
            hex::encode(key),
            "3df71e1bcc2ef5de20520100bad28496d3597aa0d9e212f580c9ec9a7abecc11"
        );
        let body = br#"{"a":1}"#;
        let h = sign_request(
            &key,
            "post",
            "/api/awf-cloud-sync/sync/up",
            body,
            1764800000,
            "n0nce-0123456789ab",
        );
        assert_eq!(
            h,
            "t=1764800000, n=n0nce-0123456789ab, s=88eaad07585b7b8c5a89bb4b7f02eb251088d853b4f803b01bc368c6384cab50"
        );
        let answer = response_string(200, "n0nce-0123456789ab", 1764800001, &body_hash(body));
        assert_eq!(
            sign(&key, &answer),
            "781c4e20dd02480c193a12ec9b22744124d2fff1bff10b0db823784ff4d635de"
        );
        let header = format!(
            "t=1764800001, n=n0nce-0123456789ab, s={}",
            sign(&key, &answer)
        );
        assert!(verify_response(
            &key,
            200,
            "n0nce-0123456789ab",
            body,
            &header
        ));
        assert!(!verify_response(
            &key,
            201,
            "n0nce-0123456789ab",
            body,
            &header
        ));
        assert!(!verify_response(
            &key,
            200,
            "another-nonce-0000",
            body,
            &header
        ));
        assert!(!verify_response(
            &key,
            200,
            "n0nce-0123456789ab",
            b"{}",
            &header
        ));
        assert_eq!(
            body_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_input_changes_the_signature() {
        let key = save_key(&secret(), SAVE);
        let base = request_string("POST", "/p", 1, "nonce-nonce-nonce", "ab");
        let sig = sign(&key, &base);
        assert!(verify(&key, &base, &sig));
        for other in [
            request_string("GET", "/p", 1, "nonce-nonce-nonce", "ab"),
            request_string("POST", "/q", 1, "nonce-nonce-nonce", "ab"),
            request_string("POST", "/p", 2, "nonce-nonce-nonce", "ab"),
            request_string("POST", "/p", 1, "nonce-nonce-noncf", "ab"),
            request_string("POST", "/p", 1, "nonce-nonce-nonce", "ac"),
        ] {
            assert!(!verify(&key, &other, &sig), "{other}");
        }
        let other_save = save_key(&secret(), "7d444840-9dc0-11d1-b245-5ffdce74fad3");
        assert!(!verify(&other_save, &base, &sig));
        assert!(!verify(&key, &base, "zz"));
    }

    #[test]
    fn headers_parse_strictly() {
        let s =
            Signature::parse(&format!("t=5, n=abcdefghijklmnop, s={}", "A".repeat(64))).unwrap();
        assert_eq!(s.t, 5);
        assert_eq!(s.mac, "a".repeat(64));
        assert_eq!(Signature::parse(&s.header()).unwrap(), s);
        for bad in [
            "",
            "t=5",
            "t=x, n=abcdefghijklmnop, s=00",
            &format!("t=5, n=short, s={}", "0".repeat(64)),
            &format!("t=5, n=abcdefghijklmnop!, s={}", "0".repeat(64)),
            &format!("t=5, t=6, n=abcdefghijklmnop, s={}", "0".repeat(64)),
            &format!("t=5, n=abcdefghijklmnop, s={}, x=1", "0".repeat(64)),
            &format!("t=5, n=abcdefghijklmnop, s={}", "0".repeat(63)),
            &"t=5,".repeat(100),
        ] {
            let e = Signature::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::NotAuthenticated, "{bad}");
        }
    }

    #[test]
    fn secrets_must_be_long_hex() {
        assert_eq!(
            parse_secret(&format!(" {}\n", "ab".repeat(32)))
                .unwrap()
                .len(),
            32
        );
        assert!(parse_secret(&"ab".repeat(31)).is_err());
        assert!(
            parse_secret("not hex at all, not hex at all, not hex at all, not hex at all!")
                .is_err()
        );
        assert_ne!(new_nonce(), new_nonce());
        assert!(Signature::parse(&format!("t=1, n={}, s={}", new_nonce(), "0".repeat(64))).is_ok());
    }
}
