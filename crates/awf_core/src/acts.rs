//! Turn payloads and their acts: the default applier.
//!
//! A turn's `awf_raw` is `{"txt": ..., "acts": [...]}`; other members are ignored so a backend
//! can carry its own data along. `txt` is the narrative: one string of `\n`-separated lines or
//! an array of strings (absent or `null`: no lines). `acts` is the list of state changes (absent,
//! `null` or `[]`: the turn changes nothing).
//!
//! Acts, in the shapes [`parse_payload`](crate::acts::parse_payload) accepts and
//! [`acts_to_value`](crate::acts::acts_to_value) writes back:
//! - the six RFC 6902 operations (`add`, `remove`, `replace`, `move`, `copy`, `test`), parsed
//!   and applied by [`crate::patch`]; a failing `test` refuses the whole turn;
//! - `{"op":"increment","path":P,"by":N}`: the number at `P` (which must exist) grows by `N`
//!   (default 1); see "Arithmetic" below;
//! - `{"op":"append","path":P,"value":V}`: pushes `V` onto the array at `P`; a missing (or
//!   `null`) member of an existing object becomes `[V]`;
//! - `{"op":"merge","path":P,"value":OBJ}`: RFC 7396 merge patch of the object `OBJ` into the
//!   object at `P` (`null` members delete); a missing (or `null`) member of an existing object
//!   becomes `OBJ` without its `null` members. `P` may be `""`, the whole state;
//! - `{"op":"pin","text":T,"turn":N?}`: appends `{"text":T,"turn":N}` to `/memory/warm/pins`;
//! - `{"op":"remember","text":T,"salience":S?,"turn":N?}`: appends
//!   `{"text":T,"salience":S,"turn":N}` to `/memory/episodic`; `S` is a number in `[0, 1]`,
//!   default 0.5;
//! - `{"op":"objective","id":ID,"text":T?,"priority":P?,"status":S?}`: upserts into
//!   `/hot/objectives` by `id`. An existing objective keeps its position and gets the members
//!   the act gives (so `{"op":"objective","id":"q1","status":"done"}` closes it); a new one is
//!   appended as `{"id","text","priority","status"?}`, which needs `text`, with `priority`
//!   defaulting to 0. The first objective with that `id` is the one updated.
//!
//! `pin` and `remember` take the turn being applied unless they name one; `pin`, `remember` and
//! `objective` create `memory`, `memory.warm`, `hot` and the arrays as needed (a `null` section
//! counts as missing, as [`crate::recap::RecapInput::from_state`] reads it). Optional members
//! that are `null` count as absent. Texts and ids must not be blank. Paths are JSON Pointers.
//!
//! Arithmetic: `increment` never rounds. Two integers add as i64 with an overflow check; any
//! other pair adds as exact decimals (so `0.1 + 0.2` is `0.3`, not f64's
//! `0.30000000000000004`). A result that RFC 8785 cannot write back exactly (beyond ±2^53, or
//! more significant digits than a double holds) is refused rather than rounded, because the
//! state is hashed in its canonical form after every turn.
//!
//! Applying is all or nothing: the acts run on a copy of the state that replaces it only when
//! every act succeeded. A copy of a 20–200 KB state costs far less than the database round trip
//! of the turn, and it spares the custom acts an undo log of their own.

use crate::budget::Budget;
use crate::canonical::canonical_number;
use crate::error::{Error, Result};
use crate::json::{pointer_tokens, type_name, Map};
use crate::merge_patch::{merge_patch, merge_patch_in_place};
use crate::patch::{self, Op};
use serde::{Serialize, Serializer};
use serde_json::{Number, Value};
use std::str::FromStr;

/// Every `op` an act may name, in the order error messages list them.
pub const VALID_OPS: [&str; 12] = [
    "add",
    "remove",
    "replace",
    "move",
    "copy",
    "test",
    "increment",
    "append",
    "merge",
    "pin",
    "remember",
    "objective",
];

