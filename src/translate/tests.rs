//! Known-answer tests: source trees as real servers list them -> expected targets and changes.

use super::*;
use crate::plan::FolderRules;
use ChangeKind::*;

/// A folder as a server would list it: `raw` split on `delim`, optional special use.
fn f(raw: &str, delim: char, special: Option<SpecialUse>) -> SourceFolder {
    SourceFolder {
        raw_name: raw.to_owned(),
        path: FolderPath::parse(raw, Some(delim)).expect("non-empty"),
        delimiter: Some(delim),
        special_use: special,
        selectable: true,
    }
}

/// A folder with decoded segments differing from the raw name (modified UTF-7, Maildir++).
fn decoded(raw: &str, delim: char, segments: &[&str]) -> SourceFolder {
    SourceFolder {
        raw_name: raw.to_owned(),
        path: FolderPath::new(segments.iter().map(|s| (*s).to_owned()).collect())
            .expect("segments"),
        delimiter: Some(delim),
        special_use: None,
        selectable: true,
    }
}

fn slash(names: &[&str]) -> Vec<SourceFolder> {
    names.iter().map(|n| f(n, '/', None)).collect()
}

/// (raw name, target as text or "excluded by P", change kinds)
fn show(maps: &[FolderMapping]) -> Vec<(String, String, Vec<ChangeKind>)> {
    maps.iter()
        .map(|m| {
            let t = match (&m.target, &m.excluded_by) {
                (Some(t), _) => t.to_string(),
                (None, Some(p)) => format!("excluded by {p}"),
                (None, None) => "?".into(),
            };
            (
                m.source.raw_name.clone(),
                t,
                m.changes.iter().map(|c| c.kind).collect(),
            )
        })
        .collect()
}

fn graph(rules: &FolderRules, folders: &[SourceFolder]) -> Vec<(String, String, Vec<ChangeKind>)> {
    show(&FolderMapper::new(rules, TargetKind::Graph).map(folders))
}

fn row(raw: &str, target: &str, kinds: &[ChangeKind]) -> (String, String, Vec<ChangeKind>) {
    (raw.to_owned(), target.to_owned(), kinds.to_vec())
}

#[test]
fn dovecot_slash_tree_with_special_use() {
    let s = Some;
    let folders = vec![
        f("INBOX", '/', None),
        f("Sent", '/', s(SpecialUse::Sent)),
        f("Drafts", '/', s(SpecialUse::Drafts)),
        f("Papierkorb", '/', s(SpecialUse::Trash)),
        f("Junk", '/', s(SpecialUse::Junk)),
        f("Archive", '/', s(SpecialUse::Archive)),
        f("All Mail", '/', s(SpecialUse::All)),
        f("INBOX/Receipts", '/', None),
        f("Sent/2019", '/', None),
        f("Projects", '/', None),
        f("Projects/Sent", '/', None),
        decoded("Caf&AOk-", '/', &["Café"]),
        decoded("&ZeVnLIqe-/Q1", '/', &["日本語", "Q1"]),
    ];
    assert_eq!(
        graph(&FolderRules::default(), &folders),
        [
            row("&ZeVnLIqe-/Q1", "日本語/Q1", &[]),
            row("All Mail", "All Mail", &[]),
            row("Archive", "archive", &[WellKnown]),
            row("Caf&AOk-", "Café", &[]),
            row("Drafts", "drafts", &[WellKnown]),
            row("INBOX", "inbox", &[]),
            row("INBOX/Receipts", "inbox/Receipts", &[]),
            row("Junk", "junkemail", &[WellKnown]),
            row("Papierkorb", "deleteditems", &[WellKnown]),
            row("Projects", "Projects", &[]),
            row("Projects/Sent", "Projects/Sent", &[]),
            row("Sent", "sentitems", &[WellKnown]),
            row("Sent/2019", "sentitems/2019", &[]),
        ]
    );
    let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Graph).map(&folders);
    let all = maps
        .iter()
        .find(|m| m.source.raw_name == "All Mail")
        .expect("listed");
    assert!(matches!(
        &all.target,
        Some(Target::Path {
            special: Some(SpecialUse::All),
            ..
        })
    ));
    let trash = maps
        .iter()
        .find(|m| m.source.raw_name == "Papierkorb")
        .expect("listed");
    assert_eq!(trash.changes[0].to, "Deleted Items");
    assert!(
        trash.changes[0].reason.contains("\\Trash"),
        "{}",
        trash.changes[0].reason
    );
}

