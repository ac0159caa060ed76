//! mimalloc as the binary's allocator, with `--features mimalloc` (the
//! default is the system allocator): told to keep freed memory within a
//! grid cell, to return it between cells, and not to ask for transparent
//! huge pages.
//!
//! Why it is no longer the default (2026-12-06, AMD EPYC, 2 threads, dev
//! build, alternating A/B): since the kernels keep their own buffers between
//! steps, it buys 2-3 % of train-step throughput at three of four
//! `compare_pytorch` shapes (none at width 20, batch 128) and nothing on the
//! quickstart, at 25-45 % more peak memory (quickstart 324-349 MB against
//! 195 MB with glibc).
//!
//! A training step allocates and frees the same large activation and
//! gradient buffers every step. With mimalloc's default (freed memory given
//! back to the OS after a delay) the next step touched fresh pages: at
//! width 64, batch 32, ~6800 page faults a step, each zeroing a page in the
//! kernel (`clear_page_erms`, ~12 % of the samples). Never purging keeps
//! those pages mapped for reuse. Between cells (whose shapes and batch sizes
//! differ) everything freed goes back ([`return_freed_memory`]).
//!
//! Huge pages: mimalloc asks for them (`madvise`) by default, which rounds
//! every thread's heaps up to 2 MiB pages. It is built not to (the
//! `no_thp` feature of `libmimalloc-sys`: the option would come too late,
//! mimalloc maps its first arena before `main`); the peak RSS falls (see
//! docs/performance.md, Memory), the pages being kept anyway.

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`'s index in mimalloc's option enum (the same in
/// mimalloc v2 and v3; `libmimalloc-sys` 0.1.49 names only its neighbours,
/// `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes` = 16).
const PURGE_DELAY: mi_option_t = 15;

/// Turns off purging of freed memory, unless `MIMALLOC_PURGE_DELAY` sets
/// it. Call once, first thing in `main`.
pub(crate) fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option
    // table (an atomic write); any value is valid for `purge_delay`, and
    // -1 is the documented "never purge".
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set(PURGE_DELAY, -1);
    }
}

/// Returns every freed page to the OS, from each rayon thread's heap and
/// this thread's, then goes back to keeping freed memory.
pub(crate) fn return_freed_memory() {
    // SAFETY: `mi_option_get`/`mi_option_set` read and store an integer in
    // mimalloc's option table (atomic); `mi_collect` only walks the calling
    // thread's heap (and abandoned ones), freeing what is unused.
    #[allow(unsafe_code)]
    let collect = || unsafe { mi_collect(true) };
    #[allow(unsafe_code)]
    let set_delay = |delay| unsafe { mi_option_set(PURGE_DELAY, delay) };
    #[allow(unsafe_code)]
    let delay = unsafe { mi_option_get(PURGE_DELAY) };
    set_delay(0);
    rayon::broadcast(|_| collect());
    collect();
    set_delay(delay);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn option(o: mi_option_t) -> std::os::raw::c_long {
        // SAFETY: reads an integer from mimalloc's option table.
        unsafe { mi_option_get(o) }
    }

    #[test]
    fn options_after_configuration_and_collection() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the user's setting stands; nothing to check
        }
        configure();
        assert_eq!(option(PURGE_DELAY), -1);
        // Allocations freed, then collected: purging is off again after.
        drop(vec![1u8; 64 << 20]);
        return_freed_memory();
        assert_eq!(option(PURGE_DELAY), -1);
    }
}
