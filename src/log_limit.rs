//! Rate-limited logging of bad input: at most one line per key (usually a topic) per interval.
//!
//! Used by ingest and the collector so that a misbehaving publisher cannot flood the journal. The map of
//! recently logged keys is bounded: when it is full, old entries are dropped first, and if that does not
//! make room the new key is simply not logged (it is still counted by the caller's metrics).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; a flood of distinct bad topics then costs bounded memory.
const MAX_KEYS: usize = 10_000;

pub struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// True when a line about `key` may be logged now.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = last.get_mut(key) {
            if now.duration_since(*t) < self.every {
                return false;
            }
            *t = now;
            return true;
        }
        if last.len() >= MAX_KEYS {
            let every = self.every;
            last.retain(|_, t| now.duration_since(*t) < every);
            if last.len() >= MAX_KEYS {
                return false;
            }
        }
        last.insert(key.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_key_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(l.allow_at("a", t0));
        assert!(!l.allow_at("a", t0 + Duration::from_secs(59)));
        assert!(l.allow_at("b", t0 + Duration::from_secs(1)));
        assert!(l.allow_at("a", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn bounded() {
        let l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            assert!(l.allow_at(&i.to_string(), t0));
        }
        assert!(!l.allow_at("one too many", t0));
        assert!(l.allow_at("later", t0 + Duration::from_secs(61)));
    }
}
