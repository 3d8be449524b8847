//! Unit tests for CSV rows, login formats and TOML errors (file-based tests live in
//! `tests/it/plan.rs`).

use std::path::Path;

use super::rows::{parse_csv, parse_login};
use super::*;

fn imap_source(master: Option<(&str, &str)>) -> SourceSettings {
    SourceSettings {
        kind: SourceKind::Imap,
        endpoint: Some(Endpoint {
            host: "imap.example".into(),
            port: 993,
            security: Security::Tls,
            ca_file: None,
            insecure: false,
        }),
        auth: AuthMethod::Login,
        master_user: master.map(|m| m.0.to_owned()),
        master_password: master.map(|m| Secret::from(m.1)),
        maildir_root: None,
        max_connections_per_host: 8,
        timeout_secs: 60,
    }
}

fn dests() -> Vec<Destination> {
    vec![
        Destination::Graph(GraphDestination {
            name: "exo".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            credential: GraphCredential::Secret(Secret::from("s")),
            cloud: Cloud::Global,
            route: Route::ImportMime,
            graph_url: None,
            login_url: None,
            assertion_alg: AssertionAlg::Ps256,
            max_request_bytes: 4 << 20,
            requests_per_10min: 10_000,
            bytes_per_5min: 150_000_000,
            concurrency_per_mailbox: 4,
            concurrency_per_app: 16,
            max_throttle_wait_secs: 3600,
            received_date: ReceivedDate::AsIs,
        }),
        Destination::Imap(ImapDestination {
            name: "newhost".into(),
            endpoint: Endpoint {
                host: "new.example".into(),
                port: 993,
                security: Security::Tls,
                ca_file: None,
                insecure: false,
            },
            auth: AuthMethod::Login,
            master_user: None,
            master_password: None,
            connections: 4,
            oauth_app: None,
        }),
    ]
}

fn parse(text: &str, source: &SourceSettings) -> Result<super::rows::Parsed, PlanError> {
    parse_csv(
        Path::new("mailboxes.csv"),
        text.as_bytes(),
        Path::new("/plans"),
        source,
        &dests(),
    )
}

fn row_error(e: &PlanError) -> (usize, &str) {
    match e {
        PlanError::Row { line, field, .. } => (*line, field.as_str()),
        other => panic!("not a row error: {other}"),
    }
}

