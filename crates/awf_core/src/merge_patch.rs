//! RFC 7396 JSON Merge Patch: apply, and compute a merge patch between two documents.
//!
//! A merge patch cannot set a member to `null` (null means "delete"), so [`merge_patch_diff`]
//! fails when the target needs such a member; use [`crate::diff`] (RFC 6902) then.

use crate::error::{Error, Result};
use crate::json::{push_token, value_eq, Map};
use serde_json::Value;

/// Applies a merge patch to `target` and returns the result (RFC 7396 §2).
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let empty = Map::new();
    let t = match target {
        Value::Object(t) => t,
        _ => &empty,
    };
    let mut out = Map::new();
    // Members the patch does not mention are copied; the others are built from the patch, so
    // nothing that is about to be replaced is cloned.
    for (k, v) in t {
        if !p.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, pv) in p {
        if !pv.is_null() {
            let tv = t.get(k).unwrap_or(&Value::Null);
            out.insert(k.clone(), merge_patch(tv, pv));
        }
    }
    Value::Object(out)
}

/// Applies a merge patch to `target` in place (RFC 7396 §2).
pub fn merge_patch_in_place(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        unreachable!("target was just made an object")
    };
    for (k, pv) in p {
        if pv.is_null() {
            t.remove(k);
        } else if let Some(tv) = t.get_mut(k) {
            merge_patch_in_place(tv, pv);
        } else {
            t.insert(k.clone(), merge_patch(&Value::Null, pv));
        }
    }
}

/// Computes a merge patch that turns `a` into `b`; fails when `b` has a `null` member that
/// the patch would have to write (a merge patch can only express that as a deletion).
pub fn merge_patch_diff(a: &Value, b: &Value) -> Result<Value> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = Map::new();
            diff_objects(x, y, "", &mut out)?;
            Ok(Value::Object(out))
        }
        // A non-object patch replaces the whole document, null included.
        (_, Value::Object(_)) => whole(b, ""),
        _ => Ok(b.clone()),
    }
}

fn diff_objects(
    x: &Map<String, Value>,
    y: &Map<String, Value>,
    path: &str,
    out: &mut Map<String, Value>,
) -> Result<()> {
    for k in x.keys() {
        if !y.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    for (k, vb) in y {
        let va = x.get(k);
        if va.is_some_and(|va| value_eq(va, vb)) {
            continue;
        }
        let here = push_token(path, k);
        let member = match (va, vb) {
            (_, Value::Null) => return Err(null_member(&here)),
            (Some(Value::Object(xa)), Value::Object(yb)) => {
                let mut sub = Map::new();
                diff_objects(xa, yb, &here, &mut sub)?;
                Value::Object(sub)
            }
            (_, Value::Object(_)) => whole(vb, &here)?,
            _ => vb.clone(),
        };
        out.insert(k.clone(), member);
    }
    Ok(())
}

/// `b` as a patch over a non-object: merging strips nulls from objects, so refuse those.
fn whole(b: &Value, path: &str) -> Result<Value> {
    if let Some(p) = find_object_null(b, path) {
        return Err(null_member(&p));
    }
    Ok(b.clone())
}

fn find_object_null(v: &Value, path: &str) -> Option<String> {
    let Value::Object(m) = v else { return None };
    m.iter().find_map(|(k, v)| {
        let here = push_token(path, k);
        if v.is_null() {
            Some(here)
        } else {
            find_object_null(v, &here)
        }
    })
}

fn null_member(path: &str) -> Error {
    Error::invalid(format!(
        "a merge patch cannot set {path:?} to null (null means delete); use a JSON Patch"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_rfc_example() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let p = json!({"a": "z", "c": {"f": null}});
        let want = json!({"a": "z", "c": {"d": "e"}});
        assert_eq!(merge_patch(&t, &p), want);
        let mut t2 = t.clone();
        merge_patch_in_place(&mut t2, &p);
        assert_eq!(t2, want);
    }

    #[test]
    fn diff_round_trips_and_refuses_nulls() {
        let a = json!({"a": 1, "b": {"c": [1, null], "d": 2}, "e": 5});
        let b = json!({"a": 1.0, "b": {"c": [null], "x": {"y": 1}}, "f": [1]});
        let p = merge_patch_diff(&a, &b).unwrap();
        assert_eq!(
            p,
            json!({"b": {"c": [null], "d": null, "x": {"y": 1}}, "e": null, "f": [1]})
        );
        assert!(value_eq(&merge_patch(&a, &p), &b));
        assert!(merge_patch_diff(&a, &json!({"a": null})).is_err());
        assert!(merge_patch_diff(&json!(1), &json!({"a": {"b": null}})).is_err());
        assert_eq!(merge_patch_diff(&a, &json!(null)).unwrap(), json!(null));
        assert_eq!(
            merge_patch_diff(&a, &json!({"a": 1})).unwrap(),
            json!({"b": null, "e": null})
        );
    }
}
