//! The discovered entities of one `[[discovery]]`: announcements in, values and availability in, the
//! colour of each device column out.
//!
//! Pure; times are parameters. Owned by whoever reads the broker's messages for this block; every
//! message on the broker goes to `offer`, which tells the caller which topics to subscribe to or drop;
//! `view` builds the columns from it.
//! Decisions:
//! - Devices are merged by any identifier or connection across entities, as HA's device registry does
//!   (Tasmota sends the device name only with its status entity); absent fields keep earlier values.
//!   The host is worked out from the merged device when columns are built, so it follows the name.
//! - An unchanged re-announcement is ignored; a changed one updates the entity in place and keeps its
//!   value and colour state; an empty one removes it, and its topics are dropped when no other entity
//!   needs them, so later state messages cannot bring it back.
//! - Templates are compiled at announcement (a syntax error refuses it) and rendered per message; a
//!   failure keeps the last value, is counted per entity and shown until a message renders again. The
//!   `{{ value_json.a.b }}` values of a state topic's readers are selected in one pass over each payload
//!   (`Readers`); what that pass cannot print goes to the template engine.
//! - Bounds: `max_entities` entities (devices are at most as many); every announcement within
//!   `AnnounceLimits`.

use super::announce::{self, Announcement, Device, Entity, EntityKey, Refused};
use super::intern::Interner;
use super::judge::{Live, Policy, Reading};
use super::template::{self, Message, Templates};
use super::{Component, DiscoveryPlan};
use crate::names::{HostName, TestName};
use crate::rules::scan::SimplePaths;
use crate::rules::staleness::Seen;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// Identifiers (and connections) kept per merged device.
const MAX_MERGED_IDS: usize = 64;

/// What one message did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Offered {
    /// Topics to subscribe to now (newly needed by an entity).
    pub subscribe: Vec<String>,
    /// Topics no entity needs any more.
    pub unsubscribe: Vec<String>,
    /// An announcement refused, and why (to log and count).
    pub refused: Option<String>,
    /// A template failed on this message (counted per entity too).
    pub template_errors: u32,
}

pub(super) struct Slot {
    /// As announced, less its device (merged into `devices`) and its unique_id (read only to choose
    /// `thresholds`).
    pub(super) entity: Entity,
    /// A hash of the announcement's payload: an identical re-announcement changes nothing.
    announced: u64,
    /// Index into `devices` (u32 with `thresholds`: 20,000 slots, each 16 bytes smaller).
    pub(super) device: u32,
    /// Index into the policy's thresholds.
    pub(super) thresholds: Option<u32>,
    pub(super) live: Live,
    /// The column the entity is in (the key `by_place` holds, shared); None while its host cannot be
    /// named.
    pub(super) place: Option<Arc<Place>>,
    /// What changed of it since the columns were last taken (`view`).
    pub(super) dirty: Dirty,
}

/// What changed of an entity since its column was last taken; the larger wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dirty {
    #[default]
    Clean,
    /// A new value, as the one before it (its colour may have changed).
    Value,
    /// Anything else the status shows: an announcement, availability, a template error or its end,
    /// the first value, the entity moved.
    Changed,
}

/// The entities reading one state topic, and the one pass over its payloads that selects the values of
/// their `{{ value_json.a.b }}` templates (`rules::scan`) without building the document, when any has
/// such a template. Topics whose readers have the same templates in the same order (a fleet's) share
/// one pass (`DiscoveryState::scans`).
#[derive(Default)]
pub(super) struct Readers {
    keys: Vec<EntityKey>,
    scan: Option<Arc<TopicScan>>,
}

pub(super) struct TopicScan {
    /// The readers' templates in order (the key it is shared under).
    sources: Vec<Option<String>>,
    paths: SimplePaths,
    /// The slot of `keys[i]`'s template in `paths`.
    slots: Vec<Option<usize>>,
}

/// A Xymon column: host and test.
pub type Place = (HostName, TestName);

