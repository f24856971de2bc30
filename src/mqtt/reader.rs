//! A session's reader: a task that only takes what the broker sends off the socket and queues it, so
//! the socket drains at the client's speed whatever its user is doing.
//!
//! Used by the discovery sessions (`mqtt::discovery`), whose state work (an announcement, a second's
//! changed columns) would otherwise stall the socket. A broker sends a subscriber's retained messages
//! all at once when it subscribes (every announcement under `homeassistant/#`), and mosquitto drops
//! QoS 0 messages for a client whose socket is full (past `max_queued_messages`, 1000 by default), so a
//! stalled socket loses announcements for good. The queue is bounded by payload bytes
//! (`QUEUE_BYTES`, at least `MIN_SHARE` per message, so also by count): when full, the reader waits,
//! and the broker's own limits apply again. Errors are queued too, after which the reader waits out
//! the reconnection delay before it polls again (rumqttc reconnects when polled).

use super::session::{Events, SessionError, SessionEvent};
use crate::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Payload bytes one session's queue holds at most.
pub const QUEUE_BYTES: usize = 32 << 20;
/// What one message counts for at least, whatever its payload.
const MIN_SHARE: usize = 64;

/// One event off the socket, holding its share of the queue until dropped.
pub struct Read {
    pub event: Result<SessionEvent, SessionError>,
    _share: Option<OwnedSemaphorePermit>,
}

/// Starts the reader of `events`; its queue ends when `cancel` fires or the receiver is dropped.
pub fn spawn(
    events: Events,
    reconnect_max: Duration,
    cancel: CancellationToken,
) -> mpsc::UnboundedReceiver<Read> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read(events, tx, reconnect_max, cancel));
    rx
}

async fn read(
    mut events: Events,
    tx: mpsc::UnboundedSender<Read>,
    reconnect_max: Duration,
    cancel: CancellationToken,
) {
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let mut backoff = Backoff::new(Duration::from_secs(1), reconnect_max);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.poll() => event,
        };
        let share = match &event {
            Ok(SessionEvent::Message(m)) => {
                let n = m.payload.len().clamp(MIN_SHARE, QUEUE_BYTES);
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    permit = budget.clone().acquire_many_owned(n) => match permit {
                        Ok(p) => Some(p),
                        Err(_) => return,
                    },
                }
            }
            _ => None,
        };
        let delay = match &event {
            Err(e) if e.timed_out => Some(Duration::ZERO),
            Err(_) => Some(backoff.next_delay()),
            Ok(SessionEvent::Connected { .. }) => {
                backoff.reset();
                None
            }
            Ok(_) => None,
        };
        if tx
            .send(Read {
                event,
                _share: share,
            })
            .is_err()
        {
            return;
        }
        if let Some(delay) = delay {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}
