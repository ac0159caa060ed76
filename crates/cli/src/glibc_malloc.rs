//! glibc's malloc as the binary's allocator (the default build on Linux):
//! told to keep a step's large buffers within a cell, and to return what a
//! cell freed between cells. The same two calls as `allocator.rs` makes for
//! mimalloc.
//!
//! glibc serves blocks from 128 KiB up by `mmap` and hands them back at
//! `free`, raising that threshold only as it sees such blocks freed; and it
//! trims its heaps when more than twice the threshold is free at the top. A
//! step's activations (a ViT's attention scores, a width-64 ResNet's
//! Winograd products: 1-30 MB each) are freed and allocated again every
//! step, so each step faulted fresh zeroed pages in (`clear_page_erms`,
//! `exc_page_fault`: ~8 % of vit-tiny inference samples). Fixed thresholds
//! keep them: blocks below 32 MiB (glibc's largest threshold) from the heap,
//! and up to 64 MiB of free memory at a heap's top before trimming. A
//! user's own `GLIBC_TUNABLES` for malloc wins. Measured in
//! docs/performance.md (round 3).

/// Fixes the mmap and trim thresholds, unless `GLIBC_TUNABLES` sets malloc.
/// Call once, first thing in `main`.
pub(crate) fn configure() {
    if sets_malloc(std::env::var("GLIBC_TUNABLES").ok().as_deref()) {
        return;
    }
    // SAFETY: mallopt only stores allocator parameters; called before any
    // other thread exists, so no allocation runs concurrently.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Returns what a cell freed to the OS (cells' shapes differ, so the next
/// one would not reuse it).
pub(crate) fn return_freed_memory() {
    // SAFETY: malloc_trim only releases free memory at the top of glibc's
    // arenas and in their free pages; it touches no live block.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether a `GLIBC_TUNABLES` value sets any of malloc's parameters.
fn sets_malloc(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| t.split(':').any(|kv| kv.starts_with("glibc.malloc.")))
}

#[cfg(test)]
mod tests {
    use super::sets_malloc;

    #[test]
    fn a_users_malloc_tunables_keep_glibcs_thresholds_as_they_set_them() {
        assert!(!sets_malloc(None));
        assert!(!sets_malloc(Some("")));
        assert!(!sets_malloc(Some("glibc.pthread.rseq=0")));
        assert!(sets_malloc(Some("glibc.malloc.arena_max=1")));
        assert!(sets_malloc(Some(
            "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=0"
        )));
    }
}
