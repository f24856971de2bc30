//! The web UI and the REST API, served by the bridge itself with axum.
//!
//! Reads the store, the outbox and the metrics (`Sources`) and the plan's `WebPlan`, and never writes
//! them. Live updates come from the
//! store's and the outbox's change notifications (`sse`). Pages are askama templates from
//! `web/templates` (escaping on by default: no untrusted string is ever marked safe); static assets from
//! `web/static` are embedded in the binary, so nothing is fetched from elsewhere.
//!
//! - `api`: `/api/v1/*` JSON, `/healthz`, `/metrics`.
//! - `openapi`: `openapi.json`, generated from the annotations of `api` and `sse`.
//! - `items`: the JSON shapes `api`, `sse` and `pages` share.
//! - `json`: the JSON response type of the API and of errors; format characters written as `\uXXXX`.
//! - `escape`: the templates' escaper (HTML, and format characters shown as `[U+XXXX]`).
//! - `sse`: `/api/v1/events`.
//! - `pages`: the dashboard, test and topic pages, RRD graphs as PNG.
//! - `devices`: `/api/v1/devices` and `/devices`, the devices Home Assistant discovery found.
//! - `auth`: the optional bearer token.
//! - `listener`: accepts connections: header-read timeout, connection cap, graceful stop.
//!
//! Robustness: loopback by default, a header-read timeout and a connection cap (`listener`), a request
//! timeout on pages, request body limit, bounded pages and events, a cap on open event streams and on
//! concurrent graph renders, gzip, no CORS headers (so browsers keep other origins out), and a strict
//! Content-Security-Policy. Shuts down with the bridge's cancel token.

pub mod api;
pub mod auth;
pub mod devices;
pub mod error;
pub mod escape;
pub mod items;
pub mod json;
pub mod listener;
pub mod openapi;
pub mod pages;
pub mod sse;

use crate::discovery::Board;
use crate::metrics::Metrics;
use crate::names::BrokerId;
use crate::plan::{first_line, TestInfo, WebPlan};
use crate::rrd::graph::{parse_graphs_cfg, GraphDef};
use crate::store::Store;
use crate::xymon::Outbox;
use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;
use tower_http::body::Limited;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::{info, warn};

/// The graph definitions shipped in the repository (the same file Xymon's showgraph uses).
pub const GRAPHS_CFG: &str = include_str!("../../graphs.d/mqtt.cfg");

/// Time a page request may take to produce its response (graph renders can queue); see `router`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body (every route is a GET).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Event streams open at once, at most (see `event_streams`).
pub const MAX_EVENT_STREAMS: usize = 64;

/// Event streams open at once with `max_connections`: three quarters of them at most, so that however
/// many streams are open, a quarter of the connections (at least one) is left for `/healthz`, the API
/// and the pages; a stream refused for lack of room is answered 503 and its connection closed.
pub fn event_streams(max_connections: usize) -> usize {
    (max_connections * 3 / 4).min(MAX_EVENT_STREAMS)
}
/// Graphs rendered at once: `rrdtool graph` children of about 15 MB and 20 ms each.
pub const MAX_GRAPH_RENDERS: usize = 2;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the web layer needs from the config, resolved at start-up.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub listen: SocketAddr,
    pub limits: listener::ConnLimits,
    pub token: Option<String>,
    pub rrd_dir: PathBuf,
    pub brokers: Vec<String>,
    pub tests: Vec<TestInfo>,
}

impl WebOptions {
    /// Reads the token file, if any.
    ///
    /// # Errors
    /// An unreadable or empty token file.
    pub fn from_plan(web: &WebPlan) -> anyhow::Result<WebOptions> {
        let token = match &web.token_file {
            None => None,
            Some(path) => {
                let token = first_line(path)
                    .map_err(|e| anyhow::anyhow!("web.token_file: {e}"))?
                    .trim()
                    .to_string();
                anyhow::ensure!(
                    !token.is_empty(),
                    "web.token_file {} is empty",
                    path.display()
                );
                Some(token)
            }
        };
        Ok(WebOptions {
            listen: web.listen,
            limits: listener::ConnLimits {
                header_timeout: web.header_timeout,
                max_connections: web.max_connections,
            },
            token,
            rrd_dir: web.rrd_dir.clone(),
            brokers: web.brokers.clone(),
            tests: web.tests.clone(),
        })
    }
}

/// What the web layer reads: the bridge's live state.
#[derive(Clone)]
pub struct Sources {
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    /// The discovered devices (Home Assistant discovery), as the discovery sessions last built them.
    pub devices: Board,
    /// The stages whose queues `/healthz` watches (none in a web layer without a bridge behind it).
    pub stages: Arc<Vec<Stage>>,
}

/// A stage of the pipeline whose queue `/healthz` watches.
pub struct Stage {
    /// Who it is, for the reason (`the collector`).
    pub name: &'static str,
    /// What "stuck" means for it (`its queue is full and it took nothing`).
    pub what: &'static str,
    /// How long that may last before the stage counts as stuck.
    pub after: Duration,
    /// How long it has been so; `None` while it is not (its queue is not full).
    pub stuck_for: Box<dyn Fn() -> Option<Duration> + Send + Sync>,
}

pub struct Inner {
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub devices: Board,
    pub token: Option<String>,
    pub rrd_dir: PathBuf,
    pub broker_names: Vec<String>,
    pub tests: Vec<TestInfo>,
    pub graphs: Vec<GraphDef>,
    pub stages: Arc<Vec<Stage>>,
    pub sse_slots: Arc<Semaphore>,
    pub graph_slots: Arc<Semaphore>,
    pub cancel: CancellationToken,
}

