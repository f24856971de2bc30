//! Child processes for the harness: free loopback ports, bounded waiting, running a client tool with a
//! timeout, and stopping a server by PID (SIGTERM, then SIGKILL). Used by every other file in
//! `tests/common` and, through the re-exports in `mod.rs`, by the test files (`free_port`,
//! `wait_until`, `port_is_open`, `signal`).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to become ready after it is spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Upper bound for one run of a client tool (`mosquitto_pub`, `xymon`, ...).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many fresh ports a server's `start()` tries when it dies during start-up
/// (another process may grab a port between [`free_port`] and the server's bind).
pub(super) const START_ATTEMPTS: usize = 3;

/// Interval between two polls in [`wait_until`] and the readiness loops.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Ports handed out by [`free_port`] in this test process, never handed out twice.
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Locks a mutex even if a panicking test poisoned it (the sets stay consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and
/// release it). A port is never returned twice in one test process, so parallel
/// tests do not race each other for it.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if lock(&USED_PORTS).insert(port) {
            return port;
        }
    }
}

/// Polls `f` until it returns `true`, and panics naming `what` if that does not
/// happen within `timeout`. This is bounded waiting, not a timing assertion: keep
/// timeouts generous (20-30 s) so a slow CI machine does not fail the test.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Returns true if something accepts TCP connections on `127.0.0.1:port`.
pub fn port_is_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Runs `cmd` to completion with optional stdin, capturing stdout and stderr.
/// Panics if it cannot be spawned or does not finish within `timeout`.
pub(super) fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    // Feed stdin and drain stdout/stderr in threads so no pipe can fill up and block.
    let writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take().expect("piped stdin");
        thread::spawn(move || {
            // A tool that exits early closes its stdin; its exit code tells the story.
            let _ = pipe.write_all(&data);
        })
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Panics with the tool's output unless it exited successfully.
pub(super) fn check_output(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): stdout={:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Sends signal `sig` (`libc::SIGTERM`, ...) to process `pid` with kill(2).
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Stops `child`: SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL and wait.
/// Returns the exit status and whether SIGKILL was needed.
pub fn terminate(child: &mut Child) -> (ExitStatus, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (status, false);
    }
    // Ignore a failure: the process may have exited in the meantime. Because the
    // caller still owns the unreaped `Child`, the PID cannot have been reused.
    let _ = signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return (status, false);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    // Called from `Drop` too, where a panic during unwinding would abort the whole test binary.
    match child.wait() {
        Ok(status) => (status, true),
        Err(e) => {
            eprintln!("cannot wait for pid {} after SIGKILL: {e}", child.id());
            (ExitStatus::default(), true)
        }
    }
}

/// A child process stopped by [`terminate`] on drop (SIGTERM to its PID, so xymond frees its IPC;
/// SIGKILL if it does not exit in time).
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Polls `ready` until it is true, failing early if `child` exits.
pub(super) fn wait_ready(
    child: &mut Child,
    mut ready: impl FnMut() -> bool,
    what: &str,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited during start-up ({status})"));
        }
        if ready() {
            return Ok(());
        }
        if start.elapsed() >= START_TIMEOUT {
            return Err(format!("{what} not ready after {START_TIMEOUT:?}"));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Reads a file that may not exist (yet) as lossy UTF-8.
pub(super) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// How many lines of the file at `path` contain `needle` (0 if it does not exist).
pub(super) fn count_lines_with(path: &Path, needle: &str) -> usize {
    read_lossy(path)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// The last `n` lines of `text`, for panic messages.
pub(super) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Returns true when the effective UID of this process is 0.
pub(super) fn running_as_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
