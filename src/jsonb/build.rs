//! A `serde_json::Value` into a jsonb datum, built directly: the value becomes PostgreSQL's
//! in-memory `JsonbValue` tree here, and one `JsonbValueToJsonb` call packs it. No JSON text is
//! written and parsed again on the way (serializing and `jsonb_in` were about a tenth of a
//! turn's time, perf), and no call crosses into PostgreSQL per node.
//!
//! It accepts exactly what `jsonb_in` would accept of the value's text: numbers go through
//! `numeric_in` (as `jsonb_in` reads them, with the same range errors), a string or key with a
//! NUL character is refused with 22P05 (jsonb cannot hold one), a string longer than jsonb's
//! limit with 54000. Object keys are put in jsonb's order (shorter first, then bytewise), as
//! `jsonb_in` sorts them; a `serde_json` map has no duplicate keys to drop.

use pgrx::pg_sys::{self, JsonbPair, JsonbValue};
use pgrx::{direct_function_call_as_datum, IntoDatum, PgSqlErrorCode};
use serde_json::Value;
use std::ffi::CString;

/// The longest string a jsonb value holds (`JENTRY_OFFLENMASK`), and the most elements or
/// pairs of one container (`JSONB_MAX_ELEMS`, `JSONB_MAX_PAIRS`).
const MAX_STRING_BYTES: usize = 0x0FFF_FFFF;
const MAX_ELEMS: usize = 0x0FFF_FFFF;

/// The arrays the tree points into; they live until the jsonb is packed.
#[derive(Default)]
struct Arena {
    elems: Vec<Vec<JsonbValue>>,
    pairs: Vec<Vec<JsonbPair>>,
}

/// The jsonb datum of `v`, in the current memory context.
pub fn to_datum(v: &Value) -> pg_sys::Datum {
    let mut arena = Arena::default();
    let mut root = node(v, &mut arena);
    // SAFETY: `root` and every array it points to (in `arena`, strings in `v`, numerics
    // palloc'd) live until JsonbValueToJsonb has copied them into the new jsonb. A scalar root
    // becomes jsonb's raw-scalar array there, as jsonb_in makes it.
    let jb = unsafe { pg_sys::JsonbValueToJsonb(&mut root) };
    drop(arena);
    pg_sys::Datum::from(jb)
}

/// The JsonbValue of `v`; containers' children go into `arena`.
fn node(v: &Value, arena: &mut Arena) -> JsonbValue {
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
        Value::String(s) => out = string(s),
        Value::Array(items) => {
            // Our recursion runs on PostgreSQL's stack: its depth check raises 54001 before
            // the stack runs out, as jsonb_in's does.
            check_depth();
            check_count(items.len());
            let elems: Vec<JsonbValue> = items.iter().map(|i| node(i, arena)).collect();
            out.type_ = pg_sys::jbvType::jbvArray;
            out.val.array.nElems = elems.len() as i32;
            out.val.array.rawScalar = false;
            out.val.array.elems = arena_ptr(&mut arena.elems, elems);
        }
        Value::Object(map) => {
            check_depth();
            check_count(map.len());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // jsonb's key order: by length, then bytes (lengthCompareJsonbString).
            entries.sort_unstable_by(|a, b| {
                (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes()))
            });
            let pairs: Vec<JsonbPair> = entries
                .into_iter()
                .enumerate()
                .map(|(i, (k, item))| JsonbPair {
                    key: string(k),
                    value: node(item, arena),
                    order: i as u32,
                })
                .collect();
            out.type_ = pg_sys::jbvType::jbvObject;
            out.val.object.nPairs = pairs.len() as i32;
            out.val.object.pairs = arena_ptr(&mut arena.pairs, pairs);
        }
    }
    out
}

/// Keeps `items` in the arena and returns a pointer to them (null for none, which PostgreSQL
/// never reads for an empty container).
fn arena_ptr<T>(store: &mut Vec<Vec<T>>, mut items: Vec<T>) -> *mut T {
    if items.is_empty() {
        return std::ptr::null_mut();
    }
    let ptr = items.as_mut_ptr();
    // Moving the Vec moves only its header: the buffer `ptr` points to stays where it is.
    store.push(items);
    ptr
}

fn check_depth() {
    // SAFETY: a plain PostgreSQL check; raises an ERROR past max_stack_depth.
    unsafe { pg_sys::check_stack_depth() };
}

fn check_count(n: usize) {
    if n > MAX_ELEMS {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a jsonb container cannot hold {n} members (at most {MAX_ELEMS})")
        );
    }
}

/// A string or key as a JsonbValue pointing into `s`.
fn string(s: &str) -> JsonbValue {
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
    // SAFETY: as in `node`.
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
