//! Home Assistant discovery sessions: one MQTT session per `[[discovery]]` block, subscribed to
//! `<prefix>/#` and to the state and availability topics of the entities announced there, turning
//! devices into Xymon statuses.
//!
//! Spawned by the supervisor next to the ingest tasks, with the broker's connection settings and its
//! own client id (`<client_id>-discovery<N>`), so its subscriptions, which change as entities come and
//! go, never mix with the permanent ones of the ingest session. Owns the block's
//! `discovery::DiscoveryState`. At each check (`CHECK_EVERY`) it takes the columns that changed, plus
//! a share of the others so that every column comes out each `RESEND_EVERY` (never all at once: the
//! same task reads the socket, and 10,000 columns at once would stall it), and writes the statuses
//! (`status::discovery_status`) of those whose text changed, or whose turn it is, into the outbox; moves
//! the columns onto the `discovery::Board` the dashboard reads. With `rrd`/`rrd_classes`, the latest
//! value of each numeric sensor that changed goes to the RRD writer at each check
//! (`<host>/<column>.<object_id>.rrd`, the `value` layout).
//! Refused announcements and template errors are counted (`xymon_mqtt_dropped_total`, reasons
//! `discovery_refused`, `discovery_template`) and logged, rate-limited. Subscriptions asked for while
//! the request queue is full wait for the next check; on every ConnAck all of them are sent again.

use super::connection::{open, Connection};
use super::session::{Client, SessionEvent};
use super::SUBSCRIBE_CHUNK;
use crate::backoff::Backoff;
use crate::discovery::{Board, Changes, DiscoveryPlan, DiscoveryState, Place};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::rrd::{RrdSample, RrdWriter};
use crate::xymon::Outbox;
use rumqttc::QoS;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often changed columns are looked for.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Every column is sent again this often, so xymond never turns it purple while the bridge runs.
pub const RESEND_EVERY: Duration = Duration::from_secs(60);
/// Status lifetime: two re-sends and five minutes of slack, as rule tests have.
const LIFETIME: Duration = Duration::from_secs(2 * 60 + 300);

/// What one discovery session needs.
pub struct DiscoveryTask {
    pub index: usize,
    pub connection: Connection,
    pub plan: DiscoveryPlan,
    pub reconnect_max: Duration,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub max_value_chars: usize,
    /// Where the columns go for the dashboard, under `index`.
    pub board: Board,
    /// The RRD writer, when the block writes RRDs (`rrd`, `rrd_classes`).
    pub rrd: Option<RrdWriter>,
}

