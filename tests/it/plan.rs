//! `plan.toml` + mailboxes CSV from real files: the contract's example plan, secrets from env and
//! files, errors that name file/line/field, redaction, and property tests (no panic on any
//! input; a broken row's error names its line).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mailferry::plan::{
    Destination, GraphCredential, MailboxSource, Plan, PlanError, Security, SourceKind, SourceLogin,
};
use mailferry::sink::graph::{AssertionAlg, Cloud, Route};
use proptest::prelude::*;

/// The external contract's example plan, comments and all (docs/plan-format.md, "A complete example").
const DESIGN_EXAMPLE: &str = r#"mailboxes = "mailboxes.csv"   # EmailAddress,UserName,Password[,UserRoot][,Destination][,DestinationUser][,DestinationPassword][,SourcePath]

[source]                      # defaults for every row
kind = "imap"                 # imap | maildir
host = "imap.old-host.example"
port = 993
security = "tls"              # tls | starttls | plain (plain: loopback only unless insecure = true)
ca_file = "ca.pem"            # optional extra trust anchor
insecure = false
auth = "login"                # login | plain | xoauth2
master_user = "admin"         # optional: log in to each mailbox through this admin/master account
master_password_env = "SOURCE_MASTER_PASSWORD"

[destination.exo]             # named destinations; a row's Destination column picks one, else the first
kind = "graph"
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "MAILFERRY_CLIENT_SECRET"   # or certificate_file = "app.pem" (cert + key)
cloud = "global"              # global | usgov-high | usgov-dod | china
route = "import-mime"         # import-mime | json
graph_url = "http://127.0.0.1:8750"   # optional host overrides (the emulator serves both)
login_url = "http://127.0.0.1:8750"

[destination.newhost]
kind = "imap"
host = "mail.new-host.example"
port = 993
security = "tls"

[folders]
exclude = ["Trash", "Junk/*"]
rename = { "Old Stuff" = "Archive/Old Stuff" }

[limits]
max_message_bytes = 157286400
"#;

fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(*v))
    }
}

const SECRETS: &[(&str, &str)] = &[
    ("SOURCE_MASTER_PASSWORD", "master-s3cret"),
    ("MAILFERRY_CLIENT_SECRET", "client-s3cret"),
];

/// Writes files into a fresh temp dir; returns it and the plan path.
fn write(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        set_mode(&p, 0o600);
    }
    let plan = dir.path().join("plan.toml");
    (dir, plan)
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn minimal_plan(extra: &str) -> String {
    format!(
        "mailboxes = \"mailboxes.csv\"\n[source]\nhost = \"imap.example\"\n{extra}\n\
         [destination.exo]\nkind = \"graph\"\ntenant = \"t.example\"\nclient_id = \"cid\"\n\
         client_secret_file = \"secret.txt\"\n"
    )
}

fn setting_key(e: &PlanError) -> &str {
    match e {
        PlanError::Setting { key, .. } => key,
        other => panic!("not a setting error: {other}"),
    }
}

