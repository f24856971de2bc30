//! One `[[broker]]` resolved: its client id, its credentials and its TLS client configuration, with
//! every file it names read now, so that `check` finds a missing or unreadable file, not the running
//! bridge.
//!
//! Called by `Plan::compile`; the result (`BrokerPlan`) is read by the MQTT stage (`mqtt::Connection`)
//! and, for names and URLs, by the store and the web layer.

use super::first_line;
use crate::config::{BrokerConfig, BrokerUrl, Protocol, MAX_PACKET_BYTES};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One `[[broker]]`, resolved.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    pub name: String,
    pub url: BrokerUrl,
    pub protocol: Protocol,
    /// The config's `client_id`; else `xymon-mqtt-<host>-<name>` for a kept session (stable across
    /// restarts, so the broker finds the session again) and `xymon-mqtt-<name>-<pid>` for a clean one.
    pub client_id: String,
    /// How long the broker keeps the session while the bridge is away; `None`: a clean session.
    pub session_expiry: Option<Duration>,
    pub keep_alive: Duration,
    pub reconnect_max: Duration,
    pub credentials: Option<Credentials>,
    /// `limits.max_packet_bytes`, within MQTT's range.
    pub max_packet_bytes: u32,
    /// `mqtts://`: the TLS client configuration (roots, client certificate).
    pub tls: Option<Arc<ClientConfig>>,
    /// Everything the session depends on, as text (the password included, never shown): a reload
    /// reconnects a broker whose fingerprint changed and leaves the others alone.
    pub fingerprint: u64,
}

/// A user name (empty for a password alone, which only MQTT 5 can send) and the password read from
/// `password_file` (empty without one).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Shows the user, never the password, so a plan can be logged.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"MASKED")
            .finish()
    }
}

/// A problem with one key of a `[[broker]]`: the key, and what is wrong (the file named).
pub(super) type KeyError = (&'static str, String);

/// Resolves one broker; reads its password, CA, certificate and key files.
pub(super) fn resolve(b: &BrokerConfig, max_packet_bytes: usize) -> Result<BrokerPlan, KeyError> {
    let password = match &b.password_file {
        Some(file) => Some(first_line(file).map_err(|e| ("password_file", e))?),
        None => None,
    };
    // Validation refused a password without a user name under 3.1.1.
    let credentials = match (&b.username, password) {
        (None, None) => None,
        (user, password) => Some(Credentials {
            username: user.clone().unwrap_or_default(),
            password: password.unwrap_or_default(),
        }),
    };
    let tls = if b.url.tls() {
        Some(tls_config(b)?)
    } else {
        None
    };
    let secret = credentials.as_ref().map(|c| (&c.username, &c.password));
    let fingerprint = super::diff::fingerprint(&(b, secret, max_packet_bytes));
    Ok(BrokerPlan {
        name: b.name.clone(),
        url: b.url.clone(),
        protocol: b.protocol,
        client_id: client_id(b),
        session_expiry: b.session_expiry.filter(|d| !d.is_zero()),
        keep_alive: b.keep_alive,
        reconnect_max: b.reconnect_max,
        credentials,
        max_packet_bytes: u32::try_from(max_packet_bytes.min(MAX_PACKET_BYTES)).unwrap_or(u32::MAX),
        tls,
        fingerprint,
    })
}

fn client_id(b: &BrokerConfig) -> String {
    match &b.client_id {
        Some(id) => id.clone(),
        None if b.persistent() => format!("xymon-mqtt-{}-{}", host_name(), b.name),
        None => format!("xymon-mqtt-{}-{}", b.name, std::process::id()),
    }
}

/// This machine's host name (`localhost` if it has none).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "localhost".into(),
    }
}

/// The rustls client configuration of an `mqtts://` broker: the CA certificates of `ca_file` (or the
/// system's), and the client certificate and key when given. The server name is the URL's host.
fn tls_config(b: &BrokerConfig) -> Result<Arc<ClientConfig>, KeyError> {
    if ServerName::try_from(b.url.host()).is_err() {
        return Err((
            "url",
            format!(
                "{:?} is neither a DNS name nor an IP address a certificate can name",
                b.url.host()
            ),
        ));
    }
    let roots = match &b.ca_file {
        Some(file) => {
            let mut roots = RootCertStore::empty();
            for (i, cert) in certificates(file)
                .map_err(|e| ("ca_file", e))?
                .into_iter()
                .enumerate()
            {
                roots.add(cert).map_err(|e| {
                    (
                        "ca_file",
                        format!(
                            "{}: certificate {} is not usable: {e}",
                            file.display(),
                            i + 1
                        ),
                    )
                })?;
            }
            roots
        }
        None => system_roots().map_err(|e| ("ca_file", e))?,
    };
    // The provider is named rather than taken from the process default, which is ambiguous (and
    // panics) when another crate enables a second one. rustls deprecates *ring* only for its lack of
    // post-quantum key exchange, which MQTT brokers' TLS stacks (OpenSSL 3.0 in mosquitto 2.0) do not
    // offer either; *ring* builds with a C compiler alone, where aws-lc needs far more.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ("url", format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match (&b.client_cert_file, &b.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert).map_err(|e| ("client_cert_file", e))?;
            let key_der = private_key(key).map_err(|e| ("client_key_file", e))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                (
                    "client_key_file",
                    format!("{} does not go with {}: {e}", key.display(), cert.display()),
                )
            })?
        }
        // Validation requires both or neither.
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The system's CA certificates (as OpenSSL finds them: `SSL_CERT_FILE`, `SSL_CERT_DIR`, or the
/// distribution's bundle).
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "no system CA certificates found{why}; name the broker's CA in `ca_file`"
        ));
    }
    Ok(roots)
}
