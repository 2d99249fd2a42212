//! RFC 8785 (JCS) canonical bytes and SHA-256 content hashes.
//!
//! A state's hash is the SHA-256 of its canonical bytes, so two states that differ must never
//! produce the same bytes. JCS serializes numbers as IEEE-754 doubles, so a number is
//! accepted only when it names one double without rounding, and is then written as that
//! double's ES6 form:
//! - its exact decimal value is that of its double's shortest form (`1.0`, `1e0`, `10E-1`,
//!   `1.5e20`, `9007199254740994`, `123456789012345680000`: every canonical output reads back
//!   as itself), or
//! - its exact decimal value is the double itself (`1152921504606846976` = 2^60, written
//!   `1152921504606847000`; the 55 digits of the double nearest 0.1, written `0.1`).
//!
//! Anything else is rejected (`Error::invalid`, "store it as a string") instead of being
//! rounded: `0.10000000000000000001`, `9007199254740993`, `1e400`, `333333333.33333329`. Big
//! integer ids and seeds therefore pass only when they happen to be doubles; store them as
//! strings.
//!
//! This runs on every turn over 20–200 KB states, so the writer appends into one `Vec`,
//! allocates nothing per node in the common case, and sorts keys only when the map's own
//! order is not already the JCS order.

use crate::budget::{Budget, Limits};
use crate::error::{Error, Result};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// Largest integer magnitude every IEEE-754 double consumer reads back exactly (2^53).
const MAX_SAFE_INTEGER: &[u8] = b"9007199254740992";

/// Returns the canonical (RFC 8785) bytes of `v`, or `Error::invalid` for numbers JCS would alter.
///
/// Unlimited but interruptible: for values already bounded when they were accepted (stored
/// states, payloads an act applier charged). Input straight from a caller goes through
/// [`canonical_bytes_within`].
pub fn canonical_bytes(v: &Value) -> Result<Vec<u8>> {
    canonical_bytes_within(v, &mut Budget::new(Limits::stored_history()))
}

/// [`canonical_bytes`] charging `budget`: a unit per value, the sorting of unordered objects,
/// and the output's bytes as built text, checked as the writer goes.
pub fn canonical_bytes_within(v: &Value, budget: &mut Budget) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write_value(v, &mut out, budget)?;
    Ok(out)
}

/// Returns the canonical form as a `String` (JCS output is always valid UTF-8).
pub fn canonical_string(v: &Value) -> Result<String> {
    canonical_string_within(v, &mut Budget::new(Limits::stored_history()))
}

/// [`canonical_string`] charging `budget`, as [`canonical_bytes_within`].
pub fn canonical_string_within(v: &Value, budget: &mut Budget) -> Result<String> {
    let bytes = canonical_bytes_within(v, budget)?;
    // The writer only emits copies of valid `str` data and ASCII, so this cannot fail; the
    // checked conversion keeps the crate free of `unsafe`.
    String::from_utf8(bytes).map_err(|e| Error::invalid(format!("canonical form not UTF-8: {e}")))
}

/// Appends the canonical bytes of `v` to `out`; on error `out` may hold a partial prefix.
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    write_value(v, out, &mut Budget::new(Limits::stored_history()))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 hex of the canonical bytes of `v`: the content hash.
pub fn content_hash(v: &Value) -> Result<String> {
    Ok(sha256_hex(&canonical_bytes(v)?))
}

/// [`content_hash`] charging `budget`, as [`canonical_bytes_within`].
pub fn content_hash_within(v: &Value, budget: &mut Budget) -> Result<String> {
    Ok(sha256_hex(&canonical_bytes_within(v, budget)?))
}

/// The canonical (ES6) text of a JSON number, or `Error::invalid` if JCS would change its value.
pub fn canonical_number(n: &Number) -> Result<String> {
    let mut out = Vec::with_capacity(24);
    write_number(n, &mut out)?;
    String::from_utf8(out).map_err(|e| Error::invalid(format!("number text not UTF-8: {e}")))
}

