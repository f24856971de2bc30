//! What the collector sends to the RRD writer, and the writer's per-file health back into statuses.
//!
//! Fed by the collector at each broker-stats snapshot (the broker's message and byte counters) and at
//! each live rule value with `rrd = true`; feeds `rrd::RrdWriter`, a blocking worker behind a bounded
//! queue, so a slow disk never stalls the collector. A full queue is counted and logged here, in one
//! place; a bad RRD file turns only the test that writes it yellow.

use crate::config::TestConfig;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::rrd::{RrdSample, RrdWriter};
use crate::status::{add_rrd_problem, Counters};
use crate::xymon::Status;
use std::time::SystemTime;
use tracing::warn;

/// The RRD files of submqttm.py's `mqtt` test, with the counters each holds (Rcv, Xmt).
pub const BROKER_RRDS: [(&str, [usize; 2]); 2] = [
    (
        "mqtt.broker.message",
        [Counters::MESSAGES_RECEIVED, Counters::MESSAGES_SENT],
    ),
    (
        "mqtt.broker.octet",
        [Counters::BYTES_RECEIVED, Counters::BYTES_SENT],
    ),
];

pub(super) struct RrdFeed {
    writer: RrdWriter,
}

impl RrdFeed {
    pub(super) fn new(writer: RrdWriter) -> RrdFeed {
        RrdFeed { writer }
    }

    /// Queues one update; a full queue is counted (`dropped{reason="rrd_queue_full"}`) and logged at
    /// most once a minute per file.
    pub(super) fn submit(&self, sample: RrdSample, metrics: &Metrics, log_limit: &LogLimiter) {
        let (host, rrd) = (sample.host.clone(), sample.rrd.clone());
        if !self.writer.submit(sample) {
            metrics.count_drop("rrd_queue_full");
            if log_limit.allow(&format!("rrd-queue:{host}/{rrd}")) {
                warn!(%host, %rrd, "RRD queue full; update skipped (logged once a minute per file)");
            }
        }
    }

    /// Queues the raw counters of one broker-stats snapshot (DERIVE turns them into rates); unknown
    /// values as NaN.
    pub(super) fn record_broker_stats(
        &self,
        test: &TestConfig,
        counters: &Counters,
        metrics: &Metrics,
        log_limit: &LogLimiter,
    ) {
        let time = unix_secs(counters.at);
        for (rrd, [rcv, xmt]) in BROKER_RRDS {
            let value = |i: usize| counters.values[i].map_or(f64::NAN, |v| v as f64);
            let sample = RrdSample {
                host: test.host.to_string(),
                rrd: rrd.to_string(),
                time,
                values: vec![value(rcv), value(xmt)],
            };
            self.submit(sample, metrics, log_limit);
        }
    }

    /// Adds the problems of a broker-stats test's RRD files to its status.
    pub(super) fn report_broker_stats(&self, test: &TestConfig, status: &mut Status) {
        for (rrd, _) in BROKER_RRDS {
            self.report(test.host.as_str(), rrd, status);
        }
    }

    /// Adds the problem of `<rrd_dir>/<host>/<rrd>.rrd`, if its last update failed, to `status`.
    pub(super) fn report(&self, host: &str, rrd: &str, status: &mut Status) {
        if let Some(e) = self.writer.health(host, rrd) {
            add_rrd_problem(status, &format!("{rrd}.rrd"), &e);
        }
    }
}

/// Whole seconds since the Unix epoch (0 before it), as RRD updates take them.
pub(super) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
