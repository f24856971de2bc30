//! xymon-mqtt: an MQTT → Xymon bridge that runs on the Xymon server next to xymond.
//!
//! # Data flow
//!
//! ```text
//! config ─> plan ─> bridge (the supervisor) starts:
//!   broker ─> mqtt ─> store ─> collect ─> status ─┬─> xymon (outbox, sender) ─> xymond :1984
//!                       │                         └─> rrd (writer) ─> <rrd_dir>/<host>/*.rrd
//!                       └─> web (dashboard, API: reads the store, the outbox, the RRDs)
//! ```
//!
//! # Layout, lowest layer first
//! A module imports only modules of lower layers; `tests/architecture/` checks it.
//! - Vocabulary and utilities, importing nothing of the crate: `names` (host, test and topic names,
//!   broker and route ids), `colour`, `filter` (topic filters with captures, name templates), `text`
//!   (untrusted text made safe for a status), `limits` (time limits), `backoff`, `log_limit`, `heap`,
//!   `metrics`.
//! - `config`: the TOML schema, defaults and validation (errors name file, line and key).
//! - `rules`: the rule engine: compiled rules, extraction, thresholds, staleness, instances.
//! - `discovery`: Home Assistant MQTT discovery: announcements read, templates, device hosts and
//!   columns, colours by class (reusing the rule engine's thresholds).
//! - `plan`: a config compiled once into what the stages run: brokers resolved, rules compiled, exact
//!   topics routed, RRD files named.
//! - `store`: the latest value of every topic and each broker's state.
//! - `xymon`, `rrd`: the sinks: the status wire format, the outbox and the sender; the RRD writer,
//!   its layouts and the graphs.
//! - `status`: one status builder per kind of test.
//! - `collect`: the collector: rounds, rule tests, timers, snapshot requests.
//! - `mqtt`: broker sessions, subscriptions, snapshot sessions; feeds the store and the collector.
//! - `web`: the dashboard and the JSON API.
//! - `bridge`: the supervisor that starts, watches and stops the stages.
//! - `cli`: the commands (`check`, `explain`, `xymon-config`); `main.rs` parses the arguments.

pub mod backoff;
pub mod bridge;
pub mod cli;
pub mod collect;
pub mod colour;
pub mod config;
pub mod discovery;
pub mod filter;
pub mod heap;
pub mod limits;
pub mod log_limit;
pub mod metrics;
pub mod mqtt;
pub mod names;
pub mod plan;
pub mod rrd;
pub mod rules;
pub mod status;
pub mod store;
pub mod text;
pub mod web;
pub mod xymon;
