//! JSON values, parsing, value equality and JSON Pointers (RFC 6901).
//!
//! awf_core works on `serde_json::Value` built with `arbitrary_precision`, so a number keeps
//! the exact text it was written with. Two consequences everybody in this crate relies on:
//! `Value == Value` compares number *text* (`1` differs from `1.0`), so semantic comparisons go
//! through [`value_eq`]; and canonicalization can see (and refuse) numbers an f64 cannot hold.

use crate::error::{Error, Result};
use serde_json::{Number, Value};
use std::cmp::Ordering;

pub use serde_json::Map;

/// Parses one JSON text (RFC 8259). Rejects invalid UTF-8, trailing garbage and nesting
/// deeper than 128 levels, with a message that says where.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
}

/// Parses JSON from a string; see [`parse`].
pub fn parse_str(text: &str) -> Result<Value> {
    parse(text.as_bytes())
}

/// Whether two numbers are the same number of a state: equal exact decimal values (`1`,
/// `1.0`, `1e0`), or texts that name the same double and so have the same canonical form and
/// hash (`1152921504606846976` and `1152921504606847000`, the 55 digits of 0.1 and `0.1`). `0.1`
/// and `0.10000000000000000001` (which no hash accepts) are not, so a diff, a patch `test` or a
/// merge never treats two different states as one.
pub fn numbers_equal(a: &Number, b: &Number) -> bool {
    // Integers up to 2^53 are each their own double: plain comparison decides.
    const SAFE: u64 = 1 << 53;
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if x.unsigned_abs() <= SAFE && y.unsigned_abs() <= SAFE {
            return x == y;
        }
    }
    let exact = crate::canonical::decimal_eq(a.as_str(), b.as_str())
        .unwrap_or_else(|| number_cmp(a, b) == Some(Ordering::Equal));
    // Different texts name one double only if they read as the same double; only then is it
    // worth canonicalizing both (an edited number, the common case, stops here).
    exact
        || (a.as_f64().is_some_and(|x| Some(x) == b.as_f64())
            && matches!(
                (crate::canonical::canonical_number(a), crate::canonical::canonical_number(b)),
                (Ok(x), Ok(y)) if x == y
            ))
}

fn number_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Semantic equality of JSON values: numbers by value, objects regardless of key order.
///
/// Tuned for the common case of equal documents (diff compares whole states): identical number
/// text skips numeric parsing, and object members are walked in step (equal key sets iterate in
/// the same order), with a lookup only on a mismatch.
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y || numbers_equal(x, y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((kx, vx), (ky, vy))| {
                    if kx == ky {
                        value_eq(vx, vy)
                    } else {
                        y.get(kx).is_some_and(|w| value_eq(vx, w))
                    }
                })
        }
        _ => false,
    }
}

/// How deeply a value nests (a scalar is 0, `[]` is 1). Iterative, so it cannot overflow.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(o) => {
                max = max.max(d + 1);
                stack.extend(o.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// The deepest any value may nest: what [`parse`] accepts, and what patches and acts may build
/// (an unbounded depth would overflow the stack of the next recursive walk, or of a drop).
pub const MAX_DEPTH: usize = 128;

/// The deepest a stored state may nest. PostgreSQL's jsonb has no limit, but the JSON
/// conversions between jsonb and Rust stop at 128 levels, and exports and snapshots wrap a
/// state in a few more: refusing deeper states up front keeps every later read possible.
pub const MAX_STATE_DEPTH: usize = 100;

/// Refuses a state nested deeper than [`MAX_STATE_DEPTH`] (22023).
pub fn check_state_depth(v: &Value) -> Result<()> {
    let d = depth(v);
    if d > MAX_STATE_DEPTH {
        return Err(Error::invalid(format!(
            "the state nests {d} levels deep; at most {MAX_STATE_DEPTH} are allowed"
        )));
    }
    Ok(())
}

/// The JSON type of a value with its article, for messages ("a string", "null").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value rendered for an error message, cut after 80 bytes: states can be large.
pub fn brief(v: &Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Splits a JSON Pointer (RFC 6901) into unescaped reference tokens. `""` is the whole document.
pub fn pointer_tokens(pointer: &str) -> Result<Vec<String>> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or_else(|| {
        Error::invalid(format!(
            "JSON pointer {pointer:?} must be empty or start with '/'"
        ))
    })?;
    rest.split('/').map(unescape_token).collect()
}

fn unescape_token(token: &str) -> Result<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => {
                return Err(Error::invalid(format!(
                    "JSON pointer token {token:?} has '~' not followed by 0 or 1"
                )))
            }
        }
    }
    Ok(out)
}

/// Escapes one reference token for use in a JSON Pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> String {
    if !token.contains(['~', '/']) {
        return token.to_owned();
    }
    token.replace('~', "~0").replace('/', "~1")
}

/// Appends an escaped token to a pointer: `push_token("/a", "b/c")` is `/a/b~1c`.
pub fn push_token(pointer: &str, token: &str) -> String {
    let mut p = String::with_capacity(pointer.len() + token.len() + 1);
    p.push_str(pointer);
    p.push('/');
    p.push_str(&escape_token(token));
    p
}

/// Parses an array index token per RFC 6901: digits only, no leading zeros.
pub fn array_index(token: &str) -> Option<usize> {
    let ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if ok {
        token.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(value_eq(
            &parse_str("1").unwrap(),
            &parse_str("1.0").unwrap()
        ));
        assert!(value_eq(&parse_str("[1e2]").unwrap(), &json!([100])));
        assert!(!value_eq(&json!(1), &json!(2)));
        assert!(!value_eq(&json!(1), &json!("1")));
    }

    #[test]
    fn pointers_round_trip() {
        assert_eq!(pointer_tokens("").unwrap(), Vec::<String>::new());
        assert_eq!(pointer_tokens("/a~1b/~0c/").unwrap(), ["a/b", "~c", ""]);
        assert_eq!(push_token("/x", "a/b~"), "/x/a~1b~0");
        assert!(pointer_tokens("a").is_err());
        assert!(pointer_tokens("/~2").is_err());
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("-"), None);
    }
}
