//! The `reusebench` binary: the command with the built-in protocols.

#[cfg(feature = "mimalloc")]
mod allocator;
#[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
mod glibc_malloc;

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
    {
        glibc_malloc::configure();
        reusebench::set_after_cell(glibc_malloc::return_freed_memory);
    }
    reusebench::main_with(&reusebench_runner::Registry::builtin(), std::env::args_os())
}

#[cfg(unix)]
extern "C" fn on_usr1(_: libc::c_int) {
    reusebench::LEAVE.store(true, std::sync::atomic::Ordering::SeqCst);
}
