//! Keeping the daemon's heap small under glibc's malloc, which it runs on for years.
//!
//! Called by `main` before any thread starts. Elsewhere (musl, other systems) it does nothing.

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
