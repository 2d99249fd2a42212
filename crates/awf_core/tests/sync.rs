//! The sync protocol's pure logic, without a database: parsing, replay, planning, the
//! shared-prefix walk and the conflict decision.

use awf_core::budget::{Budget, Limits};
use awf_core::chain;
use awf_core::conflict::Strategy;
use awf_core::save::Kind;
use awf_core::sync::branch::{self, Layout};
use awf_core::sync::decide::{self, Head, Winner};
use awf_core::sync::request::{self, Content};
use awf_core::ErrorKind;
use serde_json::{json, Value};

const BASE_CHAIN: &str = "ab00000000000000000000000000000000000000000000000000000000000000";
const LAYOUT: Layout = Layout {
    origin_turn: 0,
    snapshot_every: 3,
};

fn req(turns: Value) -> request::Request {
    request::parse(&json!({
        "save_id": "00000000-0000-0000-0000-000000000001",
        "base_turn": 1, "base_chain": BASE_CHAIN.to_uppercase(), "turns": turns,
    }))
    .unwrap()
}

fn kind_of(r: Result<impl std::fmt::Debug, awf_core::Error>) -> ErrorKind {
    r.expect_err("must be refused").kind
}

#[test]
fn a_request_is_checked_before_anything_is_read() {
    let bad = [
        json!([]),
        json!({"base_turn": 1, "base_chain": BASE_CHAIN, "turns": [{}]}),
        json!({"save_id": "x", "base_turn": "1", "base_chain": BASE_CHAIN, "turns": [{}]}),
        json!({"save_id": "x", "base_turn": 1, "base_chain": "abc", "turns": [{}]}),
        json!({"save_id": "x", "base_turn": 1, "base_chain": BASE_CHAIN, "turns": []}),
        json!({"save_id": "x", "base_turn": 1, "base_chain": BASE_CHAIN, "turns": [{}],
               "strategy": "coin_toss"}),
        json!({"save_id": "x", "base_turn": 1, "base_chain": BASE_CHAIN, "turns": [{}],
               "merge_rule": "both"}),
    ];
    for b in &bad {
        assert_eq!(kind_of(request::parse(b)), ErrorKind::InvalidInput, "{b}");
    }
    let r = req(json!([{}]));
    assert_eq!(r.base_chain, BASE_CHAIN, "the chain hash is lowercased");
    assert_eq!(r.strategy, Strategy::LongestChain, "the default strategy");
}

#[test]
fn patches_replay_each_on_the_turn_before() {
    let r = req(json!([
        {"turn_id": 2, "patch": [{"op": "add", "path": "/gold", "value": 5}]},
        {"turn_id": 3, "patch": [{"op": "replace", "path": "/gold", "value": 7}],
         "chain_hash": "ABCD"},
        {"turn_id": 4, "state": {"hp": 1}},
    ]));
    let turns = r
        .client_turns(Some(&json!({"hp": 9})), 10, &mut Budget::default())
        .unwrap();
    let states: Vec<_> = turns.iter().map(|t| t.state().unwrap().clone()).collect();
    assert_eq!(
        states,
        [
            json!({"hp": 9, "gold": 5}),
            json!({"hp": 9, "gold": 7}),
            json!({"hp": 1})
        ]
    );
    assert_eq!(turns[1].claimed_chain.as_deref(), Some("abcd"));
    assert_eq!(turns[0].claimed_chain, None);
}

