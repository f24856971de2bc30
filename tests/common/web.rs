//! HTTP for the web end-to-end tests (tests/web_e2e.rs), blocking like the rest of the harness: plain
//! requests to the bridge's web server, and a W3C WebDriver session on chromedriver driving headless
//! Chromium. Both go through `ureq`.
//!
//! The WebDriver side is the handful of W3C endpoints the test uses (new session, navigate, execute
//! script, window rect, screenshot, delete session), each a JSON request over `ureq`, rather than a
//! WebDriver crate: `fantoccini` is async (the browser test is a plain `#[test]` polling with
//! `wait_until`) and brings 33 more crates into every test build, among them the `webdriver`
//! crate with ICU segmentation data and second copies of `http` and `cookie`; `thirtyfour` brings more.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Upper bound for one request (chromedriver starting Chromium is the slow one).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Upper bound for one response body (a screenshot is well below it).
const BODY_LIMIT: u64 = 64 << 20;

/// A `ureq` agent for loopback HTTP: 4xx/5xx are replies to assert on, not errors; no proxy from the
/// environment; no idle connection kept, so none outlives a request (the bridge's web server is stopped
/// and checked for a closed port while the test runs).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_idle_connections(0)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .new_agent()
}

/// One HTTP reply: status and the whole body.
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    fn read(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Reply {
        let mut resp = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET http://127.0.0.1:PORT/PATH` on a fresh connection.
pub fn get(port: u16, path: &str) -> Reply {
    let url = format!("http://127.0.0.1:{port}{path}");
    Reply::read(agent().get(&url).call(), &format!("GET {url}"))
}

/// A chromedriver on a loopback port of its own, killed on drop; its output goes to a log file that a
/// failing session request prints.
pub struct ChromeDriver {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until its `/status` says it is ready. A port from `free_port` can
    /// be taken again before chromedriver binds it (by any socket on the machine); chromedriver then
    /// exits ("IPv4 port not available"), and a listener found on that port could be someone else's.
    /// So readiness is chromedriver's own answer on `/status`, and an exit means another port.
    pub fn start() -> ChromeDriver {
        assert!(
            Path::new("/usr/bin/chromedriver").exists(),
            "chromium-driver is missing; run packaging/install-deps.sh"
        );
        let dir = tempfile::tempdir().expect("tempdir for chromedriver");
        let log = dir.path().join("chromedriver.log");
        for _attempt in 0..5 {
            let port = super::free_port();
            let out = std::fs::File::create(&log).expect("chromedriver log");
            let err = out.try_clone().expect("chromedriver log");
            let mut child = Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start chromedriver");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if ready(port) {
                    return ChromeDriver {
                        child,
                        port,
                        log,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "chromedriver on port {port} did not come up:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("chromedriver did not start in 5 attempts");
    }

    /// A session with headless Chromium and a fresh profile in `profile`.
    pub fn session(&self, profile: &Path) -> WebDriver {
        WebDriver::new(self.port, profile, &self.log)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the chromedriver on `port` answers `/status` with `ready: true` (its own answer, so not
/// another program's listener).
fn ready(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/status");
    let quick = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    let Ok(mut resp) = quick.get(&url).call() else {
        return false;
    };
    let Ok(body) = resp.body_mut().read_to_vec() else {
        return false;
    };
    serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["value"]["ready"] == true)
}

/// A WebDriver session on a chromedriver at `port`; deleted (closing the browser) on drop.
pub struct WebDriver {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
}

impl WebDriver {
    /// Headless Chromium with a fresh profile in `profile`; `log` is chromedriver's, shown if this fails.
    fn new(port: u16, profile: &Path, log: &Path) -> WebDriver {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let agent = agent();
        let url = format!("http://127.0.0.1:{port}/session");
        // Read when it fails, so that it has what chromedriver said about the failed request.
        let log_text = || std::fs::read_to_string(log).unwrap_or_default();
        let result = agent.post(&url).send_json(&caps);
        if let Err(e) = &result {
            panic!(
                "new WebDriver session: {e}\nchromedriver's log:\n{}",
                log_text()
            );
        }
        let v = Reply::read(result, "new WebDriver session").json();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}\nchromedriver's log:\n{}", log_text()));
        WebDriver {
            session: format!("{url}/{id}"),
            agent,
        }
    }

    /// A command on this session: GET without a body, POST with one; its `value`.
    fn call(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let (method, result) = match body {
            None => ("GET", self.agent.get(&url).call()),
            Some(body) => ("POST", self.agent.post(&url).send_json(&body)),
        };
        let what = format!("webdriver {method} {path}");
        let r = Reply::read(result, &what);
        let v = r.json();
        assert_eq!(r.status, 200, "{what}: {v}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    pub fn set_window(&self, width: u32, height: u32) {
        self.call(
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.call("/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.session).call();
    }
}
