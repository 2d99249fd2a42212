//! Turn payloads and acts: parsing, each act's effect and errors, atomicity, and that the
//! resulting state reads back through the recap.

use awf_core::acts::{
    acts_to_value, apply_acts, apply_acts_in_place, parse_acts, parse_payload, Act, TurnPayload,
    VALID_OPS,
};
use awf_core::canonical::canonical_bytes;
use awf_core::json::{parse_str, value_eq};
use awf_core::patch::Op;
use awf_core::recap::{compose, RecapInput, RecapLimits};
use awf_core::{Budget, ErrorKind};
use serde_json::{json, Value};

fn state() -> Value {
    json!({
        "game_state": {"gold": 10, "mana": 1.5, "name": "Ada", "flags": ["a"]},
        "npcs": {"bob": {"mood": "calm", "hp": 3}},
        "player": {"inventory": []},
        "memory": {"warm": {"pins": [{"text": "The bridge is out.", "turn": 2}]}},
        "hot": {"objectives": [
            {"id": "q1", "text": "Find the key", "priority": 2},
            {"id": "q2", "text": "Cross the river", "priority": 1, "status": "active"}
        ]}
    })
}

fn acts(v: Value) -> Vec<Act> {
    parse_acts(&v).unwrap()
}

fn apply(state: &Value, v: Value) -> Value {
    apply_acts(state, &acts(v), 7, &mut Budget::default()).unwrap()
}

/// Parses then applies, returning the error message of whichever step failed.
fn error_of(state: &Value, v: Value) -> String {
    let err = match parse_acts(&v) {
        Err(e) => e,
        Ok(a) => apply_acts(state, &a, 7, &mut Budget::default()).unwrap_err(),
    };
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    err.message
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{message:?} should mention {p:?}");
    }
}

fn canon(v: &Value) -> Vec<u8> {
    canonical_bytes(v).unwrap()
}

// --- payload -----------------------------------------------------------------------------------

#[test]
fn txt_string_forms() {
    let p = parse_payload(&json!({"txt": "one\r\ntwo\nthree\n", "acts": []})).unwrap();
    assert_eq!(p.lines, ["one", "two", "three"]);
    assert!(p.acts.is_empty());
    let p = parse_payload(&json!({"txt": "a\n\n"})).unwrap();
    assert_eq!(p.lines, ["a", ""]);
    let p = parse_payload(&json!({"txt": "single"})).unwrap();
    assert_eq!(p.lines, ["single"]);
    assert!(parse_payload(&json!({"txt": ""})).unwrap().lines.is_empty());
}

#[test]
fn txt_array_absent_and_extra_members() {
    let p = parse_payload(&json!({"txt": ["x", "y\nz"], "meta": {"model": "m"}})).unwrap();
    assert_eq!(p.lines, ["x", "y\nz"]);
    assert_eq!(
        p,
        TurnPayload {
            lines: vec!["x".into(), "y\nz".into()],
            acts: vec![]
        }
    );
    let p = parse_payload(&json!({})).unwrap();
    assert_eq!(p, TurnPayload::default());
    let p = parse_payload(&json!({"txt": null, "acts": null})).unwrap();
    assert_eq!(p, TurnPayload::default());
}

#[test]
fn payload_errors() {
    let m = parse_payload(&json!([1])).unwrap_err().message;
    assert_mentions(&m, &["payload", "object", "array"]);
    let m = parse_payload(&json!({"txt": 5})).unwrap_err().message;
    assert_mentions(&m, &["\"txt\"", "string or an array of strings"]);
    let m = parse_payload(&json!({"txt": ["a", 3]}))
        .unwrap_err()
        .message;
    assert_mentions(&m, &["\"txt\" item 1", "a number"]);
    let m = parse_payload(&json!({"acts": {"op": "pin"}}))
        .unwrap_err()
        .message;
    assert_mentions(&m, &["\"acts\"", "array"]);
    let m = parse_payload(&json!({"acts": [{"op": "pin", "text": "ok"}, 3]}))
        .unwrap_err()
        .message;
    assert_mentions(&m, &["act 1", "object"]);
    let m = parse_payload(&json!({"acts": [{"path": "/a"}]}))
        .unwrap_err()
        .message;
    assert_mentions(&m, &["act 0", "missing \"op\""]);
}