#[test]
fn bad_turns_are_refused_with_their_index() {
    let anc = json!({"hp": 9});
    let cases = [
        (
            json!([{"turn_id": 3, "state": {}}]),
            "is turn 3, expected 2",
        ),
        (json!([{"state": {}}]), "turn_id must be an integer"),
        (json!([{"turn_id": 2}]), "needs exactly one"),
        (
            json!([{"turn_id": 2, "state": {}, "patch": []}]),
            "needs exactly one",
        ),
        (json!([{"turn_id": 2, "state": [1]}]), "needs exactly one"),
        (
            json!([{"turn_id": 2, "patch": [{"op": "replace", "path": "", "value": 1}]}]),
            "leave the state an object",
        ),
        (
            json!([{"turn_id": 2, "sealed_hex": "00"}]),
            "not client-sealed",
        ),
        (
            json!([{"turn_id": 2, "state": {}}, {"turn_id": 3, "patch": [{"op": "remove", "path": "/nope"}]}]),
            "request.turns[1] (turn 3)",
        ),
    ];
    for (turns, want) in cases {
        let e = req(turns.clone())
            .client_turns(Some(&anc), 10, &mut Budget::default())
            .expect_err("refused");
        assert!(e.message.contains(want), "{turns}: {}", e.message);
    }
    let e = req(json!([{"turn_id": 2, "state": {}}, {"turn_id": 3, "state": {}}]))
        .client_turns(Some(&anc), 1, &mut Budget::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
}

#[test]
fn sealed_turns_carry_bytes_only() {
    let turns = req(json!([{"turn_id": 2, "sealed_hex": "00ff"}]))
        .client_turns(None, 10, &mut Budget::default())
        .unwrap();
    assert_eq!(turns[0].content, Content::Sealed(vec![0, 255]));
    for bad in [
        json!([{"turn_id": 2, "state": {}}]),
        json!([{"turn_id": 2, "sealed_hex": ""}]),
        json!([{"turn_id": 2, "sealed_hex": "0g"}]),
        json!([{"turn_id": 2, "sealed_hex": 5}]),
    ] {
        assert_eq!(
            kind_of(req(bad).client_turns(None, 10, &mut Budget::default())),
            ErrorKind::InvalidInput
        );
    }
}

#[test]
fn every_replayed_copy_is_charged_to_the_budget() {
    // A thousand empty patches on a state: each one is a copy held until planning.
    let big: Value = json!({"blob": "x".repeat(10_000)});
    let turns: Vec<Value> = (0..1000)
        .map(|i| json!({"turn_id": 2 + i, "patch": []}))
        .collect();
    let mut tight = Budget::new(Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    });
    let e = req(Value::Array(turns))
        .client_turns(Some(&big), 5000, &mut tight)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
}

#[test]
fn a_planned_branch_links_from_the_ancestor_and_places_bases() {
    let r = req(json!([
        {"turn_id": 2, "state": {"a": 1}},
        {"turn_id": 3, "patch": [{"op": "add", "path": "/b", "value": 2}]},
        {"turn_id": 4, "state": {"a": 3}},
        {"turn_id": 5, "state": {"a": 4}},
    ]));
    let anc = json!({"a": 0});
    let mut budget = Budget::default();
    let turns = r.client_turns(Some(&anc), 10, &mut budget).unwrap();
    let plans = branch::plan(LAYOUT, Some(&anc), BASE_CHAIN, &turns, &mut budget).unwrap();
    let mut prev = BASE_CHAIN.to_owned();
    for (t, p) in turns.iter().zip(&plans) {
        assert_eq!(p.chain_hash, chain::link(&prev, t.turn_id, &p.content_hash));
        prev = p.chain_hash.clone();
    }
    // Bases at turns 1, 4, 7, ... after origin 0, every 3.
    let kinds: Vec<Kind> = plans.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [Kind::Diff, Kind::Diff, Kind::Base, Kind::Diff]);

    let sealed = req(json!([{"turn_id": 2, "sealed_hex": "01"}]))
        .client_turns(None, 10, &mut budget)
        .unwrap();
    let sp = branch::plan(LAYOUT, None, BASE_CHAIN, &sealed, &mut budget).unwrap();
    assert_eq!(sp[0].kind, Kind::Sealed);
}

