//! Blob codec: round trips, tamper and truncation refusal, keys and master key rotation.

use std::collections::HashMap;

use awf_core::codec::{
    self, decode, decode_limited, encode, header, rewrap, Cipher, Codec, DataKey, EncodeOptions,
    MasterKey, NoKeys, WrappedKey,
};
use awf_core::ErrorKind;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// Deterministic JSON-like text of about `target` bytes, compressible the way game states are.
fn json_like(target: usize) -> Vec<u8> {
    let mut s = String::from("{\"npcs\":[");
    let mut i: u64 = 0;
    while s.len() < target {
        // A cheap LCG keeps some entropy so zstd has work to do at every level.
        let r = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"npc-{r:x}\",\"hp\":{},\"flags\":[\"met\",\"quest-{}\"]}},",
            r % 100,
            r % 7
        ));
        i += 1;
    }
    s.push_str("null]}");
    s.into_bytes()
}

fn small_state() -> Vec<u8> {
    br#"{"player":{"hp":10,"name":"Ada"},"world":{"day":3,"weather":"rain, rain, rain, rain"}}"#
        .to_vec()
}

#[test]
fn round_trips_across_sizes_levels_and_encryption() {
    let key = DataKey::generate("dk-2025-01").unwrap();
    let inputs = [
        Vec::new(),
        b"x".to_vec(),
        small_state(),
        json_like(200 * 1024),
    ];
    for plain in &inputs {
        for level in [0, 1, 3, 10, 19] {
            for encrypted in [false, true] {
                let mut opts = EncodeOptions::level(level);
                if encrypted {
                    opts = opts.with_key(&key);
                }
                let blob = encode(plain, &opts).unwrap();
                let h = header(&blob).unwrap();
                assert_eq!(h.plain_len, plain.len() as u64);
                assert_eq!(h.header_len + h.body_len, blob.len());
                if encrypted {
                    assert_eq!(h.cipher, Cipher::Aes256Gcm);
                    assert_eq!(h.key_id.as_deref(), Some("dk-2025-01"));
                    assert!(h.nonce.is_some());
                    assert_eq!(decode(&blob, &key).unwrap(), *plain);
                } else {
                    assert_eq!(h.cipher, Cipher::None);
                    assert_eq!(h.key_id, None);
                    assert_eq!(decode(&blob, &NoKeys).unwrap(), *plain);
                }
                if level == 0 || plain.len() < 16 {
                    assert_eq!(h.codec, Codec::None, "level {level}, {} bytes", plain.len());
                }
                if level > 0 && plain.len() > 1000 {
                    assert_eq!(h.codec, Codec::Zstd);
                    assert!(
                        blob.len() < plain.len() / 2,
                        "level {level} did not compress"
                    );
                }
            }
        }
    }
}

#[test]
fn extreme_level_and_out_of_range_levels() {
    let plain = json_like(4096);
    let blob = encode(&plain, &EncodeOptions::level(22)).unwrap();
    assert_eq!(decode(&blob, &NoKeys).unwrap(), plain);
    for bad in [-1, 23, i32::MIN, i32::MAX] {
        let err = encode(&plain, &EncodeOptions::level(bad)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "level {bad}");
        assert!(err.message.contains("1..=22"), "{}", err.message);
    }
}

#[test]
fn header_layout_is_as_documented() {
    let key = DataKey::generate("k1").unwrap();
    let plain = small_state();
    let blob = encode(&plain, &EncodeOptions::level(0).with_key(&key)).unwrap();
    assert_eq!(&blob[0..4], b"AWFB");
    assert_eq!(blob[4], 1, "version");
    assert_eq!(blob[5], 0, "codec none");
    assert_eq!(blob[6], 1, "aes-256-gcm");
    assert_eq!(blob[7], 2, "key id length");
    assert_eq!(&blob[8..10], b"k1");
    let h = header(&blob).unwrap();
    assert_eq!(&blob[10..22], &h.nonce.unwrap());
    assert_eq!(&blob[22..30], &(plain.len() as u64).to_le_bytes());
    assert_eq!(h.header_len, 30);
    assert_eq!(blob.len(), 30 + plain.len() + 16);

    let blob = encode(&plain, &EncodeOptions::level(0)).unwrap();
    assert_eq!(&blob[4..8], &[1, 0, 0, 0]);
    assert_eq!(header(&blob).unwrap().header_len, 16);
    assert_eq!(blob.len(), 16 + plain.len() + 8);
}

