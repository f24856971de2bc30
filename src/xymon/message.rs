//! Xymon status messages and their wire form.
//!
//! Built by `status` (the status builder); serialised here for the sender, which batches several into a
//! `combo`. The format is docs/xymon-protocol.md §1.3: `status+LIFETIME host,with,commas.test colour text\nbody`.

use crate::colour::Colour;
use crate::names::{HostName, TestName};
use std::time::Duration;

/// Keep a status well under xymond's MAXMSG_STATUS (256 KiB), past which the copy sent to the worker
/// channels (history, RRD, alerts) is truncated.
pub const MAX_STATUS_BYTES: usize = 200 * 1024;

/// One status for one host.test.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub host: HostName,
    pub test: TestName,
    pub colour: Colour,
    /// How long xymond keeps it before turning the column purple.
    pub lifetime: Duration,
    /// Line 1 after the colour: the bridge's own words (date and a short summary).
    pub summary: String,
    /// Everything after line 1. Built only from the bridge's own text and `sanitize::untrusted` output.
    pub body: String,
}

impl Status {
    /// `host.test` as people write it (with dots), the key under which the latest status is kept.
    pub fn key(&self) -> String {
        format!("{}.{}", self.host, self.test)
    }

    /// The message as xymond wants it. The lifetime is in minutes (`s` is not a unit for xymond: `+90s`
    /// would mean 90 minutes), rounded up, at least 1.
    pub fn to_wire(&self) -> String {
        let minutes = self.lifetime.as_secs().div_ceil(60).max(1);
        let summary = crate::text::line1(&self.summary);
        let mut msg = format!(
            "status+{minutes} {}.{} {} {summary}\n",
            self.host.wire(),
            self.test,
            self.colour
        );
        let room = MAX_STATUS_BYTES.saturating_sub(msg.len() + 64);
        if self.body.len() <= room {
            msg.push_str(&self.body);
        } else {
            // Cut at a line boundary so no escape sequence is split, and say so.
            let mut cut = room;
            while !self.body.is_char_boundary(cut) {
                cut -= 1;
            }
            let cut = self.body[..cut].rfind('\n').unwrap_or(0);
            msg.push_str(&self.body[..cut]);
            msg.push_str(&format!("\n[… status cut at {} bytes]\n", MAX_STATUS_BYTES));
        }
        // A combo splits on "\n\nstatus"; bodies never contain it (untrusted lines are indented), and a
        // trailing blank line would glue the next part's first line to it, so trim trailing newlines.
        while msg.ends_with("\n\n") {
            msg.pop();
        }
        msg
    }
}

/// Joins statuses into one message: a lone status as is, several as a `combo` (docs/xymon-protocol.md §1.4).
pub fn combo<S: AsRef<str>>(parts: &[S]) -> String {
    match parts {
        [one] => one.as_ref().to_string(),
        _ => {
            let mut msg = String::from("combo\n");
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    msg.push_str("\n\n");
                }
                msg.push_str(part.as_ref().trim_end_matches('\n'));
            }
            msg
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(colour: Colour, body: &str) -> Status {
        Status {
            host: HostName::try_from("broker.example.com".to_string()).unwrap(),
            test: TestName::try_from("mqtt".to_string()).unwrap(),
            colour,
            lifetime: Duration::from_secs(15 * 60),
            summary: "2026-11-22 07:30:00 MQTT broker OK".into(),
            body: body.into(),
        }
    }

    #[test]
    fn wire_format() {
        let s = status(Colour::Green, "\nline\n");
        assert_eq!(
            s.to_wire(),
            "status+15 broker,example,com.mqtt green 2026-11-22 07:30:00 MQTT broker OK\n\nline\n"
        );
        assert_eq!(s.key(), "broker.example.com.mqtt");
    }

    #[test]
    fn lifetime_in_minutes_rounded_up() {
        for (secs, want) in [
            (1, "+1 "),
            (60, "+1 "),
            (61, "+2 "),
            (90, "+2 "),
            (3600, "+60 "),
            (0, "+1 "),
        ] {
            let mut s = status(Colour::Red, "");
            s.lifetime = Duration::from_secs(secs);
            assert!(
                s.to_wire().starts_with(&format!("status{want}")),
                "{secs}: {}",
                s.to_wire()
            );
        }
    }

    #[test]
    fn summary_cannot_break_line_one() {
        let mut s = status(Colour::Yellow, "");
        s.summary = "a|b\nstatus x.y red".into();
        let wire = s.to_wire();
        assert_eq!(wire.lines().count(), 1, "{wire}");
        assert!(!wire.lines().next().unwrap().contains('|'));
    }

    #[test]
    fn oversized_body_is_cut_with_a_note() {
        let line = "x".repeat(99) + "\n";
        let s = status(Colour::Green, &line.repeat(10_000));
        let wire = s.to_wire();
        assert!(wire.len() <= MAX_STATUS_BYTES, "{}", wire.len());
        assert!(wire.contains("[… status cut at"));
    }

    #[test]
    fn combo_joins_with_blank_lines() {
        let a = status(Colour::Green, "\na\n").to_wire();
        let b = status(Colour::Red, "\nb").to_wire();
        assert_eq!(combo(std::slice::from_ref(&a)), a);
        let c = combo(&[a.clone(), b.clone()]);
        assert_eq!(c, format!("combo\n{}\n\n{b}", a.trim_end()));
        assert_eq!(c.matches("\n\nstatus").count(), 1);
    }

    #[test]
    fn worst_colour() {
        assert_eq!(Colour::Green.worst(Colour::Yellow), Colour::Yellow);
        assert_eq!(Colour::Red.worst(Colour::Yellow), Colour::Red);
        assert_eq!(Colour::Clear.worst(Colour::Green), Colour::Green);
    }
}
