//! A jsonb datum into a `serde_json::Value`, read directly with PostgreSQL's jsonb iterator:
//! no JSON text is written and parsed again on the way.
//!
//! It reads what `jsonb_out` would print: numbers with `numeric_out`'s text (kept exactly, as
//! every number in this crate is), strings as stored. A document nested deeper than the JSON
//! parser accepts (`awf_core::json::MAX_DEPTH`) is refused with 22023, as reading its text
//! was.

use crate::errors::raise;
use awf_core::json::MAX_DEPTH;
use awf_core::Error;
use pgrx::direct_function_call;
use pgrx::pg_sys::{self, JsonbIteratorToken as Tok, JsonbValue};
use serde_json::{Map, Number, Value};
use std::ffi::CStr;

/// A container being read.
enum Open {
    Array(Vec<Value>),
    Object(Map<String, Value>, Option<String>),
}

/// The value of a jsonb datum.
///
/// # Safety
/// `datum` is a non-NULL jsonb datum.
pub unsafe fn from_datum(datum: pg_sys::Datum) -> Value {
    // SAFETY: a jsonb datum; the iterator needs the full (4-byte header, aligned) form.
    let jb = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) } as *mut pg_sys::Jsonb;
    // SAFETY: jb is a detoasted jsonb; the iterator walks its container and hands out values
    // that point into it (copied below before jb is freed).
    let mut it = unsafe { pg_sys::JsonbIteratorInit(&mut (*jb).root) };
    let mut stack: Vec<Open> = Vec::new();
    let mut raw_scalar = false;
    let mut done: Option<Value> = None;
    loop {
        // SAFETY: a zeroed JsonbValue is a valid out-parameter.
        let mut v: JsonbValue = unsafe { std::mem::zeroed() };
        // SAFETY: `it` is the iterator made above, advanced only here.
        let tok = unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut v, false) };
        match tok {
            Tok::WJB_DONE => break,
            Tok::WJB_BEGIN_ARRAY | Tok::WJB_BEGIN_OBJECT => {
                // serde_json refuses the MAX_DEPTH-th level; so does this.
                if stack.len() + 1 >= MAX_DEPTH {
                    raise(
                        Error::invalid(format!(
                            "a jsonb argument cannot be read: it nests deeper than {} levels (documents may nest at most 128 levels)",
                            MAX_DEPTH - 1
                        )),
                        "jsonb argument",
                    );
                }
                if tok == Tok::WJB_BEGIN_ARRAY {
                    // SAFETY: the iterator filled the array member for WJB_BEGIN_ARRAY.
                    let (n, raw) = unsafe { (v.val.array.nElems, v.val.array.rawScalar) };
                    raw_scalar |= stack.is_empty() && raw;
                    stack.push(Open::Array(Vec::with_capacity(n.max(0) as usize)));
                } else {
                    // SAFETY: the iterator filled the object member for WJB_BEGIN_OBJECT.
                    let n = unsafe { v.val.object.nPairs };
                    stack.push(Open::Object(Map::with_capacity(n.max(0) as usize), None));
                }
            }
            Tok::WJB_KEY => {
                let key = unsafe { string(&v) };
                if let Some(Open::Object(_, pending)) = stack.last_mut() {
                    *pending = Some(key);
                }
            }
            Tok::WJB_VALUE | Tok::WJB_ELEM => {
                let value = unsafe { scalar(&v) };
                add(&mut stack, value, &mut done);
            }
            Tok::WJB_END_ARRAY | Tok::WJB_END_OBJECT => {
                let value = match stack.pop() {
                    Some(Open::Array(items)) => Value::Array(items),
                    Some(Open::Object(map, _)) => Value::Object(map),
                    None => unreachable!("the iterator closes only what it opened"),
                };
                add(&mut stack, value, &mut done);
            }
            other => unreachable!("unknown jsonb iterator token {other}"),
        }
    }
    if jb.cast::<std::ffi::c_void>() != datum.cast_mut_ptr::<std::ffi::c_void>() {
        // SAFETY: a copy pg_detoast_datum made for us, no longer pointed into.
        unsafe { pg_sys::pfree(jb.cast()) };
    }
    let value = done.expect("a jsonb value holds a value");
    match value {
        // A top-level scalar is stored as a one-element raw-scalar array.
        Value::Array(mut items) if raw_scalar && items.len() == 1 => items.pop().expect("one"),
        v => v,
    }
}

/// Adds a finished value to the container being read, or makes it the result.
fn add(stack: &mut [Open], value: Value, done: &mut Option<Value>) {
    match stack.last_mut() {
        Some(Open::Array(items)) => items.push(value),
        Some(Open::Object(map, pending)) => {
            let key = pending
                .take()
                .expect("the iterator gives a key before its value");
            map.insert(key, value);
        }
        None => *done = Some(value),
    }
}

/// A scalar JsonbValue.
///
/// # Safety
/// `v` is a scalar the iterator returned.
unsafe fn scalar(v: &JsonbValue) -> Value {
    match v.type_ {
        pg_sys::jbvType::jbvNull => Value::Null,
        // SAFETY: the member each type reads.
        pg_sys::jbvType::jbvBool => Value::Bool(unsafe { v.val.boolean }),
        pg_sys::jbvType::jbvString => Value::String(unsafe { string(v) }),
        pg_sys::jbvType::jbvNumeric => Value::Number(unsafe { number(v.val.numeric) }),
        other => unreachable!("jsonb scalar of type {other}"),
    }
}

/// A jbvString's text.
///
/// # Safety
/// `v` is a jbvString the iterator returned.
unsafe fn string(v: &JsonbValue) -> String {
    // SAFETY: val/len describe bytes inside the jsonb being read.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            v.val.string.val as *const u8,
            v.val.string.len.max(0) as usize,
        )
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => raise(
            Error::invalid("a jsonb argument cannot be read: it holds a string that is not UTF-8"),
            "jsonb argument",
        ),
    }
}

/// A numeric as a JSON number, with `numeric_out`'s text (what `jsonb_out` prints).
///
/// # Safety
/// `n` is a numeric the iterator returned.
unsafe fn number(n: pg_sys::Numeric) -> Number {
    // SAFETY: numeric_out takes a numeric and returns a palloc'd C string.
    let text = unsafe {
        direct_function_call::<&CStr>(pg_sys::numeric_out, &[Some(pg_sys::Datum::from(n))])
            .expect("numeric_out returns a string")
    };
    let parsed = text.to_str().ok().and_then(|s| s.parse::<Number>().ok());
    // SAFETY: the string came from palloc and is not used again.
    unsafe { pg_sys::pfree(text.as_ptr() as *mut std::ffi::c_void) };
    parsed.unwrap_or_else(|| {
        raise(
            Error::invalid("a jsonb argument cannot be read: it holds a number JSON cannot"),
            "jsonb argument",
        )
    })
}
