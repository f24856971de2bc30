//! The sensor fleet of scenarios 9 and 10 and of `bench/rule-profile`: devices `z2m/devNNNNN` publishing
//! Zigbee2MQTT-like JSON of about 225 bytes (300 in scenario 10, `bench/discovery.rs`) with several
//! numeric fields that change every cycle, and the one rule that reads them (`z2m/{host}`, two JSONPath
//! values with thresholds).
//!
//! The payloads are patched in place from one template per device (every number has a fixed width, so a
//! packet keeps its length), so the publisher writes a flood at almost no cost of its own. One device in
//! 100 swings its temperature across the yellow threshold every cycle: about 1 % of the messages change
//! an instance's colour and make a status, as a fleet with a few sensors at their limit does.

use std::fmt::Write as _;

/// The topic filter of the fleet's rule, and what `mosquitto_sub` subscribes to as the baseline.
pub const FILTER: &str = "z2m/#";

/// The device published after a flood: its first message makes a new instance, which sends at once, so
/// its status in the outbox proves the collector has processed everything published before it.
pub const SENTINEL: &str = "sentinel";

/// The rule's test name.
pub const TEST: &str = "z2m";

pub fn topic(device: usize) -> String {
    topic_of(&host(device))
}

/// The topic of the device whose host name is `host`.
pub fn topic_of(host: &str) -> String {
    format!("z2m/{host}")
}

pub fn host(device: usize) -> String {
    format!("dev{device:05}")
}

/// The fleet's rule test on broker `broker`, with room for `devices` instances (and the sentinel).
pub fn rule_toml(broker: &str, devices: usize) -> String {
    let max = devices + 1;
    let mut s = String::new();
    let _ = write!(
        s,
        "[[test]]\nbroker = \"{broker}\"\ntopic = \"z2m/{{host}}\"\nhost = \"{{host}}\"\ntest = \"{TEST}\"\n\
         max_instances = {max}\nmax_topics = {max}\n\
         [[test.value]]\nname = \"temperature\"\npath = \"$.temperature\"\nunit = \"°C\"\n\
         yellow = \"> 28\"\nred = \"> 32\"\n\
         [[test.value]]\nname = \"humidity\"\npath = \"$.humidity\"\nunit = \"%\"\n\
         yellow = \"> 80\"\nred = \"> 90\"\nhits = 3\nhysteresis = 1\n"
    );
    s
}

/// A device's payload and where its changing numbers are.
pub struct Payload {
    pub bytes: Vec<u8>,
    temperature: usize,
    humidity: usize,
    linkquality: usize,
    voltage: usize,
}

/// The numbers of `device` at `cycle`: temperature and humidity in hundredths, link quality, voltage.
/// Every field keeps its width (a JSON number has no leading zeros), so a payload keeps its length.
fn readings(device: usize, cycle: u64) -> (u64, u64, u64, u64) {
    let (d, c) = (device as u64, cycle);
    let temperature = if device.is_multiple_of(100) {
        // 27.50 and 29.50 in turn: green, yellow (> 28), green, ...
        if c.is_multiple_of(2) {
            2750
        } else {
            2950
        }
    } else {
        1800 + (d * 37 + c * 13) % 1000
    };
    let humidity = 4000 + (d * 11 + c * 7) % 2000;
    let linkquality = 100 + (d + c * 3) % 156;
    let voltage = 2900 + (d * 3 + c) % 200;
    (temperature, humidity, linkquality, voltage)
}

impl Payload {
    /// `device`'s payload at cycle 0.
    pub fn new(device: usize) -> Payload {
        Payload::with_extra(device, "")
    }

    /// `device`'s payload at cycle 0 with `extra` (more fields, `,"key":value...`, none of them a field
    /// patched here) before its closing brace: a longer message of the same device.
    pub fn with_extra(device: usize, extra: &str) -> Payload {
        let (t, h, l, v) = readings(device, 0);
        let text = format!(
            "{{\"battery\":87,\"humidity\":{}.{:02},\"linkquality\":{l},\"pressure\":1013.2,\"state\":\"ON\",\
             \"temperature\":{}.{:02},\"voltage\":{v},\"power_outage_count\":12,\"device_temperature\":31,\
             \"update\":{{\"state\":\"idle\"}},\"last_seen\":\"2026-12-04T10:11:12Z\"{extra}}}",
            h / 100,
            h % 100,
            t / 100,
            t % 100
        );
        let at = |key: &str| text.find(key).expect("key in template") + key.len();
        Payload {
            temperature: at("\"temperature\":"),
            humidity: at("\"humidity\":"),
            linkquality: at("\"linkquality\":"),
            voltage: at("\"voltage\":"),
            bytes: text.into_bytes(),
        }
    }

    /// Writes `device`'s numbers at `cycle` into `buf` (this payload's bytes, wherever they are now).
    pub fn patch(&self, buf: &mut [u8], device: usize, cycle: u64) {
        let (t, h, l, v) = readings(device, cycle);
        hundredths(&mut buf[self.temperature..self.temperature + 5], t);
        hundredths(&mut buf[self.humidity..self.humidity + 5], h);
        digits(&mut buf[self.linkquality..self.linkquality + 3], l);
        digits(&mut buf[self.voltage..self.voltage + 4], v);
    }
}

/// `n` as exactly `out.len()` decimal digits.
fn digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `n` hundredths as `dd.dd`.
fn hundredths(out: &mut [u8], n: u64) {
    digits(&mut out[..2], n / 100);
    out[2] = b'.';
    digits(&mut out[3..], n % 100);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_payloads_are_json_of_constant_length() {
        let p = Payload::new(100);
        let mut buf = p.bytes.clone();
        for cycle in 0..4 {
            p.patch(&mut buf, 100, cycle);
            let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(buf.len(), p.bytes.len());
            assert!(v["temperature"].as_f64().unwrap() > 27.0);
        }
    }
}
