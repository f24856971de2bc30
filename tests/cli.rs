//! The `xymon-mqtt` binary: check mode, help, the example config, and SIGTERM → exit 0 with the pending
//! status delivered to a real xymond.

mod common;

use common::{Mosquitto, Xymond};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xymon-mqtt");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_mode_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "bad.toml",
        "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1\"\n\n[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"elsewhere\"\ntopics = [\"a\"]\n",
    );
    for args in [
        vec!["check", "--config"],
        vec!["--check-config", "--config"],
    ] {
        let out = Command::new(BIN).args(&args).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{}:8:1: key `test[0].broker`: no [[broker]] is named \"elsewhere\"",
                bad.display()
            )),
            "{err}"
        );
    }
    let missing = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.toml: cannot read"));
}

/// `check` reads every file the config names (password, CA, client certificate and key, web token):
/// all present, it passes; any one missing or unusable fails with the config file, line and key, so
/// the unit's `ExecStartPre=check` catches it before `run` would.
#[test]
fn check_reads_every_file_the_config_names() {
    let certs = common::certs::Certs::make();
    let dir = tempfile::tempdir().unwrap();
    let password = write(&dir, "password", "s3cret\n");
    let token = write(&dir, "token", "t0ken\n");
    let missing = dir.path().join("missing");
    let files = [
        ("web.token_file", 2, token.clone()),
        ("broker[0].password_file", 8, password.clone()),
        ("broker[0].ca_file", 9, certs.ca()),
        ("broker[0].client_cert_file", 10, certs.client_cert()),
        ("broker[0].client_key_file", 11, certs.client_key()),
    ];
    let config = |files: &[(&str, usize, std::path::PathBuf)]| {
        let path = |i: usize| files[i].2.display().to_string();
        format!(
            "[web]\ntoken_file = {:?}\n\n[[broker]]\nname = \"secure\"\nurl = \"mqtts://localhost:8883\"\n\
             username = \"bridge\"\npassword_file = {:?}\nca_file = {:?}\nclient_cert_file = {:?}\n\
             client_key_file = {:?}\n",
            path(0),
            path(1),
            path(2),
            path(3),
            path(4)
        )
    };
    let check = |text: &str| {
        let cfg = write(&dir, "bridge.toml", text);
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            cfg,
        )
    };
    let (code, err, _) = check(&config(&files));
    assert_eq!(code, Some(0), "{err}");
    for i in 0..files.len() {
        let mut broken = files.clone();
        broken[i].2 = missing.clone();
        let (code, err, cfg) = check(&config(&broken));
        assert_eq!(code, Some(2), "{}: {err}", files[i].0);
        let expected = format!(
            "{}:{}:1: key `{}`: cannot read {}",
            cfg.display(),
            files[i].1,
            files[i].0,
            missing.display()
        );
        assert!(err.contains(&expected), "{expected} in {err}");
    }
    // Present but unusable: a key that is not the certificate's, a CA file that holds no certificate.
    let mut wrong_key = files.clone();
    wrong_key[4].2 = certs.server_key();
    let (code, err, _) = check(&config(&wrong_key));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("key `broker[0].client_key_file`") && err.contains("does not go with"),
        "{err}"
    );
    let mut not_a_ca = files.clone();
    not_a_ca[2].2 = password.clone();
    let (code, err, _) = check(&config(&not_a_ca));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("key `broker[0].ca_file`") && err.contains("holds no PEM certificate"),
        "{err}"
    );
}

#[test]
fn example_config_checks_and_prints() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/xymon-mqtt.example.toml");
    let out = Command::new(BIN)
        .args(["check", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 brokers, 2 tests)"));
    let printed = Command::new(BIN)
        .arg("print-example-config")
        .output()
        .unwrap();
    assert_eq!(printed.stdout, std::fs::read(example).unwrap());
}

#[test]
fn help_documents_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--config",
        "--check-config",
        "check",
        "print-example-config",
        "RUST_LOG",
        "SIGTERM",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

/// SIGTERM: the round that is still open is closed, its status delivered, and the process exits 0.
#[test]
fn sigterm_flushes_and_exits_zero() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "bridge.toml",
        &format!(
            "[xymon]\nserver = \"{}\"\n[[broker]]\nname = \"local\"\nurl = \"{}\"\n[[test]]\nhost = \"greenhouse\"\ntest = \"env\"\nbroker = \"local\"\nwindow = \"1h\"\ntopics = [\"a\", \"b\"]\n",
            xymond.addr(),
            mqtt.url()
        ),
    );
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["--config"])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    common::wait_until(
        Duration::from_secs(30),
        "the bridge's SubAck log line",
        || log.lock().unwrap().contains(" subscribed broker=local"),
    );
    // One topic of two: the round stays open (window 1 h) until shutdown closes it.
    mqtt.publish("a", "probe", false);
    common::wait_until(
        Duration::from_secs(30),
        "the bridge to open a round",
        || log.lock().unwrap().contains("round opened"),
    );
    common::signal(child.0.id(), libc::SIGTERM).expect("SIGTERM to xymon-mqtt");
    let mut code = None;
    common::wait_until(
        Duration::from_secs(15),
        "xymon-mqtt to exit after SIGTERM",
        || {
            code = child.0.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        },
    );
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(code, Some(Some(0)), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    let s = xymond
        .xymondlog("greenhouse.env")
        .unwrap_or_else(|| panic!("no status delivered; log:\n{log}"));
    assert!(s.body.contains("&green a = probe"), "{}", s.body);
}

/// Kills the bridge if the test fails before it exits, so no process outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
