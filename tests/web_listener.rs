//! The web listener (src/web/listener.rs) on a real loopback socket: slow or stalled clients are cut off
//! after `header_timeout`, at most `max_connections` are served at once, and it stops on the cancel token.
//!
//! The router here is a one-route axum app: what is under test is the connection handling, which is the
//! same whatever the routes are (the bridge's full router is exercised in web_router and web_e2e).
//!
//! The client side is raw `TcpStream`s on purpose, not an HTTP client crate: the tests send requests
//! that stop half-way, hold connections open without sending anything, and read until the server
//! closes, which a client library does not let a caller do.

use axum::routing::get;
use axum::Router;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use xymon_mqtt::web::listener::{serve, ConnLimits};

/// Generous bounds for a loaded 2-core machine; the assertions are about what happens, not how fast.
const EOF_WITHIN: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: ConnLimits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/slow-stream", get(slow_stream));
    let cancel = CancellationToken::new();
    let app = xymon_mqtt::web::App::new(app);
    let task = tokio::spawn(serve(listener, app, limits, cancel.clone()));
    Server { addr, cancel, task }
}

/// A response body sent in 8 parts, 150 ms apart: longer than the tests' 300 ms header timeout, like an
/// event stream, which must not be cut by it.
async fn slow_stream() -> axum::body::Body {
    let parts = tokio_stream::StreamExt::throttle(
        tokio_stream::iter((0..8).map(|i| Ok::<_, std::io::Error>(format!("part{i};")))),
        Duration::from_millis(150),
    );
    axum::body::Body::from_stream(parts)
}

/// Writes `request` (possibly incomplete) and reads until the server closes the connection. Returns what
/// was read, or `None` if the connection was still open after `EOF_WITHIN`.
fn send_and_read_to_eof(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(EOF_WITHIN)).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < EOF_WITHIN {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset is also the server closing.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned())
            }
            Err(_) => return None,
        }
    }
    None
}

/// One complete request on its own connection; the response text.
fn get_once(addr: SocketAddr) -> String {
    send_and_read_to_eof(
        addr,
        b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .expect("answered and closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_slow_clients_are_disconnected_after_the_header_timeout() {
    let server = start(ConnLimits {
        header_timeout: Duration::from_millis(300),
        max_connections: 16,
    })
    .await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // Connects and sends nothing.
        assert_eq!(send_and_read_to_eof(addr, b"").as_deref(), Some(""));
        // Starts a request and never finishes its headers (slowloris).
        let partial = send_and_read_to_eof(addr, b"GET /hello HTTP/1.1\r\nHost: t\r\n");
        assert!(
            partial.as_deref().is_some_and(|r| !r.contains("hello")),
            "{partial:?}"
        );
        // A finished request is answered; the kept-alive connection is then closed once idle.
        let kept = send_and_read_to_eof(addr, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("idle keep-alive connection closed");
        assert!(kept.starts_with("HTTP/1.1 200"), "{kept}");
        assert!(kept.ends_with("hello"), "{kept}");
        // The timeout is for reading a request, not for writing a long response (event streams).
        let streamed = send_and_read_to_eof(
            addr,
            b"GET /slow-stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .expect("stream ended");
        let body: String = streamed
            .split("\r\n")
            .filter(|l| l.starts_with("part"))
            .collect();
        assert_eq!(
            body, "part0;part1;part2;part3;part4;part5;part6;part7;",
            "{streamed}"
        );
        // The server is still serving.
        assert!(get_once(addr).ends_with("hello"));
    })
    .await
    .unwrap();
    server.cancel.cancel();
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    // A long header timeout, so that only closing a connection frees a slot in this test.
    let server = start(ConnLimits {
        header_timeout: Duration::from_secs(60),
        max_connections: 2,
    })
    .await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Both slots are held by idle connections, so a third request is not answered...
        let mut third = TcpStream::connect(addr).unwrap();
        third
            .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 256];
        let early = third.read(&mut buf);
        assert!(
            matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "answered past the cap: {early:?}"
        );
        // ...until one of them closes.
        drop(idle);
        third.set_read_timeout(Some(EOF_WITHIN)).unwrap();
        let mut reply = String::new();
        third.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("hello"), "{reply}");
    })
    .await
    .unwrap();
    server.cancel.cancel();
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_on_cancel_and_releases_the_port() {
    let server = start(ConnLimits {
        header_timeout: Duration::from_secs(60),
        max_connections: 4,
    })
    .await;
    let addr = server.addr;
    // An open idle connection does not hold the shutdown up past its grace period.
    let idle = TcpStream::connect(addr).unwrap();
    let answered = tokio::task::spawn_blocking(move || get_once(addr))
        .await
        .unwrap();
    assert!(answered.ends_with("hello"));
    server.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), server.task)
        .await
        .expect("serve returned after cancel")
        .unwrap();
    drop(idle);
    assert!(
        tokio::net::TcpListener::bind(addr).await.is_ok(),
        "the port is free again"
    );
}
