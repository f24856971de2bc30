//! A private xymond's layout, shared by [`super::Xymond`] and the Xymon CGI environment in
//! `xymon_cgi.rs`: the env file, the foreground command line, and a XYMONHOME whose SysV IPC keys no
//! other xymond on the machine uses.
//!
//! xymond traps handled here (docs/xymon-protocol.md, 'Running a private xymond'):
//! * `--listen=IP:PORT` binds 0.0.0.0 in 4.3.30, so we pass `--listen=127.0.0.1`
//!   and set the port with `XYMONDPORT` in the env file.
//! * SysV IPC keys come from `ftok(XYMONHOME, channel)`, so every instance gets
//!   its own XYMONHOME, and we check that its keys are not in use by any other
//!   xymond (for example a production one) before starting.
//! * `--restart=` segfaults unless `MACHINEDOTS` is set, so it always is.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::processes::{lock, read_lossy};

/// Debian path of the xymond binary.
pub const XYMOND_BIN: &str = "/usr/lib/xymon/server/bin/xymond";

/// xymond's channel numbers (`C_STATUS`=1 .. `C_USER`=9, plus the feedback queue
/// 10), the `proj_id`s it passes to ftok(3) for its SysV IPC objects.
const XYMOND_CHANNEL_IDS: std::ops::RangeInclusive<u32> = 1..=10;

/// SysV IPC keys of the xymond instances started by this test process.
pub(super) static USED_IPC_KEYS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// The xymond env file's variables for a private instance: XYMONHOME `home`,
/// hosts.cfg in `home/etc`, logs/, tmp/ and rrd/ under `dir`, listening on `port`
/// (with `--listen=127.0.0.1`, see [`xymond_command`]).
pub fn xymond_env(dir: &Path, home: &Path, port: u16) -> String {
    format!(
        "XYMONHOME=\"{home}\"\n\
         XYMONSERVERLOGS=\"{d}/logs\"\n\
         XYMONTMP=\"{d}/tmp\"\n\
         HOSTSCFG=\"{home}/etc/hosts.cfg\"\n\
         XYMONRRDS=\"{d}/rrd\"\n\
         STATUSLIFETIME=\"30\"\n\
         XYMONDPORT=\"{port}\"\n\
         MACHINEDOTS=\"xymon-test.local\"\n",
        home = home.display(),
        d = dir.display(),
    )
}

/// A foreground xymond command for a private instance in `dir` (pidfile there,
/// log in logs/, checkpoint in tmp/), reading the env file `env` and `hosts_cfg`,
/// listening on 127.0.0.1 only, without the backfeed queue. The caller adds
/// anything else (environment, `--restart`, stdio) and spawns it.
pub fn xymond_command(dir: &Path, env: &Path, hosts_cfg: &Path) -> Command {
    let mut cmd = Command::new(XYMOND_BIN);
    cmd.arg(format!("--env={}", env.display()))
        // Not IP:PORT: that binds 0.0.0.0 in 4.3.30. The port comes from XYMONDPORT.
        .arg("--listen=127.0.0.1")
        .arg(format!("--hosts={}", hosts_cfg.display()))
        .arg(format!("--pidfile={}", dir.join("xymond.pid").display()))
        .arg(format!("--log={}", dir.join("logs/xymond.log").display()))
        .arg(format!(
            "--checkpoint-file={}",
            dir.join("tmp/xymond.chk").display()
        ))
        .arg("--checkpoint-interval=600")
        .arg("--no-bfq");
    cmd
}

/// The SysV IPC key glibc's ftok(3) derives from `path` and `proj_id`.
fn ftok(path: &Path, proj_id: u32) -> i32 {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).expect("stat XYMONHOME");
    let key =
        (meta.ino() & 0xffff) as u32 | ((meta.dev() & 0xff) as u32) << 16 | (proj_id & 0xff) << 24;
    key as i32
}

/// All SysV IPC keys (shared memory, semaphores, message queues) currently in
/// use in this IPC namespace, from /proc/sysvipc.
pub fn ipc_keys_in_use() -> BTreeSet<i32> {
    ["shm", "sem", "msg"]
        .iter()
        .flat_map(|kind| {
            read_lossy(&Path::new("/proc/sysvipc").join(kind))
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
                .map(|k| k as i32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Creates a XYMONHOME under `dir` whose ftok keys collide neither with a running
/// xymond (ours or a production one) nor with another instance in this process,
/// and reserves those keys. Colliding candidates stay on disk so their inode is
/// not handed out again.
pub(super) fn private_xymon_home(dir: &Path) -> (PathBuf, Vec<i32>) {
    for n in 0..64 {
        let home = dir.join(format!("home{n}"));
        fs::create_dir_all(&home).expect("create XYMONHOME");
        let keys: Vec<i32> = XYMOND_CHANNEL_IDS.map(|id| ftok(&home, id)).collect();
        let in_use = ipc_keys_in_use();
        let mut reserved = lock(&USED_IPC_KEYS);
        if keys
            .iter()
            .all(|k| !in_use.contains(k) && !reserved.contains(k))
        {
            reserved.extend(keys.iter().copied());
            return (home, keys);
        }
    }
    panic!(
        "no XYMONHOME with unused SysV IPC keys found under {}",
        dir.display()
    );
}
