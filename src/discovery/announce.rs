//! One discovery announcement: its config topic and its retained JSON payload, read into an `Entity`
//! as Home Assistant reads it, or refused with a reason.
//!
//! Pure. Fed by the discovery state with every message on `<prefix>/#`; what it returns is kept per
//! entity. Decisions (HA's discovery.py, entity.py and schemas.py, see the module docs of `discovery`):
//! - The topic is `<prefix>/<component>/[<node_id>/]<object_id>/config`, ids `[a-zA-Z0-9_-]+`. Other
//!   components, device discovery (`<prefix>/device/...`) and other topics under the prefix are not
//!   ours (`Ok(None)`), not errors.
//! - An empty payload removes the entity.
//! - Everything is bounded (`AnnounceLimits`): payload bytes, topic and text lengths, identifiers and
//!   availability entries; anything past a bound is refused, never cut, so a half-read entity never
//!   shows.
//! - Payload strings as HA's `cv.string` makes them: JSON `true` is "True", numbers print as Python does
//!   for integers (`1`), so `payload_on: false` (Zigbee2MQTT's contact sensor) compares with "False".

use super::abbrev;
use super::Component;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Bounds on one announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceLimits {
    pub max_config_bytes: usize,
    /// Topics, templates and names.
    pub max_text_chars: usize,
    pub max_identifiers: usize,
    pub max_availability: usize,
}

impl Default for AnnounceLimits {
    fn default() -> Self {
        AnnounceLimits {
            max_config_bytes: 16 << 10,
            max_text_chars: 1024,
            max_identifiers: 16,
            max_availability: 8,
        }
    }
}

/// Which entity a config topic announces: HA's identity (component, "node_id object_id").
///
/// The state refers to each entity from several indexes (by key, by state topic, by column); they share
/// one allocation of its parts, so a copy of the key is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey(Arc<KeyParts>);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyParts {
    pub component: Component,
    pub node_id: Option<Box<str>>,
    pub object_id: Box<str>,
}

impl EntityKey {
    pub fn new(component: Component, node_id: Option<&str>, object_id: &str) -> EntityKey {
        EntityKey(Arc::new(KeyParts {
            component,
            node_id: node_id.map(Box::from),
            object_id: Box::from(object_id),
        }))
    }
}

impl std::ops::Deref for EntityKey {
    type Target = KeyParts;

    fn deref(&self) -> &KeyParts {
        &self.0
    }
}

impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node_id {
            Some(n) => write!(f, "{}/{n}/{}", self.component, self.object_id),
            None => write!(f, "{}/{}", self.component, self.object_id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvailabilityMode {
    /// Available when every topic says so.
    All,
    /// Available when one topic says so.
    Any,
    /// The topic that spoke last decides (HA's default).
    #[default]
    Latest,
}

/// One availability topic and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityTopic {
    pub topic: String,
    pub template: Option<String>,
    pub payload_available: String,
    pub payload_not_available: String,
}

/// The `device` block: what names the Xymon host and what the dashboard lists.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Device {
    pub identifiers: Vec<String>,
    /// `[type, value]` pairs such as `["mac", "a4cf12b7c3d9"]`.
    pub connections: Vec<(String, String)>,
    pub name: Option<String>,
    /// Model, manufacturer and version: a fleet repeats them, so the state keeps one copy (`intern`).
    pub model: Option<Arc<str>>,
    pub manufacturer: Option<Arc<str>>,
    pub sw_version: Option<Arc<str>>,
}

/// A sensor or binary_sensor as announced.
///
/// The texts a fleet repeats (name, template, unit, class) and the state topic a device's entities share
/// are shared strings: the state keeps one copy of each (`intern`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub key: EntityKey,
    pub name: Option<Arc<str>>,
    pub unique_id: Option<Box<str>>,
    pub state_topic: Arc<str>,
    pub value_template: Option<Arc<str>>,
    pub unit: Option<Arc<str>>,
    pub device_class: Option<Arc<str>>,
    /// None: never expires (HA's 0 too).
    pub expire_after: Option<Duration>,
    /// HA's defaults "ON" and "OFF" unless announced.
    pub payload_on: Arc<str>,
    pub payload_off: Arc<str>,
    /// Empty: always available.
    pub availability: Vec<AvailabilityTopic>,
    pub availability_mode: AvailabilityMode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Announcement {
    /// An entity, and what it says of its device (kept apart: the state keeps each device once).
    Entity { entity: Box<Entity>, device: Device },
    /// An empty retained config: the entity is gone.
    Remove(EntityKey),
}

