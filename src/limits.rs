//! Time limits every stage shares: the last second a status or an API answer can write, and the
//! longest duration the config takes.
//!
//! Imports nothing of the crate. The config refuses longer durations; the rule engine refuses later sensor
//! times; the web layer shows a later clock as the last writable second.

use std::time::Duration;

/// 9999-12-31T23:59:59Z in Unix seconds: the last second that a four-digit RFC 3339 year, and humantime,
/// can write. Later sensor times are refused (`rules::sensor_time`); a later clock is shown as this
/// (`web::api::Timestamp`).
pub const LATEST_WRITABLE_SECS: u64 = 253_402_300_799;

/// The longest duration any config key takes: a year (humantime's, 365.25 days, so it prints as
/// `1year`), far above any sensible interval, lifetime or timeout. The stages do arithmetic on these
/// values (`interval * 2`, `Instant + window`, doubling backoffs) that would overflow long before
/// humantime's own limit.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);
