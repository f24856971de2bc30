//! A private mosquitto broker for the end-to-end tests: its own config, log and free loopback port,
//! started in the foreground as a child of the test and stopped by PID. MQTT traffic from the tests goes
//! through the real `mosquitto_pub`/`mosquitto_sub` tools, on the plain anonymous listener every broker
//! has. A `Setup` adds TLS listeners (one that requires a client certificate), a listener with a
//! password file, or the dynamic-security plugin. Used by the bridge, rule, web, CLI and broker
//! connection tests and by tests/harness.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::processes::{
    check_output, count_lines_with, free_port, port_is_open, read_lossy, run_cmd, running_as_root,
    tail, terminate, wait_ready, CLIENT_TIMEOUT, START_ATTEMPTS,
};

/// What a broker offers besides its plain anonymous listener (`url()`).
#[derive(Default)]
pub struct Setup {
    /// A TLS listener (`tls_url()`) with this server certificate; with `require_certificate`, a second
    /// one (`mtls_url()`) that takes only clients with a certificate signed by `ca`.
    pub tls: Option<TlsFiles>,
    /// A listener (`password_url()`) that takes only this user name and password, from a password
    /// file made with `mosquitto_passwd`.
    pub user: Option<(String, String)>,
    /// The dynamic-security plugin, with this JSON as its configuration, on the one plain listener.
    pub dynsec: Option<String>,
}

/// A TLS listener's PEM files.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_certificate: bool,
}

