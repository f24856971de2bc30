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

/// Gives free memory back once a burst has passed: counts the payload bytes a consumer handles, and
/// when it looks again (a timer) after at least `after` of them and nothing arrived since its previous
/// look, calls `release_free_memory`.
///
/// A burst (a fleet reconnecting, a restart's retained messages) passes through queues, parsers and
/// statuses that are freed again, scattered between what stays; malloc keeps that memory until asked.
/// Trimming walks the heap and hands pages back that the next burst faults in again, so it waits for a
/// few MiB of traffic and then for a quiet interval, not for every empty queue in the middle of a flood.
#[derive(Debug)]
pub struct AfterBurst {
    handled: usize,
    at_last_look: usize,
    after: usize,
}

impl AfterBurst {
    pub const fn new(after: usize) -> Self {
        AfterBurst {
            handled: 0,
            at_last_look: 0,
            after,
        }
    }

    /// `bytes` more were handled.
    pub fn handled(&mut self, bytes: usize) {
        self.handled = self.handled.saturating_add(bytes);
    }

    /// Whether a burst passed since the last trim (the consumer then looks again after an interval).
    pub fn due(&self) -> bool {
        self.handled >= self.after
    }

    /// Trims if a burst passed and nothing was handled since the previous look. Returns whether it did.
    pub fn look(&mut self) -> bool {
        let quiet = self.handled == self.at_last_look;
        self.at_last_look = self.handled;
        if !(quiet && self.due()) {
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
    fn trims_once_a_burst_has_passed_and_traffic_stopped() {
        let mut trim = AfterBurst::new(100);
        trim.handled(60);
        assert!(!trim.due());
        assert!(!trim.look(), "below the burst size");
        trim.handled(60);
        assert!(trim.due());
        assert!(!trim.look(), "traffic since the previous look");
        trim.handled(10);
        assert!(!trim.look(), "still traffic");
        assert!(trim.look(), "a burst passed and it is quiet");
        assert!(!trim.due());
        assert!(!trim.look(), "nothing since the last trim");
        trim.handled(usize::MAX);
        trim.handled(usize::MAX);
        assert!(!trim.look());
        assert!(trim.look());
    }
}
