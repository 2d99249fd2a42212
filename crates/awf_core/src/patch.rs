//! RFC 6902 JSON Patch: parsing, applying (atomically) and pointer lookup.
//!
//! [`apply_in_place`] and [`apply_ops`] keep an undo log of inverse operations instead of
//! cloning the document, so a small patch on a 200 KB state costs only what it touches, and a
//! failing patch is rolled back to exactly the input.
//!
//! Every operation is charged to a [`Budget`]: its pointer walk, the elements an array insert
//! or removal shifts, and every value it adds or copies. A patch of `copy` operations that
//! doubles the document each time therefore stops at `awf.max_built_nodes` or
//! `awf.max_built_mb` (54000) after a few steps, instead of exhausting memory. Every value put
//! somewhere is also checked against [`MAX_DEPTH`] where it lands: a `copy` or `move` into a
//! deep path can double the document's depth with each step, and a value nested thousands of
//! levels deep overflows the stack of whatever walks it next.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::json::{
    array_index, brief, escape_token, pointer_tokens, type_name, value_eq, MAX_DEPTH,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::mem;

/// One RFC 6902 operation; serializes to its RFC shape (`{"op":"add","path":..,"value":..}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// Adds (or, for an object member, overwrites) `value` at `path`.
    Add { path: String, value: Value },
    /// Removes the value at `path`.
    Remove { path: String },
    /// Replaces the existing value at `path`.
    Replace { path: String, value: Value },
    /// Removes the value at `from` and adds it at `path`.
    Move { from: String, path: String },
    /// Adds a copy of the value at `from` at `path`.
    Copy { from: String, path: String },
    /// Fails the patch unless the value at `path` equals `value` (numbers by value).
    Test { path: String, value: Value },
}

impl Op {
    /// The RFC name of the operation (`"add"`, `"remove"`, ...).
    pub fn name(&self) -> &'static str {
        self.as_ref().name()
    }

    /// The target path of the operation.
    pub fn path(&self) -> &str {
        self.as_ref().path()
    }

    /// The operation as a JSON object in RFC shape.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// Converts the operation into a JSON object in RFC shape without cloning its value.
    pub fn into_value(self) -> Value {
        let name = self.name();
        let mut m = Map::new();
        m.insert("op".into(), Value::String(name.into()));
        match self {
            Op::Add { path, value } | Op::Replace { path, value } | Op::Test { path, value } => {
                m.insert("path".into(), Value::String(path));
                m.insert("value".into(), value);
            }
            Op::Remove { path } => {
                m.insert("path".into(), Value::String(path));
            }
            Op::Move { from, path } | Op::Copy { from, path } => {
                m.insert("from".into(), Value::String(from));
                m.insert("path".into(), Value::String(path));
            }
        }
        Value::Object(m)
    }

    fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Add { path, value } => OpRef::Add { path, value },
            Op::Remove { path } => OpRef::Remove { path },
            Op::Replace { path, value } => OpRef::Replace { path, value },
            Op::Move { from, path } => OpRef::Move { from, path },
            Op::Copy { from, path } => OpRef::Copy { from, path },
            Op::Test { path, value } => OpRef::Test { path, value },
        }
    }
}

/// Converts typed operations into an RFC 6902 patch document (a JSON array).
pub fn ops_to_value(ops: &[Op]) -> Value {
    Value::Array(ops.iter().map(Op::to_value).collect())
}

/// Like [`ops_to_value`], but consumes the operations so their values are moved, not cloned.
pub fn ops_into_value(ops: Vec<Op>) -> Value {
    Value::Array(ops.into_iter().map(Op::into_value).collect())
}

/// Parses an RFC 6902 patch document into typed operations, rejecting malformed ones.
pub fn parse_patch(patch: &Value) -> Result<Vec<Op>> {
    Ok(parse_refs(patch)?.into_iter().map(OpRef::to_op).collect())
}

/// Applies a patch document to a copy of `doc` and returns the result; `doc` is never changed.
pub fn apply(doc: &Value, patch: &Value, budget: &mut Budget) -> Result<Value> {
    let ops = parse_refs(patch)?;
    let mut out = doc.clone();
    // The copy is thrown away on error, so no undo log is needed.
    run(&mut out, ops.into_iter(), false, budget)?;
    Ok(out)
}