/// ECMAScript `Number.prototype.toString` of `x`; NaN and infinities have no JSON form.
pub fn format_f64(x: f64) -> Result<String> {
    let mut out = Vec::with_capacity(24);
    write_f64(x, &mut out)?;
    String::from_utf8(out).map_err(|e| Error::invalid(format!("number text not UTF-8: {e}")))
}

/// One open container of the iterative writer. The writer keeps its own stack instead of
/// recursing, so no nesting depth can overflow the (small) PostgreSQL backend stack.
enum Frame<'a> {
    Array {
        items: std::slice::Iter<'a, Value>,
        first: bool,
    },
    /// The map already iterates in JCS order.
    Object {
        members: serde_json::map::Iter<'a>,
        first: bool,
    },
    /// The map's order had to be re-sorted; `entries` returns to the pool when done.
    Sorted {
        entries: Vec<(&'a str, &'a Value)>,
        pos: usize,
    },
}

/// Output bytes between two charges of what the writer built: the budget sees the output
/// grow in steps of at most this much.
const CHARGE_BYTES_EVERY: usize = 64 << 10;

fn write_value(root: &Value, out: &mut Vec<u8>, budget: &mut Budget) -> Result<()> {
    let mut stack: Vec<Frame<'_>> = Vec::with_capacity(16);
    // Key buffers of finished `Sorted` frames, reused so re-sorting does not allocate per object.
    let mut pool: Vec<Vec<(&str, &Value)>> = Vec::new();
    let mut next = Some(root);
    // Output length already charged as built bytes (the budget counts bytes beyond it).
    let mut charged = out.len();
    loop {
        if let Some(v) = next.take() {
            budget.work(1)?;
            if out.len() - charged >= CHARGE_BYTES_EVERY {
                budget.build(0, (out.len() - charged) as u64)?;
                charged = out.len();
            }
            match v {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Bool(true) => out.extend_from_slice(b"true"),
                Value::Bool(false) => out.extend_from_slice(b"false"),
                Value::Number(n) => write_number(n, out)?,
                Value::String(s) => {
                    budget.work(s.len() as u64 / 64)?;
                    write_string(s, out)
                }
                Value::Array(items) => {
                    out.push(b'[');
                    stack.push(Frame::Array {
                        items: items.iter(),
                        first: true,
                    });
                }
                Value::Object(map) => {
                    out.push(b'{');
                    // serde_json's default map is a BTreeMap (UTF-8 byte order), which equals
                    // UTF-16 order unless astral and U+E000..U+FFFF keys meet; checking is one
                    // cheap pass, sorting is the rare path (or every time under
                    // serde_json's `preserve_order`, which feature unification may switch on).
                    let in_order = map
                        .keys()
                        .zip(map.keys().skip(1))
                        .all(|(a, b)| cmp_utf16(a, b) == Ordering::Less);
                    if in_order {
                        stack.push(Frame::Object {
                            members: map.iter(),
                            first: true,
                        });
                    } else {
                        // n log n comparisons.
                        let n = map.len() as u64;
                        budget.work(n * u64::from(u64::BITS - n.leading_zeros()))?;
                        let mut entries = pool.pop().unwrap_or_default();
                        entries.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
                        entries.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
                        stack.push(Frame::Sorted { entries, pos: 0 });
                    }
                }
            }
        }
        let Some(top) = stack.last_mut() else {
            return budget.build(0, (out.len() - charged) as u64);
        };
        match top {
            Frame::Array { items, first } => match items.next() {
                Some(item) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    next = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Frame::Object { members, first } => match members.next() {
                Some((k, item)) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    write_string(k, out);
                    out.push(b':');
                    next = Some(item);
                }
                None => {
                    out.push(b'}');
                    stack.pop();
                }
            },
            Frame::Sorted { entries, pos } => match entries.get(*pos) {
                Some(&(k, item)) => {
                    if *pos > 0 {
                        out.push(b',');
                    }
                    *pos += 1;
                    write_string(k, out);
                    out.push(b':');
                    next = Some(item);
                }
                None => {
                    out.push(b'}');
                    if let Some(Frame::Sorted { mut entries, .. }) = stack.pop() {
                        entries.clear();
                        pool.push(entries);
                    }
                }
            },
        }
    }
}

