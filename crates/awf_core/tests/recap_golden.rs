//! Recap composition: golden files plus focused unit tests.
//!
//! Each `tests/golden/recap/NAME.input.json` holds `{"comment", "state", "recent_lines",
//! "limits"?}`; the recap of it, as `serde_json::to_string_pretty` plus a newline, must equal
//! `NAME.expected.json` byte for byte. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p awf_core --test recap_golden`, then read the diff of the
//! expected files by hand before keeping them: they are the reviewed specification.

use awf_core::recap::{
    compose, normalize_sentence, Episode, Objective, Pin, Recap, RecapInput, RecapLimits, FILLERS,
};
use awf_core::ErrorKind;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/recap")
}

fn recap_of_case(input: &Value) -> Recap {
    let obj = input.as_object().expect("a golden input is an object");
    for key in obj.keys() {
        assert!(
            ["comment", "state", "recent_lines", "limits"].contains(&key.as_str()),
            "unknown key {key:?} in a golden input"
        );
    }
    let lines: Vec<String> = serde_json::from_value(input["recent_lines"].clone()).unwrap();
    let limits: RecapLimits = match obj.get("limits") {
        Some(l) => serde_json::from_value(l.clone()).unwrap(),
        None => RecapLimits::default(),
    };
    let recap_input = RecapInput::from_state(&input["state"], lines).unwrap();
    compose(&recap_input, &limits, &mut awf_core::Budget::default()).unwrap()
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".input.json"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 6, "golden cases missing: {inputs:?}");
    let mut failures = Vec::new();
    for input_path in &inputs {
        let name = input_path.to_string_lossy().replace(".input.json", "");
        let expected_path = PathBuf::from(format!("{name}.expected.json"));
        let input: Value = serde_json::from_slice(&std::fs::read(input_path).unwrap()).unwrap();
        let actual = serde_json::to_string_pretty(&recap_of_case(&input)).unwrap() + "\n";
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                expected_path.display()
            ));
        }
    }
    println!("recap golden: {} cases", inputs.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------- helpers

fn pin(text: &str, turn: i64) -> Pin {
    Pin {
        text: text.into(),
        turn,
    }
}

fn episode(text: &str, salience: f64, turn: i64) -> Episode {
    Episode {
        text: text.into(),
        salience,
        turn,
    }
}

fn objective(id: &str, text: &str, priority: i64, status: Option<&str>) -> Objective {
    Objective {
        id: Some(id.into()),
        text: text.into(),
        priority,
        status: status.map(str::to_owned),
    }
}

fn limits(min: usize, max: usize, words: usize) -> RecapLimits {
    RecapLimits {
        max_sentences: max,
        min_sentences: min,
        max_words_per_sentence: words,
    }
}

fn sentences(input: &RecapInput, l: RecapLimits) -> Vec<String> {
    compose(input, &l, &mut awf_core::Budget::default())
        .unwrap()
        .sentences
}

// ---------------------------------------------------------------- ordering

#[test]
fn pins_newest_first_then_input_order() {
    let input = RecapInput {
        pins: vec![pin("p1", 1), pin("p5a", 5), pin("p3", 3), pin("p5b", 5)],
        ..Default::default()
    };
    assert_eq!(
        sentences(&input, limits(1, 6, 24)),
        ["p5a.", "p5b.", "p3.", "p1."]
    );
}

#[test]
fn episodes_by_salience_then_turn_then_input_order() {
    let input = RecapInput {
        pins: vec![pin("pin", 0)],
        episodic: vec![
            episode("low", 0.1, 9),
            episode("high old", 0.9, 1),
            episode("high new a", 0.9, 4),
            episode("high new b", 0.9, 4),
            episode("negative", -1.0, 9),
            episode("infinite", f64::INFINITY, 0),
        ],
        ..Default::default()
    };
    assert_eq!(
        sentences(&input, limits(1, 10, 24)),
        [
            "pin.",
            "infinite.",
            "high new a.",
            "high new b.",
            "high old.",
            "low.",
            "negative."
        ]
    );
}

#[test]
fn recent_lines_take_the_last_ones_in_story_order() {
    let input = RecapInput {
        pins: vec![pin("Pinned", 1)],
        recent_lines: ["one", "two", "pinned.", "three", "two", "four"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    // Room for 3 lines after the pin: "four", "two" (its latest place), "three".
    assert_eq!(
        sentences(&input, limits(1, 4, 24)),
        ["Pinned.", "three.", "two.", "four."]
    );
    // Memory fills the recap before any line does.
    assert_eq!(sentences(&input, limits(1, 1, 24)), ["Pinned."]);
}

#[test]
fn text_joins_sentences_with_one_space() {
    let input = RecapInput {
        recent_lines: vec!["a\n b".into(), "c\t".into()],
        ..Default::default()
    };
    let recap = compose(
        &input,
        &RecapLimits::default(),
        &mut awf_core::Budget::default(),
    )
    .unwrap();
    assert_eq!(recap.text, "a b. c.");
    assert_eq!(recap.text, recap.sentences.join(" "));
}

// ---------------------------------------------------------------- normalization

#[test]
fn normalization_and_truncation() {
    let n = |s: &str, w: usize| normalize_sentence(s, w);
    assert_eq!(n("  \t\n ", 5), None);
    assert_eq!(n(" a   b\tc ", 5).unwrap(), "a b c.");
    assert_eq!(n("Done!", 5).unwrap(), "Done!");
    assert_eq!(n("Really?", 5).unwrap(), "Really?");
    assert_eq!(n("Wait…", 5).unwrap(), "Wait…");
    assert_eq!(n("He said \"go.\"", 5).unwrap(), "He said \"go.\"");
    assert_eq!(n("He said \"go\"", 5).unwrap(), "He said \"go\".");
    // Exactly max words is not truncated.
    assert_eq!(n("a b c", 3).unwrap(), "a b c.");
    assert_eq!(n("a b c d", 3).unwrap(), "a b c…");
    assert_eq!(n("a b, c d", 2).unwrap(), "a b…");
    assert_eq!(n("a b — c d", 3).unwrap(), "a b…");
    assert_eq!(n("Stop. Then go on", 1).unwrap(), "Stop.");
    assert_eq!(n("— — —", 1).unwrap(), "—…");
    assert_eq!(n("x", 1).unwrap(), "x.");
    assert_eq!(n("王は眠った。", 1).unwrap(), "王は眠った。");
    assert_eq!(n("Il cria « Non ! »", 9).unwrap(), "Il cria « Non ! »");
}

#[test]
fn duplicates_are_case_insensitive_and_compared_after_normalization() {
    let input = RecapInput {
        pins: vec![pin("The Gate", 2), pin("the gate.", 1)],
        episodic: vec![episode("THE   GATE", 1.0, 1), episode("The gate!", 0.5, 1)],
        recent_lines: vec!["the GATE.".into()],
        ..Default::default()
    };
    assert_eq!(
        sentences(&input, limits(1, 6, 24)),
        ["The Gate.", "The gate!"]
    );
}

// ---------------------------------------------------------------- padding and objectives

#[test]
fn padding_uses_objectives_by_priority_then_fillers() {
    let input = RecapInput {
        pins: vec![pin("A storm is coming", 1)],
        objectives: vec![
            objective("z", "Low", 1, None),
            objective("b", "High b", 7, Some("Active")),
            objective("a", "High a", 7, Some(" open ")),
            objective("x", "Finished", 99, Some("done")),
        ],
        ..Default::default()
    };
    let recap = compose(&input, &limits(3, 6, 24), &mut awf_core::Budget::default()).unwrap();
    assert_eq!(
        recap.sentences,
        [
            "A storm is coming.",
            "Current objective: High a.",
            "Current objective: High b."
        ]
    );
    let ids: Vec<&str> = recap
        .objectives
        .iter()
        .map(|o| o.id.as_deref().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "z"]);

    let recap = compose(&input, &limits(6, 6, 24), &mut awf_core::Budget::default()).unwrap();
    assert_eq!(recap.sentences[3], "Current objective: Low.");
    assert_eq!(recap.sentences[4..], FILLERS[..2]);
}

#[test]
fn padding_never_pads_past_min_and_always_reaches_it() {
    let empty = RecapInput::default();
    assert_eq!(sentences(&empty, limits(1, 1, 1)), [FILLERS[0]]);
    assert_eq!(sentences(&empty, limits(2, 6, 24)), FILLERS[..2]);
    let many = sentences(&empty, limits(5, 5, 24));
    assert_eq!(many.len(), 5);
    assert_eq!(many[..3], FILLERS);
    assert_eq!(many[3], FILLERS[2]);
    // Real content already at min: no padding.
    let input = RecapInput {
        recent_lines: vec!["x".into(), "y".into()],
        objectives: vec![objective("o", "Goal", 1, None)],
        ..Default::default()
    };
    assert_eq!(sentences(&input, limits(2, 6, 24)), ["x.", "y."]);
}

#[test]
fn filler_already_said_is_not_repeated() {
    let input = RecapInput {
        recent_lines: vec!["the story has just begun".into()],
        ..Default::default()
    };
    assert_eq!(
        sentences(&input, limits(2, 6, 24)),
        ["the story has just begun.", FILLERS[1]]
    );
}

#[test]
fn objective_sentences_are_truncated_like_any_other() {
    let input = RecapInput {
        objectives: vec![objective(
            "o",
            "Cross the  great desert before the sun sets!!",
            1,
            None,
        )],
        ..Default::default()
    };
    assert_eq!(
        sentences(&input, limits(1, 3, 5)),
        ["Current objective: Cross the great…"]
    );
}

// ---------------------------------------------------------------- validation

#[test]
fn limits_are_validated() {
    let input = RecapInput::default();
    for (l, needle) in [
        (limits(0, 6, 24), "min_sentences must be at least 1"),
        (limits(4, 3, 24), "must not exceed max_sentences"),
        (limits(1, 6, 0), "max_words_per_sentence"),
    ] {
        let err = compose(&input, &l, &mut awf_core::Budget::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains(needle), "{}", err.message);
    }
    let bad = serde_json::from_value::<RecapLimits>(json!({"max_sentence": 3}));
    assert!(bad.is_err(), "a misspelt limit must not be ignored");
    let partial: RecapLimits = serde_json::from_value(json!({"max_sentences": 3})).unwrap();
    assert_eq!(partial, limits(2, 3, 24));
}

#[test]
fn nan_salience_is_rejected() {
    let input = RecapInput {
        episodic: vec![episode("ok", 1.0, 1), episode("bad", f64::NAN, 1)],
        ..Default::default()
    };
    let err = compose(
        &input,
        &RecapLimits::default(),
        &mut awf_core::Budget::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("episodic memory 1"), "{}", err.message);
}

// ---------------------------------------------------------------- reading the state

#[test]
fn from_state_reads_sections_and_defaults() {
    let state = json!({
        "memory": {
            "warm": {"pins": [{"text": "p", "turn": 3.0}, {"text": "q"}]},
            "episodic": [{"text": "e", "salience": 2, "turn": null}]
        },
        "hot": {"objectives": [{"id": "o", "text": "t", "status": null}]}
    });
    let input = RecapInput::from_state(&state, vec!["l".into()]).unwrap();
    assert_eq!(input.pins, [pin("p", 3), pin("q", 0)]);
    assert_eq!(input.episodic, [episode("e", 2.0, 0)]);
    assert_eq!(input.objectives, [objective("o", "t", 0, None)]);
    assert_eq!(input.recent_lines, ["l"]);

    for empty in [
        json!({}),
        json!({"memory": null, "hot": {}}),
        json!({"memory": {"warm": null, "episodic": []}, "hot": {"objectives": null}}),
    ] {
        let input = RecapInput::from_state(&empty, Vec::new()).unwrap();
        assert_eq!(input, RecapInput::default(), "{empty}");
    }
}

#[test]
fn from_state_skips_bad_data_and_names_its_pointer() {
    // (state, the skipped pointer, why, what is still used: pins, episodes, objectives)
    for (state, pointer, needle, kept) in [
        (
            json!([]),
            "",
            "the state is an array, not an object",
            (0, 0, 0),
        ),
        (
            json!({"memory": []}),
            "/memory",
            "must be an object",
            (0, 0, 0),
        ),
        (
            json!({"memory": {"warm": 1}, "hot": {"objectives": [{"text": "o"}]}}),
            "/memory/warm",
            "must be an object",
            (0, 0, 1),
        ),
        (
            json!({"memory": {"warm": {"pins": {}}}}),
            "/memory/warm/pins",
            "must be an array",
            (0, 0, 0),
        ),
        (
            json!({"memory": {"warm": {"pins": [{"text": "a"}, "b"]}}}),
            "/memory/warm/pins/1",
            "must be an object, got a string",
            (1, 0, 0),
        ),
        (
            json!({"memory": {"warm": {"pins": [{}]}}}),
            "/memory/warm/pins/0/text",
            "is required",
            (0, 0, 0),
        ),
        (
            json!({"memory": {"warm": {"pins": [{"text": "a", "turn": 1.5}]}}}),
            "/memory/warm/pins/0/turn",
            "must be an integer, got 1.5",
            (1, 0, 0),
        ),
        (
            json!({"memory": {"episodic": [{"text": "a", "salience": "high"}]}}),
            "/memory/episodic/0/salience",
            "must be a finite number, got a string",
            (0, 1, 0),
        ),
        (
            json!({"hot": {"objectives": [{"id": true, "text": "a"}]}}),
            "/hot/objectives/0/id",
            "must be a string or a number, got a boolean",
            (0, 0, 1),
        ),
        (
            json!({"hot": {"objectives": [{"id": "x", "text": "a", "status": true}]}}),
            "/hot/objectives/0/status",
            "must be a string, got a boolean",
            (0, 0, 0),
        ),
    ] {
        let input = RecapInput::from_state(&state, Vec::new()).unwrap();
        assert_eq!(input.skipped.len(), 1, "{state}: {:?}", input.skipped);
        assert_eq!(input.skipped[0].pointer, pointer, "{state}");
        assert!(
            input.skipped[0].reason.contains(needle),
            "{state}: {:?}",
            input.skipped
        );
        assert_eq!(
            (
                input.pins.len(),
                input.episodic.len(),
                input.objectives.len()
            ),
            kept,
            "{state}"
        );
        // The recap is still made, and says what it skipped.
        let recap = compose(
            &input,
            &RecapLimits::default(),
            &mut awf_core::Budget::default(),
        )
        .unwrap();
        assert_eq!(recap.skipped_count, 1);
        assert_eq!(recap.skipped, input.skipped);
    }
    let huge = awf_core::json::parse_str(
        r#"{"memory": {"episodic": [{"text": "a", "salience": 1e400}]}}"#,
    )
    .unwrap();
    let input = RecapInput::from_state(&huge, Vec::new()).unwrap();
    assert!(
        input.skipped[0]
            .reason
            .contains("must be a finite number, got 1e"),
        "{:?}",
        input.skipped
    );
    assert_eq!(input.episodic[0].salience, 0.0);
}

#[test]
fn objectives_need_no_id_and_numeric_ids_are_their_text() {
    // The seed's shape: objectives sorted by priority, no ids.
    let state = json!({"hot": {"objectives": [
        {"text": "Find the key", "priority": 1},
        {"text": "Escape the keep", "priority": 5},
        {"id": 2, "text": "Warn the village", "priority": 5},
        {"text": "Rest", "priority": 5, "status": "done"},
    ]}});
    let input = RecapInput::from_state(&state, Vec::new()).unwrap();
    assert!(input.skipped.is_empty(), "{:?}", input.skipped);
    let recap = compose(&input, &limits(4, 6, 24), &mut awf_core::Budget::default()).unwrap();
    let texts: Vec<&str> = recap.objectives.iter().map(|o| o.text.as_str()).collect();
    // Equal priorities: with an id first, then input order.
    assert_eq!(
        texts,
        ["Warn the village", "Escape the keep", "Find the key"]
    );
    assert_eq!(recap.objectives[0].id.as_deref(), Some("2"));
    assert_eq!(
        recap.sentences,
        [
            "Current objective: Warn the village.",
            "Current objective: Escape the keep.",
            "Current objective: Find the key.",
            "The story has just begun."
        ]
    );
    // Many skipped parts: all counted, the first 20 listed.
    let bad: Vec<Value> = (0..30).map(|i| json!(i)).collect();
    let input = RecapInput::from_state(&json!({"memory": {"episodic": bad}}), Vec::new()).unwrap();
    let recap = compose(
        &input,
        &RecapLimits::default(),
        &mut awf_core::Budget::default(),
    )
    .unwrap();
    assert_eq!(recap.skipped_count, 30);
    assert_eq!(recap.skipped.len(), awf_core::recap::MAX_SKIPPED_REPORTED);
}

// ---------------------------------------------------------------- determinism

#[test]
fn identical_input_gives_identical_bytes() {
    let dir = golden_dir();
    let input: Value =
        serde_json::from_slice(&std::fs::read(dir.join("full_session.input.json")).unwrap())
            .unwrap();
    let first = serde_json::to_vec_pretty(&recap_of_case(&input)).unwrap();
    for _ in 0..10 {
        assert_eq!(
            serde_json::to_vec_pretty(&recap_of_case(&input)).unwrap(),
            first
        );
    }
    // A clone of the input (fresh allocations, same content) gives the same bytes too.
    let again = serde_json::to_vec_pretty(&recap_of_case(&input.clone())).unwrap();
    assert_eq!(again, first);
}

/// Blank candidates are read to their end (they may hold a word anywhere), so what compose
/// reads is charged: a state of megabyte-long blank pins is over a small budget, and a long
/// text costs its first words only once it has them.
#[test]
fn compose_charges_what_it_reads() {
    let blank = Pin {
        text: " ".repeat(1 << 20),
        turn: 1,
    };
    let input = RecapInput {
        pins: vec![blank; 64],
        ..RecapInput::default()
    };
    let mut small = awf_core::Budget::new(awf_core::Limits {
        max_work: 100_000,
        max_nodes: 1_000,
        max_bytes: 1 << 20,
    });
    let e = compose(&input, &RecapLimits::default(), &mut small).unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
    assert!(e.message.contains("awf.max_work_units"), "{e}");
    // Two million words, cut at 24: the sentence is the first 24 and the mark.
    let long = "word ".repeat(2_000_000);
    assert_eq!(
        normalize_sentence(&long, 24).unwrap(),
        format!("{}…", ["word"; 24].join(" "))
    );
}

#[test]
fn a_huge_malformed_state_keeps_only_the_reported_notes() {
    let bad: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
    let input = RecapInput::from_state(&json!({"memory": {"episodic": bad}}), Vec::new()).unwrap();
    assert_eq!(input.skipped.len(), awf_core::recap::MAX_SKIPPED_REPORTED);
    assert_eq!(input.skipped_count, 100_000);
}
