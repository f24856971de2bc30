//! Capped exponential backoff for reconnecting to brokers and retrying xymond.

use std::time::Duration;

/// Delays of `first`, 2×, 4×, … up to `max`, each with up to 10 % jitter so that many bridges (or many
/// brokers in one bridge) restarted together do not retry in lock-step.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    jitter_seed: u64,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let jitter_seed = std::process::id() as u64 ^ (first.as_nanos() as u64);
        Backoff {
            first,
            max: max.max(first),
            next: first,
            jitter_seed,
        }
    }

    /// The delay to wait now; the following one is doubled.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift: cheap, deterministic per process, good enough to spread retries.
        self.jitter_seed ^= self.jitter_seed << 13;
        self.jitter_seed ^= self.jitter_seed >> 7;
        self.jitter_seed ^= self.jitter_seed << 17;
        let jitter = base.as_millis() as u64 / 10;
        let extra = if jitter > 0 {
            self.jitter_seed % jitter
        } else {
            0
        };
        (base + Duration::from_millis(extra)).min(self.max)
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 8, 8]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 1);
    }
}