#[test]
fn unknown_op_lists_valid_ops() {
    let m = error_of(&state(), json!([{"op": "pin", "text": "x"}, {"op": "fly"}]));
    assert_mentions(&m, &["act 1", "unknown op \"fly\""]);
    for op in VALID_OPS {
        assert!(m.contains(op), "{m} should list {op}");
    }
}

#[test]
fn payload_acts_round_trip() {
    let raw = json!({"txt": "hi", "acts": [
        {"op": "add", "path": "/x", "value": 1},
        {"op": "increment", "path": "/game_state/gold", "by": 2},
        {"op": "append", "path": "/game_state/flags", "value": "b"},
        {"op": "merge", "path": "/npcs/bob", "value": {"mood": null}},
        {"op": "pin", "text": "p"},
        {"op": "pin", "text": "p", "turn": 3},
        {"op": "remember", "text": "r", "salience": 0.75, "turn": 1},
        {"op": "objective", "id": "q3", "text": "t", "priority": 5, "status": "active"},
        {"op": "objective", "id": "q1", "status": "done"}
    ]});
    let p = parse_payload(&raw).unwrap();
    assert_eq!(p.acts.len(), 9);
    assert_eq!(acts_to_value(&p.acts), raw["acts"]);
    assert_eq!(serde_json::to_value(&p.acts).unwrap(), raw["acts"]);
    assert_eq!(p.acts[0].name(), "add");
    assert_eq!(p.acts[8].name(), "objective");
    // Defaults are written out where they do not depend on the state.
    let defaults = acts(json!([
        {"op": "increment", "path": "/a"},
        {"op": "remember", "text": "r"},
        {"op": "objective", "id": "q", "priority": 3.0, "status": null}
    ]));
    assert_eq!(
        acts_to_value(&defaults),
        json!([
            {"op": "increment", "path": "/a", "by": 1},
            {"op": "remember", "text": "r", "salience": 0.5},
            {"op": "objective", "id": "q", "priority": 3}
        ])
    );
    assert_eq!(acts(acts_to_value(&defaults)), defaults);
}

// --- RFC 6902 pass-through ---------------------------------------------------------------------

#[test]
fn rfc6902_ops_pass_through() {
    let parsed = acts(json!([
        {"op": "add", "path": "/player/inventory/-", "value": "rope"},
        {"op": "replace", "path": "/npcs/bob/mood", "value": "angry"},
        {"op": "copy", "from": "/npcs/bob", "path": "/npcs/bob2"},
        {"op": "move", "from": "/npcs/bob2", "path": "/npcs/carl"},
        {"op": "remove", "path": "/npcs/carl/hp"},
        {"op": "test", "path": "/game_state/gold", "value": 10.0}
    ]));
    assert!(
        matches!(&parsed[0], Act::Patch(Op::Add { path, .. }) if path == "/player/inventory/-")
    );
    let out = apply_acts(&state(), &parsed, 1, &mut Budget::default()).unwrap();
    assert_eq!(out["player"]["inventory"], json!(["rope"]));
    assert_eq!(
        out["npcs"],
        json!({"bob": {"mood": "angry", "hp": 3}, "carl": {"mood": "angry"}})
    );
}

#[test]
fn failing_test_refuses_the_turn() {
    let s = state();
    let mut doc = s.clone();
    let a = acts(json!([
        {"op": "replace", "path": "/game_state/gold", "value": 0},
        {"op": "test", "path": "/game_state/name", "value": "Bob"}
    ]));
    let err = apply_acts_in_place(&mut doc, &a, 1, &mut Budget::default()).unwrap_err();
    assert_mentions(
        &err.message,
        &["act 1 (test)", "/game_state/name", "test failed"],
    );
    assert_eq!(canon(&doc), canon(&s));
}