/// Orders strings by UTF-16 code units, as RFC 8785 §3.2.3 requires.
///
/// UTF-8 byte order is code point order, which differs from UTF-16 order only when a
/// supplementary character (surrogates 0xD800..) meets one in U+E000..U+FFFF; so compare
/// bytes and fix up just that case by looking at the lead bytes of the first differing char.
fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let Some(i) = x.iter().zip(y).position(|(p, q)| p != q) else {
        return x.len().cmp(&y.len());
    };
    // The prefix before `i` is shared, so both strings' current char starts at the same place.
    let mut start = i;
    while start > 0 && (x[start] & 0xC0) == 0x80 {
        start -= 1;
    }
    let (la, lb) = (x[start], y[start]);
    let astral = |l: u8| l >= 0xF0;
    let high_bmp = |l: u8| l == 0xEE || l == 0xEF;
    if astral(la) && high_bmp(lb) {
        Ordering::Less
    } else if high_bmp(la) && astral(lb) {
        Ordering::Greater
    } else {
        x[i].cmp(&y[i])
    }
}

/// Escapes per RFC 8785 §3.2.2.2: only `"`, `\` and C0 controls; everything else raw UTF-8.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]),
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// A decimal value as significant digits (no leading or trailing zeros) times 10^`exp`.
/// Zero has no digits. Comparing two of these compares exact decimal values.
#[derive(Debug)]
struct Decimal<'a> {
    negative: bool,
    digits: DigitSeq<'a>,
    exp: i64,
}

/// Significant digits, possibly split around a decimal point in the source text.
#[derive(Debug, Clone, Copy)]
struct DigitSeq<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl DigitSeq<'_> {
    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }
    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        self.head.iter().chain(self.tail).copied()
    }
}

impl PartialEq for DigitSeq<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for DigitSeq<'_> {}

/// Whether two JSON number texts have the same exact decimal value (`1`, `1.0`, `10e-1` do;
/// `0.1` and `0.10000000000000000001` do not). `None` when either is not number text.
pub fn decimal_eq(a: &str, b: &str) -> Option<bool> {
    let (x, y) = (parse_decimal(a)?, parse_decimal(b)?);
    Some(x.negative == y.negative && x.exp == y.exp && x.digits == y.digits)
}

/// Parses JSON number text (RFC 8259 grammar) into its exact decimal value.
fn parse_decimal(text: &str) -> Option<Decimal<'_>> {
    let s = text.as_bytes();
    let mut i = 0;
    let negative = s.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let int = &s[int_start..i];
    if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
        return None;
    }
    let mut frac: &[u8] = &[];
    if s.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
    }
    let mut exp: i64 = 0;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            // Saturate: any exponent this large already means ±inf or 0 for an f64, and the
            // cap keeps the digit-count arithmetic below far from i64 overflow.
            exp = (exp * 10 + i64::from(s[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        if exp_negative {
            exp = -exp;
        }
    }
    if i != s.len() {
        return None;
    }
    // value = (int ++ frac) * 10^(exp - frac.len()); drop leading and trailing zeros.
    let mut exp = exp - frac.len() as i64;
    let (mut head, mut tail) = (int, frac);
    while let Some((&b'0', rest)) = head.split_first() {
        head = rest;
    }
    if head.is_empty() {
        while let Some((&b'0', rest)) = tail.split_first() {
            tail = rest;
        }
    }
    while let Some((&b'0', rest)) = tail.split_last() {
        tail = rest;
        exp += 1;
    }
    if tail.is_empty() {
        while let Some((&b'0', rest)) = head.split_last() {
            head = rest;
            exp += 1;
        }
    }
    let digits = DigitSeq { head, tail };
    if digits.len() == 0 {
        exp = 0;
    }
    Some(Decimal {
        negative: negative && digits.len() > 0,
        digits,
        exp,
    })
}

/// A small stack buffer for `{:e}` output, so number formatting does not allocate.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 40],
            len: 0,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The ECMAScript digits of a finite, non-zero |x|: |x| reads back from `text` * 10^`exp`,
/// `text` being the shortest such digit string (at most 17 digits, no trailing zeros).
struct Shortest {
    exp: i64,
    text: StackBuf,
}

impl Shortest {
    fn of(x: f64) -> Shortest {
        let m = x.abs();
        let mut buf = StackBuf::new();
        // Rust's `{:e}` prints the shortest round-trip digits (e.g. `1.2345e-7`); cannot fail,
        // the longest `{:e}` of an f64 is 24 bytes.
        let _ = write!(buf, "{m:e}");
        let text = buf.bytes();
        let e_pos = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
        let mut digits = 0u64;
        let mut k = 0i64;
        for &b in text[..e_pos].iter().filter(|b| b.is_ascii_digit()) {
            digits = digits * 10 + u64::from(b - b'0');
            k += 1;
        }
        let sci: i64 = std::str::from_utf8(&text[(e_pos + 1).min(text.len())..])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let mut exp = sci - (k - 1);
        // ECMAScript breaks a tie between two equally close shortest candidates towards the
        // even one; Rust's formatter does not promise that, so check the odd case by hand.
        if digits % 2 == 1 {
            for other in [digits - 1, digits + 1] {
                if exactly_equals(m, (digits + other) * 5, exp - 1) && reads_back(other, exp, m) {
                    digits = other;
                    while digits.is_multiple_of(10) {
                        digits /= 10;
                        exp += 1;
                    }
                    break;
                }
            }
        }
        let mut text = StackBuf::new();
        let _ = write!(text, "{digits}");
        Shortest { exp, text }
    }

    fn digit_seq(&self) -> DigitSeq<'_> {
        DigitSeq {
            head: self.text.bytes(),
            tail: &[],
        }
    }

    /// The exponent `n` of ECMAScript's layout rules: value = 0.d1..dk * 10^n.
    fn point(&self) -> i64 {
        self.exp + self.text.len as i64
    }
}

