//! The store's budget figures for `/metrics`, read from the store at each scrape.
//!
//! Registered in the bridge's Prometheus registry by the supervisor (`bridge::Bridge::new`); reads
//! `Store::usage`, so ingest pays nothing for these figures.

use super::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Gauges of what the store holds, counters of what its budget evicted and refused.
#[derive(Clone)]
pub struct UsageCollector(pub Store);

impl std::fmt::Debug for UsageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageCollector")
    }
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: usize) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for UsageCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let u = self.0.usage();
        gauge(&mut e, "store_topics", "Topics the store holds", u.topics)?;
        gauge(
            &mut e,
            "store_bytes",
            "Bytes the store's topics count against limits.store_bytes",
            u.bytes,
        )?;
        gauge(&mut e, "store_budget_bytes", "limits.store_bytes", u.budget)?;
        counter(
            &mut e,
            "store_evicted_topics",
            "Topics evicted to stay within limits.store_bytes, least recently updated first",
            u.evicted_topics,
        )?;
        counter(
            &mut e,
            "store_evicted_bytes",
            "Bytes the evicted topics held",
            u.evicted_bytes,
        )?;
        counter(
            &mut e,
            "store_over_budget",
            "Messages not stored: they did not fit in limits.store_bytes even after evicting",
            u.over_budget,
        )?;
        counter(
            &mut e,
            "store_refused_topics",
            "Topics no test accepts, kept by name without their payload",
            u.refused_topics,
        )?;
        counter(
            &mut e,
            "store_refused_messages",
            "Messages on refused topics (not stored)",
            u.refused_messages,
        )
    }
}
