//! Cloud save turns end to end: a 300-turn save of realistic states (a base every 25 turns)
//! rebuilds every turn byte for byte, and every kind of damage is reported at the turn that
//! was damaged, by the check meant to catch it.

use awf_core::canonical::{canonical_bytes, sha256_hex};
use awf_core::chain::{Link, GENESIS};
use awf_core::json::parse;
use awf_core::save::{
    base_every, plan, plan_sealed, rebuild, verify, Kind, Planned, Rebuilt, StoredTurn,
};
use awf_core::{Budget, Error, ErrorKind};
use awf_sample::{game_state, next_turn, turn_of};
use serde_json::{json, Value};

const TURNS: i64 = 300;
const EVERY: i64 = 25;
const SEED: u64 = 23;

/// A stored turn as the extension holds it after reading and decoding its row.
#[derive(Clone)]
struct Row {
    turn_id: i64,
    p: Planned,
}

impl Row {
    fn view(&self) -> StoredTurn<'_> {
        StoredTurn {
            turn_id: self.turn_id,
            kind: self.p.kind,
            blob: &self.p.blob,
            blob_hash: &self.p.blob_hash,
            content_hash: &self.p.content_hash,
            chain_hash: &self.p.chain_hash,
        }
    }
}

fn views(rows: &[Row]) -> Vec<StoredTurn<'_>> {
    rows.iter().map(Row::view).collect()
}

/// The save (turns 1..=300 after a GENESIS origin at turn 0) and the canonical bytes of the
/// state that was planned at each turn (`expected[t - 1]`).
fn save() -> (Vec<Row>, Vec<Vec<u8>>) {
    let mut state = game_state(6_000, SEED);
    let mut game_turn = turn_of(&state);
    let mut prev: Option<Value> = None;
    let mut chain = GENESIS.to_owned();
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for t in 1..=TURNS {
        game_turn += 1;
        next_turn(&mut state, game_turn, SEED);
        let p = plan(
            prev.as_ref(),
            &chain,
            t,
            &state,
            base_every(t, 0, EVERY),
            &mut Budget::default(),
        )
        .unwrap();
        assert_eq!(p.kind == Kind::Base, (t - 1) % EVERY == 0, "turn {t}");
        chain.clone_from(&p.chain_hash);
        expected.push(canonical_bytes(&state).unwrap());
        rows.push(Row { turn_id: t, p });
        prev = Some(state.clone());
    }
    (rows, expected)
}

/// The last base at or before `target` (origin 0).
fn last_base(target: i64) -> i64 {
    (1..=target)
        .rev()
        .find(|&t| base_every(t, 0, EVERY))
        .unwrap()
}

/// Rebuilds `target` the way the extension does: chain-only links before the last base,
/// blobs from it.
fn rebuild_from_base(rows: &[Row], target: i64) -> Result<Rebuilt, Error> {
    let split = (last_base(target) - 1) as usize;
    let turns = views(rows);
    let links: Vec<Link> = turns[..split].iter().map(StoredTurn::link).collect();
    rebuild(GENESIS, 0, &links, &turns[split..], target)
}

fn integrity(r: Result<Rebuilt, Error>) -> Error {
    let e = r.expect_err("damage must be detected");
    assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
    e
}

fn set_blob(row: &mut Row, blob: Vec<u8>) {
    row.p.blob_hash = sha256_hex(&blob);
    row.p.blob = blob;
}

