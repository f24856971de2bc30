//! The JSON API under `/api/v1`, plus `/healthz` and `/metrics`. Every handler is annotated for utoipa;
//! `openapi` gathers the annotations into `/api/v1/openapi.json`.

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::items::{
    check_filter, filter_matches, rfc3339, BrokerItem, Health, StoreItem, TestItem, TopicItem,
    TopicPage,
};
use super::json::{Json, NO_STORE};
use super::AppState;
use crate::names::BrokerId;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use std::time::{Duration, SystemTime};
use utoipa::IntoParams;

/// Default and largest page size of `/api/v1/topics`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Payload bytes shown per topic in the API (the store may keep more when configured so).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// A page stops early once its payloads add up to this, so one answer stays bounded.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

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
    let mut matching = st.store.select(|b, t| {
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
            st.store
                .get(b, &name)
                .map(|v| TopicItem::new(st.broker_name(b), &name, &v, MAX_PAYLOAD_BYTES, now))
        })
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no message seen on topic {name:?}")))
}

/// Every Xymon test the bridge has reported.
#[utoipa::path(
    get,
    path = "/api/v1/tests",
    responses((status = 200, description = "Tests sorted by host.test", body = Vec<TestItem>)),
    tag = "tests"
)]
pub async fn tests(State(st): State<AppState>) -> Json<Vec<TestItem>> {
    Json(st.outbox.tests().iter().map(TestItem::from).collect())
}

/// Every configured broker and its connection.
#[utoipa::path(
    get,
    path = "/api/v1/brokers",
    responses((status = 200, description = "Brokers in config order", body = Vec<BrokerItem>)),
    tag = "brokers"
)]
pub async fn brokers(State(st): State<AppState>) -> Json<Vec<BrokerItem>> {
    Json(st.store.brokers().iter().map(BrokerItem::from).collect())
}

/// The topic store against its memory budget.
#[utoipa::path(
    get,
    path = "/api/v1/store",
    responses((status = 200, description = "Topics and bytes held, the budget, evictions and refused topics", body = StoreItem)),
    tag = "topics"
)]
pub async fn store(State(st): State<AppState>) -> Json<StoreItem> {
    Json(StoreItem::from(st.store.usage()))
}

/// How long xymond may refuse deliveries before `/healthz` says so: a restart of xymond, or one lost
/// connection, is not an outage.
pub const XYMOND_FAILING_AFTER: Duration = Duration::from_secs(5);

fn whole_secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Reasons the bridge is not healthy: a broker disconnected (or none connected), xymond refusing
/// deliveries for more than `XYMOND_FAILING_AFTER`, a stage stuck (its queue full and not draining).
/// Every untrusted string in them (a broker's error) is JSON-escaped by the answer.
pub fn health_reasons(st: &AppState) -> Vec<String> {
    let mut reasons = Vec::new();
    let brokers = st.store.brokers();
    if brokers.is_empty() {
        reasons.push("no broker is configured".to_string());
    } else if !brokers.iter().any(|b| b.connected) {
        reasons.push("no broker is connected".to_string());
    }
    let now = SystemTime::now();
    // A broker whose task has not reported yet (start-up) has no `since`; it counts only in the line above.
    for b in brokers.iter().filter(|b| !b.connected) {
        if let Some(since) = b.since {
            let error = b.last_error.as_deref().unwrap_or("disconnected");
            let down = now.duration_since(since).unwrap_or_default();
            reasons.push(format!(
                "broker {} is not connected (for {}): {error}",
                b.name,
                whole_secs(down)
            ));
        }
    }
    if let Some(f) = st.outbox.failing() {
        let down = f.since.elapsed();
        if down >= XYMOND_FAILING_AFTER {
            reasons.push(format!(
                "xymond refuses deliveries (for {}, since {}): {}",
                whole_secs(down),
                rfc3339(f.since_wall),
                f.error
            ));
        }
    }
    for s in st.stages.iter() {
        if let Some(d) = (s.stuck_for)().filter(|d| *d >= s.after) {
            reasons.push(format!(
                "{} is stuck: {} (for {})",
                s.name,
                s.what,
                whole_secs(d)
            ));
        }
    }
    reasons
}

/// 200 while running and healthy; 503 with the reasons while a broker is disconnected, xymond has refused
/// deliveries for more than 5 s, or a stage is stuck (its queue full and not draining).
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
        st.metrics.encode(),
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
}
