//! The web UI and API end to end: a real mosquitto, a real xymond, the bridge in-process with its web
//! server on a free loopback port; plain HTTP, schemathesis against the OpenAPI document, and headless
//! Chromium through chromedriver.

mod common;

use common::bridge::RunningBridge;
use common::web::{get, ChromeDriver};
use common::{free_port, wait_until, Mosquitto, Xymond};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const XSS: &str = "<script>alert(1)</script>";
/// A payload with bidi controls (U+202E reverses what follows, U+2066 isolates) and a zero-width space,
/// and how every display shows it.
const BIDI: &str = "21.5\u{202E}C°\u{2066}x\u{200B}";
const BIDI_SHOWN: &str = "21.5[U+202E]C°[U+2066]x[U+200B]";
const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    mosq: Mosquitto,
    xymond: Xymond,
    bridge: RunningBridge,
    web: u16,
    _rrd: tempfile::TempDir,
}

fn setup() -> Setup {
    let mosq = Mosquitto::start();
    let xymond = Xymond::start(&["h1"]);
    let rrd = tempfile::tempdir().unwrap();
    let web = free_port();
    let toml = format!(
        r#"
[xymon]
server = "{xymond}"
rrd_dir = "{rrd}"
[web]
listen = "127.0.0.1:{web}"
[[broker]]
name = "local"
url = "{url}"
[[test]]
host = "h1"
test = "sensors"
broker = "local"
window = "1s"
topics = ["sensors/a/temperature", "$SYS/broker/bytes/sent", "{XSS}"]
"#,
        xymond = xymond.addr(),
        rrd = rrd.path().display(),
        url = mosq.url(),
    );
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    wait_until(WAIT, "web server", || common::port_is_open(web));
    Setup {
        mosq,
        xymond,
        bridge,
        web,
        _rrd: rrd,
    }
}

fn wait_topic(
    web: u16,
    path: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(WAIT, &format!("{path} to match"), || {
        let r = get(web, path);
        if r.status != 200 {
            return false;
        }
        last = r.json();
        pred(&last)
    });
    last
}

/// Publish → the API shows value, age and broker; `$SYS/...` is reachable by path; brokers, tests,
/// health and metrics reflect the running bridge; then schemathesis finds no 5xx and no schema violation.
#[test]
fn api_end_to_end_and_openapi_conformance() {
    let s = setup();
    s.mosq.publish("sensors/a/temperature", "21.5", false);
    let v = wait_topic(s.web, "/api/v1/topics/sensors/a/temperature", |v| {
        v["payload"] == "21.5"
    });
    assert_eq!(v["broker"], "local");
    assert_eq!(v["topic"], "sensors/a/temperature");
    let age = v["age_seconds"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&age), "age {age}");

    // mosquitto publishes $SYS every second (harness: sys_interval 1).
    let v = wait_topic(s.web, "/api/v1/topics/$SYS/broker/bytes/sent", |_| true);
    assert!(v["payload"].as_str().unwrap().parse::<u64>().is_ok(), "{v}");
    let listed = get(s.web, "/api/v1/topics?filter=$SYS/%23").json();
    assert_eq!(listed["items"][0]["topic"], "$SYS/broker/bytes/sent");
    let missing = get(s.web, "/api/v1/topics/no/such/topic");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    let brokers = get(s.web, "/api/v1/brokers").json();
    assert_eq!(brokers[0]["connected"], true);
    assert!(brokers[0]["messages"].as_u64().unwrap() >= 1);

    s.mosq.publish(XSS, "x", false);
    wait_until(WAIT, "h1.sensors delivered", || {
        let t = get(s.web, "/api/v1/tests").json();
        t.as_array().is_some_and(|a| {
            a.iter()
                .any(|t| t["host"] == "h1" && t["delivery"]["state"] == "delivered")
        })
    });
    wait_until(WAIT, "healthz 200", || get(s.web, "/healthz").status == 200);
    let metrics = get(s.web, "/metrics").text();
    assert!(
        metrics.contains("xymon_mqtt_mqtt_messages_total{broker=\"local\"}"),
        "{metrics}"
    );

    schemathesis(s.web);
    let took = s.bridge.stop();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert!(!common::port_is_open(s.web), "web server still listening");
}

fn schemathesis(web: u16) {
    let bin = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let out = Command::new(&bin)
        .args([
            "run",
            &format!("http://127.0.0.1:{web}/api/v1/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path",
            "/api/v1/events",
            "--max-examples",
            "15",
            "--request-timeout",
            "20",
            "--seed",
            "1",
            // Topic names with `/` make many generated path values unusable; that is not a finding.
            "--suppress-health-check",
            "filter_too_much",
        ])
        .env("NO_COLOR", "1")
        // Its cache and reports go under target/, not into the work tree.
        .current_dir(artifact("schemathesis").parent().unwrap())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin} ({e}); install it with `pip install schemathesis` (run-tests does)")
        });
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
}

fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Headless Chromium: the topics page shows a value published after it loaded without a reload, shows an
/// XSS topic and payload as text (no script runs) and bidi controls as code points, and the test page
/// renders; screenshots are saved in target/ as artifacts.
#[test]
fn browser_sees_live_updates_and_escaped_text() {
    let s = setup();
    s.mosq.publish("sensors/a/temperature", "20.0", false);
    wait_topic(s.web, "/api/v1/topics/sensors/a/temperature", |v| {
        v["payload"] == "20.0"
    });

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let wd = driver.session(profile.path());
    let base = format!("http://127.0.0.1:{}", s.web);

    wd.goto(&format!("{base}/topics"));
    // A page-side trap: any alert() would be recorded (none may run).
    wd.eval("window.__alerts = 0; window.alert = function () { window.__alerts++; };");
    wait_until(WAIT, "SSE connected", || {
        wd.eval("return document.getElementById('live').textContent") == "live"
    });
    wd.eval("document.body.dataset.loadedOnce = 'yes';");

    s.mosq.publish("sensors/a/temperature", "23.75", false);
    s.mosq.publish(XSS, XSS, false);
    let cell = |topic: &str| {
        wd.eval(&format!(
            "for (const tr of document.querySelectorAll('#topics tbody tr')) \
               if (tr.dataset.topic === {}) return tr.querySelector('td.value').textContent; \
             return null;",
            serde_json::to_string(topic).unwrap()
        ))
    };
    wait_until(WAIT, "new value shown", || {
        cell("sensors/a/temperature") == "23.75"
    });
    wait_until(WAIT, "XSS row shown as text", || cell(XSS) == XSS);
    // A live update with bidi controls shows their code points (app.js's visible()).
    s.mosq.publish("sensors/a/temperature", BIDI, false);
    wait_until(WAIT, "bidi controls shown as code points", || {
        cell("sensors/a/temperature") == BIDI_SHOWN
    });
    assert_eq!(
        wd.eval("return document.body.dataset.loadedOnce"),
        "yes",
        "the page was reloaded"
    );
    assert_eq!(
        wd.eval("return document.querySelectorAll('script').length"),
        1,
        "only app.js may be a script"
    );
    assert_eq!(wd.eval("return window.__alerts"), 0);
    let shot = wd.screenshot();
    assert!(shot.starts_with(b"\x89PNG"));
    std::fs::write(artifact("web-screenshot.png"), &shot).unwrap();

    // The test page after a reload: the XSS topic is text there too.
    wd.goto(&format!("{base}/tests/h1/sensors"));
    wait_until(WAIT, "test page topics", || {
        wd.eval("return document.querySelectorAll('#topics tbody tr').length") == 3
    });
    let texts = wd.eval(
        "return Array.from(document.querySelectorAll('#topics td.topic')).map(e => e.textContent)",
    );
    assert!(
        texts.as_array().unwrap().iter().any(|t| t == XSS),
        "{texts}"
    );
    assert_eq!(
        wd.eval("return document.querySelectorAll('script').length"),
        1
    );
    std::fs::write(artifact("web-screenshot-test.png"), wd.screenshot()).unwrap();

    // Phone width: the overview still renders.
    wd.set_window(390, 844);
    wd.goto(&format!("{base}/"));
    wait_until(WAIT, "overview dot", || {
        wd.eval("return document.querySelectorAll('.dot[data-key]').length") == 1
    });
    std::fs::write(artifact("web-screenshot-phone.png"), wd.screenshot()).unwrap();
    drop(wd);
    drop(driver);
}

/// A payload with bidi controls and a zero-width space, published through mosquitto: xymond stores the
/// status with their code points (`[U+202E]`) and not the characters; the pages show the code points; the
/// API's JSON carries `\u202e` escapes (the decoded payload is the one published) and no raw character;
/// a filter in the query with one is shown escaped too.
#[test]
fn format_characters_are_code_points_in_xymond_the_pages_and_the_api() {
    let s = setup();
    let is_format = xymon_mqtt::text::is_format;
    s.mosq.publish("sensors/a/temperature", BIDI, false);
    let status = s
        .xymond
        .wait_for_status("h1.sensors", WAIT, |st| st.body.contains("[U+202E]"));
    assert!(status.body.contains(BIDI_SHOWN), "{}", status.body);
    assert!(!status.body.chars().any(is_format), "{:?}", status.body);

    let api = get(s.web, "/api/v1/topics/sensors/a/temperature");
    assert!(!api.text().chars().any(is_format), "{}", api.text());
    assert!(
        api.text().contains(r"21.5\u202eC°\u2066x\u200b"),
        "{}",
        api.text()
    );
    assert_eq!(api.json()["payload"], BIDI);
    let tests = wait_topic(s.web, "/api/v1/tests", |v| {
        v.to_string().contains("[U+202E]")
    });
    assert!(tests.to_string().contains(BIDI_SHOWN), "{tests}");

    for path in [
        "/",
        "/topics",
        "/tests/h1/sensors",
        "/topics?filter=sensors/%E2%80%AE%E2%81%A6/%23",
    ] {
        let page = get(s.web, path);
        assert_eq!(page.status, 200, "{path}");
        let html = page.text();
        assert!(!html.chars().any(is_format), "{path}: raw format character");
        if path != "/" {
            assert!(html.contains("[U+202E]"), "{path}: {html}");
        }
    }
    assert!(get(s.web, "/topics").text().contains(BIDI_SHOWN));
    s.bridge.stop();
}
