//! The devices Home Assistant discovery found: `/api/v1/devices` and the `/devices` page.
//!
//! Both read the `discovery::Board` the discovery sessions publish their columns on (a copy at most a
//! check interval old) and never write it. Every string in them came from an announcement or a state
//! message, so it is untrusted: the JSON escapes it (`json`), the page's template HTML-escapes it.

use super::items::Timestamp;
use super::json::Json;
use super::AppState;
use crate::discovery::judge::Availability;
use crate::discovery::DeviceView;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// Devices shown on the page (the API answers all of them; `max_entities` bounds them per block).
const MAX_PAGE_DEVICES: usize = 1000;

/// One device announced through Home Assistant discovery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceItem {
    /// The device's name as announced (absent when no announcement named it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Identifiers, and connections as `type:value`, from every announcement that named the device.
    pub identifiers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sw_version: Option<String>,
    /// The Xymon host its columns go to.
    pub host: String,
    pub columns: Vec<DeviceColumn>,
    pub availability: AvailabilityItem,
    pub entities: Vec<EntityItem>,
}

/// One Xymon column of a device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceColumn {
    pub column: String,
    /// `green`, `yellow`, `red`, `purple` or `clear`.
    pub colour: String,
}

/// What the device's availability topics last said.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AvailabilityItem {
    /// `online`, `offline`, `unknown` (never said) or `always` (no availability topic announced).
    pub state: String,
    /// When it became so (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
}

/// One entity (sensor or binary_sensor) of a device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntityItem {
    /// `sensor` or `binary_sensor`.
    pub component: String,
    /// `<node_id>/<object_id>` or `<object_id>` from the config topic.
    pub id: String,
    pub name: String,
    /// The column it is shown in.
    pub column: String,
    /// The last value (the template's result), absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_class: Option<String>,
    /// When the last value came (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
    pub colour: String,
    /// Why it has that colour.
    pub reason: String,
    /// Messages its template could not render, since start.
    pub template_errors: u64,
}

fn availability(a: Availability) -> AvailabilityItem {
    let (state, since) = match a {
        Availability::Always => ("always", None),
        Availability::Unknown => ("unknown", None),
        Availability::Online(t) => ("online", t),
        Availability::Offline(t) => ("offline", Some(t)),
    };
    AvailabilityItem {
        state: state.into(),
        since: since.map(Timestamp),
    }
}

impl From<DeviceView> for DeviceItem {
    fn from(d: DeviceView) -> Self {
        let dev = d.device;
        DeviceItem {
            identifiers: dev
                .identifiers
                .into_iter()
                .chain(dev.connections.into_iter().map(|(t, v)| format!("{t}:{v}")))
                .collect(),
            name: dev.name,
            model: dev.model.as_deref().map(str::to_string),
            manufacturer: dev.manufacturer.as_deref().map(str::to_string),
            sw_version: dev.sw_version.as_deref().map(str::to_string),
            host: d.host.to_string(),
            columns: d
                .columns
                .into_iter()
                .map(|(c, colour)| DeviceColumn {
                    column: c.to_string(),
                    colour: colour.as_str().into(),
                })
                .collect(),
            availability: availability(d.availability),
            entities: d
                .entities
                .into_iter()
                .map(|(column, e)| {
                    let id = match &e.key.node_id {
                        Some(n) => format!("{n}/{}", e.key.object_id),
                        None => e.key.object_id.to_string(),
                    };
                    EntityItem {
                        component: e.key.component.as_str().into(),
                        id,
                        name: e.name.to_string(),
                        column: column.to_string(),
                        value: e.value,
                        unit: e.unit.as_deref().map(str::to_string),
                        device_class: e.device_class.as_deref().map(str::to_string),
                        updated_at: e.updated.map(Timestamp),
                        colour: e.judged.colour.as_str().into(),
                        reason: e.judged.reason,
                        template_errors: e.template_errors,
                    }
                })
                .collect(),
        }
    }
}

/// The devices announced through Home Assistant discovery, with their entities' last values.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    responses((status = 200, description = "Devices sorted by host, then name", body = Vec<DeviceItem>)),
    tag = "devices"
)]
pub async fn devices(State(st): State<AppState>) -> Json<Vec<DeviceItem>> {
    Json(
        st.devices
            .devices()
            .into_iter()
            .map(DeviceItem::from)
            .collect(),
    )
}

#[derive(Template, WebTemplate)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    pub title: String,
    pub devices: Vec<DeviceItem>,
    /// Devices not shown (over `MAX_PAGE_DEVICES`).
    pub more: usize,
}

/// The `/devices` page.
pub async fn page(State(st): State<AppState>) -> DevicesPage {
    let all = st.devices.devices();
    let more = all.len().saturating_sub(MAX_PAGE_DEVICES);
    DevicesPage {
        title: "Devices".into(),
        devices: all
            .into_iter()
            .take(MAX_PAGE_DEVICES)
            .map(DeviceItem::from)
            .collect(),
        more,
    }
}
