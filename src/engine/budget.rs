//! The process-wide memory budget for message bodies in flight.
//!
//! Permits are bytes, not messages: a reader must hold permits for a body's size before it
//! fetches it, and they return when the write is recorded. One 150 MB message and ten thousand
//! small ones are bounded alike. A message larger than the whole budget takes all of it, alone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of message bodies allowed in memory at once.
#[derive(Debug, Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    total: u32,
}

/// Bytes held until dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Permits are counted in KiB so a u32 covers budgets up to 4 TiB.
const UNIT: u64 = 1024;

impl Budget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Budget {
        let total = (bytes.max(1 << 20) / UNIT).min(u32::MAX as u64) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `bytes` fit in the budget (capped at the whole budget) and holds them.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let units = bytes.div_ceil(UNIT).clamp(1, self.total as u64) as u32;
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.sem.clone().acquire_many_owned(units).await.ok();
        Reservation { _permit: permit }
    }

    /// Bytes currently free.
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_bytes_not_messages() {
        let b = Budget::new(4 << 20);
        let big = b.reserve(3 << 20).await;
        assert_eq!(b.available(), 1 << 20);
        // A second 3 MiB body must wait until the first is released.
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(3 << 20).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(big);
        let _second = waiting.await.unwrap();
        // A body larger than the whole budget takes all of it rather than waiting forever.
        drop(_second);
        let all = b.reserve(100 << 20).await;
        assert_eq!(b.available(), 0);
        drop(all);
        assert_eq!(b.available(), 4 << 20);
    }
}
