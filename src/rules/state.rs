//! A rule's runtime state: its instances and the concrete topics that feed them.
//!
//! Owned by the collector (one per rule test); `offer` takes one matching message. Pure: times are
//! parameters, so `explain` runs the same code with fresh state.

use super::extract::Payload;
use super::instance::{sensor_time, Instance, TopicState, ValueState};
use super::staleness::Seen;
use super::{Rule, Skip};
use crate::filter::Captures;
use crate::names::{HostName, TestName};
use crate::text::short;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;
use tokio::time::Instant;

/// Characters of a payload kept per topic for display (unparsable values show it).
const PAYLOAD_KEEP: usize = 512;

/// What `offer` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub key: (HostName, TestName),
    /// The instance was created by this message.
    pub created: bool,
    /// (value index, number) of values parsed from a live (or sensor-timestamped) message: RRD updates.
    pub numbers: Vec<(usize, f64)>,
}

/// Asked before a rule makes a new instance: whether its host.test is free for the rule, or why not.
pub type Claim<'a> = dyn FnMut(&(HostName, TestName)) -> Result<(), Skip> + 'a;

/// One message whose topic matched a rule's filter.
pub struct Matched<'a> {
    pub topic: &'a str,
    /// The filter's captures of `topic`.
    pub caps: Captures,
    pub raw: &'a [u8],
    pub retained: bool,
}

/// One rule's runtime state: its instances and the topics that feed them.
#[derive(Debug)]
pub struct RuleState {
    pub rule: Rule,
    pub instances: HashMap<(HostName, TestName), Instance>,
    topic_index: HashMap<String, (HostName, TestName)>,
    /// When the `expect` list was last reported.
    pub expect_sent: Option<Instant>,
    pub started: Instant,
}

impl RuleState {
    pub fn new(rule: Rule, now: Instant) -> RuleState {
        RuleState {
            rule,
            instances: HashMap::new(),
            topic_index: HashMap::new(),
            expect_sent: None,
            started: now,
        }
    }

    /// Feeds one message whose topic matched the filter (`caps`), as the only test of the bridge: every
    /// column its names allow is this rule's (`explain` and the tests; the collector uses `offer_owned`).
    pub fn offer(
        &mut self,
        topic: &str,
        caps: Captures,
        raw: &[u8],
        retained: bool,
        now: Instant,
        now_wall: SystemTime,
    ) -> Result<Offered, Skip> {
        let m = Matched {
            topic,
            caps,
            raw,
            retained,
        };
        self.offer_owned(m, now, now_wall, &mut |_| Ok(()))
    }

    /// `offer`, asking `claim` before a new instance is made whether its host.test is free for this rule
    /// (the collector knows the configured tests and the other rules' instances). A refused claim makes
    /// nothing: no instance, no topic tracked.
    pub fn offer_owned(
        &mut self,
        m: Matched<'_>,
        now: Instant,
        now_wall: SystemTime,
        claim: &mut Claim<'_>,
    ) -> Result<Offered, Skip> {
        let Matched {
            topic,
            caps,
            raw,
            retained,
        } = m;
        let (key, created) = match self.topic_index.get(topic) {
            Some(k) => (k.clone(), false),
            None => {
                let key = self.rule.names(&caps)?;
                if self.topic_index.len() >= self.rule.max_topics {
                    return Err(Skip::MaxTopics(self.rule.max_topics));
                }
                let created = !self.instances.contains_key(&key);
                if created {
                    claim(&key)?;
                    if self.instances.len() >= self.rule.max_instances {
                        return Err(Skip::MaxInstances(self.rule.max_instances));
                    }
                }
                self.topic_index.insert(topic.to_string(), key.clone());
                (key, created)
            }
        };
        let rule = &self.rule;
        let inst = self
            .instances
            .entry(key.clone())
            .or_insert_with(|| Instance {
                host: key.0.clone(),
                test: key.1.clone(),
                captures: caps,
                topics: BTreeMap::new(),
                last_sent: None,
                sent_colour: None,
            });
        let payload = Payload::new(raw);
        let (sensor, timestamp_error) = match &rule.timestamp {
            Some((path, text)) => match sensor_time(&payload, path, text) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        let ts = inst
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicState {
                seen: Seen {
                    received: now,
                    sensor_time: None,
                    retained,
                },
                received_wall: now_wall,
                payload: String::new(),
                values: vec![ValueState::default(); rule.values.len()],
                timestamp_error: None,
            });
        ts.seen = Seen {
            received: now,
            sensor_time: sensor,
            retained,
        };
        ts.received_wall = now_wall;
        ts.payload = short(&crate::text::payload_text(raw), PAYLOAD_KEEP);
        ts.timestamp_error = timestamp_error;
        let measurement = !retained || sensor.is_some();
        let mut numbers = Vec::new();
        for (j, (v, vs)) in rule.values.iter().zip(ts.values.iter_mut()).enumerate() {
            let got = v.extractor.extract(&payload);
            if let (Ok(x), true) = (&got, measurement) {
                vs.verdict = Some(vs.colour.step(&v.thresholds, x.number));
                numbers.push((j, x.number));
            }
            if got.is_err() {
                vs.verdict = None;
            }
            vs.last = Some(got);
        }
        Ok(Offered {
            key,
            created,
            numbers,
        })
    }

    /// Expected hosts that have no instance yet.
    pub fn missing_expected(&self) -> Vec<&HostName> {
        self.rule
            .expect
            .iter()
            .filter(|h| !self.instances.keys().any(|(ih, _)| ih == *h))
            .collect()
    }
}
