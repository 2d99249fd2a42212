//! Structural diff producing RFC 6902 patches.
//!
//! Guarantee: applying `diff(a, b)` to `a` yields a document whose canonical form (RFC 8785) is
//! byte-identical to that of `b`. Numbers that are equal by value (`1` and `1.0`) produce no
//! operation, since their canonical forms are the same.
//!
//! Objects are compared member by member. Arrays are aligned by a longest common subsequence
//! (Myers' O(ND) algorithm over per-element equivalence ids, after trimming the common prefix
//! and suffix), so inserting or removing one element anywhere costs one operation. Where a run
//! of removed elements meets a run of inserted ones, they are paired up and diffed recursively
//! (an element edited in place becomes operations inside it, not a remove and an add).
//!
//! Bound: when the middle of an array needs more than [`MAX_EDIT_DISTANCE`] insertions plus
//! deletions, the alignment gives up and pairs elements by index instead (recursing into each
//! pair, then removing or adding the tail). That is always correct, costs linear time, and is
//! what you want when most elements were edited in place. And when nothing of the old array
//! survives (no equal element, no pair of containers to diff), the array is replaced whole.

use crate::json::value_eq;
use crate::patch::{ops_into_value, Op};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

/// Edit distance (insertions + deletions) beyond which arrays are paired by index instead of
/// aligned; keeps the Myers search to about 260,000 steps and 1 MB of trace (a few ms).
pub const MAX_EDIT_DISTANCE: usize = 512;

/// Computes RFC 6902 operations that turn `a` into `b`.
pub fn diff(a: &Value, b: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut path = String::new();
    diff_into(a, b, &mut path, &mut ops);
    ops
}

/// Computes the RFC 6902 patch document (a JSON array) that turns `a` into `b`.
pub fn diff_value(a: &Value, b: &Value) -> Value {
    ops_into_value(diff(a, b))
}

fn diff_into(a: &Value, b: &Value, path: &mut String, ops: &mut Vec<Op>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => diff_objects(x, y, path, ops),
        (Value::Array(x), Value::Array(y)) => diff_arrays(x, y, path, ops),
        _ => {
            if !value_eq(a, b) {
                ops.push(Op::Replace {
                    path: path.clone(),
                    value: b.clone(),
                });
            }
        }
    }
}

fn diff_objects(
    x: &Map<String, Value>,
    y: &Map<String, Value>,
    path: &mut String,
    ops: &mut Vec<Op>,
) {
    let base = path.len();
    for (k, va) in x {
        push_key(path, k);
        match y.get(k) {
            None => ops.push(Op::Remove { path: path.clone() }),
            Some(vb) => diff_into(va, vb, path, ops),
        }
        path.truncate(base);
    }
    for (k, vb) in y {
        if !x.contains_key(k) {
            push_key(path, k);
            ops.push(Op::Add {
                path: path.clone(),
                value: vb.clone(),
            });
            path.truncate(base);
        }
    }
}

fn push_key(path: &mut String, key: &str) {
    path.push('/');
    if key.contains(['~', '/']) {
        for c in key.chars() {
            match c {
                '~' => path.push_str("~0"),
                '/' => path.push_str("~1"),
                c => path.push(c),
            }
        }
    } else {
        path.push_str(key);
    }
}

fn push_index(path: &mut String, i: usize) {
    // Writing to a String cannot fail.
    let _ = write!(path, "/{i}");
}

/// A run of the middle where `a[a_start..a_start+a_len]` becomes `b[b_start..b_start+b_len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hunk {
    a_start: usize,
    a_len: usize,
    b_start: usize,
    b_len: usize,
}

