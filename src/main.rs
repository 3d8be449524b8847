//! The `mailferry` binary: everything lives in the library; see `mailferry::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    mailferry::cli::main()
}
