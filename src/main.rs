//! The `xymon-mqtt` command: parse arguments, set up logging and signals, run the bridge.
//!
//! What each signal does is decided in one place, [`on_signals`]; logging and the one-shot commands'
//! output never panic on a closed or broken stderr or stdout.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use xymon_mqtt::cli;
use xymon_mqtt::config::EXAMPLE;
use xymon_mqtt::plan::Plan;

/// MQTT → Xymon bridge: subscribes to MQTT brokers and sends Xymon status messages to xymond.
///
/// Runs on the Xymon server next to xymond. Logs go to stderr (journald under systemd); set RUST_LOG
/// (e.g. RUST_LOG=debug or RUST_LOG=xymon_mqtt=debug) for more detail. SIGINT or SIGTERM stop it
/// gracefully: statuses still pending are delivered within a few seconds, then it exits 0. SIGHUP reloads
/// the configuration without a restart (an invalid one is logged and the running one stays); SIGUSR1 and
/// SIGUSR2 are logged and ignored; a closed or broken stderr or stdout only loses log lines.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// The TOML configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "XYMON_MQTT_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (0 when valid, 2 with file:line:key when not).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bridge (the default).
    Run,
    /// Validate the configuration and exit (same as --check-config).
    Check,
    /// Print a fully commented example configuration.
    PrintExampleConfig,
    /// Show which test matches a message and why others do not, the captures, the parsed values, the
    /// colours and the exact status that would be sent (as if it were the first message).
    Explain {
        /// A Home Assistant discovery announcement read first, as `CONFIG_TOPIC=PAYLOAD` (repeatable):
        /// then a state or availability topic of that entity is explained too. Other earlier messages
        /// (the device's availability, `zigbee2mqtt/bridge/state={"state":"online"}`) are read the same way.
        #[arg(long, value_name = "CONFIG_TOPIC=PAYLOAD")]
        announce: Vec<String>,
        /// The MQTT topic.
        topic: String,
        /// The payload (as text).
        payload: String,
    },
    /// Print the Xymon graphs.d and xymonserver.d lines for the per-value RRDs of rule tests.
    XymonConfig,
}

