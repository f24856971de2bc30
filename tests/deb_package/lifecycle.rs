//! The package's life on this machine with the real apt-get and dpkg, as an admin lives it: install
//! (enabled, not started: no broker yet), edit the config, run the installed binary as user xymon,
//! upgrade (the edited config stays), remove (the config stays), purge (nothing stays). Only as root,
//! with Debian's xymon package installed and no xymon-mqtt installed by anyone else; a failed test
//! purges what it installed. Part of tests/deb_package.rs.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{self, Mosquitto, Xymond};
use crate::{cargo_deb, contents, run, FILES};

const CONFIG: &str = "/etc/xymon-mqtt/xymon-mqtt.toml";
const BIN: &str = "/usr/bin/xymon-mqtt";
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/xymon-mqtt.service";
const NOT_STARTED: &str = "names no [[broker]] yet; the service is enabled but not started";
const WAIT: Duration = Duration::from_secs(30);

/// `dpkg-query`'s status of `package`, empty when dpkg does not know it.
fn status(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn not_installed(package: &str) -> bool {
    let s = status(package);
    s.is_empty() || s.ends_with("not-installed")
}

/// Why this machine is not one to install the package on.
pub enum Unfit {
    /// Not root, or no Debian xymon: CI has both.
    Missing(String),
    /// The package or its files are here already, from someone else.
    Taken(String),
}

pub fn can_install() -> Result<(), Unfit> {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Unfit::Missing(
            "installing the package needs root (CI runs as root)".into(),
        ));
    }
    if status("xymon") != "install ok installed" {
        return Err(Unfit::Missing(
            "Debian's xymon package is not installed".into(),
        ));
    }
    if !not_installed("xymon-mqtt") {
        return Err(Unfit::Taken(format!(
            "xymon-mqtt is installed here already ({}); the test's purge would take its config",
            status("xymon-mqtt")
        )));
    }
    for path in [
        BIN,
        CONFIG,
        "/etc/xymon-mqtt",
        "/etc/xymon/xymonserver.d/mqtt.cfg",
    ] {
        if Path::new(path).exists() {
            return Err(Unfit::Taken(format!(
                "{path} exists, not from this package; left alone"
            )));
        }
    }
    Ok(())
}

/// apt-get with `args`, non-interactive, waiting for another apt's lock; stdout and stderr.
fn apt(args: &[&str]) -> String {
    let mut cmd = Command::new("apt-get");
    cmd.args(["-y", "-q", "--no-install-recommends"])
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run apt-get");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}: {}\n{text}", out.status);
    eprintln!("$ apt-get {}\n{text}", args.join(" "));
    text
}

