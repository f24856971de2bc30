//! The outbox: the latest undelivered status of every host.test, plus each test's delivery state.
//!
//! Fed by the collector (`put`, never blocks on the network); drained by the xymon sender; read by the
//! web layer (`tests`). A status is a state, not an event: when xymond is away only the newest status of
//! each host.test matters, so the outbox holds at most one per key and memory is bounded by the number of
//! configured (or discovered) tests. It also keeps the sender's delivery health (`failing`) and how long
//! statuses have waited without the sender taking any (`stalled`), for `/healthz`.

use super::message::Status;
use crate::colour::Colour;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Room for pending statuses the map keeps once they are all taken (it gives back more than that).
const PENDING_ROOM_KEPT: usize = 1024;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for the sender (or for xymond to come back).
    Pending,
    /// xymond read it to EOF.
    Delivered,
    /// The last attempt failed, with the reason; it is retried with backoff.
    Failing(String),
}

/// What the bridge last said for one host.test, and whether xymond has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestDelivery {
    pub host: String,
    pub test: String,
    pub colour: Colour,
    /// The full message as sent (or to be sent); the same text the pending queue holds.
    pub message: Arc<str>,
    pub updated_at: SystemTime,
    pub delivered_at: Option<SystemTime>,
    pub delivery: DeliveryState,
}

/// What the outbox keeps per host.test: a `TestDelivery` without the names, which its key holds (a test
/// name never contains a dot, so the last dot of `host.test` splits them).
#[derive(Debug, Clone)]
struct Entry {
    colour: Colour,
    message: Arc<str>,
    updated_at: SystemTime,
    delivered_at: Option<SystemTime>,
    delivery: DeliveryState,
}

impl Entry {
    fn delivery(&self, key: &str) -> TestDelivery {
        let (host, test) = key.rsplit_once('.').unwrap_or((key, ""));
        TestDelivery {
            host: host.to_string(),
            test: test.to_string(),
            colour: self.colour,
            message: self.message.clone(),
            updated_at: self.updated_at,
            delivered_at: self.delivered_at,
            delivery: self.delivery.clone(),
        }
    }
}

/// The sender's own delivery health: failing since the first of an unbroken run of failed deliveries,
/// until the next one that succeeds (whichever tests the batches held).
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    pub since: Instant,
    pub since_wall: SystemTime,
    /// The latest failure.
    pub error: String,
}

#[derive(Default)]
struct State {
    /// Wire texts waiting for the sender, shared with `tests` (a status is formatted once).
    pending: HashMap<String, Arc<str>>,
    /// Boxed: keys are inserted in order (a fleet's hosts appear in turn), which leaves the map's nodes
    /// about half full, and a half-empty node of 11 boxes wastes far less than one of 11 entries.
    tests: BTreeMap<String, Box<Entry>>,
    failing: Option<Failing>,
    /// Since when something has been pending without the sender taking anything.
    waiting_since: Option<Instant>,
}

pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    /// Woken when deliveries start failing (the first failure after a success), for the bridge's own
    /// column, which then says so at once instead of asking every second.
    failing_begins: Notify,
    /// Keys (`host.test`) whose status or delivery state changed, for watchers (the web layer). Sent only
    /// while someone subscribes.
    changes: tokio::sync::broadcast::Sender<String>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            state: Mutex::default(),
            notify: Notify::new(),
            failing_begins: Notify::new(),
            changes: tokio::sync::broadcast::channel(256).0,
        }
    }
}