pub struct DiscoveryState {
    pub(super) plan: DiscoveryPlan,
    pub(super) templates: Templates,
    pub(super) entities: HashMap<EntityKey, Box<Slot>>,
    /// Boxed: a fleet's list grows by doubling, and its spare room is then a pointer per place.
    #[allow(clippy::vec_box)]
    pub(super) devices: Vec<Box<Device>>,
    /// Identifier or `type:value` connection → device index.
    /// Keyed by a hash of the text, with keys random per process (`ids`): the texts themselves would cost
    /// as much again as the devices' own copies, and two of them colliding in 64 random bits is as likely
    /// as a fleet never seeing it.
    device_index: HashMap<u64, u32>,
    ids: std::hash::RandomState,
    /// The entities of each state topic; the key is the copy the entities' `state_topic` share.
    pub(super) by_state: HashMap<Arc<str>, Readers>,
    /// One copy of each text the announcements repeat.
    pub(super) strings: Interner,
    /// The one-pass scans in use, by their readers' templates.
    pub(super) scans: HashMap<Vec<Option<String>>, Arc<TopicScan>>,
    by_availability: HashMap<String, Vec<(EntityKey, usize)>>,
    /// The entities of each column, in key order (a sorted `Vec`: a column holds a few entities, and a
    /// set's node would cost ten times as much).
    pub(super) by_place: BTreeMap<Arc<Place>, Vec<EntityKey>>,
    /// Columns that lost an entity since the columns were last taken: rebuilt, or gone.
    pub(super) left: Vec<Place>,
    /// When the columns were last taken, and where the share re-sent then ended.
    pub(super) last_taken: Option<Instant>,
    pub(super) resend_after: Option<Place>,
    /// Calls of `take_due` so far.
    pub(super) turns: usize,
    /// Announcements refused since start.
    pub refused: u64,
}

fn device_keys(d: &Device) -> impl Iterator<Item = String> + '_ {
    d.identifiers
        .iter()
        .cloned()
        .chain(d.connections.iter().map(|(t, v)| format!("{t}:{v}")))
}

/// The template sources an entity uses: its value template, then its availability topics'.
fn template_sources(e: &Entity) -> impl Iterator<Item = &str> {
    e.value_template
        .as_deref()
        .into_iter()
        .chain(e.availability.iter().filter_map(|a| a.template.as_deref()))
}

/// An announced device field replaces the known one when it is given and differs; whether it did.
fn take_newer<T: PartialEq>(known: &mut Option<T>, announced: Option<T>) -> bool {
    if announced.is_none() || *known == announced {
        return false;
    }
    *known = announced;
    true
}

/// Pushes without the spare room `Vec::push` leaves (four places for the first): the indexes hold a few
/// keys each for thousands of topics and columns, and change only when something is announced.
fn push_exact<T>(v: &mut Vec<T>, x: T) {
    v.reserve_exact(1);
    v.push(x);
}

impl DiscoveryState {
    pub fn new(plan: DiscoveryPlan) -> DiscoveryState {
        DiscoveryState {
            templates: Templates::new(plan.template_fuel, plan.max_template_output),
            plan,
            entities: HashMap::new(),
            devices: Vec::new(),
            device_index: HashMap::new(),
            ids: std::hash::RandomState::new(),
            by_state: HashMap::new(),
            strings: Interner::default(),
            scans: HashMap::new(),
            by_availability: HashMap::new(),
            by_place: BTreeMap::new(),
            left: Vec::new(),
            last_taken: None,
            resend_after: None,
            turns: 0,
            refused: 0,
        }
    }

    pub fn plan(&self) -> &DiscoveryPlan {
        &self.plan
    }

    /// The filter that receives every announcement: `<prefix>/#`.
    pub fn config_filter(&self) -> String {
        format!("{}/#", self.plan.prefix)
    }

    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Every topic the current entities read (state and availability), for a fresh session.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .by_state
            .keys()
            .map(|t| t.to_string())
            .chain(self.by_availability.keys().cloned())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The entities that read `topic` as their state topic, then those that read it for availability.
    pub fn readers(&self, topic: &str) -> Vec<EntityKey> {
        let mut keys: Vec<EntityKey> = self
            .by_state
            .get(topic)
            .map(|r| r.keys.clone())
            .unwrap_or_default();
        for (k, _) in self.by_availability.get(topic).into_iter().flatten() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }

    fn needed(&self, topic: &str) -> bool {
        self.by_state.contains_key(topic) || self.by_availability.contains_key(topic)
    }

