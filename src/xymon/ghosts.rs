//! xymond's ghost list: the hosts whose statuses it dropped because hosts.cfg does not list them
//! (docs/xymon-protocol.md §1.5), and which of them are the bridge's own.
//!
//! Asked by the supervisor's own-status task a few times a minute (`ghostlist`); `ours` keeps the hosts
//! the bridge sent for (xymond also lists other senders' ghosts), as the outbox records them. The answer
//! is xymond's, read with a size bound and parsed without trusting it.

use super::{TestDelivery, XymonError};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Most bytes of a `ghostlist` answer read: about 40,000 ghosts; the rest is not read.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// A ghost counts while xymond dropped a status of it this recently: xymond's own `xymond` column lists
/// ghosts of the last 10 minutes the same way, and every test of the bridge sends at least that often
/// (a rule re-sends each minute; a periodic test's default is 5 minutes).
pub const RECENT: Duration = Duration::from_secs(600);

/// One line of `ghostlist`: `hostname|senderip|unixtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghost {
    pub host: String,
    pub sender: String,
    /// When xymond last dropped a status of it.
    pub seen: SystemTime,
}

/// Asks xymond at `addr` for its ghost list.
///
/// # Errors
/// xymond cannot be reached, or does not answer within `timeout`.
pub async fn ghostlist(addr: &str, timeout: Duration) -> Result<Vec<Ghost>, XymonError> {
    let answer = super::exchange(addr, b"ghostlist", MAX_ANSWER_BYTES, timeout).await?;
    Ok(parse(&String::from_utf8_lossy(&answer)))
}

/// Parses a `ghostlist` answer; lines that are not `host|ip|unixtime` (a cut last line) are skipped.
pub fn parse(answer: &str) -> Vec<Ghost> {
    answer
        .lines()
        .filter_map(|line| {
            let mut f = line.split('|');
            let host = f.next()?.trim();
            let sender = f.next()?.trim();
            let secs: u64 = f.next()?.trim().parse().ok()?;
            (!host.is_empty()).then(|| Ghost {
                host: host.to_string(),
                sender: sender.to_string(),
                seen: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            })
        })
        .collect()
}

/// The oldest time a ghost may have been seen and still count at `now`.
fn recent_since(now: SystemTime) -> SystemTime {
    now.checked_sub(RECENT).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Whether any ghost counts at `now`: without one, the outbox need not be read.
pub fn any_recent(ghosts: &[Ghost], now: SystemTime) -> bool {
    let since = recent_since(now);
    ghosts.iter().any(|g| g.seen >= since)
}

/// A ghost host of the bridge: its name as the bridge sends it, its tests, and when xymond last
/// dropped one of its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurGhost {
    pub host: String,
    pub tests: Vec<String>,
    pub seen: SystemTime,
}

/// The ghosts among the hosts the bridge sent for (`sent`: the outbox's tests), seen since `now` minus
/// `RECENT`, sorted by host. xymond compares host names without regard to case, and so does this.
pub fn ours(ghosts: &[Ghost], sent: &[TestDelivery], now: SystemTime) -> Vec<OurGhost> {
    let since = recent_since(now);
    let mut by_host: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for t in sent.iter().filter(|t| t.delivered_at.is_some()) {
        let entry = by_host
            .entry(t.host.to_ascii_lowercase())
            .or_insert_with(|| (t.host.clone(), Vec::new()));
        entry.1.push(t.test.clone());
    }
    let mut out: BTreeMap<String, OurGhost> = BTreeMap::new();
    for g in ghosts.iter().filter(|g| g.seen >= since) {
        let Some((host, tests)) = by_host.get(&g.host.to_ascii_lowercase()) else {
            continue;
        };
        let e = out.entry(host.clone()).or_insert_with(|| OurGhost {
            host: host.clone(),
            tests: tests.clone(),
            seen: g.seen,
        });
        e.seen = e.seen.max(g.seen);
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::Colour;
    use crate::xymon::DeliveryState;
    use std::sync::Arc;

    fn sent(host: &str, test: &str, delivered: bool) -> TestDelivery {
        TestDelivery {
            host: host.into(),
            test: test.into(),
            colour: Colour::Green,
            message: Arc::from(""),
            updated_at: SystemTime::UNIX_EPOCH,
            delivered_at: delivered.then_some(SystemTime::UNIX_EPOCH),
            delivery: DeliveryState::Delivered,
        }
    }

    #[test]
    fn parse_reads_host_sender_and_time_and_skips_the_rest() {
        let g = parse("ghost.example.com|127.0.0.1|1795325093\nbroken line\nx|y|notanumber\n|1.2.3.4|5\ncut|127.0");
        assert_eq!(
            g,
            vec![Ghost {
                host: "ghost.example.com".into(),
                sender: "127.0.0.1".into(),
                seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_325_093),
            }]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn ours_keeps_recent_ghosts_of_hosts_the_bridge_delivered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ago: u64| now - Duration::from_secs(ago);
        let ghost = |host: &str, ago| Ghost {
            host: host.into(),
            sender: "127.0.0.1".into(),
            seen: at(ago),
        };
        let ghosts = [
            ghost("Sensro-Kitchen", 30),
            ghost("someone-elses", 5),
            ghost("old-typo", 3600),
            ghost("never-delivered", 5),
        ];
        let sent = [
            sent("sensro-kitchen", "env", true),
            sent("sensro-kitchen", "power", true),
            sent("old-typo", "env", true),
            sent("greenhouse", "env", true),
            sent("never-delivered", "env", false),
        ];
        assert_eq!(
            ours(&ghosts, &sent, now),
            vec![OurGhost {
                host: "sensro-kitchen".into(),
                tests: vec!["env".into(), "power".into()],
                seen: at(30),
            }]
        );
    }
}