/// The salience a `remember` act gets when it names none.
pub const DEFAULT_SALIENCE: f64 = 0.5;

/// A parsed turn payload: the narrative lines and the acts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnPayload {
    /// The narrative lines (AWF.txt), in order.
    pub lines: Vec<String>,
    /// The state changes, in order.
    pub acts: Vec<Act>,
}

/// One state change of a turn; see the module documentation for the JSON shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// One of the six RFC 6902 operations.
    Patch(Op),
    /// Adds `by` to the number at `path`.
    Increment { path: String, by: Number },
    /// Pushes `value` onto the array at `path`, creating `[value]` when the member is missing.
    Append { path: String, value: Value },
    /// Merges the object `value` into the object at `path` (RFC 7396).
    Merge { path: String, value: Value },
    /// Pins a warm memory; `turn` overrides the turn being applied.
    Pin { text: String, turn: Option<i64> },
    /// Records an episodic memory; `turn` overrides the turn being applied.
    Remember {
        text: String,
        salience: Number,
        turn: Option<i64>,
    },
    /// Creates or updates the objective `id`; absent members are left as they are.
    Objective {
        id: String,
        text: Option<String>,
        priority: Option<i64>,
        status: Option<String>,
    },
}

impl Act {
    /// The `op` name of the act.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Patch(op) => op.name(),
            Act::Increment { .. } => "increment",
            Act::Append { .. } => "append",
            Act::Merge { .. } => "merge",
            Act::Pin { .. } => "pin",
            Act::Remember { .. } => "remember",
            Act::Objective { .. } => "objective",
        }
    }

    /// The act as a JSON object in the shape it is written in.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), Value::String(self.name().into()));
        let mut put = |k: &str, v: Value| {
            m.insert(k.into(), v);
        };
        match self {
            Act::Patch(op) => return op.to_value(),
            Act::Increment { path, by } => {
                put("path", Value::String(path.clone()));
                put("by", Value::Number(by.clone()));
            }
            Act::Append { path, value } | Act::Merge { path, value } => {
                put("path", Value::String(path.clone()));
                put("value", value.clone());
            }
            Act::Pin { text, turn } => {
                put("text", Value::String(text.clone()));
                if let Some(t) = turn {
                    put("turn", Value::from(*t));
                }
            }
            Act::Remember {
                text,
                salience,
                turn,
            } => {
                put("text", Value::String(text.clone()));
                put("salience", Value::Number(salience.clone()));
                if let Some(t) = turn {
                    put("turn", Value::from(*t));
                }
            }
            Act::Objective {
                id,
                text,
                priority,
                status,
            } => {
                put("id", Value::String(id.clone()));
                if let Some(t) = text {
                    put("text", Value::String(t.clone()));
                }
                if let Some(p) = priority {
                    put("priority", Value::from(*p));
                }
                if let Some(s) = status {
                    put("status", Value::String(s.clone()));
                }
            }
        }
        Value::Object(m)
    }
}

impl Serialize for Act {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// The acts as a JSON array, for storing the normalized acts of a turn.
pub fn acts_to_value(acts: &[Act]) -> Value {
    Value::Array(acts.iter().map(Act::to_value).collect())
}

/// Parses a turn's `awf_raw` (`{"txt": ..., "acts": [...]}`); errors name the offending act.
pub fn parse_payload(awf_raw: &Value) -> Result<TurnPayload> {
    let lines = parse_lines(awf_raw)?;
    let acts = match raw_acts(awf_raw)? {
        Some(acts) => parse_acts(acts)?,
        None => Vec::new(),
    };
    Ok(TurnPayload { lines, acts })
}

/// The narrative lines of a turn payload (`txt`), without looking at its acts: a host's own
/// applier may define acts this module does not know.
pub fn parse_lines(awf_raw: &Value) -> Result<Vec<String>> {
    let obj = payload_object(awf_raw)?;
    Ok(match obj.get("txt") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => split_lines(s),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(Error::invalid(format!(
                    "\"txt\" item {i} must be a string, not {}",
                    type_name(other)
                ))),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(Error::invalid(format!(
                "\"txt\" must be a string or an array of strings, not {}",
                type_name(other)
            )))
        }
    })
}

