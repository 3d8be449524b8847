//! Parsing one Maildir file name: `<base>[:2,<flags>]`, where the base name may carry Dovecot's
//! `,S=<size>` (bytes on disk, LF line ends) and `,W=<vsize>` (bytes with CRLF line ends, the
//! size IMAP reports). The base name is what identifies a message for its whole life: a flag
//! change renames `base:2,S` to `base:2,RS`, and delivery moves `new/base` to `cur/base:2,`.

use std::collections::BTreeSet;

use crate::model::Flags;

/// The parts of a Maildir file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MaildirName<'a> {
    /// Everything before the first `:`.
    pub base: &'a str,
    /// The letters after `:2,` (empty when there is no `:2,` info, as for files in `new/`).
    pub flag_letters: &'a str,
    /// `S=` from the base name: the file's size on disk, as the writer saw it.
    pub disk_size: Option<u64>,
    /// `W=` from the base name: the size with CRLF line ends.
    pub crlf_size: Option<u64>,
}

impl<'a> MaildirName<'a> {
    /// Splits a file name. Never fails: a name without info or sizes is still a message.
    pub fn parse(name: &'a str) -> MaildirName<'a> {
        let (base, info) = match name.split_once(':') {
            Some((b, i)) => (b, Some(i)),
            None => (name, None),
        };
        // Only the "2," info version carries flags; "1," (experimental, never used) and others
        // are treated as no flags rather than misread.
        let flag_letters = info.and_then(|i| i.strip_prefix("2,")).unwrap_or("");
        let mut disk_size = None;
        let mut crlf_size = None;
        // The first comma-separated field is the unique part (it may itself contain nothing
        // of interest); sizes follow as `,S=` and `,W=` fields.
        for field in base.split(',').skip(1) {
            if let Some(v) = field.strip_prefix("S=") {
                disk_size = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("W=") {
                crlf_size = v.parse().ok();
            }
        }
        MaildirName {
            base,
            flag_letters,
            disk_size,
            crlf_size,
        }
    }

    /// The flags the info letters stand for. Lowercase letters are Dovecot keywords, looked up in
    /// the folder's `dovecot-keywords` (index 0 is `a`); a letter with no entry is dropped, since
    /// Dovecot itself ignores it.
    pub fn flags(&self, keywords: &[Option<String>]) -> Flags {
        let mut atoms: BTreeSet<&str> = BTreeSet::new();
        for c in self.flag_letters.chars() {
            match c {
                'S' => {
                    atoms.insert("\\Seen");
                }
                'R' => {
                    atoms.insert("\\Answered");
                }
                'F' => {
                    atoms.insert("\\Flagged");
                }
                'T' => {
                    atoms.insert("\\Deleted");
                }
                'D' => {
                    atoms.insert("\\Draft");
                }
                // "Passed" (resent/forwarded/bounced) in the Maildir spec; Dovecot never writes
                // it, other MDAs and MUAs do, and $Forwarded is what it means to a user.
                'P' => {
                    atoms.insert("$Forwarded");
                }
                'a'..='z' => {
                    let idx = (c as u8 - b'a') as usize;
                    if let Some(Some(k)) = keywords.get(idx) {
                        atoms.insert(k.as_str());
                    }
                }
                _ => {}
            }
        }
        Flags::from_atoms(atoms)
    }
}

/// Dovecot's order for files it has not numbered yet (maildir_filename_sort_cmp): by the delivery
/// time written at the start of the name (`<secs>.M<usecs>...`), then by name. Names that do not
/// start with a timestamp sort by their mtime in its place, so the order is still total.
pub(super) fn dovecot_sort_key(base: &str, mtime_secs: i64) -> (i64, u64, &str) {
    let mut parts = base.splitn(2, '.');
    let secs = parts.next().and_then(|s| s.parse::<i64>().ok());
    match secs {
        Some(secs) => {
            let usecs = parts
                .next()
                .and_then(|rest| rest.strip_prefix('M'))
                .map(|rest| {
                    let digits: &str = &rest[..rest
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(rest.len())];
                    digits.parse::<u64>().unwrap_or(0)
                })
                .unwrap_or(0);
            (secs, usecs, base)
        }
        None => (mtime_secs, 0, base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_name_with_sizes_and_flags() {
        let n = MaildirName::parse("1700000000.M12P34.host,S=1390,W=1416:2,FRS");
        assert_eq!(n.base, "1700000000.M12P34.host,S=1390,W=1416");
        assert_eq!(n.flag_letters, "FRS");
        assert_eq!(n.disk_size, Some(1390));
        assert_eq!(n.crlf_size, Some(1416));
        let f = n.flags(&[]);
        assert!(f.seen && f.answered && f.flagged && !f.deleted && !f.draft);
    }

    #[test]
    fn new_dir_name_has_no_flags() {
        let n = MaildirName::parse("1700000000.12345_1.host");
        assert_eq!(n.base, "1700000000.12345_1.host");
        assert_eq!(n.flag_letters, "");
        assert_eq!(n.disk_size, None);
        assert_eq!(n.flags(&[]), Flags::default());
    }

    #[test]
    fn keywords_map_through_the_keyword_file() {
        let kw = vec![Some("$Forwarded".to_owned()), None, Some("Work".to_owned())];
        let f = MaildirName::parse("x:2,DTabcz").flags(&kw);
        assert!(f.draft && f.deleted && f.forwarded);
        assert_eq!(f.keywords.iter().collect::<Vec<_>>(), ["Work"]);
    }

    #[test]
    fn experimental_info_is_not_flags() {
        assert_eq!(MaildirName::parse("x:1,S").flag_letters, "");
    }

    #[test]
    fn sort_key_follows_dovecot() {
        assert!(dovecot_sort_key("100.M5P1.h", 0) < dovecot_sort_key("100.M40P1.h", 0));
        assert!(dovecot_sort_key("99.M999P1.h", 0) < dovecot_sort_key("100.M1P1.h", 0));
        assert_eq!(dovecot_sort_key("weird", 7), (7, 0, "weird"));
    }
}
