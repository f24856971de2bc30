//! Home Assistant's abbreviated discovery keys, expanded as HA expands them, and the `~` base topic.
//!
//! Used by `announce` on every config payload before it reads a key. The tables are the part of HA's
//! `homeassistant/components/mqtt/abbreviations.py` (`ABBREVIATIONS`, `DEVICE_ABBREVIATIONS`) that a
//! sensor or binary_sensor announcement can carry, plus the newer device keys (`hw`, `mdl_id`, `sn`);
//! keys of other components (lights, climate, ...) are never read here, and unknown keys pass through as
//! HA passes them. Decisions, as HA's discovery.py takes them:
//! - A key sent both abbreviated and in full: the abbreviated value wins.
//! - `~` is removed and expanded after the abbreviations, only in keys ending in `topic` (and in the
//!   `topic` of each `availability` entry), only at the start (base + rest) or the end (rest + base) of
//!   the value, by plain concatenation.

use serde_json::{Map, Value};

/// Top-level and `availability[]` keys: (abbreviation, full key).
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("avty", "availability"),
    ("avty_mode", "availability_mode"),
    ("avty_t", "availability_topic"),
    ("avty_tpl", "availability_template"),
    ("dev", "device"),
    ("dev_cla", "device_class"),
    ("e", "encoding"),
    ("en", "enabled_by_default"),
    ("ent_cat", "entity_category"),
    ("exp_aft", "expire_after"),
    ("frc_upd", "force_update"),
    ("ic", "icon"),
    ("json_attr", "json_attributes"),
    ("json_attr_t", "json_attributes_topic"),
    ("json_attr_tpl", "json_attributes_template"),
    ("lrst_t", "last_reset_topic"),
    ("lrst_val_tpl", "last_reset_value_template"),
    ("obj_id", "object_id"),
    ("off_dly", "off_delay"),
    ("pl", "payload"),
    ("pl_avail", "payload_available"),
    ("pl_not_avail", "payload_not_available"),
    ("pl_off", "payload_off"),
    ("pl_on", "payload_on"),
    ("ret", "retain"),
    ("stat_cla", "state_class"),
    ("stat_t", "state_topic"),
    ("stat_tpl", "state_template"),
    ("stat_val_tpl", "state_value_template"),
    ("t", "topic"),
    ("uniq_id", "unique_id"),
    ("unit_of_meas", "unit_of_measurement"),
    ("val_tpl", "value_template"),
];

/// `device` keys.
const DEVICE_ABBREVIATIONS: &[(&str, &str)] = &[
    ("cns", "connections"),
    ("cu", "configuration_url"),
    ("hw", "hw_version"),
    ("ids", "identifiers"),
    ("mdl", "model"),
    ("mdl_id", "model_id"),
    ("mf", "manufacturer"),
    ("sa", "suggested_area"),
    ("sn", "serial_number"),
    ("sw", "sw_version"),
];

fn full<'a>(table: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    table.iter().find(|(a, _)| *a == key).map(|(_, f)| *f)
}

/// The object with abbreviated keys replaced by their full names; abbreviated values win.
fn expand_with(obj: Map<String, Value>, table: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::with_capacity(obj.len());
    let mut short = Vec::new();
    for (k, v) in obj {
        match full(table, &k) {
            Some(f) if f != k => short.push((f.to_string(), v)),
            _ => {
                out.insert(k, v);
            }
        }
    }
    for (k, v) in short {
        out.insert(k, v);
    }
    out
}

/// Expands a config payload in place as HA does: top-level keys, each `availability` entry, the
/// `device` block; then the `~` base topic.
pub fn expand(obj: Map<String, Value>) -> Map<String, Value> {
    let mut obj = expand_with(obj, ABBREVIATIONS);
    if let Some(Value::Array(list)) = obj.get_mut("availability") {
        for entry in list.iter_mut() {
            if let Value::Object(e) = entry {
                *e = expand_with(std::mem::take(e), ABBREVIATIONS);
            }
        }
    }
    if let Some(Value::Object(dev)) = obj.get_mut("device") {
        *dev = expand_with(std::mem::take(dev), DEVICE_ABBREVIATIONS);
    }
    if let Some(Value::String(base)) = obj.remove("~") {
        for (k, v) in obj.iter_mut() {
            if k.ends_with("topic") {
                base_topic(v, &base);
            }
        }
        if let Some(Value::Array(list)) = obj.get_mut("availability") {
            for entry in list.iter_mut() {
                if let Some(t) = entry.get_mut("topic") {
                    base_topic(t, &base);
                }
            }
        }
    }
    obj
}

fn base_topic(v: &mut Value, base: &str) {
    let Value::String(s) = v else { return };
    if let Some(rest) = s.strip_prefix('~') {
        *s = format!("{base}{rest}");
    } else if let Some(rest) = s.strip_suffix('~') {
        *s = format!("{rest}{base}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn short_keys_expand_and_win() {
        let got = expand(obj(json!({
            "stat_t": "short", "state_topic": "long", "unit_of_meas": "°C", "custom": 1,
            "dev": {"ids": "abc", "mdl": "esp32", "sw": "1.0", "name": "n"},
            "avty": [{"t": "a/status", "pl_avail": "up"}]
        })));
        assert_eq!(got["state_topic"], "short");
        assert_eq!(got["unit_of_measurement"], "°C");
        assert_eq!(got["custom"], 1);
        assert!(!got.contains_key("stat_t"));
        assert_eq!(got["device"]["identifiers"], "abc");
        assert_eq!(got["device"]["model"], "esp32");
        assert_eq!(got["device"]["sw_version"], "1.0");
        assert_eq!(got["device"]["name"], "n");
        assert_eq!(got["availability"][0]["topic"], "a/status");
        assert_eq!(got["availability"][0]["payload_available"], "up");
    }

    /// Tasmota's 2020 format: `"~":"tasmota_A1B2C3/tele/"`, `"stat_t":"~SENSOR"`, `"avty_t":"~LWT"`.
    #[test]
    fn tilde_at_start_or_end_of_topic_keys_only() {
        let got = expand(obj(json!({
            "~": "tasmota_A1B2C3/tele/", "stat_t": "~SENSOR", "avty_t": "~LWT",
            "json_attr_t": "x/~", "name": "~name", "val_tpl": "~", "cmd_t": "a~b",
            "avty": [{"t": "~state"}]
        })));
        assert_eq!(got["state_topic"], "tasmota_A1B2C3/tele/SENSOR");
        assert_eq!(got["availability_topic"], "tasmota_A1B2C3/tele/LWT");
        assert_eq!(got["json_attributes_topic"], "x/tasmota_A1B2C3/tele/");
        assert_eq!(got["availability"][0]["topic"], "tasmota_A1B2C3/tele/state");
        assert_eq!(got["name"], "~name");
        assert_eq!(got["value_template"], "~");
        assert_eq!(got["cmd_t"], "a~b");
        assert!(!got.contains_key("~"));
    }
}
