//! Work and size budgets: every algorithm reachable from SQL or HTTP charges what it does and
//! what it builds against one [`Budget`], checked as it goes, so a crafted input (a JSON Patch
//! that doubles the document with each `copy`, an array built to defeat the diff's alignment)
//! ends in a clear "over a limit" error instead of exhausting the server.
//!
//! Units are deliberately coarse: one unit of work is about one value visited, compared,
//! hashed or shifted; one node is one JSON value (a scalar, an array or an object) built, and
//! its bytes are the text of its strings, numbers and member names (a one-node string can be a
//! megabyte, so nodes alone would let `copy` of one long string grow without limit).
//! [`Budget::work`] also polls the host's interrupt check every [`POLL_EVERY`] units, which is
//! how `statement_timeout` and `pg_cancel_backend` reach a long-running loop in the extension.

use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// Work units between two calls of the interrupt check: about a millisecond of work.
pub const POLL_EVERY: u64 = 16_384;

/// The limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most work units one call may spend (`awf.max_work_units`).
    pub max_work: u64,
    /// Most JSON nodes one call may build beyond its input (`awf.max_built_nodes`).
    pub max_nodes: u64,
    /// Most bytes of text (strings, numbers, member names) one call may build beyond its
    /// input (`awf.max_built_mb`).
    pub max_bytes: u64,
}

impl Default for Limits {
    /// About a second of work and a few hundred MB at most: far above any real turn.
    fn default() -> Self {
        Limits {
            max_work: 100_000_000,
            max_nodes: 2_000_000,
            max_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// No limit, only interrupt checks: for replaying history the extension itself stored,
    /// which was bounded when it was written (a later, lower limit must not make it unreadable).
    pub const fn stored_history() -> Self {
        Limits {
            max_work: u64::MAX,
            max_nodes: u64::MAX,
            max_bytes: u64::MAX,
        }
    }
}

/// What one call may still spend.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    work: u64,
    nodes: u64,
    bytes: u64,
    next_poll: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(Limits::default())
    }
}

static INTERRUPT_CHECK: OnceLock<fn()> = OnceLock::new();

/// Installs the host's interrupt check (the extension passes PostgreSQL's
/// `CHECK_FOR_INTERRUPTS`); it may unwind out of the algorithm to cancel it. Set once per
/// process; later calls are ignored.
pub fn set_interrupt_check(check: fn()) {
    let _ = INTERRUPT_CHECK.set(check);
}

impl Budget {
    /// A fresh budget with these limits.
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            work: 0,
            nodes: 0,
            bytes: 0,
            next_poll: POLL_EVERY,
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Work units spent so far.
    pub fn work_spent(&self) -> u64 {
        self.work
    }

    /// Nodes built so far.
    pub fn nodes_built(&self) -> u64 {
        self.nodes
    }

    /// Charges `units` of work; over the limit is 54000 naming the setting.
    pub fn work(&mut self, units: u64) -> Result<()> {
        self.work = self.work.saturating_add(units);
        if self.work >= self.next_poll {
            self.next_poll = self.work.saturating_add(POLL_EVERY);
            if let Some(check) = INTERRUPT_CHECK.get() {
                check();
            }
        }
        if self.work > self.limits.max_work {
            return Err(Error::limit(format!(
                "the call needs more than {} units of work, the limit set by awf.max_work_units",
                self.limits.max_work
            )));
        }
        Ok(())
    }

    /// Bytes built so far.
    pub fn bytes_built(&self) -> u64 {
        self.bytes
    }

