//! Session bundles: build → verify round trips, every kind of tampering is refused with a
//! message that names it, redaction leaves no secret behind, the size limit is exact, and the
//! output is deterministic.

use awf_core::bundle::{
    build, bundle_checksum, verify, BundleInput, ExportOptions, FORMAT, SECTIONS, VERSION,
};
use awf_core::canonical::{canonical_bytes, canonical_string, content_hash};
use awf_core::diff::diff_value;
use awf_core::json::parse_str;
use awf_core::{Budget, Error, ErrorKind};
use awf_sample::{game_state, next_turn, turn_of};
use serde_json::{json, Value};

/// Builds within the default budget, which no bundle here comes near.
fn build_(input: BundleInput, opts: &ExportOptions) -> Result<Value, Error> {
    build(input, opts, &mut Budget::default())
}

/// Verifies within the default budget.
fn verify_(bundle: &Value) -> Result<awf_core::bundle::VerifiedBundle<'_>, Error> {
    verify(bundle, &mut Budget::default())
}

const SESSION_ID: &str = "550e8400-e29b-41d4-a716-446655440000";
const EMAIL: &str = "alice.smith@example.com";
const API_KEY: &str = "sk-proj-4fJk2LmN9pQrStUvWxYz0123AbCdEfGh";

/// A realistic session: a ~20 KB state played for 12 turns, one WAL row and one turn row per
/// turn (acts are the RFC 6902 diff of the turn), a snapshot every 4 turns.
fn session_input(seed: u64) -> BundleInput {
    let mut state = game_state(20_000, seed);
    let first = turn_of(&state) + 1;
    let (mut turns, mut wal, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
    for (i, turn_id) in (first..first + 12).enumerate() {
        let before = state.clone();
        next_turn(&mut state, turn_id, seed);
        let acts = diff_value(&before, &state, &mut awf_core::Budget::default()).unwrap();
        let txt = json!([
            format!("Turn {turn_id}: the lanterns gutter in the wind."),
            "You hear footsteps behind the old mill.",
        ]);
        let state_hash = content_hash(&state).unwrap();
        turns.push(json!({
            "session_id": SESSION_ID,
            "turn_id": turn_id,
            "txt": txt,
            "acts": acts,
            "state_hash": state_hash,
            "created_at": format!("2025-03-01T12:{:02}:00Z", i),
        }));
        let awf_raw = json!({"txt": txt, "acts": acts});
        wal.push(json!({
            "id": 100 + i,
            "session_id": SESSION_ID,
            "turn_id": turn_id,
            "awf_raw": awf_raw,
            "payload_hash": content_hash(&awf_raw).unwrap(),
            "state_hash_before": content_hash(&before).unwrap(),
            "attempts": 1,
            "last_error": null,
            "applied": true,
            "applied_at": format!("2025-03-01T12:{:02}:01Z", i),
        }));
        if i % 4 == 3 {
            snapshots.push(json!({
                "id": 7 + i,
                "session_id": SESSION_ID,
                "created_at": format!("2025-03-01T12:{:02}:02Z", i),
                "label": format!("auto after turn {turn_id}"),
                "content_hash": state_hash,
                "payload": state,
            }));
        }
    }
    BundleInput {
        session: json!({
            "session_id": SESSION_ID,
            "user_id_hash": "9b74c9897bac770ffc029102a200c5de",
            "turn_id": turn_of(&state),
            "state_hash": content_hash(&state).unwrap(),
            "contract_ref": "awf/contract@3",
            "sandbox_of": null,
            "created_at": "2025-03-01T11:58:00Z",
            "updated_at": "2025-03-01T12:11:01Z",
        }),
        state,
        turns,
        wal,
        snapshots,
        metadata: json!({
            "exported_at": "2025-03-02T08:00:00Z",
            "source_database": "awf_prod",
            "extension_version": "0.1.0",
            "postgres_version": "15.6",
        }),
    }
}

fn opts(redact: bool) -> ExportOptions {
    ExportOptions {
        redact,
        salt: "export-salt-1".into(),
        max_bytes: None,
    }
}

/// A bundle with redaction applied (and an empty report: the sample holds no secrets).
fn bundle() -> Value {
    build_(session_input(7), &opts(true)).unwrap()
}

/// Verifies a bundle changed by `edit` and returns the (InvalidInput) error message.
fn refused(edit: impl FnOnce(&mut Value)) -> String {
    let mut b = bundle();
    edit(&mut b);
    let e = verify_(&b).expect_err("tampered bundle was accepted");
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{}", e.message);
    e.message
}

/// Changes one character of the string at `pointer`.
fn flip_char(b: &mut Value, pointer: &str) {
    let s = b
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no value at {pointer}"));
    let text = s
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"));
    let mut chars: Vec<char> = text.chars().collect();
    chars[0] = if chars[0] == 'X' { 'Y' } else { 'X' };
    *s = Value::String(chars.into_iter().collect());
}

fn stored_sum(b: &Value, section: &str) -> String {
    b["checksums"]["sections"][section]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Round trip

#[test]
fn build_then_verify_round_trips() {
    for redact in [false, true] {
        let input = session_input(7);
        let b = build_(input.clone(), &opts(redact)).unwrap();
        assert_eq!(b["format"], FORMAT);
        assert_eq!(b["version"], json!(VERSION));
        let keys: Vec<&str> = b["sections"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = SECTIONS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);

        let v = verify_(&b).unwrap();
        assert_eq!(v.redacted, redact);
        assert_eq!(v.redaction_report.is_some(), redact);
        assert_eq!(
            v.bundle_checksum,
            b["checksums"]["bundle"].as_str().unwrap()
        );
        assert_eq!(v.bundle_checksum, bundle_checksum(&b).unwrap());
        // The sample holds no secrets, so redaction changes nothing: hashes and ids survive.
        assert_eq!(Value::Object(v.session().clone()), input.session);
        assert_eq!(Value::Object(v.state().clone()), input.state);
        assert_eq!(v.turns(), &input.turns[..]);
        assert_eq!(v.wal(), &input.wal[..]);
        assert_eq!(v.snapshots(), &input.snapshots[..]);
        assert_eq!(v.snapshots().len(), 3);
        assert_eq!(Value::Object(v.metadata().clone()), input.metadata);
        for name in SECTIONS {
            assert_eq!(
                stored_sum(&b, name),
                content_hash(&b["sections"][name]).unwrap()
            );
        }
        if redact {
            assert_eq!(
                b["redaction"],
                json!({"applied": true, "report": {"counts": {}, "findings": [], "total": 0}})
            );
        } else {
            assert_eq!(b["redaction"], json!({"applied": false, "report": null}));
        }
    }
}

#[test]
fn bundle_checksum_is_the_hash_of_the_manifest() {
    let b = bundle();
    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "checksums": {"sections": b["checksums"]["sections"]},
        "redaction": b["redaction"],
    });
    assert_eq!(
        b["checksums"]["bundle"].as_str().unwrap(),
        content_hash(&manifest).unwrap()
    );
}

