//! The `mailferry` command line: clap types, commands, exit codes and terminal output.

use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    eprintln!("mailferry: not yet built");
    ExitCode::from(2)
}