/// Whether the positive double `m` is exactly `n` * 10^`e`, in integer arithmetic.
///
/// With m = M * 2^q (M odd) and n = N * 2^a (N odd), equality needs q = a + e and
/// M = N * 5^e (or N = M * 5^-e); past 5^27 the product could not fit M's 53 bits anyway.
fn exactly_equals(m: f64, n: u64, e: i64) -> bool {
    if n == 0 {
        return false;
    }
    let bits = m.to_bits();
    let (mantissa, q) = match (bits >> 52) & 0x7FF {
        0 => (bits & ((1 << 52) - 1), -1074),
        be => ((bits & ((1 << 52) - 1)) | (1 << 52), be as i64 - 1075),
    };
    let tz = mantissa.trailing_zeros();
    let (big_m, q) = (u128::from(mantissa >> tz), q + i64::from(tz));
    let a = n.trailing_zeros();
    let big_n = u128::from(n >> a);
    if q != i64::from(a) + e || e.unsigned_abs() > 27 {
        return false;
    }
    let p5 = 5u128.pow(e.unsigned_abs() as u32);
    if e >= 0 {
        big_n * p5 == big_m
    } else {
        big_n == big_m * p5
    }
}

/// Whether `digits` * 10^`exp` parses back to the double `m`.
fn reads_back(digits: u64, exp: i64, m: f64) -> bool {
    let mut buf = StackBuf::new();
    let _ = write!(buf, "{digits}e{exp}");
    std::str::from_utf8(buf.bytes())
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        == Some(m)
}

/// Lays out digits d1..dk with value 0.d1..dk * 10^n per ECMAScript Number::toString.
fn write_es6(negative: bool, digits: DigitSeq<'_>, n: i64, out: &mut Vec<u8>) {
    if negative {
        out.push(b'-');
    }
    let k = digits.len() as i64;
    if k <= n && n <= 21 {
        out.extend(digits.iter());
        out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let mut it = digits.iter();
        out.extend(it.by_ref().take(n as usize));
        out.push(b'.');
        out.extend(it);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n) as usize));
        out.extend(digits.iter());
    } else {
        let mut it = digits.iter();
        out.extend(it.by_ref().take(1));
        if k > 1 {
            out.push(b'.');
            out.extend(it);
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        let mut ibuf = StackBuf::new();
        let _ = write!(ibuf, "{}", (n - 1).unsigned_abs());
        out.extend_from_slice(ibuf.bytes());
    }
}

