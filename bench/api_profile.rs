//! Instruction counts per API request under callgrind (benchmark scenario 5's profile).
//!
//! wrk's req/s on a shared 2-core machine moves by ±10 % from run to run, too much to see a change of a
//! few per cent in the handler. Instruction counts under callgrind repeat to within a few hundred per
//! request. Two modes:
//! - `api_profile serve ours|trivial REQUESTS`: one server and a client thread sending REQUESTS
//!   sequential keep-alive GETs. `ours` is the bridge's web layer (`xymon_mqtt::web::serve`, router and
//!   middleware) over a store of the flood's topics, answering `GET /api/v1/topics/bench/dev0042/value`;
//!   `trivial` is an axum handler returning "ok" under `axum::serve`. Everything runs on one
//!   current-thread runtime on the main thread, so callgrind's `--separate-threads=yes` puts the server
//!   in the file ending `-01`.
//! - `api_profile measure [REQUESTS [DIR]]`: runs `serve` for both servers under callgrind with REQUESTS
//!   (default 2000) and twice that, and prints the server thread's instructions per request; the files
//!   stay in DIR (default `target/api-profile`). `bench/api-profile` builds and runs this; scenario 5
//!   of the harness calls the same code (`api_setup::instructions_per_request`).

#[path = "api_setup.rs"]
mod api_setup;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

const USAGE: &str =
    "usage: api_profile serve ours|trivial REQUESTS | api_profile measure [REQUESTS [DIR]]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["serve", server, requests] => match requests.parse() {
            Ok(requests) => serve(server, requests),
            Err(_) => usage(),
        },
        ["measure", ref rest @ ..] if rest.len() <= 2 => {
            let n = rest
                .first()
                .map_or(Ok(2000), |n| n.parse())
                .unwrap_or_else(|_| usage());
            let dir = PathBuf::from(rest.get(1).copied().unwrap_or("target/api-profile"));
            measure(n, &dir);
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn measure(n: u64, dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("output directory");
    let driver = std::env::current_exe().expect("current_exe");
    match api_setup::instructions_per_request(&driver, dir, n) {
        Ok((ours, trivial)) => {
            for (server, count) in [("trivial", trivial), ("ours", ours)] {
                println!(
                    "{server}: {count} instructions per request (server thread; {n} and {} requests)",
                    2 * n
                );
            }
        }
        Err(e) => {
            eprintln!("api_profile: {e}");
            std::process::exit(1);
        }
    }
}

fn serve(server: &str, requests: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `ours` binds through `web::serve`, so its port is picked here, released and bound again there;
    // another process could take it in between, which only fails this run.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let path = match server {
        "ours" => {
            drop(listener);
            start_ours(&rt, port);
            "/api/v1/topics/bench/dev0042/value"
        }
        "trivial" => {
            use axum::routing::get;
            let trivial = axum::Router::new().route("/", get(|| async { "ok" }));
            listener.set_nonblocking(true).expect("nonblocking");
            rt.spawn(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(l, trivial).await.expect("serve");
            });
            "/"
        }
        _ => usage(),
    };
    // The client reports on a channel: the server thread waits without a timer of its own, whose wake-ups
    // would grow with the run's length and not cancel out between N and 2N.
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(client(port, path, requests));
    });
    let bytes = rt.block_on(finished).expect("client finished");
    eprintln!("{server}: {requests} requests, {bytes} response bytes");
}

/// The bridge's web layer over a store holding every flood topic, as scenario 5 has it.
fn start_ours(rt: &tokio::runtime::Runtime, port: u16) {
    let (options, shared) = api_setup::web_over_flood_store(port, "mqtt://127.0.0.1:1");
    let cancel = tokio_util::sync::CancellationToken::new();
    rt.block_on(async {
        let h = xymon_mqtt::web::serve(options, shared.web_sources(), cancel)
            .await
            .expect("web server");
        drop(h); // the task runs on; the process ends with the client
    });
}

/// Sends `requests` GETs on one keep-alive connection, reading each whole response; the bytes read.
fn client(port: u16, path: &str, requests: usize) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    for _ in 0..requests {
        s.write_all(request.as_bytes()).expect("write");
        let mut got = 0;
        loop {
            let n = s.read(&mut buf[got..]).expect("read");
            assert!(n > 0, "server closed the connection");
            got += n;
            if let Some(end) = response_end(&buf[..got]) {
                assert!(buf.starts_with(b"HTTP/1.1 200 "), "not a 200");
                assert_eq!(end, got, "one response at a time");
                break;
            }
        }
        total += got;
    }
    total
}

/// The length of the response at the start of `buf` once it is complete (headers and Content-Length body).
fn response_end(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let length: usize = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    (buf.len() >= head_end + length).then_some(head_end + length)
}