/// The unparsed `acts` member (`None` when absent or null); it must be an array.
pub fn raw_acts(awf_raw: &Value) -> Result<Option<&Value>> {
    match payload_object(awf_raw)?.get("acts") {
        None | Some(Value::Null) => Ok(None),
        Some(acts @ Value::Array(_)) => Ok(Some(acts)),
        Some(other) => Err(Error::invalid(format!(
            "\"acts\" must be an array of acts, not {}",
            type_name(other)
        ))),
    }
}

fn payload_object(awf_raw: &Value) -> Result<&Map<String, Value>> {
    awf_raw.as_object().ok_or_else(|| {
        Error::invalid(format!(
            "a turn payload must be a JSON object, not {}",
            type_name(awf_raw)
        ))
    })
}

/// Parses a JSON array of acts; an error names the act's index and op and what is wrong.
pub fn parse_acts(acts: &Value) -> Result<Vec<Act>> {
    let items = acts.as_array().ok_or_else(|| {
        Error::invalid(format!(
            "\"acts\" must be an array of acts, not {}",
            type_name(acts)
        ))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_act(item).map_err(|e| Error::invalid(format!("act {i}{e}"))))
        .collect()
}

/// Applies `acts` to a copy of `state` during turn `turn` and returns it; `state` never changes.
///
/// Every act is charged to `budget` (see `crate::budget`): over it is 54000 naming the limit.
pub fn apply_acts(state: &Value, acts: &[Act], turn: i64, budget: &mut Budget) -> Result<Value> {
    require_object(state)?;
    let mut out = state.clone();
    for (i, act) in acts.iter().enumerate() {
        apply_one(&mut out, act, turn, budget).map_err(|e| match e {
            ActError::Invalid(m) => Error::invalid(format!("act {i} {m}")),
            ActError::Limit(m) => Error::limit(format!("act {i} ({}): {m}", act.name())),
        })?;
        // An RFC 6902 `replace` or `move` at "" could swap the document for a non-object.
        if !out.is_object() {
            return Err(Error::invalid(format!(
                "act {i} ({}): the state must stay a JSON object, it would become {}",
                act.name(),
                type_name(&out)
            )));
        }
    }
    crate::json::check_state_depth(&out)?;
    Ok(out)
}

/// Applies `acts` to `state` in place; on error `state` is left exactly as it was.
pub fn apply_acts_in_place(
    state: &mut Value,
    acts: &[Act],
    turn: i64,
    budget: &mut Budget,
) -> Result<()> {
    if acts.is_empty() {
        // Nothing to change, so no copy; the object check still holds the contract.
        return require_object(state);
    }
    *state = apply_acts(state, acts, turn, budget)?;
    Ok(())
}

fn require_object(state: &Value) -> Result<()> {
    if state.is_object() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "acts apply to a JSON object state, not {}",
            type_name(state)
        )))
    }
}

/// Splits narrative text into lines: `\n` separates, a trailing `\r` goes (CRLF text), and the
/// empty line after a final newline is not a line.
fn split_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Parsing. Errors are the text after "act {i}", so they start with " ({op}): " or ": ".

fn parse_act(v: &Value) -> Result<Act, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!(": must be an object, not {}", type_name(v)))?;
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                ": \"op\" must be a string, not {}",
                type_name(other)
            ))
        }
        None => return Err(": missing \"op\" member".into()),
    };
    parse_known(obj, v, op).map_err(|e| match e {
        ParseError::Unknown => format!(
            ": unknown op {op:?}; valid ops are {}",
            VALID_OPS.join(", ")
        ),
        ParseError::Bad(msg) => format!(" ({op}): {msg}"),
    })
}

enum ParseError {
    Unknown,
    Bad(String),
}

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError::Bad(s)
    }
}

