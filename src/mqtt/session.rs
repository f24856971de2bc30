//! One MQTT session, whatever the protocol version: rumqttc's MQTT 3.1.1 and MQTT 5 clients behind one
//! small interface, so the session loop (`mqtt::run`) and the snapshot sessions are written once.
//!
//! Built by `connection::open`; polled by `mqtt::run` and `mqtt::snapshot`. Each poll turns either
//! client's event into the bridge's own `SessionEvent`; a message is moved, never copied (MQTT 5
//! topics stay the packet's bytes and are checked for UTF-8 in place).

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, SubscribeReasonCode as Code5};
use rumqttc::{Event, Packet, QoS, SubscribeReasonCode as Code4};

/// The client handle: queues requests for the event loop.
pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The event loop: connects, reconnects when polled after an error, and yields what happened.
// The MQTT 5 loop is the larger; there is one per session, so the difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Events {
    V311(rumqttc::EventLoop),
    V5(v5::EventLoop),
}

/// What a poll yielded.
#[derive(Debug)]
pub enum SessionEvent {
    Message(Message),
    /// The broker accepted the connection.
    Connected {
        session_present: bool,
    },
    /// The answer to one SUBSCRIBE: per filter, in order, the granted QoS or why it was refused.
    SubAck(Vec<Result<u8, String>>),
    /// Our DISCONNECT went out.
    Disconnecting,
    Other,
}

/// A PUBLISH from the broker.
#[derive(Debug)]
pub struct Message {
    pub topic: Topic,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// A topic as the client decoded it: MQTT 3.1.1's as a `String`, MQTT 5's as the packet's bytes.
#[derive(Debug)]
pub enum Topic {
    Text(String),
    Raw(Bytes),
}

impl Topic {
    /// The topic, or `None` when an MQTT 5 broker sent one that is not UTF-8 (a protocol violation).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Topic::Text(s) => Some(s),
            Topic::Raw(b) => std::str::from_utf8(b).ok(),
        }
    }

    /// Its length in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            Topic::Text(s) => s.len(),
            Topic::Raw(b) => b.len(),
        }
    }
}

/// Why a poll failed. The next poll reconnects.
#[derive(Debug)]
pub struct SessionError {
    /// The connection attempt got no answer in time (a broker that accepts TCP connections but does not
    /// answer, such as a stopped process, or packets lost on the way).
    pub timed_out: bool,
    /// In words, for the log, the API and statuses (partly the broker's words: untrusted text).
    pub message: String,
}