/// The handlers' state: cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// # Errors
    /// The embedded graph definitions do not parse (a build problem, caught by the tests).
    pub fn new(
        options: WebOptions,
        sources: Sources,
        cancel: CancellationToken,
    ) -> anyhow::Result<AppState> {
        let graphs = parse_graphs_cfg("graphs.d/mqtt.cfg", GRAPHS_CFG)?;
        let streams = event_streams(options.limits.max_connections);
        Ok(AppState(Arc::new(Inner {
            store: sources.store,
            outbox: sources.outbox,
            metrics: sources.metrics,
            devices: sources.devices,
            stages: sources.stages,
            token: options.token,
            rrd_dir: options.rrd_dir,
            broker_names: options.brokers,
            tests: options.tests,
            graphs,
            sse_slots: Arc::new(Semaphore::new(streams)),
            graph_slots: Arc::new(Semaphore::new(MAX_GRAPH_RENDERS)),
            cancel,
        })))
    }

    pub fn broker_name(&self, id: BrokerId) -> &str {
        self.broker_names.get(id).map(String::as_str).unwrap_or("?")
    }

    pub fn broker_id(&self, name: &str) -> Option<BrokerId> {
        self.broker_names.iter().position(|b| b == name)
    }
}

/// The whole application as one service: the routes inside the middleware. Boxed once, so the listener
/// and the tests hold a plain type.
pub type App = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The whole application: API, pages, static files, with its middleware.
pub fn app(state: AppState) -> App {
    let token = state.token.clone();
    // The middleware wraps the finished router, not each route: `Router::layer` puts every route in one
    // more boxed service that is cloned, and whose future is boxed, on every request (about 1,600
    // instructions per API request under callgrind, `bench/api-profile`). Outermost first.
    let stack = ServiceBuilder::new()
        .map_response(with_security_headers)
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BYTES))
        .map_request(|req: Request<Limited<Body>>| req.map(Body::new))
        .layer(CompressionLayer::new())
        .layer(auth::RequireTokenLayer::new(token.as_deref()))
        .service(routes(state));
    BoxCloneSyncService::new(stack)
}

/// The routes, with the deadline only the pages need. (The API's `no-store` comes with its responses,
/// `json::NO_STORE`.)
fn routes(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/api/v1/topics", get(api::topics))
        .route("/api/v1/topics/{*topic}", get(api::topic))
        .route("/api/v1/tests", get(api::tests))
        .route("/api/v1/brokers", get(api::brokers))
        .route("/api/v1/store", get(api::store))
        .route("/api/v1/devices", get(devices::devices))
        .route("/api/v1/events", get(sse::events))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics));
    // The request deadline guards the pages, which may wait for a graph render (an rrdtool child, one or
    // two at a time). The API handlers answer from memory under a short lock and cannot wait on anything, so a timer
    // per request (about 6 % of the API's CPU per request, benchmark scenario 5) would never fire there.
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/topics", get(pages::topics))
        .route("/devices", get(devices::page))
        .route("/tests/{host}/{test}", get(pages::test))
        .route("/graphs/{host}", get(pages::graphs))
        .route("/graph/{host}/{graph}/{period}", get(pages::graph_png))
        .route("/static/{file}", get(pages::asset))
        .layer(
            ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                ))
                // The timeout's own 503 needs a `Default` body; the handlers' bodies become axum's.
                .map_response(IntoResponse::into_response),
        );
    pages
        .merge(api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// The headers every response carries, unless its handler set its own: no referrer, no MIME sniffing,
/// and the Content-Security-Policy. Set in the outermost `map_response`, so the body limit's 413 and the
/// token check's 401 get them too. One function rather than a `SetResponseHeaderLayer` each: every layer
/// nests the request and response futures once more, and the three cost about 1,100 instructions per API
/// request more than this (callgrind, `bench/api-profile`).
fn with_security_headers(resp: impl IntoResponse) -> Response {
    // Constants, so `from_static` checks each value's bytes at compile time, not on every response.
    const HEADERS: [(header::HeaderName, HeaderValue); 3] = [
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ];
    let mut resp = resp.into_response();
    let headers = resp.headers_mut();
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
    }
    resp
}

/// Binds `listen` and serves until `cancel` fires.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    options: WebOptions,
    sources: Sources,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on web.listen {}", options.listen))?;
    let addr = listener.local_addr()?;
    let limits = options.limits;
    let app = app(AppState::new(options, sources, cancel.clone())?);
    info!(%addr, "web UI and API listening");
    Ok(tokio::spawn(listener::serve(listener, app, limits, cancel)))
}

/// Starts the web server for the plan's `web` if enabled. A web problem (busy port, unreadable token
/// file) is logged and the bridge runs on without it: delivering statuses to Xymon matters more than the
/// dashboard.
pub async fn start(
    web: &WebPlan,
    sources: Sources,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !web.enabled {
        return None;
    }
    let started = match WebOptions::from_plan(web) {
        Ok(options) => serve(options, sources, cancel).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(handle) => Some(handle),
        Err(e) => {
            warn!(error = format!("{e:#}"), "web UI and API not started");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures;
    use crate::plan::Plan;

    #[test]
    fn test_list_shares_the_config_topic_lists() {
        let config = fixtures::config(fixtures::TOPICS_AND_BROKER_STATS);
        let options = WebOptions::from_plan(&Plan::compile(&config).unwrap().web).unwrap();
        let topics = &config.tests[0].get_ref().topics;
        assert!(Arc::ptr_eq(&options.tests[0].topics, topics));
        let names: Vec<&str> = options.tests[1].topics.iter().map(|t| &**t).collect();
        assert_eq!(names, crate::config::BROKER_STATS_TOPICS);
    }
}
