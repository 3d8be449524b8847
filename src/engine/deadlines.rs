//! The ledger as the Graph sink's store of throttle deadlines, one per destination and mailbox,
//! so a restarted run honours a Retry-After the killed one was given (issue 13.4).

use std::sync::Arc;
use std::time::SystemTime;

use crate::ledger::Ledger;
use crate::sink::graph::DeadlineStore;

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

    fn save(&self, mailbox: &str, until: SystemTime) {
        if let Err(e) = self
            .ledger
            .set_throttle_deadline(&self.destination, mailbox, until)
        {
            tracing::warn!(mailbox, error = %e, "cannot record the throttle deadline");
        }
    }
}
