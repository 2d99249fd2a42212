//! Properties of the three-way merge over random nested documents.
//!
//! Results are compared by canonical bytes, so `1` and `1.0` count as the same value, exactly
//! as the merge itself compares them. Every property runs at least 2,000 cases (more with
//! `PROPTEST_CASES`) and prints how many ran, so a silently shrunken run is visible.

use awf_core::canonical::canonical_bytes;
use awf_core::json::{parse_str, push_token, value_eq, Map};
use awf_core::merge::{merge, MergeOutcome, MergeRule};
use awf_core::ErrorKind;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

const MIN_CASES: u32 = 2_000;
const RULES: [MergeRule; 3] = [MergeRule::Ours, MergeRule::Theirs, MergeRule::Fail];

// ---------------------------------------------------------------- generators

/// Numbers include texts that differ from their value's shortest form (`1.0`, `1e2`) so a
/// merge comparing number text instead of value would report phantom edits.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-1000i64..1000).prop_map(Value::from),
        prop::sample::select(vec!["1.0", "0.5", "1e2", "-3", "2.50", "100"])
            .prop_map(|t| parse_str(t).unwrap()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "[a-c ]{0,4}".prop_map(Value::String),
    ]
}

/// Keys include `/` and `~` so conflict paths exercise pointer escaping.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e", "x/y", "t~"]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(key(), value(), 0..7).prop_map(|m| m.into_iter().collect())
}

/// Random decisions and replacement values, consumed by the deterministic editors below so one
/// generated case can describe edits of a base that is itself generated.
#[derive(Debug, Clone)]
struct Tape {
    choices: Vec<u8>,
    pool: Vec<Value>,
}

fn tape() -> impl Strategy<Value = Tape> {
    (vec(any::<u8>(), 1..64), vec(value(), 1..8)).prop_map(|(choices, pool)| Tape { choices, pool })
}

struct Reader<'a> {
    tape: &'a Tape,
    choice: usize,
    value: usize,
}

impl<'a> Reader<'a> {
    fn new(tape: &'a Tape) -> Self {
        Reader {
            tape,
            choice: 0,
            value: 0,
        }
    }
    fn pick(&mut self, n: u8) -> u8 {
        let c = self.tape.choices[self.choice % self.tape.choices.len()];
        self.choice += 1;
        c % n
    }
    fn value(&mut self) -> Value {
        let v = self.tape.pool[self.value % self.tape.pool.len()].clone();
        self.value += 1;
        v
    }
}

/// One side's edit of a value: delete it, replace it, edit inside an object, or append to an array.
fn mutate(v: &Value, r: &mut Reader, depth: usize) -> Option<Value> {
    match (r.pick(4), v) {
        (0, _) => None,
        (2, Value::Object(m)) if depth < 6 => {
            let mut out = Map::new();
            for (k, child) in m {
                let edited = if r.pick(2) == 0 {
                    Some(child.clone())
                } else {
                    mutate(child, r, depth + 1)
                };
                if let Some(e) = edited {
                    out.insert(k.clone(), e);
                }
            }
            if r.pick(2) == 0 {
                out.insert(format!("new{depth}"), r.value());
            }
            Some(Value::Object(out))
        }
        (3, Value::Array(a)) => {
            let mut out = a.clone();
            out.push(r.value());
            Some(Value::Array(out))
        }
        _ => Some(r.value()),
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), v);
    }
}

/// Splits edits of `base` between two sides on disjoint keys and subtrees; returns (ours, theirs,
/// the document with both edits).
fn disjoint_edits(
    base: &Map<String, Value>,
    r: &mut Reader,
    depth: usize,
) -> (Map<String, Value>, Map<String, Value>, Map<String, Value>) {
    let (mut o, mut t, mut e) = (Map::new(), Map::new(), Map::new());
    for (k, v) in base {
        match (r.pick(4), v) {
            (1, _) => {
                let edited = mutate(v, r, depth + 1);
                put(&mut o, k, edited.clone());
                put(&mut t, k, Some(v.clone()));
                put(&mut e, k, edited);
            }
            (2, _) => {
                let edited = mutate(v, r, depth + 1);
                put(&mut o, k, Some(v.clone()));
                put(&mut t, k, edited.clone());
                put(&mut e, k, edited);
            }
            (3, Value::Object(inner)) if depth < 6 => {
                let (so, st, se) = disjoint_edits(inner, r, depth + 1);
                put(&mut o, k, Some(Value::Object(so)));
                put(&mut t, k, Some(Value::Object(st)));
                put(&mut e, k, Some(Value::Object(se)));
            }
            _ => {
                for m in [&mut o, &mut t, &mut e] {
                    put(m, k, Some(v.clone()));
                }
            }
        }
    }
    // Keys the generator never uses for a base, so additions cannot collide with it.
    for i in 0..r.pick(3) {
        let v = r.value();
        put(&mut o, &format!("ours{i}"), Some(v.clone()));
        put(&mut e, &format!("ours{i}"), Some(v));
    }
    for i in 0..r.pick(3) {
        let v = r.value();
        put(&mut t, &format!("theirs{i}"), Some(v.clone()));
        put(&mut e, &format!("theirs{i}"), Some(v));
    }
    (o, t, e)
}