#[test]
fn exchange_csv_unchanged_with_bom_any_case_and_order() {
    let text = "\u{feff}password,EMAILADDRESS,UserName,userroot\r\nhunter2,Ann@Example.com,ann,/users/ann\r\n";
    let p = parse(text, &imap_source(None)).unwrap();
    assert!(p.row_errors.is_empty(), "{:?}", p.row_errors);
    let m = &p.mailboxes[0];
    assert_eq!(
        (m.email.as_str(), m.key.as_str(), m.line),
        ("Ann@Example.com", "ann@example.com", 2)
    );
    assert_eq!(m.destination, "exo");
    assert_eq!(m.destination_user, "Ann@Example.com");
    assert!(m.destination_login.is_none());
    match &m.source {
        MailboxSource::Imap {
            login: SourceLogin::Login { user, password },
            user_root,
        } => {
            assert_eq!(user, "ann");
            assert_eq!(password.expose(), "hunter2");
            assert_eq!(user_root.as_deref(), Some("/users/ann"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn login_formats() {
    let pw = || Secret::from("pw");
    match parse_login("ann*admin", pw(), AuthMethod::Login).unwrap() {
        SourceLogin::Login { user, .. } => assert_eq!(user, "ann*admin"),
        other => panic!("{other:?}"),
    }
    match parse_login("example.com/admin/ann", pw(), AuthMethod::Login).unwrap() {
        SourceLogin::Proxy {
            authzid,
            authcid,
            password,
        } => {
            assert_eq!(
                (authzid.as_str(), authcid.as_str()),
                ("ann@example.com", "admin")
            );
            assert_eq!(password.expose(), "pw");
        }
        other => panic!("{other:?}"),
    }
    match parse_login(
        "example.com/admin/ann@other.example",
        pw(),
        AuthMethod::Login,
    )
    .unwrap()
    {
        SourceLogin::Proxy { authzid, .. } => assert_eq!(authzid, "ann@other.example"),
        other => panic!("{other:?}"),
    }
    match parse_login("#ann@example.com#admin#", pw(), AuthMethod::Login).unwrap() {
        SourceLogin::Proxy {
            authzid, authcid, ..
        } => {
            assert_eq!(
                (authzid.as_str(), authcid.as_str()),
                ("ann@example.com", "admin")
            );
        }
        other => panic!("{other:?}"),
    }
    match parse_login("ann@example.com", pw(), AuthMethod::XOAuth2).unwrap() {
        SourceLogin::XOAuth2 { user, token } => {
            assert_eq!(
                (user.as_str(), token.expose().as_str()),
                ("ann@example.com", "pw")
            );
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "a/b",
        "a//c",
        "#ann#",
        "#ann@x#admin",
        "*admin",
        "ann*",
        "a/b/c/d",
    ] {
        assert!(parse_login(bad, pw(), AuthMethod::Login).is_err(), "{bad}");
    }
}

#[test]
fn plan_master_user_turns_every_row_into_proxy() {
    let text = "EmailAddress,UserName,Password\nann@example.com,ann,\nbob@example.com,,\n";
    let p = parse(text, &imap_source(Some(("admin", "masterpw")))).unwrap();
    assert!(p.row_errors.is_empty(), "{:?}", p.row_errors);
    let ids: Vec<_> = p
        .mailboxes
        .iter()
        .map(|m| match &m.source {
            MailboxSource::Imap {
                login:
                    SourceLogin::Proxy {
                        authzid,
                        authcid,
                        password,
                    },
                ..
            } => {
                assert_eq!(password.expose(), "masterpw");
                format!("{authzid} as {authcid}")
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["ann as admin", "bob@example.com as admin"]);
}

#[test]
fn bad_rows_name_line_and_field_and_the_rest_load() {
    let text = "EmailAddress,UserName,Password,Destination,DestinationPassword\n\
                ann@example.com,ann,pw,,\n\
                not-an-address,x,pw,,\n\
                \n\
                bob@example.com,bob,,,\n\
                ANN@example.com,ann2,pw,,\n\
                cat@example.com,cat,pw,nowhere,\n\
                dan@example.com,dan,pw,newhost,\n\
                eve@example.com,a/b,pw,,\n\
                fay@example.com,fay,pw,newhost,destpw\n";
    let p = parse(text, &imap_source(None)).unwrap();
    let errs: Vec<_> = p.row_errors.iter().map(row_error).collect();
    assert_eq!(
        errs,
        [
            (3, "EmailAddress"),
            (5, "Password"),
            (6, "EmailAddress"),
            (7, "Destination"),
            (8, "DestinationPassword"),
            (9, "UserName"),
        ]
    );
    let ok: Vec<_> = p.mailboxes.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(ok, ["ann@example.com", "fay@example.com"]);
    let fay = &p.mailboxes[1];
    assert_eq!(fay.destination, "newhost");
    match &fay.destination_login {
        Some(SourceLogin::Login { user, password }) => {
            assert_eq!(
                (user.as_str(), password.expose().as_str()),
                ("fay@example.com", "destpw")
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = p.row_errors[2].to_string();
    assert!(
        msg.starts_with("mailboxes.csv line 6, field EmailAddress: "),
        "{msg}"
    );
    assert!(
        msg.contains("line 2"),
        "duplicate names the first line: {msg}"
    );
}

#[test]
fn quoted_multiline_cells_keep_line_numbers_right() {
    let text =
        "EmailAddress,UserName,Password\n\"ann@example.com\",ann,\"pass\nword\"\nbad,bob,pw\n";
    let p = parse(text, &imap_source(None)).unwrap();
    assert_eq!(p.mailboxes[0].line, 2);
    assert_eq!(row_error(&p.row_errors[0]), (4, "EmailAddress"));
}

#[test]
fn invalid_utf8_is_a_row_error_that_does_not_quote_the_cell() {
    let mut text = b"EmailAddress,UserName,Password\nann@example.com,ann,".to_vec();
    text.extend_from_slice(b"s\xffcret\nbob@example.com,bob,pw\n");
    let p = parse_csv(
        Path::new("m.csv"),
        &text,
        Path::new("."),
        &imap_source(None),
        &dests(),
    )
    .unwrap();
    assert_eq!(row_error(&p.row_errors[0]), (2, "Password"));
    assert!(!p.row_errors[0].to_string().contains("cret"));
    assert_eq!(p.mailboxes.len(), 1);
}

#[test]
fn header_problems_fail_the_whole_csv() {
    for text in [
        "",
        "\n\n",
        "UserName,Password\nx,y\n",
        "EmailAddress,Color\n",
        "EmailAddress,emailaddress\n",
    ] {
        match parse(text, &imap_source(None)) {
            Err(PlanError::Csv { .. }) => {}
            other => panic!("{text:?}: {:?}", other.map(|p| p.mailboxes.len())),
        }
    }
}

#[test]
fn maildir_rows_use_source_path_or_the_root_template() {
    let mut source = imap_source(None);
    source.kind = SourceKind::Maildir;
    source.endpoint = None;
    source.maildir_root = Some("mail/{Domain}/{LocalPart}".into());
    let text = "EmailAddress,SourcePath\nann@example.com,trees/ann\nbob@example.org,\n";
    let p = parse(text, &source).unwrap();
    let paths: Vec<_> = p
        .mailboxes
        .iter()
        .map(|m| match &m.source {
            MailboxSource::Maildir { path } => path.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            Path::new("/plans/trees/ann"),
            Path::new("/plans/mail/example.org/bob")
        ]
    );
    source.maildir_root = None;
    let p = parse(text, &source).unwrap();
    assert_eq!(row_error(&p.row_errors[0]), (3, "SourcePath"));
}

#[test]
fn toml_errors_carry_line_and_unknown_key_name() {
    let text = "mailboxes = \"m.csv\"\n[source]\nhost = \"h\"\ncolour = \"blue\"\n";
    match resolve::parse_toml(Path::new("plan.toml"), text) {
        Err(e @ PlanError::Toml { line: 4, .. }) => {
            assert!(e.to_string().contains("colour"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let text = "mailboxes = \"m.csv\"\n[source]\nhost = \"h\"\n[destination.x]\nkind = \"graph\"\ntenant = \"t\"\nclient_id = \"c\"\nsecrett_env = \"E\"\n";
    match resolve::parse_toml(Path::new("plan.toml"), text) {
        Err(e @ PlanError::Toml { .. }) => {
            assert!(e.to_string().contains("secrett_env"), "{e}");
            assert!(e.line().is_some_and(|l| l >= 4), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn destinations_keep_document_order() {
    let text = "mailboxes = \"m.csv\"\n[source]\nhost = \"h\"\n[destination.zeta]\nkind = \"imap\"\nhost = \"z\"\n[destination.alpha]\nkind = \"imap\"\nhost = \"a\"\n";
    let raw = resolve::parse_toml(Path::new("plan.toml"), text).unwrap();
    let names: Vec<_> = raw.destination.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
}

#[test]
fn a_row_with_the_wrong_field_count_is_refused_without_quoting_any_cell() {
    // An unquoted comma in the password shifts every later column.
    let text = "EmailAddress,UserName,Password,Destination\n\
                ann@example.com,ann,Pa,ssword-Secret,\n\
                bob@example.com,bob,pw,\n\
                cat@example.com,cat,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t\n\
                dan@example.com,dan\n";
    let p = parse(text, &imap_source(None)).unwrap();
    let errs: Vec<_> = p.row_errors.iter().map(row_error).collect();
    assert_eq!(errs, [(2, "(row)"), (4, "(row)"), (5, "(row)")]);
    for e in &p.row_errors {
        let msg = e.to_string();
        for secret in ["ssword", "Secret", "Pa,", "dan", "cat@", "ann@"] {
            assert!(!msg.contains(secret), "{msg}");
        }
        assert!(msg.contains("fields but the header has 4"), "{msg}");
    }
    assert!(p.row_errors[0].to_string().contains("line 2"));
    assert_eq!(p.mailboxes.len(), 1);
}

#[test]
fn an_unterminated_quote_names_its_line() {
    let text = "EmailAddress,UserName,Password\nann@example.com,ann,pw\nbob@example.com,bob,\"se\"\"cret\ncat@example.com,cat,pw\n";
    match parse(text, &imap_source(None)) {
        Err(e @ PlanError::Csv { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("line 3") && msg.contains("closing quote"),
                "{msg}"
            );
            assert!(!msg.contains("cret"), "{msg}");
        }
        other => panic!("{:?}", other.map(|p| p.mailboxes.len())),
    }
    // Closed quotes, doubled quotes inside and quotes inside unquoted cells are fine.
    let ok = "EmailAddress,UserName,Password\nann@example.com,ann,\"a,\"\"b\"\nbob@example.com,bob,x\"y\n";
    assert_eq!(parse(ok, &imap_source(None)).unwrap().mailboxes.len(), 2);
}

#[test]
fn a_utf16_csv_says_save_it_as_utf8() {
    let utf16 = |bom: &[u8], be: bool| {
        let mut out = bom.to_vec();
        for u in "EmailAddress,UserName,Password\nann@example.com,ann,pw\n".encode_utf16() {
            out.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    };
    for bytes in [
        utf16(b"\xFF\xFE", false),
        utf16(b"\xFE\xFF", true),
        utf16(b"", false),
    ] {
        let r = parse_csv(
            Path::new("m.csv"),
            &bytes,
            Path::new("."),
            &imap_source(None),
            &dests(),
        );
        match r {
            Err(e @ PlanError::Csv { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("save it as UTF-8"), "{msg}");
                assert!(!msg.contains('\0'), "{msg}");
            }
            other => panic!("{:?}", other.map(|p| p.mailboxes.len())),
        }
    }
}
