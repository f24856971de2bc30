//! xymon-mqtt: an MQTT → Xymon bridge (skeleton; the pipeline lands module by module).
pub mod backoff;
pub mod collect;
pub mod config;
pub mod log_limit;
pub mod metrics;
pub mod mqtt;
pub mod status;
pub mod store;
pub mod xymon;
