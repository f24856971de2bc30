//! The colour of one discovered entity: thresholds by class, device and entity (the rule engine's
//! `Thresholds`, hits and hysteresis), binary_sensor "on" colours, `expire_after` staleness and
//! availability.
//!
//! Pure; times are parameters. `Policy` is compiled once from the config; the discovery state keeps a
//! `Live` per entity, feeds it values (`Live::value`) and availability (`Live::availability`), and asks
//! `Live::judge` when it builds a column. Order of the checks, first that applies wins:
//! 1. availability: a device that said offline shows `offline` colour (default red) with the time;
//!    one that never said anything (topics announced, no message yet) is clear; after "online" the
//!    offline colour stays until the next value arrives;
//! 2. no value yet: clear;
//! 3. the latest message's template failed: `error` colour (default yellow) and the reason;
//! 4. older than `expire_after`: `stale` colour (default yellow);
//! 5. the value: a number through its thresholds (no thresholds: green); a binary_sensor "on" in its
//!    class's colour, "off" green; other text green.

use super::announce::{AvailabilityMode, Entity};
use crate::colour::Colour;
use crate::rules::staleness::{freshness, Freshness, Seen};
use crate::rules::threshold::{ColourState, Step, Thresholds};
use glob::Pattern;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Thresholds and the entities they apply to.
#[derive(Debug, Clone)]
pub struct ThresholdRule {
    pub class: Option<String>,
    pub device: Option<Pattern>,
    pub entity: Option<Pattern>,
    pub thresholds: Thresholds,
}

/// How entities are coloured: compiled once per `[[discovery]]`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub thresholds: Vec<ThresholdRule>,
    pub on_colour: BTreeMap<String, Colour>,
    pub offline: Colour,
    pub stale: Colour,
    pub error: Colour,
}

/// The binary_sensor classes whose "on" is an alarm by default.
const RED_WHEN_ON: [&str; 6] = [
    "smoke",
    "gas",
    "moisture",
    "carbon_monoxide",
    "problem",
    "safety",
];

impl Policy {
    /// The index of the thresholds for an entity: the most specific matching rule (entity over device
    /// over class only), the first among equals.
    pub fn thresholds_for(&self, e: &Entity, device_names: &[&str]) -> Option<usize> {
        let entity_names = [
            e.unique_id.as_deref(),
            Some(&*e.key.object_id),
            e.name.as_deref(),
        ];
        let mut best: Option<(u8, usize)> = None;
        for (i, r) in self.thresholds.iter().enumerate() {
            if r.class
                .as_deref()
                .is_some_and(|c| e.device_class.as_deref() != Some(c))
            {
                continue;
            }
            if r.device
                .as_ref()
                .is_some_and(|p| !device_names.iter().any(|n| p.matches(n)))
            {
                continue;
            }
            if r.entity
                .as_ref()
                .is_some_and(|p| !entity_names.iter().flatten().any(|n| p.matches(n)))
            {
                continue;
            }
            let score = if r.entity.is_some() {
                2
            } else {
                u8::from(r.device.is_some())
            };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// A binary_sensor's colour for "on".
    pub fn on_colour(&self, class: Option<&str>) -> Colour {
        let class = class.unwrap_or("");
        match self.on_colour.get(class) {
            Some(c) => *c,
            None if RED_WHEN_ON.contains(&class) => Colour::Red,
            None => Colour::Green,
        }
    }
}

/// The latest value of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Text(String),
    On,
    Off,
    /// The template gave "None" (HA: unknown).
    Unknown,
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reading::Number(v) => write!(f, "{v}"),
            Reading::Text(s) => f.write_str(s),
            Reading::On => f.write_str("on"),
            Reading::Off => f.write_str("off"),
            Reading::Unknown => f.write_str("unknown"),
        }
    }
}

/// When the latest value came, and whether it was a retained replay: a rule's `Seen` without the
/// sensor's own time, which announced entities do not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    pub retained: bool,
}

impl Received {
    fn seen(self) -> Seen {
        Seen {
            received: self.at,
            sensor_time: None,
            retained: self.retained,
        }
    }
}

/// What is known about one entity now (20,000 of them at fleet size: kept compact).
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub reading: Option<Reading>,
    pub seen: Option<Received>,
    /// The wall-clock time of the latest value, for the status.
    pub seen_wall: Option<SystemTime>,
    pub colour: ColourState,
    /// The last verdict on a number, without its words (`judge` words it): a reason written per
    /// message would cost more than judging it.
    pub step: Option<Step>,
    /// The latest template failure, until a message renders again.
    pub error: Option<Box<str>>,
    pub template_errors: u64,
    /// Per availability topic: available or not, and when that was said.
    pub available: Box<[Option<(bool, Instant, SystemTime)>]>,
    /// The topic that spoke last (for `latest`; an announcement has at most `max_availability`).
    pub latest: Option<u32>,
    /// The device was offline and no value has come since.
    pub was_offline: bool,
}

/// An entity's availability as its topics last said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The entity has no availability topics.
    Always,
    /// It has some, and none has spoken yet.
    Unknown,
    /// Online, since the latest "online" that made it so (absent for `any`/`all` without one).
    Online(Option<SystemTime>),
    /// Offline since then.
    Offline(SystemTime),
}