fn diff_arrays(x: &[Value], y: &[Value], path: &mut String, ops: &mut Vec<Op>) {
    let (n, m) = (x.len(), y.len());
    let mut pre = 0;
    while pre < n && pre < m && value_eq(&x[pre], &y[pre]) {
        pre += 1;
    }
    let mut suf = 0;
    while suf < n - pre && suf < m - pre && value_eq(&x[n - 1 - suf], &y[m - 1 - suf]) {
        suf += 1;
    }
    let xm = &x[pre..n - suf];
    let ym = &y[pre..m - suf];
    if xm.is_empty() && ym.is_empty() {
        return;
    }
    let whole = Hunk {
        a_start: 0,
        a_len: xm.len(),
        b_start: 0,
        b_len: ym.len(),
    };
    let hunks = if xm.is_empty() || ym.is_empty() {
        vec![whole]
    } else {
        let (ia, ib, shared) = class_ids(xm, ym);
        if shared {
            align(&ia, &ib, MAX_EDIT_DISTANCE).unwrap_or_else(|| vec![whole])
        } else {
            vec![whole]
        }
    };
    // Elements of `b` that reuse something of `a` (equal, or diffed recursively). With none,
    // every element would be its own add or replace: one replace of the array is smaller.
    let edited: usize = hunks.iter().map(|h| h.a_len).sum();
    let mut kept = pre + suf + (xm.len() - edited);
    if kept == 0 {
        kept = hunks
            .iter()
            .flat_map(|h| (0..h.a_len.min(h.b_len)).map(move |i| (h.a_start + i, h.b_start + i)))
            .filter(|&(i, j)| same_container(&xm[i], &ym[j]))
            .count();
    }
    if kept == 0 {
        ops.push(Op::Replace {
            path: path.clone(),
            value: Value::Array(y.to_vec()),
        });
        return;
    }
    let base = path.len();
    for h in hunks {
        // Everything before this hunk already looks like `b`, so its position in the array
        // being patched is its position in `b`.
        let pos = pre + h.b_start;
        let k = h.a_len.min(h.b_len);
        for i in 0..k {
            push_index(path, pos + i);
            diff_into(&xm[h.a_start + i], &ym[h.b_start + i], path, ops);
            path.truncate(base);
        }
        for _ in k..h.a_len {
            push_index(path, pos + k);
            ops.push(Op::Remove { path: path.clone() });
            path.truncate(base);
        }
        for j in k..h.b_len {
            push_index(path, pos + j);
            ops.push(Op::Add {
                path: path.clone(),
                value: ym[h.b_start + j].clone(),
            });
            path.truncate(base);
        }
    }
}

fn same_container(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    )
}

/// Maps every element to a small id such that ids are equal exactly when the elements are
/// `value_eq`, so the alignment compares integers and each element is hashed once.
fn class_ids(xs: &[Value], ys: &[Value]) -> (Vec<u32>, Vec<u32>, bool) {
    let mut classes: HashMap<u64, Vec<(u32, &Value)>, BuildHasherDefault<PassThrough>> =
        HashMap::default();
    let mut next = 0u32;
    let mut id_of = |v| {
        let bucket = classes.entry(hash_value(v)).or_default();
        if let Some(&(id, _)) = bucket.iter().find(|(_, rep)| value_eq(rep, v)) {
            return id;
        }
        let id = next;
        next += 1;
        bucket.push((id, v));
        id
    };
    let ia: Vec<u32> = xs.iter().map(&mut id_of).collect();
    let ib: Vec<u32> = ys.iter().map(&mut id_of).collect();
    // `a` took the ids below its class count, so a smaller id in `b` is a shared element.
    let a_classes = ia.iter().max().map_or(0, |&m| m + 1);
    let shared = ib.iter().any(|&id| id < a_classes);
    (ia, ib, shared)
}

/// The keys are already hashes; only their bits need spreading.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // `mix` only carries entropy upwards, and the table indexes by the low bits: without
        // this fold, small integers (f64 bits with zero low bits) all land in one bucket.
        let n = (n ^ (n >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let n = (n ^ (n >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = n ^ (n >> 31);
    }
}

const K: u64 = 0x517c_c1b7_2722_0a95;

fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(K)
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= u64::from(b) << (8 * i);
    }
    mix(h, tail)
}

/// A structural hash consistent with `value_eq`: numbers hash by their f64 value (equal numbers
/// have equal f64s), objects by an order-independent sum of their members.
fn hash_value(v: &Value) -> u64 {
    match v {
        Value::Null => mix(1, 0),
        Value::Bool(b) => mix(2, u64::from(*b)),
        Value::Number(n) => {
            // `+ 0.0` turns -0.0 into 0.0, which `value_eq` considers equal.
            mix(3, n.as_f64().map_or(0, |f| (f + 0.0).to_bits()))
        }
        Value::String(s) => mix(4, hash_bytes(s.as_bytes())),
        Value::Array(a) => a
            .iter()
            .fold(mix(5, a.len() as u64), |h, e| mix(h, hash_value(e))),
        Value::Object(m) => {
            let sum = m.iter().fold(0u64, |acc, (k, v)| {
                acc.wrapping_add(mix(hash_bytes(k.as_bytes()), hash_value(v)))
            });
            mix(mix(6, m.len() as u64), sum)
        }
    }
}

