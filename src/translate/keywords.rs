//! IMAP keywords -> Outlook categories, pure: which keywords become categories, under what name,
//! and which are dropped (with the reason the report gives).
//!
//! Without rules, keywords that are client or server state rather than a user's label are not
//! made categories: junk and not-junk marks (`$Junk`, `Junk`, `$NotJunk`, `NotJunk`, `NonJunk`,
//! `$Phishing`; the folder a message is in already says it), `$MDNSent` (a read receipt was
//! sent), and message-submission state (`$Submitted`, `$SubmitPending`). Thunderbird's
//! `$label1`..`$label5` become its named tags (Important, Work, Personal, To Do, Later). Every
//! other keyword is a user's own label and stays a category of the same name. A plan's
//! `[keywords]` table overrides any of this per keyword (case-insensitive): a string names the
//! category, `false` drops the keyword, `true` keeps it under its own name.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Flags;

/// What happens to one keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeywordAction {
    /// Becomes this Outlook category.
    Category(String),
    /// Not copied; the reason names what the keyword is.
    Drop(&'static str),
}

/// Built-in rule for the keywords mailferry knows (lower-cased names).
fn builtin(lower: &str) -> Option<KeywordAction> {
    let drop = KeywordAction::Drop;
    let cat = |s: &str| KeywordAction::Category(s.to_owned());
    Some(match lower {
        "$junk" | "junk" | "$notjunk" | "notjunk" | "nonjunk" | "$nonjunk" | "$phishing"
        | "$spam" | "$notspam" => drop("junk state (the folder carries it)"),
        "$mdnsent" => drop("read-receipt marker"),
        "$submitted" | "$submitpending" => drop("message-submission state"),
        "$label1" => cat("Important"),
        "$label2" => cat("Work"),
        "$label3" => cat("Personal"),
        "$label4" => cat("To Do"),
        "$label5" => cat("Later"),
        _ => return None,
    })
}

/// The reason given for a keyword a plan rule drops.
const PLAN_DROP: &str = "dropped by the plan's [keywords] table";

/// Keyword rules: the built-in mapping with a plan's overrides on top.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeywordMap {
    /// Lower-cased keyword -> `Some(category)` or `None` (drop).
    overrides: BTreeMap<String, Option<String>>,
}

/// One message's keywords, mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappedKeywords {
    pub categories: BTreeSet<String>,
    /// Keywords not copied, as the source spelled them.
    pub dropped: Vec<String>,
}

impl KeywordMap {
    /// Rules from a plan's `[keywords]` table: keyword -> `Some(category)` or `None` (drop).
    pub fn new(overrides: impl IntoIterator<Item = (String, Option<String>)>) -> KeywordMap {
        KeywordMap {
            overrides: overrides
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect(),
        }
    }

    /// What happens to `keyword`.
    pub fn action(&self, keyword: &str) -> KeywordAction {
        let lower = keyword.to_lowercase();
        match self.overrides.get(&lower) {
            Some(Some(cat)) => KeywordAction::Category(cat.clone()),
            Some(None) => KeywordAction::Drop(PLAN_DROP),
            None => builtin(&lower).unwrap_or_else(|| KeywordAction::Category(keyword.to_owned())),
        }
    }

    /// A message's keywords as categories, and the keywords dropped.
    pub fn map(&self, flags: &Flags) -> MappedKeywords {
        let mut out = MappedKeywords::default();
        for k in &flags.keywords {
            match self.action(k) {
                KeywordAction::Category(c) => {
                    out.categories.insert(c);
                }
                KeywordAction::Drop(_) => out.dropped.push(k.clone()),
            }
        }
        out
    }

    /// `flags` with its keywords replaced by the categories they become (what a Graph item holds).
    pub fn apply(&self, flags: &Flags) -> Flags {
        Flags {
            keywords: self.map(flags).categories,
            ..flags.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_keywords_are_not_categories_and_labels_get_their_names() {
        let f = Flags::from_atoms([
            "\\Seen",
            "NonJunk",
            "$Junk",
            "Junk",
            "$NotJunk",
            "$Phishing",
            "$MDNSent",
            "$label1",
            "$label4",
            "Projekt Alpha",
        ]);
        let m = KeywordMap::default().map(&f);
        assert_eq!(
            m.categories.into_iter().collect::<Vec<_>>(),
            ["Important", "Projekt Alpha", "To Do"]
        );
        let mut dropped = m.dropped;
        dropped.sort();
        assert_eq!(
            dropped,
            [
                "$Junk",
                "$MDNSent",
                "$NotJunk",
                "$Phishing",
                "Junk",
                "NonJunk"
            ]
        );
        assert_eq!(
            KeywordMap::default().action("$mdnsent"),
            KeywordAction::Drop("read-receipt marker")
        );
    }

    #[test]
    fn the_plan_overrides_the_mapping() {
        let map = KeywordMap::new([
            ("$Label1".to_owned(), Some("Urgent".to_owned())),
            ("Clients".to_owned(), None),
            ("$MDNSent".to_owned(), Some("$MDNSent".to_owned())),
        ]);
        let f = Flags::from_atoms(["$label1", "clients", "$MDNSent", "Work"]);
        let applied = map.apply(&f);
        assert_eq!(
            applied.keywords.into_iter().collect::<Vec<_>>(),
            ["$MDNSent", "Urgent", "Work"]
        );
        assert_eq!(map.map(&f).dropped, ["clients"]);
        assert_eq!(map.action("clients"), KeywordAction::Drop(PLAN_DROP));
    }

    #[test]
    fn the_same_input_gives_the_same_output() {
        let f = Flags::from_atoms(["b", "a", "$label2", "$Junk"]);
        let m = KeywordMap::default();
        assert_eq!(m.map(&f), m.map(&f.clone()));
        assert!(m.apply(&f).keywords.contains("Work"));
    }
}
