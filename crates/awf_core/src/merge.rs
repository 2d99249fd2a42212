//! Three-way merge of JSON documents with conflict reporting.
//!
//! Two devices edit copies of the same base state; [`merge`] combines their edits and reports
//! every path where they disagree, resolved by a [`MergeRule`] (or refused with
//! [`MergeRule::Fail`]). Equality is semantic ([`value_eq`]): `1` and `1.0` are the same edit.
//!
//! At each path, with `base`, `ours` and `theirs` (any of which may be absent):
//! - ours ≡ theirs: both agree, take ours;
//! - ours ≡ base: only theirs changed, take theirs (this includes theirs deleting the key);
//! - theirs ≡ base: only ours changed, take ours;
//! - ours and theirs are both objects, and base is an object or absent: merge key by key, so
//!   edits of different keys never conflict. An absent base counts as `{}`: two devices that each
//!   create the same section (say `memory`) with different contents merge field by field instead
//!   of losing one section wholesale;
//! - base, ours and theirs are arrays and both sides only appended: see below;
//! - anything else (both changed a value differently, a type change, one side deleted what the
//!   other modified) is a [`Conflict`] at that path, resolved by the rule.
//!
//! Arrays of objects that carry an identity member (`id` by default; another name per array
//! path with [`Identity`]) are merged element by element, pairing elements by that member, not
//! by position: two devices that move different NPCs merge cleanly, changes to different
//! members of one element merge too, and only a change to the same member of the same element
//! conflicts. An element added on either side is kept (ours' order first, then theirs' new
//! ones); one deleted on one side and untouched on the other is deleted; deleted on one side
//! and changed on the other is a conflict at that element. This applies when, in each of
//! base (which may be absent), ours and theirs, every element is an object whose identity
//! member is a string or number, unique in its array.
//!
//! Other arrays are merged as whole values: the position of an element says nothing about
//! its identity (an insert shifts every later index), so an element-wise merge would pair
//! unrelated elements and report nonsense.
//! The one exception is the common log-like case of both sides only appending to the base array
//! (two devices each adding an episodic memory): the result is the base, then ours' new elements,
//! then theirs'. When one side's appended elements are a prefix of the other's (a retried sync
//! appended the same elements again), the longer side wins, so nothing is duplicated.
//! That exception is the one place where the order of `ours` and `theirs` matters for a clean
//! merge; ours goes first because ours is the branch being merged into.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::json::{push_token, value_eq, Map};
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// How many conflicting paths a [`MergeRule::Fail`] error names before summarizing.
const MAX_PATHS_IN_ERROR: usize = 20;

/// How a conflict is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeRule {
    /// Keep our value (or our deletion).
    Ours,
    /// Keep their value (or their deletion).
    Theirs,
    /// Refuse the merge with a conflict error naming the paths.
    Fail,
}

impl MergeRule {
    /// Every rule, in the order error messages list them.
    pub const ALL: [MergeRule; 3] = [MergeRule::Ours, MergeRule::Theirs, MergeRule::Fail];

    /// The rule's name as [`FromStr`] accepts it.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeRule::Ours => "ours",
            MergeRule::Theirs => "theirs",
            MergeRule::Fail => "fail",
        }
    }
}

impl FromStr for MergeRule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MergeRule::ALL
            .into_iter()
            .find(|rule| s.eq_ignore_ascii_case(rule.as_str()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown merge rule {s:?}: expected one of \"ours\", \"theirs\", \"fail\""
                ))
            })
    }
}

impl fmt::Display for MergeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One path where both sides changed the base differently.
///
/// A side that deleted the value (or a base that did not have it) is `None` and is left out of
/// the serialized form: `null` is a value a side can set, so it cannot also mean "absent".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// JSON Pointer (RFC 6901) of the conflicting value; `""` is the whole document.
    pub path: String,
    /// The base value, `None` when the base did not have the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
    /// Our value, `None` when we deleted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours: Option<Value>,
    /// Their value, `None` when they deleted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theirs: Option<Value>,
    /// Which side the merged document took: `"ours"` or `"theirs"`.
    pub resolution: &'static str,
}

/// The merged document and the conflicts that the rule resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeOutcome {
    /// The merged document.
    pub merged: Value,
    /// Every conflict, in document order; empty for a clean merge.
    pub conflicts: Vec<Conflict>,
}

impl MergeOutcome {
    /// True when no path conflicted.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// Which member identifies the elements of an array of objects: `default` (`id`), or another
/// member for the array at a given JSON Pointer (`/world/locations` → `name`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub default: String,
    pub per_path: std::collections::BTreeMap<String, String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            default: "id".to_owned(),
            per_path: Default::default(),
        }
    }
}

impl Identity {
    fn member(&self, path: &str) -> &str {
        self.per_path.get(path).unwrap_or(&self.default)
    }
}

