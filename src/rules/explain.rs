//! `xymon-mqtt explain --config F TOPIC PAYLOAD`: what the bridge would do with one message, and why.
//!
//! Pure: loads nothing itself, runs the same matching, extraction, threshold and status code as the
//! collector on one message with fresh state (as if it were the first sample of a new instance, received
//! live, not retained), and returns a readable report ending in the exact status text that would be
//! sent. `now` is a parameter so the output is golden-testable.

use super::{Rule, RuleState};
use crate::config::{Config, TestKind};
use std::fmt::Write;
use std::time::SystemTime;
use tokio::time::Instant;

pub fn explain(config: &Config, topic: &str, payload: &[u8], now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Topic:   {topic}");
    let _ = writeln!(
        out,
        "Payload: {}",
        super::short(&crate::xymon::sanitize::payload_text(payload), 200)
    );
    let mut matched = 0;
    for (i, t) in config.tests.iter().enumerate() {
        let tc = t.get_ref();
        let _ = writeln!(out);
        match tc.kind {
            TestKind::Topics | TestKind::BrokerStats => {
                let listed = tc.topic_list().iter().any(|x| &**x == topic);
                let _ = writeln!(
                    out,
                    "test[{i}] {}.{} (kind {:?}, broker {}): {}",
                    tc.host,
                    tc.test,
                    tc.kind,
                    tc.broker,
                    if listed {
                        "the topic is listed (this test collects it in a round)"
                    } else {
                        "no match: the topic is not in its `topics`"
                    }
                );
                if listed {
                    matched += 1;
                }
            }
            TestKind::Rule => {
                let Ok(rule) = Rule::compile(tc) else {
                    continue;
                };
                let _ = write!(
                    out,
                    "test[{i}] rule {} (broker {}): ",
                    rule.filter, tc.broker
                );
                let caps = match rule.filter.match_topic(topic) {
                    Ok(c) => c,
                    Err(why) => {
                        let _ = writeln!(out, "no match: {why}");
                        continue;
                    }
                };
                matched += 1;
                let shown: Vec<String> = caps.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                let _ = writeln!(
                    out,
                    "MATCH, captures: {}",
                    if shown.is_empty() {
                        "none".into()
                    } else {
                        shown.join(", ")
                    }
                );
                explain_rule(&mut out, rule, topic, caps, payload, now);
            }
        }
    }
    let _ = writeln!(out);
    if matched == 0 {
        let _ = writeln!(
            out,
            "Result: no test matches this topic, so the bridge ignores the message."
        );
    } else {
        let _ = writeln!(out, "Result: {matched} test(s) match.");
    }
    out
}

fn explain_rule(
    out: &mut String,
    rule: Rule,
    topic: &str,
    caps: super::filter::Captures,
    payload: &[u8],
    now: SystemTime,
) {
    let t0 = Instant::now();
    let mut st = RuleState::new(rule, t0);
    let offered = match st.offer(topic, caps, payload, false, t0, now) {
        Ok(o) => o,
        Err(skip) => {
            let _ = writeln!(out, "  skipped, no status: {skip}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "  host {:?} (template {:?}), test {:?} (template {:?})",
        offered.key.0.as_str(),
        st.rule.host.as_str(),
        offered.key.1.as_str(),
        st.rule.test.as_str()
    );
    let Some(inst) = st.instances.get(&offered.key) else {
        return;
    };
    let ts = inst.topics.values().next();
    for (j, v) in st.rule.values.iter().enumerate() {
        let how = match &v.extractor.path_text {
            Some(p) => format!("JSONPath {p}"),
            None => "plain number".into(),
        };
        let got = match ts.and_then(|t| t.values[j].last.as_ref()) {
            Some(Ok(x)) => format!("{} (from {:?})", x.number, super::short(&x.text, 60)),
            Some(Err(e)) => format!("unparsable: {e}"),
            None => "-".into(),
        };
        let _ = writeln!(out, "  value {:?} via {how}: {got}", v.name);
        let th = &v.thresholds;
        let _ = writeln!(
            out,
            "    thresholds: yellow {}, red {}, hits {}, hysteresis {}{}",
            th.yellow.map_or("-".into(), |c| c.to_string()),
            th.red.map_or("-".into(), |c| c.to_string()),
            th.hits,
            th.hysteresis,
            if v.rrd { ", rrd" } else { "" }
        );
    }
    let lines = inst.evaluate(&st.rule, t0, now);
    for l in &lines {
        let _ = writeln!(out, "  {} {}: {}", l.colour, l.name, l.reason);
    }
    let status = crate::status::rule_status(&st.rule, inst, &lines, now, 512);
    let _ = writeln!(out, "  status that would be sent:");
    for line in status.to_wire().lines() {
        let _ = writeln!(out, "    | {line}");
    }
}