#[test]
fn every_turn_rebuilds_exactly() {
    let (rows, expected) = save();
    let diffs = rows.iter().filter(|r| r.p.kind == Kind::Diff);
    // Diffs are what makes a save small: far below the state size.
    let (n, diff_bytes) = diffs.fold((0, 0), |(n, b), r| (n + 1, b + r.p.blob.len()));
    assert_eq!(n, TURNS - TURNS / EVERY);
    assert!(
        diff_bytes / n as usize * 5 < expected[0].len(),
        "{diff_bytes} / {n}"
    );

    let turns = views(&rows);
    for target in 1..=TURNS {
        let want = &expected[target as usize - 1];
        let r = rebuild_from_base(&rows, target).unwrap();
        let Rebuilt::State {
            turn_id,
            state,
            bytes,
            content_hash,
        } = &r
        else {
            panic!("turn {target} is not sealed")
        };
        assert_eq!(*turn_id, target);
        assert!(bytes == want, "turn {target}: rebuilt bytes differ");
        assert_eq!(canonical_bytes(state).unwrap(), *want);
        assert_eq!(*content_hash, sha256_hex(want));
        assert_eq!(rows[target as usize - 1].p.state_bytes, want.len());
        // Passing every turn from the origin gives the same result.
        if target % 7 == 0 {
            assert_eq!(rebuild(GENESIS, 0, &[], &turns, target).unwrap(), r);
        }
    }
    let head = rows.last().unwrap().p.chain_hash.as_str();
    let report = verify(GENESIS, 0, &turns, Some((TURNS, head)));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.turns_checked, TURNS as usize);
    assert_eq!((report.first_bad_turn, report.reason), (None, None));
}

#[test]
fn a_flipped_byte_in_any_blob_is_named_by_the_blob_hash() {
    let (rows, _) = save();
    for k in 1..=TURNS {
        let mut damaged = rows.clone();
        let blob = &mut damaged[k as usize - 1].p.blob;
        let at = (k as usize * 31) % blob.len();
        blob[at] ^= 0x20;
        let e = integrity(rebuild_from_base(&damaged, k));
        assert!(
            e.message.starts_with(&format!("turn {k}: ")) && e.message.contains("blob hash"),
            "{e}"
        );
        // Later turns that replay through it fail there too; the report names it.
        if k % 41 == 0 {
            let next_base = last_base(k) + EVERY - 1;
            let e = integrity(rebuild_from_base(&damaged, next_base.min(TURNS)));
            assert!(e.message.starts_with(&format!("turn {k}: ")), "{e}");
            let report = verify(GENESIS, 0, &views(&damaged), None);
            assert!(!report.ok);
            assert_eq!(report.first_bad_turn, Some(k));
            assert_eq!(report.turns_checked, k as usize - 1);
            assert!(report.reason.unwrap().contains("blob hash"));
        }
    }
}

#[test]
fn a_forged_diff_that_applies_is_caught_by_the_content_hash() {
    let (rows, _) = save();
    let k = 137;
    assert_eq!(rows[k - 1].p.kind, Kind::Diff);
    let mut forged = rows.clone();
    // The forger rewrites the blob and its hash consistently: the patch still applies.
    let mut patch = parse(&forged[k - 1].p.blob).unwrap();
    patch
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "add", "path": "/player/gold", "value": 999_999}));
    set_blob(&mut forged[k - 1], canonical_bytes(&patch).unwrap());
    let e = integrity(rebuild_from_base(&forged, k as i64));
    assert!(
        e.message.starts_with(&format!("turn {k}: ")) && e.message.contains("content hash"),
        "{e}"
    );
    // A rebuild checks the state it reaches at its target (one canonicalization, not one per
    // diff). Here a later turn sets the gold again, so the forged value is gone by turn k + 5:
    // the state returned is exactly the recorded one (its content hash checked), and only
    // verify, which checks every turn, names the forged turn.
    let past = rebuild_from_base(&forged, k as i64 + 5).expect("the recorded state");
    let honest = rebuild_from_base(&rows, k as i64 + 5).unwrap();
    assert_eq!(past, honest);
    // A forged change that lasts is caught at whatever later target it reaches.
    let mut lasting = rows.clone();
    let mut patch = parse(&lasting[k - 1].p.blob).unwrap();
    patch
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "add", "path": "/forged", "value": true}));
    set_blob(&mut lasting[k - 1], canonical_bytes(&patch).unwrap());
    let target = k as i64 + 5;
    let e = integrity(rebuild_from_base(&lasting, target));
    assert!(
        e.message.starts_with(&format!("turn {target}: ")) && e.message.contains("content hash"),
        "{e}"
    );
    // Turns before it and after the next base are unaffected.
    assert!(rebuild_from_base(&forged, k as i64 - 1).is_ok());
    assert!(rebuild_from_base(&forged, 151).is_ok());
    let report = verify(GENESIS, 0, &views(&forged), None);
    assert_eq!(report.first_bad_turn, Some(k as i64));
    assert!(report.reason.unwrap().contains("content hash"));

    // A forged base (blob and blob hash) cannot pass as the recorded state either.
    let mut forged = rows.clone();
    let mut state = parse(&forged[125].p.blob).unwrap();
    state["player"]["gold"] = json!(1);
    set_blob(&mut forged[125], canonical_bytes(&state).unwrap());
    let e = integrity(rebuild_from_base(&forged, 130));
    assert!(e.message.starts_with("turn 126: "), "{e}");

    // A diff rewritten into something that no longer applies is integrity too.
    let mut forged = rows.clone();
    let bad = json!([{"op": "remove", "path": "/no/such/member"}]);
    set_blob(&mut forged[k - 1], canonical_bytes(&bad).unwrap());
    let e = integrity(rebuild_from_base(&forged, k as i64));
    assert!(e.message.contains("does not apply"), "{e}");
}

