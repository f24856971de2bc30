//! Periodic tests' snapshots: at each tick the collector asks the MQTT stage for the retained values of
//! the test's topics (`SnapshotRequest`); the answer closes the test's round.
//!
//! The MQTT stage (`mqtt::snapshot`) serves the requests with short-lived sessions, as submqttm.py does;
//! the collector only says what it wants and gets back what arrived, or why nothing could.

use super::round::{Reading, Round};
use super::Collector;
use crate::names::BrokerId;
use crate::status;
use bytes::Bytes;
use rumqttc::QoS;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::debug;

/// One value fetched by a periodic snapshot.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub topic: String,
    pub payload: Bytes,
    pub retained: bool,
    pub at: SystemTime,
}

/// Why a snapshot brought nothing: its broker could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The connection failed, as the MQTT client reported it (untrusted text: the broker's words).
    #[error("{0}")]
    Unreachable(String),
    #[error("no CONNACK within {0:?}")]
    NoConnAck(Duration),
    #[error("{0}")]
    Subscribe(String),
    /// The MQTT stage took no more requests (it is stopping, or too many are queued).
    #[error("the snapshot could not be started: {0}")]
    NotStarted(&'static str),
}

/// What one snapshot brought.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The first value of each topic that arrived within the window.
    pub values: Vec<Fetched>,
    /// Topics the broker refused to subscribe to, with its reason (untrusted text).
    pub refused: Vec<(String, String)>,
}

/// What a snapshot brought, or why it brought nothing.
pub type SnapshotResult = Result<Snapshot, SnapshotError>;

/// Fetch the retained values of `topics` from broker `broker` within `window`.
#[derive(Debug)]
pub struct SnapshotRequest {
    pub broker: BrokerId,
    /// The test's slot, for the session's client id.
    pub test: usize,
    pub topics: Vec<Arc<str>>,
    pub qos: QoS,
    pub window: Duration,
    pub reply: oneshot::Sender<SnapshotResult>,
}

/// A snapshot's answer, back on the collector's own channel.
pub(super) struct SnapshotDone {
    pub(super) test: usize,
    /// Reloads before it was asked for: `test` is an index of that time.
    pub(super) epoch: usize,
    pub(super) generation: u64,
    pub(super) result: SnapshotResult,
}

impl Collector {
    /// Periodic tick: opens the round and asks for the retained values; the answer comes back as a
    /// `SnapshotDone`.
    pub(super) fn start_snapshot(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        if slot.round.is_some() {
            return;
        }
        slot.round = Some(Round::open(
            slot.topics.len(),
            now,
            SystemTime::now(),
            slot.cfg.window,
        ));
        let (reply, answer) = oneshot::channel();
        let request = SnapshotRequest {
            broker: slot.broker,
            test,
            topics: slot.topics.iter().map(|t| t.shared()).collect(),
            qos: slot.cfg.qos(),
            window: slot.cfg.window,
            reply,
        };
        let generation = slot.generation;
        let epoch = self.reloads.len();
        let done = self.snapshots_tx.clone();
        let sent = self.snapshot_requests.try_send(request);
        tokio::spawn(async move {
            let result = match sent {
                Ok(()) => answer
                    .await
                    .unwrap_or(Err(SnapshotError::NotStarted("the MQTT stage stopped"))),
                Err(_) => Err(SnapshotError::NotStarted(
                    "the MQTT stage is stopping or busy",
                )),
            };
            let _ = done
                .send(SnapshotDone {
                    test,
                    epoch,
                    generation,
                    result,
                })
                .await;
        });
    }

    pub(super) fn on_snapshot(&mut self, mut done: SnapshotDone) {
        let Some(test) = self.snapshot_slot(done.test, done.epoch) else {
            return;
        };
        done.test = test;
        let now = Instant::now();
        let slot = &mut self.slots[done.test];
        if slot.generation != done.generation {
            return;
        }
        match done.result {
            Ok(snapshot) => {
                for t in slot.topics.iter() {
                    self.refused.set(slot.broker, t, None);
                }
                for (t, reason) in snapshot.refused {
                    self.refused.set(slot.broker, &t, Some(reason));
                }
                if let Some(round) = slot.round.as_mut() {
                    for f in snapshot.values {
                        if let Some(idx) = slot.topics.iter().position(|t| **t == *f.topic) {
                            round.offer(
                                idx,
                                Reading {
                                    payload: f.payload,
                                    retained: f.retained,
                                    at: f.at,
                                },
                            );
                        }
                    }
                }
                self.close_round(done.test, now);
            }
            Err(reason) => {
                slot.round = None;
                slot.generation += 1;
                debug!(test = %slot.cfg.test, %reason, "snapshot failed");
                self.outbox.put(status::broker_down_status(
                    &slot.cfg,
                    Some(&reason.to_string()),
                    SystemTime::now(),
                ));
            }
        }
    }
}
