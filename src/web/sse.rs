//! `GET /api/v1/events`: Server-Sent Events of topic updates, test status changes and broker changes.
//!
//! Fed by the store's and the outbox's change notifications (keys only); each event reads the current
//! value, so a burst of updates to one topic costs the watchers, never ingest. A watcher that falls behind
//! gets a `lagged` event and skips ahead. Streams end when the bridge shuts down. At most
//! `web::event_streams(max_connections)` are open at once, so that connections remain for `/healthz`.

use super::error::{ApiError, ApiQuery};
use super::items::{check_filter, filter_matches, BrokerItem, TestItem, TopicItem};
use super::json::NO_STORE;
use super::AppState;
use crate::filter::TopicFilter;
use crate::store::Change;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::IntoParams;

/// Payload bytes carried by one `topic` event; the API has the rest.
pub const SSE_PAYLOAD_BYTES: usize = 4096;
/// Status text bytes carried by one `test` event.
pub const SSE_STATUS_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only topic events for topics matching this MQTT filter.
    pub filter: Option<String>,
}

#[derive(Serialize)]
struct Lagged {
    skipped: u64,
}

enum Raw {
    Store(Result<Change, BroadcastStreamRecvError>),
    Test(Result<String, BroadcastStreamRecvError>),
}

/// Live updates as Server-Sent Events: `topic` (data: a topic object, payload cut to 4 KiB), `test` (a
/// test object, status cut to 16 KiB), `broker` (a broker object) and `lagged` (`{"skipped": N}` when
/// this client fell behind and events were skipped).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    params(EventsQuery),
    responses(
        (status = 200, description = "An endless event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid filter", body = super::error::ErrorBody),
        (status = 503, description = "Too many event streams open", body = super::error::ErrorBody),
    ),
    tag = "events"
)]
pub async fn events(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let filter = q.filter.as_deref().map(check_filter).transpose()?;
    let Ok(permit) = st.sse_slots.clone().try_acquire_owned() else {
        // The connection is closed after this answer: a client that kept it open would hold one of the
        // connections left for `/healthz` and the rest of the API.
        let close = [(header::CONNECTION, HeaderValue::from_static("close"))];
        let refused = ApiError::unavailable("too many event streams open");
        return Ok((close, refused).into_response());
    };
    let store = BroadcastStream::new(st.store.subscribe()).map(Raw::Store);
    let tests = BroadcastStream::new(st.outbox.subscribe()).map(Raw::Test);
    let cancel = st.cancel.clone();
    let stream = futures_util::stream::select(store, tests)
        .filter_map(move |raw| {
            let ev = to_event(&st, filter.as_ref(), raw);
            let _held = &permit;
            async move { ev.map(Ok::<_, std::convert::Infallible>) }
        })
        .take_until(cancel.cancelled_owned());
    // `no-store` like the rest of the API (axum's `no-cache` is overridden).
    Ok((
        [NO_STORE],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

fn json_event(name: &str, value: &impl Serialize) -> Option<Event> {
    // The visible form (format characters as \u escapes), as the API's answers.
    let data = String::from_utf8(super::json::to_vec(value, 256).ok()?).ok()?;
    Some(Event::default().event(name).data(data))
}

fn to_event(st: &AppState, filter: Option<&TopicFilter>, raw: Raw) -> Option<Event> {
    match raw {
        Raw::Store(Ok(Change::Topic { broker, topic })) => {
            if !filter_matches(filter, &topic) {
                return None;
            }
            let v = st.store.get(broker, &topic)?;
            let item = TopicItem::new(
                st.broker_name(broker),
                &topic,
                &v,
                SSE_PAYLOAD_BYTES,
                SystemTime::now(),
            );
            json_event("topic", &item)
        }
        Raw::Store(Ok(Change::Broker(id))) => {
            let b = st.store.brokers().into_iter().nth(id)?;
            json_event("broker", &BrokerItem::from(&b))
        }
        Raw::Test(Ok(key)) => {
            let t = st
                .outbox
                .tests()
                .into_iter()
                .find(|t| format!("{}.{}", t.host, t.test) == key)?;
            let mut item = TestItem::from(&t);
            if item.status.len() > SSE_STATUS_BYTES {
                let mut cut = SSE_STATUS_BYTES;
                while !item.status.is_char_boundary(cut) {
                    cut -= 1;
                }
                item.status.truncate(cut);
            }
            json_event("test", &item)
        }
        Raw::Store(Err(BroadcastStreamRecvError::Lagged(n)))
        | Raw::Test(Err(BroadcastStreamRecvError::Lagged(n))) => {
            json_event("lagged", &Lagged { skipped: n })
        }
    }
}
