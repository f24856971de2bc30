//! The JSON shapes of the API and the event stream, and the pieces of them the pages show too: topics,
//! tests with their delivery, brokers, health, RFC 3339 times, topic filters from a query.
//!
//! Read by `api`, `sse` and `pages`; made from the store's and the outbox's values.

use super::error::ApiError;
use crate::filter::TopicFilter;
use crate::store::{BrokerState, TopicValue, Usage};
use crate::xymon::outbox::{DeliveryState, TestDelivery};
use base64::Engine as _;
use serde::Serialize;
use std::time::SystemTime;
use utoipa::ToSchema;

/// A time in RFC 3339, UTC, to the millisecond (`2026-11-30T14:48:08.123Z`). Written straight into the
/// JSON or the page: the topic answer has two, and a `String` for each cost about a twentieth of its
/// instructions (callgrind, BENCHMARKS.md scenario 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // humantime writes years 1970 to 9999 only (before, it panics; after, it fails): a clock outside
        // them is shown at the nearest end.
        let latest = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(crate::limits::LATEST_WRITABLE_SECS);
        let t = self.0.clamp(SystemTime::UNIX_EPOCH, latest);
        humantime::format_rfc3339_millis(t).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    Timestamp(t).to_string()
}

pub fn age(t: SystemTime, now: SystemTime) -> f64 {
    let secs = now
        .duration_since(t)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    (secs * 1000.0).round() / 1000.0
}

/// The latest message of one topic.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicItem {
    /// The MQTT topic name.
    pub topic: String,
    /// The broker's configured name.
    pub broker: String,
    /// The payload: UTF-8 text, or base64 when `binary` is true.
    pub payload: String,
    /// The payload is not UTF-8 and `payload` holds it in base64.
    pub binary: bool,
    /// `payload` is shorter than what was published (the store or this answer cut it).
    pub truncated: bool,
    /// The payload's size in bytes as published.
    pub size: u64,
    /// When the latest message arrived (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    /// Seconds since `received_at`.
    pub age_seconds: f64,
    /// When the payload last changed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Timestamp,
    /// 0, 1 or 2.
    pub qos: u8,
    /// The broker replayed a retained message.
    pub retained: bool,
    /// Messages seen on this topic.
    pub count: u64,
}

impl TopicItem {
    pub fn new(
        broker: &str,
        topic: &str,
        v: &TopicValue,
        max_payload: usize,
        now: SystemTime,
    ) -> Self {
        let bytes = &v.payload[..v.payload.len().min(max_payload)];
        let (payload, binary, cut) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), false, false),
            // A cut in the middle of a character is still text.
            Err(e) if e.error_len().is_none() && bytes.len() < v.size => (
                String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
                false,
                true,
            ),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                true,
                false,
            ),
        };
        TopicItem {
            topic: topic.to_string(),
            broker: broker.to_string(),
            payload,
            binary,
            truncated: cut || bytes.len() < v.size,
            size: v.size as u64,
            received_at: Timestamp(v.received_at),
            age_seconds: age(v.received_at, now),
            changed_at: Timestamp(v.changed_at),
            qos: v.qos,
            retained: v.retained,
            count: v.count,
        }
    }
}

/// One page of topics.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicPage {
    pub items: Vec<TopicItem>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Parses a `filter` parameter the way a broker would (the same matcher as rule filters, without captures).
pub fn check_filter(filter: &str) -> Result<TopicFilter, ApiError> {
    TopicFilter::parse_mqtt(filter).map_err(|e| {
        ApiError::bad_request(format!("{filter:?} is not a valid MQTT topic filter: {e}"))
    })
}

/// Topic names that match `filter` (`None`: all). `$`-topics match only filters that name them, as in MQTT.
pub fn filter_matches(filter: Option<&TopicFilter>, topic: &str) -> bool {
    filter.is_none_or(|f| f.matches(topic))
}

/// Delivery of a test's latest status to xymond.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// `delivered`, `pending` or `failing`.
    pub state: String,
    /// Why the last attempt failed (only when failing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the bridge last said for one host.test.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestItem {
    pub host: String,
    pub test: String,
    /// `green`, `yellow`, `red` or `clear`.
    pub colour: String,
    /// The full status message as sent to xymond.
    pub status: String,
    /// When this status was made (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When xymond last took a status of this test (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    pub delivery: Delivery,
}

