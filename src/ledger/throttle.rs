//! Throttle deadlines: when a destination asked one mailbox to hold off (Graph's Retry-After),
//! the wall-clock instant it may be asked again. Kept in the ledger so a process that was killed
//! or interrupted during the wait does not come back early after a restart: Exchange answers an
//! early return with a longer penalty, and restarts would otherwise keep doubling it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Ledger {
    /// Records that `mailbox` at `destination` must not be sent anything before `until`. A later
    /// deadline already recorded is kept (deadlines only move forward).
    pub fn set_throttle_deadline(
        &self,
        destination: &str,
        mailbox: &str,
        until: SystemTime,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.set_throttle_deadline(destination, mailbox, until));
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO throttle (destination, mailbox, until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (destination, mailbox) DO UPDATE
                 SET until_ms = max(until_ms, excluded.until_ms)",
                params![destination, mailbox, to_ms(until)],
            )
            .map(|_| ())
        })
    }

    /// The recorded deadline of `mailbox` at `destination`, if one is still in the future.
    pub fn throttle_deadline(
        &self,
        destination: &str,
        mailbox: &str,
    ) -> Result<Option<SystemTime>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.throttle_deadline(destination, mailbox));
        }
        let ms: Option<i64> = self.with_quick_read(|c| {
            c.prepare_cached(
                "SELECT until_ms FROM throttle WHERE destination = ?1 AND mailbox = ?2",
            )?
            .query_row(params![destination, mailbox], |r| r.get(0))
            .optional()
        })?;
        Ok(ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
            .filter(|t| *t > SystemTime::now()))
    }
}
