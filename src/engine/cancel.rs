//! Stopping a run, at two levels.
//!
//! - **Stop** (the first Ctrl-C or SIGTERM, [`Cancel::cancel`]): readers stop fetching, the writes
//!   in flight finish and are recorded, every mailbox ends `interrupted`. A write waiting out a
//!   Retry-After still waits: it is in flight, and its row says `sending`.
//! - **Abort** (the second signal, [`Cancel::abort`]): every wait ends at once. `migrate` drops
//!   the mailboxes' futures where they stand (a governor wait, a Retry-After pause, a backoff, an
//!   upload session between two chunks, an HTTP request), exactly where a kill would have ended
//!   them, writes the run's summary and returns. This is safe because the ledger never depends on
//!   a clean exit: a message is marked `sending` before its write and `done` only after the
//!   destination confirmed it, so a row cut short stays `sending` and the next run looks it up
//!   at the destination (the crash path). Nothing is marked `done` that was not confirmed.
//!
//! The abort level is a `watch` channel rather than a flag, so that a future can wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::ledger::Ledger;
use crate::plan::Mailbox;
use crate::report::{Event, Events, MailboxSummary};

/// A run's stop and abort requests (set by signals; cheap to clone, all clones share them).
#[derive(Debug, Clone)]
pub struct Cancel {
    levels: Arc<Levels>,
    /// A child's own stop ([`Cancel::child`]): fleet mode stops one mailbox whose lease was lost.
    own_stop: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
struct Levels {
    stop: AtomicBool,
    abort: watch::Sender<bool>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            levels: Arc::new(Levels {
                stop: AtomicBool::new(false),
                abort: watch::Sender::new(false),
            }),
            own_stop: None,
        }
    }
}

impl Cancel {
    /// Stop: finish the writes in flight, start no new ones.
    pub fn cancel(&self) {
        match &self.own_stop {
            Some(own) => own.store(true, Ordering::SeqCst),
            None => self.levels.stop.store(true, Ordering::SeqCst),
        }
    }
    /// True once a stop (or an abort) was asked for, of this child or of the whole run.
    pub fn is_cancelled(&self) -> bool {
        self.levels.stop.load(Ordering::SeqCst)
            || self
                .own_stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::SeqCst))
            || self.is_aborted()
    }
    /// A stop of its own that the run's stop and abort also reach: cancelling the child stops
    /// one mailbox, cancelling the run stops them all.
    pub fn child(&self) -> Cancel {
        Cancel {
            levels: Arc::clone(&self.levels),
            own_stop: Some(Arc::new(AtomicBool::new(false))),
        }
    }
    /// Abort: end every wait now (implies [`cancel`](Self::cancel)).
    pub fn abort(&self) {
        self.cancel();
        self.levels.abort.send_replace(true);
    }
    /// True once an abort was asked for.
    pub fn is_aborted(&self) -> bool {
        *self.levels.abort.borrow()
    }
    /// Resolves when an abort is asked for (at once if it already was).
    pub async fn aborted(&self) {
        let mut rx = self.levels.abort.subscribe();
        if rx.wait_for(|a| *a).await.is_err() {
            // The sender lives as long as `self`: unreachable, but never a false abort.
            std::future::pending::<()>().await;
        }
    }
}

pub(crate) fn cancelled(c: &Cancel) -> bool {
    c.is_cancelled()
}

/// What an abort says about a mailbox whose pass it cut short.
pub(crate) const ABORTED: &str = "stopped at once by a second signal: writes that were in flight \
     stay `sending` and the next run looks them up at the destination";

/// Summaries for the selected mailboxes an abort cut short (those without one in `finished`):
/// `interrupted`, recorded as such in the ledger and announced like any finished mailbox. Their
/// counts of this run are not known (the pass was dropped mid-way); `status` shows the ledger's.
pub(crate) fn cut_short(
    ledger: &Ledger,
    run: i64,
    selected: &[&Mailbox],
    finished: &[MailboxSummary],
    events: &Events,
) -> Vec<MailboxSummary> {
    let mut out = Vec::new();
    for mb in selected {
        if finished.iter().any(|s| s.mailbox == mb.key) {
            continue;
        }
        let summary = MailboxSummary {
            mailbox: mb.key.clone(),
            destination: mb.destination.clone(),
            status: "interrupted".into(),
            error: Some(ABORTED.into()),
            ..Default::default()
        };
        if let Ok(id) = ledger.mailbox(&mb.key, &mb.destination) {
            let _ = ledger.set_mailbox_state(id, run, "interrupted", Some((ABORTED, "mailbox")));
        }
        events.send(Event::MailboxFinished {
            summary: Box::new(summary.clone()),
        });
        out.push(summary);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn abort_wakes_waiters_and_implies_stop() {
        let c = Cancel::default();
        assert!(!c.is_cancelled() && !c.is_aborted());
        c.cancel();
        assert!(c.is_cancelled() && !c.is_aborted());
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.aborted().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a stop is not an abort");
        c.abort();
        tokio::time::timeout(std::time::Duration::from_millis(1), waiter)
            .await
            .expect("the abort wakes the waiter at once")
            .unwrap();
        // and a late waiter returns at once
        tokio::time::timeout(std::time::Duration::from_millis(1), c.aborted())
            .await
            .unwrap();
        let fresh = Cancel::default();
        fresh.abort();
        assert!(fresh.is_cancelled());
    }
}
