//! The running bridge's Home Assistant discovery sessions: one per `[[discovery]]` block
//! (`mqtt::discovery::run`), started with the bridge and supervised like ingest (one that ends before
//! the stop has failed).
//!
//! A reload that changes any block, the connection settings of a block's broker or `max_value_chars`
//! restarts them as a group; otherwise they run on untouched. A restarted session finds its devices again
//! from the retained announcements, as after a restart of the bridge.

use super::{Shared, DRAIN_DEADLINE};
use crate::mqtt::{self, Connection};
use crate::plan::{fingerprint, Plan};
use crate::rrd::RrdWriter;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub(super) struct DiscoverySessions {
    tasks: JoinSet<()>,
    /// This group's stop: a child of the bridge's ingest stop.
    stop: CancellationToken,
    parent: CancellationToken,
    /// What the running group was started from (`what_it_reads`).
    fingerprint: u64,
}

/// Everything a discovery session is made from: the blocks, the connection of each block's broker (its
/// plan's fingerprint covers the password too), the value length limit and the RRD settings (a new RRD
/// writer is a new one to write through).
fn what_it_reads(plan: &Plan) -> u64 {
    let brokers: Vec<Option<u64>> = plan
        .discovery
        .iter()
        .map(|(b, _)| plan.brokers.get(*b).map(|p| p.fingerprint))
        .collect();
    fingerprint(&(
        &plan.discovery,
        brokers,
        plan.limits.max_value_chars,
        &plan.rrd,
    ))
}

impl DiscoverySessions {
    /// Starts a session per block of `plan` (the blocks are taken out of it).
    pub(super) fn start(
        plan: &mut Plan,
        shared: &Shared,
        rrd: Option<&RrdWriter>,
        parent: &CancellationToken,
    ) -> DiscoverySessions {
        let mut group = DiscoverySessions {
            tasks: JoinSet::new(),
            stop: parent.child_token(),
            parent: parent.clone(),
            fingerprint: what_it_reads(plan),
        };
        group.spawn(plan, shared, rrd);
        group
    }

    fn spawn(&mut self, plan: &mut Plan, shared: &Shared, rrd: Option<&RrdWriter>) {
        for (index, (broker, d)) in std::mem::take(&mut plan.discovery).into_iter().enumerate() {
            let Some(b) = plan.brokers.get(broker) else {
                continue;
            };
            let rrd = rrd.filter(|_| d.rrd.any()).cloned();
            let task = mqtt::discovery::DiscoveryTask {
                index,
                connection: Connection::new(b),
                plan: d,
                reconnect_max: b.reconnect_max,
                outbox: shared.outbox.clone(),
                metrics: shared.metrics.clone(),
                max_value_chars: plan.limits.max_value_chars,
                board: shared.devices.clone(),
                rrd,
            };
            self.tasks
                .spawn(mqtt::discovery::run(task, self.stop.clone()));
        }
    }

    /// Applies a reload's plan: the group restarts when what it reads changed (see the header).
    pub(super) async fn reload(
        &mut self,
        plan: &mut Plan,
        shared: &Shared,
        rrd: Option<&RrdWriter>,
    ) {
        let now = what_it_reads(plan);
        if now == self.fingerprint {
            plan.discovery.clear();
            return;
        }
        self.stop().await;
        shared.devices.clear();
        self.stop = self.parent.child_token();
        self.fingerprint = now;
        let blocks = plan.discovery.len();
        self.spawn(plan, shared, rrd);
        info!(
            blocks,
            "Home Assistant discovery restarted for the new configuration"
        );
    }

    /// The next session that ended (a failure, unless the bridge is stopping); never resolves while
    /// none runs.
    pub(super) async fn join_next(&mut self) -> Result<(), JoinError> {
        match self.tasks.join_next().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// Stops every session and waits for them, at most `DRAIN_DEADLINE`.
    pub(super) async fn stop(&mut self) {
        self.stop.cancel();
        let all = async {
            while let Some(r) = self.tasks.join_next().await {
                if let Err(e) = r {
                    warn!(error = %e, "a discovery session ended abnormally");
                }
            }
        };
        if tokio::time::timeout(DRAIN_DEADLINE, all).await.is_err() {
            warn!("discovery sessions still running at the deadline; abandoned");
            self.tasks.abort_all();
        }
    }
}