#[test]
fn maildir_plus_plus_inbox_prefix_tree_without_special_use() {
    let folders: Vec<_> = [
        "INBOX",
        "INBOX.Sent",
        "INBOX.Drafts",
        "INBOX.Trash",
        "INBOX.spam",
        "INBOX.Gesendete Objekte",
        "INBOX.Foo",
        "INBOX.Foo.Bar",
    ]
    .iter()
    .map(|n| f(n, '.', None))
    .collect();
    assert_eq!(
        graph(&FolderRules::default(), &folders),
        [
            row("INBOX", "inbox", &[]),
            row("INBOX.Drafts", "drafts", &[InboxPrefix, WellKnown]),
            row("INBOX.Foo", "Foo", &[InboxPrefix]),
            row("INBOX.Foo.Bar", "Foo/Bar", &[InboxPrefix]),
            row(
                "INBOX.Gesendete Objekte",
                "sentitems",
                &[InboxPrefix, WellKnown]
            ),
            row("INBOX.Sent", "sentitems", &[InboxPrefix, WellKnown]),
            row("INBOX.Trash", "deleteditems", &[InboxPrefix, WellKnown]),
            row("INBOX.spam", "junkemail", &[InboxPrefix, WellKnown]),
        ]
    );
}

/// As an IMAP source really lists it: INBOX carries the Inbox role (found by the Cyrus test:
/// with it, `INBOX.Sent` used to stay under the Inbox instead of becoming Sent Items).
#[test]
fn inbox_prefix_tree_when_the_source_marks_inbox() {
    let mut folders: Vec<_> = ["INBOX.Sent", "INBOX.Sent.2019", "INBOX.Foo"]
        .iter()
        .map(|n| f(n, '.', None))
        .collect();
    folders.push(f("INBOX", '.', Some(SpecialUse::Inbox)));
    assert_eq!(
        graph(&FolderRules::default(), &folders),
        [
            row("INBOX", "inbox", &[]),
            row("INBOX.Foo", "Foo", &[InboxPrefix]),
            row("INBOX.Sent", "sentitems", &[InboxPrefix, WellKnown]),
            row("INBOX.Sent.2019", "sentitems/2019", &[InboxPrefix]),
        ]
    );
}

#[test]
fn slash_inside_a_name() {
    let folders = vec![
        decoded("INBOX.a/b", '.', &["INBOX", "a/b"]),
        decoded("INBOX.x\\y", '.', &["INBOX", "x\\y"]),
    ];
    assert_eq!(
        graph(&FolderRules::default(), &folders),
        [
            row("INBOX.a/b", "a_b", &[InboxPrefix, Sanitized]),
            row("INBOX.x\\y", "x_y", &[InboxPrefix, Sanitized])
        ]
    );
    let imap = |d| {
        show(
            &FolderMapper::new(&FolderRules::default(), TargetKind::Imap { delimiter: d })
                .map(&folders),
        )
    };
    assert_eq!(
        imap('/')[0],
        row("INBOX.a/b", "a_b", &[InboxPrefix, Sanitized])
    );
    assert_eq!(imap('/')[1], row("INBOX.x\\y", "x\\y", &[InboxPrefix]));
    assert_eq!(imap('.')[0], row("INBOX.a/b", "a/b", &[InboxPrefix]));
    let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Graph).map(&folders);
    let c = &maps[0].changes[1];
    assert_eq!((c.from.as_str(), c.to.as_str()), ("a/b", "a_b"));
}

#[test]
fn case_collisions_get_numbered_in_source_name_order() {
    let folders = slash(&["work", "Work/x", "WORK", "Work", "a_b"]);
    let mut with_slash = folders.clone();
    with_slash.push(decoded("a/b", '.', &["a/b"]));
    assert_eq!(
        graph(&FolderRules::default(), &with_slash),
        [
            row("WORK", "WORK", &[]),
            row("Work", "Work (2)", &[Collision]),
            row("Work/x", "Work (2)/x", &[]),
            row("a/b", "a_b", &[Sanitized]),
            row("a_b", "a_b (2)", &[Collision]),
            row("work", "work (3)", &[Collision]),
        ]
    );
}

#[test]
fn seven_levels_keep_their_shape_and_305_levels_flatten() {
    let seven = slash(&["a/b/c/d/e/f/g"]);
    assert_eq!(
        graph(&FolderRules::default(), &seven),
        [row("a/b/c/d/e/f/g", "a/b/c/d/e/f/g", &[])]
    );

    let segs: Vec<String> = (1..=305).map(|i| format!("L{i}")).collect();
    let deep = slash(&[&segs.join("/")]);
    let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Graph).map(&deep);
    let Some(Target::Path { path, .. }) = &maps[0].target else {
        panic!("{maps:?}")
    };
    assert_eq!(path.depth(), 300);
    assert_eq!(path.segments()[298], "L299");
    assert_eq!(path.leaf(), "L300 - L301 - L302 - L303 - L304 - L305");
    assert_eq!(
        maps[0].changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [Flattened]
    );

    // Under a well-known folder the folder itself counts as a level; the limit is a setting.
    let rules = FolderRules {
        max_depth: Some(3),
        ..FolderRules::default()
    };
    assert_eq!(
        graph(&rules, &slash(&["INBOX/a/b/c", "x/y/z/w"])),
        [
            row("INBOX/a/b/c", "inbox/a/b - c", &[Flattened]),
            row("x/y/z/w", "x/y/z - w", &[Flattened])
        ]
    );
}

