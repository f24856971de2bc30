//! Column ownership in the collector: a rule-made host.test that a configured test, another rule's
//! literal or another rule's instance owns, or that is reserved or not in the rule's `tests`, is refused
//! and counted per rule and reason; nothing is sent under it.

use super::tests::{collector_for, routed};
use super::*;
use crate::metrics::RuleLabel;

const CONFIG: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
broker = "local"
host = "greenhouse"
test = "env"
topics = ["sensors/greenhouse/temperature"]

[[test]]
broker = "local"
topic = "any/{host}/{t}"
host = "{host}"
test = "{t}"
  [[test.value]]
  name = "v"

[[test]]
broker = "local"
topic = "env/{host}"
host = "{host}"
test = "env"
  [[test.value]]
  name = "v"

[[test]]
broker = "local"
topic = "lit/x"
host = "lit"
test = "col"
  [[test.value]]
  name = "v"

[[test]]
broker = "local"
topic = "listed/{t}"
host = "h"
test = "{t}"
tests = ["power"]
  [[test.value]]
  name = "v"
"#;

fn sample(topic: &str) -> Sample {
    Sample {
        broker: 0,
        topic: Arc::from(topic),
        route: None,
        payload: Bytes::from_static(b"1"),
        retained: false,
        at: SystemTime::now(),
        queued: None,
    }
}

#[test]
fn rule_made_columns_never_take_another_tests_column() {
    let (mut c, outbox) = collector_for(routed(CONFIG));
    for topic in [
        // a configured test's column
        "any/greenhouse/env",
        // another rule's literal column, before that rule has made it
        "any/lit/col",
        // made by the `env/{host}` rule first, then wanted by the `any/...` rule
        "env/gh1",
        "any/gh1/env",
        // xymond's and the bridge's own columns
        "any/h1/info",
        "any/h1/trends",
        "any/h1/xymon-mqtt",
        // a `tests` list
        "listed/power",
        "listed/other",
        // free
        "any/h1/temp",
        "lit/x",
    ] {
        c.on_sample(sample(topic));
    }
    let metrics = c.metrics.clone();
    let refused = |rule: &str, reason: &str| {
        metrics
            .rule_refused
            .get_or_create(&RuleLabel {
                rule: rule.into(),
                reason: reason.into(),
            })
            .get()
    };
    assert_eq!(refused("any/{host}/{t}", "rule_configured_column"), 1);
    assert_eq!(refused("any/{host}/{t}", "rule_other_rule_column"), 2);
    assert_eq!(refused("any/{host}/{t}", "rule_reserved_column"), 3);
    assert_eq!(refused("listed/{t}", "rule_test_not_listed"), 1);
    assert_eq!(refused("env/{host}", "rule_other_rule_column"), 0);

    let mut sent: Vec<String> = outbox
        .tests()
        .iter()
        .map(|t| format!("{}.{}", t.host, t.test))
        .collect();
    sent.sort();
    assert_eq!(sent, ["gh1.env", "h.power", "h1.temp", "lit.col"]);
    // The refused topics are not tracked, so the same message is refused again (and counted again).
    c.on_sample(sample("any/greenhouse/env"));
    assert_eq!(refused("any/{host}/{t}", "rule_configured_column"), 2);
}
