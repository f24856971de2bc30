//! Timers of the collector (round windows, periodic ticks, rule sweeps, broker outages) and wall-clock
//! alignment.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// The window of the round with this generation closes.
    Window(u64),
    /// A periodic test takes its snapshot.
    Tick,
    /// A rule test re-evaluates staleness and due re-sends (`test` is the rule's index).
    Sweep,
    /// A broker outage's grace ends, or its statuses are due again (`test` is the broker's index; the
    /// outage's epoch tells it from an earlier one).
    Outage(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub at: Instant,
    pub test: usize,
    pub kind: TimerKind,
}

/// A min-heap of timers. Cancelled windows are not removed; they are recognised by their generation
/// when they fire, which keeps every operation O(log n).
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub fn push(&mut self, t: Timer) {
        self.heap.push(Reverse(t));
    }
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|t| t.0.at)
    }
    /// Every timer, the heap left empty (a reload renumbers them).
    pub fn take_all(&mut self) -> Vec<Timer> {
        std::mem::take(&mut self.heap)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.heap.peek()?.0.at <= now {
            self.heap.pop().map(|t| t.0)
        } else {
            None
        }
    }
}

/// Time from `now` to the next whole multiple of `period` since the Unix epoch, skipping one that is less
/// than 1.5 s away (submqttm.py's `Wait(Period, 0)`).
pub fn until_next_aligned(now: SystemTime, period: Duration) -> Duration {
    let period_ms = period.as_millis().max(1);
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut next = (now_ms / period_ms + 1) * period_ms;
    if next - now_ms < 1500 {
        next += period_ms;
    }
    Duration::from_millis((next - now_ms) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_to_the_wall_clock() {
        let at = |s: u64, ms: u64| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms)
        };
        let five_min = Duration::from_secs(300);
        let boundary = 1_000_000_200; // a multiple of 300
        assert_eq!(
            until_next_aligned(at(boundary - 100, 0), five_min),
            Duration::from_secs(100)
        );
        // exactly on a boundary: the next one
        assert_eq!(until_next_aligned(at(boundary, 0), five_min), five_min);
        // less than 1.5 s before a boundary: skip it
        assert_eq!(
            until_next_aligned(at(boundary - 1, 0), five_min),
            Duration::from_secs(301)
        );
        assert_eq!(
            until_next_aligned(at(9, 500), Duration::from_secs(10)),
            Duration::from_millis(10_500)
        );
    }

    #[test]
    fn timers_pop_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for (ms, test) in [(30, 0), (10, 1), (20, 2)] {
            t.push(Timer {
                at: t0 + Duration::from_millis(ms),
                test,
                kind: TimerKind::Tick,
            });
        }
        assert_eq!(t.next_at(), Some(t0 + Duration::from_millis(10)));
        assert!(t.pop_due(t0).is_none());
        let due: Vec<_> = std::iter::from_fn(|| t.pop_due(t0 + Duration::from_millis(25)))
            .map(|t| t.test)
            .collect();
        assert_eq!(due, [1, 2]);
    }
}
