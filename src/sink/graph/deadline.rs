//! Throttle deadlines that outlive the process and are shared between processes. A Retry-After
//! pauses the mailbox in the governor; the same deadline goes to a [`DeadlineStore`] (the engine
//! keeps it in the ledger). Before each request the store is read again, so a deadline recorded
//! by an earlier run (a restart during the pause) or by another process on the same ledger
//! (`verify` beside `migrate`) holds this process's requests too: they count against the same
//! per-mailbox budget, and Exchange answers an early return with a longer penalty.
//!
//! A deadline is applied once: each mailbox remembers the latest one it paused for (recorded here
//! or read), and only a later one pauses it again. Reads are spaced by at least [`RECHECK`] per
//! mailbox, which keeps the ledger off the hot path of a fast run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Where throttle deadlines are kept between processes.
pub trait DeadlineStore: Send + Sync {
    /// The recorded deadline of `mailbox`, if any.
    fn load(&self, mailbox: &str) -> Option<SystemTime>;
    /// Records that nothing may be sent for `mailbox` before `until`.
    fn save(&self, mailbox: &str, until: SystemTime);
    /// The shortest time between two reads of one mailbox's deadline from this store.
    fn recheck(&self) -> Duration {
        RECHECK
    }
}

/// The shortest time between two reads of one mailbox's recorded deadline, unless the store
/// says otherwise. Well under any Retry-After Graph gives (seconds); a request sent within it
/// after another process recorded a deadline is the same race as one that was already on its
/// way.
pub(crate) const RECHECK: Duration = Duration::from_millis(10);

/// What this process knows of one mailbox's deadline.
struct Known {
    /// The latest deadline applied (paused for) here.
    until: Option<SystemTime>,
    /// When the store was last read for it.
    read: Option<Instant>,
}

/// The app's store (set once) and what each mailbox has applied.
#[derive(Default)]
pub(crate) struct Deadlines {
    store: OnceLock<Arc<dyn DeadlineStore>>,
    known: Mutex<HashMap<String, Known>>,
}

impl Deadlines {
    /// Installs the store; false when one is installed already (the first one stays).
    pub(crate) fn set_store(&self, store: Arc<dyn DeadlineStore>) -> bool {
        self.store.set(store).is_ok()
    }

    fn known<T>(&self, f: impl FnOnce(&mut HashMap<String, Known>) -> T) -> T {
        f(&mut self.known.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Before a request of `mailbox`: the time left of a recorded deadline this process has not
    /// paused for yet (an earlier run's, or another process's), if any.
    pub(crate) fn fresh(&self, mailbox: &str) -> Option<Duration> {
        let store = self.store.get()?;
        let now = Instant::now();
        let due = self.known(|k| {
            k.get(mailbox)
                .and_then(|e| e.read)
                .is_none_or(|r| now.saturating_duration_since(r) >= store.recheck())
        });
        if !due {
            return None;
        }
        // Read outside the lock: the store may be slow, and other mailboxes need not wait.
        let loaded = store.load(mailbox);
        self.known(|k| {
            let e = k.entry(mailbox.to_owned()).or_insert(Known {
                until: None,
                read: None,
            });
            e.read = Some(now);
            let until = loaded?;
            if e.until.is_some_and(|u| u >= until) {
                return None;
            }
            e.until = Some(until);
            until
                .duration_since(SystemTime::now())
                .ok()
                .filter(|d| !d.is_zero())
        })
    }

    /// Records a pause of `after` from now (the caller pauses the governor).
    pub(crate) fn record(&self, mailbox: &str, after: Duration) {
        let until = SystemTime::now() + after;
        if let Some(store) = self.store.get() {
            store.save(mailbox, until);
        }
        self.known(|k| {
            let e = k.entry(mailbox.to_owned()).or_insert(Known {
                until: None,
                read: None,
            });
            e.until = Some(e.until.map_or(until, |u| u.max(until)));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store two `Deadlines` share, as two processes share a ledger (kept in milliseconds, as
    /// the ledger keeps them).
    #[derive(Default)]
    struct Shared(Mutex<HashMap<String, SystemTime>>);

    impl DeadlineStore for Shared {
        fn load(&self, mailbox: &str) -> Option<SystemTime> {
            let t = *self.0.lock().unwrap().get(mailbox)?;
            (t > SystemTime::now()).then_some(t)
        }
        fn save(&self, mailbox: &str, until: SystemTime) {
            let ms = until
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let until = SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64);
            let mut m = self.0.lock().unwrap();
            let e = m.entry(mailbox.to_owned()).or_insert(until);
            *e = (*e).max(until);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_another_process_records_pauses_this_one_once() {
        let store = Arc::new(Shared::default());
        let (migrate, verify) = (Deadlines::default(), Deadlines::default());
        assert!(migrate.set_store(store.clone()) && verify.set_store(store.clone()));
        assert_eq!(verify.fresh("a@x"), None);
        migrate.record("a@x", Duration::from_secs(30));
        // The recorder already paused for it; the other process has not read it yet.
        tokio::time::advance(RECHECK).await;
        assert_eq!(migrate.fresh("a@x"), None);
        let left = verify.fresh("a@x").expect("the other process honours it");
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        // Once applied, it does not pause again (the clocks may differ: a paused test clock
        // passes the pause long before the wall clock does).
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(verify.fresh("a@x"), None);
        assert_eq!(verify.fresh("b@x"), None, "other mailboxes are free");
        // A later deadline pauses again, and reads are spaced by RECHECK.
        migrate.record("a@x", Duration::from_secs(60));
        tokio::time::advance(RECHECK).await;
        assert_eq!(verify.fresh("a@x").map(|d| d.as_secs() / 10), Some(5));
        migrate.record("a@x", Duration::from_secs(90));
        assert_eq!(verify.fresh("a@x"), None, "read less than RECHECK ago");
        tokio::time::advance(RECHECK).await;
        assert!(verify.fresh("a@x").is_some());
    }
}