fn assert_refused(blob: &[u8], keys: &dyn codec::KeyLookup, what: &str) -> ErrorKind {
    match decode(blob, keys) {
        Ok(p) => panic!("{what}: accepted, decoded {} bytes", p.len()),
        Err(e) => e.kind,
    }
}

#[test]
fn every_flipped_byte_of_an_encrypted_blob_is_refused() {
    let key = DataKey::generate("dk").unwrap();
    for level in [0, 3] {
        let plain = small_state();
        let blob = encode(&plain, &EncodeOptions::level(level).with_key(&key)).unwrap();
        let header_len = header(&blob).unwrap().header_len;
        let mut refused = 0;
        for pos in 0..blob.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = blob.clone();
                bad[pos] ^= mask;
                let kind =
                    assert_refused(&bad, &key, &format!("level {level} byte {pos}^{mask:#x}"));
                if pos >= header_len {
                    assert_eq!(kind, ErrorKind::Integrity, "body byte {pos}");
                }
                refused += 1;
            }
        }
        assert_eq!(refused, blob.len() * 3);
    }
}

#[test]
fn every_flipped_byte_of_an_unencrypted_blob_is_refused() {
    for (plain, level) in [
        (small_state(), 0),
        (small_state(), 3),
        (json_like(3000), 10),
    ] {
        let blob = encode(&plain, &EncodeOptions::level(level)).unwrap();
        for pos in 0..blob.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = blob.clone();
                bad[pos] ^= mask;
                assert_refused(
                    &bad,
                    &NoKeys,
                    &format!("level {level} byte {pos}^{mask:#x}"),
                );
            }
        }
    }
}

#[test]
fn zstd_frame_checksum_is_enabled() {
    let blob = encode(&json_like(3000), &EncodeOptions::level(3)).unwrap();
    let h = header(&blob).unwrap();
    let frame = &blob[h.header_len..blob.len() - codec::CHECK_LEN];
    assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    assert_ne!(frame[4] & 0x04, 0, "Content_Checksum_flag must be set");
}

#[test]
fn zstd_checksum_catches_corruption_the_outer_check_misses() {
    // Incompressible input makes a raw block, so a flipped byte changes content, not structure.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut frame = zstd::bulk::Compressor::new(3).unwrap();
    frame
        .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .unwrap();
    let mut frame = frame.compress(&noise).unwrap();
    assert_eq!(
        decode(&forge_unencrypted(1, 4096, &frame), &NoKeys).unwrap(),
        noise
    );
    let mid = frame.len() / 2;
    frame[mid] ^= 1;
    // The forged blob's own check is recomputed, so only the frame checksum stands in the way.
    let err = decode(&forge_unencrypted(1, 4096, &frame), &NoKeys).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity, "{}", err.message);
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let key = DataKey::generate("dk").unwrap();
    let plain = json_like(600);
    let cases = [
        (&plain[..], EncodeOptions::level(3).with_key(&key)),
        (&plain[..], EncodeOptions::level(0).with_key(&key)),
        (&plain[..], EncodeOptions::level(3)),
        (&plain[..], EncodeOptions::level(0)),
        (&b""[..], EncodeOptions::level(3)),
        (&b""[..], EncodeOptions::level(3).with_key(&key)),
    ];
    for (input, opts) in cases {
        let blob = encode(input, &opts).unwrap();
        for cut in 0..blob.len() {
            assert_refused(&blob[..cut], &key, &format!("cut at {cut}"));
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert_refused(&longer, &key, "one byte appended");
        assert_eq!(decode(&blob, &key).unwrap(), input);
    }
}

