//! The shipped systemd unit and scripts: the unit runs as xymon, hardened, restarting on failure, reloads
//! with a check and SIGHUP, and starts the binary and config where the Debian package puts them
//! (tests/deb_package.rs checks the package itself); the shell scripts parse (`bash -n`).

use std::process::Command;

const UNIT: &str = include_str!("../packaging/xymon-mqtt.service");

fn unit_values(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_unit_runs_as_xymon_hardened_and_restarts_on_failure() {
    for (key, want) in [
        ("User", "xymon"),
        ("Group", "xymon"),
        ("UMask", "0022"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/var/lib/xymon/rrd"),
        ("KillSignal", "SIGTERM"),
        // `~@resources` filters setpriority, which the RRD writer calls: a filtered call must fail, not
        // kill the daemon (systemd's default action).
        ("SystemCallErrorNumber", "EPERM"),
    ] {
        assert_eq!(unit_values(key), [want], "{key}");
    }
    let check = "/usr/bin/xymon-mqtt check --config /etc/xymon-mqtt/xymon-mqtt.toml";
    assert_eq!(unit_values("ExecStartPre"), [check]);
    assert_eq!(
        unit_values("ExecStart"),
        ["/usr/bin/xymon-mqtt --config /etc/xymon-mqtt/xymon-mqtt.toml"]
    );
    // A config that does not check fails `systemctl reload` before the daemon is signalled.
    assert_eq!(
        unit_values("ExecReload"),
        [check, "/bin/kill -HUP $MAINPID"]
    );
    // The package puts the binary and the config where the unit looks for them.
    let manifest = include_str!("../Cargo.toml");
    assert!(manifest.contains(r#"["target/release/xymon-mqtt", "usr/bin/", "755"]"#));
    assert!(manifest.contains(r#""etc/xymon-mqtt/xymon-mqtt.toml""#));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xymon-mqtt.service");
        std::fs::write(&path, UNIT).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // The binary need not be installed here; every other complaint is a real problem.
        let real: Vec<_> = err
            .lines()
            .filter(|l| !l.contains("/usr/bin/xymon-mqtt"))
            .collect();
        assert!(real.is_empty(), "{err}");
    }
}

#[test]
fn shell_scripts_parse() {
    for script in [
        "run-bridge",
        "run-tests",
        ".ci/run",
        "packaging/install.sh",
        "packaging/install-deps.sh",
        "packaging/debian/postinst",
        "packaging/debian/postrm",
    ] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + script;
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The config the package installs checks as it is, and the postinst's test for "no config yet" (no
/// `[[broker]]` table: enabled, not started) holds for it and not for a config with brokers.
#[test]
fn packaged_config_checks_and_counts_as_no_config_yet() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let packaged = format!("{repo}/packaging/xymon-mqtt.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_xymon-mqtt"))
        .args(["check", "--config", &packaged])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK (0 brokers, 0 tests)"), "{stdout}");

    let postinst = include_str!("../packaging/debian/postinst");
    let pattern = postinst
        .lines()
        .find_map(|l| {
            l.split_once("grep -Eq '")?
                .1
                .split_once('\'')
                .map(|(p, _)| p)
        })
        .expect("the postinst's grep for [[broker]]");
    let names_a_broker = |path: &str| {
        Command::new("grep")
            .args(["-Eq", pattern, path])
            .status()
            .unwrap()
            .success()
    };
    assert!(!names_a_broker(&packaged));
    assert!(names_a_broker(&format!("{repo}/xymon-mqtt.example.toml")));
    let dir = tempfile::tempdir().unwrap();
    let indented = dir.path().join("indented.toml");
    std::fs::write(&indented, "  [[ broker ]]\nname = \"b\"\n").unwrap();
    assert!(names_a_broker(indented.to_str().unwrap()));
}