fn parse_known(obj: &Map<String, Value>, v: &Value, op: &str) -> Result<Act, ParseError> {
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let string = |k: &str| match get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "\"{k}\" must be a string, not {}",
            type_name(other)
        )),
        None => Err(format!("missing \"{k}\" member")),
    };
    let opt_string = |k: &str| match get(k) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "\"{k}\" must be a string, not {}",
            type_name(other)
        )),
        None => Ok(None),
    };
    let text = |k: &str| -> Result<String, String> {
        let s = string(k)?;
        if s.trim().is_empty() {
            return Err(format!("\"{k}\" must not be blank"));
        }
        Ok(s)
    };
    let opt_text = |k: &str| -> Result<Option<String>, String> {
        match opt_string(k)? {
            Some(s) if s.trim().is_empty() => Err(format!("\"{k}\" must not be blank")),
            s => Ok(s),
        }
    };
    let path = || -> Result<String, String> {
        let p = string("path")?;
        pointer_tokens(&p).map_err(|e| format!("\"path\": {}", e.message))?;
        Ok(p)
    };
    let value = || {
        obj.get("value")
            .cloned()
            .ok_or_else(|| "missing \"value\" member".to_owned())
    };
    let opt_int = |k: &str| match get(k) {
        None => Ok(None),
        Some(v) => integer(v)
            .map(Some)
            .ok_or_else(|| format!("\"{k}\" must be an integer within ±2^53, not {}", shown(v))),
    };
    Ok(match op {
        "add" | "remove" | "replace" | "move" | "copy" | "test" => Act::Patch(parse_rfc_op(v)?),
        "increment" => {
            let path = path()?;
            let by = match get("by") {
                None => Number::from(1),
                Some(Value::Number(n)) => exact(n).map_err(|e| format!("\"by\" {e}"))?,
                Some(other) => {
                    return Err(format!("\"by\" must be a number, not {}", type_name(other)).into())
                }
            };
            Act::Increment { path, by }
        }
        "append" => Act::Append {
            path: path()?,
            value: value()?,
        },
        "merge" => {
            let path = path()?;
            let value = value()?;
            if !value.is_object() {
                return Err(format!(
                    "\"value\" must be an object, not {}; use \"replace\" to overwrite",
                    type_name(&value)
                )
                .into());
            }
            Act::Merge { path, value }
        }
        "pin" => Act::Pin {
            text: text("text")?,
            turn: opt_int("turn")?,
        },
        "remember" => {
            let text = text("text")?;
            let salience = match get("salience") {
                None => Number::from_f64(DEFAULT_SALIENCE)
                    .ok_or_else(|| "internal: default salience".to_owned())?,
                Some(Value::Number(n)) => {
                    let n = exact(n).map_err(|e| format!("\"salience\" {e}"))?;
                    let in_range = n.as_f64().is_some_and(|f| (0.0..=1.0).contains(&f));
                    if !in_range {
                        return Err(format!("\"salience\" must be between 0 and 1, not {n}").into());
                    }
                    n
                }
                Some(other) => {
                    return Err(format!(
                        "\"salience\" must be a number between 0 and 1, not {}",
                        type_name(other)
                    )
                    .into())
                }
            };
            Act::Remember {
                text,
                salience,
                turn: opt_int("turn")?,
            }
        }
        "objective" => Act::Objective {
            id: text("id")?,
            text: opt_text("text")?,
            priority: opt_int("priority")?,
            status: opt_string("status")?,
        },
        _ => return Err(ParseError::Unknown),
    })
}

/// Parses one RFC 6902 operation with the patch module's parser, so both accept the same.
fn parse_rfc_op(v: &Value) -> Result<Op, String> {
    let one = Value::Array(vec![v.clone()]);
    match patch::parse_patch(&one) {
        Ok(mut ops) if ops.len() == 1 => Ok(ops.remove(0)),
        Ok(_) => Err("internal: expected one operation".into()),
        Err(e) => Err(strip(&e.message, "patch operation 0: ").to_owned()),
    }
}