#[test]
fn claims_scores_and_the_shared_prefix() {
    let anc = json!({"a": 0});
    let mut budget = Budget::default();
    let plan = |claims: [Option<&str>; 3], budget: &mut Budget| {
        let turns: Vec<Value> = (0..3)
            .map(|i| {
                let mut t = json!({"turn_id": 2 + i, "state": {"a": i + 1}});
                if let Some(c) = claims[i as usize] {
                    t["chain_hash"] = json!(c);
                }
                t
            })
            .collect();
        let turns = req(Value::Array(turns))
            .client_turns(Some(&anc), 10, budget)
            .unwrap();
        let plans = branch::plan(LAYOUT, Some(&anc), BASE_CHAIN, &turns, budget).unwrap();
        (turns, plans)
    };
    let (turns, plans) = plan([None; 3], &mut budget);
    assert!(branch::check_claims(&turns, &plans).is_ok());
    assert_eq!(branch::integrity_score(&turns, &plans), 1.0);
    let right = plans[0].chain_hash.to_uppercase();
    let (turns, plans) = plan([Some(&right), Some("00"), None], &mut budget);
    let e = branch::check_claims(&turns, &plans).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("at turn 3"), "{}", e.message);
    assert_eq!(branch::integrity_score(&turns, &plans), 0.5);

    let chains: Vec<String> = plans.iter().map(|p| p.chain_hash.clone()).collect();
    assert_eq!(branch::shared_prefix(&chains, &plans), 3);
    assert_eq!(branch::shared_prefix(&chains[..1], &plans), 1);
    assert_eq!(branch::shared_prefix(&[], &plans), 0);
    let forked = vec![chains[0].clone(), "ff".repeat(32), chains[2].clone()];
    assert_eq!(
        branch::shared_prefix(&forked, &plans),
        1,
        "stops at the fork"
    );
}

#[test]
fn the_decision_follows_the_strategy_and_reports_both_branches() {
    let anc = json!({"a": 0});
    let mut budget = Budget::default();
    let turns = req(json!([{"turn_id": 2, "state": {"a": 1}}, {"turn_id": 3, "state": {"a": 2}}]))
        .client_turns(Some(&anc), 10, &mut budget)
        .unwrap();
    let plans = branch::plan(LAYOUT, Some(&anc), BASE_CHAIN, &turns, &mut budget).unwrap();
    let head_chain = "cd".repeat(32);
    let head = |turn_id| Head {
        turn_id,
        chain_hash: &head_chain,
    };
    let d = |turn, strategy| {
        decide::decide(
            head(turn),
            1,
            BASE_CHAIN,
            &turns,
            &plans,
            Some("dev-1"),
            strategy,
        )
        .unwrap()
    };
    // The device's two turns against the server's one: the longer chain wins.
    assert_eq!(d(2, Strategy::LongestChain).winner, Winner::Client);
    // A tie goes to the server.
    assert_eq!(d(3, Strategy::LongestChain).winner, Winner::Server);
    assert_eq!(d(9, Strategy::ClientWins).winner, Winner::Client);
    assert_eq!(d(2, Strategy::ServerWins).winner, Winner::Server);
    let merge = d(2, Strategy::ThreeWayMerge);
    assert_eq!(merge.winner, Winner::Merge);
    assert_eq!(merge.archived().branch_id, merge.client.branch_id);

    let won = d(2, Strategy::ClientWins);
    assert_eq!(won.archived().branch_id, won.server.branch_id);
    assert_eq!(won.client.turn_id, 3);
    assert_eq!(won.client.length, 2);
    assert_eq!(won.server.length, 1);
    assert_eq!(won.client.device_id.as_deref(), Some("dev-1"));
    let report = won.report("sid", 7, None);
    assert_eq!(report["ancestor"]["turn_id"], 1);
    assert_eq!(report["resolution"]["archive_id"], 7);
    assert_eq!(
        report["resolution"]["archived_branch"],
        json!(format!("server-{}", &head_chain[..16]))
    );
    assert!(report.get("merge_conflicts").is_none());
    let mr = merge.report("sid", 8, Some(json!([{"path": "/a"}])));
    assert_eq!(mr["merge_conflicts"][0]["path"], "/a");

    let e =
        decide::decide(head(2), 1, BASE_CHAIN, &[], &[], None, Strategy::ServerWins).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
