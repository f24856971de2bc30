//! A reload reaching a running session: the session is held at a point between two messages, then
//! resumed with its new broker id and subscriptions, or stopped.
//!
//! Sent by the supervisor (`bridge`, on a reload): every session is held first (`Hold`), so that
//! nothing is forwarded under the old numbering while the store and the collector take the new plan;
//! messages arriving meanwhile wait in the connection. A session whose broker is unchanged then resumes
//! (`Retarget`) without reconnecting: it subscribes to the filters the new plan adds and unsubscribes the
//! ones it drops, so the broker replays retained values only for the new ones.

use super::granted::{subscribe_next, Subscribing};
use super::{BrokerTask, Shared, Wanted};
use crate::names::BrokerId;
use rumqttc::QoS;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::WaitForCancellationFuture;
use tracing::{info, warn};

/// Hold the session: answer on `held` once no sample is on its way, then wait for `resume`. A
/// `resume` dropped unanswered stops the session.
pub struct Hold {
    pub held: oneshot::Sender<()>,
    pub resume: oneshot::Receiver<Retarget>,
}

/// What a held session resumes with.
pub struct Retarget {
    pub id: BrokerId,
    pub wanted: Arc<Wanted>,
}

/// What the session does after a hold.
pub(super) enum Held {
    Resumed,
    Stop,
}

/// Holds the session until the supervisor resumes it, then changes its subscriptions. `connected`:
/// whether the session is up now (otherwise the next ConnAck subscribes to the new set anyway).
pub(super) async fn hold(
    task: &mut BrokerTask,
    shared: &Shared,
    hold: Hold,
    subs: &mut Subscribing,
    connected: bool,
) -> Held {
    // Before the store renumbers: the names of the running routes.
    let before = all_subscriptions(task, shared);
    let _ = hold.held.send(());
    let Ok(new) = hold.resume.await else {
        // Its id may be another broker's now: the stop must not touch that one's state in the store.
        task.id = BrokerId::MAX;
        return Held::Stop;
    };
    task.id = new.id;
    task.wanted = new.wanted;
    if !connected {
        return Held::Resumed;
    }
    if subs.sent < before.len() {
        // Still subscribing on this connection: start over with the new set.
        subs.sent = 0;
        subscribe_next(task, &shared.store, subs);
        return Held::Resumed;
    }
    let after = all_subscriptions(task, shared);
    let old: HashMap<&str, QoS> = before.iter().map(|(f, q)| (f.as_str(), *q)).collect();
    let added: Vec<(String, QoS)> = after
        .iter()
        .filter(|(f, q)| old.get(f.as_str()) != Some(q))
        .cloned()
        .collect();
    let kept: HashMap<&str, QoS> = after.iter().map(|(f, q)| (f.as_str(), *q)).collect();
    let dropped: Vec<String> = before
        .iter()
        .filter(|(f, _)| !kept.contains_key(f.as_str()))
        .map(|(f, _)| f.clone())
        .collect();
    // The SUBACK of this packet names nothing of the running chunk: its refusals are not told (the next
    // connection's are).
    subs.sent = after.len();
    subs.chunk = (after.len(), 0);
    if !added.is_empty() || !dropped.is_empty() {
        info!(broker = %task.name, subscribed = added.len(), unsubscribed = dropped.len(), "subscriptions follow the reloaded configuration");
    }
    for chunk in added.chunks(super::SUBSCRIBE_CHUNK) {
        if let Err(e) = task.client.subscribe(chunk.to_vec()) {
            warn!(broker = %task.name, error = %e, "cannot queue the subscriptions");
        }
    }
    for filter in dropped {
        if let Err(e) = task.client.unsubscribe(filter) {
            warn!(broker = %task.name, error = %e, "cannot queue an unsubscription");
        }
    }
    Held::Resumed
}

/// Waits out a reconnect backoff (possibly minutes), holding the session for a reload meanwhile. True
/// when the session is to stop (`cancelled`, or a reload removed it).
pub(super) async fn backoff(
    task: &mut BrokerTask,
    shared: &Shared,
    subs: &mut Subscribing,
    delay: Duration,
    mut cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut cancelled => return true,
            _ = &mut sleep => return false,
            Some(h) = task.steer.recv() => {
                if let Held::Stop = hold(task, shared, h, subs, false).await {
                    return true;
                }
            }
        }
    }
}

fn all_subscriptions(task: &BrokerTask, shared: &Shared) -> Vec<(String, QoS)> {
    task.wanted
        .subscriptions(&shared.store, task.id, 0, task.wanted.subscription_count())
}
