//! Which devices a `[[discovery]]` takes, the Xymon host each becomes, and the column of each entity.
//!
//! Compiled once from the config (`discovery::compile`); asked by the discovery state when an entity is
//! announced and when its device's name becomes known. Decisions:
//! - Globs (the `glob` crate, shell syntax: `*`, `?`, `[...]`) match the device name, any identifier,
//!   any connection value and the node id; exclude wins over include; no include means every device.
//! - The `hosts` map is checked first, by identifier, then by device name, exactly.
//! - `{device}` is the device name, else its first identifier, else the node id, made a valid Xymon
//!   host name (`host_name_of`): lower case, runs of anything but `[a-z0-9._-]` become one `-`.
//! - `{device_class}` columns: an entity without a class lands in its component's column.

use super::announce::{Device, Entity};
use crate::names::{HostName, TestName};
use glob::Pattern;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Selector {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
    /// The `host` template, validated.
    pub host: String,
    pub hosts: BTreeMap<String, HostName>,
    pub column: Column,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Fixed(TestName),
    ByClass,
}

/// The names a device is known by, for globs.
fn names<'a>(dev: &'a Device, node_id: Option<&'a str>) -> impl Iterator<Item = &'a str> {
    dev.name
        .as_deref()
        .into_iter()
        .chain(dev.identifiers.iter().map(String::as_str))
        .chain(dev.connections.iter().map(|(_, v)| v.as_str()))
        .chain(node_id)
}

/// Whether any of the device's names matches one of `patterns`.
pub fn matches(patterns: &[Pattern], dev: &Device, node_id: Option<&str>) -> bool {
    names(dev, node_id).any(|n| patterns.iter().any(|p| p.matches(n)))
}

/// Text made into a valid Xymon host name (possibly empty).
pub fn host_name_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            if !(c == '.' && out.ends_with('.')) {
                out.push(c);
            }
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    trimmed.chars().take(200).collect::<String>()
}

impl Selector {
    /// Whether the device is taken.
    pub fn wants(&self, dev: &Device, node_id: Option<&str>) -> bool {
        (self.include.is_empty() || matches(&self.include, dev, node_id))
            && !matches(&self.exclude, dev, node_id)
    }

    /// The host of a device, or why there is none.
    pub fn host(&self, dev: &Device, node_id: Option<&str>) -> Result<HostName, String> {
        let mapped = dev
            .identifiers
            .iter()
            .chain(dev.name.iter())
            .find_map(|k| self.hosts.get(k));
        if let Some(h) = mapped {
            return Ok(h.clone());
        }
        let first_id = dev.identifiers.first().map(String::as_str);
        let device = dev.name.as_deref().or(first_id).or(node_id);
        let mut out = self.host.clone();
        for (ph, val) in [
            ("{device}", device),
            ("{node_id}", node_id),
            ("{id}", first_id),
        ] {
            if out.contains(ph) {
                let v = val
                    .map(host_name_of)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        format!("`host = {:?}`: the device has no value for {ph}", self.host)
                    })?;
                out = out.replace(ph, &v);
            }
        }
        HostName::try_from(out)
    }

    /// The column of an entity.
    pub fn column(&self, e: &Entity) -> Result<TestName, String> {
        match &self.column {
            Column::Fixed(t) => Ok(t.clone()),
            Column::ByClass => {
                let raw = e
                    .device_class
                    .as_deref()
                    .unwrap_or(e.key.component.as_str());
                let t = TestName::try_from(raw.to_ascii_lowercase())?;
                if t.is_reserved() {
                    return Err(format!("column {t} is reserved"));
                }
                Ok(t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: Option<&str>, ids: &[&str]) -> Device {
        Device {
            name: name.map(str::to_string),
            identifiers: ids.iter().map(|s| s.to_string()).collect(),
            ..Device::default()
        }
    }

    fn selector(include: &[&str], exclude: &[&str], host: &str) -> Selector {
        let p = |v: &[&str]| v.iter().map(|s| Pattern::new(s).unwrap()).collect();
        Selector {
            include: p(include),
            exclude: p(exclude),
            host: host.into(),
            hosts: [(
                "a4cf12b7c3d9".to_string(),
                HostName::try_from("gh.example.com".to_string()).unwrap(),
            )]
            .into(),
            column: Column::Fixed(TestName::try_from("sensors".to_string()).unwrap()),
        }
    }

    #[test]
    fn host_names() {
        for (raw, want) in [
            ("Greenhouse", "greenhouse"),
            ("Garage BME280 / west", "garage-bme280-west"),
            ("weather_sensor", "weather_sensor"),
            ("Küche 1", "k-che-1"),
            ("..a..b..", "a.b"),
            ("  ", ""),
            ("<script>", "script"),
        ] {
            assert_eq!(host_name_of(raw), want, "{raw}");
        }
    }

    #[test]
    fn include_exclude_by_name_id_or_node() {
        let s = selector(
            &["zigbee2mqtt_*", "greenhouse"],
            &["*_bridge_*", "0xdead*"],
            "{device}",
        );
        assert!(s.wants(
            &dev(Some("weather"), &["zigbee2mqtt_0x0017880104e45522"]),
            None
        ));
        assert!(s.wants(&dev(None, &[]), Some("greenhouse")));
        assert!(!s.wants(&dev(Some("other"), &["x"]), Some("node")));
        assert!(!s.wants(&dev(Some("b"), &["zigbee2mqtt_bridge_0x00124b"]), None));
        assert!(!s.wants(&dev(Some("b"), &["zigbee2mqtt_1", "0xdeadbeef"]), None));
        let all = selector(&[], &["garage*"], "{device}");
        assert!(all.wants(&dev(Some("anything"), &[]), None));
        assert!(!all.wants(&dev(Some("garage door"), &[]), None));
    }

    #[test]
    fn hosts_from_map_name_id_or_node() {
        let s = selector(&[], &[], "{device}");
        let h = |d: &Device, n: Option<&str>| s.host(d, n).map(|h| h.to_string());
        assert_eq!(
            h(&dev(Some("Greenhouse"), &["a4cf12b7c3d9"]), None).as_deref(),
            Ok("gh.example.com")
        );
        assert_eq!(
            h(&dev(Some("Weather Sensor"), &["z"]), None).as_deref(),
            Ok("weather-sensor")
        );
        assert_eq!(h(&dev(None, &["A1B2C3"]), None).as_deref(), Ok("a1b2c3"));
        assert_eq!(
            h(&dev(None, &[]), Some("greenhouse")).as_deref(),
            Ok("greenhouse")
        );
        assert!(h(&dev(None, &[]), None).is_err());
        let fixed = selector(&[], &[], "zb-{id}");
        assert_eq!(
            fixed
                .host(&dev(None, &["0x00AB"]), None)
                .map(|h| h.to_string())
                .as_deref(),
            Ok("zb-0x00ab")
        );
    }
}