impl Client {
    /// Queues one SUBSCRIBE of `filters`. The broker replays their retained messages every time (MQTT
    /// 5's retain handling 0, MQTT 3.1.1's only behaviour), also for a filter a kept session had already:
    /// they arrive flagged retained, and the store is filled again after a restart.
    ///
    /// # Errors
    /// The request queue is full or the event loop has gone.
    pub fn subscribe(&self, filters: Vec<(String, QoS)>) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .try_subscribe_many(
                    filters
                        .into_iter()
                        .map(|(path, qos)| rumqttc::SubscribeFilter::new(path, qos)),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(
                    filters
                        .into_iter()
                        .map(|(path, qos)| v5::mqttbytes::v5::Filter::new(path, qos5(qos))),
                )
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues one UNSUBSCRIBE of `filter` (a reload dropped it; a discovery session dropped a removed
    /// entity's topic).
    ///
    /// # Errors
    /// The request queue is full or the event loop has gone.
    pub fn unsubscribe(&self, filter: String) -> Result<(), String> {
        match self {
            Client::V311(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
        }
    }

    /// Queues a DISCONNECT (normal disconnection: the broker keeps a session that has an expiry).
    pub fn disconnect(&self) {
        // Fails only when the event loop is gone, and then there is nobody to say goodbye to.
        match self {
            Client::V311(c) => {
                let _ = c.try_disconnect();
            }
            Client::V5(c) => {
                let _ = c.try_disconnect();
            }
        }
    }
}

impl Events {
    /// The next event; after an error, the next call reconnects.
    ///
    /// # Errors
    /// The connection failed or was lost.
    pub async fn poll(&mut self) -> Result<SessionEvent, SessionError> {
        match self {
            Events::V311(e) => e.poll().await.map(event4).map_err(|e| error4(&e)),
            Events::V5(e) => e.poll().await.map(event5).map_err(|e| error5(&e)),
        }
    }
}

fn event4(e: Event) -> SessionEvent {
    match e {
        Event::Incoming(Packet::Publish(p)) => SessionEvent::Message(Message {
            topic: Topic::Text(p.topic),
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
        }),
        Event::Incoming(Packet::ConnAck(c)) => SessionEvent::Connected {
            session_present: c.session_present,
        },
        Event::Incoming(Packet::SubAck(ack)) => SessionEvent::SubAck(
            ack.return_codes
                .into_iter()
                .map(|c| match c {
                    Code4::Success(q) => Ok(q as u8),
                    // MQTT 3.1.1's SUBACK has one failure code (0x80) and no reason.
                    Code4::Failure => Err("refused (MQTT 3.1.1 gives no reason)".into()),
                })
                .collect(),
        ),
        Event::Outgoing(rumqttc::Outgoing::Disconnect) => SessionEvent::Disconnecting,
        _ => SessionEvent::Other,
    }
}

fn event5(e: v5::Event) -> SessionEvent {
    match e {
        v5::Event::Incoming(Packet5::Publish(p)) => SessionEvent::Message(Message {
            topic: Topic::Raw(p.topic),
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
        }),
        v5::Event::Incoming(Packet5::ConnAck(c)) => SessionEvent::Connected {
            session_present: c.session_present,
        },
        v5::Event::Incoming(Packet5::SubAck(ack)) => {
            let said = ack
                .properties
                .and_then(|p| p.reason_string)
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            SessionEvent::SubAck(
                ack.return_codes
                    .into_iter()
                    .map(|c| match c {
                        Code5::Success(q) => Ok(q as u8),
                        refused => Err(format!("{}{said}", reason5(refused))),
                    })
                    .collect(),
            )
        }
        v5::Event::Outgoing(rumqttc::Outgoing::Disconnect) => SessionEvent::Disconnecting,
        _ => SessionEvent::Other,
    }
}

/// MQTT 5's SUBACK reason codes in words.
fn reason5(c: Code5) -> &'static str {
    match c {
        Code5::Success(_) => "granted",
        Code5::NotAuthorized => "not authorized (0x87)",
        Code5::TopicFilterInvalid => "topic filter invalid (0x8F)",
        Code5::QuotaExceeded => "quota exceeded (0x97)",
        Code5::SharedSubscriptionsNotSupported => "shared subscriptions not supported (0x9E)",
        Code5::WildcardSubscriptionsNotSupported => "wildcard subscriptions not supported (0xA2)",
        Code5::SubscriptionIdNotSupported => "subscription identifiers not supported (0xA1)",
        Code5::PkidInUse => "packet identifier in use (0x91)",
        Code5::ImplementationSpecific => "implementation specific error (0x83)",
        Code5::Unspecified | Code5::Failure => "unspecified error (0x80)",
    }
}

fn qos5(q: QoS) -> v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn error4(e: &rumqttc::ConnectionError) -> SessionError {
    use rumqttc::ConnectionError as E;
    let message = match e {
        E::NetworkTimeout => {
            "no answer from the broker within the connect timeout (TCP, TLS or CONNACK)".into()
        }
        E::Io(io) => io_words(io),
        E::Tls(t) => tls_words(t),
        E::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        E::MqttState(rumqttc::StateError::AwaitPingResp) => keep_alive_words(),
        E::MqttState(rumqttc::StateError::Io(io)) => io_words(io),
        E::MqttState(rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(io))) => {
            io_words(io)
        }
        other => other.to_string(),
    };
    SessionError {
        timed_out: matches!(e, E::NetworkTimeout),
        message,
    }
}

fn error5(e: &v5::ConnectionError) -> SessionError {
    use v5::ConnectionError as E;
    let message = match e {
        E::Timeout(_) => {
            "no answer from the broker within the connect timeout (TCP, TLS or CONNACK)".into()
        }
        E::Io(io) => io_words(io),
        E::Tls(t) => tls_words(t),
        E::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        E::MqttState(v5::StateError::AwaitPingResp) => keep_alive_words(),
        E::MqttState(v5::StateError::Io(io)) => io_words(io),
        E::MqttState(v5::StateError::Deserialization(v5::mqttbytes::Error::Io(io))) => io_words(io),
        E::MqttState(v5::StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => format!(
            "the broker disconnected us: {reason_code:?}{}",
            reason_string
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        other => other.to_string(),
    };
    SessionError {
        timed_out: matches!(e, E::Timeout(_)),
        message,
    }
}

fn keep_alive_words() -> String {
    "no answer to the keep-alive ping: the broker or the network stalled".into()
}

/// A TLS failure in words: rustls's reason (an unknown issuer, a name mismatch, an expired
/// certificate, an alert from a broker that wants a client certificate) rather than its wrappers.
fn tls_words(e: &rumqttc::TlsError) -> String {
    use rumqttc::TlsError as T;
    match e {
        T::Io(io) => io_words(io),
        T::TLS(tls) => rustls_words(tls),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// An I/O error; one that carries a TLS error (a handshake, or an alert that arrives with the first
/// packet under TLS 1.3) is told as that.
fn io_words(io: &std::io::Error) -> String {
    match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => rustls_words(tls),
        None => io.to_string(),
    }
}

fn rustls_words(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    let hint = match e {
        rustls::Error::AlertReceived(A::CertificateRequired | A::HandshakeFailure) => {
            " (does the broker require a client certificate? client_cert_file, client_key_file)"
        }
        rustls::Error::AlertReceived(A::UnknownCA | A::BadCertificate) => {
            " (the broker does not accept the client certificate)"
        }
        _ => "",
    };
    format!("TLS handshake failed: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::SubAck as SubAck5;

    #[test]
    fn suback_codes_become_granted_qos_or_a_reason() {
        let ack = SubAck5 {
            pkid: 1,
            return_codes: vec![
                Code5::Success(v5::mqttbytes::QoS::AtLeastOnce),
                Code5::NotAuthorized,
            ],
            properties: None,
        };
        let SessionEvent::SubAck(codes) = event5(v5::Event::Incoming(Packet5::SubAck(ack))) else {
            panic!("a SubAck");
        };
        assert_eq!(codes, [Ok(1), Err("not authorized (0x87)".to_string())]);
        let ack = rumqttc::SubAck::new(1, vec![Code4::Failure, Code4::Success(QoS::AtMostOnce)]);
        let SessionEvent::SubAck(codes) = event4(Event::Incoming(Packet::SubAck(ack))) else {
            panic!("a SubAck");
        };
        assert_eq!(codes[1], Ok(0));
        assert!(codes[0].as_ref().is_err_and(|r| r.contains("no reason")));
    }

    #[test]
    fn a_topic_that_is_not_utf8_is_none() {
        assert_eq!(Topic::Raw(Bytes::from_static(b"a/b")).as_str(), Some("a/b"));
        assert_eq!(Topic::Raw(Bytes::from_static(b"a/\xff")).as_str(), None);
        assert_eq!(Topic::Text("t".into()).as_str(), Some("t"));
    }

    /// TLS errors are told by rustls's reason, however deep rumqttc wraps them.
    #[test]
    fn tls_errors_in_words() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
        let words = io_words(&io);
        assert!(
            words.starts_with("TLS handshake failed: received fatal alert: CertificateRequired (does the broker require a client certificate?"),
            "{words}"
        );
        let e = error4(&rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(io)),
        ));
        assert_eq!(e.message, words);
        assert!(!e.timed_out);
        assert!(error4(&rumqttc::ConnectionError::NetworkTimeout).timed_out);
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(io_words(&plain), "refused");
    }
}
