//! The real binary on a bad day, against a real mosquitto and xymond: signals that would end a process by
//! default (SIGHUP, which reloads the configuration, SIGPIPE, SIGUSR1, SIGUSR2), a stderr whose reader goes away, closed standard
//! descriptors, a stdout that is a broken pipe or a full device, and an RRD directory that is read-only or
//! full. In each case the daemon runs on, statuses keep reaching xymond, and SIGTERM still delivers what
//! is pending and exits 0.

mod common;

use common::daemon::{broken_pipe, Daemon, Stderr, WAIT};
use common::{Mosquitto, Xymond};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xymon-mqtt");

/// A topic test `greenhouse.env` of topics `a` and `b` whose round stays open for an hour until both have
/// come (or shutdown closes it); the web server on `web_port`, or off.
fn config(xymond: &Xymond, mqtt: &Mosquitto, web_port: Option<u16>) -> String {
    let web = match web_port {
        Some(port) => format!("listen = \"127.0.0.1:{port}\""),
        None => "enabled = false".to_string(),
    };
    format!(
        "[xymon]\nserver = \"{}\"\n[web]\n{web}\n[[broker]]\nname = \"local\"\nurl = \"{}\"\n\
         [[test]]\nhost = \"greenhouse\"\ntest = \"env\"\nbroker = \"local\"\nwindow = \"1h\"\ntopics = [\"a\", \"b\"]\n",
        xymond.addr(),
        mqtt.url()
    )
}

fn start(stderr: Stderr, stdout: Stdio, web: bool) -> (Xymond, Mosquitto, Daemon, Option<u16>) {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let port = web.then(common::free_port);
    let daemon = Daemon::start(
        Path::new(BIN),
        &config(&xymond, &mqtt, port),
        stderr,
        stdout,
    );
    (xymond, mqtt, daemon, port)
}

/// Publishes `a` and `b` with `value` and waits for xymond to hold the complete round.
fn round_delivered(xymond: &Xymond, mqtt: &Mosquitto, value: &str) {
    mqtt.publish("a", value, false);
    mqtt.publish("b", value, false);
    let want = [format!("&green a = {value}"), format!("&green b = {value}")];
    xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        want.iter().all(|w| s.body.contains(w.as_str()))
    });
}

/// Publishes `a` alone (the round stays open) and waits until the bridge holds it, read through the API.
fn pending_a(mqtt: &Mosquitto, web_port: u16, value: &str) {
    mqtt.publish("a", value, false);
    common::wait_until(WAIT, "the API to show the new value of a", || {
        let r = common::web::get(web_port, "/api/v1/topics/a");
        r.status == 200 && r.json()["payload"] == value
    });
}

/// Stops the daemon with SIGTERM: exit 0, and the round left open by [`pending_a`] reached xymond.
fn sigterm_delivers_and_exits_zero(xymond: &Xymond, daemon: &mut Daemon, value: &str) {
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", daemon.log());
    let s = xymond
        .xymondlog("greenhouse.env")
        .expect("a status in xymond");
    assert!(
        s.body.contains(&format!("a = {value}")),
        "the pending round was not delivered: {}",
        s.body
    );
}

/// SIGHUP reloads the (unchanged) configuration, SIGUSR1 and SIGUSR2 are logged and ignored, SIGPIPE is
/// ignored: the process runs on and delivers statuses after each; SIGTERM then delivers the pending
/// round and exits 0.
#[test]
fn hangup_pipe_and_user_signals_are_ignored() {
    let (xymond, mqtt, mut daemon, port) = start(Stderr::Read, Stdio::null(), true);
    daemon.wait_log(" subscribed broker=local");
    round_delivered(&xymond, &mqtt, "1");
    let signals = [
        (libc::SIGHUP, "configuration reloaded"),
        (libc::SIGPIPE, ""),
        (libc::SIGUSR1, "SIGUSR1 received; ignored"),
        (libc::SIGUSR2, "SIGUSR2 received; ignored"),
        (libc::SIGHUP, ""),
    ];
    for (i, (sig, logged)) in signals.into_iter().enumerate() {
        daemon.signal(sig);
        if !logged.is_empty() {
            daemon.wait_log(logged);
        }
        // A status after the signal shows that the process not only lives but works.
        round_delivered(&xymond, &mqtt, &format!("after-{i}"));
        assert!(
            daemon.is_running(),
            "signal {sig} ended it; log:\n{}",
            daemon.log()
        );
    }
    let log = daemon.log();
    assert_eq!(log.matches("SIGHUP received").count(), 2, "{log}");
    assert!(
        log.contains("tests: 0 added, 0 removed, 0 changed, 1 kept"),
        "{log}"
    );
    pending_a(&mqtt, port.unwrap(), "last");
    sigterm_delivers_and_exits_zero(&xymond, &mut daemon, "last");
    assert!(daemon.log().contains("SIGTERM received"));
}

