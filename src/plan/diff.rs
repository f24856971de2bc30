//! What a reload changes: the running plan's shape against a newly compiled plan, matched by name and
//! fingerprint.
//!
//! Built by the supervisor (`bridge`) when the CLI hands it a new plan on SIGHUP; read by the store
//! (whose values go to which broker), the collector (which tests keep their state), ingest (which
//! sessions stay) and the reload's one log line. Pure: no I/O.

use super::Plan;
use crate::names::BrokerId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{self, Debug, Write as _};
use std::hash::{DefaultHasher, Hasher};

/// A 64-bit hash of a value's `Debug` text, streamed (a test's 100k topics are not copied into a
/// string). `DefaultHasher::new` has fixed keys, so equal configs give equal fingerprints in a process.
pub fn fingerprint(x: &impl Debug) -> u64 {
    struct Feed(DefaultHasher);
    impl fmt::Write for Feed {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut feed = Feed(DefaultHasher::new());
    // Writing into a hasher cannot fail.
    let _ = write!(feed, "{x:?}");
    feed.0.finish()
}

/// What a reload compares: per broker its name and fingerprint, per test (topics and broker-stats tests,
/// then rules, each in plan order) its `host.test` and fingerprint. Small: kept for the running plan
/// while the rest of it is handed to the stages.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    brokers: Vec<(String, u64)>,
    tests: Vec<(String, u64)>,
    rules: Vec<(String, u64)>,
}

impl Shape {
    pub fn of(plan: &Plan) -> Shape {
        let label = |h: &dyn fmt::Display, t: &dyn fmt::Display| format!("{h}.{t}");
        Shape {
            brokers: plan
                .brokers
                .iter()
                .map(|b| (b.name.clone(), b.fingerprint))
                .collect(),
            tests: plan
                .tests
                .iter()
                .map(|t| (label(&t.config.host, &t.config.test), t.fingerprint))
                .collect(),
            rules: plan
                .rules
                .iter()
                .map(|r| {
                    (
                        label(&r.rule.host.as_str(), &r.rule.test.as_str()),
                        r.fingerprint,
                    )
                })
                .collect(),
        }
    }

    /// How `new` relates to this (the running) shape.
    pub fn diff(&self, new: &Shape) -> Diff {
        let broker_from: Vec<Option<BrokerId>> = new
            .brokers
            .iter()
            .map(|(name, _)| self.brokers.iter().position(|(n, _)| n == name))
            .collect();
        let session_kept: Vec<bool> = new
            .brokers
            .iter()
            .zip(&broker_from)
            .map(|((_, fp), from)| from.is_some_and(|o| self.brokers[o].1 == *fp))
            .collect();
        let (test_from, tests) = carry(&self.tests, &new.tests);
        let (rule_from, rules) = carry(&self.rules, &new.rules);
        let mut brokers = Counts::default();
        for ((name, _), kept) in new.brokers.iter().zip(&session_kept) {
            match self.brokers.iter().find(|(n, _)| n == name) {
                None => brokers.added.push(name.clone()),
                Some(_) if *kept => brokers.kept += 1,
                Some(_) => brokers.changed.push(name.clone()),
            }
        }
        for (name, _) in &self.brokers {
            if !new.brokers.iter().any(|(n, _)| n == name) {
                brokers.removed.push(name.clone());
            }
        }
        Diff {
            broker_from,
            session_kept,
            test_from,
            rule_from,
            brokers,
            tests: tests.plus(rules),
        }
    }
}

/// Per new entry, the old one with the same fingerprint (each old one used once), and the counts by
/// label: an old label gone is removed, a new one added, one whose fingerprint differs changed.
fn carry(old: &[(String, u64)], new: &[(String, u64)]) -> (Vec<Option<usize>>, Counts) {
    let mut by_fp: HashMap<u64, VecDeque<usize>> = HashMap::new();
    for (i, (_, fp)) in old.iter().enumerate() {
        by_fp.entry(*fp).or_default().push_back(i);
    }
    let from: Vec<Option<usize>> = new
        .iter()
        .map(|(_, fp)| by_fp.get_mut(fp).and_then(VecDeque::pop_front))
        .collect();
    let old_labels: HashSet<&str> = old.iter().map(|(l, _)| l.as_str()).collect();
    let new_labels: HashSet<&str> = new.iter().map(|(l, _)| l.as_str()).collect();
    let mut counts = Counts::default();
    for ((label, _), f) in new.iter().zip(&from) {
        if f.is_some() {
            counts.kept += 1;
        } else if old_labels.contains(label.as_str()) {
            counts.changed.push(label.clone());
        } else {
            counts.added.push(label.clone());
        }
    }
    for (label, _) in old {
        if !new_labels.contains(label.as_str()) {
            counts.removed.push(label.clone());
        }
    }
    (from, counts)
}

