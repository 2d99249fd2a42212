//! A `serde_json::Value` into a jsonb datum, built directly with PostgreSQL's own
//! `pushJsonbValue`: no JSON text is written and parsed again on the way (serializing and
//! `jsonb_in` were about a tenth of a turn's time, perf).
//!
//! It accepts exactly what `jsonb_in` would accept of the value's text: numbers go through
//! `numeric_in` (as `jsonb_in` reads them, with the same range errors), a string or key with a
//! NUL character is refused with 22P05 (jsonb cannot hold one), a string longer than jsonb's
//! limit with 54000, and the object and array limits are PostgreSQL's own checks.

use pgrx::pg_sys::{self, JsonbIteratorToken as Tok, JsonbParseState, JsonbValue};
use pgrx::{direct_function_call_as_datum, IntoDatum, PgSqlErrorCode};
use serde_json::Value;
use std::ffi::CString;
use std::ptr;

/// The longest string a jsonb value holds (`JENTRY_OFFLENMASK`).
const MAX_STRING_BYTES: usize = 0x0FFF_FFFF;

/// The jsonb datum of `v`, in the current memory context.
pub fn to_datum(v: &Value) -> pg_sys::Datum {
    let mut state: *mut JsonbParseState = ptr::null_mut();
    // SAFETY: every pushJsonbValue call gets the state it built and values that live until
    // JsonbValueToJsonb copies them (strings point into `v`, numerics are palloc'd); errors
    // inside PostgreSQL unwind as pgrx panics, leaving nothing half-done on our side.
    unsafe {
        let root = match v {
            Value::Object(_) | Value::Array(_) => push_container(&mut state, v),
            scalar => {
                // A top-level scalar is a one-element "raw scalar" array, as jsonb_in builds it.
                let mut raw: JsonbValue = std::mem::zeroed();
                raw.type_ = pg_sys::jbvType::jbvArray;
                raw.val.array.rawScalar = true;
                pg_sys::pushJsonbValue(&mut state, Tok::WJB_BEGIN_ARRAY, &mut raw);
                let mut s = scalar_value(scalar);
                pg_sys::pushJsonbValue(&mut state, Tok::WJB_ELEM, &mut s);
                pg_sys::pushJsonbValue(&mut state, Tok::WJB_END_ARRAY, ptr::null_mut())
            }
        };
        pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(root))
    }
}

/// Pushes an object or array and everything in it; returns the finished container.
///
/// # Safety
/// `state` is the parse state of the value being built.
unsafe fn push_container(state: &mut *mut JsonbParseState, v: &Value) -> *mut JsonbValue {
    // Our own recursion runs on PostgreSQL's stack: its depth check raises 54001 before the
    // stack runs out, as jsonb_in's does.
    unsafe { pg_sys::check_stack_depth() };
    match v {
        Value::Object(map) => unsafe {
            pg_sys::pushJsonbValue(state, Tok::WJB_BEGIN_OBJECT, ptr::null_mut());
            for (k, item) in map {
                let mut key = string_value(k);
                pg_sys::pushJsonbValue(state, Tok::WJB_KEY, &mut key);
                push_item(state, item, Tok::WJB_VALUE);
            }
            pg_sys::pushJsonbValue(state, Tok::WJB_END_OBJECT, ptr::null_mut())
        },
        Value::Array(items) => unsafe {
            let mut begin: JsonbValue = std::mem::zeroed();
            begin.type_ = pg_sys::jbvType::jbvArray;
            begin.val.array.nElems = i32::try_from(items.len()).unwrap_or(i32::MAX);
            pg_sys::pushJsonbValue(state, Tok::WJB_BEGIN_ARRAY, &mut begin);
            for item in items {
                push_item(state, item, Tok::WJB_ELEM);
            }
            pg_sys::pushJsonbValue(state, Tok::WJB_END_ARRAY, ptr::null_mut())
        },
        _ => unreachable!("push_container takes an object or an array"),
    }
}

/// Pushes one member value or array element (`token` says which); a nested container is
/// attached to its parent when it ends.
///
/// # Safety
/// As [`push_container`].
unsafe fn push_item(state: &mut *mut JsonbParseState, v: &Value, token: Tok::Type) {
    match v {
        Value::Object(_) | Value::Array(_) => {
            unsafe { push_container(state, v) };
        }
        scalar => unsafe {
            let mut s = scalar_value(scalar);
            pg_sys::pushJsonbValue(state, token, &mut s);
        },
    }
}

/// A scalar as a JsonbValue (strings borrow from `v`).
fn scalar_value(v: &Value) -> JsonbValue {
    // SAFETY: a zeroed JsonbValue is jbvNull; each arm sets the member its type reads.
    let mut out: JsonbValue = unsafe { std::mem::zeroed() };
    match v {
        Value::Null => out.type_ = pg_sys::jbvType::jbvNull,
        Value::Bool(b) => {
            out.type_ = pg_sys::jbvType::jbvBool;
            out.val.boolean = *b;
        }
        Value::Number(n) => {
            out.type_ = pg_sys::jbvType::jbvNumeric;
            out.val.numeric = numeric(n.as_str());
        }
        Value::String(s) => out = string_value(s),
        Value::Object(_) | Value::Array(_) => unreachable!("containers are pushed, not scalars"),
    }
    out
}

/// A string or key as a JsonbValue pointing into `s`.
fn string_value(s: &str) -> JsonbValue {
    if s.as_bytes().contains(&0) {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER,
            "unsupported Unicode escape sequence",
            "\\u0000 cannot be converted to text."
        );
    }
    if s.len() > MAX_STRING_BYTES {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "string too long to represent as jsonb string",
            format!("Due to an implementation restriction, jsonb strings cannot exceed {MAX_STRING_BYTES} bytes.")
        );
    }
    // SAFETY: as in scalar_value.
    let mut out: JsonbValue = unsafe { std::mem::zeroed() };
    out.type_ = pg_sys::jbvType::jbvString;
    out.val.string.len = s.len() as i32;
    out.val.string.val = s.as_ptr() as *mut std::ffi::c_char;
    out
}

/// A JSON number's text as a numeric, through `numeric_in` as `jsonb_in` reads numbers.
fn numeric(text: &str) -> pg_sys::Numeric {
    // A number's text from serde_json never holds a NUL.
    let c = CString::new(text).expect("a JSON number has no NUL");
    // SAFETY: numeric_in takes (cstring, oid, typmod) and returns a palloc'd numeric.
    let d = unsafe {
        direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[
                Some(pg_sys::Datum::from(c.as_ptr())),
                pg_sys::InvalidOid.into_datum(),
                (-1i32).into_datum(),
            ],
        )
    }
    .expect("numeric_in returns a value");
    d.cast_mut_ptr()
}
