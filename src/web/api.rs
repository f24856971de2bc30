//! The JSON API under `/api/v1`, plus `/healthz` and `/metrics`. Every handler is annotated for utoipa, so
//! `/api/v1/openapi.json` is generated from this file.

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::json::{Json, NO_STORE};
use super::AppState;
use crate::rules::filter::TopicFilter;
use crate::store::{BrokerId, BrokerState, TopicValue};
use crate::xymon::outbox::{DeliveryState, TestDelivery};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Default and largest page size of `/api/v1/topics`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Payload bytes shown per topic in the API (the store may keep more when configured so).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// A page stops early once its payloads add up to this, so one answer stays bounded.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xymon-mqtt",
        description = "What the MQTT to Xymon bridge sees: latest topic values, Xymon tests and their delivery, broker states."
    ),
    paths(topics, topic, tests, brokers, super::sse::events, healthz, metrics),
    components(schemas(
        TopicItem, TopicPage, TestItem, Delivery, BrokerItem, Health, ErrorBody
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A time in RFC 3339, UTC, to the millisecond (`2026-11-30T14:48:08.123Z`). Written straight into the
/// JSON or the page: the topic answer has two, and a `String` for each cost about a twentieth of its
/// instructions (callgrind, BENCHMARKS.md scenario 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // humantime writes years 1970 to 9999 only (before, it panics; after, it fails): a clock outside
        // them is shown at the nearest end.
        let latest =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(crate::LATEST_WRITABLE_SECS);
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

fn age(t: SystemTime, now: SystemTime) -> f64 {
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopicsQuery {
    /// An MQTT topic filter such as `sensors/+/temperature` or `#`.
    pub filter: Option<String>,
    /// Only this broker (its configured name).
    pub broker: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn encode_cursor(broker: BrokerId, topic: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{broker}:{topic}"))
}

fn decode_cursor(raw: &str) -> Option<(BrokerId, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (b, t) = text.split_once(':')?;
    Some((b.parse().ok()?, t.to_string()))
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

/// The latest value of every topic seen.
#[utoipa::path(
    get,
    path = "/api/v1/topics",
    params(TopicsQuery),
    responses(
        (status = 200, description = "A page of topics, sorted by broker then topic", body = TopicPage),
        (status = 400, description = "Invalid filter, broker, cursor or limit", body = ErrorBody),
    ),
    tag = "topics"
)]
pub async fn topics(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<TopicsQuery>,
) -> Result<Json<TopicPage>, ApiError> {
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as u32).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit {n} is not 1 to {MAX_LIMIT}"
            )))
        }
    };
    let filter = q.filter.as_deref().map(check_filter).transpose()?;
    let only = match &q.broker {
        None => None,
        Some(name) => Some(
            st.broker_id(name)
                .ok_or_else(|| ApiError::bad_request(format!("no broker is named {name:?}")))?,
        ),
    };
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid cursor"))?),
    };
    let mut matching = st.shared.store.select(|b, t| {
        only.is_none_or(|o| o == b)
            && after
                .as_ref()
                .is_none_or(|(ab, at)| (b, t) > (*ab, at.as_str()))
            && filter_matches(filter.as_ref(), t)
    });
    let now = SystemTime::now();
    let more = matching.len() > limit;
    matching.truncate(limit);
    let mut items = Vec::with_capacity(matching.len());
    let mut bytes = 0;
    let mut next_cursor = None;
    let count = matching.len();
    for (i, (b, t, v)) in matching.into_iter().enumerate() {
        let item = TopicItem::new(st.broker_name(b), &t, &v, MAX_PAYLOAD_BYTES, now);
        bytes += item.payload.len() + item.topic.len() + 256;
        items.push(item);
        let last = i + 1 == count;
        if (last && more) || (!last && bytes >= MAX_PAGE_BYTES) {
            next_cursor = Some(encode_cursor(b, &t));
            break;
        }
    }
    Ok(Json(TopicPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopicQuery {
    /// The broker (its configured name); default: the first broker that has the topic.
    pub broker: Option<String>,
}

/// One topic. The path is the topic name itself and may contain `/` and `$`, e.g.
/// `/api/v1/topics/$SYS/broker/bytes/sent`.
#[utoipa::path(
    get,
    path = "/api/v1/topics/{topic}",
    params(
        ("topic" = String, Path, description = "The topic name (may contain `/`)", example = "$SYS/broker/bytes/sent"),
        TopicQuery,
    ),
    responses(
        (status = 200, description = "The latest message", body = TopicItem),
        (status = 400, description = "Unknown broker", body = ErrorBody),
        (status = 404, description = "No message seen on this topic", body = ErrorBody),
    ),
    tag = "topics"
)]
pub async fn topic(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<TopicQuery>,
) -> Result<Json<TopicItem>, ApiError> {
    let brokers: Vec<BrokerId> = match &q.broker {
        Some(n) => vec![st
            .broker_id(n)
            .ok_or_else(|| ApiError::bad_request(format!("no broker is named {n:?}")))?],
        None => (0..st.broker_names.len()).collect(),
    };
    let now = SystemTime::now();
    brokers
        .into_iter()
        .find_map(|b| {
            st.shared
                .store
                .get(b, &name)
                .map(|v| TopicItem::new(st.broker_name(b), &name, &v, MAX_PAYLOAD_BYTES, now))
        })
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no message seen on topic {name:?}")))
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

/// Every Xymon test the bridge has reported.
#[utoipa::path(
    get,
    path = "/api/v1/tests",
    responses((status = 200, description = "Tests sorted by host.test", body = Vec<TestItem>)),
    tag = "tests"
)]
pub async fn tests(State(st): State<AppState>) -> Json<Vec<TestItem>> {
    Json(
        st.shared
            .outbox
            .tests()
            .iter()
            .map(TestItem::from)
            .collect(),
    )
}

