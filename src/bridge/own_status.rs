//! The task behind the bridge's own column: every `[self_status] interval` it gathers what the store,
//! the outbox, the metrics and the RRD writer know, has `status::self_status` build the text and puts
//! it in the outbox; once more as soon as deliveries to xymond start failing (that red status waits in
//! the outbox and is the first thing xymond gets when it takes statuses again). Every `ghost_interval`
//! it asks xymond for its `ghostlist` and keeps the bridge's ghosts in the metrics (for `/metrics`, the
//! dashboard and the next status).
//!
//! Started by `Bridge::run` under the one cancellation token ([`OwnStatusTask`]); stops at once when it
//! fires (what it put in the outbox is delivered by the sender's drain like any status). A reload
//! restarts it with the new `[self_status]`, `[xymon]` and RRD writer; its uptime stays the process's.

use super::Shared;
use crate::metrics::{GhostHost, GhostReport};
use crate::plan::self_status::{origin_of, SelfStatusPlan};
use crate::plan::Plan;
use crate::rrd::RrdProbe;
use crate::status::{self_status, BrokerLine, Delivery, Drops, RrdFailure, SelfReport};
use crate::xymon::ghosts::{self, OurGhost};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub(super) struct OwnStatus {
    pub plan: SelfStatusPlan,
    /// xymond's address and the timeout of one exchange (`[xymon]`).
    pub server: String,
    pub timeout: Duration,
    pub shared: Shared,
    pub rrd: Option<RrdProbe>,
    pub started: SystemTime,
}

/// The running task, as the supervisor holds it.
pub(super) struct OwnStatusTask {
    handle: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    /// When the bridge started: the uptime in the column, across reloads.
    started: SystemTime,
}

impl OwnStatusTask {
    /// Starts the task for `plan` (its `[self_status]` is taken out of it); none when it is disabled.
    pub(super) fn start(
        plan: &mut Plan,
        shared: &Shared,
        rrd: Option<RrdProbe>,
        parent: &CancellationToken,
    ) -> OwnStatusTask {
        let mut task = OwnStatusTask {
            handle: None,
            stop: parent.child_token(),
            started: SystemTime::now(),
        };
        task.spawn(plan, shared, rrd);
        task
    }

    fn spawn(&mut self, plan: &mut Plan, shared: &Shared, rrd: Option<RrdProbe>) {
        self.handle = plan.self_status.take().map(|own| {
            let own = OwnStatus {
                plan: own,
                server: plan.xymon.server.clone(),
                timeout: plan.xymon.timeout,
                shared: shared.clone(),
                rrd,
                started: self.started,
            };
            tokio::spawn(run(own, self.stop.clone()))
        });
    }

    /// A reload: the task stops and starts again with what `plan` says.
    pub(super) async fn restart(
        &mut self,
        plan: &mut Plan,
        shared: &Shared,
        rrd: Option<RrdProbe>,
        parent: &CancellationToken,
    ) {
        self.stop().await;
        self.stop = parent.child_token();
        self.spawn(plan, shared, rrd);
    }

    /// Stops the task and waits for it (it ends at once: nothing it does waits past the token).
    pub(super) async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.handle.take() {
            if let Err(e) = task.await {
                warn!(error = %e, "the bridge's own column ended abnormally");
            }
        }
    }
}

/// What the previous status saw, for rates and recent counts.
struct Previous {
    at: Instant,
    messages: Vec<u64>,
    drops: HashMap<String, u64>,
}

pub(super) async fn run(own: OwnStatus, cancel: CancellationToken) {
    let every = |d: Duration| {
        let mut t = tokio::time::interval_at(Instant::now() + d, d);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    };
    let mut status_tick = every(own.plan.interval);
    let mut ghost_tick = every(own.plan.ghost_interval);
    // Rates of the first status are since the start.
    let mut previous = Previous {
        at: Instant::now(),
        messages: Vec::new(),
        drops: HashMap::new(),
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            () = own.shared.outbox.failing_begins() => previous = own.send(&previous),
            _ = ghost_tick.tick() => {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    () = own.check_ghosts() => {}
                }
            }
            _ = status_tick.tick() => previous = own.send(&previous),
        }
    }
}

