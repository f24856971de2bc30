//! Home Assistant discovery sessions: one MQTT session per `[[discovery]]` block, subscribed to
//! `<prefix>/#` and to the state and availability topics of the entities announced there, turning
//! devices into Xymon statuses.
//!
//! Spawned by the supervisor next to the ingest tasks, with the broker's connection settings and its
//! own client id (`<client_id>-discovery<N>`), so its subscriptions, which change as entities come and
//! go, never mix with the permanent ones of the ingest session. A reader task (`mqtt::reader`) drains
//! its socket into a queue bounded by bytes, so the broker's burst of retained announcements at
//! subscribe time is taken in full while the state works through it, in batches under one lock. Owns
//! the block's `discovery::DiscoveryState`.
//!
//! At each check (`CHECK_EVERY`) it takes the columns that changed, plus a share of the others so
//! that every column comes out each `RESEND_EVERY` (never all at once: 10,000 columns at once would
//! stall the session). A column's status (`status::discovery_status`) goes into the outbox when its
//! turn comes, when something other than a value changed (an announcement, availability, a template
//! error, a value turning stale), or when new values change its colour; values alone that keep the
//! colour wait for the turn, as a rule's statuses wait for its interval. The state is attached to the
//! `discovery::Board`, from which the dashboard lists the devices with their latest values. With
//! `rrd`/`rrd_classes`, the latest value of each numeric sensor that changed goes to the RRD writer at
//! each check (`<host>/<column>.<object_id>.rrd`, the `value` layout).
//! Refused announcements and template errors are counted (`xymon_mqtt_dropped_total`, reasons
//! `discovery_refused`, `discovery_template`) and logged, rate-limited. Subscriptions asked for while
//! the request queue is full wait for the next check; on every ConnAck all of them are sent again.

use super::connection::{open, Connection};
use super::reader;
use super::session::{Client, SessionError, SessionEvent};
use super::SUBSCRIBE_CHUNK;
use crate::colour::Colour;
use crate::discovery::{
    lock, Board, ColumnView, DiscoveryPlan, DiscoveryState, Place, SharedState, Why,
};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::rrd::{RrdSample, RrdWriter};
use crate::xymon::Outbox;
use rumqttc::QoS;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
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
    /// Where the state is listed for the dashboard, under `index`.
    pub board: Board,
    /// The RRD writer, when the block writes RRDs (`rrd`, `rrd_classes`).
    pub rrd: Option<RrdWriter>,
}

/// Events handled per turn of the loop (one lock of the state for all of them).
const BATCH: usize = 256;
/// Columns built and sent per turn of a check (`send_columns`).
pub const COLUMNS_PER_TURN: usize = 256;

/// Runs the session until `cancel`; reconnects with backoff (the reader's).
pub async fn run(task: DiscoveryTask, cancel: CancellationToken) {
    let id = format!("{}-discovery{}", task.connection.client_id, task.index);
    let (client, events) = open(&task.connection, id, false);
    let state: SharedState = Arc::new(Mutex::new(DiscoveryState::new(task.plan.clone())));
    task.board.attach(task.index, state.clone());
    let reading = cancel.child_token();
    let mut queue = reader::spawn(events, task.reconnect_max, reading.clone());
    let _stop_reader = reading.drop_guard();
    let mut session = Session {
        task: &task,
        client: &client,
        log_limit: LogLimiter::new(Duration::from_secs(60)),
        pending: Vec::new(),
    };
    let mut sent: HashMap<u64, Colour> = HashMap::new();
    let mut written = Written::default();
    let mut check = tokio::time::interval(CHECK_EVERY);
    let shares = (RESEND_EVERY.as_secs() / CHECK_EVERY.as_secs()) as usize;
    let mut batch = Vec::with_capacity(BATCH);
    let mut trim = crate::heap::AfterBurst::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = check.tick() => {
                flush(&client, &mut session.pending);
                let due = lock(&state).take_due(Instant::now(), shares);
                forget_gone(&due.gone, &mut sent, &mut written);
                // Built and sent a few at a time: the first check after start-up takes every column,
                // and a column being built holds about 1.8 kB (BENCHMARKS.md, scenario 10); the
                // state's lock is let go between them, for the dashboard.
                for chunk in due.places.chunks(COLUMNS_PER_TURN) {
                    let columns: Vec<_> = {
                        let state = lock(&state);
                        let (now, wall) = (Instant::now(), SystemTime::now());
                        chunk
                            .iter()
                            .filter_map(|(p, why)| Some((state.column_at(p, now, wall)?, *why)))
                            .collect()
                    };
                    send_columns(&task, columns, &mut sent, &mut written, &session.log_limit);
                }
                // A burst (the announcements, a fleet reconnecting) passed through the queue and the
                // parsers: malloc keeps what they freed, scattered between what the state keeps, and
                // hands it back only when asked. Measured after 10,000 devices announced and published:
                // 19 MB of 78 MB.
                if queue.is_empty() {
                    trim.look();
                }
            }
            n = queue.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                let mut state = lock(&state);
                for read in batch.drain(..) {
                    if let Ok(SessionEvent::Message(m)) = &read.event {
                        trim.handled(m.payload.len() + m.topic.byte_len());
                    }
                    session.handle(&mut state, read.event);
                }
            }
        }
    }
    client.disconnect();
}

