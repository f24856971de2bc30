//! The web listener: accepts TCP connections and serves each one with hyper's HTTP/1.
//!
//! Fed by `web::serve` (the bound listener and the app, router and middleware); hands each request to the
//! app. This
//! replaces `axum::serve`, which gives hyper no timer (so hyper's header-read timeout never fires) and
//! accepts without bound: a client sending its headers one byte at a time, or not at all, held a
//! connection and its task for ever. Here every connection must deliver its request headers within
//! `header_timeout` (this covers the wait for the next request on a kept-alive connection too), and at
//! most `max_connections` are served at once; further clients wait in the kernel's accept queue.

use super::App;
use crate::log_limit::LogLimiter;
use axum::body::Body;
use axum::http::Request;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long open connections get to finish their current response once the bridge stops (event
/// streams end on the same cancel token, so this is only for a response still being written).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Pause after an accept error such as EMFILE: accepting again at once would spin on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// At most one log line per kind of accept error per minute: running out of file descriptors can last.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// Limits on the connections of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `cancel` fires, then lets open connections finish for
/// `SHUTDOWN_GRACE`.
pub async fn serve(listener: TcpListener, app: App, limits: ConnLimits, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let log_limit = LogLimiter::new(ACCEPT_ERROR_LOG_EVERY);
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        // A slot first, then the connection: at the cap, clients queue in the kernel, not in memory.
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed; the semaphore lives in this function
            },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if log_limit.allow(&format!("{:?}", e.kind())) {
                        warn!(error = %e, "web: cannot accept a connection (logged once a minute)");
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Responses are small and written whole; Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        // hyper's body becomes axum's here, as `Router` would do it itself.
        let service = tower::ServiceBuilder::new()
            .map_request(|req: Request<hyper::body::Incoming>| req.map(Body::new))
            .service(app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed-out headers, malformed request).
            if let Err(e) = conn.await {
                debug!(error = %e, "web: connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("web: connections still open after the shutdown grace period; dropped");
    }
}
