//! The real `xymon-mqtt` binary as a daemon, for tests of what only a process shows: signals, closed and
//! broken standard descriptors, exit codes. Its config is written to a temporary directory; its stderr is
//! a pipe that a thread reads into a string until the test closes the read end (every later log line then
//! meets EPIPE). Stopped by PID (SIGKILL) on drop if the test has not seen it exit.
//!
//! The binary's path is a parameter (`env!("CARGO_BIN_EXE_xymon-mqtt")` in the test file): this harness
//! is also compiled into the benchmark example, where that variable does not exist.

use std::io::{PipeReader, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::processes::{lock, signal};
use super::wait_until;

/// How long the tests wait for a log line, a status or an exit.
pub const WAIT: Duration = Duration::from_secs(30);

/// Where the daemon's stderr goes.
pub enum Stderr {
    /// A pipe read by the test ([`Daemon::log`]) until [`Daemon::close_stderr`].
    Read,
    /// Closed (file descriptor 2 not open) when the binary starts; stdout closed too.
    Closed,
    /// A pipe of one page (4 KiB) that the test holds open and never reads: a few log lines fill it,
    /// and every write after that would wait for ever (a stalled journal). [`Daemon::stderr_queued`]
    /// tells how full it is.
    Stalled,
}

/// The running binary.
pub struct Daemon {
    child: Child,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    stop_reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// The read end of a `Stderr::Stalled` pipe, never read.
    stalled: Option<PipeReader>,
    exit: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `bin --config <dir>/bridge.toml` with `toml` as the config and `RUST_LOG=debug`; stdout is
    /// `stdout` (a broken pipe, `/dev/null`, ...).
    pub fn start(bin: &Path, toml: &str, stderr: Stderr, stdout: Stdio) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("bridge.toml");
        std::fs::write(&config, toml).expect("write the config");
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .env("RUST_LOG", "debug")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(stdout);
        let log = Arc::new(Mutex::new(String::new()));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let mut reader = None;
        let mut stalled = None;
        match stderr {
            Stderr::Read => {
                let (read, write) = std::io::pipe().expect("pipe");
                cmd.stderr(write);
                let (log, stop) = (log.clone(), stop_reading.clone());
                reader = Some(std::thread::spawn(move || collect(read, &log, &stop)));
            }
            Stderr::Stalled => {
                let (read, write) = std::io::pipe().expect("pipe");
                // SAFETY: fcntl on a descriptor this process owns; F_SETPIPE_SZ takes an int.
                let set = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
                assert!(
                    set >= 4096,
                    "F_SETPIPE_SZ: {}",
                    std::io::Error::last_os_error()
                );
                cmd.stderr(write);
                stalled = Some(read);
            }
            Stderr::Closed => {
                use std::os::unix::process::CommandExt;
                // SAFETY: close(2) is async-signal-safe, as pre_exec requires; it touches no memory.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::close(1);
                        libc::close(2);
                        Ok(())
                    });
                }
            }
        }
        let child = cmd.spawn().expect("spawn xymon-mqtt");
        // `cmd` holds this process's copy of the pipe's write end: drop it, so the child's is the only one.
        drop(cmd);
        Daemon {
            child,
            config,
            _dir: dir,
            log,
            stop_reading,
            reader,
            stalled,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything read from its stderr so far.
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// Bytes written to a `Stderr::Stalled` pipe and not read (FIONREAD), and the pipe's size.
    pub fn stderr_queued(&self) -> (usize, usize) {
        let fd = self.stalled.as_ref().expect("a stalled stderr").as_raw_fd();
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which points at one.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
        // SAFETY: F_GETPIPE_SZ reads no memory.
        let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        (
            usize::try_from(queued).unwrap_or(0),
            usize::try_from(size).unwrap_or(0),
        )
    }

    /// Waits until its stderr has shown `needle`.
    pub fn wait_log(&self, needle: &str) {
        wait_until(WAIT, &format!("{needle:?} in the log"), || {
            lock(&self.log).contains(needle)
        });
    }

    /// Closes the read end of the stderr pipe: from now on each log line the daemon writes fails with
    /// EPIPE. Returns when it is closed.
    pub fn close_stderr(&mut self) {
        self.stop_reading.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig).unwrap_or_else(|e| panic!("signal {sig}: {e}"));
    }

    /// Writes `toml` over its config file and sends SIGHUP; returns once the log shows the reload done
    /// (`configuration reloaded`) or refused (`configuration not reloaded`), one more than before.
    pub fn reload(&self, toml: &str) {
        let count = |log: &str| {
            log.matches("configuration reloaded").count()
                + log.matches("configuration not reloaded").count()
        };
        let before = count(&self.log());
        std::fs::write(&self.config, toml).expect("write the config");
        self.signal(libc::SIGHUP);
        wait_until(WAIT, "the reload to be done", || {
            count(&lock(&self.log)) > before
        });
    }

    /// True while the process has not exited (reaps it when it has).
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit.is_none()
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_until(WAIT, "xymon-mqtt to exit", || !self.is_running());
        self.exit.expect("exited")
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.close_stderr();
    }
}

/// Reads `pipe` into `log` until EOF or until `stop` is set (checked every 50 ms), then drops the pipe.
fn collect(mut pipe: PipeReader, log: &Mutex<String>, stop: &AtomicBool) {
    let mut buf = [0u8; 8192];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the length given.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(log).push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

/// A pipe whose read end is already closed: whatever is written to the write end fails with EPIPE.
pub fn broken_pipe() -> Stdio {
    let (read, write) = std::io::pipe().expect("pipe");
    drop(read);
    write.into()
}
