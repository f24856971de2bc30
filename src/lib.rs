//! xymon-mqtt: an MQTT → Xymon bridge (skeleton; the pipeline lands module by module).

pub mod rrd;
