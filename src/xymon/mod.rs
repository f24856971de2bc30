//! Delivery to xymond: drains the outbox into TCP connections to xymond (port 1984).
//!
//! Fed by the collector through the `Outbox`; reports delivery state back into it for the web layer.
//! One message per connection: write it all, shut down the write side (xymond processes a message only at
//! EOF), read to EOF (status and combo get no reply). Several pending statuses go out as one `combo`.
//! When xymond is unreachable the outbox keeps the latest status per host.test and we retry with a capped
//! exponential backoff; MQTT ingest never waits on any of this. `ghosts` asks xymond which hosts it
//! dropped for not being in hosts.cfg.

pub mod ghosts;
pub mod message;
pub mod outbox;

pub use message::Status;
pub use outbox::{DeliveryState, Failing, Outbox, TestDelivery};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum XymonError {
    #[error("cannot connect to xymond at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("xymond at {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("xymond at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub addr: String,
    pub timeout: Duration,
    pub combo_max: usize,
    /// How long shutdown may spend delivering what is still pending.
    pub drain_deadline: Duration,
}

/// Sends one message and waits for xymond to close the connection.
pub async fn send(addr: &str, message: &str, timeout: Duration) -> Result<(), XymonError> {
    // status/combo get no reply; reading to EOF tells that xymond has taken the whole message.
    exchange(addr, message.as_bytes(), 0, timeout)
        .await
        .map(drop)
}

/// One exchange with xymond: sends `message`, closes the sending side (xymond acts on a message at
/// EOF, §1.1) and reads the answer to EOF, keeping its first `keep` bytes; the rest is read in small
/// chunks and dropped, so an answer never grows memory past `keep`.
///
/// # Errors
/// xymond cannot be reached, or does not answer within `timeout`.
pub async fn exchange(
    addr: &str,
    message: &[u8],
    keep: usize,
    timeout: Duration,
) -> Result<Vec<u8>, XymonError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| XymonError::Connect {
                addr: addr.into(),
                source,
            })?;
        let io = |source| XymonError::Io {
            addr: addr.into(),
            source,
        };
        stream.write_all(message).await.map_err(io)?;
        stream.shutdown().await.map_err(io)?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Ok(answer);
            }
            let room = keep.saturating_sub(answer.len()).min(n);
            answer.extend_from_slice(&chunk[..room]);
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| XymonError::Timeout {
            addr: addr.into(),
            timeout,
        })?
}

/// Runs until `cancel`, then delivers what is pending within `drain_deadline` and returns.
pub async fn run(
    cfg: SenderConfig,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut failing = false;
    loop {
        // Statuses pending already (a sender started by a reload takes over its predecessor's) go at once.
        if outbox.pending() == 0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = outbox.wait() => {}
            }
        }
        while outbox.pending() > 0 {
            match deliver_one_batch(&cfg, &outbox, &metrics).await {
                Ok(()) => {
                    if failing {
                        info!(server = %cfg.addr, "xymond reachable again; delivering pending statuses");
                        failing = false;
                    }
                    backoff.reset();
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, pending = outbox.pending(), "cannot deliver to xymond; keeping the latest status of each test and retrying");
                        failing = true;
                    } else {
                        debug!(error = %e, "xymond still unreachable");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    drain(&cfg, &outbox, &metrics).await;
}

/// Shutdown: one more go at everything pending, bounded by the drain deadline.
async fn drain(cfg: &SenderConfig, outbox: &Outbox, metrics: &Metrics) {
    let deadline = tokio::time::Instant::now() + cfg.drain_deadline;
    let flush = async {
        while outbox.pending() > 0 {
            deliver_one_batch(cfg, outbox, metrics).await?;
        }
        Ok::<(), XymonError>(())
    };
    match tokio::time::timeout_at(deadline, flush).await {
        Ok(Ok(())) => debug!("outbox drained"),
        Ok(Err(e)) => {
            warn!(error = %e, lost = outbox.pending(), "statuses not delivered at shutdown")
        }
        Err(_) => warn!(
            lost = outbox.pending(),
            "shutdown deadline passed with statuses undelivered"
        ),
    }
}

async fn deliver_one_batch(
    cfg: &SenderConfig,
    outbox: &Outbox,
    metrics: &Metrics,
) -> Result<(), XymonError> {
    let batch = outbox.take(cfg.combo_max);
    if batch.items.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = batch.items.iter().map(|(_, wire)| &**wire).collect();
    let message = message::combo(&parts);
    match send(&cfg.addr, &message, cfg.timeout).await {
        Ok(()) => {
            metrics.statuses_sent.inc_by(parts.len() as u64);
            metrics.deliveries.inc();
            outbox.delivered(&batch);
            Ok(())
        }
        Err(e) => {
            metrics.delivery_failures.inc();
            metrics.delivery_failed(std::time::SystemTime::now(), &e.to_string());
            outbox.failed(batch, &e.to_string());
            Err(e)
        }
    }
}