impl OwnStatus {
    /// Asks xymond for its ghosts and keeps the bridge's own in the metrics. A failed query keeps the
    /// previous hosts and notes the error (xymond down is the deliveries' red, not a second problem).
    async fn check_ghosts(&self) {
        let metrics = &self.shared.metrics;
        let now = SystemTime::now();
        match ghosts::ghostlist(&self.server, self.timeout).await {
            Ok(list) => {
                // Most checks find no recent ghost: then the outbox (every test of a fleet) is not read.
                let ours = if ghosts::any_recent(&list, now) {
                    ghosts::ours(&list, &self.shared.outbox.tests(), now)
                } else {
                    Vec::new()
                };
                if !ours.is_empty() {
                    debug!(
                        ghosts = ours.len(),
                        "xymond drops statuses of hosts not in hosts.cfg"
                    );
                }
                let hosts = ours.into_iter().map(|g| self.ghost_host(g)).collect();
                metrics.set_ghosts(GhostReport {
                    hosts,
                    checked_at: Some(now),
                    error: None,
                });
            }
            Err(e) => {
                debug!(error = %e, "ghostlist failed");
                let mut report = metrics.ghosts();
                report.error = Some(e.to_string());
                metrics.set_ghosts(report);
            }
        }
    }

    /// A ghost, with the configured test that makes it.
    fn ghost_host(&self, g: OurGhost) -> GhostHost {
        let origin = if g.host.eq_ignore_ascii_case(self.plan.host.as_str())
            && g.tests.iter().any(|t| t == self.plan.column.as_str())
        {
            "[self_status] host (the bridge's own column)".to_string()
        } else {
            g.tests
                .iter()
                .find_map(|t| origin_of(&self.plan.origins, &g.host, t))
                .map(|o| match &o.topic {
                    Some(topic) => format!(
                        "test[{}]: the rule on topic {topic}, host {}",
                        o.index, o.host
                    ),
                    None => format!("test[{}]: host {}", o.index, o.host),
                })
                .unwrap_or_else(|| "no configured test".into())
        };
        GhostHost {
            host: g.host,
            tests: g.tests,
            origin,
            last_seen: g.seen,
        }
    }

    /// Builds the status from what the stages know now and puts it in the outbox.
    fn send(&self, previous: &Previous) -> Previous {
        let (store, outbox, metrics) = (
            &self.shared.store,
            &self.shared.outbox,
            &self.shared.metrics,
        );
        let now = SystemTime::now();
        let at = Instant::now();
        let minutes = at.duration_since(previous.at).as_secs_f64() / 60.0;
        let states = store.brokers();
        let messages: Vec<u64> = states.iter().map(|b| b.messages).collect();
        let brokers: Vec<BrokerLine> = states
            .into_iter()
            .enumerate()
            .map(|(i, state)| {
                let before = previous.messages.get(i).copied().unwrap_or(0);
                let per_minute =
                    (minutes > 0.0).then(|| state.messages.saturating_sub(before) as f64 / minutes);
                BrokerLine { state, per_minute }
            })
            .collect();
        let totals = metrics.drops();
        let drops: Vec<Drops> = totals
            .iter()
            .map(|(reason, total)| Drops {
                reason: reason.clone(),
                total: *total,
                recent: total.saturating_sub(previous.drops.get(reason).copied().unwrap_or(0)),
            })
            .collect();
        let delivery = Delivery {
            server: self.server.clone(),
            sent: metrics.statuses_sent.get(),
            failures: metrics.delivery_failures.get(),
            pending: outbox.pending(),
            failing: outbox.failing().map(|f| (f.since_wall, f.error)),
            last_error: metrics.last_delivery_error(),
        };
        let rrd_failing: Vec<RrdFailure> = self
            .rrd
            .as_ref()
            .map(|p| p.failing())
            .unwrap_or_default()
            .into_iter()
            .map(|(host, rrd, error)| RrdFailure { host, rrd, error })
            .collect();
        let usage = store.usage();
        let ghosts = metrics.ghosts();
        let config_file = self.plan.config_file.display().to_string();
        let status = self_status(&SelfReport {
            host: &self.plan.host,
            column: &self.plan.column,
            lifetime: self.plan.lifetime(),
            now,
            started: self.started,
            version: env!("CARGO_PKG_VERSION"),
            config_file: &config_file,
            grace: self.plan.disconnect_grace,
            interval: self.plan.interval,
            brokers: &brokers,
            delivery: &delivery,
            drops: &drops,
            rrd_failing: &rrd_failing,
            store: &usage,
            ghosts: &ghosts,
        });
        outbox.put(status);
        Previous {
            at,
            messages,
            drops: totals.into_iter().collect(),
        }
    }
}