/// One broker connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokerItem {
    pub name: String,
    pub url: String,
    pub connected: bool,
    /// The subscriptions are acknowledged on the current connection.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
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
        }
    }
}

/// Every configured broker and its connection.
#[utoipa::path(
    get,
    path = "/api/v1/brokers",
    responses((status = 200, description = "Brokers in config order", body = Vec<BrokerItem>)),
    tag = "brokers"
)]
pub async fn brokers(State(st): State<AppState>) -> Json<Vec<BrokerItem>> {
    Json(
        st.shared
            .store
            .brokers()
            .iter()
            .map(BrokerItem::from)
            .collect(),
    )
}

/// The bridge's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Why it is unavailable (empty when ok).
    pub reasons: Vec<String>,
}

/// Reasons the bridge is not healthy: no broker connected, or xymond deliveries failing.
pub fn health_reasons(st: &AppState) -> Vec<String> {
    let mut reasons = Vec::new();
    let brokers = st.shared.store.brokers();
    if !brokers.iter().any(|b| b.connected) {
        reasons.push(if brokers.is_empty() {
            "no broker is configured".to_string()
        } else {
            "no broker is connected".to_string()
        });
    }
    if let Some(r) = st
        .shared
        .outbox
        .tests()
        .iter()
        .find_map(|t| match &t.delivery {
            DeliveryState::Failing(r) => Some(r.clone()),
            _ => None,
        })
    {
        reasons.push(format!("xymond is failing: {r}"));
    }
    reasons
}

/// 200 while running and healthy; 503 with the reasons when no broker is connected or xymond is failing.
#[utoipa::path(
    get,
    path = "/healthz",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Not healthy, with the reasons", body = Health),
    ),
    tag = "operations"
)]
pub async fn healthz(State(st): State<AppState>) -> Response {
    let reasons = health_reasons(&st);
    let code = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if reasons.is_empty() {
        "ok"
    } else {
        "unavailable"
    };
    (
        code,
        Json(Health {
            status: status.into(),
            reasons,
        }),
    )
        .into_response()
}

/// Prometheus metrics: messages per broker, statuses sent, delivery failures, drops, connected gauges.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")),
    tag = "operations"
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            ),
            NO_STORE,
        ],
        st.shared.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = encode_cursor(3, "$SYS/a:b/c");
        assert_eq!(decode_cursor(&c), Some((3, "$SYS/a:b/c".to_string())));
        assert_eq!(decode_cursor("!!"), None);
    }

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
