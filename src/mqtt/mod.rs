//! MQTT ingest: one task per broker owns its session (MQTT 5 or 3.1.1); snapshot sessions on request.
//!
//! Fed by the broker; writes every message into the `Store` and forwards the ones some test wants to the
//! collector as `Sample`s over a bounded channel. The store's lookup tells whether a topic is one of the
//! configured exact topics (registered at start-up, with the collector's route); only otherwise are the
//! rule filters of `Wanted` tried. Connection handling: the permanent subscriptions re-issued on every
//! ConnAck (a clean session forgets them, rumqtt#250), one log line per connect and per disconnect, and
//! capped exponential backoff between failed attempts, except that a connection lost after it had been
//! up (a keep-alive timeout, a broker that stalled) is retried at once with the backoff started over,
//! and an attempt that timed out is repeated at once (its wait paced it), so a broker that answers
//! again has data flowing within seconds whatever `reconnect_max` is. A filter the broker refuses in its
//! SUBACK is logged, counted, shown in the store (the API) and told to the collector (the statuses).
//! Nothing here waits on xymond or on disk.
//!
//! - `session`: either protocol's client behind one interface (`Client`, `Events`, `SessionEvent`).
//! - `connection`: client options for a broker.
//! - `subscriptions`: what a session subscribes to and forwards (`Wanted`).
//! - `granted`: the permanent subscriptions sent in chunks, and what the SUBACKs grant and refuse.
//! - `snapshot`: short-lived sessions that fetch retained values for the collector's periodic tests.
//! - `discovery`: one session per `[[discovery]]` block: Home Assistant announcements, their entities'
//!   topics subscribed as they come, device statuses into the outbox.
//! - `steer`: a reload holding a session and resuming it with its new id and subscriptions.

mod connection;
pub mod discovery;
mod granted;
mod reader;
mod session;
pub mod snapshot;
pub mod steer;
mod subscriptions;

pub use connection::{open, Connection, CONNECT_TIMEOUT};
pub use session::{Client, Events};
pub use subscriptions::{Wanted, SUBSCRIBE_CHUNK};