#[test]
fn wrong_or_missing_data_key_is_refused() {
    let key = DataKey::generate("dk-1").unwrap();
    let blob = encode(&small_state(), &EncodeOptions::default().with_key(&key)).unwrap();

    // Same id, other key material: the tag fails.
    let impostor = DataKey::generate("dk-1").unwrap();
    let err = decode(&blob, &impostor).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity);
    assert!(err.message.contains("dk-1"), "{}", err.message);

    // A key with another id is never tried: the header names the key it needs.
    let other = DataKey::generate("dk-2").unwrap();
    let err = decode(&blob, &other).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("dk-1"), "{}", err.message);
    assert_eq!(
        decode(&blob, &NoKeys).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        decode(&blob, &None::<&DataKey>).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(decode(&blob, &Some(&key)).unwrap(), small_state());
}

#[test]
fn editing_the_key_id_to_another_available_key_is_refused() {
    let k1 = DataKey::generate("dk-1").unwrap();
    let k2 = DataKey::generate("dk-2").unwrap();
    let mut keys = HashMap::new();
    keys.insert("dk-1".to_owned(), k1.clone());
    keys.insert("dk-2".to_owned(), k2);
    let blob = encode(&small_state(), &EncodeOptions::default().with_key(&k1)).unwrap();
    assert_eq!(decode(&blob, &keys).unwrap(), small_state());
    let mut edited = blob.clone();
    assert_eq!(&edited[8..12], b"dk-1");
    edited[11] = b'2';
    assert_eq!(header(&edited).unwrap().key_id.as_deref(), Some("dk-2"));
    assert_eq!(
        decode(&edited, &keys).unwrap_err().kind,
        ErrorKind::Integrity
    );
    // Dropping encryption in the header cannot pass either.
    let mut stripped = blob.clone();
    stripped[6] = 0;
    assert!(decode(&stripped, &keys).is_err());
}

#[test]
fn master_key_rotation_rewrites_no_blob() {
    let master_a = MasterKey::generate("master-a").unwrap();
    let master_b = MasterKey::generate("master-b").unwrap();
    let data_key = DataKey::generate("dk-user-42").unwrap();

    // What is stored: the wrapped data key and the blob.
    let stored_wrapped = master_a.wrap(&data_key).to_bytes();
    let plain = json_like(10_000);
    let blob = encode(&plain, &EncodeOptions::level(10).with_key(&data_key)).unwrap();
    drop(data_key);

    // Rotation: only the wrapped key is rewritten.
    let wrapped = WrappedKey::from_bytes(&stored_wrapped).unwrap();
    let rotated = rewrap(&wrapped, &master_a, &master_b).unwrap();
    assert_eq!(rotated.master_key_id, "master-b");
    assert_eq!(rotated.data_key_id, "dk-user-42");
    let stored_wrapped = rotated.to_bytes();

    let dk = master_b
        .unwrap(&WrappedKey::from_bytes(&stored_wrapped).unwrap())
        .unwrap();
    assert_eq!(dk.id(), "dk-user-42");
    assert_eq!(decode(&blob, &dk).unwrap(), plain);

    // The old master no longer opens the stored wrapped key.
    let err = master_a.unwrap(&rotated).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("master-b") && err.message.contains("master-a"),
        "{}",
        err.message
    );
    // Not even when the id is forged to match: the tag binds the master key material.
    let mut forged = rotated.clone();
    forged.master_key_id = "master-a".into();
    assert_eq!(
        master_a.unwrap(&forged).unwrap_err().kind,
        ErrorKind::Integrity
    );
    // A different key that reuses the id is a tag failure.
    let reused_id = MasterKey::generate("master-b").unwrap();
    assert_eq!(
        reused_id.unwrap(&rotated).unwrap_err().kind,
        ErrorKind::Integrity
    );
    // Rewrapping with the wrong old master fails and produces nothing.
    assert!(rewrap(&rotated, &master_a, &master_b).is_err());
}

