//! The bridge's own column (`HOST.xymon-mqtt`): its brokers, its deliveries to xymond, the hosts xymond
//! drops (ghosts), refused messages, failing RRD files, the store's budget, and who it is.
//!
//! Fed by the supervisor's own-status task with what the store, the outbox, the metrics and the RRD
//! writer know, plus the rates and recent counts it computes between two statuses; the `Status` goes to
//! the outbox like any other, so a red "deliveries fail" status waits there and goes out once xymond
//! takes statuses again. Red: a broker disconnected longer than the grace, or deliveries failing.
//! Yellow: ghosts, refused messages or subscriptions, failing RRD files, the store over 90 % of its
//! budget. Each reason is a `&red`/`&yellow` line at the top; the sections below are plain facts.

use super::{age, safe_topic, timestamp, INDENT};
use crate::colour::Colour;
use crate::metrics::GhostReport;
use crate::names::{HostName, TestName};
use crate::store::{BrokerState, Usage};
use crate::text::untrusted;
use crate::xymon::Status;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// The store's use of its budget, in percent, past which the column turns yellow.
pub const STORE_YELLOW_PERCENT: usize = 90;

/// The drop reason of a payload kept cut to `limits.max_payload_bytes`: the message is not refused, so
/// it is listed but does not turn the column yellow.
const KEPT_CUT: &str = "payload_cut";

/// Items of one kind (ghost hosts, RRD files) listed, at most; the rest are counted.
const MAX_LISTED: usize = 50;

/// A broker, and its message rate since the previous status.
#[derive(Debug, Clone)]
pub struct BrokerLine {
    pub state: BrokerState,
    /// PUBLISH packets per minute since the previous status; `None` for the first.
    pub per_minute: Option<f64>,
}

/// The deliveries to xymond.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// xymond's address.
    pub server: String,
    pub sent: u64,
    pub failures: u64,
    pub pending: usize,
    /// Since when deliveries fail, and the latest error; `None` while they succeed.
    pub failing: Option<(SystemTime, String)>,
    /// The latest failed delivery since start-up, even if deliveries succeed again.
    pub last_error: Option<(SystemTime, String)>,
}

/// Messages skipped for one reason: since start-up, and since the previous status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drops {
    pub reason: String,
    pub total: u64,
    pub recent: u64,
}

/// An RRD file whose last update failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrdFailure {
    pub host: String,
    pub rrd: String,
    pub error: String,
}

/// Everything the bridge's own status says.
pub struct SelfReport<'a> {
    pub host: &'a HostName,
    pub column: &'a TestName,
    pub lifetime: Duration,
    pub now: SystemTime,
    pub started: SystemTime,
    pub version: &'a str,
    pub config_file: &'a str,
    /// How long a broker may be disconnected before the column turns red.
    pub grace: Duration,
    /// Since the previous status (for "recent" counts).
    pub interval: Duration,
    pub brokers: &'a [BrokerLine],
    pub delivery: &'a Delivery,
    pub drops: &'a [Drops],
    pub rrd_failing: &'a [RrdFailure],
    pub store: &'a Usage,
    pub ghosts: &'a GhostReport,
}

fn err_text(raw: &str) -> String {
    untrusted(raw, 300, INDENT)
}

