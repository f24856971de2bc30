//! Xymon colours: the one vocabulary of "how bad is it" every stage shares.
//!
//! Imports nothing of the crate. Rule thresholds and the status builders pick a `Colour`; the outbox,
//! the sender and the web layer show it.

use std::fmt;

/// The colours a sender may use. Purple is deliberately absent: xymond ignores it (and leaves an empty
/// record behind), and purple means "the sender went silent", which is xymond's call, not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Clear,
    Green,
    Yellow,
    Red,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Clear => "clear",
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        }
    }
    /// The worse of two colours (red > yellow > green > clear).
    pub fn worst(self, other: Colour) -> Colour {
        self.max(other)
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
