//! Turning the operator's stop request into a [`Cancel`]: the first SIGINT (Ctrl-C) or SIGTERM
//! (systemd, Kubernetes, `kill`) asks the engine to finish the writes in flight and record them,
//! then stop; a second one of either kind aborts: every wait ends at once (Retry-After pauses,
//! governor waits, backoffs, upload sessions), the run records itself `interrupted`, writes its
//! summary and the process exits. The callbacks let the caller say so.
//!
//! Aborting is safe because the ledger never depends on a clean exit: each message's state is
//! committed before and after its write, and a write whose outcome is unknown stays `sending`
//! for the next run to look up at the destination (the same as after SIGKILL). Should the run
//! still not have returned [`ABORT_GRACE`] after the abort (a blocking call that no future can
//! cut), or should a third signal come, the process exits there and then.

use tokio::signal::unix::{SignalKind, signal};

use crate::engine::Cancel;

/// The exit code of a run stopped by a second signal: 1, the run did not finish.
pub const ABORTED: i32 = 1;

/// How long an aborted run has to record itself and write its summary before the process exits
/// regardless.
pub const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Cancels `cancel` on the first SIGINT or SIGTERM, calling `notify` with the signal's name; on a
/// second one calls `abort` with its name and aborts `cancel`, then exits with [`ABORTED`] after
/// [`ABORT_GRACE`] or a third signal, whichever comes first, unless the process ended by then.
/// Returns at once; the watch runs on the current runtime until the process ends.
pub fn watch_signals(
    cancel: Cancel,
    notify: impl FnOnce(&str) + Send + 'static,
    abort: impl FnOnce(&str) + Send + 'static,
) {
    // Both streams are registered here, before this returns, and kept for the whole watch: a
    // stream created after the first signal would miss a second one sent right behind it, and
    // one registered inside the spawned task could miss a signal sent before the task first ran
    // (the default action would then kill the process without the drain).
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = streams else {
            // Without signal handlers, keep at least Ctrl-C.
            if tokio::signal::ctrl_c().await.is_ok() {
                notify("SIGINT");
                cancel.cancel();
            }
            return;
        };
        let first = tokio::select! {
            r = int.recv() => r.map(|()| "SIGINT"),
            r = term.recv() => r.map(|()| "SIGTERM"),
        };
        let Some(first) = first else { return };
        notify(first);
        cancel.cancel();
        let second = tokio::select! {
            r = int.recv() => r.map(|()| "SIGINT"),
            r = term.recv() => r.map(|()| "SIGTERM"),
        };
        if let Some(second) = second {
            abort(second);
            cancel.abort();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                () = tokio::time::sleep(ABORT_GRACE) => {}
            }
            std::process::exit(ABORTED);
        }
    });
}