fn write_f64(x: f64, out: &mut Vec<u8>) -> Result<()> {
    if !x.is_finite() {
        return Err(Error::invalid(format!(
            "{x} has no JSON representation (RFC 8785 allows finite numbers only)"
        )));
    }
    if x == 0.0 {
        out.push(b'0');
        return Ok(());
    }
    let short = Shortest::of(x);
    write_es6(x < 0.0, short.digit_seq(), short.point(), out);
    Ok(())
}

fn inexact(text: &str, why: &str) -> Error {
    // A literal can be megabytes long: the message quotes its start only.
    let text = crate::error::excerpt(text, 80);
    Error::invalid(format!(
        "number {text} cannot be canonicalized exactly (RFC 8785 writes numbers as IEEE-754 \
         doubles): {why}; store it as a string instead"
    ))
}

fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<()> {
    let text = n.as_str();
    let bytes = text.as_bytes();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    // Fast path: integer literals up to 2^53 are exact and ES6 prints them unchanged (larger
    // ones take the general path). JSON grammar already forbids leading zeros, but check so
    // odd `Number`s take the full path.
    let safe = unsigned.len() < MAX_SAFE_INTEGER.len()
        || (unsigned.len() == MAX_SAFE_INTEGER.len() && unsigned <= MAX_SAFE_INTEGER);
    if !unsigned.is_empty()
        && unsigned.iter().all(u8::is_ascii_digit)
        && (unsigned.len() == 1 || unsigned[0] != b'0')
        && safe
    {
        if unsigned == b"0" {
            out.push(b'0'); // "-0" is 0 in ES6
        } else {
            out.extend_from_slice(bytes);
        }
        return Ok(());
    }

    let dec = parse_decimal(text)
        .ok_or_else(|| Error::invalid(format!("{text:?} is not a JSON number")))?;
    if dec.digits.len() == 0 {
        out.push(b'0');
        return Ok(());
    }
    // Fast path, no float conversion: a decimal of at most 15 significant digits (DBL_DIG)
    // in the normal range survives text -> f64 -> shortest text unchanged, so it is exact and
    // its own shortest form.
    let k = dec.digits.len() as i64;
    let point = dec.exp + k;
    if k <= 15 && (-306..=308).contains(&point) {
        write_es6(dec.negative, dec.digits, point, out);
        return Ok(());
    }
    write_checked(text, &dec, out)
}

/// The general path: converts to the nearest double and accepts the text only if it is that
/// double's shortest form, or the double's exact value, by exact decimal value.
fn write_checked(text: &str, dec: &Decimal<'_>, out: &mut Vec<u8>) -> Result<()> {
    // An exact double has at most 767 significant digits, so longer texts cannot be exact;
    // this also keeps absurdly long literals off the float parser.
    if dec.digits.len() > MAX_EXACT_DIGITS {
        let nearest = text.parse::<f64>().ok().filter(|x| x.is_finite());
        return Err(match nearest.and_then(|x| format_f64(x).ok()) {
            Some(near) => inexact(text, &format!("the nearest double is {near}")),
            None => inexact(text, "it is outside the range of a double"),
        });
    }
    let x: f64 = text
        .parse()
        .map_err(|_| Error::invalid(format!("{text:?} is not a JSON number")))?;
    if !x.is_finite() {
        return Err(inexact(text, "it is outside the range of a double"));
    }
    if x == 0.0 {
        return Err(inexact(text, "it underflows to 0 as a double"));
    }
    let short = Shortest::of(x);
    let shortest = short.digit_seq() == dec.digits && short.exp == dec.exp;
    if !shortest && !is_exact_value(x, dec) {
        let mut near = Vec::new();
        write_es6(x < 0.0, short.digit_seq(), short.point(), &mut near);
        return Err(inexact(
            text,
            &format!("the nearest double is {}", String::from_utf8_lossy(&near)),
        ));
    }
    write_es6(dec.negative, short.digit_seq(), short.point(), out);
    Ok(())
}

/// Most significant digits of a double's exact decimal value (2^-1074 has 751, the largest
/// subnormals 767).
const MAX_EXACT_DIGITS: usize = 767;