#[test]
fn design_example_parses_with_every_default_resolved() {
    let csv = "EmailAddress,UserName,Password,Destination,DestinationPassword\n\
               ann@example.com,ann,,,\n\
               Bob@Example.com,bob,,newhost,bobs-new-pw\n";
    let (dir, path) = write(&[
        ("plan.toml", DESIGN_EXAMPLE),
        ("mailboxes.csv", csv),
        ("ca.pem", "x"),
    ]);
    let plan = Plan::load_with_env(&path, &env(SECRETS)).expect("design example loads");
    assert!(plan.row_errors.is_empty(), "{:?}", plan.row_errors);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

    assert_eq!(plan.source.kind, SourceKind::Imap);
    let ep = plan.source.endpoint.as_ref().expect("endpoint");
    assert_eq!(
        (ep.host.as_str(), ep.port, ep.security),
        ("imap.old-host.example", 993, Security::Tls)
    );
    assert_eq!(
        ep.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(
        plan.source
            .master_password
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some("master-s3cret")
    );
    assert_eq!(
        (
            plan.source.max_connections_per_host,
            plan.source.timeout_secs
        ),
        (8, 60)
    );

    let names: Vec<_> = plan.destinations.iter().map(Destination::name).collect();
    assert_eq!(names, ["exo", "newhost"]);
    let Some(Destination::Graph(g)) = plan.destination("exo") else {
        panic!("exo is graph")
    };
    assert_eq!(
        (g.cloud, g.route, g.assertion_alg),
        (Cloud::Global, Route::ImportMime, AssertionAlg::Ps256)
    );
    assert_eq!(g.login_base(), "http://127.0.0.1:8750");
    assert_eq!(g.max_request_bytes, 4 * 1024 * 1024);
    assert!(matches!(&g.credential, GraphCredential::Secret(s) if s.expose() == "client-s3cret"));

    assert_eq!(plan.folders.exclude, ["Trash", "Junk/*"]);
    assert_eq!(
        plan.folders.rename,
        [("Old Stuff".to_owned(), "Archive/Old Stuff".to_owned())]
    );
    assert!(!plan.folders.migrate_deleted);
    assert_eq!(plan.limits.max_message_bytes, 157_286_400);
    assert_eq!(plan.limits.memory_budget_bytes, 256 * 1024 * 1024);

    let ann = &plan.mailboxes[0];
    assert_eq!(ann.destination, "exo");
    match &ann.source {
        MailboxSource::Imap {
            login: SourceLogin::Proxy {
                authzid, authcid, ..
            },
            ..
        } => {
            assert_eq!((authzid.as_str(), authcid.as_str()), ("ann", "admin"));
        }
        other => panic!("{other:?}"),
    }
    let bob = &plan.mailboxes[1];
    assert_eq!(
        (bob.key.as_str(), bob.destination.as_str(), bob.line),
        ("bob@example.com", "newhost", 3)
    );
    assert!(
        matches!(&bob.destination_login, Some(SourceLogin::Login { user, .. }) if user == "Bob@Example.com")
    );

    assert_eq!(
        plan.default_state_path(),
        dir.path().join("plan.ledger.sqlite")
    );
    let picked = plan
        .select(&["BOB@example.com".to_owned()])
        .expect("known mailbox");
    assert_eq!(picked.len(), 1);
    assert_eq!(plan.select(&[]).expect("all").len(), 2);
    let e = plan
        .select(&["nobody@example.com".to_owned()])
        .expect_err("unknown");
    assert!(e.to_string().contains("nobody@example.com"), "{e}");
}

#[test]
fn debug_of_a_plan_never_shows_a_secret() {
    let csv = "EmailAddress,UserName,Password,Destination,DestinationPassword\n\
               ann@example.com,ann,row-pw-1,,\nbob@example.com,bob,row-pw-2,newhost,dest-pw-3\n";
    let toml = DESIGN_EXAMPLE
        .replace("master_user = \"admin\"", "")
        .replace("master_password_env = \"SOURCE_MASTER_PASSWORD\"", "");
    let (_dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", csv),
        ("ca.pem", "x"),
    ]);
    let plan = Plan::load_with_env(&path, &env(SECRETS)).expect("loads");
    let debug = format!("{plan:?} {:#?}", plan);
    for secret in ["row-pw-1", "row-pw-2", "dest-pw-3", "client-s3cret"] {
        assert!(!debug.contains(secret), "{secret} leaked in Debug");
    }
    assert!(debug.contains("[redacted]"));
}

