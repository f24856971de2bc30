//! Keeping the daemon's heap small under glibc's malloc, which it runs on for years.
//!
//! `limit_arenas` is called by `main` before any thread starts; `release_free_memory` by the store after
//! it has freed a lot (evictions, refused topics), and through `AfterBurst` by the collector and the
//! discovery sessions once a burst of messages has passed. Elsewhere (musl, other systems) both do
//! nothing.

/// Caps glibc at one malloc arena unless the administrator set `MALLOC_ARENA_MAX` (then theirs holds).
///
/// glibc gives each allocating thread its own arena (up to 8 per CPU), and memory freed in one arena is
/// not reused by another: parsing a large config on the main thread and filling the store on the runtime's
/// threads then leaves each arena with its own free space. Measured at 100,000 topics (BENCHMARKS.md,
/// scenario 4): 4.4 MB less RSS with one arena, 2.4 MB with two. The per-thread cache (tcache) still
/// serves most small allocations without taking the arena's lock.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; it has no preconditions and is thread-safe.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Hands memory that malloc holds free back to the system (glibc's `malloc_trim`).
///
/// glibc returns freed memory by itself only from the top of the heap; the payloads of evicted topics lie
/// anywhere in it, so without this the resident size would stay at its highest point after the store
/// evicted or refused megabytes. It walks the heap, so the store calls it only after it freed 4 MiB.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no preconditions and is
    // thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes freed or passed through before a trim is worth its walk over the heap (about a millisecond for
/// a full 64 MiB store): at most this much free memory stays in the process untrimmed.
pub const TRIM_AFTER_BYTES: usize = 4 << 20;

/// Gives free memory back once a burst has passed: counts what a consumer handles (each message's
/// payload and topic bytes), and when it looks again (a timer) after at least `after` of them, with less
/// than `after / 16` since its previous look, calls `release_free_memory`.
///
/// A burst (a fleet reconnecting, a restart's retained messages) passes through queues, parsers and
/// statuses that are freed again, scattered between what stays; malloc keeps that memory until asked.
/// Trimming walks the heap and hands pages back that the next burst faults in again, so it waits for a
/// few MiB of traffic and then for the rate to drop, not for every empty queue in the middle of a flood.
/// A low rate, not silence: a fleet's steady telemetry never stops for a whole interval.
#[derive(Debug)]
pub struct AfterBurst {
    handled: usize,
    at_last_look: usize,
    after: usize,
}

impl Default for AfterBurst {
    /// A burst is `TRIM_AFTER_BYTES`.
    fn default() -> Self {
        AfterBurst::new(TRIM_AFTER_BYTES)
    }
}

impl AfterBurst {
    pub const fn new(after: usize) -> Self {
        AfterBurst {
            handled: 0,
            at_last_look: 0,
            after,
        }
    }

    /// A message with `bytes` of payload and topic was handled.
    pub fn handled(&mut self, bytes: usize) {
        self.handled = self.handled.saturating_add(bytes);
    }

    /// Whether a burst passed since the last trim (the consumer then looks again after an interval).
    pub fn due(&self) -> bool {
        self.handled >= self.after
    }

    /// Trims if a burst passed and less than `after / 16` was handled since the previous look. Returns
    /// whether it did.
    pub fn look(&mut self) -> bool {
        let since = self.handled - self.at_last_look;
        self.at_last_look = self.handled;
        if !(self.due() && since < self.after / 16) {
            return false;
        }
        self.handled = 0;
        self.at_last_look = 0;
        release_free_memory();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::AfterBurst;

    #[test]
    fn trims_once_a_burst_has_passed_and_the_rate_dropped() {
        let mut trim = AfterBurst::new(1600);
        trim.handled(1000);
        assert!(!trim.due());
        assert!(!trim.look(), "below the burst size");
        trim.handled(1000);
        assert!(trim.due());
        assert!(!trim.look(), "a burst since the previous look");
        trim.handled(500);
        assert!(!trim.look(), "still a flood");
        trim.handled(99);
        assert!(
            trim.look(),
            "a burst passed, and what came since is a trickle"
        );
        assert!(!trim.due());
        assert!(!trim.look(), "nothing since the last trim");
        // Steady low-rate traffic adds up to a burst without ever being one: trimmed once, then not
        // again until another burst's worth has passed.
        let mut trims = 0;
        for _ in 0..32 {
            trim.handled(99);
            trims += usize::from(trim.look());
        }
        assert_eq!(trims, 1);
        trim.handled(usize::MAX);
        trim.handled(usize::MAX);
        assert!(!trim.look());
        assert!(trim.look());
    }
}