use crate::backoff::Backoff;
use crate::collect::{Refusal, Sample};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::names::BrokerId;
use crate::store::{Incoming, Rejected, Store};
use bytes::Bytes;
use granted::{on_suback, subscribe_next, Subscribing};
use session::SessionEvent;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Payload bytes queued between ingest and the collector at most, across all sessions (besides the
/// queue's count of samples). A larger single message still passes, alone.
pub const SAMPLE_QUEUE_BYTES: u32 = 64 << 20;

/// What one broker task needs.
pub struct BrokerTask {
    pub id: BrokerId,
    pub name: String,
    pub client: Client,
    pub events: Events,
    /// Topics the collector wants to see (continuous tests' topics and rule filters), subscribed on every
    /// ConnAck.
    pub wanted: Arc<Wanted>,
    pub reconnect_max: Duration,
    /// A connection lost after at least this long had proved itself: the next attempt goes at once.
    pub keep_alive: Duration,
    /// Reloads: hold the session, then resume it renumbered or stop it (`steer`).
    pub steer: mpsc::Receiver<steer::Hold>,
}

/// Shared pieces every broker task uses.
pub struct Shared {
    pub store: Store,
    pub samples: mpsc::Sender<Sample>,
    /// The byte budget of the sample queue, shared by every session: a sample holds a permit per byte
    /// of its payload (at most the whole budget) until the collector has done with it.
    pub sample_bytes: Arc<Semaphore>,
    /// Filters the broker refuses (or grants again), for the tests' statuses.
    pub refusals: mpsc::Sender<Refusal>,
    pub metrics: Arc<Metrics>,
    pub log_limit: Arc<LogLimiter>,
}

/// Polls the broker until `cancel`; reconnects forever with backoff.
pub async fn run(mut task: BrokerTask, shared: Shared, cancel: CancellationToken) {
    let label = Metrics::broker(&task.name);
    let messages = shared.metrics.messages.get_or_create(&label).clone();
    let connected_gauge = shared.metrics.connected.get_or_create(&label).clone();
    let mut backoff = Backoff::new(Duration::from_secs(1), task.reconnect_max);
    // Since when the current connection is up.
    let mut connected: Option<Instant> = None;
    let mut subs = Subscribing::default();
    // One warning per outage; the retries in between are debug lines.
    let mut outage_logged = false;
    // Created once: a fresh `cancelled()` in every select! would register with (and leave) the token's
    // waiter list, under its mutex, for every message.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let event = tokio::select! {
            _ = &mut cancelled => break,
            Some(h) = task.steer.recv() => {
                match steer::hold(&mut task, &shared, h, &mut subs, connected.is_some()).await {
                    steer::Held::Resumed => continue,
                    steer::Held::Stop => break,
                }
            }
            event = task.events.poll() => event,
        };
        match event {
            Ok(SessionEvent::Message(m)) => {
                let Some(topic) = m.topic.as_str() else {
                    shared.metrics.count_drop("topic_not_utf8");
                    continue;
                };
                messages.inc();
                let origin = Origin {
                    id: task.id,
                    name: &task.name,
                    wanted: &task.wanted,
                };
                handle_publish(origin, &shared, topic, m.payload, m.qos, m.retain).await;
            }
            Ok(SessionEvent::Connected { session_present }) => {
                info!(broker = %task.name, session_present, "connected to MQTT broker");
                connected = Some(Instant::now());
                outage_logged = false;
                connected_gauge.set(1);
                shared.store.set_connected(task.id, true, None);
                subs.sent = 0;
                subs.logged = 0;
                if task.wanted.subscription_count() == 0 {
                    shared.store.set_subscribed(task.id);
                }
                subscribe_next(&task, &shared.store, &mut subs);
            }
            Ok(SessionEvent::SubAck(codes)) => {
                let origin = Origin {
                    id: task.id,
                    name: &task.name,
                    wanted: &task.wanted,
                };
                on_suback(origin, &shared, &mut subs, codes).await;
                if subs.sent < task.wanted.subscription_count() {
                    debug!(broker = %task.name, done = subs.sent, "subscription packet acknowledged");
                    subscribe_next(&task, &shared.store, &mut subs);
                } else if subs.refused.is_empty() {
                    debug!(broker = %task.name, "subscribed");
                    shared.store.set_subscribed(task.id);
                } else {
                    warn!(broker = %task.name, refused = subs.refused.len(), of = subs.sent,
                        "the broker refused some subscriptions; the tests that read them say so");
                }
            }
            Ok(_) => {}
            Err(e) => {
                if connected.is_some() {
                    warn!(broker = %task.name, error = %e.message, "disconnected from MQTT broker; reconnecting");
                } else if !outage_logged {
                    warn!(broker = %task.name, error = %e.message, "cannot connect to MQTT broker; retrying with backoff");
                } else {
                    debug!(broker = %task.name, error = %e.message, "still cannot connect to MQTT broker");
                }
                outage_logged = true;
                // A connection that had proved itself (up for a keep-alive period at least) was lost to
                // a stall or a restart: try again at once, and back off from the start. One that drops
                // at once (a broker closing it, another client taking our id) backs off as before. An
                // attempt that timed out waited its timeout already.
                let proven = connected.is_some_and(|at| at.elapsed() >= task.keep_alive);
                if proven {
                    backoff.reset();
                }
                let delay = if proven || e.timed_out {
                    Duration::ZERO
                } else {
                    backoff.next_delay()
                };
                shared.store.set_connected(task.id, false, Some(e.message));
                connected = None;
                connected_gauge.set(0);
                if !delay.is_zero()
                    && steer::backoff(&mut task, &shared, &mut subs, delay, cancelled.as_mut())
                        .await
                {
                    break;
                }
            }
        }
    }
    if connected.is_some() {
        // Say goodbye so the broker does not publish our will or wait for the keep-alive to expire; a
        // kept session stays at the broker until it expires.
        task.client.disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(ev) = task.events.poll().await {
                if matches!(ev, SessionEvent::Disconnecting) {
                    break;
                }
            }
        })
        .await;
        shared.store.set_connected(task.id, false, None);
        connected_gauge.set(0);
    }
    info!(broker = %task.name, "MQTT ingest stopped");
}

/// The parts of a `BrokerTask` that publish and SUBACK handling read (the event loop itself is not
/// `Sync`).
struct Origin<'a> {
    id: BrokerId,
    name: &'a str,
    wanted: &'a Wanted,
}