/// The number itself if RFC 8785 can write it back exactly; states are hashed canonically, so a
/// number that would only fail at hashing time is refused here with the act that brought it.
fn exact(n: &Number) -> Result<Number, String> {
    canonical_number(n)
        .map(|_| n.clone())
        .map_err(|e| format!("{n} cannot be stored exactly: {}", e.message))
}

/// An integer that fits i64 and stays exact in canonical form; `3.0` is 3, as the recap reads it.
fn integer(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    let i = n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // Beyond 2^53 a double is not an exact integer anyway; canonical form refuses it.
        (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).then_some(f as i64)
    })?;
    canonical_number(&Number::from(i)).ok().map(|_| i)
}

// ---------------------------------------------------------------------------------------------
// Applying. Errors are the text after "act {i} ", so they start with "({op})".

/// Why one act failed: it does not fit the state, or it costs more than the budget.
enum ActError {
    Invalid(String),
    Limit(String),
}

impl From<String> for ActError {
    fn from(e: String) -> Self {
        ActError::Invalid(e)
    }
}

fn apply_one(doc: &mut Value, act: &Act, turn: i64, budget: &mut Budget) -> Result<(), ActError> {
    let name = act.name();
    // One unit for the act itself, plus whatever it scans or builds (charged below).
    budget.work(1).map_err(|e| ActError::Limit(e.message))?;
    match act {
        Act::Patch(op) => patch::apply_ops(doc, std::slice::from_ref(op), budget).map_err(|e| {
            if e.kind == crate::ErrorKind::LimitExceeded {
                return ActError::Limit(e.message);
            }
            // The patch error already names op and path; only the "operation 0" is ours to fix.
            ActError::Invalid(match e.message.strip_prefix("patch operation 0 ") {
                Some(rest) => rest.to_owned(),
                None => format!("({name}): {}", e.message),
            })
        }),
        Act::Objective { .. } => {
            // Finding the objective scans the list.
            let len = doc
                .pointer("/hot/objectives")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            budget
                .work(len as u64)
                .map_err(|e| ActError::Limit(e.message))?;
            apply_plain(doc, act, turn).map_err(ActError::Invalid)
        }
        Act::Append { path, value } | Act::Merge { path, value } => {
            let size = budget
                .build_copy_of(value)
                .map_err(|e| ActError::Limit(e.message))?;
            // Where the value lands, checked before it is put there: each act could nest its
            // value under the previous one's, and a state thousands of levels deep overflows
            // the stack of whatever walks (or drops) it next.
            let lands = path.matches('/').count() + usize::from(matches!(act, Act::Append { .. }));
            if lands + size.depth > crate::json::MAX_DEPTH {
                return Err(ActError::Limit(format!(
                    "the state would nest {} levels deep, more than the {} allowed",
                    lands + size.depth,
                    crate::json::MAX_DEPTH
                )));
            }
            apply_plain(doc, act, turn).map_err(ActError::Invalid)
        }
        _ => apply_plain(doc, act, turn).map_err(ActError::Invalid),
    }
}