/// What handling one event needs besides the state.
struct Session<'a> {
    task: &'a DiscoveryTask,
    client: &'a Client,
    log_limit: LogLimiter,
    /// Topics to subscribe to, sent in chunks.
    pending: Vec<String>,
}

impl Session<'_> {
    fn handle(&mut self, state: &mut DiscoveryState, event: Result<SessionEvent, SessionError>) {
        let name = &self.task.connection.name;
        match event {
            Ok(SessionEvent::Message(m)) => {
                let Some(topic) = m.topic.as_str() else {
                    return;
                };
                let out = state.offer(
                    topic,
                    &m.payload,
                    m.retain,
                    Instant::now(),
                    SystemTime::now(),
                );
                if let Some(reason) = &out.refused {
                    self.task.metrics.count_drop("discovery_refused");
                    if self.log_limit.allow("discovery_refused") {
                        warn!(broker = %name, reason = %reason, "discovery announcement refused");
                    }
                }
                if out.template_errors > 0 {
                    self.task.metrics.count_drop("discovery_template");
                    if self.log_limit.allow("discovery_template") {
                        debug!(broker = %name, topic = %topic, "discovery template failed");
                    }
                }
                for t in out.unsubscribe {
                    self.pending.retain(|p| *p != t);
                    let _ = self.client.unsubscribe(t);
                }
                self.pending.extend(out.subscribe);
                if self.pending.len() >= SUBSCRIBE_CHUNK {
                    flush(self.client, &mut self.pending);
                }
            }
            Ok(SessionEvent::Connected { .. }) => {
                info!(broker = %name, prefix = %state.plan().prefix, "discovery session connected");
                self.pending = std::iter::once(state.config_filter())
                    .chain(state.topics())
                    .collect();
                flush(self.client, &mut self.pending);
            }
            Ok(SessionEvent::SubAck(codes)) => {
                for c in codes.iter().filter_map(|c| c.as_ref().err()) {
                    if self.log_limit.allow("discovery_suback") {
                        warn!(broker = %name, reason = %c, "the broker refused a discovery subscription");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if self.log_limit.allow("discovery_connect") {
                    warn!(broker = %name, error = %e.message, "discovery session disconnected; reconnecting");
                }
            }
        }
    }
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

/// Forgets what was sent and written for columns that are gone.
fn forget_gone(gone: &[Place], sent: &mut HashMap<u64, Colour>, written: &mut Written) {
    for p in gone {
        sent.remove(&hash(p));
        written.0.remove(p);
    }
}

/// Puts the statuses of the columns taken into the outbox when their text changed or their turn came
/// (see `Why`), and their new values into the RRD writer.
fn send_columns(
    task: &DiscoveryTask,
    changed: Vec<(ColumnView, Why)>,
    sent: &mut HashMap<u64, Colour>,
    written: &mut Written,
    log_limit: &LogLimiter,
) {
    let wall = SystemTime::now();
    let mut columns = Vec::with_capacity(changed.len());
    for (col, why) in changed {
        // Keyed by a hash of the column: a copy of every column's name would cost as much as a column.
        let place = hash(&(&col.host, &col.column));
        // Values alone send the column when they change its colour; the status is built only then.
        if why != Why::Value || sent.get(&place) != Some(&col.colour) {
            sent.insert(place, col.colour);
            let status =
                crate::status::discovery_status(&col, LIFETIME, wall, task.max_value_chars);
            task.outbox.put(status);
        }
        columns.push(col);
    }
    if let Some(rrd) = &task.rrd {
        written.write(rrd, &task.plan.rrd, &columns, &task.metrics, log_limit);
    }
}

fn hash(v: &impl Hash) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// When each RRD file last got a value (the value's own time), by column and file, so each value is
/// written once.
#[derive(Default)]
struct Written(HashMap<Place, HashMap<String, SystemTime>>);

impl Written {
    /// Queues the values that came since the last check of the numeric sensors `choice` takes in
    /// `columns` (those that changed), one sample per file (the latest). A column's files are those of its
    /// entities now, so files of entities gone are forgotten, and a column gone is dropped with it
    /// (`forget_gone`): this stays as large as the block. A full queue is counted
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