/// Purges the package if the test stops before its own purge.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if !not_installed("xymon-mqtt") {
            let _ = Command::new("apt-get")
                .args([
                    "-y",
                    "-q",
                    "-o",
                    "DPkg::Lock::Timeout=600",
                    "purge",
                    "xymon-mqtt",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// The uid and gid of `user` (getent passwd).
fn ids(user: &str) -> (u32, u32) {
    let line = run(Command::new("getent").args(["passwd", user]));
    let f: Vec<&str> = line.trim().split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// `cmd` run as user xymon (its own uid, gid and groups), as the unit runs it.
fn as_xymon(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=xymon", "--regid=xymon", "--init-groups", "--"])
        .arg(program);
    cmd
}

fn mode_owner(path: &str) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

pub fn install_run_upgrade_purge(deb: &Path) {
    let guard = Installed;
    let (xymon_uid, xymon_gid) = ids("xymon");

    // Install: every file in place, the config for root and group xymon only, the unit enabled (also
    // without systemd running: deb-systemd-helper makes the link), and not started, as it says.
    let out = apt(&["install", deb.to_str().unwrap()]);
    assert_eq!(status("xymon-mqtt"), "install ok installed", "{out}");
    assert!(out.contains(NOT_STARTED), "{out}");
    for (path, _) in FILES {
        assert!(Path::new(path).is_file(), "{path} after install\n{out}");
    }
    assert_eq!(mode_owner(BIN), (0o755, 0, 0));
    assert_eq!(mode_owner(CONFIG), (0o640, 0, xymon_gid));
    assert!(Path::new("/lib/systemd/system/xymon-mqtt.service").is_file());
    let link = std::fs::read_link(ENABLED).expect("the unit is enabled");
    assert!(
        link.ends_with("systemd/system/xymon-mqtt.service"),
        "{link:?}"
    );
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "cat",
            CONFIG,
        ])
        .output()
        .unwrap();
    assert!(!nobody.status.success(), "others can read {CONFIG}");

    // Edit the installed config as an admin would, and run the installed binary as xymon.
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let shipped = std::fs::read_to_string(CONFIG).unwrap();
    let edited = shipped.replace("127.0.0.1:1984", &xymond.addr()).replace(
        "127.0.0.1:8585",
        &format!("127.0.0.1:{}", common::free_port()),
    ) + &format!(
        "\n[[broker]]\nname = \"local\"\nurl = \"{}\"\n\n[[test]]\nhost = \"greenhouse\"\n\
             test = \"env\"\nbroker = \"local\"\ntopics = [\"gh/temperature\", \"gh/humidity\"]\n",
        mqtt.url()
    );
    assert_ne!(edited, shipped);
    std::fs::write(CONFIG, &edited).unwrap();
    let check = run(as_xymon(BIN).args(["check", "--config", CONFIG]));
    assert!(check.contains("OK (1 brokers, 1 tests)"), "{check}");
    run_installed(&xymond, &mqtt, xymon_uid);

    // The postinst does not start a config that does not check, and says so with file, line and key.
    let broken = edited.replace("broker = \"local\"", "broker = \"elsewhere\"");
    std::fs::write(CONFIG, &broken).unwrap();
    let postinst = Command::new("/var/lib/dpkg/info/xymon-mqtt.postinst")
        .args(["configure", concat!(env!("CARGO_PKG_VERSION"), "-1")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&postinst.stdout).into_owned()
        + &String::from_utf8_lossy(&postinst.stderr);
    assert!(postinst.status.success(), "{said}");
    assert!(
        said.contains("does not check; the service is not started"),
        "{said}"
    );
    assert!(said.contains("key `test[0].broker`"), "{said}");
    std::fs::write(CONFIG, &edited).unwrap();

    // Upgrade: the edited conffile is kept without a prompt or a .dpkg-new, and still checks.
    let newer_dir = tempfile::tempdir().unwrap();
    let newer = cargo_deb(newer_dir.path(), &["--no-build", "--deb-revision", "2"]);
    let out = apt(&["install", newer.to_str().unwrap()]);
    assert_eq!(status("xymon-mqtt"), "install ok installed", "{out}");
    let version = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", "xymon-mqtt"]));
    assert!(version.ends_with("-2"), "{version}\n{out}");
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited, "{out}");
    assert_eq!(mode_owner(CONFIG), (0o640, 0, xymon_gid));
    assert!(!out.contains(NOT_STARTED), "{out}");
    for leftover in [".dpkg-new", ".dpkg-dist", ".dpkg-old"] {
        assert!(
            !Path::new(&format!("{CONFIG}{leftover}")).exists(),
            "{leftover}"
        );
    }
    run(as_xymon(BIN).args(["check", "--config", CONFIG]));

    // Remove: the program goes, the config stays.
    let out = apt(&["remove", "xymon-mqtt"]);
    assert_eq!(status("xymon-mqtt"), "deinstall ok config-files", "{out}");
    assert!(!Path::new(BIN).exists());
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);

    // Purge: nothing of the package is left, not even its enable link.
    let out = apt(&["purge", "xymon-mqtt"]);
    assert!(
        not_installed("xymon-mqtt"),
        "{}\n{out}",
        status("xymon-mqtt")
    );
    for (path, _) in contents(deb)
        .into_iter()
        .filter(|(_, (mode, _))| !mode.starts_with('d'))
    {
        assert!(!Path::new(&path).exists(), "{path} after purge\n{out}");
    }
    for path in [
        "/etc/xymon-mqtt",
        "/usr/share/xymon-mqtt",
        "/usr/share/doc/xymon-mqtt",
        ENABLED,
        "/var/lib/systemd/deb-systemd-helper-enabled/xymon-mqtt.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/xymon-mqtt.service",
        "/var/lib/dpkg/info/xymon-mqtt.postinst",
    ] {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{path} after purge\n{out}"
        );
    }
    drop(guard);
}

/// Runs `/usr/bin/xymon-mqtt --config /etc/xymon-mqtt/xymon-mqtt.toml` as xymon until one status is in
/// xymond, then stops it with SIGTERM (exit 0).
fn run_installed(xymond: &Xymond, mqtt: &Mosquitto, xymon_uid: u32) {
    let mut child = Bridge(
        as_xymon(BIN)
            .args(["--config", CONFIG])
            .env("RUST_LOG", "debug")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    // setpriv changes user, then execs the binary: the child becomes the bridge itself, as xymon.
    let proc_dir = format!("/proc/{}", child.0.id());
    common::wait_until(WAIT, "setpriv to exec the installed binary", || {
        std::fs::read_link(format!("{proc_dir}/exe")).is_ok_and(|exe| exe == Path::new(BIN))
    });
    let proc_status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    let uid_line = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uid = xymon_uid.to_string();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(
        uids,
        [uid.as_str(); 4],
        "real, effective, saved, fs: {uid_line}"
    );
    common::wait_until(WAIT, "the installed bridge's SubAck", || {
        log.lock().unwrap().contains(" subscribed broker=local")
    });
    mqtt.publish("gh/temperature", "21.5", false);
    mqtt.publish("gh/humidity", "40", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |_| true);
    assert_eq!(s.color, "green", "{}", s.body);
    assert!(s.body.contains("gh/temperature = 21.5"), "{}", s.body);
    common::signal(child.0.id(), libc::SIGTERM).unwrap();
    let mut code = None;
    common::wait_until(WAIT, "the installed bridge to exit", || {
        code = child.0.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    reader.join().unwrap();
    assert_eq!(code, Some(Some(0)), "{}", log.lock().unwrap());
}

/// Kills the bridge if the test fails before it exits.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