/// Applies an act that is not an RFC 6902 operation, once its cost has been charged.
fn apply_plain(doc: &mut Value, act: &Act, turn: i64) -> Result<(), String> {
    let name = act.name();
    let at = |path: &str, e: String| format!("({name}) at path {path:?}: {e}");
    match act {
        Act::Patch(_) => Err(format!("({name}): internal: a patch act is not plain")),
        Act::Increment { path, by } => {
            let slot = existing_mut(doc, path).map_err(|e| at(path, e))?;
            let Value::Number(cur) = slot else {
                return Err(at(
                    path,
                    format!("the value is {}, not a number", type_name(slot)),
                ));
            };
            *cur = add_numbers(cur, by).map_err(|e| at(path, e))?;
            Ok(())
        }
        Act::Append { path, value } => match target_mut(doc, path).map_err(|e| at(path, e))? {
            Target::Present(Value::Array(items)) => {
                items.push(value.clone());
                Ok(())
            }
            Target::Present(other) => Err(at(
                path,
                format!("the value is {}, not an array", type_name(other)),
            )),
            Target::Missing(slot) => {
                *slot = Value::Array(vec![value.clone()]);
                Ok(())
            }
        },
        // Parsing refuses these already; acts built in code get the same guard, because a
        // non-object merge patch would silently replace the target instead of merging.
        Act::Merge { value, .. } if !value.is_object() => Err(format!(
            "({name}): the merge value must be an object, not {}",
            type_name(value)
        )),
        Act::Merge { path, value } => match target_mut(doc, path).map_err(|e| at(path, e))? {
            Target::Present(obj @ Value::Object(_)) => {
                merge_patch_in_place(obj, value);
                Ok(())
            }
            Target::Present(other) => Err(at(
                path,
                format!("the value is {}, not an object", type_name(other)),
            )),
            Target::Missing(slot) => {
                *slot = merge_patch(&Value::Null, value);
                Ok(())
            }
        },
        Act::Pin { text, turn: t } => {
            let pins = section_mut(doc, &["memory", "warm", "pins"])
                .map_err(|e| format!("({name}): {e}"))?;
            let mut m = Map::new();
            m.insert("text".into(), Value::String(text.clone()));
            m.insert("turn".into(), Value::from(t.unwrap_or(turn)));
            pins.push(Value::Object(m));
            Ok(())
        }
        Act::Remember {
            text,
            salience,
            turn: t,
        } => {
            let episodic =
                section_mut(doc, &["memory", "episodic"]).map_err(|e| format!("({name}): {e}"))?;
            let mut m = Map::new();
            m.insert("text".into(), Value::String(text.clone()));
            m.insert("salience".into(), Value::Number(salience.clone()));
            m.insert("turn".into(), Value::from(t.unwrap_or(turn)));
            episodic.push(Value::Object(m));
            Ok(())
        }
        Act::Objective {
            id,
            text,
            priority,
            status,
        } => {
            let objectives =
                section_mut(doc, &["hot", "objectives"]).map_err(|e| format!("({name}): {e}"))?;
            let existing = objectives
                .iter_mut()
                .find(|o| o.get("id").and_then(Value::as_str) == Some(id.as_str()));
            let set = |m: &mut Map<String, Value>| {
                if let Some(t) = text {
                    m.insert("text".into(), Value::String(t.clone()));
                }
                if let Some(p) = priority {
                    m.insert("priority".into(), Value::from(*p));
                }
                if let Some(s) = status {
                    m.insert("status".into(), Value::String(s.clone()));
                }
            };
            match existing {
                Some(Value::Object(m)) => set(m),
                Some(_) => return Err(format!("({name}): internal: objective is not an object")),
                None => {
                    if text.is_none() {
                        return Err(format!(
                            "({name}): objective {id:?} does not exist yet, so \"text\" is required"
                        ));
                    }
                    let mut m = Map::new();
                    m.insert("id".into(), Value::String(id.clone()));
                    m.insert("priority".into(), Value::from(0));
                    set(&mut m);
                    objectives.push(Value::Object(m));
                }
            }
            Ok(())
        }
    }
}