#[test]
fn exchange_reserved_top_level_names() {
    assert_eq!(
        graph(
            &FolderRules::default(),
            &slash(&["Calendar", "Outbox", "Projects/Calendar", "Sent Items."])
        ),
        [
            row("Calendar", "Calendar (2)", &[Reserved]),
            row("Outbox", "Outbox (2)", &[Reserved]),
            row("Projects/Calendar", "Projects/Calendar", &[]),
            row("Sent Items.", "Sent Items (2)", &[Sanitized, Reserved]),
        ]
    );
    // IMAP destinations have no such folders.
    let imap = FolderMapper::new(&FolderRules::default(), TargetKind::Imap { delimiter: '/' });
    assert_eq!(
        show(&imap.map(&slash(&["Calendar"]))),
        [row("Calendar", "Calendar", &[])]
    );
}

#[test]
fn plan_rules_exclude_rename_and_nest() {
    let rules = FolderRules {
        exclude: vec!["Trash".into(), "Junk/*".into()],
        rename: vec![
            ("Old Stuff".into(), "Archive/Old Stuff".into()),
            ("Clients".into(), "Customers".into()),
        ],
        nest_under: Some("Imported".into()),
        ..FolderRules::default()
    };
    let folders = slash(&[
        "INBOX",
        "trash",
        "Junk",
        "Junk/x",
        "Old Stuff",
        "Old Stuff/2019",
        "Projects",
        "Clients/Acme",
        "Sent",
    ]);
    assert_eq!(
        graph(&rules, &folders),
        [
            row(
                "Clients/Acme",
                "Imported/Customers/Acme",
                &[Renamed, Nested]
            ),
            row("INBOX", "inbox", &[]),
            row("Junk", "junkemail", &[WellKnown]),
            row("Junk/x", "excluded by Junk/*", &[]),
            row("Old Stuff", "archive/Old Stuff", &[Renamed]),
            row("Old Stuff/2019", "archive/Old Stuff/2019", &[Renamed]),
            row("Projects", "Imported/Projects", &[Nested]),
            row("Sent", "sentitems", &[WellKnown]),
            row("trash", "excluded by Trash", &[]),
        ]
    );
}

#[test]
fn graph_sanitising_rules_each_reported() {
    let long = "x".repeat(300);
    let folders = slash(&[" Spaces ", "Dots...", "Tab\tName", &long]);
    let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Graph).map(&folders);
    let got: Vec<_> = maps
        .iter()
        .map(|m| {
            (
                m.target.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                m.changes[0].reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "Spaces".into(),
            "leading/trailing spaces and trailing dots removed".into()
        )
    );
    assert_eq!(
        got[1],
        (
            "Dots".into(),
            "leading/trailing spaces and trailing dots removed".into()
        )
    );
    assert_eq!(
        got[2],
        ("TabName".into(), "control characters removed".into())
    );
    assert_eq!(got[3], ("x".repeat(255), "cut to 255 characters".into()));
}

#[test]
fn implied_parents_are_reported_once_by_their_first_child() {
    // Maildir sources may list a child without its parent: the parent's rename is still reported.
    let folders = vec![
        decoded("p1", '/', &["bad/name", "c1"]),
        decoded("p2", '/', &["bad/name", "c2"]),
    ];
    let maps = FolderMapper::new(&FolderRules::default(), TargetKind::Graph).map(&folders);
    assert_eq!(maps[0].changes.len(), 1);
    assert_eq!(maps[0].changes[0].from, "bad/name");
    assert!(maps[1].changes.is_empty());
    assert_eq!(
        maps[1].target.as_ref().map(|t| t.to_string()).as_deref(),
        Some("bad_name/c2")
    );
}

#[test]
fn labels_name_folders_as_the_destination_does() {
    use crate::model::FolderPath;
    let sent = Target::WellKnown(WellKnownFolder::SentItems);
    assert_eq!(sent.label(TargetKind::Graph), "sentitems");
    assert_eq!(sent.label(TargetKind::Imap { delimiter: '/' }), "Sent");
    let receipts = Target::Path {
        under: Some(WellKnownFolder::Inbox),
        path: FolderPath::parse("Receipts/2024", Some('/')).unwrap(),
        special: None,
    };
    assert_eq!(receipts.label(TargetKind::Graph), "inbox/Receipts/2024");
    assert_eq!(
        receipts.label(TargetKind::Imap { delimiter: '.' }),
        "INBOX.Receipts.2024"
    );
    let top = Target::Path {
        under: None,
        path: FolderPath::parse("Projects/2019", Some('/')).unwrap(),
        special: None,
    };
    assert_eq!(
        top.label(TargetKind::Imap { delimiter: '.' }),
        "Projects.2019"
    );
}
