//! The `reusebench` binary: the command with the built-in protocols.

#[cfg(feature = "mimalloc")]
mod allocator;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`reusebench
    // validate GRID | head`) panics; the default action ends the process
    // quietly, as a command-line tool should.
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SIGUSR1 (Slurm's warning before preemption or the time limit): the
    // handler only sets a flag, the one thing a handler may safely do; a
    // `run` watches it.
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: the handler stores to an atomic and nothing else.
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
    }
    #[cfg(feature = "mimalloc")]
    {
        allocator::configure();
        reusebench::set_after_cell(allocator::return_freed_memory);
    }
    #[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
    keep_step_buffers();
    // The system allocator keeps what a cell freed in its arenas; between
    // cells, whose shapes differ, it goes back to the OS.
    #[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
    reusebench::set_after_cell(|| {
        // SAFETY: malloc_trim only releases free memory at the top of
        // glibc's arenas and in their free pages; it touches no live block.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    });
    reusebench::main_with(&reusebench_runner::Registry::builtin(), std::env::args_os())
}

/// glibc's malloc serves blocks from 128 KiB up by `mmap` and hands them
/// back at `free`, raising that threshold only as it sees such blocks freed;
/// and it trims its heaps when more than twice the threshold is free at the
/// top. A step's activations (a ViT's attention scores, a width-64 ResNet's
/// Winograd products: 1-30 MB each) are freed and allocated again every
/// step, so each step faulted fresh zeroed pages in (`clear_page_erms`,
/// `exc_page_fault`: ~8 % of vit-tiny inference samples). Fixed thresholds
/// keep them: blocks below 32 MiB (glibc's largest threshold) from the heap,
/// and up to 64 MiB of free memory at a heap's top before trimming. What a
/// cell freed still goes back between cells (`malloc_trim`). A user's own
/// `GLIBC_TUNABLES` for malloc wins. Measured in docs/performance.md.
#[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
fn keep_step_buffers() {
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

/// Whether a `GLIBC_TUNABLES` value sets any of malloc's parameters.
#[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
fn sets_malloc(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| t.split(':').any(|kv| kv.starts_with("glibc.malloc.")))
}

#[cfg(unix)]
extern "C" fn on_usr1(_: libc::c_int) {
    reusebench::LEAVE.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[cfg(all(
    test,
    not(feature = "mimalloc"),
    target_os = "linux",
    target_env = "gnu"
))]
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
