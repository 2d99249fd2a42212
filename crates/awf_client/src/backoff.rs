//! Retry delays: exponential with full jitter, so many devices coming back online at once
//! spread out instead of hammering the server in step.

use std::time::Duration;

/// How a sync call retries network errors and 503s.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay before the first retry (then doubling).
    pub initial: Duration,
    /// Longest delay between two tries.
    pub max: Duration,
    /// Tries in all, the first included.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            attempts: 6,
        }
    }
}

impl Backoff {
    /// The delay before retry `n` (1-based): uniform in [0, min(max, initial * 2^(n-1))].
    pub fn delay(&self, n: u32) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(20))
            .min(self.max);
        cap.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            attempts: 10,
        };
        for n in 1..=30 {
            let cap = Duration::from_millis((100u64 << (n - 1).min(20)).min(800));
            for _ in 0..50 {
                assert!(b.delay(n) <= cap, "retry {n}");
            }
        }
    }
}