/// stderr's reader goes away (the journal restarted, a pipe's reader died): log lines meet EPIPE. Nothing
/// panics: a SIGHUP logged into the broken pipe still reloads, statuses still flow (at debug level,
/// many lines are lost on the way), and SIGTERM, whose own log line is lost too, drains and exits 0.
#[test]
fn broken_stderr_loses_log_lines_only() {
    let (xymond, mqtt, mut daemon, port) = start(Stderr::Read, Stdio::null(), true);
    daemon.wait_log(" subscribed broker=local");
    daemon.close_stderr();
    daemon.signal(libc::SIGHUP);
    round_delivered(&xymond, &mqtt, "after-epipe");
    daemon.signal(libc::SIGHUP);
    round_delivered(&xymond, &mqtt, "after-second-hup");
    assert!(daemon.is_running());
    pending_a(&mqtt, port.unwrap(), "pending");
    sigterm_delivers_and_exits_zero(&xymond, &mut daemon, "pending");
}

/// A stderr that takes nothing (a stalled journal: a pipe that is full and never read) costs log lines
/// only: once the pipe is full, rounds are still delivered, a reload still applies, and SIGTERM still
/// delivers the pending round and exits 0.
#[test]
fn stalled_stderr_loses_log_lines_only() {
    let (xymond, mqtt, mut daemon, port) = start(Stderr::Stalled, Stdio::null(), true);
    // The log cannot tell when the session is subscribed: the API does.
    let web = port.unwrap();
    common::wait_until(WAIT, "the web server", || common::port_is_open(web));
    common::wait_until(WAIT, "the broker to be subscribed", || {
        let b = common::web::get(web, "/api/v1/brokers").json();
        b.as_array()
            .is_some_and(|a| a.iter().all(|b| b["subscribed"] == true))
    });
    // Full: a blocking write of a line (atomic, as it is under PIPE_BUF) waits until the whole line fits,
    // so the pipe counts as full once a round has been logged and the bytes in it did not change.
    let mut full = false;
    let mut before = daemon.stderr_queued().0;
    for i in 0..200 {
        round_delivered(&xymond, &mqtt, &format!("fill-{i}"));
        let (queued, size) = daemon.stderr_queued();
        if queued == before && queued > size / 2 {
            full = true;
            break;
        }
        before = queued;
    }
    assert!(
        full,
        "the debug log never filled the 4 KiB pipe: {:?}",
        daemon.stderr_queued()
    );
    for i in 0..20 {
        round_delivered(&xymond, &mqtt, &format!("stalled-{i}"));
    }
    daemon.signal(libc::SIGHUP);
    round_delivered(&xymond, &mqtt, "after-hup");
    assert!(daemon.is_running());
    pending_a(&mqtt, port.unwrap(), "pending");
    sigterm_delivers_and_exits_zero(&xymond, &mut daemon, "pending");
}

/// Started with stdout and stderr closed (file descriptors 1 and 2 not open), as a careless init script
/// might: they point at /dev/null rather than at the first socket the daemon opens, and the daemon
/// works, survives SIGHUP, and stops on SIGTERM with exit 0.
#[test]
fn closed_stdout_and_stderr_at_start() {
    let (xymond, mqtt, mut daemon, port) = start(Stderr::Closed, Stdio::null(), true);
    let port = port.unwrap();
    common::wait_until(WAIT, "the web server", || common::port_is_open(port));
    for fd in [1, 2] {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", daemon.pid())).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    // The web server is up: so is the MQTT session soon; publish until a round arrives.
    common::wait_until(WAIT, "the broker connected", || {
        common::web::get(port, "/api/v1/brokers").json()[0]["connected"] == true
    });
    round_delivered(&xymond, &mqtt, "1");
    daemon.signal(libc::SIGHUP);
    round_delivered(&xymond, &mqtt, "after-hup");
    pending_a(&mqtt, port, "pending");
    sigterm_delivers_and_exits_zero(&xymond, &mut daemon, "pending");
}

/// The daemon with stdout a broken pipe (it writes nothing there) runs and stops as usual.
#[test]
fn broken_stdout_pipe_does_not_matter_to_the_daemon() {
    let (xymond, mqtt, mut daemon, port) = start(Stderr::Read, broken_pipe(), true);
    daemon.wait_log(" subscribed broker=local");
    round_delivered(&xymond, &mqtt, "1");
    pending_a(&mqtt, port.unwrap(), "pending");
    sigterm_delivers_and_exits_zero(&xymond, &mut daemon, "pending");
}

/// The one-shot commands: a reader that went away (`xymon-mqtt print-example-config | head -1`) is not an
/// error (exit as if written, no panic); a stdout that cannot take the output (/dev/full: no space left)
/// is reported and exits 1.
#[test]
fn one_shot_commands_on_a_broken_or_full_stdout() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/xymon-mqtt.example.toml");
    let commands: [&[&str]; 4] = [
        &["print-example-config"],
        &["check", "--config", example],
        &["xymon-config", "--config", example],
        &[
            "explain",
            "--config",
            example,
            "sensors/greenhouse/temperature",
            "21.5",
        ],
    ];
    for args in commands {
        let out = Command::new(BIN)
            .args(args)
            .stdout(broken_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(BIN)
            .args(args)
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot write the output") && err.contains("No space left"),
            "{args:?}: {err}"
        );
    }
}

