//! The dashboard pages (askama templates in `web/templates`), RRD graphs and the embedded static files.
//!
//! Every untrusted string (topic, payload, broker error, status text) reaches a template as a plain
//! `String` and is escaped there; nothing here builds HTML by hand.
//!
//! This file holds the overview, test and topics pages; `graphs` the graph list and the PNGs, `assets`
//! the embedded static files. Their handlers are re-exported here for the router in `web/mod.rs`.

mod assets;
mod ghosts;
mod graphs;
mod store;

pub use assets::asset;
pub use ghosts::{GhostBanner, GhostView};
pub use graphs::{available_graphs, graph_png, graphs, GraphRow, GraphsPage, PERIODS};
use store::store_view;
pub use store::StoreView;

use super::error::ApiError;
use super::items::{check_filter, filter_matches, rfc3339, BrokerItem, TopicItem};
use super::AppState;
use crate::xymon::outbox::DeliveryState;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// Characters of a payload shown in a table cell.
const SHOWN_PAYLOAD_CHARS: usize = 300;
/// Rows on the topics page.
const MAX_TOPIC_ROWS: usize = 1000;

pub struct Cell {
    pub key: String,
    pub colour: String,
    pub href: String,
    pub title: String,
}

pub struct HostRow {
    pub host: String,
    pub cells: Vec<Option<Cell>>,
    pub graphs: bool,
}

pub struct BrokerView {
    pub b: BrokerItem,
    pub colour: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub title: String,
    pub columns: Vec<String>,
    pub hosts: Vec<HostRow>,
    pub brokers: Vec<BrokerView>,
    pub pending: usize,
    pub store: StoreView,
    pub ghosts: GhostBanner,
}

fn delivery_title(colour: &str, d: &DeliveryState) -> String {
    match d {
        DeliveryState::Pending => format!("{colour}, waiting to be sent"),
        DeliveryState::Delivered => format!("{colour}, delivered"),
        DeliveryState::Failing(r) => format!("{colour}, not delivered: {r}"),
    }
}

fn broker_views(st: &AppState) -> Vec<BrokerView> {
    st.store
        .brokers()
        .iter()
        .map(|b| BrokerView {
            b: BrokerItem::from(b),
            colour: if b.connected { "green" } else { "red" },
        })
        .collect()
}

pub async fn overview(State(st): State<AppState>) -> OverviewPage {
    // host -> test -> cell; configured tests without a status yet show clear.
    let mut grid: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    let mut columns = BTreeSet::new();
    let cell = |host: &str, test: &str, colour: &str, title: String| Cell {
        key: format!("{host}.{test}"),
        colour: colour.to_string(),
        href: format!("/tests/{}/{}", path_escape(host), path_escape(test)),
        title,
    };
    for t in &st.tests {
        columns.insert(t.test.clone());
        grid.entry(t.host.clone()).or_default().insert(
            t.test.clone(),
            cell(&t.host, &t.test, "clear", "no status yet".into()),
        );
    }
    for t in st.outbox.tests() {
        columns.insert(t.test.clone());
        let title = delivery_title(t.colour.as_str(), &t.delivery);
        let c = cell(&t.host, &t.test, t.colour.as_str(), title);
        grid.entry(t.host.clone())
            .or_default()
            .insert(t.test.clone(), c);
    }
    let columns: Vec<String> = columns.into_iter().collect();
    let hosts = grid
        .into_iter()
        .map(|(host, mut cells)| HostRow {
            graphs: !available_graphs(&st, &host).is_empty(),
            cells: columns.iter().map(|c| cells.remove(c)).collect(),
            host,
        })
        .collect();
    OverviewPage {
        title: "Overview".into(),
        columns,
        hosts,
        brokers: broker_views(&st),
        pending: st.outbox.pending(),
        store: store_view(&st),
        ghosts: ghosts::ghost_banner(&st),
    }
}

/// Percent-encodes one path segment (host and test names are restricted, but be exact anyway).
fn path_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A row of the topic tables.
pub struct TopicRow {
    pub broker: String,
    pub topic: String,
    pub shown: String,
    pub binary: bool,
    pub received_at: String,
    pub age: String,
    pub missing: bool,
}

pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn row(item: TopicItem) -> TopicRow {
    let mut shown: String = item.payload.chars().take(SHOWN_PAYLOAD_CHARS).collect();
    if item.truncated || shown.len() < item.payload.len() {
        shown.push('…');
    }
    TopicRow {
        broker: item.broker,
        topic: item.topic,
        shown,
        binary: item.binary,
        received_at: item.received_at.to_string(),
        age: human_age(item.age_seconds),
        missing: false,
    }
}

/// A piece of a status text: plain text (escaped by the template), or one of Xymon's `&colour` icons.
pub struct Segment {
    pub dot: Option<&'static str>,
    pub text: String,
}

const ICONS: [&str; 6] = ["green", "yellow", "red", "clear", "purple", "blue"];