/// Why an announcement was refused; shown in the log and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("config topic {0:?} is not <prefix>/<component>/[<node_id>/]<object_id>/config with ids [a-zA-Z0-9_-]")]
    Topic(String),
    #[error("config payload of {bytes} bytes is over the {max}-byte limit")]
    TooLarge { bytes: usize, max: usize },
    #[error("config payload is not a JSON object: {0}")]
    NotJson(String),
    #[error("key `{0}` is required")]
    Missing(&'static str),
    #[error("key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error(
        "`availability` and `availability_topic` are both set; Home Assistant refuses this too"
    )]
    BothAvailability,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Refused {
    Refused::Invalid {
        key,
        reason: reason.into(),
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The entity a config topic names, if it is one of ours. `prefix` has no trailing `/`.
pub fn parse_topic(
    prefix: &str,
    components: &[Component],
    topic: &str,
) -> Result<Option<EntityKey>, Refused> {
    let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
        return Ok(None);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.last() != Some(&"config") {
        return Ok(None);
    }
    let Some(component) = parts.first().and_then(|c| Component::parse(c)) else {
        return Ok(None);
    };
    if !components.contains(&component) {
        return Ok(None);
    }
    let (node_id, object_id) = match parts.as_slice() {
        [_, o, _] => (None, *o),
        [_, n, o, _] => (Some(*n), *o),
        _ => return Err(Refused::Topic(topic.to_string())),
    };
    if !is_id(object_id) || node_id.is_some_and(|n| !is_id(n)) {
        return Err(Refused::Topic(topic.to_string()));
    }
    Ok(Some(EntityKey::new(component, node_id, object_id)))
}

/// Reads a config payload for `key`.
pub fn parse(
    key: EntityKey,
    payload: &[u8],
    limits: &AnnounceLimits,
) -> Result<Announcement, Refused> {
    if payload.is_empty() {
        return Ok(Announcement::Remove(key));
    }
    if payload.len() > limits.max_config_bytes {
        return Err(Refused::TooLarge {
            bytes: payload.len(),
            max: limits.max_config_bytes,
        });
    }
    let obj = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(Refused::NotJson("not an object".into())),
        Err(e) => return Err(Refused::NotJson(e.to_string())),
    };
    let obj = abbrev::expand(obj);
    let r = Reader { obj: &obj, limits };
    if obj.contains_key("availability") && obj.contains_key("availability_topic") {
        return Err(Refused::BothAvailability);
    }
    let state_topic = r
        .topic("state_topic")?
        .ok_or(Refused::Missing("state_topic"))?;
    let expire_after = match obj.get("expire_after") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(0) => None,
            Some(s) if s <= crate::limits::MAX_DURATION.as_secs() => Some(Duration::from_secs(s)),
            _ => {
                return Err(invalid(
                    "expire_after",
                    "must be whole seconds, up to a year",
                ))
            }
        },
    };
    let availability_mode = match r.text("availability_mode")?.as_deref() {
        None | Some("latest") => AvailabilityMode::Latest,
        Some("all") => AvailabilityMode::All,
        Some("any") => AvailabilityMode::Any,
        Some(other) => {
            return Err(invalid(
                "availability_mode",
                format!("{other:?} is not all, any or latest"),
            ))
        }
    };
    let shared = |key| r.text(key).map(|t| t.map(Arc::from));
    let entity = Entity {
        name: shared("name")?,
        unique_id: r.text("unique_id")?.map(String::into_boxed_str),
        value_template: shared("value_template")?,
        unit: shared("unit_of_measurement")?,
        device_class: shared("device_class")?,
        expire_after,
        payload_on: r.text("payload_on")?.map_or_else(|| "ON".into(), Arc::from),
        payload_off: r
            .text("payload_off")?
            .map_or_else(|| "OFF".into(), Arc::from),
        availability: r.availability()?,
        availability_mode,
        state_topic: state_topic.into(),
        key,
    };
    Ok(Announcement::Entity {
        entity: Box::new(entity),
        device: r.device()?,
    })
}

/// Reads typed keys of one (expanded) object within the limits.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    limits: &'a AnnounceLimits,
}

