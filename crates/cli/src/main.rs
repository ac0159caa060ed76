//! The `reusebench` binary: the command with the built-in protocols.

mod allocator;

use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::configure();
    reusebench::set_after_cell(allocator::return_freed_memory);
    reusebench::main_with(&reusebench_runner::Registry::builtin(), std::env::args_os())
}
