//! Turning the operator's stop request into a [`Cancel`]: Ctrl-C (SIGINT) asks the engine to
//! finish the writes in flight and record them, then stop. The callback lets the caller say so.

use crate::engine::Cancel;

/// Cancels `cancel` on the first Ctrl-C, calling `notify` once when it does. Returns at once;
/// the watch runs on the current runtime until the process ends.
pub fn watch_signals(cancel: Cancel, notify: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            notify();
            cancel.cancel();
        }
    });
}
