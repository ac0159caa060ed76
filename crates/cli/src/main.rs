//! The `reusebench` binary: the command with the built-in protocols.

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
    allocator::configure();
    reusebench::set_after_cell(allocator::return_freed_memory);
    reusebench::main_with(&reusebench_runner::Registry::builtin(), std::env::args_os())
}
