//! Broker outages in the collector, on tokio's paused clock: told by the store, the collector shows a
//! disconnected broker's continuous tests and rule instances in their outage colour after the grace,
//! keeps them so, and lets them return to their own colour after the reconnect.

use super::tests::{collector_for, routed};
use super::*;
use crate::colour::Colour;

const CONFIG: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
broker = "local"
host = "greenhouse"
test = "env"
window = "200ms"
topics = ["gh/t", "gh/h"]

[[test]]
broker = "local"
topic = "sensors/{host}/env"
host = "{host}"
test = "climate"
outage_colour = "yellow"
  [[test.value]]
  name = "v"
"#;

fn sample(store: &Store, topic: &str, payload: &'static str) -> Sample {
    let ingested = store.ingest(
        0,
        &crate::store::Incoming {
            topic,
            payload: payload.as_bytes(),
            qos: 0,
            retained: false,
            at: SystemTime::now(),
        },
        None,
    );
    let (name, route) = match ingested.registered {
        Some((n, r)) => (n, Some(r)),
        None => (Arc::from(topic), None),
    };
    Sample {
        broker: 0,
        topic: name,
        route,
        payload: Bytes::from_static(payload.as_bytes()),
        retained: false,
        at: SystemTime::now(),
        queued: None,
    }
}

/// (colour, message) of host.test in the outbox.
fn latest(outbox: &Outbox, key: &str) -> (Colour, String) {
    let t = outbox
        .tests()
        .into_iter()
        .find(|t| format!("{}.{}", t.host, t.test) == key)
        .unwrap_or_else(|| panic!("{key} never sent"));
    (t.colour, t.message.to_string())
}

#[tokio::test(start_paused = true)]
async fn an_outage_shows_within_the_grace_and_ends_with_the_reconnect() {
    let r = routed(CONFIG);
    let store = r.store.clone();
    let (collector, outbox) = collector_for(r);
    let (tx, rx) = mpsc::channel(16);
    let run = tokio::spawn(collector.run(rx, mpsc::channel(1).1));
    let settle = || tokio::time::sleep(Duration::from_millis(10));
    store.set_connected(0, true, None);
    for (t, p) in [("gh/t", "21"), ("gh/h", "50"), ("sensors/gh1/env", "7")] {
        tx.send(sample(&store, t, p)).await.unwrap();
    }
    settle().await;
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Green);
    assert_eq!(latest(&outbox, "gh1.climate").0, Colour::Green);

    // A blip shorter than the grace (the smallest window, 200 ms) shows nothing.
    store.set_connected(0, false, Some("connection reset".into()));
    settle().await;
    store.set_connected(0, true, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Green);

    store.set_connected(0, false, Some("connection refused".into()));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (colour, text) = latest(&outbox, "greenhouse.env");
    assert_eq!(colour, Colour::Clear, "{text}");
    assert!(
        text.contains("&clear MQTT broker local is not connected since"),
        "{text}"
    );
    assert!(text.contains(": connection refused"), "{text}");
    let (colour, text) = latest(&outbox, "gh1.climate");
    assert_eq!(
        colour,
        Colour::Yellow,
        "the rule's own outage_colour: {text}"
    );

    // A round that a queued sample opens during the outage closes into the outage status too.
    tx.send(sample(&store, "gh/t", "22")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Clear);
    // The outage is repeated while it lasts (its statuses would expire otherwise): every 5 minutes (the
    // test's interval, shorter than half its lifetime) for the test, every minute for the instance.
    let mut sent = outbox.subscribe();
    tokio::time::sleep(Duration::from_secs(700)).await;
    let mut count = std::collections::HashMap::<String, usize>::new();
    while let Ok(key) = sent.try_recv() {
        *count.entry(key).or_default() += 1;
    }
    assert_eq!(count.get("greenhouse.env"), Some(&2), "{count:?}");
    assert!(count.get("gh1.climate") >= Some(&10), "{count:?}");
    assert_eq!(count.len(), 2, "{count:?}");
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Clear);

    // Back: the rule instance is evaluated at once, the continuous test at its next round.
    store.set_connected(0, true, None);
    settle().await;
    assert_eq!(latest(&outbox, "gh1.climate").0, Colour::Green);
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Clear);
    for (t, p) in [("gh/t", "23"), ("gh/h", "51")] {
        tx.send(sample(&store, t, p)).await.unwrap();
    }
    settle().await;
    let (colour, text) = latest(&outbox, "greenhouse.env");
    assert_eq!(colour, Colour::Green, "{text}");
    assert!(text.contains("gh/t = 23"), "{text}");

    // Stopping the bridge disconnects without an error: not an outage.
    store.set_connected(0, false, None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(latest(&outbox, "greenhouse.env").0, Colour::Green);
    drop(tx);
    run.await.unwrap();
}
