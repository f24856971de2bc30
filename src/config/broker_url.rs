//! A broker's address as the config writes it: `mqtt://host[:port]`, checked when the config is read.

use serde::Deserialize;
use std::fmt;

/// Port of `mqtt://` when the URL names none.
const DEFAULT_MQTT_PORT: u16 = 1883;

/// `mqtt://host[:port]` (or `tcp://`), split into host and port once, at load time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BrokerUrl {
    raw: String,
    host: String,
    port: u16,
}

impl BrokerUrl {
    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let url = url::Url::parse(&raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        if url.scheme() != "mqtt" && url.scheme() != "tcp" {
            return Err(format!(
                "scheme {:?} is not supported; use mqtt://host:port",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{raw:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(DEFAULT_MQTT_PORT);
        Ok(BrokerUrl { raw, host, port })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