/// A batch taken for delivery: keys and their wire text.
pub struct Batch {
    pub items: Vec<(String, Arc<str>)>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches status and delivery changes (the `host.test` key, sent after the change is visible).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn changed<'a>(&self, keys: impl IntoIterator<Item = &'a String>) {
        if self.changes.receiver_count() > 0 {
            for key in keys {
                let _ = self.changes.send(key.clone());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this file; the state stays usable, so carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `status`, replacing any undelivered older status of the same host.test.
    pub fn put(&self, status: Status) {
        let key = status.key();
        let wire: Arc<str> = Arc::from(status.to_wire());
        {
            let mut st = self.lock();
            let delivered_at = st.tests.get(&key).and_then(|t| t.delivered_at);
            st.tests.insert(
                key.clone(),
                Box::new(Entry {
                    colour: status.colour,
                    message: wire.clone(),
                    updated_at: SystemTime::now(),
                    delivered_at,
                    delivery: DeliveryState::Pending,
                }),
            );
            st.pending.insert(key.clone(), wire);
            st.waiting_since.get_or_insert_with(Instant::now);
        }
        self.changed([&key]);
        self.notify.notify_one();
    }

    /// Takes up to `max` pending statuses for one delivery.
    pub fn take(&self, max: usize) -> Batch {
        let mut st = self.lock();
        let keys: Vec<String> = st.pending.keys().take(max).cloned().collect();
        let items: Vec<_> = keys
            .into_iter()
            .filter_map(|k| st.pending.remove(&k).map(|s| (k, s)))
            .collect();
        if !items.is_empty() {
            st.waiting_since = (!st.pending.is_empty()).then(Instant::now);
        }
        // A map keeps the room it grew to; after a burst (a fleet's first statuses, xymond back after
        // an outage) that is a slot for every test, empty until the next burst.
        if st.pending.is_empty() && st.pending.capacity() > PENDING_ROOM_KEPT {
            st.pending.shrink_to(PENDING_ROOM_KEPT);
        }
        Batch { items }
    }

    /// Marks a batch delivered.
    pub fn delivered(&self, batch: &Batch) {
        let now = SystemTime::now();
        let mut st = self.lock();
        st.failing = None;
        for (key, _) in &batch.items {
            // A newer status may have been queued meanwhile; it stays pending.
            if st.pending.contains_key(key) {
                continue;
            }
            if let Some(t) = st.tests.get_mut(key) {
                t.delivery = DeliveryState::Delivered;
                t.delivered_at = Some(now);
            }
        }
        drop(st);
        self.changed(batch.items.iter().map(|(k, _)| k));
    }

    /// Puts a failed batch back, unless a newer status of the same host.test arrived meanwhile.
    pub fn failed(&self, batch: Batch, reason: &str) {
        let keys: Vec<String> = batch.items.iter().map(|(k, _)| k.clone()).collect();
        let mut st = self.lock();
        match &mut st.failing {
            Some(f) => reason.clone_into(&mut f.error),
            None => {
                st.failing = Some(Failing {
                    since: Instant::now(),
                    since_wall: SystemTime::now(),
                    error: reason.to_string(),
                });
                self.failing_begins.notify_one();
            }
        }
        for (key, wire) in batch.items {
            if let Some(t) = st.tests.get_mut(&key) {
                t.delivery = DeliveryState::Failing(reason.to_string());
            }
            st.pending.entry(key).or_insert(wire);
        }
        if !st.pending.is_empty() {
            st.waiting_since.get_or_insert_with(Instant::now);
        }
        drop(st);
        self.changed(&keys);
    }

    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Since when deliveries fail, and the latest error; `None` once one succeeds again.
    pub fn failing(&self) -> Option<Failing> {
        self.lock().failing.clone()
    }

    /// Resolves when deliveries have started failing since the last call (a run of failures wakes it
    /// once, at its first failure).
    pub async fn failing_begins(&self) {
        self.failing_begins.notified().await;
    }

    /// How long statuses have been pending without the sender taking any; `None` when nothing is pending.
    pub fn stalled(&self) -> Option<Duration> {
        self.lock().waiting_since.map(|t| t.elapsed())
    }

    /// Every host.test the bridge has reported, sorted by key.
    pub fn tests(&self) -> Vec<TestDelivery> {
        self.lock()
            .tests
            .iter()
            .map(|(key, e)| e.delivery(key))
            .collect()
    }

    /// Resolves when something may have been queued since the last call.
    pub async fn wait(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{HostName, TestName};
    use std::time::Duration;

    fn status(host: &str, colour: Colour, text: &str) -> Status {
        Status {
            host: HostName::try_from(host.to_string()).unwrap(),
            test: TestName::try_from("t".to_string()).unwrap(),
            colour,
            lifetime: Duration::from_secs(600),
            summary: text.into(),
            body: String::new(),
        }
    }

    #[test]
    fn keeps_only_the_latest_per_test() {
        let o = Outbox::new();
        o.put(status("a", Colour::Green, "1"));
        o.put(status("a", Colour::Red, "2"));
        o.put(status("b", Colour::Green, "3"));
        assert_eq!(o.pending(), 2);
        let batch = o.take(10);
        let a = batch.items.iter().find(|(k, _)| k == "a.t").unwrap();
        assert_eq!(&*a.1, status("a", Colour::Red, "2").to_wire());
        assert_eq!(o.pending(), 0);
    }

    /// After a burst is taken, the pending map does not keep a slot for every test it held.
    #[test]
    fn pending_room_goes_back_once_a_burst_is_taken() {
        let o = Outbox::new();
        for i in 0..5000 {
            o.put(status(&format!("h{i}"), Colour::Green, "x"));
        }
        assert!(o.lock().pending.capacity() >= 5000);
        let mut taken = 0;
        loop {
            let batch = o.take(1000);
            if batch.items.is_empty() {
                break;
            }
            taken += batch.items.len();
            o.delivered(&batch);
        }
        assert_eq!(taken, 5000);
        assert!(o.lock().pending.capacity() < 2 * PENDING_ROOM_KEPT);
        assert_eq!(o.tests().len(), 5000, "the tests themselves stay");
        o.put(status("h1", Colour::Red, "y"));
        assert_eq!(o.take(10).items.len(), 1);
    }

    #[test]
    fn failed_batch_is_retried_but_never_overrides_a_newer_status() {
        let o = Outbox::new();
        o.put(status("a", Colour::Green, "old"));
        o.put(status("b", Colour::Green, "b"));
        let batch = o.take(10);
        o.put(status("a", Colour::Red, "new"));
        o.failed(batch, "connection refused");
        assert_eq!(o.pending(), 2);
        let again = o.take(10);
        let a = again.items.iter().find(|(k, _)| k == "a.t").unwrap();
        assert_eq!(&*a.1, status("a", Colour::Red, "new").to_wire());
        let states: Vec<_> = o.tests().into_iter().map(|t| t.delivery).collect();
        assert!(states
            .iter()
            .all(|s| matches!(s, DeliveryState::Failing(r) if r == "connection refused")));
        o.delivered(&again);
        assert!(o
            .tests()
            .iter()
            .all(|t| t.delivery == DeliveryState::Delivered && t.delivered_at.is_some()));
    }

    /// The sender's health follows the deliveries, not the tests: failing from the first failure on,
    /// whatever newer statuses replace the failed ones, until a delivery succeeds.
    #[tokio::test(start_paused = true)]
    async fn failing_lasts_until_a_delivery_succeeds() {
        let o = Outbox::new();
        assert!(o.failing().is_none() && o.stalled().is_none());
        o.put(status("a", Colour::Green, "1"));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(o.stalled(), Some(Duration::from_secs(3)));
        let batch = o.take(10);
        assert!(o.stalled().is_none(), "taken");
        o.failed(batch, "refused");
        let first = o.failing().unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        // A newer status replaces the failed one: the test is pending again, the sender still failing.
        o.put(status("a", Colour::Red, "2"));
        let batch = o.take(10);
        o.failed(batch, "refused again");
        let f = o.failing().unwrap();
        assert_eq!((f.since, f.error.as_str()), (first.since, "refused again"));
        // The run of failures woke `failing_begins` once, at its first failure.
        let begins = std::pin::pin!(o.failing_begins());
        assert!(futures_util::poll!(begins).is_ready());
        let again = std::pin::pin!(o.failing_begins());
        assert!(futures_util::poll!(again).is_pending());
        assert_eq!(f.since.elapsed(), Duration::from_secs(10));
        let batch = o.take(10);
        o.delivered(&batch);
        assert!(o.failing().is_none());
        assert!(o.stalled().is_none());
    }

    #[test]
    fn take_respects_the_batch_size() {
        let o = Outbox::new();
        for i in 0..250 {
            o.put(status(&format!("h{i}"), Colour::Green, "x"));
        }
        assert_eq!(o.take(100).items.len(), 100);
        assert_eq!(o.pending(), 150);
    }
}
