//! Throttle deadlines that outlive the process. A Retry-After pauses the mailbox in the governor;
//! the same deadline goes to a [`DeadlineStore`] (the engine keeps it in the ledger), and the
//! first request of a mailbox in a new process waits for a recorded deadline first. Without
//! this, every restart during a throttled pause came back early and Exchange lengthened the
//! penalty each time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Where throttle deadlines are kept between processes.
pub trait DeadlineStore: Send + Sync {
    /// The recorded deadline of `mailbox`, if any.
    fn load(&self, mailbox: &str) -> Option<SystemTime>;
    /// Records that nothing may be sent for `mailbox` before `until`.
    fn save(&self, mailbox: &str, until: SystemTime);
}

/// The app's store (set once) and the mailboxes whose recorded deadline was already applied.
#[derive(Default)]
pub(crate) struct Deadlines {
    store: OnceLock<Arc<dyn DeadlineStore>>,
    restored: Mutex<HashSet<String>>,
}

impl Deadlines {
    /// Installs the store; false when one is installed already (the first one stays).
    pub(crate) fn set_store(&self, store: Arc<dyn DeadlineStore>) -> bool {
        self.store.set(store).is_ok()
    }

    /// On a mailbox's first request in this process: the time left of its recorded deadline.
    pub(crate) fn restore(&self, mailbox: &str) -> Option<Duration> {
        let store = self.store.get()?;
        let first = self
            .restored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(mailbox.to_owned());
        if !first {
            return None;
        }
        store
            .load(mailbox)?
            .duration_since(SystemTime::now())
            .ok()
            .filter(|d| !d.is_zero())
    }

    /// Records a pause of `after` from now.
    pub(crate) fn record(&self, mailbox: &str, after: Duration) {
        if let Some(store) = self.store.get() {
            store.save(mailbox, SystemTime::now() + after);
        }
    }
}
