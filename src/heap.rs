//! Keeping the daemon's heap small under glibc's malloc, which it runs on for years.
//!
//! `limit_arenas` is called by `main` before any thread starts; `release_free_memory` by the store after
//! it has freed a lot (evictions, refused topics) and by the discovery sessions after a burst of
//! messages. Elsewhere (musl, other systems) both do nothing.

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