/// The same document with every integer written as a decimal (`3` → `3.0`): equal by value,
/// different by text, so a merge comparing text would see edits that nobody made.
fn respell(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => parse_str(&format!("{i}.0")).unwrap(),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(respell).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), respell(x))).collect()),
        _ => v.clone(),
    }
}

/// A path into `base` following existing objects, ending at an existing or a new key.
fn pick_path(base: &Map<String, Value>, r: &mut Reader) -> Vec<String> {
    let mut path = Vec::new();
    let mut node = base;
    loop {
        let keys: Vec<&String> = node.keys().collect();
        if keys.is_empty() || r.pick(5) == 0 {
            path.push("fresh".to_owned());
            return path;
        }
        let k = keys[usize::from(r.pick(255)) % keys.len()];
        path.push(k.clone());
        match node.get(k) {
            Some(Value::Object(inner)) if r.pick(2) == 0 => node = inner,
            _ => return path,
        }
    }
}

fn get_at<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, k| node.get(k))
}

fn set_at(doc: &mut Value, path: &[String], v: Option<Value>) {
    let (last, parents) = path.split_last().unwrap();
    let mut node = doc;
    for k in parents {
        node = node.get_mut(k).unwrap();
    }
    let m = node.as_object_mut().unwrap();
    match v {
        Some(v) => {
            m.insert(last.clone(), v);
        }
        None => {
            m.remove(last);
        }
    }
}

fn pointer(path: &[String]) -> String {
    path.iter().fold(String::new(), |p, k| push_token(&p, k))
}

// ---------------------------------------------------------------- checks

fn canon(v: &Value) -> Vec<u8> {
    canonical_bytes(v).unwrap_or_else(|e| panic!("canonical_bytes({v}): {e}"))
}

fn same(a: &Value, b: &Value, what: &str) -> Result<(), TestCaseError> {
    if canon(a) == canon(b) {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!("{what}: {a} != {b}")))
    }
}

fn opt_same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => value_eq(x, y),
        _ => false,
    }
}

fn run_merge(
    b: &Value,
    o: &Value,
    t: &Value,
    rule: MergeRule,
) -> Result<MergeOutcome, TestCaseError> {
    merge(b, o, t, rule, &mut awf_core::Budget::default())
        .map_err(|e| TestCaseError::fail(format!("merge failed: {e}")))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(MIN_CASES, |n: u32| n.max(MIN_CASES))
}

/// Runs `test` over `strategy` and prints how many cases passed.
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let passed = AtomicUsize::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        test(input)?;
        passed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let n = passed.load(Ordering::Relaxed);
    println!("{name}: {n} cases passed");
    assert!(n >= MIN_CASES as usize, "{name}: only {n} cases ran");
}

// ---------------------------------------------------------------- properties

#[test]
fn only_ours_changed_gives_ours() {
    check("merge(b, o, b) == o", (value(), value()), |(b, o)| {
        for rule in RULES {
            let out = run_merge(&b, &o, &b, rule)?;
            prop_assert!(out.conflicts.is_empty());
            same(&out.merged, &o, rule.as_str())?;
        }
        Ok(())
    });
}

#[test]
fn only_theirs_changed_gives_theirs() {
    check("merge(b, b, t) == t", (value(), value()), |(b, t)| {
        for rule in RULES {
            let out = run_merge(&b, &b, &t, rule)?;
            prop_assert!(out.conflicts.is_empty());
            same(&out.merged, &t, rule.as_str())?;
        }
        Ok(())
    });
}