#[test]
fn rfc6902_errors_name_the_act() {
    let m = error_of(
        &state(),
        json!([{"op": "pin", "text": "x"}, {"op": "add", "path": "/x"}]),
    );
    assert_mentions(&m, &["act 1 (add)", "missing 'value'"]);
    let m = error_of(&state(), json!([{"op": "remove", "path": "/nope"}]));
    assert_mentions(&m, &["act 0 (remove)", "\"/nope\" does not exist"]);
    let m = error_of(&state(), json!([{"op": "move", "path": "/a"}]));
    assert_mentions(&m, &["act 0 (move)", "'from'"]);
    // The state must stay an object.
    let m = error_of(
        &state(),
        json!([{"op": "replace", "path": "", "value": [1]}]),
    );
    assert_mentions(&m, &["act 0 (replace)", "JSON object"]);
    let out = apply(
        &state(),
        json!([{"op": "replace", "path": "", "value": {"z": 1}}]),
    );
    assert_eq!(out, json!({"z": 1}));
}

// --- increment ---------------------------------------------------------------------------------

#[test]
fn increment_integers_and_default() {
    let out = apply(
        &state(),
        json!([
            {"op": "increment", "path": "/game_state/gold", "by": 5},
            {"op": "increment", "path": "/game_state/gold"},
            {"op": "increment", "path": "/npcs/bob/hp", "by": -4}
        ]),
    );
    assert_eq!(out["game_state"]["gold"], json!(16));
    assert_eq!(out["npcs"]["bob"]["hp"], json!(-1));
}

#[test]
fn increment_is_exact() {
    let out = apply(
        &state(),
        json!([{"op": "increment", "path": "/game_state/mana", "by": 0.25}]),
    );
    assert_eq!(out["game_state"]["mana"].to_string(), "1.75");
    // Decimal, not f64: 0.1 + 0.2 is 0.3.
    let s = parse_str(r#"{"x": 0.1}"#).unwrap();
    let out = apply(&s, json!([{"op": "increment", "path": "/x", "by": 0.2}]));
    assert_eq!(out["x"].to_string(), "0.3");
    // The result is in canonical form: 1.5 + 0.5 is 2.
    let out = apply(
        &state(),
        json!([{"op": "increment", "path": "/game_state/mana", "by": 0.5}]),
    );
    assert_eq!(out["game_state"]["mana"].to_string(), "2");
    assert_eq!(
        canon(&out["game_state"]),
        canon(&json!({"flags": ["a"], "gold": 10, "mana": 2, "name": "Ada"}))
    );
}

#[test]
fn increment_refusals() {
    let s = parse_str(
        r#"{"big": 9223372036854775807, "safe": 9007199254740992, "long": 0.1234567890123456}"#,
    )
    .unwrap();
    let m = error_of(
        &s,
        json!([{"op": "pin", "text": "x"}, {"op": "increment", "path": "/big", "by": 1}]),
    );
    assert_mentions(&m, &["act 1 (increment)", "/big", "overflows"]);
    let m = error_of(&s, json!([{"op": "increment", "path": "/safe", "by": 1}]));
    assert_mentions(&m, &["act 0 (increment)", "cannot be stored exactly"]);
    let m = error_of(
        &s,
        json!([{"op": "increment", "path": "/long", "by": 1000}]),
    );
    assert_mentions(&m, &["act 0 (increment)", "cannot be stored exactly"]);
    let m = error_of(
        &state(),
        json!([{"op": "increment", "path": "/game_state/name"}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (increment)",
            "/game_state/name",
            "a string, not a number",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "increment", "path": "/game_state/xp"}]),
    );
    assert_mentions(
        &m,
        &["act 0 (increment)", "\"/game_state/xp\" does not exist"],
    );
    let m = error_of(
        &state(),
        json!([
            {"op": "pin", "text": "a"},
            {"op": "pin", "text": "b"},
            {"op": "increment", "path": "/game_state/gold", "by": "2"}
        ]),
    );
    assert_eq!(
        m,
        "act 2 (increment): \"by\" must be a number, not a string"
    );
    let by =
        parse_str(r#"[{"op": "increment", "path": "/game_state/gold", "by": 1e400}]"#).unwrap();
    let m = error_of(&state(), by);
    assert_mentions(&m, &["act 0 (increment)", "\"by\"", "exactly"]);
    let m = error_of(&state(), json!([{"op": "increment", "by": 1}]));
    assert_mentions(&m, &["act 0 (increment)", "missing \"path\""]);
    let m = error_of(&state(), json!([{"op": "increment", "path": "nope"}]));
    assert_mentions(&m, &["act 0 (increment)", "\"path\"", "start with '/'"]);
}

// --- append ------------------------------------------------------------------------------------

#[test]
fn append_pushes_or_creates() {
    let out = apply(
        &state(),
        json!([
            {"op": "append", "path": "/game_state/flags", "value": {"b": 1}},
            {"op": "append", "path": "/player/quests", "value": "q"},
            {"op": "append", "path": "/player/quests", "value": "r"}
        ]),
    );
    assert_eq!(out["game_state"]["flags"], json!(["a", {"b": 1}]));
    assert_eq!(out["player"]["quests"], json!(["q", "r"]));
    let s = json!({"log": null});
    assert_eq!(
        apply(&s, json!([{"op": "append", "path": "/log", "value": 1}])),
        json!({"log": [1]})
    );
}

#[test]
fn append_errors() {
    let m = error_of(
        &state(),
        json!([{"op": "append", "path": "/game_state/gold", "value": 1}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (append)",
            "/game_state/gold",
            "a number, not an array",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "append", "path": "/nowhere/list", "value": 1}]),
    );
    assert_mentions(&m, &["act 0 (append)", "\"/nowhere\" does not exist"]);
    let m = error_of(
        &state(),
        json!([{"op": "append", "path": "/game_state/flags/1", "value": 1}]),
    );
    assert_mentions(&m, &["act 0 (append)", "out of bounds"]);
    let m = error_of(
        &state(),
        json!([{"op": "append", "path": "/game_state/flags"}]),
    );
    assert_mentions(&m, &["act 0 (append)", "missing \"value\""]);
}

