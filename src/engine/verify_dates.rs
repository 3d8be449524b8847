//! How `verify --deep` compares a copy's received time with the source's INTERNALDATE, per
//! destination:
//!
//! - IMAP: APPEND carries INTERNALDATE, so the dates must agree within 1 second.
//! - Graph with `received_date = "prepend-received"` (and the JSON route, which sets the
//!   delivery time itself): mailferry promises the source's time; a difference over
//!   [`GRAPH_TOLERANCE_SECS`] is a discrepancy.
//! - Graph with `received_date = "as-is"` (the default): Exchange picks the received time of an
//!   importMime copy (its top `Received:` header, else the import time) and mailferry promises
//!   nothing; differences over the tolerance are counted and reported as a note, not as a
//!   discrepancy.
//!
//! The Graph tolerance is a minute: Exchange's rule is inferred, not documented, and a minute
//! absorbs rounding or clock differences while still catching what users notice (an import
//! date, or an older hop's date, hours to years off).

use chrono::{DateTime, FixedOffset};

use super::adapters::AnySink;
use crate::sink::graph::ReceivedDate;

/// Seconds a Graph copy's received time may differ from INTERNALDATE.
pub const GRAPH_TOLERANCE_SECS: i64 = 60;
/// Seconds an IMAP copy's INTERNALDATE may differ (APPEND sets it exactly; 1 s for rounding).
pub const IMAP_TOLERANCE_SECS: i64 = 1;

/// What a destination promises about received dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DateRule {
    /// Dates are promised within this many seconds: a difference is a discrepancy.
    Promised(i64),
    /// Nothing is promised: differences over the tolerance are counted for a note.
    NotPromised(i64),
}

impl DateRule {
    /// The rule for a mailbox's destination.
    pub(crate) fn for_sink(sink: &AnySink) -> DateRule {
        match sink {
            AnySink::Imap(_) => DateRule::Promised(IMAP_TOLERANCE_SECS),
            AnySink::Graph(g) => match g.received_date() {
                ReceivedDate::PrependReceived => DateRule::Promised(GRAPH_TOLERANCE_SECS),
                ReceivedDate::AsIs => DateRule::NotPromised(GRAPH_TOLERANCE_SECS),
            },
        }
    }

    fn tolerance(self) -> i64 {
        match self {
            DateRule::Promised(t) | DateRule::NotPromised(t) => t,
        }
    }

    /// Whether the copy's received time is further from the source's than the rule allows.
    pub(crate) fn differs(
        self,
        source: DateTime<FixedOffset>,
        dest: DateTime<FixedOffset>,
    ) -> bool {
        (dest.timestamp() - source.timestamp()).abs() > self.tolerance()
    }

    /// The note for `n` differences a [`DateRule::NotPromised`] destination showed in a folder.
    pub(crate) fn note(self, folder: &str, n: u64) -> String {
        format!(
            "dates: {n} items of folder {folder:?} show a received time more than {} s from the source's INTERNALDATE (received_date = \"as-is\": Exchange chose it; \"prepend-received\" keeps it)",
            self.tolerance()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_are_applied_in_utc() {
        let src = DateTime::parse_from_rfc3339("2019-01-01T10:00:00+01:00").unwrap();
        let same = DateTime::parse_from_rfc3339("2019-01-01T09:00:30Z").unwrap();
        let late = DateTime::parse_from_rfc3339("2019-01-01T09:01:01Z").unwrap();
        assert!(!DateRule::Promised(GRAPH_TOLERANCE_SECS).differs(src, same));
        assert!(DateRule::Promised(GRAPH_TOLERANCE_SECS).differs(src, late));
        assert!(DateRule::Promised(IMAP_TOLERANCE_SECS).differs(src, same));
    }
}