/// Applies a patch document to `doc` in place; on error `doc` is left exactly as it was.
pub fn apply_in_place(doc: &mut Value, patch: &Value, budget: &mut Budget) -> Result<()> {
    let ops = parse_refs(patch)?;
    run(doc, ops.into_iter(), true, budget)
}

/// Applies typed operations to `doc` in place; on error `doc` is left exactly as it was.
pub fn apply_ops(doc: &mut Value, ops: &[Op], budget: &mut Budget) -> Result<()> {
    run(doc, ops.iter().map(Op::as_ref), true, budget)
}

/// Looks up a JSON Pointer (RFC 6901) in `doc`, with an error naming what is missing.
pub fn get<'a>(doc: &'a Value, pointer: &str) -> Result<&'a Value> {
    let tokens = pointer_tokens(pointer)?;
    walk(doc, &tokens).map_err(|e| Error::invalid(format!("JSON pointer {pointer:?}: {e}")))
}

/// A borrowed operation, so applying a patch document does not clone values twice.
#[derive(Clone, Copy)]
enum OpRef<'a> {
    Add { path: &'a str, value: &'a Value },
    Remove { path: &'a str },
    Replace { path: &'a str, value: &'a Value },
    Move { from: &'a str, path: &'a str },
    Copy { from: &'a str, path: &'a str },
    Test { path: &'a str, value: &'a Value },
}

impl<'a> OpRef<'a> {
    fn name(self) -> &'static str {
        match self {
            OpRef::Add { .. } => "add",
            OpRef::Remove { .. } => "remove",
            OpRef::Replace { .. } => "replace",
            OpRef::Move { .. } => "move",
            OpRef::Copy { .. } => "copy",
            OpRef::Test { .. } => "test",
        }
    }

    fn path(self) -> &'a str {
        match self {
            OpRef::Add { path, .. }
            | OpRef::Remove { path }
            | OpRef::Replace { path, .. }
            | OpRef::Move { path, .. }
            | OpRef::Copy { path, .. }
            | OpRef::Test { path, .. } => path,
        }
    }

    fn to_op(self) -> Op {
        match self {
            OpRef::Add { path, value } => Op::Add {
                path: path.into(),
                value: value.clone(),
            },
            OpRef::Remove { path } => Op::Remove { path: path.into() },
            OpRef::Replace { path, value } => Op::Replace {
                path: path.into(),
                value: value.clone(),
            },
            OpRef::Move { from, path } => Op::Move {
                from: from.into(),
                path: path.into(),
            },
            OpRef::Copy { from, path } => Op::Copy {
                from: from.into(),
                path: path.into(),
            },
            OpRef::Test { path, value } => Op::Test {
                path: path.into(),
                value: value.clone(),
            },
        }
    }
}

fn parse_refs(patch: &Value) -> Result<Vec<OpRef<'_>>> {
    let ops = patch.as_array().ok_or_else(|| {
        Error::invalid(format!(
            "a JSON Patch must be an array of operations, not {}",
            type_name(patch)
        ))
    })?;
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            parse_one(op).map_err(|e| Error::invalid(format!("patch operation {i}: {e}")))
        })
        .collect()
}

fn parse_one(op: &Value) -> Result<OpRef<'_>, String> {
    let obj = op
        .as_object()
        .ok_or_else(|| format!("must be an object, not {}", type_name(op)))?;
    let string = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "'{name}' must be a string, not {}",
            type_name(other)
        )),
        None => Err(format!("missing '{name}' member")),
    };
    let value = || {
        obj.get("value")
            .ok_or_else(|| "missing 'value' member".to_owned())
    };
    Ok(match string("op")? {
        "add" => OpRef::Add {
            path: string("path")?,
            value: value()?,
        },
        "remove" => OpRef::Remove {
            path: string("path")?,
        },
        "replace" => OpRef::Replace {
            path: string("path")?,
            value: value()?,
        },
        "move" => OpRef::Move {
            from: string("from")?,
            path: string("path")?,
        },
        "copy" => OpRef::Copy {
            from: string("from")?,
            path: string("path")?,
        },
        "test" => OpRef::Test {
            path: string("path")?,
            value: value()?,
        },
        other => return Err(format!("unknown op {other:?}")),
    })
}