/// An entity's colour now, and the line that says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub colour: Colour,
    pub reason: String,
}

fn judged(colour: Colour, reason: impl Into<String>) -> Judged {
    Judged {
        colour,
        reason: reason.into(),
    }
}

fn clock(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

impl Live {
    /// A rendered state value. `thresholds` are the entity's; a retained replay of unknown age steps
    /// the hits only when nothing has been stepped yet, so a restart shows the retained value's colour.
    pub fn value(
        &mut self,
        reading: Reading,
        thresholds: Option<&Thresholds>,
        seen: Seen,
        wall: SystemTime,
    ) {
        let first = self.seen.is_none();
        if let (Reading::Number(v), Some(t)) = (&reading, thresholds) {
            if !seen.retained || first {
                let why = self.colour.advance(t, *v);
                self.step = Some(self.colour.last_step(why));
            }
        }
        self.reading = Some(reading);
        self.seen = Some(Received {
            at: seen.received,
            retained: seen.retained,
        });
        self.seen_wall = Some(wall);
        self.error = None;
        self.was_offline = false;
    }

    pub fn template_failed(&mut self, reason: String) {
        self.template_errors += 1;
        self.error = Some(reason.into_boxed_str());
    }

    /// An availability message on topic `i` that read as available or not.
    pub fn availability(
        &mut self,
        mode: AvailabilityMode,
        i: usize,
        available: bool,
        now: Instant,
        wall: SystemTime,
    ) {
        if let Some(slot) = self.available.get_mut(i) {
            *slot = Some((available, now, wall));
            self.latest = u32::try_from(i).ok();
        }
        if matches!(self.availability_state(mode), Some(Err(Some(_)))) {
            self.was_offline = true;
        }
    }

    /// What the dashboard shows: online or offline and since when, or never said.
    pub fn availability_now(&self, mode: AvailabilityMode) -> Availability {
        match self.availability_state(mode) {
            None => Availability::Always,
            Some(Err(None)) => Availability::Unknown,
            Some(Err(Some(since))) => Availability::Offline(since),
            Some(Ok(())) => Availability::Online(
                self.available
                    .iter()
                    .flatten()
                    .filter(|s| s.0)
                    .map(|s| s.2)
                    .max(),
            ),
        }
    }

    /// Available, offline since, or never said; `None` when the entity has no availability topics.
    fn availability_state(&self, mode: AvailabilityMode) -> Option<Result<(), Option<SystemTime>>> {
        if self.available.is_empty() {
            return None;
        }
        let online = |s: &Option<(bool, Instant, SystemTime)>| s.filter(|s| s.0).map(|_| ());
        let offline = self
            .available
            .iter()
            .flatten()
            .filter(|s| !s.0)
            .map(|s| s.2)
            .max();
        Some(match mode {
            AvailabilityMode::Latest => match self
                .latest
                .and_then(|i| self.available.get(i as usize))
                .copied()
                .flatten()
            {
                Some((true, _, _)) => Ok(()),
                Some((false, _, wall)) => Err(Some(wall)),
                None => Err(None),
            },
            AvailabilityMode::All => match self
                .available
                .iter()
                .map(online)
                .collect::<Option<Vec<_>>>()
            {
                Some(_) => Ok(()),
                None => Err(offline),
            },
            AvailabilityMode::Any => match self.available.iter().find_map(online) {
                Some(()) => Ok(()),
                None => Err(offline),
            },
        })
    }

    /// The colour of the entity now.
    /// `thresholds` are the entity's (`Policy::thresholds_for`).
    pub fn judge(
        &self,
        e: &Entity,
        policy: &Policy,
        thresholds: Option<&Thresholds>,
        now: Instant,
        now_wall: SystemTime,
    ) -> Judged {
        if let Some(state) = self.availability_state(e.availability_mode) {
            match state {
                Err(None) => return judged(Colour::Clear, "availability not reported yet"),
                Err(Some(since)) => {
                    return judged(policy.offline, format!("offline since {}", clock(since)))
                }
                Ok(_) if self.was_offline => {
                    return judged(policy.offline, "online again, waiting for the next value")
                }
                Ok(_) => {}
            }
        }
        let (Some(reading), Some(seen)) = (&self.reading, &self.seen) else {
            if let Some(err) = &self.error {
                return judged(policy.error, format!("template failed: {err}"));
            }
            return judged(Colour::Clear, "no value yet");
        };
        if let Some(err) = &self.error {
            return judged(policy.error, format!("template failed: {err}"));
        }
        if let Freshness::Stale { age, limit } =
            freshness(&seen.seen(), e.expire_after, now, now_wall)
        {
            return judged(
                policy.stale,
                format!(
                    "stale: no value for {} (expire_after {})",
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(limit)
                ),
            );
        }
        match reading {
            Reading::Number(_) => match (self.step, thresholds) {
                (Some(step), Some(t)) => judged(step.colour, step.reason(t)),
                _ => judged(Colour::Green, "ok"),
            },
            Reading::On => {
                let c = policy.on_colour(e.device_class.as_deref());
                judged(c, format!("on ({} when on)", c))
            }
            Reading::Unknown => judged(Colour::Clear, "unknown"),
            _ => judged(Colour::Green, "ok"),
        }
    }
}