// --- merge -------------------------------------------------------------------------------------

#[test]
fn merge_patches_or_creates() {
    let out = apply(
        &state(),
        json!([
            {"op": "merge", "path": "/npcs/bob",
             "value": {"mood": "happy", "hp": null, "tags": {"x": 1}}},
            {"op": "merge", "path": "/npcs/eve", "value": {"mood": "shy", "gone": null}},
            {"op": "merge", "path": "", "value": {"world": {"day": 1}}}
        ]),
    );
    assert_eq!(
        out["npcs"]["bob"],
        json!({"mood": "happy", "tags": {"x": 1}})
    );
    assert_eq!(out["npcs"]["eve"], json!({"mood": "shy"}));
    assert_eq!(out["world"], json!({"day": 1}));
}

#[test]
fn merge_errors() {
    let m = error_of(
        &state(),
        json!([{"op": "merge", "path": "/npcs/bob", "value": [1]}]),
    );
    assert_mentions(&m, &["act 0 (merge)", "\"value\" must be an object"]);
    let m = error_of(
        &state(),
        json!([{"op": "merge", "path": "/game_state/name", "value": {"a": 1}}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (merge)",
            "/game_state/name",
            "a string, not an object",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "merge", "path": "/a/b", "value": {}}]),
    );
    assert_mentions(&m, &["act 0 (merge)", "\"/a\" does not exist"]);
    // An act built in code gets the same guard as a parsed one.
    let built = Act::Merge {
        path: "/npcs".into(),
        value: json!("x"),
    };
    let err = apply_acts(&state(), &[built], 1, &mut Budget::default()).unwrap_err();
    assert_mentions(&err.message, &["act 0 (merge)", "must be an object"]);
}

// --- pin and remember --------------------------------------------------------------------------

#[test]
fn pin_and_remember_create_missing_sections() {
    let out = apply(
        &json!({"memory": null}),
        json!([
            {"op": "pin", "text": "Keep the lantern lit."},
            {"op": "pin", "text": "Old news.", "turn": 3},
            {"op": "remember", "text": "Bob lied.", "salience": 0.9},
            {"op": "remember", "text": "It rained."}
        ]),
    );
    assert_eq!(
        out,
        json!({"memory": {
            "warm": {"pins": [
                {"text": "Keep the lantern lit.", "turn": 7},
                {"text": "Old news.", "turn": 3}
            ]},
            "episodic": [
                {"text": "Bob lied.", "salience": 0.9, "turn": 7},
                {"text": "It rained.", "salience": 0.5, "turn": 7}
            ]
        }})
    );
    let out = apply(
        &json!({}),
        json!([{"op": "remember", "text": "x", "salience": 0}]),
    );
    assert_eq!(
        out,
        json!({"memory": {"episodic": [{"text": "x", "salience": 0, "turn": 7}]}})
    );
}

