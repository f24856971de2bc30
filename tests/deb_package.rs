//! The Debian package that `cargo deb` builds from `[package.metadata.deb]`: its files, modes, conffiles,
//! control fields and maintainer scripts, and lintian's verdict. Then, as root on a machine with
//! Debian's xymon package (CI), its whole life with the real apt and dpkg: `apt-get install`, the
//! installed binary run as user xymon with the installed config (edited like an admin would) against a
//! private mosquitto and xymond, an upgrade that keeps the edited config, remove, and a purge that leaves
//! nothing behind (tests/deb_package/lifecycle.rs).
//!
//! The package is built once here, with `cargo deb --locked --fast`, which first brings the release
//! binary up to date (a release build when it is stale). Without cargo-deb, dpkg-deb or lintian the tests
//! say why they skip; `XYMON_MQTT_PACKAGE_TEST=required` (set by ./run-tests when run as root) turns a skip into
//! a failure.

mod common;
#[path = "deb_package/lifecycle.rs"]
mod lifecycle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every file in the package, with its mode as `dpkg-deb -c` prints it (all owned by root: 0/0).
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/xymon-mqtt", "-rwxr-xr-x"),
    ("/usr/lib/systemd/system/xymon-mqtt.service", "-rw-r--r--"),
    ("/etc/xymon-mqtt/xymon-mqtt.toml", "-rw-r-----"),
    ("/etc/xymon/xymonserver.d/mqtt.cfg", "-rw-r--r--"),
    ("/etc/xymon/graphs.d/mqtt.cfg", "-rw-r--r--"),
    (
        "/usr/share/xymon-mqtt/rrd-defs/mqtt.broker.message.toml",
        "-rw-r--r--",
    ),
    (
        "/usr/share/xymon-mqtt/rrd-defs/mqtt.broker.octet.toml",
        "-rw-r--r--",
    ),
    ("/usr/share/xymon-mqtt/rrd-defs/value.toml", "-rw-r--r--"),
    ("/usr/share/doc/xymon-mqtt/README.md", "-rw-r--r--"),
    (
        "/usr/share/doc/xymon-mqtt/xymon-mqtt.example.toml",
        "-rw-r--r--",
    ),
    ("/usr/share/doc/xymon-mqtt/xymon-protocol.md", "-rw-r--r--"),
    ("/usr/share/doc/xymon-mqtt/copyright", "-rw-r--r--"),
    (
        "/usr/share/doc/xymon-mqtt/changelog.Debian.gz",
        "-rw-r--r--",
    ),
];

/// Installed files that are copies of files in the repository.
const COPIES: &[(&str, &str)] = &[
    (
        "/usr/lib/systemd/system/xymon-mqtt.service",
        "packaging/xymon-mqtt.service",
    ),
    (
        "/etc/xymon-mqtt/xymon-mqtt.toml",
        "packaging/xymon-mqtt.toml",
    ),
    (
        "/etc/xymon/xymonserver.d/mqtt.cfg",
        "xymonserver.d/mqtt.cfg",
    ),
    ("/etc/xymon/graphs.d/mqtt.cfg", "graphs.d/mqtt.cfg"),
    (
        "/usr/share/xymon-mqtt/rrd-defs/value.toml",
        "rrd-defs/value.toml",
    ),
    ("/usr/share/doc/xymon-mqtt/README.md", "README.md"),
    (
        "/usr/share/doc/xymon-mqtt/xymon-mqtt.example.toml",
        "xymon-mqtt.example.toml",
    ),
];

const CONFFILES: &[&str] = &[
    "/etc/xymon-mqtt/xymon-mqtt.toml",
    "/etc/xymon/xymonserver.d/mqtt.cfg",
    "/etc/xymon/graphs.d/mqtt.cfg",
];

/// Skips a test with `reason`, or fails it when ./run-tests requires the package tests.
pub fn skip(reason: &str) {
    if std::env::var("XYMON_MQTT_PACKAGE_TEST").as_deref() == Ok("required") {
        panic!("XYMON_MQTT_PACKAGE_TEST=required, but: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Runs `cmd`, panics with its output unless it succeeds, and returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// `cargo deb --locked --fast` into `out` (extra `args` too) and the path of the .deb it wrote. `--fast`
/// compresses less (a minute less for the debug-symbol package); the contents are those of `cargo deb`.
pub fn cargo_deb(out: &Path, args: &[&str]) -> PathBuf {
    let stdout = run(Command::new("cargo")
        .args(["deb", "--locked", "--fast", "--output"])
        .arg(out)
        .args(args)
        .current_dir(REPO));
    let deb = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("cargo deb printed no .deb path: {stdout}"));
    PathBuf::from(REPO).join(deb)
}

/// The package, built once per test process; `None` (with the reason) when the tools are missing.
pub fn package() -> Option<&'static Path> {
    static DEB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = DEB.get_or_init(|| {
        let cargo_deb_present = Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !cargo_deb_present {
            return Err("cargo-deb is not installed (./run-tests installs it)".into());
        }
        if !have("dpkg-deb") {
            return Err("dpkg-deb is missing (not a Debian system)".into());
        }
        Ok(cargo_deb(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb-package"),
            &[],
        ))
    });
    match built {
        Ok(p) => Some(p.as_path()),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}

/// `dpkg-deb -c`: path (without the leading `.`) → (mode, owner) for every entry.
pub fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(5)?.strip_prefix('.')?.trim_end_matches('/');
            Some((path.to_string(), (f[0].to_string(), f[1].to_string())))
        })
        .collect()
}

fn control(deb: &Path, file: &str) -> String {
    run(Command::new("dpkg-deb").arg("-I").arg(deb).arg(file))
}

