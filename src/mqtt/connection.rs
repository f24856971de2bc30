//! Broker connections: the client options for one broker, in either protocol version.
//!
//! Built from the plan's `BrokerPlan`; `open` is used by the permanent session (`mqtt::run`, through
//! the supervisor) and by every snapshot session (`mqtt::snapshot`).

use super::session::{Client, Events};
use crate::config::Protocol;
use crate::plan::BrokerPlan;
use rumqttc::v5;
use rumqttc::{TlsConfiguration, Transport};
use std::sync::Arc;
use std::time::Duration;

/// Requests (subscribe, unsubscribe, disconnect) that may wait for the event loop.
const REQUEST_CAPACITY: usize = 256;

/// How long one connection attempt (TCP, TLS and CONNACK) may take. An attempt that times out is
/// repeated at once (see `mqtt::run`): the wait itself paces the attempts.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// MQTT 3.1.1 cannot tell the broker a packet limit, and rumqttc drops the connection on a packet over
/// its own; the broker would send the same retained message again after every reconnect. So under
/// 3.1.1 the client takes any packet MQTT allows, and the broker's own limit (mosquitto's
/// `message_size_limit`) is what bounds it; the store keeps `max_payload_bytes` of it.
const MQTT311_MAX_PACKET: usize = crate::config::MAX_PACKET_BYTES;

/// QoS 1 and 2 publishes of ours in flight: the bridge publishes nothing, it only subscribes. rumqttc's
/// MQTT 5 client sizes a table by this limit when the session is made (216 bytes a slot), and without it
/// takes 65,535 slots: 14 MB for each session, the snapshot sessions' included.
const OUTGOING_INFLIGHT: u16 = 16;

/// Connection settings for one broker.
#[derive(Clone)]
pub struct Connection {
    /// The broker's name, for log lines and metrics.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    /// The permanent session's client id; snapshot sessions derive theirs from it.
    pub client_id: String,
    /// `Some`: the broker keeps the permanent session this long (clean start off).
    pub session_expiry: Option<Duration>,
    pub keep_alive: Duration,
    pub credentials: Option<(String, String)>,
    pub max_packet_bytes: u32,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Connection {
    pub fn new(b: &BrokerPlan) -> Connection {
        Connection {
            name: b.name.clone(),
            host: b.url.host().to_string(),
            port: b.url.port(),
            protocol: b.protocol,
            client_id: b.client_id.clone(),
            session_expiry: b.session_expiry,
            keep_alive: b.keep_alive,
            credentials: b
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.password.clone())),
            max_packet_bytes: b.max_packet_bytes,
            tls: b.tls.clone(),
        }
    }

    /// The client id of snapshot session `seq` of test `test`: unique per test and per snapshot, and
    /// never the permanent session's, so that sessions never take each other's place at the broker.
    pub fn snapshot_id(&self, test: usize, seq: u64) -> String {
        format!("{}-snap{test}-{seq}", self.client_id)
    }
}

/// Creates the client handle and the event loop of a session with client id `id`; `keep`: the
/// session is kept (`session_expiry`), else clean. Nothing connects until the loop is polled.
pub fn open(c: &Connection, id: String, keep: bool) -> (Client, Events) {
    let transport = c
        .tls
        .as_ref()
        .map(|t| Transport::tls_with_config(TlsConfiguration::Rustls(t.clone())));
    match c.protocol {
        Protocol::V311 => {
            let mut opts = rumqttc::MqttOptions::new(id, c.host.clone(), c.port);
            opts.set_keep_alive(c.keep_alive);
            // The broker decides how long a kept 3.1.1 session lives (mosquitto's
            // `persistent_client_expiration`): 3.1.1 has no expiry field.
            opts.set_clean_session(!keep);
            opts.set_max_packet_size(MQTT311_MAX_PACKET, c.max_packet_bytes as usize);
            if let Some((user, pass)) = &c.credentials {
                opts.set_credentials(user.clone(), pass.clone());
            }
            if let Some(t) = transport {
                opts.set_transport(t);
            }
            let (client, mut events) = rumqttc::AsyncClient::new(opts, REQUEST_CAPACITY);
            events
                .network_options
                .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
            (Client::V311(client), Events::V311(events))
        }
        Protocol::V5 => {
            let mut opts = v5::MqttOptions::new(id, c.host.clone(), c.port);
            opts.set_keep_alive(c.keep_alive);
            opts.set_clean_start(!keep);
            // Announced in CONNECT: the broker never sends a larger packet (MQTT 5, 3.1.2.11.4), so an
            // oversize message is the broker's to drop and cannot cut the connection.
            opts.set_max_packet_size(Some(c.max_packet_bytes));
            let expiry = if keep {
                c.session_expiry
                    .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            } else {
                None
            };
            opts.set_session_expiry_interval(expiry);
            opts.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
            opts.set_outgoing_inflight_upper_limit(OUTGOING_INFLIGHT);
            if let Some((user, pass)) = &c.credentials {
                opts.set_credentials(user.clone(), pass.clone());
            }
            if let Some(t) = transport {
                opts.set_transport(t);
            }
            let (client, events) = v5::AsyncClient::new(opts, REQUEST_CAPACITY);
            (Client::V5(client), Events::V5(events))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plan::Plan;

    /// An MQTT 5 session's outgoing table is sized by `OUTGOING_INFLIGHT`, not by rumqttc's default of
    /// 65,535 slots (14 MB per session).
    #[test]
    fn mqtt5_sessions_keep_a_small_outgoing_table() {
        let toml = "[[broker]]\nname = \"b\"\nurl = \"mqtt://127.0.0.1:1883\"\n";
        let config = Config::from_str_named(toml, std::path::Path::new("t.toml")).unwrap();
        let plan = Plan::compile(&config).unwrap();
        let (_client, events) = open(&Connection::new(&plan.brokers[0]), "t".into(), false);
        let Events::V5(events) = events else {
            panic!("MQTT 5 is the default protocol");
        };
        assert_eq!(
            events.options.get_outgoing_inflight_upper_limit(),
            Some(OUTGOING_INFLIGHT)
        );
    }
}