#[test]
fn pin_and_remember_errors() {
    let m = error_of(&state(), json!([{"op": "pin"}]));
    assert_mentions(&m, &["act 0 (pin)", "missing \"text\""]);
    let m = error_of(&state(), json!([{"op": "pin", "text": "  "}]));
    assert_mentions(&m, &["act 0 (pin)", "blank"]);
    let m = error_of(&state(), json!([{"op": "pin", "text": "x", "turn": 1.5}]));
    assert_mentions(&m, &["act 0 (pin)", "\"turn\" must be an integer", "1.5"]);
    let m = error_of(
        &json!({"memory": {"warm": "no"}}),
        json!([{"op": "pin", "text": "x"}]),
    );
    assert_mentions(
        &m,
        &["act 0 (pin)", "\"/memory/warm\" is a string, not an object"],
    );
    let m = error_of(
        &json!({"memory": {"episodic": {}}}),
        json!([{"op": "remember", "text": "x"}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (remember)",
            "\"/memory/episodic\" is an object, not an array",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "remember", "text": "x", "salience": 1.5}]),
    );
    assert_mentions(&m, &["act 0 (remember)", "between 0 and 1", "1.5"]);
    let m = error_of(
        &state(),
        json!([{"op": "remember", "text": "x", "salience": -0.1}]),
    );
    assert_mentions(&m, &["act 0 (remember)", "between 0 and 1"]);
    let m = error_of(
        &state(),
        json!([{"op": "remember", "text": "x", "salience": "high"}]),
    );
    assert_mentions(&m, &["act 0 (remember)", "\"salience\"", "a string"]);
    let m = error_of(&state(), json!([{"op": "remember", "text": 4}]));
    assert_mentions(
        &m,
        &[
            "act 0 (remember)",
            "\"text\" must be a string, not a number",
        ],
    );
}

// --- objective ---------------------------------------------------------------------------------

#[test]
fn objective_upsert_keeps_position() {
    let out = apply(
        &state(),
        json!([
            {"op": "objective", "id": "q1", "text": "Find the silver key", "priority": 9,
             "status": "active"},
            {"op": "objective", "id": "q3", "text": "Rest"},
            {"op": "objective", "id": "q2", "status": "done"}
        ]),
    );
    assert_eq!(
        out["hot"]["objectives"],
        json!([
            {"id": "q1", "text": "Find the silver key", "priority": 9, "status": "active"},
            {"id": "q2", "text": "Cross the river", "priority": 1, "status": "done"},
            {"id": "q3", "text": "Rest", "priority": 0}
        ])
    );
    let out = apply(
        &json!({}),
        json!([{"op": "objective", "id": "a", "text": "A", "priority": -2}]),
    );
    assert_eq!(
        out,
        json!({"hot": {"objectives": [{"id": "a", "text": "A", "priority": -2}]}})
    );
}

#[test]
fn objective_errors() {
    let m = error_of(&state(), json!([{"op": "objective", "text": "x"}]));
    assert_mentions(&m, &["act 0 (objective)", "missing \"id\""]);
    let m = error_of(
        &state(),
        json!([{"op": "objective", "id": "q9", "priority": 1}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (objective)",
            "\"q9\" does not exist yet",
            "\"text\" is required",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "objective", "id": "q1", "priority": 1.5}]),
    );
    assert_mentions(
        &m,
        &[
            "act 0 (objective)",
            "\"priority\" must be an integer",
            "1.5",
        ],
    );
    let m = error_of(
        &state(),
        json!([{"op": "objective", "id": "q1", "status": 1}]),
    );
    assert_mentions(&m, &["act 0 (objective)", "\"status\" must be a string"]);
    let m = error_of(
        &json!({"hot": []}),
        json!([{"op": "objective", "id": "q1", "text": "x"}]),
    );
    assert_mentions(
        &m,
        &["act 0 (objective)", "\"/hot\" is an array, not an object"],
    );
}

// --- atomicity ---------------------------------------------------------------------------------