/// Merges `ours` and `theirs`, both derived from `base`; see the module documentation.
///
/// With [`MergeRule::Fail`] any conflict is an [`Error::conflict`] naming the paths.
/// Each merged path is charged to `budget`, so a merge of huge or deep documents ends in
/// 54000 and polls for interrupts instead of running unchecked.
pub fn merge(
    base: &Value,
    ours: &Value,
    theirs: &Value,
    rule: MergeRule,
    budget: &mut Budget,
) -> Result<MergeOutcome> {
    merge_with(base, ours, theirs, rule, &Identity::default(), budget)
}

/// [`merge`] with the identity members of arrays given.
pub fn merge_with(
    base: &Value,
    ours: &Value,
    theirs: &Value,
    rule: MergeRule,
    identity: &Identity,
    budget: &mut Budget,
) -> Result<MergeOutcome> {
    let mut conflicts = Vec::new();
    let merged = merge_at(
        String::new(),
        Some(base),
        Some(ours),
        Some(theirs),
        rule,
        &mut Cx {
            conflicts: &mut conflicts,
            budget,
            identity,
        },
    )?;
    if rule == MergeRule::Fail && !conflicts.is_empty() {
        return Err(Error::conflict(conflict_message(&conflicts)));
    }
    // Each side is present at the root, and a conflict resolves to one of them, so the merge of
    // the root is always present; `Null` is unreachable and only keeps this function total.
    Ok(MergeOutcome {
        merged: merged.unwrap_or(Value::Null),
        conflicts,
    })
}

/// `{"merged": ..., "conflicts": [...]}`, the shape the SQL and HTTP layers return.
pub fn merge_outcome_to_value(outcome: &MergeOutcome) -> Value {
    let mut map = Map::new();
    map.insert("merged".to_owned(), outcome.merged.clone());
    map.insert(
        "conflicts".to_owned(),
        Value::Array(outcome.conflicts.iter().map(conflict_to_value).collect()),
    );
    Value::Object(map)
}

fn conflict_to_value(c: &Conflict) -> Value {
    let mut map = Map::new();
    map.insert("path".to_owned(), Value::String(c.path.clone()));
    for (key, side) in [("base", &c.base), ("ours", &c.ours), ("theirs", &c.theirs)] {
        if let Some(v) = side {
            map.insert(key.to_owned(), v.clone());
        }
    }
    map.insert(
        "resolution".to_owned(),
        Value::String(c.resolution.to_owned()),
    );
    Value::Object(map)
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    let shown: Vec<String> = conflicts
        .iter()
        .take(MAX_PATHS_IN_ERROR)
        .map(|c| {
            if c.path.is_empty() {
                "(the whole document)".to_owned()
            } else {
                format!("{:?}", c.path)
            }
        })
        .collect();
    let more = conflicts.len().saturating_sub(MAX_PATHS_IN_ERROR);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "merge has {} conflicting path(s): {}{tail}; merge with rule \"ours\" or \"theirs\" to resolve them",
        conflicts.len(),
        shown.join(", ")
    )
}

fn opt_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => value_eq(x, y),
        _ => false,
    }
}

/// What a merge collects as it goes: the conflicts, and what it may still spend.
struct Cx<'a> {
    conflicts: &'a mut Vec<Conflict>,
    budget: &'a mut Budget,
    identity: &'a Identity,
}

/// Merges one path; `None` means absent (in the inputs) or deleted (in the result).
fn merge_at(
    path: String,
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    rule: MergeRule,
    cx: &mut Cx<'_>,
) -> Result<Option<Value>> {
    // The comparisons below walk the values at this path: charge their size (ours is the
    // largest share of the work, and a deep document pays once per level).
    cx.budget.work(1)?;
    if let Some(o) = ours {
        cx.budget.visit(o)?;
    }
    if opt_eq(ours, theirs) || opt_eq(theirs, base) {
        return Ok(ours.cloned());
    }
    if opt_eq(ours, base) {
        return Ok(theirs.cloned());
    }
    match (base, ours, theirs) {
        (None | Some(Value::Object(_)), Some(Value::Object(o)), Some(Value::Object(t))) => {
            let empty = Map::new();
            let b = match base {
                Some(Value::Object(b)) => b,
                _ => &empty,
            };
            return Ok(Some(Value::Object(merge_objects(
                &path, b, o, t, rule, cx,
            )?)));
        }
        (None | Some(Value::Array(_)), Some(Value::Array(o)), Some(Value::Array(t))) => {
            let empty = Vec::new();
            let b = match base {
                Some(Value::Array(b)) => b,
                _ => &empty,
            };
            let key = cx.identity.member(&path).to_owned();
            if let (Some(bk), Some(ok), Some(tk)) = (keyed(b, &key), keyed(o, &key), keyed(t, &key))
            {
                return Ok(Some(Value::Array(merge_keyed(
                    &path,
                    (b, &bk),
                    (o, &ok),
                    (t, &tk),
                    rule,
                    cx,
                )?)));
            }
            if base.is_some() {
                if let Some(merged) = merge_appends(b, o, t) {
                    return Ok(Some(Value::Array(merged)));
                }
            }
        }
        _ => {}
    }
    // Fail also records ours, only so the caller can list every conflicting path.
    let (resolution, merged) = match rule {
        MergeRule::Theirs => ("theirs", theirs.cloned()),
        MergeRule::Ours | MergeRule::Fail => ("ours", ours.cloned()),
    };
    cx.conflicts.push(Conflict {
        path,
        base: base.cloned(),
        ours: ours.cloned(),
        theirs: theirs.cloned(),
        resolution,
    });
    Ok(merged)
}