/// Splits a status message the way Xymon renders it: `&colour` becomes an icon, and the HTML entities the
/// sanitiser put in for untrusted text become the characters they stand for. The result is text again,
/// so the template escapes it once more: the browser shows exactly what Xymon's status page shows, and no
/// tag from a payload can take effect.
pub fn status_segments(message: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut text = String::new();
    while let Some(i) = rest.find('&') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(colour) = ICONS.iter().find(|c| {
            after.starts_with(**c)
                && !after[c.len()..]
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_alphanumeric())
        }) {
            out.push(Segment {
                dot: None,
                text: html_escape::decode_html_entities(&std::mem::take(&mut text)).into_owned(),
            });
            out.push(Segment {
                dot: Some(colour),
                text: String::new(),
            });
            rest = &after[colour.len()..];
        } else {
            text.push('&');
            rest = after;
        }
    }
    text.push_str(rest);
    out.push(Segment {
        dot: None,
        text: html_escape::decode_html_entities(&text).into_owned(),
    });
    out.retain(|s| s.dot.is_some() || !s.text.is_empty());
    out
}

#[derive(Template, WebTemplate)]
#[template(path = "test.html")]
pub struct TestPage {
    pub title: String,
    pub host: String,
    pub test: String,
    pub key: String,
    pub colour: String,
    pub segments: Vec<Segment>,
    pub updated_at: String,
    pub delivery: String,
    pub topics: Vec<TopicRow>,
    pub graphs: Vec<String>,
    pub filter: String,
}

pub async fn test(
    State(st): State<AppState>,
    Path((host, test)): Path<(String, String)>,
) -> Result<TestPage, ApiError> {
    let key = format!("{host}.{test}");
    let status = st
        .outbox
        .tests()
        .into_iter()
        .find(|t| t.host == host && t.test == test);
    let configured = st.tests.iter().find(|t| t.host == host && t.test == test);
    if status.is_none() && configured.is_none() {
        return Err(ApiError::not_found(format!("no test {key:?}")));
    }
    let now = SystemTime::now();
    let topics = configured
        .map(|c| {
            c.topics
                .iter()
                .map(|topic| match st.store.get(c.broker, topic) {
                    Some(v) => row(TopicItem::new(
                        st.broker_name(c.broker),
                        topic,
                        &v,
                        SHOWN_PAYLOAD_CHARS * 4,
                        now,
                    )),
                    None => TopicRow {
                        broker: st.broker_name(c.broker).to_string(),
                        topic: topic.to_string(),
                        shown: String::new(),
                        binary: false,
                        received_at: String::new(),
                        age: "never".into(),
                        missing: true,
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let (colour, segments, updated_at, delivery) = match &status {
        Some(t) => (
            t.colour.as_str().to_string(),
            status_segments(&t.message),
            rfc3339(t.updated_at),
            delivery_title(t.colour.as_str(), &t.delivery),
        ),
        None => (
            "clear".to_string(),
            Vec::new(),
            String::new(),
            "no status yet".to_string(),
        ),
    };
    Ok(TestPage {
        title: key.clone(),
        filter: configured.map(|c| c.topics.join(" ")).unwrap_or_default(),
        graphs: available_graphs(&st, &host)
            .into_iter()
            .map(|g| g.name.clone())
            .collect(),
        host,
        test,
        key,
        colour,
        segments,
        updated_at,
        delivery,
        topics,
    })
}

#[derive(Debug, Deserialize)]
pub struct TopicsQuery {
    pub filter: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "topics.html")]
pub struct TopicsPage {
    pub title: String,
    pub filter: String,
    pub error: String,
    pub topics: Vec<TopicRow>,
    pub more: usize,
}

pub async fn topics(State(st): State<AppState>, Query(q): Query<TopicsQuery>) -> TopicsPage {
    let filter = q
        .filter
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "#".to_string());
    let (rows, more, error) = match check_filter(&filter) {
        Err(e) => (Vec::new(), 0, e.message),
        Ok(parsed) => {
            let mut all = st.store.select(|_, t| filter_matches(Some(&parsed), t));
            let more = all.len().saturating_sub(MAX_TOPIC_ROWS);
            all.truncate(MAX_TOPIC_ROWS);
            let now = SystemTime::now();
            let rows = all
                .into_iter()
                .map(|(b, t, v)| {
                    row(TopicItem::new(
                        st.broker_name(b),
                        &t,
                        &v,
                        SHOWN_PAYLOAD_CHARS * 4,
                        now,
                    ))
                })
                .collect();
            (rows, more, String::new())
        }
    };
    TopicsPage {
        title: "Topics".into(),
        filter,
        error,
        topics: rows,
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_icons_and_entities() {
        let s = status_segments("&green ok &lt;b&gt; &amp;red x&redder\n&yellow");
        let parts: Vec<(Option<&str>, &str)> = s.iter().map(|s| (s.dot, s.text.as_str())).collect();
        assert_eq!(
            parts,
            [
                (Some("green"), ""),
                (None, " ok <b> &red x&redder\n"),
                (Some("yellow"), ""),
            ]
        );
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(5.4), "5s");
        assert_eq!(human_age(125.0), "2m05s");
        assert_eq!(human_age(7200.0), "2h00m");
        assert_eq!(human_age(90000.0), "1d01h");
    }
}
