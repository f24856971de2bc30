//! Graph data of broker-stats tests: their counters go to the RRD writer, and the writer's per-file
//! health comes back as yellow lines in the status.
//!
//! Fed by the collector at each broker-stats snapshot; feeds `rrd::RrdWriter` (a blocking worker behind a
//! bounded queue, so a slow disk never stalls the collector).

use crate::config::TestConfig;
use crate::rrd::{RrdSample, RrdWriter};
use crate::status::Counters;
use std::time::SystemTime;

/// The RRD files of the seed's `mqtt` test, with the counters each holds (Rcv, Xmt).
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

pub struct BrokerGraphs {
    pub writer: RrdWriter,
}

impl BrokerGraphs {
    /// Queues the raw counters of one snapshot (DERIVE turns them into rates); unknown values as NaN.
    pub fn record(&self, test: &TestConfig, counters: &Counters) {
        let time = counters
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for (rrd, [rcv, xmt]) in BROKER_RRDS {
            let value = |i: usize| counters.values[i].map_or(f64::NAN, |v| v as f64);
            let sample = RrdSample {
                host: test.host.to_string(),
                rrd: rrd.to_string(),
                time,
                values: vec![value(rcv), value(xmt)],
            };
            if !self.writer.submit(sample) {
                tracing::warn!(host = %test.host, rrd, "RRD queue full; update skipped");
            }
        }
    }

    /// Problems with this test's RRD files, one line each (`rrd file: error`).
    pub fn problems(&self, test: &TestConfig) -> Vec<String> {
        BROKER_RRDS
            .iter()
            .filter_map(|(rrd, _)| {
                self.writer
                    .health(test.host.as_str(), rrd)
                    .map(|e| format!("{rrd}.rrd: {e}"))
            })
            .collect()
    }
}