fn run<'a>(
    doc: &mut Value,
    ops: impl Iterator<Item = OpRef<'a>>,
    record: bool,
    budget: &mut Budget,
) -> Result<()> {
    let mut log: Vec<Undo> = Vec::new();
    for (i, op) in ops.enumerate() {
        let outcome = match step(doc, op, budget) {
            Ok(Some(u)) if record => {
                log.push(u);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(Failure::Invalid(e)) => Err(Error::invalid(format!(
                "patch operation {i} ({}) at path {:?}: {e}",
                op.name(),
                op.path()
            ))),
            Err(Failure::Budget(e)) => Err(Error::limit(format!(
                "patch operation {i} ({}) at path {:?}: {e}",
                op.name(),
                op.path()
            ))),
        };
        if let Err(e) = outcome {
            for u in log.into_iter().rev() {
                undo(doc, u);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Why one operation failed: the patch does not fit the document, or it costs too much.
enum Failure {
    Invalid(String),
    Budget(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Invalid(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::Invalid(e.to_owned())
    }
}

/// Charges an operation's pointer walk and, for an array position, the elements an insert or
/// removal shifts there.
fn charge(budget: &mut Budget, doc: &Value, loc: &Loc) -> Result<(), Failure> {
    let shifted = match (&loc.last, walk(doc, &loc.parent)) {
        (Last::Index(i), Ok(Value::Array(a))) => a.len().saturating_sub(*i) as u64,
        _ => 0,
    };
    budget
        .work(1 + loc.parent.len() as u64 + shifted)
        .map_err(|e| Failure::Budget(e.message))
}

/// Charges a copy of `v` that is to land at `loc`, and refuses it if it would nest too deep.
fn charge_copy(budget: &mut Budget, v: &Value, loc: &Loc) -> Result<(), Failure> {
    let size = budget
        .build_copy_of(v)
        .map_err(|e| Failure::Budget(e.message))?;
    check_depth(loc, size.depth)
}

/// Refuses a value `depth` levels deep landing at `loc` if the document would then nest
/// deeper than [`MAX_DEPTH`].
fn check_depth(loc: &Loc, depth: usize) -> Result<(), Failure> {
    let at = loc.parent.len() + usize::from(!matches!(loc.last, Last::Root));
    if at + depth > MAX_DEPTH {
        return Err(Failure::Budget(format!(
            "the document would nest {} levels deep, more than the {MAX_DEPTH} allowed",
            at + depth
        )));
    }
    Ok(())
}

/// Where a value sits: the parent's pointer tokens and the concrete member or index.
struct Loc {
    parent: Vec<String>,
    last: Last,
}

enum Last {
    Root,
    Key(String),
    Index(usize),
}

/// The inverse of one applied operation; applied newest first, each sees the document exactly
/// as its operation left it, so its location is still valid.
enum Undo {
    /// Undoes an add or copy: take the added value out, put back what it overwrote.
    Add {
        loc: Loc,
        displaced: Option<Value>,
    },
    Remove {
        loc: Loc,
        value: Value,
    },
    Replace {
        loc: Loc,
        old: Value,
    },
    Move {
        from: Loc,
        to: Loc,
        displaced: Option<Value>,
    },
}

fn step(doc: &mut Value, op: OpRef<'_>, budget: &mut Budget) -> Result<Option<Undo>, Failure> {
    match op {
        OpRef::Add { path, value } => {
            let loc = locate_add(doc, tokens(path)?)?;
            charge(budget, doc, &loc)?;
            charge_copy(budget, value, &loc)?;
            let displaced = insert_at(doc, &loc, value.clone());
            Ok(Some(Undo::Add { loc, displaced }))
        }
        OpRef::Remove { path } => {
            let loc = locate_existing(doc, tokens(path)?)?;
            if let Last::Root = loc.last {
                return Err("cannot remove the whole document".into());
            }
            charge(budget, doc, &loc)?;
            let value = take_at(doc, &loc).ok_or("internal: located value vanished")?;
            Ok(Some(Undo::Remove { loc, value }))
        }
        OpRef::Replace { path, value } => {
            let loc = locate_existing(doc, tokens(path)?)?;
            charge(budget, doc, &loc)?;
            charge_copy(budget, value, &loc)?;
            let slot = slot_mut(doc, &loc).ok_or("internal: located value vanished")?;
            let old = mem::replace(slot, value.clone());
            Ok(Some(Undo::Replace { loc, old }))
        }
        OpRef::Move { from, path } => {
            let ft = tokens(from).map_err(|e| format!("from: {e}"))?;
            let pt = tokens(path)?;
            if ft.len() < pt.len() && pt[..ft.len()] == ft[..] {
                return Err(format!("cannot move {from:?} into its own child {path:?}").into());
            }
            if ft == pt {
                walk(doc, &ft).map_err(|e| format!("from: {e}"))?;
                return Ok(None);
            }
            let from_loc = locate_existing(doc, ft).map_err(|e| format!("from: {e}"))?;
            charge(budget, doc, &from_loc)?;
            // `from` is a proper ancestor of nothing here, and is not the root (the root is an
            // ancestor of every other path), so it can be taken out.
            let value = take_at(doc, &from_loc).ok_or("internal: located value vanished")?;
            // The target is resolved after the removal, as RFC 6902 §4.4 specifies.
            match locate_add(doc, pt) {
                Ok(to) => {
                    let fits = charge(budget, doc, &to).and_then(|()| {
                        let size = budget
                            .visit(&value)
                            .map_err(|e| Failure::Budget(e.message))?;
                        check_depth(&to, size.depth)
                    });
                    if let Err(e) = fits {
                        insert_at(doc, &from_loc, value);
                        return Err(e);
                    }
                    let displaced = insert_at(doc, &to, value);
                    Ok(Some(Undo::Move {
                        from: from_loc,
                        to,
                        displaced,
                    }))
                }
                Err(e) => {
                    insert_at(doc, &from_loc, value);
                    Err(e.into())
                }
            }
        }
        OpRef::Copy { from, path } => {
            let ft = tokens(from).map_err(|e| format!("from: {e}"))?;
            let source = walk(doc, &ft).map_err(|e| format!("from: {e}"))?;
            let loc = locate_add(doc, tokens(path)?)?;
            charge(budget, doc, &loc)?;
            // Sized before it is cloned: this is the operation that can double a document.
            charge_copy(budget, source, &loc)?;
            let value = source.clone();
            let displaced = insert_at(doc, &loc, value);
            Ok(Some(Undo::Add { loc, displaced }))
        }
        OpRef::Test { path, value } => {
            let actual = walk(doc, &tokens(path)?)?;
            // Comparing stops at the first difference, so it costs at most the input's value.
            budget
                .visit(value)
                .map_err(|e| Failure::Budget(e.message))?;
            if value_eq(actual, value) {
                Ok(None)
            } else {
                Err(format!(
                    "test failed: found {}, expected {}",
                    brief(actual),
                    brief(value)
                )
                .into())
            }
        }
    }
}

fn undo(doc: &mut Value, u: Undo) {
    match u {
        Undo::Add { loc, displaced } => {
            take_at(doc, &loc);
            if let Some(d) = displaced {
                insert_at(doc, &loc, d);
            }
        }
        Undo::Remove { loc, value } => {
            insert_at(doc, &loc, value);
        }
        Undo::Replace { loc, old } => {
            if let Some(slot) = slot_mut(doc, &loc) {
                *slot = old;
            }
        }
        Undo::Move {
            from,
            to,
            displaced,
        } => {
            let value = take_at(doc, &to);
            if let Some(d) = displaced {
                insert_at(doc, &to, d);
            }
            if let Some(v) = value {
                insert_at(doc, &from, v);
            }
        }
    }
}

fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    pointer_tokens(pointer).map_err(|e| e.message)
}

/// Resolves where an `add` would put its value: the parent must exist and be a container;
/// `-` and an index equal to the length both mean append.
fn locate_add(doc: &Value, mut tokens: Vec<String>) -> Result<Loc, String> {
    let Some(last) = tokens.pop() else {
        return Ok(Loc {
            parent: tokens,
            last: Last::Root,
        });
    };
    let last = match walk(doc, &tokens)? {
        Value::Object(_) => Last::Key(last),
        Value::Array(a) => {
            if last == "-" {
                Last::Index(a.len())
            } else {
                match array_index(&last) {
                    Some(i) if i <= a.len() => Last::Index(i),
                    Some(i) => {
                        return Err(format!(
                            "index {i} is out of bounds (array length {})",
                            a.len()
                        ))
                    }
                    None => return Err(format!("{last:?} is not a valid array index")),
                }
            }
        }
        other => {
            return Err(format!(
                "{} is {}, not an object or array",
                show(&tokens, tokens.len()),
                type_name(other)
            ))
        }
    };
    Ok(Loc {
        parent: tokens,
        last,
    })
}

/// Resolves the location of a value that must already exist.
fn locate_existing(doc: &Value, mut tokens: Vec<String>) -> Result<Loc, String> {
    let Some(last) = tokens.pop() else {
        return Ok(Loc {
            parent: tokens,
            last: Last::Root,
        });
    };
    let last = match walk(doc, &tokens)? {
        Value::Object(m) if m.contains_key(&last) => Last::Key(last),
        Value::Object(_) => {
            tokens.push(last);
            return Err(format!("{} does not exist", show(&tokens, tokens.len())));
        }
        Value::Array(a) => Last::Index(index_in(&last, a.len())?),
        other => {
            return Err(format!(
                "{} is {}, not an object or array",
                show(&tokens, tokens.len()),
                type_name(other)
            ))
        }
    };
    Ok(Loc {
        parent: tokens,
        last,
    })
}

fn index_in(token: &str, len: usize) -> Result<usize, String> {
    match array_index(token) {
        Some(i) if i < len => Ok(i),
        Some(i) => Err(format!("index {i} is out of bounds (array length {len})")),
        None => Err(format!("{token:?} is not a valid array index")),
    }
}

fn walk<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for (n, tok) in tokens.iter().enumerate() {
        cur = match cur {
            Value::Object(m) => m
                .get(tok)
                .ok_or_else(|| format!("{} does not exist", show(tokens, n + 1)))?,
            Value::Array(a) => {
                &a[index_in(tok, a.len()).map_err(|e| format!("{}: {e}", show(tokens, n + 1)))?]
            }
            other => {
                return Err(format!(
                    "{} is {}, not an object or array",
                    show(tokens, n),
                    type_name(other)
                ))
            }
        };
    }
    Ok(cur)
}

/// Navigates a path that was validated earlier (by a locate or by the op being undone).
fn walk_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for tok in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(tok)?,
            Value::Array(a) => a.get_mut(array_index(tok)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn slot_mut<'a>(doc: &'a mut Value, loc: &Loc) -> Option<&'a mut Value> {
    let parent = walk_mut(doc, &loc.parent)?;
    match (&loc.last, parent) {
        (Last::Root, p) => Some(p),
        (Last::Key(k), Value::Object(m)) => m.get_mut(k),
        (Last::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    }
}

/// Inserts (array) or sets (object member, root) and returns what was overwritten.
fn insert_at(doc: &mut Value, loc: &Loc, value: Value) -> Option<Value> {
    let parent = walk_mut(doc, &loc.parent)?;
    match (&loc.last, parent) {
        (Last::Root, p) => Some(mem::replace(p, value)),
        (Last::Key(k), Value::Object(m)) => m.insert(k.clone(), value),
        (Last::Index(i), Value::Array(a)) if *i <= a.len() => {
            a.insert(*i, value);
            None
        }
        _ => None,
    }
}

fn take_at(doc: &mut Value, loc: &Loc) -> Option<Value> {
    let parent = walk_mut(doc, &loc.parent)?;
    match (&loc.last, parent) {
        (Last::Root, p) => Some(mem::take(p)),
        (Last::Key(k), Value::Object(m)) => m.remove(k),
        (Last::Index(i), Value::Array(a)) if *i < a.len() => Some(a.remove(*i)),
        _ => None,
    }
}

/// Names the first `n` tokens as a pointer for error messages.
fn show(tokens: &[String], n: usize) -> String {
    if n == 0 {
        return "the document root".into();
    }
    let mut p = String::new();
    for t in &tokens[..n] {
        p.push('/');
        p.push_str(&escape_token(t));
    }
    format!("{p:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use serde_json::json;

    #[test]
    fn applies_basic_ops() {
        let doc = json!({"a": [1, 2, 3], "b": {"c": 1}});
        let patch = json!([
            {"op": "add", "path": "/a/-", "value": 4},
            {"op": "add", "path": "/a/0", "value": 0},
            {"op": "remove", "path": "/a/1"},
            {"op": "replace", "path": "/b/c", "value": "x"},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "copy", "from": "/a", "path": "/b/a"},
            {"op": "test", "path": "/a/3", "value": 4.0}
        ]);
        let out = apply(&doc, &patch, &mut Budget::default()).unwrap();
        assert_eq!(
            out,
            json!({"a": [0, 2, 3, 4], "b": {"a": [0, 2, 3, 4]}, "d": "x"})
        );
    }

    #[test]
    fn rolls_back_on_error() {
        let orig = json!({"a": [1, 2, 3], "b": {"c": 1}, "e": {"f": [true]}});
        let patch = json!([
            {"op": "add", "path": "/a/1", "value": 9},
            {"op": "remove", "path": "/a/0"},
            {"op": "replace", "path": "", "value": {"z": [1]}},
            {"op": "add", "path": "/z/0", "value": 7},
            {"op": "replace", "path": "", "value": orig.clone()},
            {"op": "move", "from": "/b/c", "path": "/a/0"},
            {"op": "move", "from": "/a", "path": "/e/f"},
            {"op": "copy", "from": "/e", "path": "/b/c"},
            {"op": "add", "path": "/b", "value": null},
            {"op": "test", "path": "/b", "value": 1}
        ]);
        let mut doc = orig.clone();
        let err = apply_in_place(&mut doc, &patch, &mut Budget::default()).unwrap_err();
        assert!(err.message.contains("operation 9 (test)"), "{err}");
        assert_eq!(doc, orig);
    }

    #[test]
    fn move_failure_after_removal_restores() {
        let orig = json!({"a": [1, 2]});
        let mut doc = orig.clone();
        let p = json!([{"op": "move", "from": "/a/0", "path": "/a/2"}]);
        assert!(apply_in_place(&mut doc, &p, &mut Budget::default()).is_err());
        assert_eq!(doc, orig);
    }

    #[test]
    fn rejects_move_into_own_child_and_bad_ops() {
        let doc = json!({"a": {"b": 1}});
        let p = json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]);
        assert!(apply(&doc, &p, &mut Budget::default()).is_err());
        let p = json!([{"op": "move", "from": "/a", "path": "/a"}]);
        assert_eq!(apply(&doc, &p, &mut Budget::default()).unwrap(), doc);
        assert!(apply(
            &doc,
            &json!([{"op": "nope", "path": ""}]),
            &mut Budget::default()
        )
        .is_err());
        assert!(apply(
            &doc,
            &json!([{"op": "add", "path": "/x"}]),
            &mut Budget::default()
        )
        .is_err());
        assert!(apply(&doc, &json!({"op": "add"}), &mut Budget::default()).is_err());
        let extra = json!([{"op": "remove", "path": "/a", "value": 1, "x": 2}]);
        assert_eq!(
            apply(&doc, &extra, &mut Budget::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn typed_ops_round_trip() {
        let patch = json!([
            {"op": "add", "path": "/a", "value": [1]},
            {"op": "move", "from": "/a", "path": "/b"},
            {"op": "remove", "path": "/b"}
        ]);
        let ops = parse_patch(&patch).unwrap();
        assert_eq!(ops_to_value(&ops), patch);
        assert_eq!(serde_json::to_value(&ops).unwrap(), patch);
        let mut doc = json!({});
        apply_ops(&mut doc, &ops, &mut Budget::default()).unwrap();
        assert_eq!(doc, json!({}));
    }

    #[test]
    fn get_reports_missing() {
        let doc = json!({"a": [{"b~/": 1}]});
        assert_eq!(get(&doc, "/a/0/b~0~1").unwrap(), &json!(1));
        let e = get(&doc, "/a/1").unwrap_err();
        assert!(e.message.contains("out of bounds"), "{e}");
        assert!(get(&doc, "/x/y").unwrap_err().message.contains("\"/x\""));
    }
}