/// The status of the bridge's own column.
pub fn self_status(r: &SelfReport<'_>) -> Status {
    let mut reasons = Reasons::default();
    let mut flag = |c: Colour, line: String, tag: String| reasons.add(c, line, tag);

    for b in r.brokers {
        let s = &b.state;
        let down_for = s.since.map(|t| r.now.duration_since(t).unwrap_or_default());
        if !s.connected && down_for.is_some_and(|d| d > r.grace) {
            let error = s.last_error.as_deref().map(err_text).unwrap_or_default();
            flag(
                Colour::Red,
                format!(
                    "Broker {} ({}) disconnected for {} (grace {}){}{error}",
                    s.name,
                    s.url,
                    human(down_for.unwrap_or_default()),
                    human(r.grace),
                    if error.is_empty() { "" } else { ": " },
                ),
                format!("broker {} down", s.name),
            );
        }
        for f in &s.refused {
            flag(
                Colour::Yellow,
                format!(
                    "Broker {} refuses the subscription to {}: {}",
                    s.name,
                    safe_topic(&f.filter),
                    err_text(&f.reason)
                ),
                "subscriptions refused".into(),
            );
        }
    }
    let d = r.delivery;
    if let Some((since, error)) = &d.failing {
        flag(
            Colour::Red,
            format!(
                "Deliveries to xymond at {} fail since {} ({}): {}; {} statuses wait, this one too",
                d.server,
                timestamp(*since),
                age(*since, r.now),
                err_text(error),
                d.pending
            ),
            "deliveries to xymond fail".into(),
        );
    }
    let ghosts = &r.ghosts.hosts;
    for g in ghosts.iter().take(MAX_LISTED) {
        flag(
            Colour::Yellow,
            format!(
                "Host {} is not in xymond's hosts.cfg: xymond drops its statuses (a ghost, last {})\n{INDENT}tests: {}\n{INDENT}made by {}\n{INDENT}add {} to hosts.cfg, or correct the host name the test makes",
                untrusted(&g.host, 256, INDENT),
                timestamp(g.last_seen),
                untrusted(&g.tests.join(", "), 500, INDENT),
                untrusted(&g.origin, 500, INDENT),
                untrusted(&g.host, 256, INDENT),
            ),
            format!("{} ghost host{}", ghosts.len(), plural(ghosts.len())),
        );
    }
    if ghosts.len() > MAX_LISTED {
        let more = ghosts.len() - MAX_LISTED;
        flag(
            Colour::Yellow,
            format!("... and {more} more ghost hosts"),
            String::new(),
        );
    }
    for x in r
        .drops
        .iter()
        .filter(|x| x.recent > 0 && x.reason != KEPT_CUT)
    {
        flag(
            Colour::Yellow,
            format!(
                "{} message{} refused in the last {} ({} since start-up): reason {}",
                x.recent,
                plural(x.recent as usize),
                human(r.interval),
                x.total,
                x.reason
            ),
            "messages refused".into(),
        );
    }
    for f in r.rrd_failing.iter().take(MAX_LISTED) {
        flag(
            Colour::Yellow,
            format!(
                "RRD file {}/{}.rrd fails: {}",
                untrusted(&f.host, 256, INDENT),
                untrusted(&f.rrd, 256, INDENT),
                err_text(&f.error)
            ),
            "RRD files fail".into(),
        );
    }
    if r.rrd_failing.len() > MAX_LISTED {
        let more = r.rrd_failing.len() - MAX_LISTED;
        flag(
            Colour::Yellow,
            format!("... and {more} more failing RRD files"),
            String::new(),
        );
    }
    let percent = store_percent(r.store);
    if percent > STORE_YELLOW_PERCENT {
        flag(
            Colour::Yellow,
            format!(
                "The topic store holds {} of {} ({percent} %, limits.store_bytes): the least recently updated topics are evicted, and new ones may be refused",
                bytes(r.store.bytes),
                bytes(r.store.budget)
            ),
            "store nearly full".into(),
        );
    }

    let Reasons {
        colour,
        lines: mut body,
        short,
    } = reasons;
    if !body.is_empty() {
        body.push('\n');
    }
    body.push_str(&facts(r, percent));
    let summary = if short.is_empty() {
        format!("{} {}: all is well", timestamp(r.now), r.column)
    } else {
        format!("{} {}: {}", timestamp(r.now), r.column, short.join(", "))
    };
    Status {
        host: r.host.clone(),
        test: r.column.clone(),
        colour,
        lifetime: r.lifetime,
        summary,
        body,
    }
}

/// The reasons for the colour: one `&colour` line each, and short tags for line 1.
struct Reasons {
    colour: Colour,
    lines: String,
    short: Vec<String>,
}

impl Default for Reasons {
    fn default() -> Self {
        Reasons {
            colour: Colour::Green,
            lines: String::new(),
            short: Vec::new(),
        }
    }
}

