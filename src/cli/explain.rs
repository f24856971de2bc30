//! `xymon-mqtt explain --config F TOPIC PAYLOAD`: what the bridge would do with one message, and why.
//!
//! Pure: loads nothing itself, runs the same matching, extraction, threshold and status code as the
//! collector on one message with fresh state (as if it were the first sample of a new instance, received
//! live, not retained), and returns a readable report ending in the exact status text that would be
//! sent. `now` is a parameter so the output is golden-testable. Home Assistant announcements given with
//! the message (`--announce`) are read first, so a state topic of a discovered entity can be explained.

use crate::names::{HostName, TestName};
use crate::plan::{Plan, RulePlan};
use crate::rules::{Matched, RuleState, Skip};
use crate::status::rule_status;
use crate::text::{payload_text, short};
use std::fmt::Write;
use std::time::SystemTime;
use tokio::time::Instant;

/// The report for one message on `topic` with `payload`, at `now`.
pub fn explain(plan: &Plan, topic: &str, payload: &[u8], now: SystemTime) -> String {
    explain_with(plan, &[], topic, payload, now)
}

/// As `explain`, with Home Assistant announcements (config topic, payload) read first, as a discovery
/// session reads the retained ones: a state or availability topic of an announced entity is then
/// explained too (the entity, the template's result, the colour).
pub fn explain_with(
    plan: &Plan,
    announcements: &[(String, Vec<u8>)],
    topic: &str,
    payload: &[u8],
    now: SystemTime,
) -> String {
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
            let m = Matched {
                topic,
                caps,
                raw: payload,
                retained: false,
            };
            explain_rule(&mut out, plan, r, m, now);
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
    matched += super::explain_discovery::report(&mut out, plan, announcements, topic, payload, now);
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

/// Whether rule `r` may write `key`, as far as the config tells: not a `topics` or `broker-stats` test's
/// column, nor another rule's literal one. (Which instances other rules made first only the running
/// bridge knows.)
fn claim_of<'a>(
    plan: &'a Plan,
    r: &'a RulePlan,
) -> impl FnMut(&(HostName, TestName)) -> Result<(), Skip> + 'a {
    move |key| {
        let column = || format!("{}.{}", key.0, key.1);
        if plan
            .tests
            .iter()
            .any(|t| t.config.host == key.0 && t.config.test == key.1)
        {
            return Err(Skip::ConfiguredColumn(column()));
        }
        let literal = |o: &RulePlan| {
            o.rule.host.is_literal()
                && o.rule.test.is_literal()
                && o.rule.host.as_str() == key.0.as_str()
                && o.rule.test.as_str() == key.1.as_str()
        };
        if plan.rules.iter().any(|o| o.index != r.index && literal(o)) {
            return Err(Skip::OtherRuleColumn(column()));
        }
        Ok(())
    }
}

fn explain_rule(out: &mut String, plan: &Plan, r: &RulePlan, m: Matched<'_>, now: SystemTime) {
    let t0 = Instant::now();
    let mut st = RuleState::new(r.rule.clone(), t0);
    let mut claim = claim_of(plan, r);
    let offered = match st.offer_owned(m, t0, now, &mut claim) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures;

    /// `explain` says why a rule-made column is refused, as far as the config tells.
    #[test]
    fn explain_names_columns_a_rule_may_not_write() {
        let config = fixtures::config(
            "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\n\
             [[test]]\nbroker = \"local\"\nhost = \"harness\"\ntest = \"mqtt\"\ntopics = [\"harness/load\"]\n\
             [[test]]\nbroker = \"local\"\ntopic = \"t/{host}/{t}\"\nhost = \"{host}\"\ntest = \"{t}\"\n  [[test.value]]\n  name = \"v\"\n",
        );
        let plan = Plan::compile(&config).unwrap();
        let now = SystemTime::UNIX_EPOCH;
        for (topic, says) in [
            (
                "t/harness/mqtt",
                "derived column harness.mqtt belongs to a configured test",
            ),
            ("t/h/trends", "derived test \"trends\" is a reserved column"),
            ("t/h/env", "status that would be sent"),
        ] {
            let report = explain(&plan, topic, b"1", now);
            assert!(report.contains(says), "{topic}:\n{report}");
        }
    }
}