impl From<&TestDelivery> for TestItem {
    fn from(t: &TestDelivery) -> Self {
        let (state, reason) = match &t.delivery {
            DeliveryState::Pending => ("pending", None),
            DeliveryState::Delivered => ("delivered", None),
            DeliveryState::Failing(r) => ("failing", Some(r.clone())),
        };
        TestItem {
            host: t.host.clone(),
            test: t.test.clone(),
            colour: t.colour.as_str().to_string(),
            status: t.message.to_string(),
            updated_at: Timestamp(t.updated_at),
            delivered_at: t.delivered_at.map(Timestamp),
            delivery: Delivery {
                state: state.into(),
                reason,
            },
        }
    }
}

/// One broker connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokerItem {
    pub name: String,
    pub url: String,
    pub connected: bool,
    /// Every subscription is acknowledged and granted on the current connection.
    pub subscribed: bool,
    /// When `connected` last changed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// When the last message arrived (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_message: Option<Timestamp>,
    /// Messages received from this broker.
    pub messages: u64,
    /// Why the last connection attempt failed, or why the connection was lost (a TLS certificate
    /// problem, refused credentials, a stall); absent while connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Subscription filters the broker refuses, with its reason; the tests that read them say so.
    pub refused: Vec<RefusedItem>,
}

/// A subscription filter a broker refused in its SUBACK.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefusedItem {
    pub filter: String,
    /// The broker's reason (MQTT 5's reason code; MQTT 3.1.1 gives none).
    pub reason: String,
}

impl From<&BrokerState> for BrokerItem {
    fn from(b: &BrokerState) -> Self {
        BrokerItem {
            name: b.name.clone(),
            url: b.url.clone(),
            connected: b.connected,
            subscribed: b.subscribed,
            since: b.since.map(Timestamp),
            last_message: b.last_message.map(Timestamp),
            messages: b.messages,
            last_error: b.last_error.clone(),
            refused: b
                .refused
                .iter()
                .map(|r| RefusedItem {
                    filter: r.filter.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }
}

/// What the topic store holds against its memory budget (`limits.store_bytes`), and what the budget did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreItem {
    /// Topics held (with their latest value, or by name only when no test accepts them).
    pub topics: u64,
    /// Bytes counted against the budget: per topic a fixed overhead, the name and the payload kept.
    pub bytes: u64,
    /// `limits.store_bytes`.
    pub budget_bytes: u64,
    /// Topics evicted to stay within the budget (least recently updated first, never a configured one).
    pub evicted_topics: u64,
    pub evicted_bytes: u64,
    /// Messages on new topics that did not fit even after evicting.
    pub over_budget: u64,
    /// Topics no test accepts: kept by name, their payload dropped, not listed under `/topics`.
    pub refused_topics: u64,
    /// Messages that came on refused topics.
    pub refused_messages: u64,
}

impl From<Usage> for StoreItem {
    fn from(u: Usage) -> Self {
        StoreItem {
            topics: u.topics as u64,
            bytes: u.bytes as u64,
            budget_bytes: u.budget as u64,
            evicted_topics: u.evicted_topics,
            evicted_bytes: u.evicted_bytes,
            over_budget: u.over_budget,
            refused_topics: u.refused_topics,
            refused_messages: u.refused_messages,
        }
    }
}

/// The bridge's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Why it is unavailable (empty when ok).
    pub reasons: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis_and_never_fail() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_050_088_123);
        assert_eq!(Timestamp(t).to_string(), "2026-11-30T14:48:08.123Z");
        assert_eq!(
            serde_json::to_string(&Timestamp(t)).unwrap(),
            "\"2026-11-30T14:48:08.123Z\""
        );
        // Agrees with chrono, which the rules use to read times.
        let parsed = chrono::DateTime::parse_from_rfc3339(&rfc3339(t)).unwrap();
        assert_eq!(SystemTime::from(parsed), t);
        // A clock before 1970 or after 9999 is shown at the nearest end, not a panic or an error.
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(5);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
        let after = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(after), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn binary_and_cut_payloads() {
        let now = SystemTime::now();
        let v = |p: &[u8], size| TopicValue {
            payload: bytes::Bytes::copy_from_slice(p),
            size,
            received_at: now,
            changed_at: now,
            qos: 1,
            retained: false,
            count: 1,
        };
        let t = TopicItem::new("b", "t", &v(&[0xff, 0x00], 2), 100, now);
        assert!(t.binary && !t.truncated);
        assert_eq!(t.payload, "/wA=");
        // "é" cut in half by the store is text with the partial character removed.
        let t = TopicItem::new("b", "t", &v("aé".as_bytes(), 3), 2, now);
        assert_eq!(
            (t.payload.as_str(), t.binary, t.truncated),
            ("a", false, true)
        );
    }
}
