//! Each broker's connection state in the store: connected or not and since when, the last error,
//! whether the permanent subscriptions are granted, and the filters the broker refuses.
//!
//! Written by the MQTT stage (the permanent session: `set_connected`, `set_subscribed`,
//! `set_refused`; snapshot sessions: `set_refused`); read by the web layer (`brokers`) and by the
//! collector, which `link_changes` wakes when a connection state was set.

use super::{Change, Store};
use crate::names::BrokerId;
use std::time::SystemTime;

/// A broker as the web layer shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerState {
    pub name: String,
    pub url: String,
    pub connected: bool,
    /// Every permanent subscription is acknowledged and granted on the current connection.
    pub subscribed: bool,
    /// When `connected` last changed.
    pub since: Option<SystemTime>,
    pub last_message: Option<SystemTime>,
    pub messages: u64,
    pub last_error: Option<String>,
    /// Subscription filters the broker refuses (in its last SUBACK for them), sorted by filter.
    pub refused: Vec<Refused>,
}

/// A subscription filter the broker refused, and its reason (the broker's words: untrusted text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    pub filter: String,
    pub reason: String,
}

impl BrokerState {
    /// A broker not connected yet.
    pub fn new(name: &str, url: &str) -> BrokerState {
        BrokerState {
            name: name.to_string(),
            url: url.to_string(),
            connected: false,
            subscribed: false,
            since: None,
            last_message: None,
            messages: 0,
            last_error: None,
            refused: Vec::new(),
        }
    }
}

impl Store {
    /// The current id of the broker named `name` (a reload may renumber brokers, or remove one).
    pub fn broker_named(&self, name: &str) -> Option<BrokerId> {
        self.lock().brokers.iter().position(|b| b.name == name)
    }

    pub fn set_connected(&self, broker: BrokerId, connected: bool, error: Option<String>) {
        let mut guard = self.lock();
        if let Some(b) = guard.brokers.get_mut(broker) {
            if b.connected != connected || b.since.is_none() {
                b.since = Some(SystemTime::now());
            }
            b.connected = connected;
            if !connected {
                b.subscribed = false;
            }
            if error.is_some() || connected {
                b.last_error = error;
            }
        }
        drop(guard);
        self.links.notify_one();
        self.notify(|| Change::Broker(broker));
    }

    pub fn set_subscribed(&self, broker: BrokerId) {
        if let Some(b) = self.lock().brokers.get_mut(broker) {
            b.subscribed = true;
        }
        self.notify(|| Change::Broker(broker));
    }

    /// Records that the broker refuses `filter` (`Some(reason)`) or grants it (`None`). Returns whether
    /// that changed anything.
    pub fn set_refused(&self, broker: BrokerId, filter: &str, reason: Option<String>) -> bool {
        let mut guard = self.lock();
        let Some(b) = guard.brokers.get_mut(broker) else {
            return false;
        };
        let at = b
            .refused
            .binary_search_by(|r| r.filter.as_str().cmp(filter));
        let changed = match (at, reason) {
            (Ok(i), Some(reason)) if b.refused[i].reason != reason => {
                b.refused[i].reason = reason;
                true
            }
            (Ok(_), Some(_)) => false,
            (Ok(i), None) => {
                b.refused.remove(i);
                true
            }
            (Err(i), Some(reason)) => {
                let filter = filter.to_string();
                b.refused.insert(i, Refused { filter, reason });
                true
            }
            (Err(_), None) => false,
        };
        drop(guard);
        if changed {
            self.notify(|| Change::Broker(broker));
        }
        changed
    }

    pub fn brokers(&self) -> Vec<BrokerState> {
        self.lock().brokers.clone()
    }
}
