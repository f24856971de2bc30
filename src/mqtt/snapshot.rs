//! Snapshot sessions: the retained values of a periodic test's topics, fetched in a short-lived session
//! the way submqttm.py does it.
//!
//! Serves the collector's `SnapshotRequest`s (`serve`, one task for the bridge); every request gets a
//! session of its own, with a client id of its own (`Connection::snapshot_id`: per test and per
//! snapshot, so that the snapshots of several tests that start at the same instant never take each
//! other's place at the broker), on a task of its own, and its answer goes back on the request's reply
//! channel. Values also go into the store, and refused filters into the store and the metrics.

use super::connection::{open, Connection};
use super::session::SessionEvent;
use crate::collect::{Fetched, Snapshot, SnapshotError, SnapshotRequest, SnapshotResult};
use crate::metrics::Metrics;
use crate::names::BrokerId;
use crate::store::{Incoming, Store};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Serves snapshot requests until the collector drops its sender; `connections` by `BrokerId`.
pub async fn serve(
    mut requests: mpsc::Receiver<SnapshotRequest>,
    connections: Vec<Connection>,
    store: Store,
    metrics: Arc<Metrics>,
) {
    // Numbers the sessions, so no two ever share a client id.
    let mut seq: u64 = 0;
    while let Some(req) = requests.recv().await {
        let Some(conn) = connections.get(req.broker).cloned() else {
            let _ = req
                .reply
                .send(Err(SnapshotError::NotStarted("unknown broker")));
            continue;
        };
        seq += 1;
        let id = conn.snapshot_id(req.test, seq);
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let result = snapshot(&conn, id, &req, &store, &metrics).await;
            let _ = req.reply.send(result);
        });
    }
}

/// How long a snapshot session may take to connect before the broker counts as unreachable.
const SNAPSHOT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A periodic snapshot, done the way submqttm.py does it: a short-lived session that subscribes, takes the
/// retained values the broker replays, and disconnects. The broker sends us CONNACK, SUBACK and one
/// PUBLISH per topic, no more, so its `$SYS` message counters are disturbed no more than by submqttm.py, and
/// far less than by a permanent `$SYS` subscription (which gets every change every `sys_interval`).
///
/// Returns the first value of each topic that arrived within `window` after the subscription and the
/// topics the broker refused, or the reason the broker could not be reached. Values also go into the
/// store.
async fn snapshot(
    conn: &Connection,
    id: String,
    req: &SnapshotRequest,
    store: &Store,
    metrics: &Metrics,
) -> SnapshotResult {
    let (client, mut events) = open(conn, id, false);
    let connected = tokio::time::timeout(SNAPSHOT_CONNECT_TIMEOUT, async {
        loop {
            match events.poll().await {
                Ok(SessionEvent::Connected { .. }) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(SnapshotError::Unreachable(e.message)),
            }
        }
    })
    .await
    .unwrap_or(Err(SnapshotError::NoConnAck(SNAPSHOT_CONNECT_TIMEOUT)));
    connected?;
    let topics = &req.topics;
    client
        .subscribe(topics.iter().map(|t| (t.to_string(), req.qos)).collect())
        .map_err(SnapshotError::Subscribe)?;
    let mut got = Snapshot::default();
    let _ = tokio::time::timeout(req.window, async {
        while got.values.len() + got.refused.len() < topics.len() {
            match events.poll().await {
                Ok(SessionEvent::Message(m)) => {
                    let Some(topic) = m.topic.as_str() else {
                        continue;
                    };
                    let at = SystemTime::now();
                    let incoming = Incoming {
                        topic,
                        payload: &m.payload,
                        qos: m.qos,
                        retained: m.retain,
                        at,
                    };
                    let name = topics.iter().find(|t| ***t == *topic);
                    // By name: a reload since the request may have renumbered or removed the broker.
                    if let Some(broker) = store.broker_named(&conn.name) {
                        let _ = store.ingest(broker, &incoming, name);
                    }
                    if name.is_some() && !got.values.iter().any(|f| f.topic == topic) {
                        got.values.push(Fetched {
                            topic: topic.to_string(),
                            payload: m.payload,
                            retained: m.retain,
                            at,
                        });
                    }
                }
                Ok(SessionEvent::SubAck(codes)) => {
                    for (topic, code) in topics.iter().zip(codes) {
                        let broker = store.broker_named(&conn.name).unwrap_or(BrokerId::MAX);
                        let changed = store.set_refused(broker, topic, code.as_ref().err().cloned());
                        if let Err(reason) = code {
                            metrics.count_refusal(&conn.name, topic);
                            if changed {
                                warn!(broker = %conn.name, filter = %topic, reason = %reason, "the broker refused a snapshot subscription");
                            } else {
                                debug!(broker = %conn.name, filter = %topic, reason = %reason, "snapshot subscription refused again");
                            }
                            got.refused.push((topic.to_string(), reason));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    client.disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(ev) = events.poll().await {
            if matches!(ev, SessionEvent::Disconnecting) {
                break;
            }
        }
    })
    .await;
    Ok(got)
}
