//! Dovecot's per-folder control files: `dovecot-uidlist` (the UIDs Dovecot serves over IMAP) and
//! `dovecot-keywords` (what the lowercase flag letters mean).
//!
//! Reading them is what lets a Maildir migration and an IMAP migration of the same mailbox agree
//! on (UIDVALIDITY, UID), so a ledger started over IMAP can continue from disk and vice versa.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::error::MaildirError;

pub(super) const UIDLIST: &str = "dovecot-uidlist";
pub(super) const KEYWORDS: &str = "dovecot-keywords";

/// A parsed `dovecot-uidlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Uidlist {
    pub uid_validity: u32,
    pub next_uid: u32,
    /// Base name (up to the first `:`) -> UID.
    pub uids: HashMap<String, u32>,
}

/// Reads `dir/dovecot-uidlist`; `Ok(None)` when the folder has none.
pub(super) fn read_uidlist(dir: &Path) -> Result<Option<Uidlist>, MaildirError> {
    let path = dir.join(UIDLIST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(MaildirError::io("reading", path, e)),
    };
    // File names are bytes on disk; Dovecot writes what it read from readdir. Non-UTF-8 names
    // are matched lossily on both sides, which keeps them consistent with each other.
    let text = String::from_utf8_lossy(&bytes);
    parse_uidlist(&text)
        .map(Some)
        .map_err(|(line, reason)| MaildirError::Uidlist { path, line, reason })
}

/// Parses the text of a uidlist: version 3 (Dovecot 1.1+) and version 1 (Dovecot 1.0, and
/// Courier's `courierimapuiddb`, which has the same shape). Errors carry a 1-based line number.
pub(super) fn parse_uidlist(text: &str) -> Result<Uidlist, (usize, String)> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines
        .next()
        .ok_or_else(|| (1, "empty file, no header".to_owned()))?;
    let mut fields = header.split(' ').filter(|f| !f.is_empty());
    let version = fields.next().unwrap_or("");
    let (uid_validity, next_uid) = match version {
        "3" => {
            let mut v = None;
            let mut n = None;
            for f in fields {
                if let Some(x) = f.strip_prefix('V') {
                    v = x.parse::<u32>().ok();
                } else if let Some(x) = f.strip_prefix('N') {
                    n = x.parse::<u32>().ok();
                }
            }
            (
                v.ok_or_else(|| (1, format!("no V<uidvalidity> in header {header:?}")))?,
                n.ok_or_else(|| (1, format!("no N<nextuid> in header {header:?}")))?,
            )
        }
        "1" => {
            let v = fields.next().and_then(|x| x.parse::<u32>().ok());
            let n = fields.next().and_then(|x| x.parse::<u32>().ok());
            match (v, n) {
                (Some(v), Some(n)) => (v, n),
                _ => return Err((1, format!("bad version 1 header {header:?}"))),
            }
        }
        other => return Err((1, format!("unsupported uidlist version {other:?}"))),
    };
    if uid_validity == 0 {
        return Err((1, "UIDVALIDITY 0".to_owned()));
    }
    let mut uids = HashMap::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let lineno = i + 1;
        let (uid_text, rest) = line
            .split_once(' ')
            .ok_or_else(|| (lineno, format!("no file name in {line:?}")))?;
        let uid: u32 = uid_text
            .parse()
            .ok()
            .filter(|u| *u != 0)
            .ok_or_else(|| (lineno, format!("bad UID {uid_text:?}")))?;
        let name = if version == "3" {
            // `<uid> [<key><value> ...] :<filename>`: the name follows the first " :" (or a
            // leading ":" when there are no extension fields). Names never contain ':' except
            // in the info part, so the first ':' that starts a field is the marker.
            match rest.strip_prefix(':') {
                Some(n) => n,
                None => rest
                    .split_once(" :")
                    .map(|(_, n)| n)
                    .ok_or_else(|| (lineno, format!("no ':<filename>' in {line:?}")))?,
            }
        } else {
            rest.trim_start()
        };
        // Old Dovecot versions stored the whole name including `:2,<flags>`.
        let base = name.split(':').next().unwrap_or(name);
        if base.is_empty() {
            return Err((lineno, format!("empty file name in {line:?}")));
        }
        uids.insert(base.to_owned(), uid);
    }
    Ok(Uidlist {
        uid_validity,
        next_uid,
        uids,
    })
}

/// Reads `dir/dovecot-keywords` into a table indexed by letter (`a` = 0). Missing file: empty.
/// Lines are `<index> <name>`; Dovecot only uses indexes 0-25.
pub(super) fn read_keywords(dir: &Path) -> Result<Vec<Option<String>>, MaildirError> {
    let path = dir.join(KEYWORDS);
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MaildirError::io("reading", path, e)),
    };
    Ok(parse_keywords(&text))
}

/// Parses keyword lines; malformed lines are skipped (a keyword lost is a flag lost, not mail).
pub(super) fn parse_keywords(text: &str) -> Vec<Option<String>> {
    let mut table: Vec<Option<String>> = Vec::new();
    for line in text.lines() {
        let Some((idx, name)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(idx), name) = (idx.parse::<usize>(), name.trim()) else {
            continue;
        };
        if idx >= 26 || name.is_empty() {
            continue;
        }
        if table.len() <= idx {
            table.resize(idx + 1, None);
        }
        table[idx] = Some(name.to_owned());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_3_with_extensions() {
        let text = "3 V1700000001 N5 G3085f01b7f11094c501100008c4a11c1\n\
                    1 G3085f01b :1700000000.M1P1.h,S=10,W=12\n\
                    2 :1700000001.M1P1.h,S=11,W=13\n\
                    4 W100 S98 :1700000002.M1P1.h,S=98:2,S\n";
        let u = parse_uidlist(text).unwrap();
        assert_eq!((u.uid_validity, u.next_uid), (1_700_000_001, 5));
        assert_eq!(u.uids["1700000000.M1P1.h,S=10,W=12"], 1);
        assert_eq!(u.uids["1700000001.M1P1.h,S=11,W=13"], 2);
        assert_eq!(u.uids["1700000002.M1P1.h,S=98"], 4);
        assert_eq!(u.uids.len(), 3);
    }

    #[test]
    fn version_1_courier_shape() {
        let u = parse_uidlist("1 42 7\n3 1000.1.host:2,S\n6 1001.2.host\n").unwrap();
        assert_eq!((u.uid_validity, u.next_uid), (42, 7));
        assert_eq!(u.uids["1000.1.host"], 3);
        assert_eq!(u.uids["1001.2.host"], 6);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse_uidlist("").unwrap_err().0, 1);
        assert_eq!(parse_uidlist("3 N4\n").unwrap_err().0, 1);
        assert_eq!(parse_uidlist("9 V1 N1\n").unwrap_err().0, 1);
        assert_eq!(parse_uidlist("3 V1 N3\n1 :a\nx :b\n").unwrap_err().0, 3);
        assert_eq!(parse_uidlist("3 V1 N3\n0 :a\n").unwrap_err().0, 2);
        assert_eq!(parse_uidlist("3 V1 N3\n1 nofilename\n").unwrap_err().0, 2);
    }

    #[test]
    fn keywords_table() {
        let t = parse_keywords("0 $Forwarded\n2 Work\nbad\n30 Toolarge\n1 \n");
        assert_eq!(
            t,
            vec![Some("$Forwarded".to_owned()), None, Some("Work".to_owned())]
        );
    }
}
