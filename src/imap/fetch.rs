//! Interpreting FETCH responses: UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ, the Message-ID
//! header section and full bodies; UID set encoding; INTERNALDATE formatting for APPEND.

use chrono::{DateTime, FixedOffset, TimeZone};

use super::wire::Value;
use crate::body::Body;
use crate::model::{Flags, MessageMeta, Uid};

/// The attributes of one `* n FETCH (...)` response that mailferry asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FetchItem {
    pub(crate) uid: Option<u32>,
    pub(crate) flags: Option<Vec<String>>,
    pub(crate) internal_date: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) modseq: Option<u64>,
    /// `BODY[HEADER.FIELDS (...)]`.
    pub(crate) header: Option<Vec<u8>>,
    /// `BODY[]`: `Some(None)` when the server sent NIL.
    pub(crate) body: Option<Option<Body>>,
}

impl FetchItem {
    /// Parses the attribute list of a FETCH response.
    pub(crate) fn parse(args: Vec<Value>) -> Result<FetchItem, String> {
        let Some(Value::List(items)) = args.into_iter().next() else {
            return Err("FETCH without an attribute list".into());
        };
        let mut out = FetchItem::default();
        let mut it = items.into_iter();
        while let Some(name) = it.next() {
            let Value::Atom(name) = name else {
                return Err(format!("FETCH attribute name expected, got {name:?}"));
            };
            let value = it
                .next()
                .ok_or_else(|| format!("FETCH attribute {name} without value"))?;
            let upper = name.to_ascii_uppercase();
            match upper.as_str() {
                "UID" => out.uid = Some(num(&value, "UID")? as u32),
                "RFC822.SIZE" => out.size = Some(num(&value, "RFC822.SIZE")?),
                "INTERNALDATE" => {
                    out.internal_date = Some(
                        value
                            .text()
                            .ok_or("INTERNALDATE is not a string")?
                            .into_owned(),
                    )
                }
                "FLAGS" => {
                    let list = value.list().ok_or("FLAGS is not a list")?;
                    out.flags = Some(
                        list.iter()
                            .filter_map(|v| v.text().map(|t| t.into_owned()))
                            .collect(),
                    );
                }
                "MODSEQ" => {
                    let list = value.list().ok_or("MODSEQ is not a list")?;
                    out.modseq = Some(
                        list.first()
                            .and_then(Value::number)
                            .ok_or("MODSEQ without a number")?,
                    );
                }
                "RFC822" | "BODY[]" => out.body = Some(value.into_body()),
                _ if upper.starts_with("BODY[]<0") => out.body = Some(value.into_body()),
                _ if upper.starts_with("BODY[HEADER.FIELDS") => out.header = value.into_bytes(),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Merges attributes of a second response for the same message (servers may split them).
    pub(crate) fn merge(&mut self, other: FetchItem) {
        self.uid = self.uid.or(other.uid);
        if other.flags.is_some() {
            self.flags = other.flags;
        }
        self.internal_date = self.internal_date.take().or(other.internal_date);
        self.size = self.size.or(other.size);
        self.modseq = other.modseq.or(self.modseq);
        self.header = self.header.take().or(other.header);
        self.body = self.body.take().or(other.body);
    }

    /// Turns a complete metadata item into a [`MessageMeta`].
    pub(crate) fn into_meta(self) -> Result<MessageMeta, String> {
        let uid = self
            .uid
            .and_then(Uid::new)
            .ok_or("FETCH without a valid UID")?;
        let size = self
            .size
            .ok_or_else(|| format!("UID {uid}: no RFC822.SIZE"))?;
        let date = self
            .internal_date
            .ok_or_else(|| format!("UID {uid}: no INTERNALDATE"))?;
        let internal_date = parse_internal_date(&date)
            .ok_or_else(|| format!("UID {uid}: bad INTERNALDATE {date:?}"))?;
        let flags = self.flags.ok_or_else(|| format!("UID {uid}: no FLAGS"))?;
        Ok(MessageMeta {
            uid,
            size,
            flags: Flags::from_atoms(flags.iter().map(String::as_str)),
            internal_date,
            message_id: self.header.as_deref().and_then(crate::header::message_id),
            modseq: self.modseq,
        })
    }
}

fn num(v: &Value, what: &str) -> Result<u64, String> {
    v.number()
        .ok_or_else(|| format!("{what} is not a number: {v:?}"))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses `" 7-Jul-2017 10:00:00 +0200"` (RFC 3501 `date-time`; the day may be space-padded).
/// By hand rather than with chrono's format strings: a survey parses one per message, and the
/// format-string parser was a visible share of the survey's CPU.
pub(crate) fn parse_internal_date(s: &str) -> Option<DateTime<FixedOffset>> {
    fn digits<T: std::str::FromStr>(s: &str, len: std::ops::RangeInclusive<usize>) -> Option<T> {
        if !len.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let (day, rest) = s.trim().split_once('-')?;
    let (month, rest) = rest.split_once('-')?;
    let (year, rest) = rest.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let day: u32 = digits(day, 1..=2)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let year: i32 = digits(year, 4..=4)?;
    let mut hms = time.split(':');
    let hour: u32 = digits(hms.next()?, 2..=2)?;
    let minute: u32 = digits(hms.next()?, 2..=2)?;
    let second: u32 = digits(hms.next()?, 2..=2)?;
    if hms.next().is_some() {
        return None;
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone: i32 = digits(&zone[1..], 4..=4)?;
    let offset = FixedOffset::east_opt(sign * ((zone / 100) * 3600 + (zone % 100) * 60))?;
    let local =
        chrono::NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second)?;
    offset.from_local_datetime(&local).single()
}

/// Formats an INTERNALDATE for APPEND (`"07-Jul-2017 10:00:00 +0200"`, quotes included).
pub(crate) fn format_internal_date(d: &DateTime<FixedOffset>) -> String {
    format!("\"{}\"", d.format("%d-%b-%Y %H:%M:%S %z"))
}

/// Compresses UIDs into an IMAP sequence set (`1:5,7,9:12`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut sorted: Vec<u32> = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Parses a UID set (`5`, `5:7`, `5,7:9`) into UIDs (used for APPENDUID).
pub(crate) fn parse_uid_set(set: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a.abs_diff(b) > 1_000_000 {
                    return None;
                }
                out.extend(a.min(b)..=a.max(b));
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::wire::{Response, parse_response};

    fn item(raw: &[u8]) -> FetchItem {
        match parse_response(raw).expect("parses") {
            Response::Data { args, .. } => FetchItem::parse(args).expect("fetch item"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn meta_from_a_dovecot_response() {
        let it = item(b"* 1 FETCH (UID 4 MODSEQ (12) FLAGS (\\Seen \\Recent Work) INTERNALDATE \" 7-Jul-2017 10:00:00 +0200\" RFC822.SIZE 1234 BODY[HEADER.FIELDS (MESSAGE-ID)] {36}\r\nMessage-ID:\r\n <x.y@example.org> \r\n\r\n)\r\n");
        let meta = it.into_meta().expect("complete");
        assert_eq!(meta.uid.get(), 4);
        assert_eq!(meta.size, 1234);
        assert_eq!(meta.modseq, Some(12));
        assert!(meta.flags.seen && meta.flags.keywords.contains("Work"));
        assert_eq!(meta.message_id.as_deref(), Some("<x.y@example.org>"));
        assert_eq!(meta.internal_date.to_rfc3339(), "2017-07-07T10:00:00+02:00");
    }

    #[test]
    fn missing_attributes_are_errors() {
        let it = item(b"* 1 FETCH (UID 4 FLAGS ())\r\n");
        assert!(it.into_meta().unwrap_err().contains("RFC822.SIZE"));
        let it = item(b"* 1 FETCH (FLAGS ())\r\n");
        assert!(it.into_meta().is_err());
    }

    #[test]
    fn body_nil_and_literal() {
        let it = item(b"* 2 FETCH (UID 9 RFC822.SIZE 3 BODY[] {3}\r\nabc)\r\n");
        assert_eq!(it.body, Some(Some(Body::Memory(b"abc".to_vec()))));
        let it = item(b"* 2 FETCH (UID 9 BODY[] NIL)\r\n");
        assert_eq!(it.body, Some(None));
    }

    #[test]
    fn dates_round_trip() {
        let d = parse_internal_date("17-Jul-1996 02:44:25 -0700").expect("parses");
        assert_eq!(format_internal_date(&d), "\"17-Jul-1996 02:44:25 -0700\"");
        assert!(parse_internal_date("garbage").is_none());
        let padded = parse_internal_date(" 7-Jul-2017 10:00:00 +0200").expect("space-padded day");
        assert_eq!(padded.to_rfc3339(), "2017-07-07T10:00:00+02:00");
        for bad in [
            "32-Jul-2017 10:00:00 +0200",
            "07-Jux-2017 10:00:00 +0200",
            "07-Jul-2017 24:00:00 +0200",
            "07-Jul-2017 10:00 +0200",
            "07-Jul-2017 10:00:00 0200",
            "07-Jul-2017 10:00:00 +02:00",
            "+7-Jul-2017 10:00:00 +0200",
        ] {
            assert!(parse_internal_date(bad).is_none(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever instant and offset: formatting for APPEND and parsing back is the identity,
        /// and the hand parser agrees with chrono's format-string parser.
        #[test]
        fn dates_round_trip_everywhere(secs in 0i64..4_102_444_800, quarter_hours in -56i32..=56) {
            let offset = FixedOffset::east_opt(quarter_hours * 900).expect("offset");
            let d = DateTime::from_timestamp(secs, 0).expect("instant").with_timezone(&offset);
            let text = format_internal_date(&d);
            let text = text.trim_matches('"');
            proptest::prop_assert_eq!(parse_internal_date(text), Some(d));
            proptest::prop_assert_eq!(
                DateTime::parse_from_str(text, "%d-%b-%Y %H:%M:%S %z").ok(),
                Some(d)
            );
        }
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 7, 9, 10, 3]), "1:3,5,7,9:10");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(
            parse_uid_set("3955:3957,4000"),
            Some(vec![3955, 3956, 3957, 4000])
        );
        assert_eq!(parse_uid_set("x"), None);
    }
}
