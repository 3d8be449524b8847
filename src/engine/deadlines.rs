//! The ledger as the Graph sink's store of throttle deadlines, one per destination and mailbox,
//! so a restarted run honours a Retry-After the killed one was given (issue 13.4).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::ledger::Ledger;
use crate::sink::graph::{DeadlineStore, RECHECK};

/// How often a PostgreSQL ledger's deadline of one mailbox is read again.
pub(crate) const SHARED_SERVER_RECHECK: Duration = Duration::from_secs(1);

pub(crate) struct LedgerDeadlines {
    pub ledger: Arc<Ledger>,
    /// The plan's destination name (`[destination.<name>]`).
    pub destination: String,
}

impl DeadlineStore for LedgerDeadlines {
    fn load(&self, mailbox: &str) -> Option<SystemTime> {
        match self.ledger.throttle_deadline(&self.destination, mailbox) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(mailbox, error = %e, "cannot read the recorded throttle deadline");
                None
            }
        }
    }

    /// A PostgreSQL ledger is a round trip away, on one connection the worker's every mailbox
    /// shares: read at the default spacing (before nearly every request), the reads cost 40% more
    /// CPU per message than SQLite and halved a worker's throughput (docs/benchmarks.md, fleet).
    /// In fleet mode a mailbox's writes come from the one worker that holds it, which learns of
    /// its own 429s first-hand; another process's deadline (`verify` beside it) is seen within
    /// a second, well inside any Retry-After.
    fn recheck(&self) -> Duration {
        if self.ledger.postgres_db().is_some() {
            SHARED_SERVER_RECHECK
        } else {
            RECHECK
        }
    }

    fn save(&self, mailbox: &str, until: SystemTime) {
        if let Err(e) = self
            .ledger
            .set_throttle_deadline(&self.destination, mailbox, until)
        {
            tracing::warn!(mailbox, error = %e, "cannot record the throttle deadline");
        }
    }
}
