//! The `xymon-mqtt` command: parse arguments, set up logging and signals, run the bridge.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing::error;
use xymon_mqtt::cli;
use xymon_mqtt::config::EXAMPLE;
use xymon_mqtt::plan::Plan;

/// MQTT → Xymon bridge: subscribes to MQTT brokers and sends Xymon status messages to xymond.
///
/// Runs on the Xymon server next to xymond. Logs go to stderr (journald under systemd); set RUST_LOG
/// (e.g. RUST_LOG=debug or RUST_LOG=xymon_mqtt=debug) for more detail. SIGINT or SIGTERM stop it
/// gracefully: statuses still pending are delivered within a few seconds, then it exits 0.
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
    init_logging();
    let command = match cli.command {
        Some(c) => c,
        None if cli.check_config => Command::Check,
        None => Command::Run,
    };
    if let Command::PrintExampleConfig = command {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    let Some(path) = cli.config else {
        eprintln!("xymon-mqtt: --config FILE is required (xymon-mqtt print-example-config prints an example)");
        return ExitCode::from(2);
    };
    let plan = match cli::load(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xymon-mqtt: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Explain { topic, payload } => {
            let now = std::time::SystemTime::now();
            print!(
                "{}",
                cli::explain::explain(&plan, &topic, payload.as_bytes(), now)
            );
            ExitCode::SUCCESS
        }
        Command::XymonConfig => {
            print!("{}", cli::xymon_config::generate(&plan));
            ExitCode::SUCCESS
        }
        Command::Check => {
            println!("{}", cli::check_summary(&path, &plan));
            ExitCode::SUCCESS
        }
        _ => run(plan),
    }
}

fn run(plan: Plan) -> ExitCode {
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
        let cancel = CancellationToken::new();
        tokio::spawn(stop_on_signal(cancel.clone()));
        match xymon_mqtt::bridge::run(plan, cancel).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancels on SIGINT or SIGTERM.
async fn stop_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            // Without signal handlers the process could only be killed; say so and wait for Ctrl-C.
            error!("cannot install signal handlers");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    cancel.cancel();
}

/// Logs to stderr; without timestamps under systemd (journald adds its own), without colour off a tty.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