/// Where a creating act (`append`, `merge`) writes.
enum Target<'a> {
    /// The value exists and is not `null`.
    Present(&'a mut Value),
    /// A `null` value, or a missing member of an existing object (inserted as `null`): to fill.
    Missing(&'a mut Value),
}

/// The value at `path`; `patch::get` diagnoses a bad path, so the message matches the patch
/// module's ("\"/a\" does not exist").
fn existing_mut<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, String> {
    patch::get(doc, path).map_err(|e| pointer_error(path, e))?;
    doc.pointer_mut(path)
        .ok_or_else(|| "internal: located value vanished".into())
}

fn target_mut<'a>(doc: &'a mut Value, path: &str) -> Result<Target<'a>, String> {
    match patch::get(doc, path) {
        Ok(_) => {
            let slot = existing_mut(doc, path)?;
            return Ok(if slot.is_null() {
                Target::Missing(slot)
            } else {
                Target::Present(slot)
            });
        }
        Err(e) => {
            // Only a member of an object that exists can be created; anything else (missing
            // parent, array index out of bounds) keeps the patch module's diagnosis.
            let creatable = path
                .rfind('/')
                .is_some_and(|cut| matches!(patch::get(doc, &path[..cut]), Ok(Value::Object(_))));
            if !creatable {
                return Err(pointer_error(path, e));
            }
        }
    }
    let cut = path.rfind('/').ok_or("internal: missing root")?;
    let key = pointer_tokens(path)
        .map_err(|e| e.message)?
        .pop()
        .ok_or("internal: missing root")?;
    let parent = doc
        .pointer_mut(&path[..cut])
        .and_then(Value::as_object_mut)
        .ok_or("internal: located parent vanished")?;
    let slot = parent.entry(key).or_insert(Value::Null);
    Ok(Target::Missing(slot))
}

fn pointer_error(path: &str, e: Error) -> String {
    strip(&e.message, &format!("JSON pointer {path:?}: ")).to_owned()
}

/// The array at `keys` under the root, creating missing (or `null`) objects and the array.
fn section_mut<'a>(doc: &'a mut Value, keys: &[&str]) -> Result<&'a mut Vec<Value>, String> {
    let mut cur = doc;
    let mut ptr = String::new();
    for (depth, key) in keys.iter().enumerate() {
        ptr.push('/');
        ptr.push_str(key);
        let last = depth + 1 == keys.len();
        let Value::Object(m) = cur else {
            return Err("internal: section parent is not an object".into());
        };
        let child = m.entry(*key).or_insert(Value::Null);
        if child.is_null() {
            *child = if last {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            };
        }
        match (last, child) {
            (true, Value::Array(items)) => return Ok(items),
            (false, c @ Value::Object(_)) => cur = c,
            (true, other) => {
                return Err(format!("{ptr:?} is {}, not an array", type_name(other)));
            }
            (false, other) => {
                return Err(format!("{ptr:?} is {}, not an object", type_name(other)));
            }
        }
    }
    Err("internal: empty section path".into())
}

// ---------------------------------------------------------------------------------------------
// Exact addition.

/// `a + b` without rounding: i64 for two integers, exact decimals otherwise; the result must
/// canonicalize exactly (see the module documentation).
fn add_numbers(a: &Number, b: &Number) -> Result<Number, String> {
    let sum = if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let s = x
            .checked_add(y)
            .ok_or_else(|| format!("{a} + {b} overflows a 64-bit integer"))?;
        Number::from(s)
    } else {
        let x = Decimal::parse(&a.to_string());
        let y = Decimal::parse(&b.to_string());
        let s = x
            .zip(y)
            .and_then(|(x, y)| x.checked_add(y))
            .ok_or_else(|| format!("{a} + {b} cannot be computed exactly"))?;
        Number::from_str(&s.to_string()).map_err(|e| format!("internal: {e}"))?
    };
    // Canonical text, so `1.5 + 0.5` stores `2` and the result reads like any canonical number.
    let text = canonical_number(&sum)
        .map_err(|e| format!("{a} + {b} cannot be stored exactly: {}", e.message))?;
    Number::from_str(&text).map_err(|e| format!("internal: {e}"))
}

/// An exact decimal `mantissa × 10^exponent`.
#[derive(Clone, Copy)]
struct Decimal {
    mantissa: i128,
    exponent: i32,
}

impl Decimal {
    /// Most significant digits kept; far more than a double holds, well within i128.
    const MAX_DIGITS: usize = 36;

