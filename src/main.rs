//! The `mailferry` binary: everything lives in the library; see `mailferry::cli`.
//!
//! The library forbids `unsafe`; the binary allows exactly one call (`cap_malloc_arenas`).
#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    cap_malloc_arenas();
    mailferry::cli::main()
}

/// Caps glibc's malloc at two arenas, before any thread exists.
///
/// Ledger calls run under tokio's `block_in_place`, which hands the calling worker's core to a
/// thread from the blocking pool; over a run many OS threads take turns running the same tasks.
/// glibc gives each thread that allocates under contention its own arena (up to 8 per core), and
/// memory freed into one arena is not reused by the others, so peak RSS grew with the number of
/// threads, not with the work: 94-102 MiB on the migrate benchmark against 60-66 MiB before the
/// ledger moved off the worker threads, and 67 MiB with this cap at the same speed and CPU
/// (docs/benchmarks.md). mimalloc (255 MiB) and jemalloc (102-110 MiB) were tried and did worse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn cap_malloc_arenas() {
    // SAFETY: `mallopt` only sets an allocator parameter; it is called first thing in `main`,
    // before the runtime starts any thread, and its result (1 on success) needs no handling: on
    // failure glibc keeps its default, which is only more memory.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}