#[test]
fn disjoint_edits_merge_cleanly_and_symmetrically() {
    let both_edited = AtomicUsize::new(0);
    check(
        "disjoint edits",
        (object(), tape(), any::<bool>()),
        |(base, tape, respelt)| {
            let (o, t, expected) = disjoint_edits(&base, &mut Reader::new(&tape), 0);
            let o = Value::Object(o);
            let (b, o, t, expected) = (
                Value::Object(base),
                if respelt { respell(&o) } else { o },
                Value::Object(t),
                Value::Object(expected),
            );
            if !value_eq(&o, &b) && !value_eq(&t, &b) {
                both_edited.fetch_add(1, Ordering::Relaxed);
            }
            let forward = run_merge(&b, &o, &t, MergeRule::Fail)?;
            let backward = run_merge(&b, &t, &o, MergeRule::Fail)?;
            prop_assert!(forward.conflicts.is_empty() && backward.conflicts.is_empty());
            same(&forward.merged, &expected, "merge holds both edits")?;
            same(
                &forward.merged,
                &backward.merged,
                "merge(b,o,t) == merge(b,t,o)",
            )?;
            Ok(())
        },
    );
    println!(
        "disjoint edits: {} cases had edits on both sides",
        both_edited.load(Ordering::Relaxed)
    );
}

#[test]
fn overlapping_edits_conflict_and_the_rule_picks() {
    let strategy = (
        object(),
        tape(),
        prop_oneof![leaf(), vec(leaf(), 0..3).prop_map(Value::Array)],
        prop_oneof![leaf(), vec(leaf(), 0..3).prop_map(Value::Array)],
        any::<bool>(),
        any::<bool>(),
    );
    check(
        "overlapping edits",
        strategy,
        |(base, tape, ov, tv, delete, swap)| {
            let path = pick_path(&base, &mut Reader::new(&tape));
            let b = Value::Object(base);
            let b_at = get_at(&b, &path).cloned();
            // One side may delete what the other modifies; a deletion needs something to delete.
            let mut edits = (
                if delete && b_at.is_some() {
                    None
                } else {
                    Some(ov)
                },
                Some(tv),
            );
            if swap {
                edits = (edits.1, edits.0);
            }
            let (o_at, t_at) = edits;
            prop_assume!(!opt_same(o_at.as_ref(), t_at.as_ref()));
            prop_assume!(!opt_same(o_at.as_ref(), b_at.as_ref()));
            prop_assume!(!opt_same(t_at.as_ref(), b_at.as_ref()));
            // Both sides only appending to the same array merges cleanly by design.
            let appends = |side: &Option<Value>| match (&b_at, side) {
                (Some(Value::Array(b)), Some(Value::Array(s))) => {
                    s.len() >= b.len() && b.iter().zip(s).all(|(x, y)| value_eq(x, y))
                }
                _ => false,
            };
            prop_assume!(!(appends(&o_at) && appends(&t_at)));

            let (mut o, mut t) = (b.clone(), b.clone());
            set_at(&mut o, &path, o_at.clone());
            set_at(&mut t, &path, t_at.clone());
            let ptr = pointer(&path);
            for (rule, winner, name) in [
                (MergeRule::Ours, &o, "ours"),
                (MergeRule::Theirs, &t, "theirs"),
            ] {
                let out = run_merge(&b, &o, &t, rule)?;
                prop_assert_eq!(out.conflicts.len(), 1);
                let c = &out.conflicts[0];
                prop_assert_eq!(&c.path, &ptr);
                prop_assert!(opt_same(c.base.as_ref(), b_at.as_ref()));
                prop_assert!(opt_same(c.ours.as_ref(), o_at.as_ref()));
                prop_assert!(opt_same(c.theirs.as_ref(), t_at.as_ref()));
                prop_assert_eq!(c.resolution, name);
                same(&out.merged, winner, name)?;
            }
            let err = merge(
                &b,
                &o,
                &t,
                MergeRule::Fail,
                &mut awf_core::Budget::default(),
            )
            .unwrap_err();
            prop_assert_eq!(err.kind, ErrorKind::Conflict);
            prop_assert!(err.message.contains(&format!("{ptr:?}")), "{}", err.message);
            Ok(())
        },
    );
}

