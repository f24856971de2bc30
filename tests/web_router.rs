//! Router tests with `oneshot`: the web layer over a hand-filled store and outbox, no network.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use xymon_mqtt::colour::Colour;
use xymon_mqtt::config::TestKind;
use xymon_mqtt::metrics::Metrics;
use xymon_mqtt::names::{HostName, TestName, TopicName};
use xymon_mqtt::plan::TestInfo;
use xymon_mqtt::store::{Incoming, Store};
use xymon_mqtt::web::{App, AppState, Sources, WebOptions};
use xymon_mqtt::xymon::{Outbox, Status};

const XSS: &str = "<script>alert(1)</script>";

fn shared() -> Sources {
    let store = Store::new(
        &[
            ("local".into(), "mqtt://127.0.0.1:1883".into()),
            ("other".into(), "mqtt://127.0.0.1:1884".into()),
        ],
        10_000,
        65536,
    );
    Sources {
        store,
        outbox: Arc::new(Outbox::new()),
        metrics: Arc::new(Metrics::new()),
        devices: Default::default(),
        stages: Arc::default(),
    }
}

fn publish(s: &Sources, broker: usize, topic: &str, payload: &[u8]) {
    s.store
        .update(
            broker,
            &Incoming {
                topic,
                payload,
                qos: 1,
                retained: false,
                at: SystemTime::now(),
            },
        )
        .unwrap();
}

fn app_with(s: &Sources, token: Option<&str>, rrd_dir: PathBuf) -> App {
    let options = WebOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits: xymon_mqtt::web::listener::ConnLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 16,
        },
        token: token.map(str::to_string),
        rrd_dir,
        brokers: vec!["local".into(), "other".into()],
        tests: vec![TestInfo {
            host: "h1".into(),
            test: "sensors".into(),
            broker: 0,
            kind: TestKind::Topics,
            topics: ["sensors/a/temperature", XSS]
                .map(|t| TopicName::try_from(t.to_string()).unwrap())
                .into(),
        }],
    };
    xymon_mqtt::web::app(AppState::new(options, s.clone(), CancellationToken::new()).unwrap())
}

fn app(s: &Sources) -> App {
    app_with(s, None, PathBuf::from("/nonexistent"))
}