/// Myers' greedy shortest edit script over id sequences; `None` when it needs more than
/// `max_d` insertions plus deletions.
fn align(a: &[u32], b: &[u32], max_d: usize) -> Option<Vec<Hunk>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let limit = (a.len() + b.len()).min(max_d) as isize;
    let off = limit + 1;
    let mut v = vec![0isize; 2 * limit as usize + 3];
    // Round d's V[-d..=d] is kept at trace[d*d..(d+1)*(d+1)] (x never exceeds n, so u32
    // fits); backtracking reads round d-1 at k±1.
    let mut trace: Vec<u32> = Vec::new();
    let mut found = None;
    'rounds: for d in 0..=limit {
        let mut k = -d;
        while k <= d {
            let i = (k + off) as usize;
            let mut x = if k == -d || (k != d && v[i - 1] < v[i + 1]) {
                v[i + 1]
            } else {
                v[i - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[i] = x;
            if x >= n && y >= m {
                trace.extend(
                    v[(off - d) as usize..=(off + d) as usize]
                        .iter()
                        .map(|&x| x as u32),
                );
                found = Some(d);
                break 'rounds;
            }
            k += 2;
        }
        trace.extend(
            v[(off - d) as usize..=(off + d) as usize]
                .iter()
                .map(|&x| x as u32),
        );
    }
    let total = found?;

    let mut deleted = vec![false; a.len()];
    let mut inserted = vec![false; b.len()];
    let (mut x, mut y) = (n, m);
    for d in (1..=total).rev() {
        let prev = &trace[((d - 1) * (d - 1)) as usize..(d * d) as usize];
        let at = |k: isize| prev[(k + d - 1) as usize] as isize;
        let k = x - y;
        let down = k == -d || (k != d && at(k - 1) < at(k + 1));
        let pk = if down { k + 1 } else { k - 1 };
        let px = at(pk);
        let py = px - pk;
        if down {
            inserted[py as usize] = true;
        } else {
            deleted[px as usize] = true;
        }
        x = px;
        y = py;
    }

    let mut hunks = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (si, sj) = (i, j);
        loop {
            let before = (i, j);
            while i < a.len() && deleted[i] {
                i += 1;
            }
            while j < b.len() && inserted[j] {
                j += 1;
            }
            if (i, j) == before {
                break;
            }
        }
        if (i, j) != (si, sj) {
            hunks.push(Hunk {
                a_start: si,
                a_len: i - si,
                b_start: sj,
                b_len: j - sj,
            });
        } else {
            // Neither side is edited here, so both elements are the matched pair.
            i += 1;
            j += 1;
        }
    }
    Some(hunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::apply;
    use serde_json::json;

    fn check(a: Value, b: Value) -> Vec<Op> {
        let ops = diff(&a, &b);
        let patched = apply(&a, &crate::patch::ops_to_value(&ops)).unwrap();
        assert!(
            crate::json::value_eq(&patched, &b),
            "{a} -> {b}: {ops:?} gave {patched}"
        );
        ops
    }

    #[test]
    fn aligns_arrays() {
        assert_eq!(check(json!([1, 2, 3]), json!([1, 9, 2, 3])).len(), 1);
        assert_eq!(check(json!([1, 2, 3]), json!([1, 3])).len(), 1);
        check(json!([1, 2, 3, 4, 5]), json!([5, 4, 3, 2, 1]));
        check(
            json!(["a", "b", "c", "a", "b", "b", "a"]),
            json!(["c", "b", "a", "b", "a", "c"]),
        );
        check(json!([{"a": 1}, 2]), json!([{"a": 2}, 3, 4]));
        assert!(check(json!([1, 2.0]), json!([1.0, 2])).is_empty());
        assert_eq!(check(json!([1, 2]), json!([])).len(), 1);
    }

    #[test]
    fn align_hunks() {
        let h = align(&[1, 2, 3], &[1, 4, 3], 10).unwrap();
        assert_eq!(
            h,
            [Hunk {
                a_start: 1,
                a_len: 1,
                b_start: 1,
                b_len: 1
            }]
        );
        assert!(align(&[1, 2, 3, 4], &[5, 6, 7, 8], 3).is_none());
    }

    #[test]
    fn escapes_keys() {
        let ops = check(json!({"a/b": 1, "c~": 2}), json!({"a/b": 2}));
        assert_eq!(
            ops_into_value(ops),
            json!([
                {"op": "replace", "path": "/a~1b", "value": 2},
                {"op": "remove", "path": "/c~0"}
            ])
        );
    }
}