fn main() -> ExitCode {
    // Before any thread exists, so that every thread shares the one arena.
    xymon_mqtt::heap::limit_arenas();
    let cli = Cli::parse();
    // Held to the end of `main`: dropping it writes out the lines still queued (for a second at most).
    let _log = init_logging();
    let command = match cli.command {
        Some(c) => c,
        None if cli.check_config => Command::Check,
        None => Command::Run,
    };
    if let Command::PrintExampleConfig = command {
        return emit(EXAMPLE);
    }
    let Some(path) = cli.config else {
        say("xymon-mqtt: --config FILE is required (xymon-mqtt print-example-config prints an example)");
        return ExitCode::from(2);
    };
    if let Command::Run = command {
        return run(&path);
    }
    let plan = match cli::load(&path) {
        Ok(p) => p,
        Err(e) => {
            say(&format!("xymon-mqtt: {e}"));
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Explain {
            announce,
            topic,
            payload,
        } => {
            let mut announcements = Vec::new();
            for a in &announce {
                let Some((t, p)) = a.split_once('=') else {
                    say(&format!(
                        "xymon-mqtt: --announce {a:?}: write CONFIG_TOPIC=PAYLOAD"
                    ));
                    return ExitCode::from(2);
                };
                announcements.push((t.to_string(), p.as_bytes().to_vec()));
            }
            let now = std::time::SystemTime::now();
            emit(&cli::explain::explain_with(
                &plan,
                &announcements,
                &topic,
                payload.as_bytes(),
                now,
            ))
        }
        Command::XymonConfig => emit(&cli::xymon_config::generate(&plan)),
        _ => emit(&format!("{}\n", cli::check_summary(&path, &plan))),
    }
}

/// Runs the daemon: signal handlers first, then the configuration, then the bridge until SIGTERM or SIGINT.
fn run(config: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Before anything else: from here on no handled signal has its default action, which for SIGHUP,
        // SIGUSR1 and SIGUSR2 would end the process at once.
        let signals = install_signal_handlers();
        let plan = match cli::load(config) {
            Ok(p) => p,
            Err(e) => {
                say(&format!("xymon-mqtt: {e}"));
                return ExitCode::from(2);
            }
        };
        let cancel = CancellationToken::new();
        let (reloads, reloaded) = mpsc::channel(1);
        tokio::spawn(on_signals(
            signals,
            config.to_path_buf(),
            cancel.clone(),
            reloads,
        ));
        match xymon_mqtt::bridge::run_reloadable(plan, cancel, reloaded).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A signal the daemon handles. Every other signal keeps its default action, except SIGPIPE, which the
/// Rust runtime ignores from the start (a write to a closed pipe or socket fails with EPIPE instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sig {
    Term,
    Int,
    Hup,
    Usr1,
    Usr2,
}

impl Sig {
    const ALL: [Sig; 5] = [Sig::Term, Sig::Int, Sig::Hup, Sig::Usr1, Sig::Usr2];

    fn kind(self) -> tokio::signal::unix::SignalKind {
        use tokio::signal::unix::SignalKind;
        match self {
            Sig::Term => SignalKind::terminate(),
            Sig::Int => SignalKind::interrupt(),
            Sig::Hup => SignalKind::hangup(),
            Sig::Usr1 => SignalKind::user_defined1(),
            Sig::Usr2 => SignalKind::user_defined2(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Int => "SIGINT",
            Sig::Hup => "SIGHUP",
            Sig::Usr1 => "SIGUSR1",
            Sig::Usr2 => "SIGUSR2",
        }
    }
}

/// Installs a handler for each [`Sig`]; each forwards its signal into the returned channel, in arrival
/// order. A handler that cannot be installed is logged: that signal keeps its default action.
fn install_signal_handlers() -> mpsc::Receiver<Sig> {
    let (tx, rx) = mpsc::channel(16);
    for sig in Sig::ALL {
        match tokio::signal::unix::signal(sig.kind()) {
            Ok(mut stream) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if tx.send(sig).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                error!(signal = sig.name(), error = %e, "cannot install a signal handler; this signal keeps its default action (the process ends without delivering pending statuses)");
            }
        }
    }
    rx
}

/// What each signal does: SIGTERM and SIGINT stop the bridge (pending statuses are delivered, then exit
/// 0), SIGHUP goes to [`reload`], SIGUSR1 and SIGUSR2 are logged and ignored. Runs for the life of the
/// process, so a signal during shutdown is logged too.
async fn on_signals(
    mut signals: mpsc::Receiver<Sig>,
    config: PathBuf,
    cancel: CancellationToken,
    reloads: mpsc::Sender<Plan>,
) {
    while let Some(sig) = signals.recv().await {
        match sig {
            Sig::Term | Sig::Int => {
                // Cancel before logging: stopping must never depend on the log line being written.
                let again = cancel.is_cancelled();
                cancel.cancel();
                if again {
                    info!("{} received; already stopping", sig.name());
                } else {
                    info!(
                        "{} received; stopping (pending statuses are delivered first)",
                        sig.name()
                    );
                }
            }
            Sig::Hup if cancel.is_cancelled() => {
                info!("SIGHUP received; ignored while stopping");
            }
            Sig::Hup => reload(&config, &reloads).await,
            Sig::Usr1 | Sig::Usr2 => {
                info!("{} received; ignored (it has no meaning here)", sig.name());
            }
        }
    }
}

/// SIGHUP, by convention "reload the configuration": the file is read and compiled as at start. An
/// invalid one is logged as `check` prints it (file, line and key) and the running configuration stays;
/// a valid one goes to the running bridge, which applies it without a restart and logs what changed.
/// Signals are handled in order, so a second SIGHUP waits until the bridge has taken the first.
async fn reload(config: &Path, reloads: &mpsc::Sender<Plan>) {
    info!(config = %config.display(), "SIGHUP received; reloading the configuration");
    match cli::load(config) {
        Ok(plan) => {
            if reloads.send(plan).await.is_err() {
                warn!("the bridge is stopping; the configuration is not reloaded");
            }
        }
        Err(e) => {
            error!("configuration not reloaded: {e}; running on with the previous configuration")
        }
    }
}

/// Writes a one-shot command's output to stdout. A reader that went away (`| head`) is not an error;
/// any other write error (a full disk) is reported and exits 1.
fn emit(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("xymon-mqtt: cannot write the output: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one line to stderr, dropping it if stderr cannot take it (`eprintln!` would panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Lines queued for stderr at most; past that, new lines are dropped rather than waited for.
const LOG_QUEUE_LINES: usize = 16_384;

/// Logs to stderr; without timestamps under systemd (journald adds its own), without colour off a tty.
/// Lines go through a queue to a thread of their own (`tracing_appender`, lossy): a stderr that takes
/// nothing (a stalled journal, a pipe nobody reads) costs log lines, never a stalled bridge. A line
/// that cannot be written is dropped ([`LogWriter`]): a closed or broken stderr never stops the daemon.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log")
        .finish(LogWriter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Its report of a failed write goes through `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
    guard
}

/// Set once stderr is a pipe nobody reads: it stays so, and later lines are not even tried.
static STDERR_BROKEN: AtomicBool = AtomicBool::new(false);

/// stderr for the log, which never fails: a line that cannot be written (EPIPE: the journal or the pipe
/// reader is gone; ENOSPC: stderr is a file on a full disk) is dropped. A closed stderr (EBADF) needs
/// nothing here: the Rust runtime opens /dev/null in place of a standard descriptor that is closed at start.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !STDERR_BROKEN.load(Ordering::Relaxed) {
            if let Err(e) = std::io::stderr().write_all(buf) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    STDERR_BROKEN.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
