//! The binary's allocator: mimalloc, told to keep freed memory.
//!
//! A training step allocates and frees the same large activation and
//! gradient buffers every step. With mimalloc's default (freed memory given
//! back to the OS after a delay) the next step touched fresh pages: at
//! width 64, batch 32, ~6800 page faults a step, each zeroing a page in the
//! kernel (`clear_page_erms`, ~12 % of the samples). Never purging keeps
//! those pages mapped for reuse; peak RSS is unchanged (it is set by the
//! largest step), and the process returns everything when it exits.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`'s index in mimalloc's option enum (the same in
/// mimalloc v2 and v3; `libmimalloc-sys` 0.1.49 names only its neighbours,
/// `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes` = 16).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns off purging of freed memory. Call once, first thing in `main`.
pub(crate) fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option
    // table (an atomic write); any value is valid for `purge_delay`, and
    // -1 is the documented "never purge".
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purging_is_off_after_configuration() {
        keep_freed_memory();
        // SAFETY: reads an integer from mimalloc's option table.
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(delay, -1);
    }
}
