//! Process-wide allocator settings: fewer arenas for the long-running servers (`lrs serve`,
//! `lrs bench load`), freed memory kept for reuse by the model-running commands.

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

/// Has glibc malloc keep freed blocks for reuse instead of returning them to the kernel
/// (for the commands that run the model: training, personalization, evaluation).
///
/// Every step of a forward and backward pass allocates and frees the same large tensors. By
/// default glibc serves blocks over 128 KiB (raised adaptively up to 32 MiB) with fresh `mmap`s
/// and unmaps them on free, so each step zero-faults its memory back in page by page: a
/// profile of `lrs bench train` showed a fifth of the time in the kernel's page clearing.
/// With the mmap threshold at its maximum (32 MiB) and a 1 GiB trim threshold, the heap keeps
/// the step's working set. Returns whether both settings were applied (never off glibc).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets allocator parameters; glibc allows it at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
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

    #[test]
    fn freed_memory_is_kept_on_glibc() {
        assert_eq!(
            keep_freed_memory(),
            cfg!(all(target_os = "linux", target_env = "gnu")),
            "mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD) not applied"
        );
    }
}
