//! Restart back-off: exponential with jitter, capped, forgotten after a long enough run.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
    /// A component up this long has its restart count and back-off reset.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// How long after the `restarts`-th restart the next one may happen: base · 2^(n-1),
    /// capped at `max`, then ±10 % jitter so components that fail together do not restart
    /// in lockstep. (The first restart after a clean run is immediate.)
    pub fn delay_after(&self, restarts: u32) -> Duration {
        let exponent = restarts.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1 << exponent).min(self.max);
        let spread = raw / 10;
        if spread.is_zero() {
            return raw;
        }
        let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX).max(1);
        let offset = RandomState::new().hash_one(restarts) % (2 * nanos);
        (raw - spread).saturating_add(Duration::from_nanos(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        };
        let within = |d: Duration, nominal: u64| {
            let n = Duration::from_secs(nominal);
            d >= n - n / 10 && d <= n + n / 10
        };
        assert!(within(policy.delay_after(1), 10));
        assert!(within(policy.delay_after(2), 20));
        assert!(within(policy.delay_after(3), 40));
        assert!(within(policy.delay_after(6), 300), "capped");
        assert!(within(policy.delay_after(60), 300), "no overflow");
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = BackoffPolicy::default();
        let samples: std::collections::BTreeSet<_> =
            (0..20).map(|_| policy.delay_after(3)).collect();
        assert!(samples.len() > 1, "jitter varies the delay");
    }
}