#[test]
fn master_key_from_key_file_and_hex() {
    let hex_key = "0f".repeat(32);
    let k = MasterKey::from_key_file(&format!("# prod\nprod-1:{hex_key}\n")).unwrap();
    assert_eq!(k.id(), "prod-1");
    let same = MasterKey::from_hex("prod-1", &hex_key.to_uppercase()).unwrap();
    let dk = DataKey::generate("d").unwrap();
    assert_eq!(same.unwrap(&k.wrap(&dk)).unwrap().id(), "d");
    let unnamed = MasterKey::from_key_file(&hex_key).unwrap();
    assert!(unnamed.id().starts_with("mk-"));
    assert_eq!(
        unnamed.id(),
        MasterKey::from_key_file(&format!("{hex_key}\n"))
            .unwrap()
            .id()
    );
    let err = MasterKey::from_hex("m", &"0f".repeat(16)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("64 hex digits"), "{}", err.message);
    let err = MasterKey::from_bytes("m", &[1; 16]).unwrap_err();
    assert!(err.message.contains("32 bytes"), "{}", err.message);
    assert!(!format!("{k:?}").contains(&hex_key));
}

#[test]
fn nonces_differ_across_encodes() {
    let key = DataKey::generate("dk").unwrap();
    let plain = small_state();
    let mut nonces = std::collections::HashSet::new();
    let mut blobs = std::collections::HashSet::new();
    for _ in 0..64 {
        let blob = encode(&plain, &EncodeOptions::default().with_key(&key)).unwrap();
        assert!(nonces.insert(header(&blob).unwrap().nonce.unwrap()));
        assert!(blobs.insert(blob));
    }
    let m = MasterKey::generate("m").unwrap();
    assert_ne!(m.wrap(&key).nonce, m.wrap(&key).nonce);
}

#[test]
fn header_is_readable_without_a_key_and_refuses_garbage() {
    let key = DataKey::generate("dk").unwrap();
    let plain = json_like(5000);
    let blob = encode(&plain, &EncodeOptions::level(3).with_key(&key)).unwrap();
    let h = header(&blob).unwrap();
    assert_eq!(
        (h.version, h.codec, h.cipher, h.plain_len),
        (1, Codec::Zstd, Cipher::Aes256Gcm, plain.len() as u64)
    );

    for (bytes, needle) in [
        (b"NOPE\x01\x00\x00\x00".to_vec(), "magic"),
        (b"AWFB\x02\x00\x00\x00".to_vec(), "version 2"),
        (b"AWFB\x01\x07\x00\x00".to_vec(), "codec id 7"),
        (b"AWFB\x01\x00\x09\x00".to_vec(), "cipher id 9"),
        (b"AWFB\x01\x00\x00\x02ab".to_vec(), "names a data key"),
        (b"AWFB\x01\x00\x01\x00".to_vec(), "empty"),
        (b"AWFB\x01\x00\x01\x02\xff\xfe".to_vec(), "UTF-8"),
        (b"AWFB\x01".to_vec(), "truncated"),
    ] {
        let err = header(&bytes).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::InvalidInput,
            "{needle}: {}",
            err.message
        );
        assert!(err.message.contains(needle), "{needle}: {}", err.message);
    }
}

/// Builds an unencrypted blob by hand with a valid check, as a forger could.
fn forge_unencrypted(codec_id: u8, plain_len: u64, body: &[u8]) -> Vec<u8> {
    let mut blob = b"AWFB\x01".to_vec();
    blob.extend_from_slice(&[codec_id, 0, 0]);
    blob.extend_from_slice(&plain_len.to_le_bytes());
    blob.extend_from_slice(body);
    let check = Sha256::digest(&blob);
    blob.extend_from_slice(&check[..codec::CHECK_LEN]);
    blob
}