#[test]
fn failing_third_act_changes_nothing() {
    let s = state();
    let before = canon(&s);
    let a = acts(json!([
        {"op": "increment", "path": "/game_state/gold", "by": 100},
        {"op": "pin", "text": "A new pin."},
        {"op": "append", "path": "/game_state/gold", "value": 1},
        {"op": "objective", "id": "q1", "status": "done"}
    ]));
    let err = apply_acts(&s, &a, 1, &mut Budget::default()).unwrap_err();
    assert!(err.message.starts_with("act 2 (append)"), "{err}");
    let mut doc = s.clone();
    let err2 = apply_acts_in_place(&mut doc, &a, 1, &mut Budget::default()).unwrap_err();
    assert_eq!(err, err2);
    assert_eq!(canon(&doc), before);
    assert_eq!(canon(&s), before);
    // Without the failing act every change lands.
    let ok = [a[0].clone(), a[1].clone(), a[3].clone()];
    apply_acts_in_place(&mut doc, &ok, 1, &mut Budget::default()).unwrap();
    assert_eq!(doc["game_state"]["gold"], json!(110));
    assert_eq!(doc["hot"]["objectives"][0]["status"], json!("done"));
}

#[test]
fn state_must_be_an_object() {
    let a = acts(json!([{"op": "pin", "text": "x"}]));
    let err = apply_acts(&json!([1]), &a, 1, &mut Budget::default()).unwrap_err();
    assert_mentions(&err.message, &["JSON object", "an array"]);
    let mut doc = json!("s");
    assert!(apply_acts_in_place(&mut doc, &[], 1, &mut Budget::default()).is_err());
    let mut doc = state();
    apply_acts_in_place(&mut doc, &[], 1, &mut Budget::default()).unwrap();
    assert_eq!(doc, state());
}

// --- recap -------------------------------------------------------------------------------------

#[test]
fn applied_state_feeds_the_recap() {
    let payload = parse_payload(&json!({
        "txt": "The door creaks open.\nA cold wind blows.",
        "acts": [
            {"op": "pin", "text": "The lantern must stay lit"},
            {"op": "remember", "text": "Bob lied about the key", "salience": 0.9},
            {"op": "remember", "text": "It rained", "salience": 0.1, "turn": 1},
            {"op": "objective", "id": "q0", "text": "Escape the tower", "priority": 5},
            {"op": "objective", "id": "q1", "status": "done"}
        ]
    }))
    .unwrap();
    let out = apply_acts(&state(), &payload.acts, 8, &mut Budget::default()).unwrap();
    let input = RecapInput::from_state(&out, payload.lines.clone()).unwrap();
    let pins: Vec<(&str, i64)> = input
        .pins
        .iter()
        .map(|p| (p.text.as_str(), p.turn))
        .collect();
    assert_eq!(
        pins,
        [("The bridge is out.", 2), ("The lantern must stay lit", 8)]
    );
    let eps: Vec<(&str, f64, i64)> = input
        .episodic
        .iter()
        .map(|e| (e.text.as_str(), e.salience, e.turn))
        .collect();
    assert_eq!(
        eps,
        [("Bob lied about the key", 0.9, 8), ("It rained", 0.1, 1)]
    );
    let objs: Vec<(&str, i64, bool)> = input
        .objectives
        .iter()
        .map(|o| (o.id.as_deref().unwrap(), o.priority, o.is_active()))
        .collect();
    assert_eq!(objs, [("q1", 2, false), ("q2", 1, true), ("q0", 5, true)]);
    assert_eq!(
        input.recent_lines,
        ["The door creaks open.", "A cold wind blows."]
    );
    let recap = compose(
        &input,
        &RecapLimits::default(),
        &mut awf_core::Budget::default(),
    )
    .unwrap();
    assert_eq!(recap.sentences[0], "The lantern must stay lit.");
    let active: Vec<&str> = recap
        .objectives
        .iter()
        .map(|o| o.id.as_deref().unwrap())
        .collect();
    assert_eq!(active, ["q0", "q2"]);
    // The state still canonicalizes, so the WAL can hash it.
    assert!(value_eq(
        &parse_str(&String::from_utf8(canon(&out)).unwrap()).unwrap(),
        &out
    ));
}