    /// Parses JSON number text; `None` when it has more significant digits than fit.
    fn parse(text: &str) -> Option<Decimal> {
        let (neg, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (num, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits: String = [int, frac].concat();
        let significant = digits.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        let trailing = i32::try_from(significant.len() - trimmed.len()).ok()?;
        if trimmed.len() > Self::MAX_DIGITS || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mantissa: i128 = if trimmed.is_empty() {
            0
        } else {
            trimmed.parse().ok()?
        };
        let exponent = exp
            .checked_sub(i32::try_from(frac.len()).ok()?)?
            .checked_add(trailing)?;
        Some(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            exponent,
        })
    }

    fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |d: Decimal| {
            let shift = u32::try_from(d.exponent.checked_sub(exponent)?).ok()?;
            d.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some(Decimal {
            mantissa: scale(self)?.checked_add(scale(other)?)?,
            exponent,
        })
    }
}

/// JSON number text; plain decimal notation (as people read it in error messages) unless the
/// exponent would need dozens of zeros.
impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (m, e) = (self.mantissa, self.exponent);
        if !(-40..=40).contains(&e) {
            return write!(f, "{m}e{e}");
        }
        let digits = m.unsigned_abs().to_string();
        let sign = if m < 0 { "-" } else { "" };
        let Ok(point) = usize::try_from(-e) else {
            return write!(f, "{sign}{digits}{}", "0".repeat(e.unsigned_abs() as usize));
        };
        // At least one digit before the point.
        let padded = format!(
            "{}{digits}",
            "0".repeat((point + 1).saturating_sub(digits.len()))
        );
        let (int, frac) = padded.split_at(padded.len() - point);
        if frac.is_empty() {
            write!(f, "{sign}{int}")
        } else {
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn strip<'a>(message: &'a str, prefix: &str) -> &'a str {
    message.strip_prefix(prefix).unwrap_or(message)
}

/// A number's own text says why it was refused (`1.5` for an integer); other values by type.
fn shown(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Result<String, String> {
        add_numbers(&Number::from_str(a).unwrap(), &Number::from_str(b).unwrap())
            .map(|n| n.to_string())
    }

    #[test]
    fn decimal_addition_is_exact() {
        assert_eq!(add("0.1", "0.2").unwrap(), "0.3");
        assert_eq!(add("1.5", "0.25").unwrap(), "1.75");
        assert_eq!(add("1.50", "0.5").unwrap(), "2");
        assert_eq!(add("1e2", "1").unwrap(), "101");
        assert_eq!(add("-0.5", "0.5").unwrap(), "0");
        assert_eq!(add("2.5E-3", "1").unwrap(), "1.0025");
        assert_eq!(add("12.50", "0.0").unwrap(), "12.5");
        // 1e20 is a double (its shortest form), so the sum canonicalizes.
        assert!(add("100000000000000000000.0", "0").is_ok());
        assert!(add("1000.123456789012345", "0.1").is_err());
        assert!(add("1e300", "1e-300").is_err());
        assert!(add("9223372036854775807", "1")
            .unwrap_err()
            .contains("overflows"));
        assert!(add("9007199254740992", "1").is_err());
    }

    #[test]
    fn decimal_text() {
        let text = |m: i128, e: i32| {
            Decimal {
                mantissa: m,
                exponent: e,
            }
            .to_string()
        };
        assert_eq!(text(10001234, -4), "1000.1234");
        assert_eq!(text(-5, -3), "-0.005");
        assert_eq!(text(42, 0), "42");
        assert_eq!(text(-42, 2), "-4200");
        assert_eq!(text(0, -2), "0.00");
        assert_eq!(text(7, -100), "7e-100");
        for (m, e) in [(10001234, -4), (-5, -3), (-42, 2), (7, -100), (123, -3)] {
            let d = Decimal::parse(&text(m, e)).unwrap();
            assert_eq!(
                d.to_string(),
                Decimal::parse(&format!("{m}e{e}")).unwrap().to_string()
            );
        }
    }

    #[test]
    fn lines_split() {
        assert_eq!(split_lines("a\r\nb\n"), ["a", "b"]);
        assert_eq!(split_lines("a\n\n"), ["a", ""]);
        assert!(split_lines("").is_empty());
    }
}
