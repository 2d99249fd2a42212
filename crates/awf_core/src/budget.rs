//! Work and size budgets: every algorithm reachable from SQL or HTTP charges what it does and
//! what it builds against one [`Budget`], checked as it goes, so a crafted input (a JSON Patch
//! that doubles the document with each `copy`, an array built to defeat the diff's alignment)
//! ends in a clear "over a limit" error instead of exhausting the server.
//!
//! Units are deliberately coarse: one unit of work is about one value visited, compared,
//! hashed or shifted; one node is one JSON value (a scalar, an array or an object) built.
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
}

impl Default for Limits {
    /// About a second of work and a few hundred MB at most: far above any real turn.
    fn default() -> Self {
        Limits {
            max_work: 100_000_000,
            max_nodes: 2_000_000,
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
        }
    }
}

/// What one call may still spend.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    work: u64,
    nodes: u64,
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

    /// Charges `nodes` built (and the work of building them); over the limit is 54000.
    pub fn build(&mut self, nodes: u64) -> Result<()> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.limits.max_nodes {
            return Err(Error::limit(format!(
                "the call would build more than {} JSON values, the limit set by \
                 awf.max_built_nodes",
                self.limits.max_nodes
            )));
        }
        self.work(nodes)
    }

    /// Charges a copy of `v`: counts its nodes without ever counting past what is left, so
    /// even sizing a huge value costs no more than the budget allows.
    pub fn build_copy_of(&mut self, v: &Value) -> Result<()> {
        let left = self.limits.max_nodes.saturating_sub(self.nodes);
        let n = count_nodes_upto(v, left.saturating_add(1));
        self.build(n)
    }
}

/// The number of JSON values in `v` (itself included), or `limit` if there are at least that
/// many. Iterative, so any depth is fine.
pub fn count_nodes_upto(v: &Value, limit: u64) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        if n >= limit {
            return limit;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    n
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
        });
        b.build_copy_of(&json!([1, 2, 3])).unwrap();
        assert_eq!(b.nodes_built(), 4);
        let e = b.build_copy_of(&json!([1, [2, 3], 4])).unwrap_err();
        assert!(e.message.contains("awf.max_built_nodes"), "{e}");
        assert_eq!(count_nodes_upto(&json!({"a": [1, 2]}), 100), 4);
        assert_eq!(count_nodes_upto(&json!({"a": [1, 2]}), 2), 2);
    }
}
