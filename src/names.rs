//! Validated names every stage shares: Xymon host and test names, MQTT topic names, and the indices
//! that number brokers and registered topics.
//!
//! Imports nothing of the crate. Made by the config loader and by rule captures; read by the status
//! builders, which can then put them on line 1 of a status without further checks. The rules follow
//! what xymond accepts (docs/xymon-protocol.md §1.2): hosts may contain dots (sent as commas), test names
//! may not.

use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// Index of a broker in the config's `[[broker]]` list.
pub type BrokerId = usize;

/// A registered exact topic's index among its broker's registered topics: the store's table and the
/// collector's route table use the same number (the plan's routing order).
pub type RouteId = u32;

/// Longest host name we accept: well above any real FQDN (253) and far below xymond's buffers.
const MAX_HOST_LEN: usize = 253;
/// Longest test (column) name; Xymon pages get unreadable long before this.
const MAX_TEST_LEN: usize = 64;

/// The bridge's own status column (its health as a Xymon test). No configured test and no rule may use it.
pub const BRIDGE_COLUMN: &str = "xymon-mqtt";

/// Columns that no test of the bridge may write: `info` and `trends` are the pseudo-columns xymond and
/// xymongen fill themselves for every host, and `BRIDGE_COLUMN` is the bridge's own.
pub const RESERVED_COLUMNS: [&str; 3] = ["info", "trends", BRIDGE_COLUMN];

/// A Xymon host name as written in hosts.cfg (with dots).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct HostName(String);

impl HostName {
    /// The form xymond expects on the wire: dots replaced by commas (man xymon, "XYMON MESSAGE SYNTAX").
    pub fn wire(&self) -> String {
        self.0.replace('.', ",")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl HostName {
    /// A host template such as `sensor-{host}` (rule tests), kept as written once `sample` (the template
    /// with every capture filled in) is a valid host name. Rule instances build their real names with
    /// `HostName::try_from` on the expanded text.
    pub fn template(raw: String, sample: String) -> Result<HostName, String> {
        HostName::try_from(sample)?;
        Ok(HostName(raw))
    }
}

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if s.is_empty() || s.len() > MAX_HOST_LEN {
            return Err(format!("host name must be 1 to {MAX_HOST_LEN} characters"));
        }
        if !ok_chars {
            return Err(format!(
                "host name {s:?} may contain only letters, digits, '.', '-' and '_'"
            ));
        }
        if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
            return Err(format!("host name {s:?} has an empty dot-separated part"));
        }
        Ok(HostName(s))
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Xymon test (column) name: `[a-z0-9_-]`, so it can never contain the dot that splits HOST.TEST.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct TestName(String);

impl TestName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// One of `RESERVED_COLUMNS`: written by xymond or by the bridge itself, never by a test.
    pub fn is_reserved(&self) -> bool {
        RESERVED_COLUMNS.contains(&self.0.as_str())
    }
}

impl TestName {
    /// As `HostName::template`, for test names.
    pub fn template(raw: String, sample: String) -> Result<TestName, String> {
        TestName::try_from(sample)?;
        Ok(TestName(raw))
    }
}

impl TryFrom<String> for TestName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_TEST_LEN {
            return Err(format!("test name must be 1 to {MAX_TEST_LEN} characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "test name {s:?} may contain only a-z, 0-9, '_' and '-' (Xymon splits HOST.TEST at the last dot)"
            ));
        }
        Ok(TestName(s))
    }
}

impl fmt::Display for TestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A concrete MQTT topic name (no wildcards), as listed in a test's `topics`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct TopicName(Arc<str>);

impl TopicName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the one shared copy every stage uses (ingest, store, collector, web): a topic listed
    /// in the config is held once in memory however many places refer to it.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// One of the bridge's own fixed names (the `$SYS` topics of broker-stats), not checked.
    pub fn from_static(name: &'static str) -> TopicName {
        TopicName(Arc::from(name))
    }
}

impl std::ops::Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Hashes and compares as the `str` it holds (the derives delegate to `Arc<str>`, which does the same).
impl std::borrow::Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopicName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > u16::MAX as usize {
            return Err("topic must be 1 to 65535 bytes".into());
        }
        if s.contains(['+', '#']) {
            return Err(format!(
                "topic {s:?} contains a wildcard; list concrete topics here"
            ));
        }
        if s.contains('\0') {
            return Err("topic contains a NUL character".into());
        }
        Ok(TopicName(Arc::from(s)))
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        struct Case {
            input: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                input: "mqtt-broker",
                ok: true,
            },
            Case {
                input: "broker.example.com",
                ok: true,
            },
            Case {
                input: "gh_1",
                ok: true,
            },
            Case {
                input: "",
                ok: false,
            },
            Case {
                input: "a b",
                ok: false,
            },
            Case {
                input: "a\nb",
                ok: false,
            },
            Case {
                input: "a|b",
                ok: false,
            },
            Case {
                input: ".lead",
                ok: false,
            },
            Case {
                input: "trail.",
                ok: false,
            },
            Case {
                input: "a..b",
                ok: false,
            },
            Case {
                input: "../etc",
                ok: false,
            },
            Case {
                input: "a/b",
                ok: false,
            },
        ];
        for c in cases {
            assert_eq!(
                HostName::try_from(c.input.to_string()).is_ok(),
                c.ok,
                "{:?}",
                c.input
            );
        }
        let h = HostName::try_from("broker.example.com".to_string()).unwrap();
        assert_eq!(h.wire(), "broker,example,com");
    }

    #[test]
    fn test_names() {
        for (input, ok) in [
            ("mqtt", true),
            ("env-1", true),
            ("a_b", true),
            ("Mqtt", false),
            ("mqtt.sub", false),
            ("bad@name", false),
            ("", false),
            ("a b", false),
        ] {
            assert_eq!(
                TestName::try_from(input.to_string()).is_ok(),
                ok,
                "{input:?}"
            );
        }
    }

    #[test]
    fn topic_names() {
        for (input, ok) in [
            ("sensors/greenhouse/temperature", true),
            ("$SYS/broker/bytes/sent", true),
            ("sensors/+/t", false),
            ("sensors/#", false),
            ("", false),
        ] {
            assert_eq!(
                TopicName::try_from(input.to_string()).is_ok(),
                ok,
                "{input:?}"
            );
        }
    }
}