    /// Charges `nodes` built holding `bytes` of text (and the work of building them); over
    /// either limit is 54000.
    pub fn build(&mut self, nodes: u64, bytes: u64) -> Result<()> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > self.limits.max_nodes {
            return Err(Error::limit(format!(
                "the call would build more than {} JSON values, the limit set by \
                 awf.max_built_nodes",
                self.limits.max_nodes
            )));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(Error::limit(format!(
                "the call would build more than {} MB of JSON text, the limit set by \
                 awf.max_built_mb",
                self.limits.max_bytes >> 20
            )));
        }
        self.work(nodes.saturating_add(bytes / 64))
    }

    /// Charges a copy of `v` and returns its size: measures it without ever counting past
    /// what is left, so even sizing a huge value costs no more than the budget allows.
    pub fn build_copy_of(&mut self, v: &Value) -> Result<Size> {
        let size = measure_upto(
            v,
            self.limits
                .max_nodes
                .saturating_sub(self.nodes)
                .saturating_add(1),
            self.limits
                .max_bytes
                .saturating_sub(self.bytes)
                .saturating_add(1),
        );
        self.build(size.nodes, size.bytes)?;
        Ok(size)
    }

    /// Charges a walk over all of `v` (nothing built) and returns its size.
    pub fn visit(&mut self, v: &Value) -> Result<Size> {
        let left = self
            .limits
            .max_work
            .saturating_sub(self.work)
            .saturating_add(1);
        let size = measure_upto(v, left, u64::MAX);
        self.work(size.nodes)?;
        Ok(size)
    }
}

/// The size of a JSON value, as [`measure_upto`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    /// JSON values, itself included.
    pub nodes: u64,
    /// Bytes of string, number and member-name text.
    pub bytes: u64,
    /// How deeply it nests (a scalar is 0, `[]` is 1), as in [`crate::json::depth`].
    pub depth: usize,
}

/// Measures `v`, stopping as soon as it has counted `max_nodes` nodes or `max_bytes` bytes
/// (the result then reports at least that many). Iterative, so any depth is fine.
pub fn measure_upto(v: &Value, max_nodes: u64, max_bytes: u64) -> Size {
    let mut size = Size::default();
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        size.nodes += 1;
        match v {
            Value::Array(a) => {
                size.depth = size.depth.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(o) => {
                size.depth = size.depth.max(d + 1);
                for (k, x) in o {
                    size.bytes = size.bytes.saturating_add(k.len() as u64);
                    stack.push((x, d + 1));
                }
            }
            Value::String(s) => size.bytes = size.bytes.saturating_add(s.len() as u64),
            Value::Number(n) => size.bytes = size.bytes.saturating_add(n.as_str().len() as u64),
            Value::Bool(_) | Value::Null => {}
        }
        if size.nodes >= max_nodes || size.bytes >= max_bytes {
            break;
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn work_over_the_limit_is_a_limit_error() {
        let mut b = Budget::new(Limits {
            max_work: 10,
            max_nodes: 5,
            max_bytes: 100,
        });
        b.work(10).unwrap();
        let e = b.work(1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert!(e.message.contains("awf.max_work_units"), "{e}");
    }

    #[test]
    fn copies_are_counted_only_up_to_what_is_left() {
        let mut b = Budget::new(Limits {
            max_work: 1_000,
            max_nodes: 5,
            max_bytes: 100,
        });
        let size = b.build_copy_of(&json!([1, 2, 3])).unwrap();
        assert_eq!((size.nodes, size.bytes, size.depth), (4, 3, 1));
        assert_eq!(b.nodes_built(), 4);
        let e = b.build_copy_of(&json!([1, [2, 3], 4])).unwrap_err();
        assert!(e.message.contains("awf.max_built_nodes"), "{e}");
        assert_eq!(measure_upto(&json!({"a": [1, 2]}), 100, 100).nodes, 4);
        assert_eq!(measure_upto(&json!({"a": [1, 2]}), 2, 100).nodes, 2);
    }

    #[test]
    fn long_strings_are_charged_by_their_bytes() {
        let mut b = Budget::new(Limits {
            max_work: 1_000_000,
            max_nodes: 1_000,
            max_bytes: 1 << 20,
        });
        let long = Value::String("x".repeat(400 << 10));
        b.build_copy_of(&json!({"key": long})).unwrap();
        assert_eq!(b.bytes_built(), (400 << 10) + 3);
        b.build_copy_of(&long).unwrap();
        let e = b.build_copy_of(&long).unwrap_err();
        assert!(e.message.contains("awf.max_built_mb"), "{e}");
        let deep = json!({"a": [{"b": [1]}]});
        assert_eq!(measure_upto(&deep, 100, 100).depth, 4);
    }
}
