//! Host and test names that may be templates (`sensor-{host}`, for rule tests).
//!
//! The text with every `{name}` filled in must be a valid name; the template itself is kept as written.
//! Config validation refuses braces outside rule tests, and the plan checks that every placeholder is a
//! capture of the rule's topic filter.

use crate::filter::Template;
use crate::names::{HostName, TestName};
use serde::Deserialize;

pub(super) fn host_or_template<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HostName, D::Error> {
    let s = String::deserialize(d)?;
    let sample = Template::parse(&s)
        .map_err(serde::de::Error::custom)?
        .sample();
    HostName::template(s, sample).map_err(serde::de::Error::custom)
}

pub(super) fn test_or_template<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<TestName, D::Error> {
    let s = String::deserialize(d)?;
    let sample = Template::parse(&s)
        .map_err(serde::de::Error::custom)?
        .sample();
    TestName::template(s, sample).map_err(serde::de::Error::custom)
}