    /// One message from the broker.
    pub fn offer(
        &mut self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: Instant,
        wall: SystemTime,
    ) -> Offered {
        let mut out = Offered::default();
        match announce::parse_topic(&self.plan.prefix, &self.plan.components, topic) {
            Ok(Some(key)) => {
                if let Err(reason) = self.announce(key, payload, &mut out) {
                    self.refused += 1;
                    out.refused = Some(format!("{topic}: {reason}"));
                }
                return out;
            }
            Err(e) => {
                self.refused += 1;
                out.refused = Some(e.to_string());
                return out;
            }
            Ok(None) => {}
        }
        let message = Message::new(payload);
        let seen = Seen {
            received: now,
            sensor_time: None,
            retained,
        };
        // Borrowed field by field: the readers of the topic are walked while their slots change.
        let policy = &self.plan.policy;
        if let Some(readers) = self.by_state.get(topic) {
            // One pass selects every reader's value; a payload it cannot read (not JSON) leaves each
            // template to the engine, whose error the entity shows.
            let scanned = readers
                .scan
                .as_ref()
                .and_then(|s| Some((s, s.paths.scan(message.text()).ok()?)));
            for (i, key) in readers.keys.iter().enumerate() {
                let Some(slot) = self.entities.get_mut(key) else {
                    continue;
                };
                let selected = scanned.as_ref().and_then(|(s, values)| {
                    values.get(s.slots.get(i).copied().flatten()?)?.as_ref()
                });
                let ok = state_message(
                    slot,
                    &self.templates,
                    policy,
                    &message,
                    selected,
                    seen,
                    wall,
                );
                out.template_errors += u32::from(!ok);
            }
        }
        for (key, i) in self.by_availability.get(topic).into_iter().flatten() {
            if let Some(slot) = self.entities.get_mut(key) {
                let ok = availability_message(slot, &self.templates, *i, &message, now, wall);
                out.template_errors += u32::from(!ok);
            }
        }
        out
    }

    /// Handles a config payload; Err is the reason it was refused.
    fn announce(
        &mut self,
        key: EntityKey,
        payload: &[u8],
        out: &mut Offered,
    ) -> Result<(), String> {
        let announced = {
            let mut h = std::hash::DefaultHasher::new();
            payload.hash(&mut h);
            h.finish()
        };
        if self
            .entities
            .get(&key)
            .is_some_and(|s| s.announced == announced)
        {
            return Ok(());
        }
        let (mut entity, announced_device) =
            match announce::parse(key, payload, &self.plan.limits).map_err(|e| e.to_string())? {
                Announcement::Remove(key) => {
                    self.remove(&key, out);
                    return Ok(());
                }
                Announcement::Entity { entity, device } => (entity, device),
            };
        // Include and exclude see what is known of the device so far (Tasmota names it in one entity).
        let (device, device_changed) = self.merge_device(announced_device);
        if !self
            .plan
            .selector
            .wants(&self.devices[device], entity.key.node_id.as_deref())
        {
            // A device left out now may have been taken before (a changed name): drop it then.
            self.remove(&entity.key.clone(), out);
            return Ok(());
        }
        if !self.entities.contains_key(&entity.key) && self.entities.len() >= self.plan.max_entities
        {
            return Err(Refused::Invalid {
                key: "max_entities",
                reason: format!("{} entities are kept already", self.plan.max_entities),
            }
            .to_string());
        }
        self.plan.selector.column(&entity)?;
        self.plan
            .selector
            .host(&self.devices[device], entity.key.node_id.as_deref())?;
        self.take_templates(&entity)?;
        let merged = &self.devices[device];
        let names: Vec<&str> = merged
            .name
            .iter()
            .chain(merged.identifiers.iter())
            .map(String::as_str)
            .chain(entity.key.node_id.as_deref())
            .collect();
        let thresholds = self.plan.policy.thresholds_for(&entity, &names);
        // The unique_id only chooses thresholds, which are chosen now: 10,000 devices' ids are not kept.
        entity.unique_id = None;
        let live = match self.entities.get(&entity.key) {
            Some(old) => {
                let mut live = old.live.clone();
                let mut available = std::mem::take(&mut live.available).into_vec();
                available.resize(entity.availability.len(), None);
                live.available = available.into_boxed_slice();
                live
            }
            None => Live {
                available: vec![None; entity.availability.len()].into_boxed_slice(),
                ..Live::default()
            },
        };
        let old = self.entities.get(&entity.key).map(|s| s.entity.clone());
        if let Some(old) = &old {
            self.unindex(old);
            self.release_templates(old);
        }
        let key = entity.key.clone();
        for (i, a) in entity.availability.iter().enumerate() {
            let readers = self.by_availability.entry(a.topic.clone()).or_default();
            push_exact(readers, (key.clone(), i));
        }
        self.share_texts(&mut entity);
        let readers = self.by_state.entry(entity.state_topic.clone()).or_default();
        push_exact(&mut readers.keys, key.clone());
        // Topics the previous version read and nobody reads now.
        for t in old.iter().flat_map(|o| {
            o.availability
                .iter()
                .map(|a| a.topic.as_str())
                .chain([&*o.state_topic])
        }) {
            if !self.needed(t) && !out.unsubscribe.iter().any(|u| u == t) {
                out.unsubscribe.push(t.to_string());
            }
        }
        for t in entity
            .availability
            .iter()
            .map(|a| a.topic.as_str())
            .chain([&*entity.state_topic])
        {
            if !out.subscribe.iter().any(|u| u == t) {
                out.subscribe.push(t.to_string());
            }
        }
        let place = self.place_of(device, &entity);
        let old_place = self.entities.get(&key).and_then(|s| s.place.clone());
        let state_topic = entity.state_topic.clone();
        self.entities.insert(
            key.clone(),
            Box::new(Slot {
                entity: *entity,
                announced,
                // Both fit: devices are at most `max_entities` + 1 (compile bounds it), thresholds
                // are the config's.
                device: device as u32,
                thresholds: thresholds.map(|t| t as u32),
                live,
                place: old_place,
                dirty: Dirty::Changed,
            }),
        );
        self.set_place(&key, place);
        self.rescan(&state_topic);
        if device_changed {
            self.device_changed(device);
        }
        Ok(())
    }