impl Reader<'_> {
    fn text(&self, key: &'static str) -> Result<Option<String>, Refused> {
        text_of(self.obj.get(key), key, self.limits)
    }

    fn topic(&self, key: &'static str) -> Result<Option<String>, Refused> {
        topic_of(self.obj.get(key), key, self.limits)
    }

    fn availability(&self) -> Result<Vec<AvailabilityTopic>, Refused> {
        let payloads = |o: &Map<String, Value>| -> Result<(String, String), Refused> {
            Ok((
                text_of(o.get("payload_available"), "payload_available", self.limits)?
                    .unwrap_or_else(|| "online".into()),
                text_of(
                    o.get("payload_not_available"),
                    "payload_not_available",
                    self.limits,
                )?
                .unwrap_or_else(|| "offline".into()),
            ))
        };
        if let Some(topic) = self.topic("availability_topic")? {
            let (payload_available, payload_not_available) = payloads(self.obj)?;
            return Ok(vec![AvailabilityTopic {
                topic,
                template: self.text("availability_template")?,
                payload_available,
                payload_not_available,
            }]);
        }
        let list = match self.obj.get("availability") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("availability", "must be a list")),
        };
        if list.len() > self.limits.max_availability {
            return Err(invalid(
                "availability",
                format!("more than {} entries", self.limits.max_availability),
            ));
        }
        list.iter()
            .map(|e| {
                let Value::Object(o) = e else {
                    return Err(invalid("availability", "entries must be objects"));
                };
                let (payload_available, payload_not_available) = payloads(o)?;
                Ok(AvailabilityTopic {
                    topic: topic_of(o.get("topic"), "availability.topic", self.limits)?
                        .ok_or(Refused::Missing("availability.topic"))?,
                    template: text_of(
                        o.get("value_template"),
                        "availability.value_template",
                        self.limits,
                    )?,
                    payload_available,
                    payload_not_available,
                })
            })
            .collect()
    }

    fn device(&self) -> Result<Device, Refused> {
        let dev = match self.obj.get("device") {
            None | Some(Value::Null) => return Ok(Device::default()),
            Some(Value::Object(d)) => d,
            Some(_) => return Err(invalid("device", "must be an object")),
        };
        let l = self.limits;
        let identifiers = match dev.get("identifiers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| text_of(Some(v), "device.identifiers", l).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => vec![text_of(Some(v), "device.identifiers", l)?.unwrap_or_default()],
        };
        let connections = match dev.get("connections") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([t, v]) => Ok((
                        text_of(Some(t), "device.connections", l)?.unwrap_or_default(),
                        text_of(Some(v), "device.connections", l)?.unwrap_or_default(),
                    )),
                    _ => Err(invalid(
                        "device.connections",
                        "entries are [type, value] pairs",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(invalid("device.connections", "must be a list")),
        };
        if identifiers.len() + connections.len() > l.max_identifiers {
            return Err(invalid(
                "device.identifiers",
                format!(
                    "more than {} identifiers and connections",
                    l.max_identifiers
                ),
            ));
        }
        Ok(Device {
            identifiers: identifiers.into_iter().filter(|s| !s.is_empty()).collect(),
            connections,
            name: text_of(dev.get("name"), "device.name", l)?.filter(|s| !s.is_empty()),
            model: text_of(dev.get("model"), "device.model", l)?.map(Arc::from),
            manufacturer: text_of(dev.get("manufacturer"), "device.manufacturer", l)?
                .map(Arc::from),
            sw_version: text_of(dev.get("sw_version"), "device.sw_version", l)?.map(Arc::from),
        })
    }
}

/// A string as HA's `cv.string` makes it (booleans "True"/"False", numbers printed), bounded.
fn text_of(
    v: Option<&Value>,
    key: &'static str,
    limits: &AnnounceLimits,
) -> Result<Option<String>, Refused> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(invalid(key, "must be a string")),
    };
    if s.chars().count() > limits.max_text_chars {
        return Err(invalid(
            key,
            format!("longer than {} characters", limits.max_text_chars),
        ));
    }
    if s.contains('\0') {
        return Err(invalid(key, "contains NUL"));
    }
    Ok(Some(s))
}

/// A topic to subscribe to: a string, non-empty, with MQTT's wildcard rules (HA's
/// `valid_subscribe_topic`).
fn topic_of(
    v: Option<&Value>,
    key: &'static str,
    limits: &AnnounceLimits,
) -> Result<Option<String>, Refused> {
    let Some(t) = text_of(v, key, limits)? else {
        return Ok(None);
    };
    if !matches!(v, Some(Value::String(_))) || t.is_empty() {
        return Err(invalid(key, "must be a non-empty topic"));
    }
    let levels: Vec<&str> = t.split('/').collect();
    let bad_level = levels.iter().enumerate().any(|(i, l)| {
        (l.contains('+') && *l != "+") || (l.contains('#') && (*l != "#" || i + 1 != levels.len()))
    });
    if bad_level {
        return Err(invalid(
            key,
            format!("{t:?}: `+` and `#` must fill a level, `#` only the last"),
        ));
    }
    Ok(Some(t))
}
