//! The shipped systemd unit and scripts: the unit runs as xymon, hardened, restarting on failure, and
//! starts what install.sh installs; the shell scripts parse (`bash -n`).

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
    let exec = unit_values("ExecStart");
    assert_eq!(
        exec,
        ["/usr/local/bin/xymon-mqtt --config /etc/xymon-mqtt/xymon-mqtt.toml"]
    );
    // install.sh puts the binary and the config where the unit looks for them.
    let install = include_str!("../packaging/install.sh");
    assert!(install.contains("/usr/local/bin/xymon-mqtt"));
    assert!(install.contains("/etc/xymon-mqtt/xymon-mqtt.toml"));
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
        // The binary is not installed here; every other complaint is a real problem.
        let real: Vec<_> = err
            .lines()
            .filter(|l| !l.contains("/usr/local/bin/xymon-mqtt"))
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