#[test]
fn a_frame_larger_than_declared_is_stopped_at_the_declared_length() {
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
    assert!(bomb.len() < 64 << 10);
    let blob = forge_unencrypted(1, 1000, &bomb);
    let err = decode(&blob, &NoKeys).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity);
    assert!(err.message.contains("beyond"), "{}", err.message);

    // Declaring the true size does not help past the caller's limit.
    let blob = forge_unencrypted(1, 64 << 20, &bomb);
    assert_eq!(
        decode_limited(&blob, &NoKeys, 1 << 20).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    let blob = forge_unencrypted(1, u64::MAX, &bomb);
    assert_eq!(
        decode(&blob, &NoKeys).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );

    // A frame shorter than declared is refused too.
    let small = zstd::bulk::compress(b"hello hello hello hello", 3).unwrap();
    let blob = forge_unencrypted(1, 24, &small);
    assert_eq!(
        decode(&blob, &NoKeys).unwrap_err().kind,
        ErrorKind::Integrity
    );
    let blob = forge_unencrypted(1, 23, &small);
    assert_eq!(decode(&blob, &NoKeys).unwrap(), b"hello hello hello hello");
}

proptest! {
    // No regression files: proptest cannot find lib.rs from tests/ to anchor them.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2048), level in 0i32..=12, enc in any::<bool>()) {
        let key = DataKey::generate("p").unwrap();
        let mut opts = EncodeOptions::level(level);
        if enc { opts = opts.with_key(&key); }
        let blob = encode(&plain, &opts).unwrap();
        prop_assert_eq!(decode(&blob, &key).unwrap(), plain);
    }

    #[test]
    fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), prefix in any::<bool>()) {
        let mut blob = if prefix { b"AWFB\x01".to_vec() } else { Vec::new() };
        blob.extend(bytes);
        let key = DataKey::generate("p").unwrap();
        let parsed = header(&blob);
        if decode(&blob, &key).is_ok() {
            prop_assert!(parsed.is_ok());
        }
        let _ = WrappedKey::from_bytes(&blob);
    }
}

/// The codec keeps one zstd context per thread: a frame that fails half way (a bomb stopped at
/// its declared length, a corrupt frame) must leave nothing behind for the next blob, and
/// switching levels must not leak the previous level into later frames.
#[test]
fn a_failed_frame_leaves_the_reused_context_clean() {
    let state = json_like(20_000);
    let good = encode(&state, &EncodeOptions::level(3)).unwrap();
    let bomb = zstd::bulk::compress(&vec![0u8; 8 << 20], 19).unwrap();
    let stopped = forge_unencrypted(1, 1000, &bomb);
    let mut broken = zstd::bulk::compress(&state, 3).unwrap();
    let mid = broken.len() / 2;
    broken[mid] ^= 0x55;
    let broken = forge_unencrypted(1, state.len() as u64, &broken);
    for round in 0..3 {
        assert!(decode(&stopped, &NoKeys).is_err(), "round {round}");
        assert_eq!(decode(&good, &NoKeys).unwrap(), state, "round {round}");
        assert!(decode(&broken, &NoKeys).is_err(), "round {round}");
        assert_eq!(decode(&good, &NoKeys).unwrap(), state, "round {round}");
    }
    // Alternating levels give each level's own frame, the same bytes as a fresh context's.
    for level in [3, 19, 1, 3, 19] {
        let reused = encode(&state, &EncodeOptions::level(level)).unwrap();
        let h = header(&reused).unwrap();
        let frame = &reused[h.header_len..reused.len() - codec::CHECK_LEN];
        let mut fresh = zstd::bulk::Compressor::new(level).unwrap();
        fresh
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .unwrap();
        assert_eq!(frame, fresh.compress(&state).unwrap(), "level {level}");
        assert_eq!(decode(&reused, &NoKeys).unwrap(), state, "level {level}");
    }
}
