//! A rule's runtime state: its instances and the concrete topics that feed them.
//!
//! Owned by the collector (one per rule test). A message's topic is looked up first (`instance_of`); a
//! topic seen for the first time goes through `admit`, the one place where a topic becomes an instance
//! (or is refused); then `update` takes the message. `offer` does all three for one message (`explain`).
//! Pure: times are parameters, so `explain` runs the same code with fresh state.
//!
//! Layout (sized for fleets of 100,000 sensors): instances sit in a `Vec` grown by an eighth at a time,
//! found by id, each with its first topic inline. Names are held once: host and test in the instance,
//! with a table of 4-byte ids to find an instance by them; a topic's name (the store's shared copy, when
//! the collector feeds it) in its `TopicState`, with a table of 8-byte (instance, position) entries to
//! find it. Per message: one lookup by topic, and no allocation for a payload whose values all parse.

use super::extract::Payload;
use super::instance::{sensor_time_at, Instance, TopicState, ValueState};
use super::staleness::Seen;
use super::{Rule, Skip};
use crate::filter::Captures;
use crate::names::{HostName, TestName};
use crate::text::short;
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// Characters of a payload kept per topic for display (unparsable values show it).
const PAYLOAD_KEEP: usize = 512;

/// An instance's position in `Instances`.
pub type InstanceId = u32;

/// (value index, number) of the values parsed from a live (or sensor-timestamped) message: RRD updates.
pub type Numbers = SmallVec<[(usize, f64); 4]>;

/// What `offer` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub key: (HostName, TestName),
    pub instance: InstanceId,
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

/// A rule's instances, by id, and by (host, test).
#[derive(Debug, Default)]
pub struct Instances {
    list: Vec<Instance>,
    /// Ids, hashed by (host, test).
    index: HashTable<InstanceId>,
    hasher: RandomState,
}

impl Instances {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = (&HostName, &TestName)> {
        self.list.iter().map(|i| (&i.host, &i.test))
    }

    pub fn values(&self) -> std::slice::Iter<'_, Instance> {
        self.list.iter()
    }

    pub fn by_id(&self, id: InstanceId) -> Option<&Instance> {
        self.list.get(id as usize)
    }

    pub fn by_id_mut(&mut self, id: InstanceId) -> Option<&mut Instance> {
        self.list.get_mut(id as usize)
    }

    fn hash(&self, host: &HostName, test: &TestName) -> u64 {
        self.hasher.hash_one((host.as_str(), test.as_str()))
    }

    /// The id of the instance (host, test).
    pub fn find(&self, host: &HostName, test: &TestName) -> Option<InstanceId> {
        let list = &self.list;
        self.index
            .find(self.hash(host, test), |&id| {
                list.get(id as usize)
                    .is_some_and(|i| i.host == *host && i.test == *test)
            })
            .copied()
    }

    pub fn get(&self, key: &(HostName, TestName)) -> Option<&Instance> {
        self.by_id(self.find(&key.0, &key.1)?)
    }

    pub fn contains_key(&self, key: &(HostName, TestName)) -> bool {
        self.find(&key.0, &key.1).is_some()
    }

    /// Adds an instance that is not there yet; `None` past `InstanceId`'s range.
    fn insert(&mut self, instance: Instance) -> Option<InstanceId> {
        let id = InstanceId::try_from(self.list.len()).ok()?;
        if self.list.len() == self.list.capacity() {
            // By an eighth, not double: instances are kept for good, so a doubled Vec would leave up to
            // half of it unused for the life of the process.
            self.list.reserve_exact((self.list.len() / 8).max(16));
        }
        let h = self.hash(&instance.host, &instance.test);
        self.list.push(instance);
        let Instances {
            list,
            index,
            hasher,
        } = self;
        index.insert_unique(h, id, |&id| {
            list.get(id as usize)
                .map_or(0, |i| hasher.hash_one((i.host.as_str(), i.test.as_str())))
        });
        Some(id)
    }
}

#[cfg(test)]
impl std::ops::Index<(&HostName, &TestName)> for Instances {
    type Output = Instance;
    fn index(&self, key: (&HostName, &TestName)) -> &Instance {
        let id = self.find(key.0, key.1).expect("no such instance");
        &self.list[id as usize]
    }
}

/// The name of topic `p` of instance `i`.
fn topic_name(instances: &Instances, i: InstanceId, p: u32) -> Option<&str> {
    Some(&*instances.by_id(i)?.topics.get(p as usize)?.name)
}

/// One rule's runtime state: its instances and the topics that feed them.
#[derive(Debug)]
pub struct RuleState {
    pub rule: Rule,
    pub instances: Instances,
    /// Every concrete topic taken so far, hashed by name: the instance it feeds and its position among
    /// that instance's topics (where its name is).
    topics: HashTable<(InstanceId, u32)>,
    hasher: RandomState,
    /// When the `expect` list was last reported.
    pub expect_sent: Option<Instant>,
    pub started: Instant,
}

impl RuleState {
    pub fn new(rule: Rule, now: Instant) -> RuleState {
        RuleState {
            rule,
            instances: Instances::default(),
            topics: HashTable::new(),
            hasher: RandomState::new(),
            expect_sent: None,
            started: now,
        }
    }

    /// The instance a topic taken before feeds.
    pub fn instance_of(&self, topic: &str) -> Option<InstanceId> {
        let instances = &self.instances;
        self.topics
            .find(self.hasher.hash_one(topic), |&(i, p)| {
                topic_name(instances, i, p) == Some(topic)
            })
            .map(|&(i, _)| i)
    }