    /// Makes the entity hold the shared copies of its texts: its state topic as `by_state` keys it (the
    /// device's other entities read it too), the rest from `strings`.
    fn share_texts(&mut self, e: &mut Entity) {
        if let Some((topic, _)) = self.by_state.get_key_value(&*e.state_topic) {
            e.state_topic = topic.clone();
        }
        for text in [
            &mut e.name,
            &mut e.value_template,
            &mut e.unit,
            &mut e.device_class,
        ] {
            self.strings.share_opt(text);
        }
        self.strings.share(&mut e.payload_on);
        self.strings.share(&mut e.payload_off);
    }

    /// The column of an entity of device `device`, if its host can be named.
    fn place_of(&self, device: usize, e: &Entity) -> Option<Place> {
        let dev = self.devices.get(device)?;
        let host = self
            .plan
            .selector
            .host(dev, e.key.node_id.as_deref())
            .ok()?;
        let column = self.plan.selector.column(e).ok()?;
        Some((host, column))
    }

    /// Moves entity `key` to column `place` (None: out of every column) and marks it changed.
    fn set_place(&mut self, key: &EntityKey, place: Option<Place>) {
        let Some(slot) = self.entities.get_mut(key) else {
            return;
        };
        slot.dirty = Dirty::Changed;
        if slot.place.as_deref() == place.as_ref() {
            return;
        }
        // The column's entities share its name with `by_place`: one copy per column, not per entity.
        let place = place.map(|p| match self.by_place.get_key_value(&p) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(p),
        });
        let old = std::mem::replace(&mut slot.place, place.clone());
        if let Some(old) = old {
            if let Some(keys) = self.by_place.get_mut(&old) {
                if let Ok(i) = keys.binary_search(key) {
                    keys.remove(i);
                }
                if keys.is_empty() {
                    self.by_place.remove(&old);
                }
            }
            self.left.push(Place::clone(&old));
        }
        if let Some(new) = place {
            let keys = self.by_place.entry(new).or_default();
            if let Err(i) = keys.binary_search(key) {
                keys.reserve_exact(1);
                keys.insert(i, key.clone());
            }
        }
    }

    /// What device `device` says changed (its name names the host; the status shows the rest): every
    /// entity of it is placed again and marked changed. A scan of all entities, done only when a device
    /// really changed.
    fn device_changed(&mut self, device: usize) {
        let keys: Vec<(EntityKey, Option<Place>)> = self
            .entities
            .iter()
            .filter(|(_, s)| s.device as usize == device)
            .map(|(k, s)| (k.clone(), self.place_of(device, &s.entity)))
            .collect();
        for (key, place) in keys {
            self.set_place(&key, place);
        }
    }

    /// The device of an entity, merged with what earlier entities said about it, and whether that
    /// changed what was known of an existing device.
    fn merge_device(&mut self, mut d: Device) -> (usize, bool) {
        for text in [&mut d.model, &mut d.manufacturer, &mut d.sw_version] {
            self.strings.share_opt(text);
        }
        let keys: Vec<u64> = device_keys(&d).map(|k| self.ids.hash_one(k)).collect();
        let found = keys.iter().find_map(|k| self.device_index.get(k).copied());
        let mut changed = false;
        let i = match found {
            Some(i) => {
                let m = &mut self.devices[i as usize];
                for id in d.identifiers {
                    if !m.identifiers.contains(&id) && m.identifiers.len() < MAX_MERGED_IDS {
                        m.identifiers.push(id);
                        changed = true;
                    }
                }
                for c in d.connections {
                    if !m.connections.contains(&c) && m.connections.len() < MAX_MERGED_IDS {
                        m.connections.push(c);
                        changed = true;
                    }
                }
                changed |= take_newer(&mut m.name, d.name);
                for (dst, src) in [
                    (&mut m.model, d.model),
                    (&mut m.manufacturer, d.manufacturer),
                    (&mut m.sw_version, d.sw_version),
                ] {
                    changed |= take_newer(dst, src);
                }
                i as usize
            }
            None => {
                if self.devices.len() >= self.plan.max_entities {
                    self.compact_devices();
                }
                // Kept for as long as its entities: without the spare room the parser's lists have.
                d.identifiers.shrink_to_fit();
                d.connections.shrink_to_fit();
                self.devices.push(Box::new(d));
                self.devices.len() - 1
            }
        };
        for k in keys {
            self.device_index.insert(k, i as u32);
        }
        (i, changed)
    }

    /// Drops the devices no entity refers to any more (entities removed or moved), so announcements that
    /// come and go cannot grow the list: it stays within `max_entities` + 1.
    fn compact_devices(&mut self) {
        let mut map = vec![None; self.devices.len()];
        let mut kept = Vec::new();
        for slot in self.entities.values_mut() {
            let new = *map[slot.device as usize].get_or_insert_with(|| {
                kept.push(std::mem::take(&mut self.devices[slot.device as usize]));
                kept.len() - 1
            });
            slot.device = new as u32;
        }
        self.devices = kept;
        self.device_index = HashMap::new();
        for (i, d) in self.devices.iter().enumerate() {
            for k in device_keys(d) {
                self.device_index.insert(self.ids.hash_one(k), i as u32);
            }
        }
    }

    /// Takes a use of each of the entity's templates; on a syntax error, none (and the reason).
    fn take_templates(&mut self, e: &Entity) -> Result<(), String> {
        let value = e.value_template.iter().map(|s| (&**s, "value_template"));
        let avty = e.availability.iter().filter_map(|a| a.template.as_deref());
        let all: Vec<(&str, &str)> = value
            .chain(avty.map(|s| (s, "availability value_template")))
            .collect();
        for (n, (src, key)) in all.iter().enumerate() {
            if let Err(reason) = self.templates.add(src) {
                for (taken, _) in &all[..n] {
                    self.templates.release(taken);
                }
                return Err(format!("{key}: {reason}"));
            }
        }
        Ok(())
    }

    fn release_templates(&mut self, e: &Entity) {
        for src in template_sources(e) {
            self.templates.release(src);
        }
    }

    /// Builds the one pass over `topic`'s payloads again from its readers' templates.
    fn rescan(&mut self, topic: &str) {
        let Some(readers) = self.by_state.get_mut(topic) else {
            return;
        };
        let sources: Vec<Option<String>> = readers
            .keys
            .iter()
            .map(|k| {
                let src = self.entities.get(k)?.entity.value_template.as_deref()?;
                self.templates.member_names(src).map(|_| src.to_string())
            })
            .collect();
        let scan = if sources.iter().all(Option::is_none) {
            None
        } else if let Some(shared) = self.scans.get(&sources) {
            Some(shared.clone())
        } else {
            let mut paths = SimplePaths::default();
            let slots = sources
                .iter()
                .map(|s| Some(paths.add(self.templates.member_names(s.as_deref()?)?)))
                .collect();
            let scan = Arc::new(TopicScan {
                sources: sources.clone(),
                paths,
                slots,
            });
            self.scans.insert(sources, scan.clone());
            Some(scan)
        };
        let old = std::mem::replace(&mut readers.scan, scan);
        self.release_scan(old);
    }

    /// Forgets a shared scan no topic uses any more.
    fn release_scan(&mut self, scan: Option<Arc<TopicScan>>) {
        // The map's reference and this one.
        if let Some(scan) = scan.filter(|s| Arc::strong_count(s) == 2) {
            self.scans.remove(&scan.sources);
        }
    }

    /// Takes an entity's topics out of the indexes (only its own topics are touched).
    fn unindex(&mut self, old: &Entity) {
        let key = &old.key;
        if let Some(r) = self.by_state.get_mut(&old.state_topic) {
            r.keys.retain(|k| k != key);
            if r.keys.is_empty() {
                let gone = self.by_state.remove(&old.state_topic);
                self.release_scan(gone.and_then(|r| r.scan));
            } else {
                self.rescan(&old.state_topic);
            }
        }
        for a in &old.availability {
            if let Some(v) = self.by_availability.get_mut(&a.topic) {
                v.retain(|(k, _)| k != key);
                if v.is_empty() {
                    self.by_availability.remove(&a.topic);
                }
            }
        }
    }

    fn remove(&mut self, key: &EntityKey, out: &mut Offered) {
        self.set_place(key, None);
        let Some(slot) = self.entities.remove(key) else {
            return;
        };
        self.unindex(&slot.entity);
        self.release_templates(&slot.entity);
        for t in slot
            .entity
            .availability
            .iter()
            .map(|a| a.topic.as_str())
            .chain([&*slot.entity.state_topic])
        {
            if !self.needed(t) && !out.unsubscribe.iter().any(|u| u == t) {
                out.unsubscribe.push(t.to_string());
            }
        }
    }
}