/// The reload's changes of one kind, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub kept: usize,
}

impl Counts {
    fn plus(mut self, other: Counts) -> Counts {
        self.added.extend(other.added);
        self.removed.extend(other.removed);
        self.changed.extend(other.changed);
        self.kept += other.kept;
        self
    }
}

/// Names shown per list in the log line; more are counted.
const NAMES_SHOWN: usize = 5;

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, what: &str, names: &[String]| {
            write!(f, "{} {what}", names.len())?;
            if !names.is_empty() {
                let shown: Vec<&str> = names.iter().take(NAMES_SHOWN).map(String::as_str).collect();
                let more = names.len().saturating_sub(NAMES_SHOWN);
                write!(
                    f,
                    " ({}{})",
                    shown.join(", "),
                    if more > 0 {
                        format!(", {more} more")
                    } else {
                        String::new()
                    }
                )?;
            }
            write!(f, ", ")
        };
        list(f, "added", &self.added)?;
        list(f, "removed", &self.removed)?;
        list(f, "changed", &self.changed)?;
        write!(f, "{} kept", self.kept)
    }
}

/// How a new plan relates to the running one.
#[derive(Debug, Clone)]
pub struct Diff {
    /// Per new broker: the running broker of the same name (its values in the store and its tests'
    /// state carry over).
    pub broker_from: Vec<Option<BrokerId>>,
    /// Per new broker: its session stays (same name, same fingerprint); otherwise it is (re)connected.
    pub session_kept: Vec<bool>,
    /// Per new `topics`/`broker-stats` test: the running test whose state it keeps.
    pub test_from: Vec<Option<usize>>,
    /// Per new rule test: the running rule whose state it keeps.
    pub rule_from: Vec<Option<usize>>,
    pub brokers: Counts,
    /// Tests and rules together.
    pub tests: Counts,
}

/// The reload's one log line: `brokers: 1 added (b), 0 removed, 0 changed, 1 kept; tests: ...`.
impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "brokers: {}; tests: {}", self.brokers, self.tests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(brokers: &[(&str, u64)], tests: &[(&str, u64)], rules: &[(&str, u64)]) -> Shape {
        let own = |v: &[(&str, u64)]| v.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        Shape {
            brokers: own(brokers),
            tests: own(tests),
            rules: own(rules),
        }
    }

    #[test]
    fn brokers_match_by_name_and_keep_their_session_only_when_unchanged() {
        let old = shape(&[("a", 1), ("b", 2), ("c", 3)], &[], &[]);
        let new = shape(&[("c", 3), ("new", 9), ("b", 7)], &[], &[]);
        let d = old.diff(&new);
        assert_eq!(d.broker_from, [Some(2), None, Some(1)]);
        assert_eq!(d.session_kept, [true, false, false]);
        assert_eq!(d.brokers.added, ["new"]);
        assert_eq!(d.brokers.removed, ["a"]);
        assert_eq!(d.brokers.changed, ["b"]);
        assert_eq!(d.brokers.kept, 1);
    }

    #[test]
    fn tests_keep_their_state_only_with_the_same_fingerprint() {
        let old = shape(&[], &[("h.t1", 1), ("h.t2", 2)], &[("{host}.r", 5)]);
        let new = shape(
            &[],
            &[("h.t2", 2), ("h.t1", 10), ("h.t3", 3)],
            &[("{host}.r", 5)],
        );
        let d = old.diff(&new);
        assert_eq!(d.test_from, [Some(1), None, None]);
        assert_eq!(d.rule_from, [Some(0)]);
        assert_eq!(d.tests.changed, ["h.t1"]);
        assert_eq!(d.tests.added, ["h.t3"]);
        assert!(d.tests.removed.is_empty());
        assert_eq!(d.tests.kept, 2);
        assert_eq!(
            d.to_string(),
            "brokers: 0 added, 0 removed, 0 changed, 0 kept; tests: 1 added (h.t3), 0 removed, 1 changed (h.t1), 2 kept"
        );
    }

    #[test]
    fn a_fingerprint_follows_the_debug_text() {
        assert_eq!(fingerprint(&("x", 1)), fingerprint(&("x", 1)));
        assert_ne!(fingerprint(&("x", 1)), fingerprint(&("x", 2)));
    }
}