#[test]
fn every_conflict_is_resolved_as_reported() {
    let with_conflicts = AtomicUsize::new(0);
    check(
        "conflicts match the merged document",
        (value(), tape(), tape()),
        |(b, ot, tt)| {
            let o = mutate(&b, &mut Reader::new(&ot), 0).unwrap_or(Value::Null);
            let t = mutate(&b, &mut Reader::new(&tt), 0).unwrap_or(Value::Null);
            let ours = run_merge(&b, &o, &t, MergeRule::Ours)?;
            let theirs = run_merge(&b, &o, &t, MergeRule::Theirs)?;
            prop_assert_eq!(ours.conflicts.len(), theirs.conflicts.len());
            prop_assert_eq!(
                merge(
                    &b,
                    &o,
                    &t,
                    MergeRule::Fail,
                    &mut awf_core::Budget::default()
                )
                .is_err(),
                !ours.conflicts.is_empty()
            );
            if !ours.conflicts.is_empty() {
                with_conflicts.fetch_add(1, Ordering::Relaxed);
            }
            for (out, pick_ours) in [(&ours, true), (&theirs, false)] {
                let paths: Vec<&str> = out.conflicts.iter().map(|c| c.path.as_str()).collect();
                for c in &out.conflicts {
                    let chosen = if pick_ours { &c.ours } else { &c.theirs };
                    prop_assert!(
                        opt_same(out.merged.pointer(&c.path), chosen.as_ref()),
                        "conflict at {:?} not resolved as reported",
                        c.path
                    );
                    // A conflict is reported once, at the highest path where the sides disagree.
                    let nested = paths
                        .iter()
                        .any(|p| *p != c.path && c.path.starts_with(&format!("{p}/")));
                    prop_assert!(!nested, "conflict {:?} is inside another", c.path);
                }
            }
            Ok(())
        },
    );
    println!(
        "conflicts match the merged document: {} cases had conflicts",
        with_conflicts.load(Ordering::Relaxed)
    );
}

#[test]
fn appends_on_both_sides_keep_both() {
    let strategy = (vec(leaf(), 0..4), vec(leaf(), 1..4), vec(leaf(), 1..4));
    check("appends on both sides", strategy, |(base, ot, tt)| {
        let join = |tail: &[Value]| Value::Array(base.iter().chain(tail).cloned().collect());
        let (b, o, t) = (join(&[]), join(&ot), join(&tt));
        let prefix = |s: &[Value], l: &[Value]| {
            s.len() <= l.len() && s.iter().zip(l).all(|(x, y)| value_eq(x, y))
        };
        let expected = if prefix(&ot, &tt) {
            t.clone()
        } else if prefix(&tt, &ot) {
            o.clone()
        } else {
            let mut all = base.clone();
            all.extend(ot.iter().cloned());
            all.extend(tt.iter().cloned());
            Value::Array(all)
        };
        let out = run_merge(&b, &o, &t, MergeRule::Fail)?;
        prop_assert!(out.conflicts.is_empty());
        same(&out.merged, &expected, "base + ours' tail + theirs' tail")?;
        // Nested in a document, the rest of which one side also edited.
        let wrap = |v: &Value, n: i64| serde_json::json!({"log": v, "n": n});
        let out = run_merge(&wrap(&b, 0), &wrap(&o, 1), &wrap(&t, 0), MergeRule::Fail)?;
        same(&out.merged, &wrap(&expected, 1), "appends inside an object")?;
        Ok(())
    });
}

/// NPC-like elements with an `id`: (x, y) per element.
fn npcs(xy: &[(i64, i64)], ids: impl Iterator<Item = i64>) -> Vec<Value> {
    ids.zip(xy)
        .map(|(id, (x, y))| serde_json::json!({"id": id, "x": x, "y": y}))
        .collect()
}

