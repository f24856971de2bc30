//! Brokers behind TLS and passwords, end to end with a real mosquitto (TLS listeners with certificates
//! made by `openssl` at test time, one that requires a client certificate, one with a password file)
//! and a real xymond: data flows over MQTT 5 and 3.1.1 alike, and every certificate or credential
//! problem is named in the log, in /api/v1/brokers and in the broker's statuses.

mod common;

use common::bridge::{logs, xymon_section, RunningBridge};
use common::certs::Certs;
use common::mosquitto::{Setup, TlsFiles};
use common::{free_port, wait_until, Mosquitto, Xymond};
use std::path::Path;
use std::time::Duration;

/// Generous: these are polling bounds, not timing assertions.
const WAIT: Duration = Duration::from_secs(30);

fn tls_broker(certs: &Certs, user: Option<(&str, &str)>) -> Mosquitto {
    Mosquitto::start_with(Setup {
        tls: Some(TlsFiles {
            ca: certs.ca(),
            cert: certs.server_cert(),
            key: certs.server_key(),
            require_certificate: true,
        }),
        user: user.map(|(u, p)| (u.to_string(), p.to_string())),
        dynsec: None,
    })
}

/// A `[[broker]]` table: name, url, then `extra` lines.
fn broker(name: &str, url: &str, extra: &str) -> String {
    format!("[[broker]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

/// A continuous `topics` test `<host>.env` on `broker` reading `topic`.
fn topics_test(host: &str, broker: &str, topic: &str) -> String {
    format!(
        "[[test]]\nhost = \"{host}\"\ntest = \"env\"\nbroker = \"{broker}\"\ntopics = [\"{topic}\"]\n\n"
    )
}

fn ca_line(path: &Path) -> String {
    format!("ca_file = \"{}\"", path.display())
}

/// `mqtts://` with the broker's CA, over MQTT 5 and 3.1.1, by IP and by DNS name, with and without a
/// client certificate: each session gets the message published on the plain listener.
#[test]
fn tls_with_a_ca_file_and_client_certificates_in_both_protocols() {
    let certs = Certs::make();
    let mqtt = tls_broker(&certs, None);
    let xymond = Xymond::start(&["tls5", "tls311", "mtls5", "mtls311"]);
    let ca = ca_line(&certs.ca());
    let client = format!(
        "{ca}\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
        certs.client_cert().display(),
        certs.client_key().display()
    );
    // The 3.1.1 session names the server `localhost`, which the certificate carries as a DNS name.
    let by_name = format!("mqtts://localhost:{}", mqtt.tls_port());
    let mut toml = xymon_section(&xymond);
    toml += &broker("tls5", &mqtt.tls_url(), &ca);
    toml += &broker("tls311", &by_name, &format!("{ca}\nprotocol = \"3.1.1\""));
    toml += &broker("mtls5", &mqtt.mtls_url(), &client);
    toml += &broker(
        "mtls311",
        &mqtt.mtls_url(),
        &format!("{client}\nprotocol = \"3.1.1\""),
    );
    for name in ["tls5", "tls311", "mtls5", "mtls311"] {
        toml += &topics_test(name, name, "secure/t");
    }
    let bridge = RunningBridge::start(&toml);
    for id in 0..4 {
        bridge.wait_subscribed(id);
    }
    mqtt.publish("secure/t", "42", false);
    for host in ["tls5", "tls311", "mtls5", "mtls311"] {
        let s = xymond.wait_for_status(&format!("{host}.env"), WAIT, |s| s.color == "green");
        assert!(
            s.body.contains("&green secure/t = 42"),
            "{host}: {}",
            s.body
        );
    }
    for b in bridge.shared.store.brokers() {
        assert!(b.connected && b.last_error.is_none(), "{b:?}");
    }
    bridge.stop();
}

/// A broker certificate from an unknown CA, and a listener that wants a client certificate the bridge
/// does not have: each is a clear reason, in the log (retried with backoff), in /api/v1/brokers and in
/// the broker-stats status (red, with the reason).
#[test]
fn certificate_problems_are_named_in_the_log_the_api_and_statuses() {
    let certs = Certs::make();
    let mqtt = tls_broker(&certs, None);
    let xymond = Xymond::start(&["wrongca-broker", "nocert-broker"]);
    let web = free_port();
    let mut toml = format!(
        "[web]\nlisten = \"127.0.0.1:{web}\"\n\n{}",
        xymon_section(&xymond)
    );
    toml += &broker("wrongca", &mqtt.tls_url(), &ca_line(&certs.other_ca()));
    toml += &broker("nocert", &mqtt.mtls_url(), &ca_line(&certs.ca()));
    for name in ["wrongca", "nocert"] {
        toml += &format!(
            "[[test]]\nhost = \"{name}-broker\"\ntest = \"mqtt\"\nbroker = \"{name}\"\nkind = \"broker-stats\"\ninterval = \"3s\"\n\n"
        );
    }
    logs();
    let bridge = RunningBridge::start(&toml);

    let s = xymond.wait_for_status("wrongca-broker.mqtt", WAIT, |s| s.color == "red");
    assert!(
        s.body.contains(
            "Cannot reach MQTT broker wrongca: TLS handshake failed: invalid peer certificate: UnknownIssuer"
        ),
        "{}",
        s.body
    );
    let s = xymond.wait_for_status("nocert-broker.mqtt", WAIT, |s| s.color == "red");
    assert!(
        s.body.contains(
            "Cannot reach MQTT broker nocert: TLS handshake failed: received fatal alert: CertificateRequired (does the broker require a client certificate?"
        ),
        "{}",
        s.body
    );

    wait_until(WAIT, "both errors in the API", || {
        let reply = common::web::get(web, "/api/v1/brokers");
        let brokers = reply.json();
        let error = |i: usize| brokers[i]["last_error"].as_str().unwrap_or("").to_string();
        error(0).contains("invalid peer certificate: UnknownIssuer")
            && error(1).contains("received fatal alert: CertificateRequired")
            && brokers[0]["connected"] == false
            && brokers[1]["connected"] == false
    });
    let log = logs();
    let line = log
        .lines()
        .find(|l| l.contains("broker=wrongca") && l.contains("UnknownIssuer"))
        .unwrap_or_else(|| panic!("no log line for wrongca in:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("retrying with backoff"),
        "{line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("broker=nocert") && l.contains("CertificateRequired")),
        "{log}"
    );
    bridge.stop();
}

/// `username` + `password_file` against a broker with a password file, over MQTT 5 and 3.1.1; a wrong
/// password is the broker's refusal, named.
#[test]
fn password_file_credentials_in_both_protocols() {
    let certs = Certs::make();
    let mqtt = tls_broker(&certs, Some(("bridge", "s3cret pass")));
    let xymond = Xymond::start(&["pw5", "pw311"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("password");
    std::fs::write(&good, "s3cret pass\nsecond line is ignored\n").unwrap();
    let bad = dir.path().join("wrong");
    std::fs::write(&bad, "guess\n").unwrap();
    let creds = |file: &Path| {
        format!(
            "username = \"bridge\"\npassword_file = \"{}\"",
            file.display()
        )
    };
    let mut toml = xymon_section(&xymond);
    toml += &broker("pw5", &mqtt.password_url(), &creds(&good));
    toml += &broker(
        "pw311",
        &mqtt.password_url(),
        &format!("{}\nprotocol = \"3.1.1\"", creds(&good)),
    );
    toml += &broker("badpw", &mqtt.password_url(), &creds(&bad));
    toml += &topics_test("pw5", "pw5", "pw/t");
    toml += &topics_test("pw311", "pw311", "pw/t");
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    bridge.wait_subscribed(1);
    mqtt.publish("pw/t", "7", false);
    for host in ["pw5", "pw311"] {
        let s = xymond.wait_for_status(&format!("{host}.env"), WAIT, |s| s.color == "green");
        assert!(s.body.contains("&green pw/t = 7"), "{host}: {}", s.body);
    }
    wait_until(WAIT, "the refusal of a wrong password", || {
        let b = &bridge.shared.store.brokers()[2];
        !b.connected
            && b.last_error.as_deref().is_some_and(|e| {
                e.contains("the broker refused the connection") && e.contains("BadUserNamePassword")
                    || e.contains("NotAuthorized")
            })
    });
    bridge.stop();
}