impl Reasons {
    /// A reason of colour `c`; `tag` (once, if not empty) goes on line 1.
    fn add(&mut self, c: Colour, line: String, tag: String) {
        self.colour = self.colour.worst(c);
        let _ = writeln!(self.lines, "&{c} {line}");
        if !tag.is_empty() && !self.short.contains(&tag) {
            self.short.push(tag);
        }
    }
}

/// The sections below the reasons: what is, whatever the colour.
fn facts(r: &SelfReport<'_>, percent: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Brokers");
    if r.brokers.is_empty() {
        let _ = writeln!(out, "{INDENT}none configured");
    }
    for b in r.brokers {
        let s = &b.state;
        let state = if s.connected && s.subscribed {
            "connected"
        } else if s.connected {
            "connected, subscribing"
        } else {
            "disconnected"
        };
        let since = s
            .since
            .map(|t| format!(" since {} ({})", timestamp(t), age(t, r.now)))
            .unwrap_or_default();
        let rate = b
            .per_minute
            .map(|m| format!(", {m:.1}/min"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{INDENT}{} {}: {state}{since}; messages: {}{rate}",
            s.name, s.url, s.messages
        );
        if let Some(e) = &s.last_error {
            let _ = writeln!(out, "{INDENT}{INDENT}last error: {}", err_text(e));
        }
        for f in &s.refused {
            let _ = writeln!(
                out,
                "{INDENT}{INDENT}refused subscription: {}: {}",
                safe_topic(&f.filter),
                err_text(&f.reason)
            );
        }
    }
    let d = r.delivery;
    let _ = writeln!(out, "\nDelivery to xymond at {}", d.server);
    let _ = writeln!(
        out,
        "{INDENT}statuses sent: {}, failed deliveries: {}, pending: {}",
        d.sent, d.failures, d.pending
    );
    if let Some((at, e)) = &d.last_error {
        let _ = writeln!(
            out,
            "{INDENT}last delivery error: {} ({} ago): {}",
            timestamp(*at),
            age(*at, r.now),
            err_text(e)
        );
    }
    let g = r.ghosts;
    let checked = match g.checked_at {
        Some(t) => format!("asked {} ago", age(t, r.now)),
        None => "not asked yet".into(),
    };
    let _ = writeln!(
        out,
        "{INDENT}ghost hosts (xymond drops them): {} ({checked}{})",
        g.hosts.len(),
        g.error
            .as_deref()
            .map(|e| format!("; the last ghostlist failed: {}", err_text(e)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "\nMessages refused (or cut), by reason, since start-up"
    );
    if r.drops.is_empty() {
        let _ = writeln!(out, "{INDENT}none");
    }
    for x in r.drops {
        let _ = writeln!(
            out,
            "{INDENT}{}: {} ({} in the last {})",
            x.reason,
            x.total,
            x.recent,
            human(r.interval)
        );
    }
    let _ = writeln!(out, "\nRRD files failing: {}", r.rrd_failing.len());
    let s = r.store;
    let _ = writeln!(
        out,
        "Topic store: {} topics, {} of {} ({percent} % of limits.store_bytes); {} evicted, {} refused",
        s.topics,
        bytes(s.bytes),
        bytes(s.budget),
        s.evicted_topics,
        s.over_budget
    );
    let _ = writeln!(
        out,
        "\nxymon-mqtt {}, up {} (since {}), config {}",
        r.version,
        age(r.started, r.now),
        timestamp(r.started),
        untrusted(r.config_file, 500, INDENT)
    );
    out
}

/// Whole percent of the budget in use (0 without a budget).
fn store_percent(u: &Usage) -> usize {
    if u.budget == 0 {
        return 0;
    }
    (u.bytes as u128 * 100 / u.budget as u128) as usize
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// `1.5 MiB`, `812 KiB`, `12 B`.
fn bytes(n: usize) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.0} KiB", f / KIB)
    } else {
        format!("{n} B")
    }
}
