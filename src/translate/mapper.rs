//! [`FolderMapper`]: the folder-mapping algorithm described in the module docs.
//!
//! It works in three passes so that the result cannot depend on input order: (1) each folder,
//! in sorted order, gets a draft target path whose segments carry an *origin* (which source
//! folder or plan rule produced them); (2) the segments become nodes of one target tree, keyed
//! by origin, so two different source folders never share a node by accident; (3) siblings
//! whose names collide case-insensitively are renamed in a fixed order.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::names::{glob_matches, sanitize, with_suffix};
use super::wellknown::{GRAPH_RESERVED_TOP_LEVEL, by_name};
use super::{
    ChangeKind, FolderChange, FolderMapping, GRAPH_MAX_DEPTH, Target, TargetKind, WellKnownFolder,
};
use crate::model::{FolderPath, SourceFolder, SpecialUse};
use crate::plan::FolderRules;

/// Maps source folders to destination folders under a plan's rules. See the module docs.
#[derive(Clone, Debug)]
pub struct FolderMapper {
    rules: FolderRules,
    target: TargetKind,
    max_depth: usize,
}

/// A folder's target before names are made valid: a root and segments with their origins.
struct Draft {
    under: Option<WellKnownFolder>,
    /// (name as the source or rule wrote it, origin key)
    segs: Vec<(String, String)>,
    special: Option<SpecialUse>,
    changes: Vec<FolderChange>,
}

/// One folder of the target tree.
struct Node {
    raw: String,
    origin: String,
    name: String,
    notes: Vec<&'static str>,
    /// Set when collision handling renamed the node: (kind, reason).
    renamed: Option<(ChangeKind, String)>,
    final_name: String,
    parent: Option<usize>,
}

type NodeKey = (Option<WellKnownFolder>, Option<usize>, String);

impl FolderMapper {
    /// The kind of destination this mapper names folders for.
    pub fn kind(&self) -> TargetKind {
        self.target
    }

    /// A mapper for `target` with the plan's folder rules.
    pub fn new(rules: &FolderRules, target: TargetKind) -> FolderMapper {
        let default_depth = match target {
            TargetKind::Graph => GRAPH_MAX_DEPTH,
            TargetKind::Imap { .. } => usize::MAX,
        };
        FolderMapper {
            rules: rules.clone(),
            target,
            // A child of a well-known folder needs two levels; below that nothing could fit.
            max_depth: rules.max_depth.unwrap_or(default_depth).max(2),
        }
    }

    /// Where each folder goes, sorted by source raw name; duplicates are listed once.
    /// Deterministic: the same folders in any order give the same result.
    pub fn map(&self, folders: &[SourceFolder]) -> Vec<FolderMapping> {
        let mut sorted: Vec<&SourceFolder> = folders.iter().collect();
        sorted.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        sorted.dedup_by(|a, b| a == b);

        // Special-use folders anywhere in the tree: their descendants go under them.
        let mut specials: HashMap<&[String], WellKnownFolder> = HashMap::new();
        for f in &sorted {
            if let Some(w) = f.special_use.and_then(WellKnownFolder::from_special_use) {
                specials.entry(f.path.segments()).or_insert(w);
            }
        }

        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<NodeKey, usize> = HashMap::new();
        let mut node_under: Vec<Option<WellKnownFolder>> = Vec::new();
        // Per folder: excluded pattern, or (draft data, leaf node).
        let mut staged = Vec::with_capacity(sorted.len());
        for f in &sorted {
            let display = f.path.join('/');
            if let Some(p) = self
                .rules
                .exclude
                .iter()
                .find(|p| glob_matches(p, &display))
            {
                staged.push(Err(p.clone()));
                continue;
            }
            let mut draft = self.draft(f, &display, &specials);
            self.flatten(&mut draft, &display);
            let mut parent = None;
            for (raw, origin) in &draft.segs {
                let key = (draft.under, parent, origin.clone());
                let id = *index.entry(key).or_insert_with(|| {
                    let (name, notes) = sanitize(raw, self.target);
                    nodes.push(Node {
                        raw: raw.clone(),
                        origin: origin.clone(),
                        final_name: name.clone(),
                        name,
                        notes,
                        renamed: None,
                        parent,
                    });
                    node_under.push(draft.under);
                    nodes.len() - 1
                });
                parent = Some(id);
            }
            staged.push(Ok((draft, parent)));
        }

        self.resolve_collisions(&mut nodes, &node_under);

        // Each node's changes are reported once: by the folder whose own leaf it is, else by
        // the first folder below it (a parent the source never listed).
        let mut reporter: Vec<Option<usize>> = vec![None; nodes.len()];
        for (i, s) in staged.iter().enumerate() {
            if let Ok((_, Some(leaf))) = s {
                reporter[*leaf].get_or_insert(i);
            }
        }
        for (i, s) in staged.iter().enumerate() {
            if let Ok((_, Some(leaf))) = s {
                for id in chain(&nodes, *leaf) {
                    reporter[id].get_or_insert(i);
                }
            }
        }

        sorted
            .into_iter()
            .zip(staged)
            .enumerate()
            .map(|(i, (f, s))| match s {
                Err(pattern) => FolderMapping {
                    source: f.clone(),
                    target: None,
                    changes: Vec::new(),
                    excluded_by: Some(pattern),
                },
                Ok((draft, leaf)) => {
                    self.finish(f, draft, leaf, &nodes, |id| reporter[id] == Some(i))
                }
            })
            .collect()
    }