    /// Takes a topic seen for the first time, whose captures are `caps`: the instance it feeds (made now
    /// unless another topic made it already, then `true`), or why the rule refuses it. The one place
    /// where a rule's instances and topics are made. Before a new instance is made, `claim` is asked
    /// whether its host.test is free for this rule (the collector knows the configured tests and the
    /// other rules' instances); a refused claim makes nothing: no instance, no topic tracked.
    pub fn admit(
        &mut self,
        topic: Arc<str>,
        caps: &Captures,
        (now, now_wall): (Instant, SystemTime),
        claim: &mut Claim<'_>,
    ) -> Result<(InstanceId, bool), Skip> {
        let key = self.rule.names(caps)?;
        if self.topics.len() >= self.rule.max_topics {
            return Err(Skip::MaxTopics(self.rule.max_topics));
        }
        let known = self.instances.find(&key.0, &key.1);
        if known.is_none() {
            claim(&key)?;
            if self.instances.len() >= self.rule.max_instances {
                return Err(Skip::MaxInstances(self.rule.max_instances));
            }
        }
        let (host, test) = key;
        let state = TopicState {
            name: topic.clone(),
            seen: Seen {
                received: now,
                sensor_time: None,
                retained: false,
            },
            received_wall: now_wall,
            payload: Box::default(),
            values: vec![ValueState::default(); self.rule.values.len()].into(),
            timestamp_error: None,
        };
        let id = match known {
            Some(id) => id,
            None => self
                .instances
                .insert(Instance {
                    host,
                    test,
                    topics: SmallVec::new(),
                    last_sent: None,
                    sent_colour: None,
                })
                .ok_or(Skip::MaxInstances(self.rule.max_instances))?,
        };
        let RuleState {
            rule,
            instances,
            topics,
            hasher,
            ..
        } = self;
        let hasher = &*hasher;
        let Some(inst) = instances.by_id_mut(id) else {
            return Err(Skip::MaxInstances(rule.max_instances));
        };
        let at = inst
            .topics
            .binary_search_by(|t| t.name.cmp(&topic))
            .unwrap_or_else(|at| at);
        inst.topics.insert(at, state);
        // The instance's topics after `at` moved up one place: so do their entries, from the last one
        // down, so that no entry is taken for another.
        for (q, t) in inst.topics.iter().enumerate().skip(at + 1).rev() {
            let old = u32::try_from(q - 1).unwrap_or(u32::MAX);
            if let Some(entry) = topics.find_mut(hasher.hash_one(&*t.name), |&e| e == (id, old)) {
                entry.1 = old.saturating_add(1);
            }
        }
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        let instances = &*instances;
        topics.insert_unique(hasher.hash_one(&*topic), (id, at), |&(i, p)| {
            topic_name(instances, i, p).map_or(0, |name| hasher.hash_one(name))
        });
        Ok((id, known.is_none()))
    }

    /// Takes one message on `topic`, which feeds instance `id`: its sensor time, its values and their
    /// colour states. Returns the numbers to record.
    pub fn update(
        &mut self,
        id: InstanceId,
        topic: &str,
        raw: &[u8],
        retained: bool,
        now: Instant,
        now_wall: SystemTime,
    ) -> Numbers {
        let mut numbers = Numbers::new();
        let rule = &self.rule;
        let Some(ts) = self
            .instances
            .by_id_mut(id)
            .and_then(|inst| inst.topic_mut(topic))
        else {
            return numbers;
        };
        let payload = Payload::with_paths(raw, rule.simple_paths.as_ref());
        let (sensor, timestamp_error) = match &rule.timestamp {
            Some((path, text)) => match sensor_time_at(&payload, rule.timestamp_slot, path, text) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        ts.seen = Seen {
            received: now,
            sensor_time: sensor,
            retained,
        };
        ts.received_wall = now_wall;
        ts.timestamp_error = timestamp_error.map(String::into_boxed_str);
        let measurement = !retained || sensor.is_some();
        let mut unparsable = false;
        for (j, (v, vs)) in rule.values.iter().zip(ts.values.iter_mut()).enumerate() {
            let got = v.extractor.extract(&payload);
            match &got {
                Ok(x) if measurement => {
                    vs.verdict = Some(vs.colour.advance(&v.thresholds, x.number));
                    numbers.push((j, x.number));
                }
                Ok(_) => {}
                Err(_) => {
                    vs.verdict = None;
                    unparsable = true;
                }
            }
            vs.last = Some(got);
        }
        // Shown only next to an unparsable value of this same message.
        ts.payload = if unparsable {
            short(&crate::text::payload_text(raw), PAYLOAD_KEEP).into()
        } else {
            Box::default()
        };
        numbers
    }

    /// Feeds one message whose topic matched the filter (`caps`), as the only test of the bridge: every
    /// column its names allow is this rule's (the tests; `explain` uses `offer_owned`, the collector
    /// `admit` and `update`).
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

    /// `offer`, with `claim` asked before a new instance is made (see `admit`).
    pub fn offer_owned(
        &mut self,
        m: Matched<'_>,
        now: Instant,
        now_wall: SystemTime,
        claim: &mut Claim<'_>,
    ) -> Result<Offered, Skip> {
        let (id, created) = match self.instance_of(m.topic) {
            Some(id) => (id, false),
            None => self.admit(Arc::from(m.topic), &m.caps, (now, now_wall), claim)?,
        };
        let numbers = self.update(id, m.topic, m.raw, m.retained, now, now_wall);
        let inst = self
            .instances
            .by_id(id)
            .ok_or(Skip::MaxInstances(self.rule.max_instances))?;
        Ok(Offered {
            key: (inst.host.clone(), inst.test.clone()),
            instance: id,
            created,
            numbers: numbers.into_vec(),
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

#[cfg(test)]
mod tests;
