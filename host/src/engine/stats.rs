//! Counters the management API shows: totals, and a rate refreshed by the
//! owning stream's once-a-second tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing total with a per-second rate.
#[derive(Debug, Default)]
pub struct Counter {
    total: AtomicU64,
    at_last_tick: AtomicU64,
    rate: AtomicU64,
}

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    /// Units per second over the last tick.
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }
    /// Refreshes the rate; `elapsed` is the time since the previous tick.
    pub fn tick(&self, elapsed: Duration) {
        let now = self.get();
        let before = self.at_last_tick.swap(now, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            let r = (now.saturating_sub(before)) as f64 / secs;
            self.rate.store(r as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_tick() {
        let c = Counter::default();
        c.add(1000);
        c.tick(Duration::from_millis(500));
        assert_eq!((c.get(), c.rate()), (1000, 2000));
        c.tick(Duration::from_secs(1));
        assert_eq!(c.rate(), 0);
    }
}