fn merge_objects(
    path: &str,
    base: &Map<String, Value>,
    ours: &Map<String, Value>,
    theirs: &Map<String, Value>,
    rule: MergeRule,
    cx: &mut Cx<'_>,
) -> Result<Map<String, Value>> {
    // Keys only in base were deleted on both sides, so the union of ours and theirs covers
    // every key that can survive; ours' order first keeps the output independent of map hashing.
    let keys = ours
        .keys()
        .chain(theirs.keys().filter(|k| !ours.contains_key(*k)));
    let mut out = Map::new();
    for key in keys {
        let merged = merge_at(
            push_token(path, key),
            base.get(key),
            ours.get(key),
            theirs.get(key),
            rule,
            cx,
        )?;
        if let Some(v) = merged {
            out.insert(key.clone(), v);
        }
    }
    Ok(out)
}

/// The identities of an array's elements, in order, and where each one is.
struct Ids {
    order: Vec<String>,
    at: std::collections::HashMap<String, usize>,
}

impl Ids {
    fn get<'v>(&self, id: &str, items: &'v [Value]) -> Option<&'v Value> {
        self.at.get(id).map(|&i| &items[i])
    }
}

/// The identity of each element of `items` (its `key` member as text), when every element is
/// an object with a string or number there and no two share one; `None` otherwise.
fn keyed(items: &[Value], key: &str) -> Option<Ids> {
    let mut ids = Ids {
        order: Vec::with_capacity(items.len()),
        at: std::collections::HashMap::with_capacity(items.len()),
    };
    for (i, item) in items.iter().enumerate() {
        let id = match item.as_object()?.get(key)? {
            Value::String(s) => format!("s{s}"),
            Value::Number(n) => format!("n{n}"),
            _ => return None,
        };
        if ids.at.insert(id.clone(), i).is_some() {
            return None;
        }
        ids.order.push(id);
    }
    Some(ids)
}

type Keyed<'a> = (&'a [Value], &'a Ids);

/// Merges arrays element by element, pairing elements by identity: ours' elements in ours'
/// order, then theirs' that ours does not have. Each pair merges like any other value, so a
/// deletion on one side meets an edit on the other as a conflict at that element (its path is
/// its index in the side that has it).
fn merge_keyed(
    path: &str,
    (base, bk): Keyed<'_>,
    (ours, ok): Keyed<'_>,
    (theirs, tk): Keyed<'_>,
    rule: MergeRule,
    cx: &mut Cx<'_>,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(ours.len().max(theirs.len()));
    for (i, (o, id)) in ours.iter().zip(&ok.order).enumerate() {
        let merged = merge_at(
            push_token(path, &i.to_string()),
            bk.get(id, base),
            Some(o),
            tk.get(id, theirs),
            rule,
            cx,
        )?;
        out.extend(merged);
    }
    for (i, (t, id)) in theirs.iter().zip(&tk.order).enumerate() {
        if ok.at.contains_key(id) {
            continue;
        }
        let merged = merge_at(
            push_token(path, &i.to_string()),
            bk.get(id, base),
            None,
            Some(t),
            rule,
            cx,
        )?;
        out.extend(merged);
    }
    Ok(out)
}

/// The elements `side` appended to `base`, if `side` only appended.
fn appended<'a>(base: &[Value], side: &'a [Value]) -> Option<&'a [Value]> {
    let starts_with_base =
        side.len() >= base.len() && base.iter().zip(side).all(|(b, s)| value_eq(b, s));
    starts_with_base.then(|| &side[base.len()..])
}

fn is_prefix(short: &[Value], long: &[Value]) -> bool {
    short.len() <= long.len() && short.iter().zip(long).all(|(a, b)| value_eq(a, b))
}