/// Runs the session until `cancel`; reconnects with backoff.
pub async fn run(task: DiscoveryTask, cancel: CancellationToken) {
    let id = format!("{}-discovery{}", task.connection.client_id, task.index);
    let (client, mut events) = open(&task.connection, id, false);
    let mut state = DiscoveryState::new(task.plan.clone());
    let mut backoff = Backoff::new(Duration::from_secs(1), task.reconnect_max);
    let log_limit = LogLimiter::new(Duration::from_secs(60));
    let mut pending: Vec<String> = Vec::new();
    let mut sent: HashMap<Place, u64> = HashMap::new();
    let mut written = Written::default();
    let mut check = tokio::time::interval(CHECK_EVERY);
    let shares = (RESEND_EVERY.as_secs() / CHECK_EVERY.as_secs()) as usize;
    let name = task.connection.name.clone();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = check.tick() => {
                flush(&client, &mut pending);
                let changes = state.take_changes(Instant::now(), SystemTime::now(), shares);
                send_changes(&task, changes, &mut sent, &mut written, &log_limit);
                continue;
            }
            event = events.poll() => event,
        };
        match event {
            Ok(SessionEvent::Message(m)) => {
                let Some(topic) = m.topic.as_str() else {
                    continue;
                };
                let out = state.offer(
                    topic,
                    &m.payload,
                    m.retain,
                    Instant::now(),
                    SystemTime::now(),
                );
                if let Some(reason) = &out.refused {
                    task.metrics.count_drop("discovery_refused");
                    if log_limit.allow("discovery_refused") {
                        warn!(broker = %name, reason = %reason, "discovery announcement refused");
                    }
                }
                if out.template_errors > 0 {
                    task.metrics.count_drop("discovery_template");
                    if log_limit.allow("discovery_template") {
                        debug!(broker = %name, topic = %topic, "discovery template failed");
                    }
                }
                for t in out.unsubscribe {
                    pending.retain(|p| *p != t);
                    let _ = client.unsubscribe(t);
                }
                pending.extend(out.subscribe);
                if pending.len() >= SUBSCRIBE_CHUNK {
                    flush(&client, &mut pending);
                }
            }
            Ok(SessionEvent::Connected { .. }) => {
                info!(broker = %name, prefix = %state.plan().prefix, "discovery session connected");
                pending = std::iter::once(state.config_filter())
                    .chain(state.topics())
                    .collect();
                flush(&client, &mut pending);
            }
            Ok(SessionEvent::SubAck(codes)) => {
                for c in codes.iter().filter_map(|c| c.as_ref().err()) {
                    if log_limit.allow("discovery_suback") {
                        warn!(broker = %name, reason = %c, "the broker refused a discovery subscription");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if log_limit.allow("discovery_connect") {
                    warn!(broker = %name, error = %e.message, "discovery session disconnected; reconnecting");
                }
                let delay = if e.timed_out {
                    Duration::ZERO
                } else {
                    backoff.next_delay()
                };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    client.disconnect();
}

/// Subscribes what is pending, in chunks; what the request queue cannot take stays pending.
fn flush(client: &Client, pending: &mut Vec<String>) {
    while !pending.is_empty() {
        let n = pending.len().min(SUBSCRIBE_CHUNK);
        let chunk: Vec<(String, QoS)> = pending[..n]
            .iter()
            .map(|t| (t.clone(), QoS::AtMostOnce))
            .collect();
        if client.subscribe(chunk).is_err() {
            return;
        }
        pending.drain(..n);
    }
}

/// Puts the statuses of the columns taken into the outbox when their text changed or their turn came,
/// their new values into the RRD writer, and the columns onto the board.
fn send_changes(
    task: &DiscoveryTask,
    changes: Changes,
    sent: &mut HashMap<Place, u64>,
    written: &mut Written,
    log_limit: &LogLimiter,
) {
    let wall = SystemTime::now();
    for p in &changes.gone {
        sent.remove(p);
        written.0.remove(p);
    }
    let mut columns = Vec::with_capacity(changes.columns.len());
    for (col, again) in changes.columns {
        let status = crate::status::discovery_status(&col, LIFETIME, wall, task.max_value_chars);
        // A hash of what was sent, not the text: a copy of every column's body would cost as much as
        // the columns themselves.
        let seen = {
            let mut h = std::hash::DefaultHasher::new();
            (status.colour, &status.body).hash(&mut h);
            h.finish()
        };
        let place = (col.host.clone(), col.column.clone());
        if again || sent.get(&place) != Some(&seen) {
            sent.insert(place, seen);
            task.outbox.put(status);
        }
        columns.push(col);
    }
    if let Some(rrd) = &task.rrd {
        written.write(rrd, &task.plan.rrd, &columns, &task.metrics, log_limit);
    }
    task.board.update(task.index, columns, &changes.gone);
}

/// When each RRD file last got a value (the value's own time), by column and file, so each value is
/// written once.
#[derive(Default)]
struct Written(HashMap<Place, HashMap<String, SystemTime>>);

impl Written {
    /// Queues the values that came since the last check of the numeric sensors `choice` takes in
    /// `columns` (those that changed), one sample per file (the latest). A column's files are those of its
    /// entities now, so files of entities gone are forgotten, and a column gone is dropped with it
    /// (`send_changes`): this stays as large as the block. A full queue is counted
    /// (`dropped{reason="rrd_queue_full"}`) and logged, rate-limited.
    fn write(
        &mut self,
        rrd: &RrdWriter,
        choice: &crate::discovery::RrdChoice,
        columns: &[crate::discovery::ColumnView],
        metrics: &Metrics,
        log_limit: &LogLimiter,
    ) {
        for col in columns {
            let place = (col.host.clone(), col.column.clone());
            let before = self.0.remove(&place).unwrap_or_default();
            let mut now = HashMap::with_capacity(before.len());
            for e in &col.entities {
                let (Some(value), Some(updated)) = (&e.value, e.updated) else {
                    continue;
                };
                let number = value.parse::<f64>().ok().filter(|v| v.is_finite());
                let (Some(number), true) = (
                    number,
                    e.key.component == crate::discovery::Component::Sensor
                        && choice.wants(e.device_class.as_deref()),
                ) else {
                    continue;
                };
                let file = crate::discovery::rrd_name(col.column.as_str(), &e.key);
                if before.get(&file) != Some(&updated) {
                    let sample = RrdSample {
                        host: col.host.to_string(),
                        rrd: file.clone(),
                        time: unix_secs(updated),
                        values: vec![number],
                    };
                    if !rrd.submit(sample) {
                        metrics.count_drop("rrd_queue_full");
                        if log_limit.allow("discovery_rrd_queue") {
                            warn!(host = %col.host, rrd = %file, "RRD queue full; discovered value not written");
                        }
                    }
                }
                now.insert(file, updated);
            }
            if !now.is_empty() {
                self.0.insert(place, now);
            }
        }
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