#[test]
fn an_edited_content_hash_is_caught_by_the_chain() {
    let (rows, expected) = save();
    for k in [1usize, 60, 137, 300] {
        let mut edited = rows.clone();
        // Even pointing it at a real state (that of another turn) is caught.
        edited[k - 1].p.content_hash = sha256_hex(&expected[k % expected.len()]);
        let e = integrity(rebuild_from_base(&edited, TURNS));
        assert!(
            e.message.contains("hash chain broken") && e.message.contains(&format!("(turn {k})")),
            "{e}"
        );
        let report = verify(GENESIS, 0, &views(&edited), None);
        assert_eq!(report.first_bad_turn, Some(k as i64));
        assert!(report.reason.unwrap().contains("chain"));
        // Turns before the edit still rebuild: their chain is intact.
        if k > 1 {
            assert!(rebuild_from_base(&edited, k as i64 - 1).is_ok());
        }
    }
}

#[test]
fn a_dropped_turn_is_caught() {
    let (rows, _) = save();
    for k in [2usize, 150, 260] {
        let mut dropped = rows.clone();
        dropped.remove(k - 1);
        let turns = views(&dropped);
        let e = integrity(rebuild(GENESIS, 0, &[], &turns, TURNS - 1));
        assert!(
            e.message.contains(&format!("expected {k}")),
            "turn {k}: {e}"
        );
        let report = verify(GENESIS, 0, &turns, None);
        assert_eq!(report.first_bad_turn, Some(k as i64));
        assert_eq!(report.turns_checked, k - 1);
        assert!(report.reason.unwrap().contains("missing"));
    }
    // The first turn dropped: the save no longer starts after its origin.
    let e = integrity(rebuild(GENESIS, 0, &[], &views(&rows[1..]), 30));
    assert!(e.message.contains("first stored turn"), "{e}");
    assert_eq!(
        verify(GENESIS, 0, &views(&rows[1..]), None).first_bad_turn,
        Some(1)
    );
    // The last turn dropped: only the save's head shows it.
    let head = rows.last().unwrap().p.chain_hash.as_str();
    let turns = views(&rows[..rows.len() - 1]);
    assert!(verify(GENESIS, 0, &turns, None).ok);
    let report = verify(GENESIS, 0, &turns, Some((TURNS, head)));
    assert_eq!(report.first_bad_turn, Some(TURNS));
    assert_eq!(
        rebuild(GENESIS, 0, &[], &turns, TURNS).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn sealed_turns_rebuild_to_their_bytes() {
    let mut chain = GENESIS.to_owned();
    let mut rows = Vec::new();
    let sealed: Vec<Vec<u8>> = (1..=8u8).map(|i| vec![i; 40 + i as usize]).collect();
    for (i, bytes) in sealed.iter().enumerate() {
        let t = i as i64 + 1;
        let p = plan_sealed(&chain, t, bytes);
        chain.clone_from(&p.chain_hash);
        rows.push(Row { turn_id: t, p });
    }
    // The client stops sealing: a readable base, then a diff.
    let a = json!({"hp": 10});
    let b = json!({"hp": 9});
    for (t, prev, s) in [(9, None, &a), (10, Some(&a), &b)] {
        let p = plan(
            prev,
            &chain,
            t,
            s,
            base_every(t, 0, EVERY),
            &mut Budget::default(),
        )
        .unwrap();
        chain.clone_from(&p.chain_hash);
        rows.push(Row { turn_id: t, p });
    }
    assert_eq!(rows[9].p.kind, Kind::Diff);

    let turns = views(&rows);
    for t in 1..=8i64 {
        let r = rebuild(GENESIS, 0, &[], &turns, t).unwrap();
        let want = &sealed[t as usize - 1];
        assert_eq!(
            r,
            Rebuilt::Sealed {
                turn_id: t,
                bytes: want.clone(),
                content_hash: sha256_hex(want)
            }
        );
        assert_eq!(r.state(), None);
    }
    assert_eq!(
        rebuild(GENESIS, 0, &[], &turns, 10).unwrap().bytes(),
        br#"{"hp":9}"#
    );
    assert!(verify(GENESIS, 0, &turns, Some((10, chain.as_str()))).ok);

    // A damaged sealed blob is named like any other.
    let mut damaged = rows.clone();
    damaged[4].p.blob[0] ^= 1;
    let e = integrity(rebuild(GENESIS, 0, &[], &views(&damaged), 5));
    assert!(e.message.starts_with("turn 5: "), "{e}");

    // A diff right after a sealed turn has nothing to apply to.
    let mut mixed = rows[..8].to_vec();
    let mut chain = mixed[7].p.chain_hash.clone();
    let p = plan(Some(&a), &chain, 9, &b, false, &mut Budget::default()).unwrap();
    chain.clone_from(&p.chain_hash);
    mixed.push(Row { turn_id: 9, p });
    let e = integrity(rebuild(GENESIS, 0, &[], &views(&mixed), 9));
    assert!(e.message.contains("turn 8 is sealed"), "{e}");
    let report = verify(GENESIS, 0, &views(&mixed), Some((9, chain.as_str())));
    assert_eq!(report.first_bad_turn, Some(9));
}

#[test]
fn a_pruned_origin_rebuilds_from_its_first_base() {
    let (rows, expected) = save();
    assert!(base_every(101, 0, EVERY) && base_every(101, 100, EVERY));
    let origin_chain = rows[99].p.chain_hash.clone();
    let kept = &rows[100..];
    let turns = views(kept);
    for target in 101..=TURNS {
        let r = rebuild(&origin_chain, 100, &[], &turns, target).unwrap();
        assert_eq!(r.bytes(), expected[target as usize - 1].as_slice());
    }
    // Chain-only links from the new origin, blobs from the last base.
    let split = 150usize; // turns 101..=250 as links, 251.. with blobs
    let links: Vec<Link> = turns[..split].iter().map(StoredTurn::link).collect();
    let r = rebuild(&origin_chain, 100, &links, &turns[split..], 270).unwrap();
    assert_eq!(r.bytes(), expected[269].as_slice());

    let head = kept.last().unwrap().p.chain_hash.as_str();
    let report = verify(&origin_chain, 100, &turns, Some((TURNS, head)));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.turns_checked, 200);
    // Pruned turns are not stored any more; a wrong origin chain hash breaks turn 101.
    assert_eq!(
        rebuild(&origin_chain, 100, &[], &turns, 100)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    let e = integrity(rebuild(GENESIS, 100, &[], &turns, 101));
    assert!(e.message.contains("(turn 101)"), "{e}");
    assert_eq!(verify(GENESIS, 100, &turns, None).first_bad_turn, Some(101));
}