#[test]
fn arrays_of_objects_merge_by_id() {
    // Base NPCs; ours moves some along x, theirs some along y (other members of the same or
    // other elements), ours deletes one theirs left alone, each side adds its own new NPC.
    let strategy = (
        vec((0i64..100, 0i64..100), 2..8),
        vec(any::<bool>(), 8),
        vec(any::<bool>(), 8),
        0usize..8,
    );
    check(
        "arrays of objects merge by id",
        strategy,
        |(xy, ox, ty, del)| {
            let n = xy.len();
            let base = npcs(&xy, 0..n as i64);
            let del = del % n;
            let mut ours: Vec<Value> = Vec::new();
            let mut theirs: Vec<Value> = Vec::new();
            let mut expected: Vec<Value> = Vec::new();
            for (i, b) in base.iter().enumerate() {
                let mut o = b.clone();
                if ox[i] {
                    o["x"] = serde_json::json!(b["x"].as_i64().unwrap() + 1000);
                }
                let mut t = b.clone();
                if ty[i] {
                    t["y"] = serde_json::json!(b["y"].as_i64().unwrap() + 1000);
                }
                let mut e = o.clone();
                e["y"] = t["y"].clone();
                // Ours deletes `del` only when theirs did not touch it.
                let ours_deletes = i == del && !ty[i];
                if !ours_deletes {
                    ours.push(o);
                    expected.push(e);
                }
                theirs.push(t);
            }
            ours.push(serde_json::json!({"id": 100, "x": 1, "y": 1}));
            theirs.push(serde_json::json!({"id": 200, "x": 2, "y": 2}));
            expected.push(serde_json::json!({"id": 100, "x": 1, "y": 1}));
            expected.push(serde_json::json!({"id": 200, "x": 2, "y": 2}));
            let wrap = |v: Vec<Value>| serde_json::json!({"npcs": v});
            let (b, o, t) = (wrap(base), wrap(ours), wrap(theirs));
            let out = run_merge(&b, &o, &t, MergeRule::Fail)?;
            prop_assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
            same(&out.merged, &wrap(expected), "merged by id")?;
            // The ancestor on one side is the identity; the merge is deterministic.
            same(
                &run_merge(&b, &b, &t, MergeRule::Fail)?.merged,
                &t,
                "base, base, theirs",
            )?;
            same(
                &run_merge(&b, &o, &b, MergeRule::Fail)?.merged,
                &o,
                "base, ours, base",
            )?;
            same(
                &run_merge(&b, &o, &t, MergeRule::Fail)?.merged,
                &out.merged,
                "deterministic",
            )?;
            Ok(())
        },
    );
}

#[test]
fn the_same_member_of_the_same_element_conflicts() {
    let b = serde_json::json!({"npcs": [{"id": "a", "x": 1}, {"id": "b", "x": 1}]});
    let o = serde_json::json!({"npcs": [{"id": "a", "x": 2}, {"id": "b", "x": 1}]});
    let t = serde_json::json!({"npcs": [{"id": "b", "x": 5}, {"id": "a", "x": 3}]});
    let out = run_merge(&b, &o, &t, MergeRule::Theirs).unwrap();
    assert_eq!(out.conflicts.len(), 1, "{:?}", out.conflicts);
    assert_eq!(out.conflicts[0].path, "/npcs/0/x");
    assert_eq!(
        out.merged,
        serde_json::json!({"npcs": [{"id": "a", "x": 3}, {"id": "b", "x": 5}]})
    );
    // Deleted on one side, changed on the other: a conflict at that element.
    let o = serde_json::json!({"npcs": [{"id": "b", "x": 1}]});
    let t = serde_json::json!({"npcs": [{"id": "a", "x": 9}, {"id": "b", "x": 1}]});
    let out = run_merge(&b, &o, &t, MergeRule::Ours).unwrap();
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(
        out.merged,
        serde_json::json!({"npcs": [{"id": "b", "x": 1}]})
    );
    // Duplicate or missing ids: the array is one value again (a whole-array conflict).
    let dup = serde_json::json!({"npcs": [{"id": "a", "x": 7}, {"id": "a", "x": 8}]});
    let out = run_merge(&b, &o, &dup, MergeRule::Ours).unwrap();
    assert_eq!(out.conflicts[0].path, "/npcs");
    // Another identity member, configured for one path.
    let b = serde_json::json!({"places": [{"name": "inn", "open": true}, {"name": "keep", "open": true}]});
    let o = serde_json::json!({"places": [{"name": "inn", "open": false}, {"name": "keep", "open": true}]});
    let t = serde_json::json!({"places": [{"name": "keep", "open": false}, {"name": "inn", "open": true}]});
    let mut id = awf_core::merge::Identity::default();
    id.per_path.insert("/places".into(), "name".into());
    let out = awf_core::merge::merge_with(
        &b,
        &o,
        &t,
        MergeRule::Fail,
        &id,
        &mut awf_core::Budget::default(),
    )
    .unwrap();
    assert_eq!(
        out.merged,
        serde_json::json!({"places": [{"name": "inn", "open": false}, {"name": "keep", "open": false}]})
    );
}
