//! Every write to stdout goes through here, so a closed pipe (`mailferry migrate --json | head -1`)
//! ends the process quietly instead of panicking in `println!`.
//!
//! The exit code is 141 (128 + SIGPIPE), what a shell reports for a program a closed pipe
//! stopped. The reader is gone, so there is nobody to tell; during `migrate` this ends the run
//! where it is, like a kill: the ledger is consistent and the next run resumes.

use std::io::Write;

/// The exit code after stdout's reader went away.
pub const BROKEN_PIPE: i32 = 141;

/// Writes `text` to stdout and flushes; on a closed pipe, exits at once and quietly. Any other
/// error (a full disk behind a redirect) is reported on stderr once per write.
pub fn write(text: &str) {
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(BROKEN_PIPE),
        Err(e) => eprintln!("mailferry: cannot write to stdout: {e}"),
    }
}

/// [`write`] with a line end.
pub fn line(text: &str) {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    write(&s);
}
