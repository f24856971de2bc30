//! The OpenAPI document of the API and the event stream, generated from their handlers' annotations.

use super::devices::{AvailabilityItem, DeviceColumn, DeviceItem, EntityItem};
use super::error::ErrorBody;
use super::items::{
    BrokerItem, Delivery, Health, RefusedItem, StoreItem, TestItem, TopicItem, TopicPage,
};
use super::json::Json;
use super::{api, devices, sse};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xymon-mqtt",
        description = "What the MQTT to Xymon bridge sees: latest topic values, Xymon tests and their delivery, broker states, the topic store's memory budget, devices found by Home Assistant discovery."
    ),
    paths(
        api::topics,
        api::topic,
        api::tests,
        api::brokers,
        api::store,
        devices::devices,
        sse::events,
        api::healthz,
        api::metrics
    ),
    components(schemas(
        TopicItem,
        TopicPage,
        TestItem,
        Delivery,
        BrokerItem,
        RefusedItem,
        StoreItem,
        DeviceItem,
        DeviceColumn,
        AvailabilityItem,
        EntityItem,
        Health,
        ErrorBody
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
