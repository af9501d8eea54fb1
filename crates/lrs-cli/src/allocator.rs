//! Process-wide allocator settings for the long-running commands (`lrs serve`,
//! `lrs bench load`).

/// Caps glibc malloc's arenas at `n` for this process (`0`: glibc's default, eight per core).
///
/// A server loads and frees thousands of task files on tokio's blocking threads; each thread
/// may get an arena of its own, and each arena keeps the memory freed into it. Under
/// `lrs bench load` (all-MiniLM-L6-v2, 64 clients, 204 MiB task cache) two arenas held
/// ≈ 80 MiB less than the default at the same throughput. Call before the threads start.
/// Returns whether the setting was applied (never off glibc, nor for `n = 0`).
pub fn limit_malloc_arenas(n: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if n > 0 {
        let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets an allocator parameter; glibc allows it at any time.
        return unsafe { libc::mallopt(libc::M_ARENA_MAX, n) } == 1;
    }
    let _ = n;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_keeps_the_default_and_a_cap_is_applied_on_glibc() {
        assert!(!limit_malloc_arenas(0));
        let applied = limit_malloc_arenas(64);
        assert_eq!(
            applied,
            cfg!(all(target_os = "linux", target_env = "gnu")),
            "mallopt(M_ARENA_MAX) not applied"
        );
    }
}
