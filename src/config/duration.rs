//! Durations in the config: humantime text (`500ms`, `10s`, `5m`, `1h30m`), at most `MAX`.
//!
//! Used as `#[serde(with = "duration")]` on every `Duration` and `Option<Duration>` field. humantime
//! reads up to hundreds of billions of years, and the stages do arithmetic on these values (`interval *
//! 2`, `Instant + window`, doubling backoffs) that would overflow and panic long before that; a value
//! beyond any sensible setting is refused here, with the key and line, instead.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

use crate::limits::MAX_DURATION as MAX;

/// A `Duration` or an `Option<Duration>`: the longest value it holds.
pub trait Longest {
    fn longest(&self) -> Option<Duration>;
}

impl Longest for Duration {
    fn longest(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl Longest for Option<Duration> {
    fn longest(&self) -> Option<Duration> {
        *self
    }
}

pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Longest,
    humantime_serde::Serde<T>: Deserialize<'de>,
{
    let value: T = humantime_serde::deserialize(d)?;
    match value.longest() {
        Some(v) if v > MAX => Err(D::Error::custom(format!(
            "{} is too long: at most {}",
            humantime::format_duration(v),
            humantime::format_duration(MAX)
        ))),
        _ => Ok(value),
    }
}