/// A state message for one entity; false when its template failed.
/// `selected` is the value its template selects, when the topic's one pass found it.
fn state_message(
    slot: &mut Slot,
    templates: &Templates,
    policy: &Policy,
    message: &Message,
    selected: Option<&serde_json::Value>,
    seen: Seen,
    wall: SystemTime,
) -> bool {
    let e = &slot.entity;
    let rendered = match &e.value_template {
        Some(src) => match selected.and_then(template::print) {
            Some(s) => Ok(s),
            None => templates.render(src, message),
        },
        None => Ok(message.text().trim().to_string()),
    };
    let s = match rendered {
        Ok(s) => s,
        Err(reason) => {
            slot.live.template_failed(reason);
            slot.dirty = Dirty::Changed;
            return false;
        }
    };
    let reading = match e.key.component {
        _ if s == "None" => Reading::Unknown,
        Component::BinarySensor if s == *e.payload_on => Reading::On,
        Component::BinarySensor if s == *e.payload_off => Reading::Off,
        // HA ignores other binary states and empty sensor results.
        Component::BinarySensor => return true,
        Component::Sensor if s.is_empty() => return true,
        Component::Sensor => match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Reading::Number(v),
            _ => Reading::Text(s),
        },
    };
    // A value after none, after a template error or after the device was offline changes more than
    // the value.
    let live = &slot.live;
    let what = if live.reading.is_none() || live.error.is_some() || live.was_offline {
        Dirty::Changed
    } else {
        Dirty::Value
    };
    slot.dirty = slot.dirty.max(what);
    let thresholds = slot
        .thresholds
        .and_then(|i| policy.thresholds.get(i as usize))
        .map(|r| &r.thresholds);
    slot.live.value(reading, thresholds, seen, wall);
    true
}

/// An availability message for topic `i` of one entity; false when its template failed.
fn availability_message(
    slot: &mut Slot,
    templates: &Templates,
    i: usize,
    message: &Message,
    now: Instant,
    wall: SystemTime,
) -> bool {
    let Some(a) = slot.entity.availability.get(i) else {
        return true;
    };
    slot.dirty = Dirty::Changed;
    let s = match &a.template {
        Some(src) => match templates.render(src, message) {
            Ok(s) => s,
            Err(reason) => {
                slot.live.template_failed(format!("availability: {reason}"));
                return false;
            }
        },
        None => message.text().trim().to_string(),
    };
    let available = if s == a.payload_available {
        true
    } else if s == a.payload_not_available {
        false
    } else {
        return true;
    };
    let mode = slot.entity.availability_mode;
    slot.live.availability(mode, i, available, now, wall);
    true
}
