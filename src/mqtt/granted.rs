//! The permanent subscriptions of one connection: sent in chunks of `SUBSCRIBE_CHUNK`, the next when the
//! broker acknowledges the previous one, and what each SUBACK grants or refuses.
//!
//! Used by the session loop (`mqtt::run`) on every ConnAck and SubAck. A refused filter is logged at
//! warn (the first few per connection), counted per broker and filter, put in the store (the API) and
//! told to the collector (the statuses); one refused before and granted now is taken back. Only changes
//! are told, so a broker that refuses the same filter at every reconnect does not repeat itself.

use super::{BrokerTask, Origin, Shared, SUBSCRIBE_CHUNK};
use crate::collect::Refusal;
use crate::names::BrokerId;
use crate::store::Store;
use std::collections::HashMap;
use tracing::{debug, info, warn};

/// Refused filters logged one by one per connection; the rest are summed up in one line.
const REFUSALS_LOGGED: usize = 20;

/// The permanent subscriptions of the current connection.
#[derive(Default)]
pub(super) struct Subscribing {
    /// Subscriptions sent on this connection so far.
    pub(super) sent: usize,
    /// The SUBSCRIBE in flight (one at a time): its first subscription and how many.
    pub(super) chunk: (usize, usize),
    /// Refusals logged on this connection.
    pub(super) logged: usize,
    /// Filters the broker refuses, and why; kept across connections so that only changes are told.
    pub(super) refused: HashMap<String, String>,
}

/// Sends the next packet of permanent subscriptions, if any are left.
pub(super) fn subscribe_next(task: &BrokerTask, store: &Store, subs: &mut Subscribing) {
    let next = task
        .wanted
        .subscriptions(store, task.id, subs.sent, SUBSCRIBE_CHUNK);
    if next.is_empty() {
        return;
    }
    subs.chunk = (subs.sent, next.len());
    subs.sent += next.len();
    if let Err(e) = task.client.subscribe(next) {
        warn!(broker = %task.name, error = %e, "cannot queue the subscriptions");
    }
}

/// Reads one SUBACK: a refused filter is logged, counted, put in the store and told to the collector; a
/// filter refused before and granted now is taken back. The names are looked up again only when there
/// is a refusal to name, so a site with 100k topics pays nothing per SUBACK otherwise.
pub(super) async fn on_suback(
    task: Origin<'_>,
    shared: &Shared,
    subs: &mut Subscribing,
    codes: Vec<Result<u8, String>>,
) {
    if subs.refused.is_empty() && codes.iter().all(Result::is_ok) {
        return;
    }
    let (start, len) = subs.chunk;
    let names = task
        .wanted
        .subscriptions(&shared.store, task.id, start, len);
    for ((filter, _), code) in names.into_iter().zip(codes) {
        match code {
            Err(reason) => {
                shared.metrics.count_refusal(task.name, &filter);
                if subs.refused.get(&filter) == Some(&reason) {
                    debug!(broker = %task.name, filter = %filter, reason = %reason, "subscription refused again");
                    continue;
                }
                if subs.logged < REFUSALS_LOGGED {
                    warn!(broker = %task.name, filter = %filter, reason = %reason, "the broker refused a subscription");
                } else if subs.logged == REFUSALS_LOGGED {
                    warn!(broker = %task.name, "more subscriptions refused; see /api/v1/brokers and /metrics");
                }
                subs.logged += 1;
                shared
                    .store
                    .set_refused(task.id, &filter, Some(reason.clone()));
                subs.refused.insert(filter.clone(), reason.clone());
                tell(shared, task.id, filter, Some(reason)).await;
            }
            Ok(_) => {
                if subs.refused.remove(&filter).is_some() {
                    info!(broker = %task.name, filter = %filter, "the broker now grants a subscription it refused");
                    shared.store.set_refused(task.id, &filter, None);
                    tell(shared, task.id, filter, None).await;
                }
            }
        }
    }
}

async fn tell(shared: &Shared, broker: BrokerId, filter: String, reason: Option<String>) {
    let refusal = Refusal {
        broker,
        filter,
        reason,
    };
    if shared.refusals.send(refusal).await.is_err() {
        debug!("collector has stopped; refusal not forwarded");
    }
}