/// A private mosquitto 2.0 broker on `127.0.0.1:port()`, anonymous access, no
/// persistence, `$SYS` every second, logging everything to `mosquitto.log` in its
/// temporary directory; more listeners as its `Setup` says.
pub struct Mosquitto {
    /// The running broker, `None` after `stop()`/`kill()`.
    child: Option<Child>,
    port: u16,
    /// The `Setup`'s listeners: TLS, TLS with client certificates, password.
    tls_port: u16,
    mtls_port: u16,
    password_port: u16,
    setup: Setup,
    /// Holds `mosquitto.conf`, `mosquitto.log` and the console output.
    dir: TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port and returns once it accepts TCP connections.
    /// Panics (with the broker's log) if it does not start.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(Setup::default())
    }

    /// Starts a broker with the listeners and plugin of `setup`.
    pub fn start_with(setup: Setup) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("xymon-mqtt-mosquitto-")
            .tempdir()
            .expect("create mosquitto temp dir");
        let mut broker = Mosquitto {
            child: None,
            port: 0,
            tls_port: 0,
            mtls_port: 0,
            password_port: 0,
            setup,
            dir,
        };
        if let Some((user, pass)) = &broker.setup.user {
            let file = broker.dir.path().join("passwords");
            let mut cmd = Command::new("mosquitto_passwd");
            cmd.arg("-c").arg("-b").arg(&file).args([user, pass]);
            let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
            check_output(&cmd, &out);
        }
        if let Some(json) = &broker.setup.dynsec {
            fs::write(broker.dir.path().join("dynsec.json"), json).expect("write dynsec.json");
        }
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            broker.port = free_port();
            broker.tls_port = free_port();
            broker.mtls_port = free_port();
            broker.password_port = free_port();
            broker.write_config();
            match broker.spawn() {
                Ok(()) => return broker,
                Err(e) => last_error = e,
            }
        }
        panic!("mosquitto did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The broker's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker URL, `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The TLS listener, `mqtts://127.0.0.1:PORT` (its certificate names 127.0.0.1 and localhost).
    pub fn tls_url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.tls_port)
    }

    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The TLS listener that requires a client certificate.
    pub fn mtls_url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.mtls_port)
    }

    /// The listener that takes only the `Setup`'s user.
    pub fn password_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.password_port)
    }

    /// The broker's PID, `None` when it is not running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's private directory (config and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns true if the broker process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Stops the broker gracefully (SIGTERM by PID, then waits for it to exit).
    /// Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Kills the broker with SIGKILL (a crash, no clean disconnects) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port (after `stop()` or `kill()`;
    /// stops it first if it is still running). Retained messages are gone because
    /// persistence is off. Panics if it does not come up.
    pub fn start_again(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("mosquitto did not start again on port {}: {e}", self.port);
        }
    }

    /// The contents of `mosquitto.log` (plus anything it printed to the console).
    pub fn log_text(&self) -> String {
        let mut text = read_lossy(&self.dir.path().join("console.log"));
        text.push_str(&read_lossy(&self.dir.path().join("mosquitto.log")));
        text
    }

    /// Publishes a UTF-8 payload with `mosquitto_pub -q 1`. Panics if the tool fails.
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = self.pub_cmd(topic, retain);
        if payload.is_empty() {
            cmd.arg("-n");
        } else {
            cmd.args(["-m", payload]);
        }
        let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
        check_output(&cmd, &out);
    }

    /// Publishes arbitrary bytes (read from stdin with `mosquitto_pub -s`).
    /// Panics if the tool fails.
    pub fn publish_bytes(&self, topic: &str, payload: &[u8], retain: bool) {
        let mut cmd = self.pub_cmd(topic, retain);
        let out = if payload.is_empty() {
            cmd.arg("-n");
            run_cmd(&mut cmd, None, CLIENT_TIMEOUT)
        } else {
            cmd.arg("-s");
            run_cmd(&mut cmd, Some(payload), CLIENT_TIMEOUT)
        };
        check_output(&cmd, &out);
    }

    /// Subscribes to `filter` with `mosquitto_sub` and returns up to `count`
    /// `(topic, payload)` pairs received within `timeout` (whole seconds, at
    /// least 1). Returns fewer when the timeout hits first; the caller asserts.
    /// Payloads are decoded as lossy UTF-8 and may span several lines.
    ///
    /// This blocks, so it is meant for retained messages and sanity checks; to
    /// catch live traffic, call it from a thread started before the publisher.
    pub fn subscribe_collect(
        &self,
        filter: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(String, String)> {
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", filter])
            .args(["-C", &count.to_string(), "-W", &secs.to_string()])
            // Hex payload, a tab, then the topic: one line per message whatever the
            // payload holds (newlines) or the topic holds (spaces).
            .args(["-F", "%x\t%t"]);
        let out = run_cmd(&mut cmd, None, timeout + CLIENT_TIMEOUT);
        // 27 is mosquitto_sub's exit code for "-W timeout reached".
        if !out.status.success() && out.status.code() != Some(27) {
            check_output(&cmd, &out);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let (hex, topic) = line.split_once('\t')?;
                Some((topic.to_string(), decode_hex(hex)))
            })
            .collect()
    }

    /// A `mosquitto_pub` command for this broker, without the payload options.
    fn pub_cmd(&self, topic: &str, retain: bool) -> Command {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", topic]);
        if retain {
            cmd.arg("-r");
        }
        cmd
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut conf = format!(
            "sys_interval 1\n\
             persistence false\n\
             log_dest file {log}\n\
             log_type all\n\
             log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
            log = d.join("mosquitto.log").display(),
        );
        // Started as root, mosquitto 2.0 drops to the `mosquitto` user, which then
        // cannot write its log file into our 0700 temp dir. Keep the current user.
        if running_as_root() {
            conf.push_str("user root\n");
        }
        if self.setup.dynsec.is_some() {
            // One listener, the plugin for all of it; anonymous clients get the plugin's
            // `anonymousGroup` roles.
            conf.push_str(&format!(
                "per_listener_settings false\n\
                 allow_anonymous true\n\
                 plugin {DYNSEC_PLUGIN}\n\
                 plugin_opt_config_file {}\n\
                 listener {} 127.0.0.1\n",
                d.join("dynsec.json").display(),
                self.port
            ));
        } else {
            // Each listener with its own authentication.
            conf.push_str(&format!(
                "per_listener_settings true\n\
                 listener {} 127.0.0.1\n\
                 allow_anonymous true\n",
                self.port
            ));
        }
        if let Some(t) = &self.setup.tls {
            let files = format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            );
            conf.push_str(&format!(
                "listener {} 127.0.0.1\nallow_anonymous true\n{files}",
                self.tls_port
            ));
            if t.require_certificate {
                conf.push_str(&format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\n{files}require_certificate true\n",
                    self.mtls_port
                ));
            }
        }
        if self.setup.user.is_some() {
            conf.push_str(&format!(
                "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
                self.password_port,
                d.join("passwords").display()
            ));
        }
        fs::write(d.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    /// The ports of every listener.
    fn ports(&self) -> Vec<u16> {
        let s = &self.setup;
        let mut ports = vec![self.port];
        if let Some(t) = &s.tls {
            ports.push(self.tls_port);
            if t.require_certificate {
                ports.push(self.mtls_port);
            }
        }
        if s.user.is_some() {
            ports.push(self.password_port);
        }
        ports
    }

    /// Spawns the broker and waits until it logged that it runs and its port
    /// accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        // The log line, not only the open port, proves that it is *our* broker
        // that listens (another test process may have taken the port meanwhile).
        let log = d.join("mosquitto.log");
        let runs_before = count_lines_with(&log, MOSQUITTO_READY);
        let ports = self.ports();
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("console.log"))
            .expect("open console.log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log"))
            .stderr(console)
            .spawn()
            .map_err(|e| format!("cannot run mosquitto (is it installed?): {e}"))?;
        self.child = Some(child);
        wait_ready(
            self.child.as_mut().expect("child"),
            || {
                count_lines_with(&log, MOSQUITTO_READY) > runs_before
                    && ports.iter().all(|&p| port_is_open(p))
            },
            &format!("mosquitto on 127.0.0.1:{}", self.port),
        )
        .map_err(|e| format!("{e}\n--- log ---\n{}", tail(&self.log_text(), 30)))
        .inspect_err(|_| self.stop())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian's mosquitto package ships the dynamic-security plugin here.
const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// mosquitto's log line once its listeners are open: `mosquitto version X running`.
const MOSQUITTO_READY: &str = " running";

/// Decodes mosquitto_sub's `%x` (hex) payload to lossy UTF-8.
fn decode_hex(hex: &str) -> String {
    let bytes =
        hex::decode(hex).unwrap_or_else(|e| panic!("mosquitto_sub printed bad hex {hex:?}: {e}"));
    String::from_utf8_lossy(&bytes).into_owned()
}