/// Whether `dec` is exactly the finite nonzero double `x`.
///
/// With |x| = M * 2^q (M odd): for q >= 0 the value is an integer whose lowest nonzero digit
/// is at most 10^22 (M < 2^53 has at most 22 factors of 5); for q < 0 it is M * 5^-q * 10^q and
/// its last digit is a 5 at 10^q. A text whose exponent cannot match is refused before any
/// big-number work, and a matching one has about as many digits as the value, so the work is
/// bounded by the text's own length.
fn is_exact_value(x: f64, dec: &Decimal<'_>) -> bool {
    let bits = x.abs().to_bits();
    let (mantissa, q) = match (bits >> 52) & 0x7FF {
        0 => (bits & ((1 << 52) - 1), -1074i64),
        be => ((bits & ((1 << 52) - 1)) | (1 << 52), be as i64 - 1075),
    };
    let tz = mantissa.trailing_zeros();
    let (m, q) = (mantissa >> tz, q + i64::from(tz));
    let plausible = if q >= 0 {
        (0..=22).contains(&dec.exp)
    } else {
        dec.exp == q
    };
    if !plausible {
        return false;
    }
    // The exact value's digits: M * 2^q, or M * 5^-q (times 10^q), in base-10^9 limbs.
    let mut limbs = Limbs::from(m);
    if q >= 0 {
        limbs.mul_pow(2, q as u32);
    } else {
        limbs.mul_pow(5, q.unsigned_abs() as u32);
    }
    let digits = limbs.to_decimal();
    let significant = digits.trim_end_matches('0');
    let exp = if q >= 0 {
        (digits.len() - significant.len()) as i64
    } else {
        q
    };
    exp == dec.exp
        && significant.len() == dec.digits.len()
        && significant.bytes().eq(dec.digits.iter())
}

/// A natural number in base 10^9, least significant limb first.
struct Limbs(Vec<u32>);

impl Limbs {
    const BASE: u64 = 1_000_000_000;

    fn from(mut n: u64) -> Self {
        let mut v = Vec::new();
        while n > 0 {
            v.push((n % Self::BASE) as u32);
            n /= Self::BASE;
        }
        Limbs(v)
    }

    /// Multiplies by `base`^`n` (`base` 2 or 5), in steps whose products fit a u64.
    fn mul_pow(&mut self, base: u64, mut n: u32) {
        let step = if base == 2 { 29 } else { 12 }; // 2^29 and 5^12 are below 10^9
        while n > 0 {
            let k = n.min(step);
            let f = base.pow(k);
            let mut carry = 0u64;
            for limb in &mut self.0 {
                let v = u64::from(*limb) * f + carry;
                *limb = (v % Self::BASE) as u32;
                carry = v / Self::BASE;
            }
            while carry > 0 {
                self.0.push((carry % Self::BASE) as u32);
                carry /= Self::BASE;
            }
            n -= k;
        }
    }