async fn get(app: &App, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    get_with(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_with(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn get_json(app: &App, uri: &str) -> (StatusCode, serde_json::Value) {
    let (status, headers, body) = get(app, uri).await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json",
        "{uri}: {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

fn status(host: &str, test: &str, colour: Colour, body: &str) -> Status {
    Status {
        host: HostName::try_from(host.to_string()).unwrap(),
        test: TestName::try_from(test.to_string()).unwrap(),
        colour,
        lifetime: std::time::Duration::from_secs(600),
        summary: "summary".into(),
        body: body.into(),
    }
}

#[tokio::test]
async fn topics_filter_and_fields() {
    let s = shared();
    publish(&s, 0, "sensors/a/temperature", b"21.5");
    publish(&s, 0, "sensors/b/temperature", b"19");
    publish(&s, 0, "sensors/a/humidity", b"40");
    publish(&s, 1, "$SYS/broker/bytes/sent", b"1234");
    publish(&s, 1, "bin", &[0xff, 0xfe, 0]);
    let app = app(&s);

    let (code, v) = get_json(&app, "/api/v1/topics?filter=sensors/%2B/temperature").await;
    assert_eq!(code, StatusCode::OK);
    let items = v["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["topic"].as_str().unwrap()).collect();
    assert_eq!(names, ["sensors/a/temperature", "sensors/b/temperature"]);
    let a = &items[0];
    assert_eq!(a["payload"], "21.5");
    assert_eq!(a["broker"], "local");
    assert_eq!(a["qos"], 1);
    assert_eq!(a["retained"], false);
    assert_eq!(a["binary"], false);
    assert!(a["age_seconds"].as_f64().unwrap() < 60.0);
    assert!(chrono::DateTime::parse_from_rfc3339(a["received_at"].as_str().unwrap()).is_ok());
    assert!(v.get("next_cursor").is_none());

    // `#` does not match $-topics (MQTT rule); a `$SYS/#` filter does.
    let (_, v) = get_json(&app, "/api/v1/topics?filter=%23").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
    let (_, v) = get_json(&app, "/api/v1/topics?filter=$SYS/%23").await;
    assert_eq!(v["items"][0]["broker"], "other");

    // Binary payloads come as base64, marked.
    let (_, v) = get_json(&app, "/api/v1/topics?filter=bin").await;
    assert_eq!(v["items"][0]["binary"], true);
    assert_eq!(v["items"][0]["payload"], "//4A");

    for bad in [
        "filter=a/%23/b",
        "limit=0",
        "limit=1001",
        "cursor=%21%21",
        "broker=nope",
    ] {
        let (code, v) = get_json(&app, &format!("/api/v1/topics?{bad}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert!(v["error"].is_string(), "{bad}");
    }
}

#[tokio::test]
async fn topics_are_paginated_with_a_cursor() {
    let s = shared();
    for i in 0..250 {
        publish(&s, 0, &format!("t/{i:03}"), b"x");
    }
    let app = app(&s);
    let (_, first) = get_json(&app, "/api/v1/topics").await;
    assert_eq!(
        first["items"].as_array().unwrap().len(),
        100,
        "default limit"
    );
    let mut seen = Vec::new();
    let mut uri = "/api/v1/topics?limit=70".to_string();
    loop {
        let (code, v) = get_json(&app, &uri).await;
        assert_eq!(code, StatusCode::OK);
        for i in v["items"].as_array().unwrap() {
            seen.push(i["topic"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/topics?limit=70&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("t/{i:03}")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn one_topic_by_path() {
    let s = shared();
    publish(&s, 1, "$SYS/broker/bytes/sent", b"1234");
    publish(&s, 0, "a/b c/d", b"v");
    let app = app(&s);
    let (code, v) = get_json(&app, "/api/v1/topics/$SYS/broker/bytes/sent").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        (v["payload"].as_str(), v["broker"].as_str()),
        (Some("1234"), Some("other"))
    );
    let (code, v) = get_json(&app, "/api/v1/topics/a/b%20c/d").await;
    assert_eq!((code, v["payload"].as_str()), (StatusCode::OK, Some("v")));
    let (code, v) = get_json(&app, "/api/v1/topics/$SYS/broker/bytes/sent?broker=local").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("$SYS/broker/bytes/sent"));
    let (code, _) = get_json(&app, "/api/v1/topics/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = get_json(&app, "/no/such/route").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tests_brokers_health_and_metrics() {
    let s = shared();
    let app = app(&s);
    let (code, v) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["reasons"][0], "no broker is connected");

    s.store.set_connected(0, true, None);
    s.outbox
        .put(status("h1", "sensors", Colour::Red, "&red bad\n"));
    let (code, v) = get_json(&app, "/healthz").await;
    assert_eq!((code, v["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (_, v) = get_json(&app, "/api/v1/tests").await;
    assert_eq!(v[0]["host"], "h1");
    assert_eq!(v[0]["test"], "sensors");
    assert_eq!(v[0]["colour"], "red");
    assert_eq!(v[0]["delivery"]["state"], "pending");
    assert!(v[0]["status"].as_str().unwrap().contains("&red bad"));

    // xymond refusing: the test says so at once; /healthz once it has lasted 5 s (a restart of xymond
    // is not an outage). The clock is tokio's, paused and advanced.
    tokio::time::pause();
    let batch = s.outbox.take(10);
    s.outbox.failed(batch, "connection refused");
    let (_, v) = get_json(&app, "/api/v1/tests").await;
    assert_eq!(v[0]["delivery"]["state"], "failing");
    assert_eq!(v[0]["delivery"]["reason"], "connection refused");
    let (code, _) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(6)).await;
    let (code, v) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let reason = v["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("xymond refuses deliveries (for 6s"),
        "{reason}"
    );
    assert!(reason.contains("connection refused"), "{reason}");
    // A later status of the same test replaces the failed one; the sender is still failing.
    s.outbox
        .put(status("h1", "sensors", Colour::Green, "&green ok\n"));
    let (code, _) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    s.outbox.delivered(&s.outbox.take(10));
    let (code, _) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::OK);
    tokio::time::resume();

    let (_, v) = get_json(&app, "/api/v1/brokers").await;
    assert_eq!(v[0]["name"], "local");
    assert_eq!(v[0]["connected"], true);
    assert_eq!(v[1]["connected"], false);

    s.metrics.statuses_sent.inc();
    let (code, headers, body) = get(&app, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("openmetrics"));
    assert!(body.contains("xymon_mqtt_statuses_sent_total 1"), "{body}");
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let app = app(&shared());
    let (code, v) = get_json(&app, "/api/v1/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/v1/topics",
        "/api/v1/topics/{topic}",
        "/api/v1/tests",
        "/api/v1/brokers",
        "/api/v1/store",
        "/api/v1/events",
        "/healthz",
        "/metrics",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p} missing");
    }
    assert!(v["components"]["schemas"]["TopicItem"]["properties"]
        .get("age_seconds")
        .is_some());
}

#[tokio::test]
async fn untrusted_text_is_escaped_in_every_page() {
    let s = shared();
    publish(&s, 0, XSS, XSS.as_bytes());
    publish(&s, 0, "sensors/a/temperature", XSS.as_bytes());
    s.store.set_connected(1, false, Some(XSS.into()));
    // The status text holds untrusted text as the sanitiser leaves it: entities.
    let escaped = xymon_mqtt::text::untrusted(XSS, 100, "  ");
    s.outbox.put(status(
        "h1",
        "sensors",
        Colour::Yellow,
        &format!("&yellow value {escaped}\n"),
    ));
    let app = app(&s);
    for uri in ["/", "/topics", "/topics?filter=%23", "/tests/h1/sensors"] {
        let (code, headers, body) = get(&app, uri).await;
        assert_eq!(code, StatusCode::OK, "{uri}");
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert!(
            !body.contains("<script>alert"),
            "{uri} has a live tag:\n{body}"
        );
        if uri != "/" || body.contains("alert") {
            assert!(
                body.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                    || body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{uri}:\n{body}"
            );
        }
    }
    // The test page shows Xymon's icon as a dot and the payload as the text Xymon shows.
    let (_, _, body) = get(&app, "/tests/h1/sensors").await;
    assert!(
        body.contains(r#"<span class="dot yellow" title="yellow"></span>"#),
        "{body}"
    );
    assert!(!body.contains("&amp;lt;"), "double escaped:\n{body}");
    let (code, _, _) = get(&app, "/tests/h1/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_is_required_when_set() {
    let s = shared();
    let app = app_with(&s, Some("s3cret"), PathBuf::from("/nonexistent"));
    for uri in ["/", "/api/v1/topics", "/metrics", "/static/app.js", "/nope"] {
        let (code, headers, _) = get(&app, uri).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
    let req = |auth: &str| {
        Request::get("/api/v1/brokers")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(get_with(&app, req("Bearer s3cret")).await.0, StatusCode::OK);
    assert_eq!(
        get_with(&app, req("Bearer s3cre")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // ?token= sets a cookie that works afterwards.
    let (code, headers, _) = get(&app, "/?token=s3cret").await;
    assert_eq!(code, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let req = Request::get("/topics")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    assert_eq!(get_with(&app, req).await.0, StatusCode::OK);
}

/// The middleware stack covers every response: pages, API, 404s, 401s and 413s get the security headers,
/// JSON answers alone are `no-store`, and a request body over the limit is refused before any handler
/// runs.
#[tokio::test]
async fn middleware_applies_to_every_response() {
    let s = shared();
    publish(&s, 0, "sensors/a/temperature", b"21.5");
    let open = app(&s);
    let locked = app_with(&s, Some("s3cret"), PathBuf::from("/nonexistent"));
    let cases = [
        (&open, "/", StatusCode::OK, false),
        (
            &open,
            "/api/v1/topics/sensors/a/temperature",
            StatusCode::OK,
            true,
        ),
        (&open, "/api/v1/topics/nope", StatusCode::NOT_FOUND, true),
        (&open, "/metrics", StatusCode::OK, true),
        // Not healthy: no broker is connected in this store.
        (&open, "/healthz", StatusCode::SERVICE_UNAVAILABLE, true),
        (&open, "/no/such/route", StatusCode::NOT_FOUND, false),
        (&locked, "/", StatusCode::UNAUTHORIZED, false),
        (&locked, "/api/v1/topics", StatusCode::UNAUTHORIZED, false),
    ];
    for (app, uri, want, api) in cases {
        let (code, headers, _) = get(app, uri).await;
        assert_eq!(code, want, "{uri}");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{uri}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{uri}");
        // `no-store` on the API's routes (JSON and the metrics text) and on every JSON error (401,
        // unknown route); the pages keep the browser's default.
        let json = headers[header::CONTENT_TYPE] == "application/json";
        assert_eq!(
            headers
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap()),
            (api || json).then_some("no-store"),
            "{uri}"
        );
    }
    let big = Request::get("/api/v1/brokers")
        .header(
            header::CONTENT_LENGTH,
            xymon_mqtt::web::MAX_REQUEST_BYTES + 1,
        )
        .body(Body::from(vec![
            b'x';
            xymon_mqtt::web::MAX_REQUEST_BYTES + 1
        ]))
        .unwrap();
    let (code, headers, _) = get_with(&open, big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn gzip_when_asked_and_static_assets_embedded() {
    let s = shared();
    for i in 0..100 {
        publish(&s, 0, &format!("t/{i}"), b"some value");
    }
    let app = app(&s);
    let req = Request::get("/api/v1/topics")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
    for (uri, ctype) in [
        ("/static/style.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let (code, headers, _) = get(&app, uri).await;
        assert_eq!(code, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(ctype));
    }
    assert_eq!(
        get(&app, "/static/../Cargo.toml").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn graphs_render_from_rrd_files() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = common::rrd::filled_writer(dir.path(), 12);
    drop(w);
    h.join().unwrap();
    let s = shared();
    let app = app_with(&s, None, dir.path().to_path_buf());
    let host = common::rrd::HOST;
    let (code, _, page) = get(&app, &format!("/graphs/{host}")).await;
    assert_eq!(code, StatusCode::OK);
    for g in ["mqtttm", "mqttto"] {
        for p in ["48h", "12d", "48d", "576d"] {
            let src = format!("/graph/{host}/{g}/{p}");
            assert!(page.contains(&src), "{src} not on the page");
            let (code, headers, _) = get(&app, &src).await;
            assert_eq!(code, StatusCode::OK, "{src}");
            assert_eq!(headers[header::CONTENT_TYPE], "image/png");
        }
    }
    // The trends-page alias draws the same as mqtttm and is not shown twice.
    assert!(!page.contains(&format!("/graph/{host}/mqtt/")));
    for bad in [
        format!("/graph/{host}/mqtttm/1y"),
        format!("/graph/{host}/nope/48h"),
        "/graph/other.example.com/mqtttm/48h".to_string(),
        "/graph/..%2Fetc/mqtttm/48h".to_string(),
    ] {
        assert_eq!(get(&app, &bad).await.0, StatusCode::NOT_FOUND, "{bad}");
    }
}

/// The event stream: `text/event-stream`, `no-store` like the rest of the API, and a topic that matches
/// the filter arrives as a `topic` event holding the API's JSON for it; one that does not, does not.
#[tokio::test]
async fn event_stream_headers_and_a_topic_event() {
    use futures_util::StreamExt as _;
    let s = shared();
    let app = app(&s);
    let req = Request::get("/api/v1/events?filter=sensors/%2B/temperature")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    publish(&s, 0, "other/topic", b"1");
    publish(&s, 0, "sensors/a/temperature", b"21.5");
    let mut body = resp.into_body().into_data_stream();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
        .unwrap();
    let text = String::from_utf8_lossy(&frame);
    let data = text
        .strip_prefix("event: topic\ndata: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not one topic event: {text:?}"));
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["topic"], "sensors/a/temperature");
    assert_eq!(v["payload"], "21.5");
    assert!(chrono::DateTime::parse_from_rfc3339(v["received_at"].as_str().unwrap()).is_ok());
}

/// Other methods than GET get a JSON 405 with `Allow`, `no-store` and the security headers; HEAD answers
/// like GET without a body; an invalid event-stream filter is a JSON 400, `no-store`.
#[tokio::test]
async fn other_methods_head_and_bad_event_filter() {
    let s = shared();
    publish(&s, 0, "sensors/a/temperature", b"21.5");
    let app = app(&s);
    for uri in [
        "/api/v1/topics",
        "/api/v1/topics/sensors/a/temperature",
        "/",
    ] {
        let req = Request::post(uri).body(Body::empty()).unwrap();
        let (code, headers, body) = get_with(&app, req).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        assert!(
            headers[header::ALLOW].to_str().unwrap().contains("GET"),
            "{uri}"
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("GET"), "{body}");
    }
    // An answer that does not change between the two requests (a topic's holds its age).
    let uri = "/api/v1/openapi.json";
    let (get_code, get_headers, get_body) = get(&app, uri).await;
    let req = Request::head(uri).body(Body::empty()).unwrap();
    let (code, headers, body) = get_with(&app, req).await;
    assert_eq!((code, get_code), (StatusCode::OK, StatusCode::OK));
    assert!(body.is_empty(), "{body}");
    assert_eq!(headers[header::CONTENT_LENGTH], get_body.len().to_string());
    for name in [
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::CONTENT_SECURITY_POLICY,
    ] {
        assert_eq!(headers[&name], get_headers[&name], "{name}");
    }
    let (code, headers, body) = get(&app, "/api/v1/events?filter=a/%23/b").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(body.contains("error"), "{body}");
}

/// /healthz names every broker that is not connected (with its error), and every stage its bridge
/// watches that has been stuck longer than allowed; /api/v1/store shows the store's budget.
#[tokio::test]
async fn health_names_disconnected_brokers_and_stuck_stages() {
    let mut s = shared();
    let stuck = Arc::new(std::sync::Mutex::new(None::<Duration>));
    let probe = stuck.clone();
    s.stages = Arc::new(vec![xymon_mqtt::web::Stage {
        name: "the collector",
        what: "its queue is full and it took nothing",
        after: Duration::from_secs(10),
        stuck_for: Box::new(move || *probe.lock().unwrap()),
    }]);
    let app = app(&s);
    s.store.set_connected(0, true, None);
    s.store
        .set_connected(1, false, Some("connection refused <b>".into()));
    let (code, v) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["reasons"].as_array().unwrap().len(), 1, "{v}");
    let reason = v["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("broker other is not connected (for 0s): connection refused <b>"),
        "{reason}"
    );
    s.store.set_connected(1, true, None);
    *stuck.lock().unwrap() = Some(Duration::from_secs(3));
    assert_eq!(get_json(&app, "/healthz").await.0, StatusCode::OK);
    *stuck.lock().unwrap() = Some(Duration::from_secs(12));
    let (code, v) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        v["reasons"][0],
        "the collector is stuck: its queue is full and it took nothing (for 12s)"
    );
    *stuck.lock().unwrap() = None;
    assert_eq!(get_json(&app, "/healthz").await.0, StatusCode::OK);

    publish(&s, 0, "a", b"12345");
    let (code, v) = get_json(&app, "/api/v1/store").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["topics"], 1);
    assert_eq!(
        v["bytes"],
        (xymon_mqtt::store::ENTRY_OVERHEAD + 1 + 5) as u64
    );
    assert_eq!(v["evicted_topics"], 0);
}

/// The overview's ghost banner: shown only with ghosts, every field escaped; `/metrics` has the gauge and
/// one labelled series per host.
#[tokio::test]
async fn ghost_banner_and_metrics() {
    let s = shared();
    let app = app(&s);
    let (_, _, page) = get(&app, "/").await;
    assert!(!page.contains("id=\"ghosts\""), "{page}");
    s.metrics.set_ghosts(xymon_mqtt::metrics::GhostReport {
        hosts: vec![xymon_mqtt::metrics::GhostHost {
            host: "sensro-kitchen".into(),
            tests: vec!["env".into(), XSS.into()],
            origin: format!("test[0]: the rule on topic {XSS}"),
            last_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        }],
        checked_at: Some(SystemTime::now()),
        error: None,
    });
    let (status, _, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"ghosts\""), "{page}");
    assert!(
        page.contains("xymond drops the statuses of 1 host the bridge sends for"),
        "{page}"
    );
    assert!(
        page.contains("<code class=\"ghost-host\">sensro-kitchen</code>"),
        "{page}"
    );
    assert!(!page.contains(XSS), "{page}");
    assert!(page.contains("&#60;script&#62;alert(1)"), "{page}");
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(metrics.contains("xymon_mqtt_ghost_hosts 1\n"), "{metrics}");
    assert!(
        metrics.contains("xymon_mqtt_ghost_host{host=\"sensro-kitchen\"} 1\n"),
        "{metrics}"
    );
    // Fixed: the gauge goes back to 0 and the host's series goes away.
    s.metrics
        .set_ghosts(xymon_mqtt::metrics::GhostReport::default());
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(metrics.contains("xymon_mqtt_ghost_hosts 0\n"), "{metrics}");
    assert!(!metrics.contains("sensro-kitchen"), "{metrics}");
    let (_, _, page) = get(&app, "/").await;
    assert!(!page.contains("id=\"ghosts\""), "{page}");
}
