//! The graph pages: the graphs drawable for a host (`available_graphs`, also used by the overview and
//! test pages for their links), the `/graphs/{host}` page and the `/graph/{host}/{graph}/{period}` PNG
//! drawn by an `rrdtool graph` child (`crate::rrd::render_graph`).
//!
//! Routed by `web/mod.rs` through the re-exports in `pages`.

use crate::rrd::graph::GraphDef;
use crate::rrd::{render_graph, GraphPeriod, RrdError};
use crate::web::error::ApiError;
use crate::web::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Graph size in pixels (Xymon's default).
const GRAPH_WIDTH: u32 = 576;
const GRAPH_HEIGHT: u32 = 120;

pub const PERIODS: [(&str, GraphPeriod); 4] = [
    ("48h", GraphPeriod::Hours48),
    ("12d", GraphPeriod::Days12),
    ("48d", GraphPeriod::Days48),
    ("576d", GraphPeriod::Days576),
];

/// Graph definitions that can be drawn for `host`: every RRD file they read exists. Definitions with the
/// same drawing as an earlier one (graphs.d's `[mqtt]` alias for the trends page) are left out.
pub fn available_graphs<'a>(st: &'a AppState, host: &str) -> Vec<&'a GraphDef> {
    if crate::rrd::validate_host(host).is_err() {
        return Vec::new();
    }
    let dir = st.rrd_dir.join(host);
    let mut out: Vec<&GraphDef> = Vec::new();
    for g in &st.graphs {
        if out.iter().any(|o| o.args == g.args) {
            continue;
        }
        let files: Vec<&str> = g
            .args
            .iter()
            .filter_map(|a| a.strip_prefix("DEF:"))
            .filter_map(|d| d.split_once('=').map(|(_, r)| r))
            .filter_map(|r| r.split(':').next())
            .collect();
        if !files.is_empty() && files.iter().all(|f| dir.join(f).is_file()) {
            out.push(g);
        }
    }
    out
}

pub struct GraphRow {
    pub name: String,
    pub title: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "graphs.html")]
pub struct GraphsPage {
    pub title: String,
    pub host: String,
    pub graphs: Vec<GraphRow>,
    pub periods: Vec<&'static str>,
}

pub async fn graphs(State(st): State<AppState>, Path(host): Path<String>) -> GraphsPage {
    let graphs = available_graphs(&st, &host)
        .into_iter()
        .map(|g| GraphRow {
            name: g.name.clone(),
            title: g.title.trim().to_string(),
        })
        .collect();
    GraphsPage {
        title: format!("{host} graphs"),
        host,
        graphs,
        periods: PERIODS.iter().map(|(p, _)| *p).collect(),
    }
}

/// `GET /graph/{host}/{graph}/{period}`: a PNG drawn by an `rrdtool graph` child from graphs.d.
pub async fn graph_png(
    State(st): State<AppState>,
    Path((host, graph, period)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let period = PERIODS
        .iter()
        .find(|(p, _)| *p == period.trim_end_matches(".png"))
        .map(|(_, p)| *p)
        .ok_or_else(|| ApiError::not_found("period must be 48h, 12d, 48d or 576d"))?;
    let def = available_graphs(&st, &host)
        .into_iter()
        .find(|g| g.name == graph)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no graph {graph:?} for host {host:?}")))?;
    let _permit = st
        .graph_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let png = render_graph(&st.rrd_dir, &host, &def, period, GRAPH_WIDTH, GRAPH_HEIGHT)
        .await
        .map_err(|e| match e {
            RrdError::RrdtoolRun(_) => ApiError::unavailable(format!("cannot draw graph: {e}")),
            _ => ApiError::not_found(format!("cannot draw graph: {e}")),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        png,
    )
        .into_response())
}
