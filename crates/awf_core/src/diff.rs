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
//!
//! Complexity: elements are bucketed by a structural hash keyed with a per-call random key
//! (SipHash), so no input can be built to make them collide: classing an array is linear in
//! its size. Myers costs O((N + M) · D) with D at most [`MAX_EDIT_DISTANCE`]. Each nesting level
//! hashes its subtrees again, so a whole diff is O(size · depth) plus the alignments, and all of
//! it is charged to the caller's [`Budget`] (54000 past the limit, interrupts polled).

use crate::budget::Budget;
use crate::error::Result;
use crate::json::value_eq;
use crate::patch::{ops_into_value, Op};
use serde_json::{Map, Value};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Edit distance (insertions + deletions) beyond which arrays are paired by index instead of
/// aligned; keeps the Myers search to about 260,000 steps and 1 MB of trace (a few ms).
pub const MAX_EDIT_DISTANCE: usize = 512;

/// Computes RFC 6902 operations that turn `a` into `b`, charging `budget` as it goes.
pub fn diff(a: &Value, b: &Value, budget: &mut Budget) -> Result<Vec<Op>> {
    let mut cx = Cx {
        ops: Vec::new(),
        path: String::new(),
        keys: RandomState::new(),
        budget,
    };
    cx.diff_into(a, b)?;
    Ok(cx.ops)
}

/// Computes the RFC 6902 patch document (a JSON array) that turns `a` into `b`.
pub fn diff_value(a: &Value, b: &Value, budget: &mut Budget) -> Result<Value> {
    Ok(ops_into_value(diff(a, b, budget)?))
}

/// One diff in progress: the operations so far, the current path, the hash key and the budget.
struct Cx<'b> {
    ops: Vec<Op>,
    path: String,
    keys: RandomState,
    budget: &'b mut Budget,
}

impl Cx<'_> {
    fn diff_into(&mut self, a: &Value, b: &Value) -> Result<()> {
        self.budget.work(1)?;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => self.diff_objects(x, y),
            (Value::Array(x), Value::Array(y)) => self.diff_arrays(x, y),
            _ => {
                if !value_eq(a, b) {
                    self.replace(b)?;
                }
                Ok(())
            }
        }
    }

    /// A copy of the current path for a new operation, charged by its length: a long member
    /// name above many removed elements would otherwise be copied once per operation for free.
    fn op_path(&mut self) -> Result<String> {
        self.budget.build(1, self.path.len() as u64)?;
        Ok(self.path.clone())
    }

    fn replace(&mut self, b: &Value) -> Result<()> {
        self.budget.build_copy_of(b)?;
        let path = self.op_path()?;
        self.ops.push(Op::Replace {
            path,
            value: b.clone(),
        });
        Ok(())
    }
    fn diff_objects(&mut self, x: &Map<String, Value>, y: &Map<String, Value>) -> Result<()> {
        let base = self.path.len();
        for (k, va) in x {
            push_key(&mut self.path, k);
            match y.get(k) {
                None => {
                    let path = self.op_path()?;
                    self.ops.push(Op::Remove { path });
                }
                Some(vb) => self.diff_into(va, vb)?,
            }
            self.path.truncate(base);
        }
        for (k, vb) in y {
            if !x.contains_key(k) {
                push_key(&mut self.path, k);
                self.budget.build_copy_of(vb)?;
                let path = self.op_path()?;
                self.ops.push(Op::Add {
                    path,
                    value: vb.clone(),
                });
                self.path.truncate(base);
            }
        }
        Ok(())
    }
    fn diff_arrays(&mut self, x: &[Value], y: &[Value]) -> Result<()> {
        let (n, m) = (x.len(), y.len());
        let mut pre = 0;
        while pre < n && pre < m && value_eq(&x[pre], &y[pre]) {
            pre += 1;
        }
        let mut suf = 0;
        while suf < n - pre && suf < m - pre && value_eq(&x[n - 1 - suf], &y[m - 1 - suf]) {
            suf += 1;
        }
        self.budget.work((pre + suf) as u64)?;
        let xm = &x[pre..n - suf];
        let ym = &y[pre..m - suf];
        if xm.is_empty() && ym.is_empty() {
            return Ok(());
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
            let (ia, ib, shared) = class_ids(xm, ym, &self.keys, self.budget)?;
            if shared {
                align(&ia, &ib, MAX_EDIT_DISTANCE, self.budget)?.unwrap_or_else(|| vec![whole])
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
                .flat_map(|h| {
                    (0..h.a_len.min(h.b_len)).map(move |i| (h.a_start + i, h.b_start + i))
                })
                .filter(|&(i, j)| same_container(&xm[i], &ym[j]))
                .count();
        }
        if kept == 0 {
            self.budget.build_copy_of(&Value::Array(Vec::new()))?;
            for v in y {
                self.budget.build_copy_of(v)?;
            }
            let path = self.op_path()?;
            self.ops.push(Op::Replace {
                path,
                value: Value::Array(y.to_vec()),
            });
            return Ok(());
        }
        let base = self.path.len();
        for h in hunks {
            // Everything before this hunk already looks like `b`, so its position in the array
            // being patched is its position in `b`.
            let pos = pre + h.b_start;
            let k = h.a_len.min(h.b_len);
            for i in 0..k {
                push_index(&mut self.path, pos + i);
                self.diff_into(&xm[h.a_start + i], &ym[h.b_start + i])?;
                self.path.truncate(base);
            }
            for _ in k..h.a_len {
                push_index(&mut self.path, pos + k);
                let path = self.op_path()?;
                self.ops.push(Op::Remove { path });
                self.path.truncate(base);
            }
            for j in k..h.b_len {
                push_index(&mut self.path, pos + j);
                let v = &ym[h.b_start + j];
                self.budget.build_copy_of(v)?;
                let path = self.op_path()?;
                self.ops.push(Op::Add {
                    path,
                    value: v.clone(),
                });
                self.path.truncate(base);
            }
        }
        Ok(())
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

fn same_container(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    )
}

/// Maps every element to a small id such that ids are equal exactly when the elements are
/// `value_eq`, so the alignment compares integers and each element is hashed once.
fn class_ids(
    xs: &[Value],
    ys: &[Value],
    keys: &RandomState,
    budget: &mut Budget,
) -> Result<(Vec<u32>, Vec<u32>, bool)> {
    let mut classes: HashMap<u64, Vec<(u32, &Value)>, BuildHasherDefault<PassThrough>> =
        HashMap::default();
    let mut next = 0u32;
    let mut ia = Vec::with_capacity(xs.len());
    let mut ib = Vec::with_capacity(ys.len());
    for (v, out) in xs
        .iter()
        .map(|v| (v, true))
        .chain(ys.iter().map(|v| (v, false)))
    {
        let bucket = classes.entry(hash_value(v, keys, budget)?).or_default();
        // A keyed hash makes a bucket of distinct values a chance event, but each comparison
        // is still charged, so not even bad luck makes this quadratic without a bound.
        budget.work(bucket.len() as u64)?;
        let id = match bucket.iter().find(|(_, rep)| value_eq(rep, v)) {
            Some(&(id, _)) => id,
            None => {
                let id = next;
                next += 1;
                bucket.push((id, v));
                id
            }
        };
        if out {
            ia.push(id)
        } else {
            ib.push(id)
        }
    }
    // `a` took the ids below its class count, so a smaller id in `b` is a shared element.
    let a_classes = ia.iter().max().map_or(0, |&m| m + 1);
    let shared = ib.iter().any(|&id| id < a_classes);
    Ok((ia, ib, shared))
}

/// The keys are already (keyed) hashes: the table uses them as they are.
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
        self.0 = n;
    }
}