    fn to_decimal(&self) -> String {
        let mut s = String::new();
        for (i, limb) in self.0.iter().rev().enumerate() {
            if i == 0 {
                let _ = write!(s, "{limb}");
            } else {
                let _ = write!(s, "{limb:09}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::json::parse_str;

    fn canon(text: &str) -> Result<String> {
        canonical_string(&parse_str(text).unwrap())
    }

    fn num(text: &str) -> Result<String> {
        canonical_number(&text.parse::<Number>().unwrap())
    }

    #[test]
    fn es6_number_layout() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001234, "0.000001234"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (9007199254740994.0, "9007199254740994"),
            (333333333.3333333, "333333333.3333333"),
            (1e30, "1e+30"),
            (-1.25e-30, "-1.25e-30"),
            // Ties between two shortest candidates go to the even digit, as in ECMAScript.
            (f64::from_bits(0x43143ff3c1cb0959), "1424953923781206.2"),
            (f64::from_bits(0xc2dbfec8a2081be8), "-123124406820975.62"),
            (f64::from_bits(0x427fb72bdcfed480), "2179473461229.2812"),
        ];
        for &(x, want) in cases {
            assert_eq!(format_f64(x).unwrap(), want, "{x:e}");
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(format_f64(x).unwrap_err().kind, ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn exact_number_texts_are_accepted() {
        for (text, want) in [
            ("1.0", "1"),
            ("1e0", "1"),
            ("10E-1", "1"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0e999999999999999999999", "0"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("1E30", "1e+30"),
            ("1e+30", "1e+30"),
            ("0.000000000000000000000000001", "1e-27"),
            ("9007199254740992", "9007199254740992"),
            ("-9007199254740992", "-9007199254740992"),
            ("9007199254740992.0", "9007199254740992"),
            ("9.007199254740992e15", "9007199254740992"),
            ("100000000000000000000e1", "1e+21"),
            ("1e21", "1e+21"),
            ("-1.5e300", "-1.5e+300"),
            ("0.1", "0.1"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("123.456000", "123.456"),
            ("-0.5", "-0.5"),
            ("-1.5E-7", "-1.5e-7"),
            // Beyond 2^53: shortest forms, and exact values (written as their double's form).
            ("9007199254740994", "9007199254740994"),
            ("9007199254740994.0", "9007199254740994"),
            ("9.007199254740994e15", "9007199254740994"),
            ("1.5e20", "150000000000000000000"),
            ("150000000000000000000", "150000000000000000000"),
            ("-1e20", "-100000000000000000000"),
            ("123456789012345680000", "123456789012345680000"),
            ("1152921504606846976", "1152921504606847000"),
            ("1152921504606847000", "1152921504606847000"),
            (
                "0.1000000000000000055511151231257827021181583404541015625",
                "0.1",
            ),
        ] {
            assert_eq!(num(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn inexact_numbers_are_rejected() {
        for text in [
            "0.10000000000000000001",
            "9007199254740993",
            "-9007199254740993",
            "12345678901234567890",
            "1e+400",
            "-1E400",
            "1e-400",
            "0.3000000000000000001",
            "333333333.33333329",
            "9007199254740993.0",
            "0.30000000000000001",
            "1152921504606846977",
            "0.10000000000000000555111512312578270211815834045410156",
            "0.10000000000000000555111512312578270211815834045410156251",
        ] {
            let n: Number = text.parse().unwrap();
            let e = canonical_number(&n).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{text}");
            // serde_json may normalize the exponent (`-1E400` is kept as `-1E+400`).
            assert!(e.message.contains(n.as_str()), "{}", e.message);
            assert!(e.message.contains("string"), "{}", e.message);
        }
        let e = num("0.10000000000000000001").unwrap_err();
        assert!(e.message.contains("nearest double is 0.1"), "{}", e.message);
    }

    #[test]
    fn fast_path_agrees_with_the_float_round_trip() {
        // A tiny LCG keeps the test deterministic without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 11
        };
        for _ in 0..200_000 {
            let digits = next() % 10u64.pow(1 + (next() % 15) as u32);
            let exp = (next() % 640) as i64 - 330;
            let text = format!("{}{digits}e{exp}", if next() % 2 == 0 { "-" } else { "" });
            let dec = parse_decimal(&text).unwrap();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let fast_result = write_number(&text.parse::<Number>().unwrap(), &mut fast);
            let slow_result = if dec.digits.len() == 0 {
                slow.push(b'0');
                Ok(())
            } else {
                write_checked(&text, &dec, &mut slow)
            };
            assert_eq!(fast_result.is_ok(), slow_result.is_ok(), "{text}");
            assert_eq!(fast, slow, "{text}");
        }
    }

    #[test]
    fn exact_decimal_comparison() {
        assert!(exactly_equals(0.5, 5, -1));
        assert!(exactly_equals(
            f64::from_bits(0x43143ff3c1cb0959),
            142495392378120625,
            -2
        ));
        assert!(!exactly_equals(0.1, 1, -1));
        assert!(exactly_equals(1e22, 1, 22));
        assert!(!exactly_equals(1e23, 1, 23));
        assert!(!exactly_equals(5e-324, 5, -324));
        assert!(exactly_equals(2f64.powi(-20), 95367431640625, -20));
        assert!(!exactly_equals(2f64.powi(-20), 95367431640625, -21));
    }

    #[test]
    fn string_escaping() {
        let s = "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \"\\/\u{7f}\u{80}é€😂</script>";
        let got = canonical_string(&Value::String(s.into())).unwrap();
        assert_eq!(
            got,
            "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\u{7f}\u{80}é€😂</script>\""
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+E000 (0xE000) sorts after U+1F602 (0xD83D 0xDE02) in UTF-16, before it in UTF-8.
        let got = canon(r#"{"\ue000":1,"\ud83d\ude02":2,"a":3,"":4,"\u00e9":5,"aa":6}"#).unwrap();
        assert_eq!(
            got,
            "{\"\":4,\"a\":3,\"aa\":6,\"é\":5,\"😂\":2,\"\u{e000}\":1}"
        );
        assert_eq!(cmp_utf16("\u{ffff}", "\u{10000}"), Ordering::Greater);
        assert_eq!(cmp_utf16("x\u{e001}", "x\u{e000}"), Ordering::Greater);
        assert_eq!(cmp_utf16("\u{d7ff}", "\u{10000}"), Ordering::Less);
        assert_eq!(cmp_utf16("ab", "abc"), Ordering::Less);
    }

    #[test]
    fn nested_structures_and_hash() {
        let v = parse_str(r#"{"b":[1,2.50,{"z":null,"y":true}],"a":"x"}"#).unwrap();
        assert_eq!(
            canonical_string(&v).unwrap(),
            r#"{"a":"x","b":[1,2.5,{"y":true,"z":null}]}"#
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            content_hash(&v).unwrap(),
            sha256_hex(br#"{"a":"x","b":[1,2.5,{"y":true,"z":null}]}"#)
        );
        // An inexact number deep inside fails the whole hash.
        let bad = parse_str(r#"{"a":[{"b":0.10000000000000000001}]}"#).unwrap();
        assert_eq!(
            content_hash(&bad).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn the_writer_charges_its_budget_as_it_goes() {
        let limits = |max_work, max_bytes| {
            Budget::new(Limits {
                max_work,
                max_nodes: 10,
                max_bytes,
            })
        };
        // Control characters escape to six bytes each: the output outgrows the input.
        let v = Value::Array(vec![Value::String("\u{1}".repeat(100_000)); 4]);
        let e = canonical_bytes_within(&v, &mut limits(u64::MAX, 1 << 20)).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::LimitExceeded);
        assert!(e.message.contains("awf.max_built_mb"), "{e}");
        let mut b = limits(u64::MAX, 4 << 20);
        assert_eq!(canonical_bytes_within(&v, &mut b).unwrap().len(), 2_400_013);
        assert_eq!(b.bytes_built(), 2_400_013);
        // A unit per value (and the sort of keys out of order): a million values is over.
        let many = Value::Array(vec![Value::Null; 1_000_000]);
        let e = canonical_bytes_within(&many, &mut limits(500_000, u64::MAX)).unwrap_err();
        assert!(e.message.contains("awf.max_work_units"), "{e}");
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 200_000;
        let mut v = Value::Null;
        for i in 0..depth {
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object([("k".to_string(), v)].into_iter().collect())
            };
        }
        let s = canonical_string(&v).unwrap();
        assert_eq!(s.len(), "null".len() + depth / 2 * (2 + "{\"k\":}".len()));
        // serde_json drops recursively; dismantle iteratively so the test itself survives.
        loop {
            v = match v {
                Value::Array(mut a) => a.pop().unwrap_or(Value::Null),
                Value::Object(mut m) => m.remove("k").unwrap_or(Value::Null),
                _ => break,
            };
        }
    }

    #[test]
    fn numbers_built_from_rust_values() {
        let v = serde_json::json!({"f": 0.5, "g": 1e-7, "i": -3, "u": u64::MAX});
        let e = canonical_bytes(&v).unwrap_err();
        assert!(e.message.contains("18446744073709551615"), "{}", e.message);
        let v = serde_json::json!({"f": 0.5, "g": 1e-7, "i": -3, "h": 1.0});
        assert_eq!(
            canonical_string(&v).unwrap(),
            r#"{"f":0.5,"g":1e-7,"h":1,"i":-3}"#
        );
    }
}
