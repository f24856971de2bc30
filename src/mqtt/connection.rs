//! Broker connections: the client options for one broker, and the words for a connection error.
//!
//! Built from the plan's `BrokerPlan`; used by the permanent session (`mqtt::run`) and by every snapshot
//! session (`mqtt::snapshot`).

use crate::plan::BrokerPlan;
use rumqttc::{AsyncClient, ConnectionError, EventLoop, MqttOptions};
use std::time::Duration;

/// Requests (subscribe, unsubscribe, disconnect) that may wait for the event loop; the collector's periodic
/// subscriptions go through here.
const REQUEST_CAPACITY: usize = 256;

/// Connection settings for one broker.
#[derive(Clone)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub credentials: Option<(String, String)>,
    pub max_packet_bytes: usize,
}

impl Connection {
    pub fn new(b: &BrokerPlan) -> Connection {
        Connection {
            host: b.url.host().to_string(),
            port: b.url.port(),
            client_id: b.client_id.clone(),
            keep_alive: b.keep_alive,
            credentials: b
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.password.clone())),
            max_packet_bytes: b.max_packet_bytes,
        }
    }
}

/// Creates the client handle and the event loop; nothing connects until the loop is polled.
pub fn connect(c: Connection) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(c.client_id, c.host, c.port);
    opts.set_keep_alive(c.keep_alive);
    opts.set_clean_session(true);
    opts.set_max_packet_size(c.max_packet_bytes, c.max_packet_bytes);
    if let Some((user, pass)) = c.credentials {
        opts.set_credentials(user, pass);
    }
    AsyncClient::new(opts, REQUEST_CAPACITY)
}

/// A connection error in words (for an I/O error, the OS's own).
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