#[test]
fn secrets_from_files_lose_one_trailing_newline_and_env_errors_name_the_key() {
    let csv = "EmailAddress,UserName,Password\nann@example.com,ann,pw\n";
    let (_dir, path) = write(&[
        (
            "plan.toml",
            &minimal_plan("master_user = \"admin\"\nmaster_password_file = \"secrets/master\""),
        ),
        ("mailboxes.csv", csv),
        ("secret.txt", "client-secret\r\n"),
        ("secrets/master", "pass word\n\n"),
    ]);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("loads");
    assert_eq!(
        plan.source
            .master_password
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some("pass word\n")
    );
    let Destination::Graph(g) = &plan.destinations[0] else {
        panic!()
    };
    assert!(matches!(&g.credential, GraphCredential::Secret(s) if s.expose() == "client-secret"));

    let (_dir, path) = write(&[
        (
            "plan.toml",
            &minimal_plan("master_user = \"admin\"\nmaster_password_env = \"NOPE_UNSET\""),
        ),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    let e = Plan::load_with_env(&path, &env(&[])).expect_err("unset env");
    assert_eq!(setting_key(&e), "source.master_password_env");
    assert!(e.to_string().contains("NOPE_UNSET is not set"), "{e}");
    assert!(e.to_string().contains("plan.toml"), "{e}");
}

#[test]
fn invalid_settings_name_their_key() {
    let csv = "EmailAddress,UserName,Password\nann@example.com,ann,pw\n";
    let cases: &[(&str, &str)] = &[
        ("security = \"plain\"", "source.security"),
        ("master_user = \"admin\"", "source.master_password_env"),
        ("ca_file = \"missing.pem\"", "source.ca_file"),
        ("timeout_secs = 0", "source.timeout_secs"),
        ("maildir_root = \"x\"", "source.maildir_root"),
    ];
    for (extra, key) in cases {
        let (_dir, path) = write(&[
            ("plan.toml", &minimal_plan(extra)),
            ("mailboxes.csv", csv),
            ("secret.txt", "s"),
        ]);
        let e = Plan::load_with_env(&path, &env(&[])).expect_err(extra);
        assert_eq!(setting_key(&e), *key, "{extra}: {e}");
    }
    // A national cloud cannot use importMime.
    let toml = minimal_plan("") + "cloud = \"usgov-high\"\nroute = \"import-mime\"\n";
    let (_dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    let e = Plan::load_with_env(&path, &env(&[])).expect_err("import-mime in gov cloud");
    assert_eq!(setting_key(&e), "destination.exo.route");
    // ...and defaults to JSON there.
    let toml = minimal_plan("") + "cloud = \"china\"\n";
    let (_dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("china");
    let Destination::Graph(g) = &plan.destinations[0] else {
        panic!()
    };
    assert_eq!(
        (g.route, g.graph_base()),
        (Route::Json, "https://microsoftgraph.chinacloudapi.cn")
    );
    // Plaintext is fine to loopback, with port 143.
    let toml = minimal_plan("security = \"plain\"").replace("imap.example", "127.0.0.1");
    let (_dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("loopback plain");
    assert_eq!(plan.source.endpoint.as_ref().map(|e| e.port), Some(143));
}

#[test]
fn toml_errors_name_file_line_and_unknown_key() {
    let toml = minimal_plan("").replace(
        "[destination.exo]",
        "[folders]\nexclud = [\"x\"]\n[destination.exo]",
    );
    let (_dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", "EmailAddress\n"),
        ("secret.txt", "s"),
    ]);
    let e = Plan::load_with_env(&path, &env(&[])).expect_err("unknown key");
    let msg = e.to_string();
    assert!(matches!(e, PlanError::Toml { line: 6, .. }), "{msg}");
    assert!(
        msg.contains("plan.toml line 6") && msg.contains("exclud"),
        "{msg}"
    );
}

#[test]
fn missing_csv_names_the_file() {
    let (_dir, path) = write(&[("plan.toml", &minimal_plan("")), ("secret.txt", "s")]);
    let e = Plan::load_with_env(&path, &env(&[])).expect_err("no csv");
    assert!(
        matches!(&e, PlanError::Read { file, .. } if file.ends_with("mailboxes.csv")),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_world_readable_csv_with_passwords_gets_a_warning() {
    let csv = "EmailAddress,UserName,Password\nann@example.com,ann,pw\n";
    let (dir, path) = write(&[
        ("plan.toml", &minimal_plan("")),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    set_mode(&dir.path().join("mailboxes.csv"), 0o644);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("loads");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(plan.warnings[0].contains("chmod 600"));
    assert!(!plan.warnings[0].contains("pw\n"));
    set_mode(&dir.path().join("mailboxes.csv"), 0o600);
    assert!(
        Plan::load_with_env(&path, &env(&[]))
            .expect("loads")
            .warnings
            .is_empty()
    );
}

#[test]
fn row_errors_read_like_the_contract() {
    let csv = "EmailAddress,UserName,Password\nann@example.com,ann,pw\n\n\n\n\nbroken,x,y\n";
    let (_dir, path) = write(&[
        ("plan.toml", &minimal_plan("")),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("loads");
    assert_eq!(plan.mailboxes.len(), 1);
    let msg = plan.row_errors[0].to_string();
    assert!(msg.ends_with("mailboxes.csv line 7, field EmailAddress: not an email address (needs user@domain, no spaces)"), "{msg}");
}

fn load_text(plan: &str, csv: &[u8]) -> Result<Plan, PlanError> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.toml"), plan).expect("write");
    std::fs::write(dir.path().join("mailboxes.csv"), csv).expect("write");
    std::fs::write(dir.path().join("secret.txt"), "s").expect("write");
    Plan::load_with_env(&dir.path().join("plan.toml"), &env(&[]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_csv_bytes_never_panic(csv in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = load_text(&minimal_plan(""), &csv);
    }

    #[test]
    fn csv_like_text_never_panics(csv in "(EmailAddress|UserName|Password|Destination|SourcePath|[a-z@.*/#\"]{0,8}|,|\r?\n| ){0,60}") {
        let _ = load_text(&minimal_plan(""), csv.as_bytes());
    }

    #[test]
    fn any_toml_text_never_panics(toml in "(\\[[a-z.]{0,12}\\]|[a-z_]{1,10} = |\"[^\"]{0,8}\"|[0-9]{1,20}|true|\\{|\\}|,|\n| ){0,40}") {
        let _ = load_text(&toml, b"EmailAddress\n");
    }

    /// Wherever a bad line sits in plan.toml (after any number of blank and comment lines, in
    /// either table), the error names that line: an unknown key, a value of the wrong type, or
    /// text that is not TOML at all.
    #[test]
    fn a_toml_error_names_its_line(
        pad in proptest::collection::vec(0usize..3, 10),
        in_destination in any::<bool>(),
        kind in 0u8..3,
    ) {
        let bad = match kind {
            0 => "unknwn_key = 1",
            1 => "timeout_secs = \"soon\"",
            _ => "this is not toml",
        };
        let mut lines: Vec<String> = Vec::new();
        let mut bad_line = 0;
        for (i, l) in minimal_plan("").lines().enumerate() {
            for k in 0..pad[i % 10] {
                lines.push(if k % 2 == 0 { String::new() } else { "# a comment".to_owned() });
            }
            lines.push(l.to_owned());
            let anchor = if in_destination { "[destination.exo]" } else { "[source]" };
            if l == anchor {
                lines.push(bad.to_owned());
                bad_line = lines.len();
            }
        }
        let err = load_text(&(lines.join("\n") + "\n"), b"EmailAddress\n").expect_err("bad line");
        prop_assert_eq!(err.line(), Some(bad_line), "{}", err);
        prop_assert!(err.to_string().contains(&format!("plan.toml line {bad_line}")), "{}", err);
    }

    #[test]
    fn a_broken_row_error_names_its_line(
        good in 1usize..30,
        at in 0usize..30,
        blank_before in proptest::collection::vec(0usize..3, 30),
        kind in 0u8..4,
    ) {
        let at = at % (good + 1);
        let mut csv = String::from("EmailAddress,UserName,Password,Destination\r\n");
        let mut line = 2;
        let mut broken_line = 0;
        for i in 0..=good {
            for _ in 0..blank_before[i % 30] {
                csv.push_str("\r\n");
                line += 1;
            }
            if i == at {
                broken_line = line;
                csv.push_str(match kind {
                    0 => "no-at-sign,u,p,\r\n",
                    1 => "x@example.com,u,p,nowhere\r\n",
                    2 => "y@example.com,u,,\r\n",
                    _ => "z@example.com,a/b,p,\r\n",
                });
            } else {
                csv.push_str(&format!("user{i}@example.com,\"u\r\n{i}\",p,\r\n"));
                line += 1;
            }
            line += 1;
        }
        let plan = load_text(&minimal_plan(""), csv.as_bytes()).expect("loads");
        prop_assert_eq!(plan.row_errors.len(), 1);
        prop_assert_eq!(plan.row_errors[0].line(), Some(broken_line));
        prop_assert_eq!(plan.mailboxes.len(), good);
    }
}

#[cfg(unix)]
#[test]
fn admin_passwords_in_the_csv_count_for_the_warning_too() {
    let csv = "EmailAddress,UserName,Password\nann@example.com,example.com/admin/ann,adminpw\n";
    let (dir, path) = write(&[
        ("plan.toml", &minimal_plan("")),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    set_mode(&dir.path().join("mailboxes.csv"), 0o640);
    let plan = Plan::load_with_env(&path, &env(&[])).expect("loads");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    // With a plan-level master user and no password cells there is nothing to protect.
    let csv = "EmailAddress,UserName,Password\nann@example.com,ann,\n";
    let toml = minimal_plan("master_user = \"admin\"\nmaster_password_file = \"secret.txt\"");
    let (dir, path) = write(&[
        ("plan.toml", &toml),
        ("mailboxes.csv", csv),
        ("secret.txt", "s"),
    ]);
    set_mode(&dir.path().join("mailboxes.csv"), 0o644);
    assert!(
        Plan::load_with_env(&path, &env(&[]))
            .expect("loads")
            .warnings
            .is_empty()
    );
}