/// Both sides only appended to `base`: base + ours' tail + theirs' tail, without repeating a
/// tail that the other side's tail starts with.
fn merge_appends(base: &[Value], ours: &[Value], theirs: &[Value]) -> Option<Vec<Value>> {
    let o = appended(base, ours)?;
    let t = appended(base, theirs)?;
    if is_prefix(o, t) {
        return Some(theirs.to_vec());
    }
    if is_prefix(t, o) {
        return Some(ours.to_vec());
    }
    let mut merged = ours.to_vec();
    merged.extend_from_slice(t);
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_str;
    use serde_json::json;

    fn m(b: Value, o: Value, t: Value, rule: MergeRule) -> MergeOutcome {
        merge(&b, &o, &t, rule, &mut Budget::default()).unwrap()
    }

    #[test]
    fn rules_parse_case_insensitively() {
        assert_eq!("OURS".parse::<MergeRule>().unwrap(), MergeRule::Ours);
        assert_eq!("Theirs".parse::<MergeRule>().unwrap(), MergeRule::Theirs);
        assert_eq!("fail".parse::<MergeRule>().unwrap(), MergeRule::Fail);
        let err = "mine".parse::<MergeRule>().unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidInput);
        assert!(err.message.contains("\"ours\", \"theirs\", \"fail\""));
        for rule in MergeRule::ALL {
            assert_eq!(rule.as_str().parse::<MergeRule>().unwrap(), rule);
        }
    }

    #[test]
    fn disjoint_keys_merge_cleanly() {
        let out = m(
            json!({"a": 1, "b": {"x": 1, "y": 2}, "gone": true}),
            json!({"a": 2, "b": {"x": 1, "y": 2}}),
            json!({"a": 1, "b": {"x": 1, "y": 3}, "gone": true, "new": []}),
            MergeRule::Fail,
        );
        assert!(out.is_clean());
        assert_eq!(
            out.merged,
            json!({"a": 2, "b": {"x": 1, "y": 3}, "new": []})
        );
    }

    #[test]
    fn delete_against_modify_conflicts() {
        let out = m(json!({"k": 1}), json!({}), json!({"k": 2}), MergeRule::Ours);
        assert_eq!(out.merged, json!({}));
        assert_eq!(
            merge_outcome_to_value(&out),
            json!({"merged": {}, "conflicts": [
                {"path": "/k", "base": 1, "theirs": 2, "resolution": "ours"}
            ]})
        );
        let out = m(
            json!({"k": 1}),
            json!({}),
            json!({"k": 2}),
            MergeRule::Theirs,
        );
        assert_eq!(out.merged, json!({"k": 2}));
    }

    #[test]
    fn numbers_compare_by_value() {
        let b = parse_str(r#"{"n": 1, "m": 5}"#).unwrap();
        let o = parse_str(r#"{"n": 1.0, "m": 6}"#).unwrap();
        let t = parse_str(r#"{"n": 1e0, "m": 5.0}"#).unwrap();
        let out = merge(&b, &o, &t, MergeRule::Fail, &mut Budget::default()).unwrap();
        assert!(value_eq(&out.merged, &json!({"n": 1, "m": 6})));
    }

    #[test]
    fn added_objects_merge_field_by_field() {
        let out = m(
            json!({}),
            json!({"memory": {"pins": [1]}}),
            json!({"memory": {"episodic": [2]}}),
            MergeRule::Fail,
        );
        assert_eq!(
            out.merged,
            json!({"memory": {"pins": [1], "episodic": [2]}})
        );
    }

    #[test]
    fn appends_combine() {
        let out = m(json!([1]), json!([1, 2]), json!([1, 3, 4]), MergeRule::Fail);
        assert_eq!(out.merged, json!([1, 2, 3, 4]));
        let out = m(json!([1]), json!([1, 2]), json!([1, 2, 3]), MergeRule::Fail);
        assert_eq!(out.merged, json!([1, 2, 3]));
        let out = m(
            json!([1, 2]),
            json!([1]),
            json!([1, 2, 3]),
            MergeRule::Theirs,
        );
        assert_eq!(out.merged, json!([1, 2, 3]));
        assert_eq!(out.conflicts.len(), 1);
    }

    #[test]
    fn fail_lists_paths() {
        let err = merge(
            &json!({"a": 1, "b/c": 1, "d": 1}),
            &json!({"a": 2, "b/c": 2, "d": 1}),
            &json!({"a": 3, "b/c": 3, "d": 1}),
            MergeRule::Fail,
            &mut Budget::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Conflict);
        assert!(err.message.contains("2 conflicting"), "{}", err.message);
        assert!(err.message.contains(r#""/a", "/b~1c""#), "{}", err.message);
        let err = merge(
            &json!(1),
            &json!(2),
            &json!("x"),
            MergeRule::Fail,
            &mut Budget::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("whole document"), "{}", err.message);
    }
}
