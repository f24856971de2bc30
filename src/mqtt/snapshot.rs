//! Snapshot sessions: the retained values of a periodic test's topics, fetched in a short-lived session
//! the way submqttm.py does it.
//!
//! Serves the collector's `SnapshotRequest`s (`serve`, one task for the bridge); every request gets a
//! session of its own on a task of its own, and its answer goes back on the request's reply channel.
//! Values also go into the store.

use super::connection::{connect, describe, Connection};
use crate::collect::{Fetched, SnapshotError, SnapshotRequest, SnapshotResult};
use crate::names::BrokerId;
use crate::store::{Incoming, Store};
use rumqttc::{Event, Packet, QoS};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Serves snapshot requests until the collector drops its sender; `connections` by `BrokerId`.
pub async fn serve(
    mut requests: mpsc::Receiver<SnapshotRequest>,
    connections: Vec<Connection>,
    store: Store,
) {
    while let Some(req) = requests.recv().await {
        let Some(conn) = connections.get(req.broker).cloned() else {
            let _ = req
                .reply
                .send(Err(SnapshotError::NotStarted("unknown broker")));
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let result = snapshot(conn, req.topics, req.qos, req.window, req.broker, store).await;
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
/// Returns the first value of each topic that arrived within `window` after the subscription, or the
/// reason the broker could not be reached. Values also go into the store.
async fn snapshot(
    mut conn: Connection,
    topics: Vec<Arc<str>>,
    qos: QoS,
    window: Duration,
    broker: BrokerId,
    store: Store,
) -> SnapshotResult {
    conn.client_id.push_str("-snapshot");
    let (client, mut eventloop) = connect(conn);
    let connected = tokio::time::timeout(SNAPSHOT_CONNECT_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(SnapshotError::Unreachable(describe(&e))),
            }
        }
    })
    .await
    .unwrap_or(Err(SnapshotError::NoConnAck(SNAPSHOT_CONNECT_TIMEOUT)));
    connected?;
    let filters = topics
        .iter()
        .map(|t| rumqttc::SubscribeFilter::new(t.to_string(), qos));
    client
        .try_subscribe_many(filters)
        .map_err(|e| SnapshotError::Subscribe(e.to_string()))?;
    let mut fetched: Vec<Fetched> = Vec::with_capacity(topics.len());
    let _ = tokio::time::timeout(window, async {
        while fetched.len() < topics.len() {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = SystemTime::now();
                    let incoming = Incoming {
                        topic: &p.topic,
                        payload: &p.payload,
                        qos: p.qos as u8,
                        retained: p.retain,
                        at,
                    };
                    let name = topics.iter().find(|t| ***t == *p.topic);
                    let _ = store.ingest(broker, &incoming, name);
                    if name.is_some() && !fetched.iter().any(|f| f.topic == p.topic) {
                        fetched.push(Fetched {
                            topic: p.topic,
                            payload: p.payload,
                            retained: p.retain,
                            at,
                        });
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    Ok(fetched)
}
