//! The overview's ghost banner: hosts the bridge sends statuses for that xymond drops, not having them
//! in hosts.cfg. Read from the last ghost check the bridge's own-status task keeps in the metrics.

use crate::metrics::MAX_GHOST_LABELS;
use crate::web::items::rfc3339;
use crate::web::AppState;

/// Ghost hosts shown on the overview, at most (the banner counts them all).
const MAX_SHOWN: usize = MAX_GHOST_LABELS;

/// One ghost host as the banner shows it (plain strings: the template escapes them).
pub struct GhostView {
    pub host: String,
    pub tests: String,
    pub origin: String,
    pub last_seen: String,
}

/// The banner: every ghost host (the first `MAX_SHOWN`) and how many there are.
pub struct GhostBanner {
    pub total: usize,
    pub hosts: Vec<GhostView>,
}

pub fn ghost_banner(st: &AppState) -> GhostBanner {
    let report = st.metrics.ghosts();
    GhostBanner {
        total: report.hosts.len(),
        hosts: report
            .hosts
            .into_iter()
            .take(MAX_SHOWN)
            .map(|g| GhostView {
                tests: g.tests.join(", "),
                last_seen: rfc3339(g.last_seen),
                host: g.host,
                origin: g.origin,
            })
            .collect(),
    }
}