    /// Steps 2-5 of the rules: INBOX prefix, rename, well-known folders, nest_under.
    fn draft(
        &self,
        f: &SourceFolder,
        display: &str,
        specials: &HashMap<&[String], WellKnownFolder>,
    ) -> Draft {
        let orig = f.path.segments();
        let src_origin = |end: usize| format!("src:{}", orig[..end].join("\u{1}"));
        let mut changes = Vec::new();
        let mut special = None;
        let (under, mut segs) = if let Some((from, to)) = self.rename_rule(display) {
            let renamed = format!("{to}{}", &display[from.len()..]);
            changes.push(FolderChange {
                kind: ChangeKind::Renamed,
                from: display.to_owned(),
                to: renamed.clone(),
                reason: format!("plan rule folders.rename \"{from}\" = \"{to}\""),
            });
            let parts: Vec<&str> = renamed.split('/').filter(|s| !s.is_empty()).collect();
            let origin = |end: usize| format!("ren:{}", parts[..end].join("/"));
            match parts.first().and_then(|p| by_name(p)) {
                Some(w) => (
                    Some(w),
                    (1..parts.len())
                        .map(|i| (parts[i].to_owned(), origin(i + 1)))
                        .collect(),
                ),
                None => (
                    None,
                    (0..parts.len())
                        .map(|i| (parts[i].to_owned(), origin(i + 1)))
                        .collect(),
                ),
            }
        } else if let Some(w) = f.special_use.and_then(WellKnownFolder::from_special_use) {
            if !(w == WellKnownFolder::Inbox && display.eq_ignore_ascii_case("INBOX")) {
                changes.push(well_known_change(
                    display,
                    w,
                    format!(
                        "the server marks it {} (RFC 6154 special use)",
                        w.special_use().attribute()
                    ),
                ));
            }
            (Some(w), Vec::new())
        } else if let Some((len, w)) = (1..orig.len())
            .rev()
            // In a `.`-delimited tree every folder sits under INBOX (Courier, Maildir++, classic
            // Cyrus): that prefix is dropped below, so INBOX does not count as the parent here.
            .filter(|&n| !(n == 1 && inbox_prefixed(f)))
            .find_map(|n| specials.get(&orig[..n]).map(|w| (n, *w)))
        {
            (
                Some(w),
                (len..orig.len())
                    .map(|i| (orig[i].clone(), src_origin(i + 1)))
                    .collect(),
            )
        } else {
            special = f.special_use;
            let mut start = 0;
            if inbox_prefixed(f) {
                start = 1;
                changes.push(FolderChange {
                    kind: ChangeKind::InboxPrefix,
                    from: display.to_owned(),
                    to: orig[1..].join("/"),
                    reason: "Courier/Maildir++ servers keep every folder under INBOX.; the \
                             destination's top level is not below its Inbox"
                        .into(),
                });
            }
            let first = &orig[start];
            let well_known = if start == 0 && first.eq_ignore_ascii_case("INBOX") {
                Some(WellKnownFolder::Inbox)
            } else {
                by_name(first)
            };
            match well_known {
                Some(w) => {
                    if start + 1 == orig.len() && !display.eq_ignore_ascii_case("INBOX") {
                        changes.push(well_known_change(
                            display,
                            w,
                            format!(
                                "a top-level folder named \"{first}\" is taken as the {} folder",
                                w.display_name()
                            ),
                        ));
                    }
                    (
                        Some(w),
                        (start + 1..orig.len())
                            .map(|i| (orig[i].clone(), src_origin(i + 1)))
                            .collect(),
                    )
                }
                None => (
                    None,
                    (start..orig.len())
                        .map(|i| (orig[i].clone(), src_origin(i + 1)))
                        .collect(),
                ),
            }
        };
        if under.is_none() {
            if let Some(nest) = &self.rules.nest_under {
                let parts: Vec<&str> = nest.split('/').filter(|s| !s.is_empty()).collect();
                let before = segs
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join("/");
                let mut nested: Vec<(String, String)> = (0..parts.len())
                    .map(|i| {
                        (
                            parts[i].to_owned(),
                            format!("nest:{}", parts[..=i].join("/")),
                        )
                    })
                    .collect();
                nested.append(&mut segs);
                segs = nested;
                changes.push(FolderChange {
                    kind: ChangeKind::Nested,
                    from: before.clone(),
                    to: format!("{}/{before}", parts.join("/")),
                    reason: format!("plan rule folders.nest_under = \"{nest}\""),
                });
            }
            if segs.is_empty() {
                // Only reachable with a rename rule to an empty path: keep the folder visible.
                segs.push(("_".to_owned(), format!("src:{}", orig.join("\u{1}"))));
            }
        }
        Draft {
            under,
            segs,
            special,
            changes,
        }
    }

