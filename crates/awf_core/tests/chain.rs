//! The hash chain: a built chain verifies, and every kind of tampering is reported at exactly
//! the link that was touched.

use awf_core::canonical::{content_hash, sha256_hex};
use awf_core::chain::{build, head, link, verify, BrokenLink, Link, GENESIS};
use awf_core::{Error, ErrorKind};
use serde_json::json;

const N: usize = 12;

fn sample() -> Vec<Link> {
    let turns: Vec<(i64, String)> = (0..N)
        .map(|i| {
            let state = json!({"turn": i, "player": {"hp": 100 - i as i64}, "log": ["x", "y"]});
            (i as i64 + 1, content_hash(&state).unwrap())
        })
        .collect();
    build(GENESIS, &turns)
}

fn broken_at(links: &[Link]) -> BrokenLink {
    verify(GENESIS, links).expect_err("tampering must be detected")
}

#[test]
fn built_chain_verifies() {
    let links = sample();
    assert_eq!(links.len(), N);
    assert_eq!(verify(GENESIS, &links), Ok(()));
    assert_eq!(verify(GENESIS, &[]), Ok(()));
    assert_eq!(head(GENESIS, &links), links[N - 1].chain_hash);
    assert_eq!(head(GENESIS, &[]), GENESIS);
    assert_eq!(
        links[0].chain_hash,
        link(GENESIS, 1, &links[0].content_hash)
    );
    // A suffix verifies from the chain hash just before it.
    assert_eq!(verify(&links[4].chain_hash, &links[5..]), Ok(()));
    // Building is deterministic and accepts borrowed hashes too.
    let borrowed: Vec<(i64, &str)> = links
        .iter()
        .map(|l| (l.turn_id, l.content_hash.as_str()))
        .collect();
    assert_eq!(build(GENESIS, &borrowed), links);
}

#[test]
fn changed_content_hash_is_found_at_its_index() {
    for i in 0..N {
        let mut links = sample();
        links[i].content_hash = sha256_hex(format!("forged {i}").as_bytes());
        let b = broken_at(&links);
        assert_eq!((b.index, b.turn_id), (i, links[i].turn_id), "{b}");
        assert_eq!(b.found, links[i].chain_hash);
    }
}

#[test]
fn changed_turn_id_is_found_at_its_index() {
    for i in 0..N {
        for delta in [-1i64, 1, 1000] {
            let mut links = sample();
            links[i].turn_id += delta;
            let b = broken_at(&links);
            assert_eq!(b.index, i, "turn {i} {delta:+}: {b}");
            assert_eq!(b.turn_id, links[i].turn_id);
        }
    }
}

#[test]
fn changed_chain_hash_is_found_at_its_index() {
    for i in 0..N {
        let mut links = sample();
        let good = links[i].chain_hash.clone();
        links[i].chain_hash = sha256_hex(b"forged");
        let b = broken_at(&links);
        assert_eq!(b.index, i, "{b}");
        assert_eq!(b.expected, good);
        assert_eq!(b.found, links[i].chain_hash);
    }
}

#[test]
fn a_consistently_rebuilt_suffix_still_breaks_at_the_edit() {
    // A forger who rewrites turn 5 and recomputes every later link gets a chain that verifies
    // on its own, but whose head differs from the recorded one from link 5 on: this is why
    // callers keep the head hash and compare it.
    let links = sample();
    let mut turns: Vec<(i64, String)> = links
        .iter()
        .map(|l| (l.turn_id, l.content_hash.clone()))
        .collect();
    turns[5].1 = sha256_hex(b"rewritten history");
    let forged = build(GENESIS, &turns);
    assert_eq!(verify(GENESIS, &forged), Ok(()));
    assert_ne!(head(GENESIS, &forged), head(GENESIS, &links));
    let first_diff = forged
        .iter()
        .zip(&links)
        .position(|(a, b)| a.chain_hash != b.chain_hash);
    assert_eq!(first_diff, Some(5));
    // Splicing the forged link into the original chain breaks it right after the splice.
    let mut spliced = links.clone();
    spliced[5] = forged[5].clone();
    assert_eq!(broken_at(&spliced).index, 6);
}

#[test]
fn reordering_dropping_and_duplicating_are_detected() {
    let links = sample();

    let mut swapped = links.clone();
    swapped.swap(3, 4);
    assert_eq!(broken_at(&swapped).index, 3);

    let mut swapped_first = links.clone();
    swapped_first.swap(0, 1);
    assert_eq!(broken_at(&swapped_first).index, 0);

    let mut reversed = links.clone();
    reversed.reverse();
    assert_eq!(broken_at(&reversed).index, 0);

    let mut dropped = links.clone();
    dropped.remove(6);
    let b = broken_at(&dropped);
    assert_eq!(
        (b.index, b.expected.as_str(), b.found.as_str()),
        (6, "7", "8")
    );

    let mut duplicated = links.clone();
    duplicated.insert(7, links[6].clone());
    assert_eq!(broken_at(&duplicated).index, 7);

    // Dropping the first link is caught because the next one no longer follows GENESIS.
    assert_eq!(broken_at(&links[1..]).index, 0);
}

#[test]
fn malformed_hashes_and_overflow_are_broken_links() {
    let links = sample();
    let mut upper = links.clone();
    upper[2].content_hash = upper[2].content_hash.to_uppercase();
    let b = broken_at(&upper);
    assert_eq!(b.index, 2);
    assert!(b.reason.contains("malformed"), "{b}");

    let max = build(
        GENESIS,
        &[(i64::MAX, sha256_hex(b"a")), (i64::MIN, sha256_hex(b"b"))],
    );
    assert_eq!(broken_at(&max).index, 1);

    let err: Error = broken_at(&upper).into();
    assert_eq!(err.kind, ErrorKind::Integrity);
    assert!(err.message.contains("link 2"), "{}", err.message);
}

#[test]
fn links_round_trip_through_serde() {
    let links = sample();
    let text = serde_json::to_string(&links).unwrap();
    let back: Vec<Link> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, links);
    assert_eq!(verify(GENESIS, &back), Ok(()));
}
