//! Freshness of one concrete topic: live, stale past `expire_after`, or a retained replay of unknown age.
//!
//! Pure: the caller passes both clocks. `received` is a monotonic `Instant` (tokio's, so tests can pause
//! time); a sensor timestamp is wall-clock time and is compared with the wall clock. Decisions:
//! - A retained message (the broker replaying its stored copy on (re)subscribe) has unknown age. It is
//!   shown, marked `(retained, age unknown)`, and never counts as fresh until a live message arrives,
//!   whatever `expire_after` says, unless the payload carries the sensor's own time (`timestamp_path`),
//!   which then decides like for a live message.
//! - Without `expire_after`, a live value never goes stale by age.
//! - A sensor timestamp in the future (clock skew) counts as age 0.

use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// When and how a topic's latest message arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub received: Instant,
    pub sensor_time: Option<SystemTime>,
    pub retained: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh {
        age: Duration,
    },
    Stale {
        age: Duration,
        limit: Duration,
    },
    /// Replayed by the broker; age unknown.
    Retained,
}

impl Freshness {
    pub fn is_fresh(self) -> bool {
        matches!(self, Freshness::Fresh { .. })
    }
}

pub fn freshness(
    seen: &Seen,
    expire_after: Option<Duration>,
    now: Instant,
    now_wall: SystemTime,
) -> Freshness {
    let age = match seen.sensor_time {
        Some(t) => now_wall.duration_since(t).unwrap_or_default(),
        None if seen.retained => return Freshness::Retained,
        None => now.saturating_duration_since(seen.received),
    };
    match expire_after {
        Some(limit) if age > limit => Freshness::Stale { age, limit },
        _ => Freshness::Fresh { age },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Driven with tokio's paused clock, as the collector is.
    #[tokio::test(start_paused = true)]
    async fn table_with_paused_time() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t0 = Instant::now();
        let ten_min = Some(Duration::from_secs(600));
        let live = Seen {
            received: t0,
            sensor_time: None,
            retained: false,
        };
        let retained = Seen {
            retained: true,
            ..live
        };
        let stamped_old = Seen {
            sensor_time: Some(wall - Duration::from_secs(3600)),
            retained: true,
            ..live
        };
        let stamped_new = Seen {
            sensor_time: Some(wall - Duration::from_secs(5)),
            retained: true,
            ..live
        };
        let future = Seen {
            sensor_time: Some(wall + Duration::from_secs(50)),
            ..live
        };
        assert!(freshness(&live, ten_min, Instant::now(), wall).is_fresh());
        assert_eq!(
            freshness(&retained, ten_min, Instant::now(), wall),
            Freshness::Retained
        );
        assert_eq!(
            freshness(&retained, None, Instant::now(), wall),
            Freshness::Retained
        );
        assert!(matches!(
            freshness(&stamped_old, ten_min, Instant::now(), wall),
            Freshness::Stale { .. }
        ));
        assert!(freshness(&stamped_new, ten_min, Instant::now(), wall).is_fresh());
        assert_eq!(
            freshness(&future, ten_min, Instant::now(), wall),
            Freshness::Fresh {
                age: Duration::ZERO
            }
        );

        tokio::time::advance(Duration::from_secs(600)).await;
        // exactly expire_after old: still fresh; one second later: stale
        assert!(freshness(&live, ten_min, Instant::now(), wall).is_fresh());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            freshness(&live, ten_min, Instant::now(), wall),
            Freshness::Stale {
                age: Duration::from_secs(601),
                limit: Duration::from_secs(600)
            }
        );
        // without expire_after: never stale by age
        assert!(freshness(&live, None, Instant::now(), wall).is_fresh());
    }
}