    /// The longest rename rule matching the path or one of its ancestors.
    fn rename_rule(&self, display: &str) -> Option<(&str, &str)> {
        self.rules
            .rename
            .iter()
            .filter(|(from, _)| {
                display == from
                    || (display.starts_with(from.as_str())
                        && display[from.len()..].starts_with('/'))
            })
            .max_by_key(|(from, _)| from.len())
            .map(|(a, b)| (a.as_str(), b.as_str()))
    }

    /// Joins the segments beyond the depth limit into one, separated by ` - `.
    fn flatten(&self, draft: &mut Draft, display: &str) {
        let root = usize::from(draft.under.is_some());
        if draft.segs.len() + root <= self.max_depth {
            return;
        }
        let keep = self.max_depth.saturating_sub(root + 1);
        let tail: Vec<String> = draft.segs[keep..]
            .iter()
            .map(|(s, _)| sanitize(s, self.target).0)
            .collect();
        let joined = sanitize(&tail.join(" - "), self.target).0;
        let origin = format!("flat:{}", draft.segs.last().map_or("", |(_, o)| o.as_str()));
        draft.segs.truncate(keep);
        draft.changes.push(FolderChange {
            kind: ChangeKind::Flattened,
            from: display.to_owned(),
            to: joined.clone(),
            reason: format!(
                "the path is {} levels deep and the destination allows {}; the last {} levels \
                 are joined with \" - \"",
                tail.len() + keep + root,
                self.max_depth,
                tail.len()
            ),
        });
        draft.segs.push((joined, origin));
    }