/// A tmpfs mounted for one test (unmounted on drop), so that a read-only or a full file system is real
/// even for root, whom file modes do not stop.
struct Tmpfs {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as mount's `size=` option) with `options`; `Err` with mount's message
    /// when this environment cannot mount (not root, no CAP_SYS_ADMIN, a container without it).
    fn mount(size: &str, options: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("rrd");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755{options}"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { path, _dir: dir })
    }

    /// `mount -o remount,OPTIONS`.
    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {options}: {out:?}");
    }

    /// Writes a file until the file system is full (ENOSPC).
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still holds a file there cannot make the unmount fail.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// rrd_dir on a real file system that is read-only at start, then full, then fine, then read-only again:
/// the daemon starts anyway (logged), every failing update is a yellow line in the broker-stats status
/// naming the file and the error, statuses keep reaching xymond, the files are written once the disk
/// takes them, and SIGTERM exits 0.
#[test]
fn read_only_and_full_rrd_dir_are_reported_and_skipped() {
    let rrd = match Tmpfs::mount("1m", ",ro") {
        Ok(t) => t,
        Err(e) => {
            println!("SKIPPED: cannot mount a tmpfs here ({e}); needs root with CAP_SYS_ADMIN");
            return;
        }
    };
    let xymond = Xymond::start(&["broker.example.com"]);
    let mqtt = Mosquitto::start();
    let toml = format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}\"\n[web]\nenabled = false\n[[broker]]\nname = \"local\"\nurl = \"{}\"\n\
         [[test]]\nhost = \"broker.example.com\"\ntest = \"mqtt\"\nbroker = \"local\"\nkind = \"broker-stats\"\ninterval = \"2s\"\n",
        xymond.addr(),
        rrd.path.display(),
        mqtt.url()
    );
    let mut daemon = Daemon::start(Path::new(BIN), &toml, Stderr::Read, Stdio::null());
    daemon.wait_log("RRD updates fail until rrd_dir takes files again");
    let host_test = "broker.example.com.mqtt";
    let rrd_line = "&yellow RRD mqtt.broker.message.rrd:";
    let problem = |what: &'static str| {
        move |s: &common::StatusLog| {
            s.body
                .lines()
                .any(|l| l.starts_with(rrd_line) && l.contains(what))
        }
    };
    let s = xymond.wait_for_status(host_test, WAIT, problem("Read-only file system"));
    assert_eq!(s.color, "yellow", "{}", s.body);
    assert!(s.body.contains("Total counts"), "{}", s.body);

    rrd.remount("rw");
    let filler = rrd.fill();
    let s = xymond.wait_for_status(host_test, WAIT, problem("No space left on device"));
    assert!(s.body.contains("Total counts"), "{}", s.body);
    assert!(daemon.is_running());

    std::fs::remove_file(&filler).unwrap();
    let message = rrd.path.join("broker.example.com/mqtt.broker.message.rrd");
    xymond.wait_for_status(host_test, WAIT, |s| {
        s.color == "green" && !s.body.contains("&yellow RRD")
    });
    assert!(message.exists());

    rrd.remount("ro");
    let s = xymond.wait_for_status(host_test, WAIT, problem("Read-only file system"));
    assert!(s.body.contains("Total counts"), "{}", s.body);
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", daemon.log());
    drop(daemon);
}
