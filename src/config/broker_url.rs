//! A broker's address as the config writes it: `mqtt://host[:port]` or `mqtts://host[:port]` (TLS),
//! checked when the config is read.

use serde::Deserialize;
use std::fmt;

/// Port of `mqtt://` when the URL names none.
const DEFAULT_MQTT_PORT: u16 = 1883;
/// Port of `mqtts://` when the URL names none (IANA's secure-mqtt).
const DEFAULT_MQTTS_PORT: u16 = 8883;

/// `mqtt://host[:port]` (or `tcp://`), or `mqtts://host[:port]` (or `ssl://`) for TLS, split into host,
/// port and transport once, at load time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BrokerUrl {
    raw: String,
    host: String,
    port: u16,
    tls: bool,
}

impl BrokerUrl {
    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `mqtts://`: the connection is TLS, and the host is the name the server's certificate must carry.
    pub fn tls(&self) -> bool {
        self.tls
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let url = url::Url::parse(&raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "scheme {other:?} is not supported; use mqtt://host:port or mqtts://host:port"
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{raw:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(if tls {
            DEFAULT_MQTTS_PORT
        } else {
            DEFAULT_MQTT_PORT
        });
        Ok(BrokerUrl {
            raw,
            host,
            port,
            tls,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
