//! One collection round of a test: which of its topics have arrived, and what went wrong on the way.
//!
//! Pure state, driven by the collector with explicit times, so every case is a plain unit test. A round is
//! opened by the first topic (continuous mode) or by the clock (periodic mode), and ends when every topic
//! has arrived or when its window closes, whichever comes first (submqttm.py's watchdog, without threads).

pub use crate::status::{Changed, Closed, Reading};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Round {
    pub opened: Instant,
    pub opened_at: SystemTime,
    pub deadline: Instant,
    values: Vec<Option<Reading>>,
    arrived: usize,
    changed: Vec<Changed>,
}

/// What `offer` did with a reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Stored; the round still waits for other topics.
    Stored,
    /// Stored, and now every topic has arrived.
    Complete,
    /// The same value again: nothing to do.
    Repeat,
    /// A different value for a topic already in this round: noted (shown as yellow), latest value kept.
    Changed,
}

impl Round {
    pub fn open(topics: usize, now: Instant, now_wall: SystemTime, window: Duration) -> Round {
        Round {
            opened: now,
            opened_at: now_wall,
            deadline: now + window,
            values: vec![None; topics],
            arrived: 0,
            changed: Vec::new(),
        }
    }

    pub fn offer(&mut self, topic: usize, reading: Reading) -> Offer {
        let Some(slot) = self.values.get_mut(topic) else {
            return Offer::Repeat;
        };
        match slot {
            None => {
                *slot = Some(reading);
                self.arrived += 1;
                if self.arrived == self.values.len() {
                    Offer::Complete
                } else {
                    Offer::Stored
                }
            }
            Some(old) if old.payload == reading.payload => Offer::Repeat,
            Some(old) => {
                // Keep the first value of a changed topic as well, once, however often it changes.
                if let Some(c) = self.changed.iter_mut().find(|c| c.topic == topic) {
                    c.then = reading.payload.clone();
                } else {
                    self.changed.push(Changed {
                        topic,
                        first: old.payload.clone(),
                        then: reading.payload.clone(),
                    });
                }
                *old = reading;
                Offer::Changed
            }
        }
    }

    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        self.arrived == self.values.len()
    }

    /// Closes the round at `now`.
    pub fn close(self, now: Instant) -> Closed {
        Closed {
            opened_at: self.opened_at,
            took: now.saturating_duration_since(self.opened),
            window: self.deadline.saturating_duration_since(self.opened),
            values: self.values,
            changed: self.changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reading(v: &str) -> Reading {
        Reading {
            payload: Bytes::copy_from_slice(v.as_bytes()),
            retained: false,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            offers: Vec<(usize, &'static str, Offer)>,
            complete: bool,
            missing: Vec<usize>,
            changed: usize,
        }
        let cases = [
            Case {
                name: "all topics arrive",
                offers: vec![(0, "1", Offer::Stored), (1, "2", Offer::Complete)],
                complete: true,
                missing: vec![],
                changed: 0,
            },
            Case {
                name: "one missing",
                offers: vec![(1, "2", Offer::Stored)],
                complete: false,
                missing: vec![0],
                changed: 0,
            },
            Case {
                name: "same value twice is harmless",
                offers: vec![
                    (0, "1", Offer::Stored),
                    (0, "1", Offer::Repeat),
                    (1, "2", Offer::Complete),
                ],
                complete: true,
                missing: vec![],
                changed: 0,
            },
            Case {
                name: "different value twice is noted once",
                offers: vec![
                    (0, "1", Offer::Stored),
                    (0, "5", Offer::Changed),
                    (0, "6", Offer::Changed),
                ],
                complete: false,
                missing: vec![1],
                changed: 1,
            },
            Case {
                name: "unknown index ignored",
                offers: vec![(7, "1", Offer::Repeat)],
                complete: false,
                missing: vec![0, 1],
                changed: 0,
            },
        ];
        for c in cases {
            let t0 = Instant::now();
            let mut r = Round::open(2, t0, SystemTime::UNIX_EPOCH, Duration::from_millis(500));
            for (topic, v, want) in c.offers {
                assert_eq!(r.offer(topic, reading(v)), want, "{}", c.name);
            }
            assert_eq!(r.is_complete(), c.complete, "{}", c.name);
            let closed = r.close(t0 + Duration::from_millis(500));
            assert_eq!(
                closed.missing().collect::<Vec<_>>(),
                c.missing,
                "{}",
                c.name
            );
            assert_eq!(closed.changed.len(), c.changed, "{}", c.name);
            assert_eq!(closed.window, Duration::from_millis(500));
        }
    }

    #[test]
    fn changed_keeps_first_and_latest() {
        let t0 = Instant::now();
        let mut r = Round::open(1, t0, SystemTime::UNIX_EPOCH, Duration::from_secs(1));
        r.offer(0, reading("a"));
        r.offer(0, reading("b"));
        r.offer(0, reading("c"));
        let closed = r.close(t0);
        assert_eq!(closed.changed[0].first.as_ref(), b"a");
        assert_eq!(closed.changed[0].then.as_ref(), b"c");
        assert_eq!(closed.values[0].as_ref().unwrap().payload.as_ref(), b"c");
    }
}
