//! Who may write which column, as far as the config alone can tell: reserved columns, a rule's `tests`
//! list, and the statuses a rule sends for its `expect` hosts.
//!
//! Called by `Config::validate`; the collector checks what only the running bridge knows (a rule-made
//! host.test against the configured ones and the other rules' instances, `collect::rule_tests`). Every
//! problem here is returned as (key relative to the test, message), so the caller names file, line and key.

use super::{TestConfig, TestKind};
use crate::names::{HostName, TestName, RESERVED_COLUMNS};
use std::collections::HashSet;
use toml::Spanned;

/// A test's own names: a literal `test` must not be a reserved column; `tests` (the names a rule's
/// `{capture}` in `test` may produce) needs such a capture, and lists each name once, none reserved.
pub(super) fn test_names(tc: &TestConfig) -> Option<(&'static str, String)> {
    let literal = !tc.test.as_str().contains('{');
    if literal && tc.test.is_reserved() {
        return Some(("test", reserved(&tc.test)));
    }
    if tc.tests.is_empty() {
        return None;
    }
    if literal {
        return Some((
            "tests",
            "lists the names a `{capture}` in `test` may produce, but `test` has no capture".into(),
        ));
    }
    let mut seen = HashSet::new();
    for t in &tc.tests {
        if t.is_reserved() {
            return Some(("tests", reserved(t)));
        }
        if !seen.insert(t) {
            return Some(("tests", format!("{t:?} is listed twice")));
        }
    }
    None
}

fn reserved(t: &TestName) -> String {
    format!(
        "column {:?} is not the bridge's to write: {} are reserved (`info` and `trends` are xymond's own, `{}` the bridge's)",
        t.as_str(),
        RESERVED_COLUMNS.join(", "),
        crate::names::BRIDGE_COLUMN,
    )
}

/// The statuses a rule sends for the hosts it `expect`s (HOST.TEST with the rule's literal test) must not
/// write a column that another test defines. Returns the index of the first rule that would, and why.
pub(super) fn expected_hosts(
    tests: &[Spanned<TestConfig>],
    columns: &HashSet<(HostName, TestName)>,
) -> Option<(usize, String)> {
    let mut claimed: HashSet<(&str, &str)> = HashSet::new();
    for (i, t) in tests.iter().enumerate() {
        let tc = t.get_ref();
        if tc.kind != TestKind::Rule || tc.test.as_str().contains('{') {
            continue;
        }
        for h in &tc.expect {
            let pair = (h.as_str(), tc.test.as_str());
            // The rule's own literal host.test is its own column.
            let own = tc.host.as_str() == h;
            let configured = columns
                .iter()
                .any(|(ch, ct)| ch.as_str() == pair.0 && ct.as_str() == pair.1);
            if (configured && !own) || !claimed.insert(pair) {
                return Some((
                    i,
                    format!(
                        "expected host {h:?} would write {h}.{}, a column another test writes",
                        tc.test
                    ),
                ));
            }
        }
    }
    None
}