    /// Renames siblings whose names collide case-insensitively, and Graph top-level names that
    /// Exchange already uses, in a fixed order (name, then origin, i.e. the source names).
    fn resolve_collisions(&self, nodes: &mut [Node], node_under: &[Option<WellKnownFolder>]) {
        let mut groups: BTreeMap<(Option<WellKnownFolder>, Option<usize>), Vec<usize>> =
            BTreeMap::new();
        for (id, n) in nodes.iter().enumerate() {
            groups
                .entry((node_under[id], n.parent))
                .or_default()
                .push(id);
        }
        for ((under, parent), mut ids) in groups {
            ids.sort_by(|&a, &b| {
                (nodes[a].name.to_lowercase(), &nodes[a].origin)
                    .cmp(&(nodes[b].name.to_lowercase(), &nodes[b].origin))
            });
            let reserved: HashSet<String> =
                if self.target == TargetKind::Graph && under.is_none() && parent.is_none() {
                    GRAPH_RESERVED_TOP_LEVEL
                        .iter()
                        .map(|s| (*s).to_owned())
                        .chain(
                            [
                                WellKnownFolder::Inbox,
                                WellKnownFolder::SentItems,
                                WellKnownFolder::Drafts,
                                WellKnownFolder::DeletedItems,
                                WellKnownFolder::JunkEmail,
                                WellKnownFolder::Archive,
                            ]
                            .iter()
                            .map(|w| w.display_name().to_lowercase()),
                        )
                        .collect()
                } else {
                    HashSet::new()
                };
            let mut used = reserved.clone();
            let mut losers = Vec::new();
            for &id in &ids {
                let lower = nodes[id].name.to_lowercase();
                if reserved.contains(&lower) {
                    losers.push((id, ChangeKind::Reserved));
                } else if !used.insert(lower) {
                    losers.push((id, ChangeKind::Collision));
                }
            }
            for (id, kind) in losers {
                let base = nodes[id].name.clone();
                let mut k = 2;
                let name = loop {
                    let candidate = with_suffix(&base, &format!(" ({k})"), self.target);
                    if used.insert(candidate.to_lowercase()) {
                        break candidate;
                    }
                    k += 1;
                };
                let reason = match kind {
                    ChangeKind::Reserved => {
                        format!("Exchange already has its own top-level folder \"{base}\"")
                    }
                    _ => format!(
                        "another folder here is also named \"{base}\" apart from letter case, \
                         which the destination treats as the same name"
                    ),
                };
                nodes[id].final_name = name;
                nodes[id].renamed = Some((kind, reason));
            }
        }
    }

    /// Builds the mapping of one folder from its draft and the resolved tree.
    fn finish(
        &self,
        f: &SourceFolder,
        mut draft: Draft,
        leaf: Option<usize>,
        nodes: &[Node],
        reports: impl Fn(usize) -> bool,
    ) -> FolderMapping {
        let target = match (leaf, draft.under) {
            (None, Some(w)) => Some(Target::WellKnown(w)),
            (None, None) => None,
            (Some(leaf), under) => {
                let mut ids = chain(nodes, leaf);
                ids.reverse();
                for &id in &ids {
                    if !reports(id) {
                        continue;
                    }
                    let n = &nodes[id];
                    if !n.notes.is_empty() && !n.origin.starts_with("flat:") {
                        draft.changes.push(FolderChange {
                            kind: ChangeKind::Sanitized,
                            from: n.raw.clone(),
                            to: n.name.clone(),
                            reason: n.notes.join("; "),
                        });
                    }
                    if let Some((kind, reason)) = &n.renamed {
                        draft.changes.push(FolderChange {
                            kind: *kind,
                            from: n.name.clone(),
                            to: n.final_name.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                FolderPath::new(ids.iter().map(|&id| nodes[id].final_name.clone()).collect()).map(
                    |path| Target::Path {
                        under,
                        path,
                        special: draft.special,
                    },
                )
            }
        };
        let excluded_by = target
            .is_none()
            .then(|| "(no usable folder name)".to_owned());
        FolderMapping {
            source: f.clone(),
            target,
            changes: draft.changes,
            excluded_by,
        }
    }
}

/// Node ids from `leaf` up to its top-level ancestor.
fn chain(nodes: &[Node], leaf: usize) -> Vec<usize> {
    let mut out = vec![leaf];
    let mut cur = nodes[leaf].parent;
    while let Some(id) = cur {
        out.push(id);
        cur = nodes[id].parent;
    }
    out
}

fn well_known_change(display: &str, w: WellKnownFolder, reason: String) -> FolderChange {
    FolderChange {
        kind: ChangeKind::WellKnown,
        from: display.to_owned(),
        to: w.display_name().to_owned(),
        reason,
    }
}

type SortKey<'a> = (
    &'a str,
    &'a FolderPath,
    Option<char>,
    Option<SpecialUse>,
    bool,
);

fn sort_key(f: &SourceFolder) -> SortKey<'_> {
    (
        &f.raw_name,
        &f.path,
        f.delimiter,
        f.special_use,
        f.selectable,
    )
}

/// A folder below INBOX in a `.`-delimited tree, where INBOX is the namespace prefix of
/// everything rather than a parent folder.
fn inbox_prefixed(f: &SourceFolder) -> bool {
    let p = f.path.segments();
    p.len() > 1 && p[0].eq_ignore_ascii_case("INBOX") && f.delimiter == Some('.')
}
