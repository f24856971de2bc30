//! What a collection round gathered: the input of the topics and broker-stats builders. The collector's
//! `Round` fills it and closes it.

use bytes::Bytes;
use std::time::{Duration, SystemTime};

/// One topic's value within a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub payload: Bytes,
    pub retained: bool,
    pub at: SystemTime,
}

/// A topic that came twice in one round with different values (submqttm.py reports this as yellow).
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    pub topic: usize,
    pub first: Bytes,
    pub then: Bytes,
}

/// A closed round.
#[derive(Debug)]
pub struct Closed {
    pub opened_at: SystemTime,
    /// How long the round took (up to the last topic, or the whole window when incomplete).
    pub took: Duration,
    pub window: Duration,
    pub values: Vec<Option<Reading>>,
    pub changed: Vec<Changed>,
}

impl Closed {
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .map(|(i, _)| i)
    }
    pub fn is_complete(&self) -> bool {
        self.values.iter().all(Option::is_some)
    }
}
