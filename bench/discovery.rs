//! The discovery fleet of scenario 10: the sensor fleet of `bench/fleet.rs` (devices `z2m/devNNNNN`),
//! announced the way Zigbee2MQTT announces it to Home Assistant instead of matched by a rule. Each device
//! has two retained discovery configs (`homeassistant/sensor/<ieee>/{temperature,humidity}/config`,
//! `value_template` `{{ value_json.temperature }}` and so on, device_class and unit), and publishes the
//! fleet's payload with a few more fields (about 300 bytes) on its state topic; the `[[discovery]]` block
//! reads them with class thresholds.

use crate::fleet;
use crate::flood::encode_publish_retained;
use std::fmt::Write as _;

/// The discovery prefix of the announcements.
pub const PREFIX: &str = "homeassistant";

/// The fields each device announces as a sensor entity: (field and device_class, unit).
const FIELDS: [(&str, &str); 2] = [("temperature", "°C"), ("humidity", "%")];

/// Entities each device announces.
pub const ENTITIES_PER_DEVICE: usize = FIELDS.len();

/// What the fleet's payload gets on top of scenario 9's: fields Zigbee2MQTT sends for many devices, so a
/// message is about 300 bytes.
const EXTRA: &str =
    ",\"battery_low\":false,\"tamper\":false,\"child_lock\":\"UNLOCK\",\"update_available\":false";

/// Device `device`'s payload (the fleet's numbers, patched the same way) with the extra fields.
pub fn payload(device: usize) -> fleet::Payload {
    fleet::Payload::with_extra(device, EXTRA)
}

/// A Zigbee2MQTT-style IEEE address for device `device`: the node id of its announcements.
fn ieee(device: usize) -> String {
    format!("0x00158d{device:010x}")
}

/// The `[[discovery]]` block on broker `broker` with room for `devices` devices (and the sentinel), and
/// thresholds by class as the fleet's rule has them.
pub fn block_toml(broker: &str, devices: usize) -> String {
    let max = (devices + 1) * ENTITIES_PER_DEVICE;
    let mut s = String::new();
    let _ = write!(
        s,
        "[[discovery]]\nbroker = \"{broker}\"\nprefix = \"{PREFIX}\"\nmax_entities = {max}\n\
         [[discovery.threshold]]\nclass = \"temperature\"\nyellow = \"> 28\"\nred = \"> 32\"\n\
         [[discovery.threshold]]\nclass = \"humidity\"\nyellow = \"> 80\"\nred = \"> 90\"\nhits = 3\n\
         hysteresis = 1\n"
    );
    s
}

/// Every announcement of `devices` devices and the sentinel as (config topic, payload).
pub fn configs(devices: usize) -> impl Iterator<Item = (String, String)> {
    (0..=devices).flat_map(move |d| {
        let host = if d == devices {
            fleet::SENTINEL.to_string()
        } else {
            fleet::host(d)
        };
        let id = ieee(d);
        FIELDS.map(|(field, unit)| {
            (
                format!("{PREFIX}/sensor/{id}/{field}/config"),
                announcement(&id, &host, field, unit),
            )
        })
    })
}

/// Appends the retained announcements of `devices` devices and of the sentinel (device number `devices`,
/// host `fleet::SENTINEL`, state topic `z2m/sentinel`) to `buf`; with `clear`, empty retained messages on
/// the same topics instead, which remove them from the broker.
pub fn announcements(buf: &mut Vec<u8>, devices: usize, clear: bool) {
    for (topic, config) in configs(devices) {
        let config = if clear { String::new() } else { config };
        encode_publish_retained(buf, &topic, config.as_bytes());
    }
}

/// One entity's config as Zigbee2MQTT 1.40 sends it (full keys, no availability).
fn announcement(id: &str, host: &str, field: &str, unit: &str) -> String {
    format!(
        "{{\"device\":{{\"identifiers\":[\"zigbee2mqtt_{id}\"],\"manufacturer\":\"Aqara\",\
         \"model\":\"Temperature and humidity sensor (WSDCGQ11LM)\",\"name\":\"{host}\",\
         \"sw_version\":\"3000-0001\",\"via_device\":\"zigbee2mqtt_bridge_0x00124b0022ebac5e\"}},\
         \"device_class\":\"{field}\",\"enabled_by_default\":true,\"object_id\":\"{host}_{field}\",\
         \"origin\":{{\"name\":\"Zigbee2MQTT\",\"sw\":\"1.40.2\",\"url\":\"https://www.zigbee2mqtt.io\"}},\
         \"state_class\":\"measurement\",\"state_topic\":\"{}\",\"unique_id\":\"{id}_{field}_zigbee2mqtt\",\
         \"unit_of_measurement\":\"{unit}\",\"value_template\":\"{{{{ value_json.{field} }}}}\"}}",
        fleet::topic_of(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_json_naming_the_state_topic_and_template() {
        let a = announcement(&ieee(7), &fleet::host(7), "humidity", "%");
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["state_topic"], "z2m/dev00007");
        assert_eq!(v["value_template"], "{{ value_json.humidity }}");
        let p = payload(7);
        let v: serde_json::Value = serde_json::from_slice(&p.bytes).unwrap();
        assert_eq!(v["tamper"], false);
        assert!((280..=320).contains(&p.bytes.len()), "{}", p.bytes.len());
    }
}