/// A structural hash consistent with `value_eq`, keyed so that nobody without the key can
/// build colliding values: numbers hash by their f64 value (equal numbers have equal f64s),
/// objects by an order-independent sum of keyed member hashes. Charges one unit per value.
fn hash_value(v: &Value, keys: &RandomState, budget: &mut Budget) -> Result<u64> {
    budget.work(1)?;
    let mut h = keys.build_hasher();
    match v {
        Value::Null => h.write_u8(1),
        Value::Bool(b) => {
            h.write_u8(2);
            h.write_u8(u8::from(*b));
        }
        Value::Number(n) => {
            h.write_u8(3);
            // `+ 0.0` turns -0.0 into 0.0, which `value_eq` considers equal.
            h.write_u64(n.as_f64().map_or(0, |f| (f + 0.0).to_bits()));
        }
        Value::String(s) => {
            h.write_u8(4);
            h.write(s.as_bytes());
            budget.work(s.len() as u64 / 64)?;
        }
        Value::Array(a) => {
            h.write_u8(5);
            h.write_usize(a.len());
            for e in a {
                h.write_u64(hash_value(e, keys, budget)?);
            }
        }
        Value::Object(m) => {
            let mut sum = 0u64;
            for (k, v) in m {
                let mut member = keys.build_hasher();
                member.write(k.as_bytes());
                member.write_u64(hash_value(v, keys, budget)?);
                sum = sum.wrapping_add(member.finish());
            }
            h.write_u8(6);
            h.write_usize(m.len());
            h.write_u64(sum);
        }
    }
    Ok(h.finish())
}

/// Myers' greedy shortest edit script over id sequences; `None` when it needs more than
/// `max_d` insertions plus deletions.
fn align(a: &[u32], b: &[u32], max_d: usize, budget: &mut Budget) -> Result<Option<Vec<Hunk>>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let limit = (a.len() + b.len()).min(max_d) as isize;
    let off = limit + 1;
    let mut v = vec![0isize; 2 * limit as usize + 3];
    // Round d's V[-d..=d] is kept at trace[d*d..(d+1)*(d+1)] (x never exceeds n, so u32
    // fits); backtracking reads round d-1 at k±1.
    let mut trace: Vec<u32> = Vec::new();
    let mut found = None;
    'rounds: for d in 0..=limit {
        // A round visits 2d + 1 diagonals; its snakes are charged as they are walked.
        budget.work(2 * d as u64 + 1)?;
        let mut k = -d;
        while k <= d {
            let i = (k + off) as usize;
            let mut x = if k == -d || (k != d && v[i - 1] < v[i + 1]) {
                v[i + 1]
            } else {
                v[i - 1] + 1
            };
            let mut y = x - k;
            let snake_from = x;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            budget.work((x - snake_from) as u64)?;
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
    let Some(total) = found else {
        return Ok(None);
    };

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
    Ok(Some(hunks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::apply;
    use serde_json::json;

    fn check(a: Value, b: Value) -> Vec<Op> {
        let ops = diff(&a, &b, &mut Budget::default()).unwrap();
        let patched = apply(
            &a,
            &crate::patch::ops_to_value(&ops),
            &mut Budget::default(),
        )
        .unwrap();
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
        let h = align(&[1, 2, 3], &[1, 4, 3], 10, &mut Budget::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            h,
            [Hunk {
                a_start: 1,
                a_len: 1,
                b_start: 1,
                b_len: 1
            }]
        );
        assert!(
            align(&[1, 2, 3, 4], &[5, 6, 7, 8], 3, &mut Budget::default())
                .unwrap()
                .is_none()
        );
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