#[test]
fn package_holds_the_files_with_their_modes_and_conffiles() {
    let Some(deb) = package() else { return };
    let entries = contents(deb);
    let files: Vec<&String> = entries
        .iter()
        .filter(|(_, (mode, _))| !mode.starts_with('d'))
        .map(|(p, _)| p)
        .collect();
    let mut want: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
    want.sort();
    assert_eq!(files, want, "the package's files");
    for (path, mode) in FILES {
        assert_eq!(entries[*path], (mode.to_string(), "0/0".into()), "{path}");
    }
    assert!(
        entries.keys().all(|p| !p.starts_with("/usr/local")),
        "{entries:?}"
    );
    let conffiles: Vec<String> = control(deb, "conffiles")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(conffiles, CONFFILES);

    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    for (installed, source) in COPIES {
        let got = std::fs::read(dir.path().join(&installed[1..])).unwrap();
        let want = std::fs::read(Path::new(REPO).join(source)).unwrap();
        assert!(got == want, "{installed} is not {source}");
    }
    // The unit starts the binary where the package puts it, with the config where the package puts it.
    let unit =
        std::fs::read_to_string(dir.path().join("usr/lib/systemd/system/xymon-mqtt.service"))
            .unwrap();
    for line in [
        "ExecStart=/usr/bin/xymon-mqtt --config /etc/xymon-mqtt/xymon-mqtt.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=xymon",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    // The packaged binary runs, is stripped (its symbols are in the -dbgsym package), and accepts the
    // packaged config as it is (no brokers yet).
    let bin = dir.path().join("usr/bin/xymon-mqtt");
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        concat!("xymon-mqtt ", env!("CARGO_PKG_VERSION"))
    );
    let symbols = run(Command::new("readelf").arg("-S").arg(&bin));
    assert!(!symbols.contains(".debug_info"), "not stripped");
    let check = run(Command::new(&bin)
        .args(["check", "--config"])
        .arg(dir.path().join("etc/xymon-mqtt/xymon-mqtt.toml")));
    assert!(check.contains("OK (0 brokers, 0 tests)"), "{check}");
}

#[test]
fn control_fields_and_maintainer_scripts() {
    let Some(deb) = package() else { return };
    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    assert_eq!(field("Package").trim(), "xymon-mqtt");
    assert_eq!(
        field("Version").trim(),
        concat!(env!("CARGO_PKG_VERSION"), "-1")
    );
    assert_eq!(field("Section").trim(), "net");
    // What the binary links (dpkg-shlibdeps), the xymon user and xymond, and rrdtool for the graphs;
    // not librrd, which is linked statically (build.rs).
    let depends = field("Depends");
    let names: Vec<&str> = depends
        .trim()
        .split(',')
        .filter_map(|d| d.split_whitespace().next())
        .collect();
    for want in ["libc6", "libglib2.0-0", "xymon", "rrdtool"] {
        assert!(names.contains(&want), "Depends: {depends}");
    }
    assert!(!depends.contains("librrd"), "Depends: {depends}");
    // The changelog's top entry is this version.
    let changelog =
        std::fs::read_to_string(Path::new(REPO).join("packaging/debian/changelog")).unwrap();
    assert!(
        changelog.starts_with(concat!("xymon-mqtt (", env!("CARGO_PKG_VERSION"), "-1) ")),
        "packaging/debian/changelog: {changelog}"
    );

    let postinst = control(deb, "postinst");
    let postrm = control(deb, "postrm");
    let prerm = control(deb, "prerm");
    for script in [&postinst, &postrm, &prerm] {
        // The token is replaced once, at its own line, after `set -e`.
        assert!(!script.contains("#DEBHELPER#"), "{script}");
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        let set_e = script
            .find("\nset -e\n")
            .unwrap_or_else(|| panic!("{script}"));
        if let Some(snippet) = script.find("# Automatically added by cargo-deb") {
            assert!(set_e < snippet, "{script}");
        }
        let parsed = Command::new("sh")
            .args(["-n", "-c", script])
            .status()
            .unwrap();
        assert!(parsed.success(), "{script}");
    }
    // Enabled on install; started only by our own block, once the config names a broker; restarted after
    // an upgrade only if it runs; stopped on removal, not on upgrade.
    assert_eq!(
        postinst
            .matches("deb-systemd-helper enable xymon-mqtt.service")
            .count(),
        1,
        "{postinst}"
    );
    assert!(postinst.contains("deb-systemd-invoke try-restart xymon-mqtt.service"));
    assert_eq!(postinst.matches("deb-systemd-invoke start").count(), 1);
    assert!(postinst.contains("invoke-rc.d xymon reload"));
    assert!(prerm.contains("[ \"$1\" = remove ]") && prerm.contains("deb-systemd-invoke stop"));
    assert!(postrm.contains("deb-systemd-helper purge xymon-mqtt.service"));
}

#[test]
fn lintian_reports_no_errors() {
    let Some(deb) = package() else { return };
    if !have("lintian") {
        skip("lintian is missing (packaging/install-deps.sh installs it)");
        return;
    }
    let out = Command::new("lintian")
        .args(["--display-info", "--fail-on", "error"])
        .arg(deb)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("lintian:\n{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "{report}");
    assert!(out.status.success(), "{report}");
}

#[test]
fn package_installs_runs_as_xymon_upgrades_and_purges() {
    let Some(deb) = package() else { return };
    match lifecycle::can_install() {
        Ok(()) => {}
        Err(lifecycle::Unfit::Missing(reason)) => return skip(&reason),
        // Never required: an admin's own installation is not the test's to purge.
        Err(lifecycle::Unfit::Taken(reason)) => return eprintln!("SKIPPED: {reason}"),
    }
    lifecycle::install_run_upgrade_purge(deb);
}