async fn handle_publish(
    task: Origin<'_>,
    shared: &Shared,
    topic: &str,
    payload: Bytes,
    qos: u8,
    retain: bool,
) {
    let at = SystemTime::now();
    let incoming = Incoming {
        topic,
        payload: &payload,
        qos,
        retained: retain,
        at,
    };
    if payload.len() > shared.store.max_payload() {
        // Kept, but cut: the status shows the cut; the log says it once per topic per minute.
        shared.metrics.count_drop("payload_cut");
        if shared.log_limit.allow(topic) {
            warn!(broker = %task.name, topic = %topic, bytes = payload.len(), kept = shared.store.max_payload(),
                "payload larger than limits.max_payload_bytes; keeping the start of it");
        }
    }
    // The one hash lookup of this message: stores it and, for a configured topic, yields its shared name
    // and the collector's route.
    let ingested = shared.store.ingest(task.id, &incoming, None);
    match ingested.stored {
        Err(Rejected::Full) => {
            shared.metrics.count_drop("store_full");
            if shared.log_limit.allow("store_full") {
                warn!(broker = %task.name, topic = %topic, "topic store is full (limits.max_topics); new topics are not stored");
            }
        }
        Err(Rejected::Budget) => {
            shared.metrics.count_drop("store_budget");
            if shared.log_limit.allow("store_budget") {
                warn!(broker = %task.name, topic = %topic, bytes = payload.len(),
                    "the message does not fit in limits.store_bytes even after evicting every topic no configured test reads; not stored");
            }
        }
        // Counted by the store (`store_refused_messages`); the collector counts why, per rule.
        Err(Rejected::Refused) | Ok(_) => {}
    }
    let (topic, route) = match ingested.registered {
        Some((name, route)) => (name, Some(route)),
        // The store's copy of the name; a copy of our own only when the store refused a new topic.
        None if task.wanted.matches_filter(topic) => {
            (ingested.name.unwrap_or_else(|| Arc::from(topic)), None)
        }
        None => return,
    };
    // The queue is bounded in bytes as well as in samples: 4,096 messages of up to 256 MiB each would be
    // no bound. Waiting here is backpressure like a full queue; a closed budget only happens at the stop.
    let share = u32::try_from(payload.len().min(SAMPLE_QUEUE_BYTES as usize)).unwrap_or(u32::MAX);
    let Ok(queued) = shared.sample_bytes.clone().acquire_many_owned(share).await else {
        return;
    };
    let sample = Sample {
        broker: task.id,
        topic,
        route,
        payload,
        retained: retain,
        at,
        queued: Some(queued),
    };
    // Backpressure, not loss: the collector is pure in-memory work, so this only waits if it is busy, and
    // the broker then holds the messages for us as it would for any slow subscriber.
    if shared.samples.send(sample).await.is_err() {
        debug!("collector has stopped; sample not forwarded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    /// Broker 0 has the exact topic `room/t` registered and a rule filter `sensors/+/env`; broker 1 has
    /// nothing.
    fn setup() -> (Store, Wanted, Arc<str>) {
        let store = Store::new(
            &[
                ("a".into(), "mqtt://a".into()),
                ("b".into(), "mqtt://b".into()),
            ],
            100,
            1024,
        );
        let name: Arc<str> = Arc::from("room/t");
        let mut wanted = Wanted::default();
        for (topic, qos) in [
            (Arc::from("other/x"), QoS::AtMostOnce),
            (name.clone(), QoS::AtLeastOnce),
            // A second test wanting the same topic at a lower QoS: same route, QoS kept.
            (Arc::from("room/t"), QoS::AtMostOnce),
        ] {
            let route = store.register(0, topic).unwrap();
            wanted.want_exact(route, qos);
        }
        wanted
            .filters
            .push(crate::filter::TopicFilter::parse("sensors/{host}/env").unwrap());
        wanted
            .filter_subscriptions
            .push(("sensors/+/env".into(), QoS::AtMostOnce));
        (store, wanted, name)
    }

    /// Publishes `topic` on `broker` through `handle_publish`; returns the sample the collector got.
    async fn publish(
        store: &Store,
        wanted: &Wanted,
        broker: BrokerId,
        topic: &str,
    ) -> Option<Sample> {
        let (tx, mut rx) = mpsc::channel(4);
        let shared = Shared {
            store: store.clone(),
            samples: tx,
            sample_bytes: Arc::new(Semaphore::new(SAMPLE_QUEUE_BYTES as usize)),
            refusals: mpsc::channel(1).0,
            metrics: Arc::new(Metrics::new()),
            log_limit: Arc::new(LogLimiter::new(Duration::from_secs(60))),
        };
        let origin = Origin {
            id: broker,
            name: "t",
            wanted,
        };
        let payload = Bytes::from_static(b"42");
        handle_publish(origin, &shared, topic, payload, 0, false).await;
        rx.try_recv().ok()
    }

    /// A configured topic reaches the collector with its route and the registered copy of its name; a
    /// filter topic without a route; anything else only goes into the store. Broker 1 does not share
    /// broker 0's topics.
    /// A sample holds a share of the queue's byte budget equal to its payload until the collector drops
    /// it; while the budget is spent, ingest waits (backpressure), and goes on once a sample is done.
    #[tokio::test]
    async fn samples_hold_their_bytes_of_the_queue_budget() {
        let (store, wanted, _) = setup();
        let (tx, mut rx) = mpsc::channel(4);
        let budget = Arc::new(Semaphore::new(SAMPLE_QUEUE_BYTES as usize));
        let shared = Shared {
            store: store.clone(),
            samples: tx,
            sample_bytes: budget.clone(),
            refusals: mpsc::channel(1).0,
            metrics: Arc::new(Metrics::new()),
            log_limit: Arc::new(LogLimiter::new(Duration::from_secs(60))),
        };
        let origin = || Origin {
            id: 0,
            name: "t",
            wanted: &wanted,
        };
        let full = SAMPLE_QUEUE_BYTES as usize;
        handle_publish(
            origin(),
            &shared,
            "room/t",
            Bytes::from(vec![b'1'; 1000]),
            0,
            false,
        )
        .await;
        assert_eq!(budget.available_permits(), full - 1000);
        // Larger than the whole budget: it takes all of it, and passes alone.
        let big = Bytes::from(vec![b'2'; full + 1]);
        let waiting = handle_publish(origin(), &shared, "room/t", big, 0, false);
        tokio::pin!(waiting);
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "waits while 1000 bytes are queued"
        );
        let first = rx.recv().await.expect("the first sample");
        drop(first);
        waiting.await;
        assert_eq!(budget.available_permits(), 0);
        drop(rx.recv().await.expect("the large sample"));
        assert_eq!(budget.available_permits(), full);
    }

    #[tokio::test]
    async fn ingest_hands_the_collector_the_route_and_the_shared_name() {
        let (store, wanted, name) = setup();
        let s = publish(&store, &wanted, 0, "room/t")
            .await
            .expect("forwarded");
        assert_eq!(s.route, Some(1));
        assert!(Arc::ptr_eq(&s.topic, &name));
        assert_eq!(store.get(0, "room/t").unwrap().payload.as_ref(), b"42");

        let s = publish(&store, &wanted, 0, "sensors/h1/env")
            .await
            .expect("forwarded");
        assert_eq!((&*s.topic, s.route), ("sensors/h1/env", None));
        // A filter topic's samples share the store's copy of the name: no copy per message.
        let again = publish(&store, &wanted, 0, "sensors/h1/env")
            .await
            .expect("forwarded");
        assert!(Arc::ptr_eq(&s.topic, &again.topic));

        assert!(publish(&store, &wanted, 0, "nobody/wants").await.is_none());
        assert!(
            store.get(0, "nobody/wants").is_some(),
            "stored all the same"
        );

        let empty = Wanted::default();
        assert!(publish(&store, &empty, 1, "room/t").await.is_none());
        assert!(store.get(1, "room/t").is_some());
        assert_eq!(store.topic_count(), 4);
    }

    #[test]
    fn subscriptions_are_filters_then_registered_topics_at_their_highest_qos() {
        let (store, wanted, _) = setup();
        assert_eq!(wanted.subscription_count(), 3);
        let all: Vec<(String, QoS)> = (0..3)
            .flat_map(|i| wanted.subscriptions(&store, 0, i, 1))
            .collect();
        assert_eq!(
            all,
            [
                ("sensors/+/env".to_string(), QoS::AtMostOnce),
                ("other/x".to_string(), QoS::AtMostOnce),
                ("room/t".to_string(), QoS::AtLeastOnce),
            ]
        );
        assert_eq!(wanted.subscriptions(&store, 0, 1, 500).len(), 2);
        assert!(wanted.subscriptions(&store, 0, 3, 500).is_empty());
        assert_eq!(
            wanted.subscriptions(&store, 1, 0, 500).len(),
            1,
            "the names come from the broker given, which has none"
        );
    }
}
