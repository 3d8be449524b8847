//! Property tests for folder translation: whatever the source lists, every target name is
//! acceptable under the Graph rules (docs/graph-facts.md, section 2, and the translate module docs), no two
//! different targets differ only in case, and the mapping is stable across runs and input order.

use std::collections::BTreeSet;

use mailferry::model::{FolderPath, SourceFolder, SpecialUse};
use mailferry::plan::FolderRules;
use mailferry::translate::{FolderMapper, FolderMapping, Target, TargetKind};
use proptest::prelude::*;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "INBOX",
            "Inbox",
            "Sent",
            "sent",
            "Gesendet",
            "Trash",
            "Junk",
            "Spam",
            "Drafts",
            "Archive",
            "Calendar",
            "Outbox",
            "a/b",
            "a_b",
            "A_B",
            "x\\y",
            " pad ",
            "dots..",
            ".",
            "..",
            "\t",
            "Work",
            "work",
            "WORK",
            "Café",
            "CAFÉ",
            "日本語",
            "😀",
        ])
        .prop_map(str::to_owned),
        "[ -~éßÉ\t\r/\\\\.]{1,8}",
        "[a-zA-Z😀 .]{250,270}",
    ]
}

fn folder() -> impl Strategy<Value = SourceFolder> {
    (
        prop::collection::vec(segment(), 1..6),
        prop::sample::select(vec!['/', '.']),
        prop::option::of(prop::sample::select(vec![
            SpecialUse::Sent,
            SpecialUse::Trash,
            SpecialUse::Junk,
            SpecialUse::Drafts,
            SpecialUse::Archive,
            SpecialUse::All,
        ])),
    )
        .prop_map(|(segs, delim, special)| SourceFolder {
            raw_name: segs.join(&delim.to_string()),
            path: FolderPath::new(segs).expect("segments are non-empty"),
            delimiter: Some(delim),
            special_use: special,
            selectable: true,
        })
}

fn rules() -> impl Strategy<Value = FolderRules> {
    (
        prop::option::of(2usize..5),
        prop::option::of(prop::sample::select(vec!["Imported", "Old/Mail", "x/"])),
    )
        .prop_map(|(max_depth, nest)| FolderRules {
            max_depth,
            nest_under: nest.map(|n| n.trim_end_matches('/').to_owned()),
            ..FolderRules::default()
        })
}

/// Every segment of every target, with its full path, for checking.
fn targets(maps: &[FolderMapping]) -> BTreeSet<(String, Vec<String>)> {
    maps.iter()
        .filter_map(|m| match &m.target {
            Some(Target::Path { under, path, .. }) => Some((
                under.map_or("", |w| w.graph_name()).to_owned(),
                path.segments().to_vec(),
            )),
            _ => None,
        })
        .collect()
}

fn graph_valid(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name.trim() == name
        && !name.ends_with('.')
        && name.encode_utf16().count() <= 255
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn graph_names_are_always_valid_and_never_collide_by_case(
        folders in prop::collection::vec(folder(), 0..25),
        rules in rules(),
    ) {
        let maps = FolderMapper::new(&rules, TargetKind::Graph).map(&folders);
        let limit = rules.max_depth.unwrap_or(300);
        for m in &maps {
            prop_assert!(m.target.is_some() || m.excluded_by.is_some());
            if let Some(Target::Path { under, path, .. }) = &m.target {
                prop_assert!(path.depth() + usize::from(under.is_some()) <= limit, "{:?}", m);
                for s in path.segments() {
                    prop_assert!(graph_valid(s), "invalid name {:?} in {:?}", s, m);
                }
            }
        }
        let all = targets(&maps);
        let lowered: BTreeSet<(String, Vec<String>)> = all
            .iter()
            .map(|(u, p)| (u.clone(), p.iter().map(|s| s.to_lowercase()).collect()))
            .collect();
        prop_assert_eq!(all.len(), lowered.len(), "two targets differ only in case: {:?}", all);
    }

    #[test]
    fn imap_names_never_contain_the_destination_delimiter(
        folders in prop::collection::vec(folder(), 0..25),
        delimiter in prop::sample::select(vec!['/', '.']),
    ) {
        let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Imap { delimiter }).map(&folders);
        for (_, path) in targets(&maps) {
            for s in &path {
                prop_assert!(!s.contains(delimiter) && !s.is_empty(), "{:?}", path);
            }
        }
    }

    #[test]
    fn mapping_is_stable_and_independent_of_input_order(
        (folders, shuffled) in prop::collection::vec(folder(), 0..25)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        rules in rules(),
    ) {
        let mapper = FolderMapper::new(&rules, TargetKind::Graph);
        let first = mapper.map(&folders);
        prop_assert_eq!(&first, &mapper.map(&folders));
        prop_assert_eq!(&first, &mapper.map(&shuffled));
    }
}

/// Any names at all (arbitrary Unicode, controls, delimiters, empty-looking), each source folder
/// listed once.
fn any_folders() -> impl Strategy<Value = Vec<SourceFolder>> {
    let seg = prop_oneof![
        3 => any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        1 => segment(),
    ];
    let folder = (
        prop::collection::vec(seg, 1..4),
        prop::sample::select(vec!['/', '.']),
    )
        .prop_map(|(segs, delim)| SourceFolder {
            raw_name: segs.join(&delim.to_string()),
            path: FolderPath::new(segs).expect("segments are non-empty"),
            delimiter: Some(delim),
            special_use: None,
            selectable: true,
        });
    prop::collection::vec(folder, 0..20).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|f| seen.insert(f.path.segments().to_vec()))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Collision-free: two different source folders never land in the same created folder
    /// (compared case-insensitively for Graph, exactly for IMAP), and the mapping is a function
    /// of its input (the same names give the same answer every time).
    #[test]
    fn different_folders_never_share_a_created_target(
        folders in any_folders(),
        imap in any::<bool>(),
    ) {
        let kind = if imap { TargetKind::Imap { delimiter: '/' } } else { TargetKind::Graph };
        let mapper = FolderMapper::new(&FolderRules::default(), kind);
        let maps = mapper.map(&folders);
        prop_assert_eq!(&maps, &mapper.map(&folders));
        prop_assert_eq!(maps.len(), folders.len());
        let mut seen: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
        for m in &maps {
            if let Some(Target::Path { under, path, .. }) = &m.target {
                let key = (
                    under.map_or("", |w| w.graph_name()).to_owned(),
                    path.segments()
                        .iter()
                        .map(|s| if imap { s.clone() } else { s.to_lowercase() })
                        .collect::<Vec<_>>(),
                );
                prop_assert!(seen.insert(key.clone()), "{:?} maps onto an earlier folder's target {:?}", m.source.raw_name, key);
            }
        }
    }
}
