//! `xymon-mqtt explain --config F TOPIC PAYLOAD`: what the bridge would do with one message, and why.
//!
//! Pure: loads nothing itself, runs the same matching, extraction, threshold and status code as the
//! collector on one message with fresh state (as if it were the first sample of a new instance, received
//! live, not retained), and returns a readable report ending in the exact status text that would be
//! sent. `now` is a parameter so the output is golden-testable.

use crate::filter::Captures;
use crate::plan::Plan;
use crate::rules::{Rule, RuleState};
use crate::status::rule_status;
use crate::text::{payload_text, short};
use std::fmt::Write;
use std::time::SystemTime;
use tokio::time::Instant;

/// The report for one message on `topic` with `payload`, at `now`.
pub fn explain(plan: &Plan, topic: &str, payload: &[u8], now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Topic:   {topic}");
    let _ = writeln!(out, "Payload: {}", short(&payload_text(payload), 200));
    let mut matched = 0;
    // Every test in config order: the plan keeps rule tests apart from the others.
    let mut tests = plan.tests.iter().peekable();
    let mut rules = plan.rules.iter().peekable();
    loop {
        let next_rule = match (tests.peek(), rules.peek()) {
            (Some(t), Some(r)) => r.index < t.index,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => break,
        };
        let _ = writeln!(out);
        if next_rule {
            let Some(r) = rules.next() else { break };
            let broker = &plan.brokers[r.broker].name;
            let _ = write!(
                out,
                "test[{}] rule {} (broker {broker}): ",
                r.index, r.rule.filter
            );
            let caps = match r.rule.filter.match_topic(topic) {
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
            explain_rule(&mut out, r.rule.clone(), topic, caps, payload, now);
        } else {
            let Some(t) = tests.next() else { break };
            let tc = &t.config;
            let listed = t.topics.iter().any(|x| &**x == topic);
            let _ = writeln!(
                out,
                "test[{}] {}.{} (kind {:?}, broker {}): {}",
                t.index,
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
    caps: Captures,
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
    let Some(inst) = st.instances.by_id(offered.instance) else {
        return;
    };
    let ts = inst.topics.first();
    for (j, v) in st.rule.values.iter().enumerate() {
        let how = match &v.extractor.path_text {
            Some(p) => format!("JSONPath {p}"),
            None => "plain number".into(),
        };
        let got = match ts.and_then(|t| t.values[j].last.as_ref()) {
            Some(Ok(x)) => format!("{} (from {:?})", x.number, short(&x.text.as_text(), 60)),
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
    let status = rule_status(&st.rule, inst, &lines, now, 512);
    let _ = writeln!(out, "  status that would be sent:");
    for line in status.to_wire().lines() {
        let _ = writeln!(out, "    | {line}");
    }
}