#[test]
fn verify_survives_text_and_jsonb_style_rewrites() {
    let b = bundle();
    // Through text, pretty-printed, as a file would be.
    let text = serde_json::to_string_pretty(&b).unwrap();
    verify_(&parse_str(&text).unwrap()).unwrap();
    // jsonb rewrites number texts (`15` may come back as `15.0`, `1` as `1.0`): checksums are
    // over canonical bytes, so they still match.
    let mut b = b;
    let turn = b["sections"]["state"]["game_state"]["turn"]
        .as_i64()
        .unwrap();
    b["sections"]["state"]["game_state"]["turn"] = parse_str(&format!("{turn}.0")).unwrap();
    b["version"] = parse_str("1.0").unwrap();
    verify_(&b).unwrap();
}

#[test]
fn output_is_deterministic() {
    let mut with_secret = session_input(3);
    with_secret.state["player"]["contact"] = json!(format!("write to {EMAIL}"));
    for o in [opts(false), opts(true)] {
        let a = build_(with_secret.clone(), &o).unwrap();
        let b = build_(with_secret.clone(), &o).unwrap();
        assert_eq!(canonical_bytes(&a).unwrap(), canonical_bytes(&b).unwrap());
    }
    // The salt is part of the output (the redaction tags), so another salt gives other bytes.
    let a = build_(with_secret.clone(), &opts(true)).unwrap();
    let mut other = opts(true);
    other.salt = "another-salt".into();
    let b = build_(with_secret, &other).unwrap();
    assert_ne!(canonical_bytes(&a).unwrap(), canonical_bytes(&b).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Tampering

#[test]
fn an_edited_section_is_named() {
    for (section, pointer) in [
        ("state", "/sections/state/player/name"),
        ("turns", "/sections/turns/3/txt/1"),
        ("snapshots", "/sections/snapshots/1/payload/player/name"),
        ("metadata", "/sections/metadata/exported_at"),
        ("session", "/sections/session/session_id"),
        ("wal", "/sections/wal/0/awf_raw/txt/0"),
    ] {
        let b = bundle();
        let stored = stored_sum(&b, section);
        let msg = refused(|b| flip_char(b, pointer));
        let mut edited = b.clone();
        flip_char(&mut edited, pointer);
        let computed = content_hash(&edited["sections"][section]).unwrap();
        assert_eq!(
            msg,
            format!(
                "section \"{section}\" checksum mismatch: expected {stored}, computed {computed} \
                 (the section was changed after export)"
            )
        );
    }
}

#[test]
fn dropped_or_reordered_rows_are_detected() {
    let msg = refused(|b| {
        b["sections"]["turns"].as_array_mut().unwrap().pop();
    });
    assert!(
        msg.starts_with("section \"turns\" checksum mismatch"),
        "{msg}"
    );
    let msg = refused(|b| b["sections"]["wal"].as_array_mut().unwrap().swap(0, 1));
    assert!(
        msg.starts_with("section \"wal\" checksum mismatch"),
        "{msg}"
    );
}

#[test]
fn an_edited_checksum_is_detected() {
    let msg = refused(|b| {
        let sum = stored_sum(b, "wal");
        let flipped = if sum.starts_with('0') { "1" } else { "0" };
        b["checksums"]["sections"]["wal"] = json!(format!("{flipped}{}", &sum[1..]));
    });
    assert!(
        msg.starts_with("section \"wal\" checksum mismatch: expected "),
        "{msg}"
    );

    let b = bundle();
    let real = b["checksums"]["bundle"].as_str().unwrap().to_owned();
    let fake = format!(
        "{}{}",
        if real.starts_with('a') { "b" } else { "a" },
        &real[1..]
    );
    let msg = refused(|b| b["checksums"]["bundle"] = json!(fake));
    assert_eq!(
        msg,
        format!(
            "bundle checksum mismatch: expected {fake}, computed {real} (the format, version, \
             section checksums or redaction report were changed after export)"
        )
    );

    let msg = refused(|b| b["checksums"]["sections"]["state"] = json!(5));
    assert_eq!(
        msg,
        "checksum of section \"state\" must be a string, got a number"
    );
}

#[test]
fn an_edit_with_a_recomputed_section_checksum_fails_the_bundle_checksum() {
    let msg = refused(|b| {
        flip_char(b, "/sections/state/player/name");
        let sum = content_hash(&b["sections"]["state"]).unwrap();
        b["checksums"]["sections"]["state"] = json!(sum);
    });
    assert!(
        msg.starts_with("bundle checksum mismatch: expected "),
        "{msg}"
    );
}

#[test]
fn checksums_are_not_a_signature() {
    // Documented limit: whoever recomputes every checksum after an edit gets a valid bundle.
    // Bundles detect corruption and naive edits; authenticity needs a signature on top.
    let mut b = bundle();
    flip_char(&mut b, "/sections/state/player/name");
    b["checksums"]["sections"]["state"] = json!(content_hash(&b["sections"]["state"]).unwrap());
    b["checksums"]["bundle"] = json!(bundle_checksum(&b).unwrap());
    verify_(&b).unwrap();
}

#[test]
fn truncation_is_detected() {
    for name in SECTIONS {
        let msg = refused(|b| {
            b["sections"].as_object_mut().unwrap().remove(name);
        });
        assert_eq!(
            msg,
            format!("missing section \"{name}\" (bundle truncated?)")
        );
    }
    let msg = refused(|b| {
        b.as_object_mut().unwrap().remove("sections");
    });
    assert_eq!(msg, "missing \"sections\" (bundle truncated?)");
    let msg = refused(|b| {
        b.as_object_mut().unwrap().remove("checksums");
    });
    assert_eq!(msg, "missing \"checksums\" (bundle truncated?)");
    let msg = refused(|b| {
        b["checksums"]["sections"]
            .as_object_mut()
            .unwrap()
            .remove("snapshots");
    });
    assert_eq!(
        msg,
        "missing checksum for section \"snapshots\" in \"checksums.sections\""
    );
    let msg = refused(|b| {
        b["checksums"].as_object_mut().unwrap().remove("bundle");
    });
    assert_eq!(msg, "missing \"checksums.bundle\"");
}

#[test]
fn wrong_format_is_not_a_bundle() {
    let msg = refused(|b| b["format"] = json!("awf.save-export"));
    assert_eq!(
        msg,
        "not a bundle: format is \"awf.save-export\", expected \"awf.session-bundle\""
    );
    let msg = refused(|b| {
        b.as_object_mut().unwrap().remove("format");
    });
    assert_eq!(
        msg,
        "not a bundle: no \"format\" field (expected \"awf.session-bundle\")"
    );
    for (input, kind) in [
        (json!([1, 2]), "an array"),
        (json!("bundle"), "a string"),
        (Value::Null, "null"),
        (json!(42), "a number"),
    ] {
        let e = verify_(&input).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(
            e.message,
            format!("not a bundle: expected a JSON object, got {kind}")
        );
    }
}

#[test]
fn versions_other_than_1_are_refused() {
    let msg = refused(|b| b["version"] = json!(2));
    assert_eq!(
        msg,
        "bundle version 2 is newer than this extension supports (1)"
    );
    let msg = refused(|b| b["version"] = json!(0));
    assert_eq!(msg, "bundle version 0 is not valid (versions start at 1)");
    let msg = refused(|b| b["version"] = json!("1"));
    assert_eq!(msg, "bundle version \"1\" is not an integer");
    let msg = refused(|b| b["version"] = parse_str("1.5").unwrap());
    assert_eq!(msg, "bundle version 1.5 is not an integer");
    let msg = refused(|b| {
        b.as_object_mut().unwrap().remove("version");
    });
    assert_eq!(msg, "bundle has no \"version\" field");
}

#[test]
fn unknown_parts_are_refused_not_dropped() {
    let msg = refused(|b| b["sections"]["saves"] = json!([]));
    assert_eq!(
        msg,
        "unknown section \"saves\" (a version 1 bundle has session, state, turns, wal, \
         snapshots, metadata)"
    );
    let msg = refused(|b| b["signature"] = json!("abc"));
    assert!(
        msg.starts_with("unknown top-level field \"signature\" in a version 1 bundle"),
        "{msg}"
    );
    let msg = refused(|b| b["checksums"]["sections"]["saves"] = json!("00"));
    assert_eq!(
        msg,
        "checksum for unknown section \"saves\" in \"checksums.sections\""
    );
}

#[test]
fn sections_of_the_wrong_type_are_refused() {
    let msg = refused(|b| b["sections"]["state"] = json!([]));
    assert_eq!(msg, "section \"state\" must be a JSON object, got an array");
    let msg = refused(|b| b["sections"]["turns"] = json!({}));
    assert_eq!(msg, "section \"turns\" must be a JSON array, got an object");
    let msg = refused(|b| b["sections"] = json!([]));
    assert_eq!(msg, "\"sections\" must be a JSON object, got an array");
}

#[test]
fn a_changed_redaction_report_is_detected() {
    let mut input = session_input(7);
    input.state["player"]["contact"] = json!(format!("write to {EMAIL}"));
    let b = build_(input, &opts(true)).unwrap();
    verify_(&b).unwrap();

    let check = |edit: &dyn Fn(&mut Value), want: &str| {
        let mut t = b.clone();
        edit(&mut t);
        let e = verify_(&t).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.starts_with(want), "{}", e.message);
    };
    // Hiding a finding, consistently (counts and total adjusted).
    check(
        &|t| {
            t["redaction"]["report"] = json!({"counts": {}, "findings": [], "total": 0});
        },
        "bundle checksum mismatch",
    );
    // Moving a finding elsewhere.
    check(
        &|t| t["redaction"]["report"]["findings"][0]["pointer"] = json!("/sections/metadata"),
        "bundle checksum mismatch",
    );
    // Claiming the export was not redacted.
    check(
        &|t| t["redaction"] = json!({"applied": false, "report": null}),
        "bundle checksum mismatch",
    );
    // Inconsistent shapes are refused before any hashing.
    check(
        &|t| t["redaction"]["applied"] = json!(false),
        "\"redaction.report\" must be null when \"redaction.applied\" is false",
    );
    check(
        &|t| t["redaction"]["report"]["total"] = json!(5),
        "\"redaction.report\" must have",
    );
    check(
        &|t| {
            t.as_object_mut().unwrap().remove("redaction");
        },
        "missing \"redaction\"",
    );
}

// ---------------------------------------------------------------------------------------------
// Redaction

fn with_secrets() -> BundleInput {
    let mut input = session_input(11);
    input.state["player"]["contact"] = json!(format!("Reach me at {EMAIL} after the raid."));
    input.state["player"]["api_key"] = json!(API_KEY);
    let line = format!("The oracle whispers: {API_KEY} (ask {EMAIL})");
    input.turns[2]["txt"][0] = json!(line);
    input.wal[2]["awf_raw"]["txt"][0] = json!(line);
    input
}

#[test]
fn redaction_removes_secrets_everywhere_and_reports_them() {
    let b = build_(with_secrets(), &opts(true)).unwrap();
    for text in [
        canonical_string(&b).unwrap(),
        serde_json::to_string(&b).unwrap(),
    ] {
        assert!(!text.contains(EMAIL), "email survived redaction");
        assert!(!text.contains(API_KEY), "API key survived redaction");
        assert!(
            !text.contains("4fJk2LmN9pQr"),
            "part of the API key survived"
        );
    }

    let v = verify_(&b).unwrap();
    assert!(v.redacted);
    let report = Value::Object(v.redaction_report.unwrap().clone());
    let findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["pointer"].as_str().unwrap().to_owned(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("/sections/state/player/contact", "email"),
        ("/sections/state/player/api_key", "secret_field"),
        ("/sections/turns/2/txt/0", "api_key"),
        ("/sections/turns/2/txt/0", "email"),
        ("/sections/wal/2/awf_raw/txt/0", "api_key"),
        ("/sections/wal/2/awf_raw/txt/0", "email"),
    ] {
        assert!(
            findings.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {findings:?}"
        );
    }
    assert_eq!(report["total"], json!(findings.len()));
    assert_eq!(report["counts"]["email"], json!(3));
    // Each pointer addresses the replaced value in the bundle as written.
    for (pointer, _) in &findings {
        let s = b.pointer(pointer).and_then(Value::as_str).unwrap();
        assert!(s.contains("[REDACTED:"), "{pointer}: {s}");
    }
    assert!(v.state()["player"]["contact"]
        .as_str()
        .unwrap()
        .starts_with("Reach me at [REDACTED:email:"));
}

#[test]
fn without_redaction_secrets_remain() {
    let b = build_(with_secrets(), &opts(false)).unwrap();
    let text = canonical_string(&b).unwrap();
    assert!(text.contains(EMAIL));
    assert!(text.contains(API_KEY));
    assert_eq!(b["redaction"], json!({"applied": false, "report": null}));
    let v = verify_(&b).unwrap();
    assert!(!v.redacted);
    assert!(v.redaction_report.is_none());
}

// ---------------------------------------------------------------------------------------------
// Size limit

fn limited(max: usize, redact: bool) -> Result<Value, Error> {
    let mut o = opts(redact);
    o.max_bytes = Some(max);
    build_(with_secrets(), &o)
}

#[test]
fn the_size_limit_is_exact() {
    for redact in [false, true] {
        let size = canonical_bytes(&build_(with_secrets(), &opts(redact)).unwrap())
            .unwrap()
            .len();
        // Exactly at the limit passes, and gives the same bundle as no limit.
        let at = limited(size, redact).unwrap();
        assert_eq!(canonical_bytes(&at).unwrap().len(), size);
        verify_(&at).unwrap();

        let e = limited(size - 1, redact).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert!(
            e.message.contains(&format!("({size} bytes)")),
            "{}",
            e.message
        );
        assert!(
            e.message.contains(&format!("({} bytes)", size - 1)),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("awf.export_max_size_mb"),
            "{}",
            e.message
        );
    }
}

#[test]
fn the_size_message_speaks_in_mb() {
    let mut input = session_input(5);
    // About 1.2 MB: a large state repeated in snapshots.
    let big = game_state(300_000, 5);
    input.snapshots = (0..4)
        .map(|i| json!({"id": i, "label": "big", "payload": big}))
        .collect();
    let mut o = opts(false);
    o.max_bytes = Some(1024 * 1024);
    let e = build_(input.clone(), &o).unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
    let size = canonical_bytes(&build_(input, &opts(false)).unwrap())
        .unwrap()
        .len();
    let mb = format!("{:.1}", size as f64 / (1024.0 * 1024.0));
    assert_eq!(
        e.message,
        format!(
            "export is {mb} MB ({size} bytes), over awf.export_max_size_mb = 1 (1048576 bytes); \
             prune snapshots or the WAL, or raise the setting"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input to build

#[test]
fn build_refuses_what_verify_would_refuse() {
    let mut input = session_input(2);
    input.state = json!([1, 2]);
    let e = build_(input, &opts(true)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert_eq!(
        e.message,
        "section \"state\" must be a JSON object, got an array"
    );

    let mut input = session_input(2);
    input.metadata = Value::Null;
    let e = build_(input, &opts(false)).unwrap_err();
    assert_eq!(
        e.message,
        "section \"metadata\" must be a JSON object, got null"
    );

    // A number canonical JSON cannot hold exactly fails the export, naming the section.
    let mut input = session_input(2);
    input.turns[0]["score"] = parse_str("0.10000000000000000001").unwrap();
    let e = build_(input, &opts(false)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(
        e.message
            .starts_with("section \"turns\": number 0.10000000000000000001 cannot be"),
        "{}",
        e.message
    );
}
