//! xymon-mqtt: an MQTT → Xymon bridge (skeleton; the pipeline lands module by module).
pub mod backoff;
pub mod config;
pub mod metrics;
pub mod xymon;
