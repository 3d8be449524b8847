//! `UserRoot` (the Exchange IMAP-migration CSV column): on a server that shows every user's
//! mail in one shared namespace to an administrator (`/users/ann`, Cyrus' `user.ann`), a row
//! reads only the subtree under its root, and that subtree is the user's mailbox: the root
//! folder itself (or a child named INBOX) is the INBOX, its children are the folders. Pure: it
//! only filters and renames a folder listing.

use crate::model::{FolderPath, SourceFolder, SpecialUse};

/// A row's root, as segments. Written with `/` (Exchange's own examples) or with the server's
/// delimiter; a leading or trailing separator is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRoot(String);

impl UserRoot {
    /// `None` for a root with no segment (empty, or only separators).
    pub fn parse(text: &str) -> Option<UserRoot> {
        let t = text.trim();
        t.split('/')
            .any(|s| !s.is_empty())
            .then(|| UserRoot(t.to_owned()))
    }

    /// The root's segments for a folder listed with `delimiter`.
    fn segments(&self, delimiter: Option<char>) -> Vec<&str> {
        self.0
            .split(|c| c == '/' || Some(c) == delimiter)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The folders under this root, with the root cut off their paths (raw names unchanged: they
    /// are what the server is asked for). Everything else is left out.
    pub fn scope(&self, folders: Vec<SourceFolder>) -> Vec<SourceFolder> {
        let mut out = Vec::new();
        for mut f in folders {
            let root = self.segments(f.delimiter);
            let segs = f.path.segments();
            if segs.len() < root.len() || segs.iter().zip(&root).any(|(a, b)| a != b) {
                continue;
            }
            let rest = &segs[root.len()..];
            let inbox =
                rest.is_empty() || (rest.len() == 1 && rest[0].eq_ignore_ascii_case("INBOX"));
            let path = if inbox {
                FolderPath::new(vec!["INBOX".into()])
            } else {
                FolderPath::new(rest.to_vec())
            };
            let Some(path) = path else { continue };
            if inbox {
                f.special_use = Some(SpecialUse::Inbox);
            } else if f.special_use == Some(SpecialUse::Inbox) {
                f.special_use = None;
            }
            f.path = path;
            out.push(f);
        }
        // The root itself and a child named INBOX both claim the INBOX: the root wins when it
        // holds mail (Cyrus); the child stays an ordinary folder then. A root that is only a
        // container is not read.
        let root_holds_mail = out.iter().any(|f| f.selectable && self.is_root(f));
        for f in out.iter_mut() {
            if root_holds_mail && f.special_use == Some(SpecialUse::Inbox) && !self.is_root(f) {
                f.special_use = None;
            }
        }
        out.retain(|f| f.selectable || !self.is_root(f));
        out
    }

    fn is_root(&self, f: &SourceFolder) -> bool {
        let root = self.segments(f.delimiter);
        let full = crate::utf7::decode(&f.raw_name).unwrap_or_else(|_| f.raw_name.clone());
        let segs: Vec<&str> = match f.delimiter {
            Some(d) => full.split(d).filter(|s| !s.is_empty()).collect(),
            None => vec![full.as_str()],
        };
        segs == root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(raw: &str, selectable: bool) -> SourceFolder {
        SourceFolder {
            raw_name: raw.into(),
            path: FolderPath::parse(raw, Some('/')).unwrap(),
            delimiter: Some('/'),
            special_use: raw
                .eq_ignore_ascii_case("INBOX")
                .then_some(SpecialUse::Inbox),
            selectable,
        }
    }

    #[test]
    fn only_the_rows_subtree_is_read_and_its_root_is_the_inbox() {
        let all = vec![
            folder("INBOX", true),
            folder("users", false),
            folder("users/ann", true),
            folder("users/ann/Work", true),
            folder("users/annabel", true),
            folder("users/annabel/Work", true),
            folder("users/bob", true),
        ];
        let ann = UserRoot::parse("/users/ann/").unwrap().scope(all);
        let got: Vec<(String, String, Option<SpecialUse>)> = ann
            .iter()
            .map(|f| (f.raw_name.clone(), f.path.to_string(), f.special_use))
            .collect();
        assert_eq!(
            got,
            [
                ("users/ann".into(), "INBOX".into(), Some(SpecialUse::Inbox)),
                ("users/ann/Work".into(), "Work".into(), None),
            ]
        );
        assert!(UserRoot::parse(" / ").is_none());
    }

    #[test]
    fn a_container_root_takes_its_inbox_child() {
        let all = vec![
            folder("shared/cy", false),
            folder("shared/cy/INBOX", true),
            folder("shared/cy/Sent", true),
        ];
        let cy = UserRoot::parse("shared/cy").unwrap().scope(all);
        let got: Vec<String> = cy.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(got, ["INBOX", "Sent"]);
        assert_eq!(cy[0].special_use, Some(SpecialUse::Inbox));
    }
}
