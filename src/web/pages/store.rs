//! The topic store's line on the overview: topics and bytes held against `limits.store_bytes`, what was
//! evicted and refused. Read from `Store::usage` for each page.

use super::AppState;

/// The topic store against its budget, as the overview shows it.
pub struct StoreView {
    pub topics: u64,
    pub bytes: String,
    pub budget: String,
    pub evicted: u64,
    pub evicted_bytes: String,
    pub refused: u64,
}

/// Bytes in MiB (or KiB below one MiB), one decimal.
fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    }
}

pub(super) fn store_view(st: &AppState) -> StoreView {
    let u = st.store.usage();
    StoreView {
        topics: u.topics as u64,
        bytes: mib(u.bytes as u64),
        budget: mib(u.budget as u64),
        evicted: u.evicted_topics,
        evicted_bytes: mib(u.evicted_bytes),
        refused: u.refused_topics,
    }
}
