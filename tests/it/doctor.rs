//! `mailferry doctor` against the in-process emulator, with each permission missing in turn, a
//! mailbox outside the app's access policy, a wrong secret and an unlicensed mailbox; every
//! probe leaves no scratch folder behind. The IMAP checks run against a real Dovecot: a wrong
//! password and a closed port.

use std::path::Path;
use std::process::{Command, Stdio};

use mailferry::doctor::{self, DoctorReport, Status};
use mailferry::emulator::{
    self, AppConfig, EmulatorConfig, EmulatorHandle, MAIL_ADVANCED_READWRITE, MAIL_READWRITE,
};
use mailferry::plan::Plan;

use crate::support::dovecot::{Dovecot, Layout};

const USER: &str = "ann@contoso.example";

/// A plan with a Maildir source (the demo's alice) and the emulator as its Graph destination.
fn write_plan(dir: &Path, emu: &EmulatorHandle, secret: &str, route: &str) -> std::path::PathBuf {
    let alice = mailferry::demo::default_fixtures().join("alice");
    std::fs::write(dir.join("secret"), secret).unwrap();
    std::fs::write(
        dir.join("mailboxes.csv"),
        format!("EmailAddress,SourcePath\n{USER},{}\n", alice.display()),
    )
    .unwrap();
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "mailboxes = \"mailboxes.csv\"\n[source]\nkind = \"maildir\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\nroute = \"{route}\"\ngraph_url = \"{0}\"\nlogin_url = \"{0}\"\n",
            emu.base_url()
        ),
    )
    .unwrap();
    plan
}

async fn doctor_with(config: EmulatorConfig, secret: &str) -> (DoctorReport, EmulatorHandle) {
    let emu = emulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::load(&write_plan(dir.path(), &emu, secret, "import-mime")).unwrap();
    let report = doctor::run(&plan, &[]).await.unwrap();
    (report, emu)
}

fn app(permissions: &[&str]) -> EmulatorConfig {
    let mut a = AppConfig::with_secret("mailferry-demo", "demo-secret");
    a.permissions = permissions.iter().map(|p| p.to_string()).collect();
    EmulatorConfig {
        apps: vec![a],
        ..EmulatorConfig::default()
    }
}

fn status(r: &DoctorReport, check: &str) -> Status {
    r.find(USER, check)
        .or_else(|| r.find("graph exo", check))
        .unwrap_or_else(|| panic!("no {check} check in {r:#?}"))
        .status
}

fn message<'r>(r: &'r DoctorReport, check: &str) -> &'r str {
    &r.find("graph exo", check)
        .unwrap_or_else(|| panic!("no {check} check in {r:#?}"))
        .message
}

fn finding<'r>(r: &'r DoctorReport, route: &str, property: &str) -> &'r doctor::Finding {
    r.findings
        .iter()
        .find(|f| f.route == route && f.property == property)
        .unwrap_or_else(|| panic!("no finding {route} {property} in {r:#?}"))
}

/// No `mailferry-doctor-*` folder, and none of the folder probes', is left in the mailbox.
fn no_scratch_folder(emu: &EmulatorHandle) {
    if let Some(view) = emu.inspect().mailbox(USER) {
        let left: Vec<_> = view
            .folders
            .iter()
            .filter(|f| {
                f.display_name.starts_with("mailferry-doctor-")
                    || f.display_name.starts_with("mailferry-dup-")
                    || f.path.contains("a.b.c")
            })
            .map(|f| f.path.clone())
            .collect();
        assert!(left.is_empty(), "scratch folders left: {left:?}");
        assert!(view.items.is_empty(), "test messages left behind");
    }
}

#[tokio::test]
async fn a_healthy_tenant_passes_and_the_findings_settle_the_unknowns() {
    let (r, emu) = doctor_with(EmulatorConfig::default(), "demo-secret").await;
    assert!(!r.failed(), "{}", doctor::render::text(&r));
    for check in [
        "token",
        "access",
        "scratch folder",
        "route import-mime",
        "route json",
        "folder names",
        "cleanup",
    ] {
        assert_eq!(status(&r, check), Status::Ok, "{check}: {r:#?}");
    }
    // Unknowns 4 and 5 as the emulator answers them: a duplicate is 409 ErrorFolderExists, and
    // it takes every sample name (so mailferry's renames are reported as not needed here).
    assert_eq!(
        finding(&r, "folders", "second create of one name").value,
        "HTTP 409 ErrorFolderExists"
    );
    let names: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.route == "folders" && f.property.starts_with("name "))
        .collect();
    assert_eq!(names.len(), 11, "{names:#?}");
    assert!(names.iter().all(|f| f.value == "accepted"), "{names:#?}");
    assert_eq!(
        names
            .iter()
            .filter(|f| f.meaning.starts_with("mailferry renames it anyway"))
            .count(),
        5,
        "{names:#?}"
    );
    assert_eq!(status(&r, "open"), Status::Ok, "the Maildir source opens");
    // What the emulator does by default, read off the test messages as on a real tenant.
    assert_eq!(finding(&r, "import-mime", "isDraft").value, "false");
    assert!(
        finding(&r, "import-mime", "receivedDateTime")
            .meaning
            .contains("Received: header"),
        "{r:#?}"
    );
    assert_eq!(
        finding(&r, "import-mime", "isRead as imported").value,
        "false"
    );
    assert_eq!(finding(&r, "import-mime", "isRead").value, "true");
    assert_eq!(finding(&r, "import-mime", "flag").value, "flagged");
    assert!(
        finding(&r, "import-mime", "$value")
            .value
            .contains("identical")
    );
    assert_eq!(finding(&r, "json", "isDraft").value, "false");
    assert!(
        finding(&r, "json", "receivedDateTime")
            .meaning
            .starts_with("taken from the INTERNALDATE"),
        "{r:#?}"
    );
    assert_eq!(finding(&r, "json", "flag").value, "flagged");
    no_scratch_folder(&emu);
}

#[tokio::test]
async fn a_tenant_answering_400_to_a_duplicate_folder_is_reported_as_such() {
    let config = EmulatorConfig {
        folder_exists_status: 400,
        ..EmulatorConfig::default()
    };
    let (r, emu) = doctor_with(config, "demo-secret").await;
    assert!(!r.failed(), "{}", doctor::render::text(&r));
    let f = finding(&r, "folders", "second create of one name");
    assert_eq!(f.value, "HTTP 400 ErrorFolderExists");
    assert!(f.meaning.contains("recognises it by its code"), "{f:?}");
    no_scratch_folder(&emu);
}

#[tokio::test]
async fn import_mime_reads_the_date_header_on_a_tenant_that_does() {
    let config = EmulatorConfig {
        import_mime_received: emulator::ImportMimeReceived::DateHeader,
        ..EmulatorConfig::default()
    };
    let (r, _emu) = doctor_with(config, "demo-secret").await;
    assert!(
        finding(&r, "import-mime", "receivedDateTime")
            .meaning
            .starts_with("taken from the Date: header"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn without_mail_advanced_import_mime_fails_and_json_works() {
    let (r, emu) = doctor_with(app(&[MAIL_READWRITE]), "demo-secret").await;
    assert!(r.failed());
    assert_eq!(status(&r, "route import-mime"), Status::Fail);
    assert!(
        message(&r, "route import-mime").contains(MAIL_ADVANCED_READWRITE),
        "{r:#?}"
    );
    assert!(message(&r, "route import-mime").contains("403"));
    assert_eq!(status(&r, "route json"), Status::Ok);
    assert_eq!(
        status(&r, "cleanup"),
        Status::Ok,
        "deleted despite the failure"
    );
    no_scratch_folder(&emu);
}

#[tokio::test]
async fn without_mail_readwrite_access_fails_with_permission_advice() {
    let (r, emu) = doctor_with(app(&[MAIL_ADVANCED_READWRITE]), "demo-secret").await;
    assert_eq!(status(&r, "access"), Status::Fail);
    let m = message(&r, "access");
    assert!(
        m.contains(MAIL_READWRITE) && m.contains("admin consent"),
        "{m}"
    );
    assert!(!m.contains("access policy"), "{m}");
    assert!(
        r.find(USER, "route json").is_none(),
        "no probe without access"
    );
    no_scratch_folder(&emu);
}

#[tokio::test]
async fn a_mailbox_outside_the_access_policy_is_named_as_such() {
    let mut config = EmulatorConfig::default();
    config.apps[0].allowed_mailboxes = Some(vec!["someone.else@contoso.example".into()]);
    let (r, _emu) = doctor_with(config, "demo-secret").await;
    assert_eq!(status(&r, "access"), Status::Fail);
    let m = message(&r, "access");
    assert!(m.contains("application access policy"), "{m}");
    assert!(m.contains("Test-ApplicationAccessPolicy"), "{m}");
}

#[tokio::test]
async fn a_wrong_secret_fails_the_token_with_the_aadsts_advice() {
    let (r, _emu) = doctor_with(EmulatorConfig::default(), "not-the-secret").await;
    assert_eq!(status(&r, "token"), Status::Fail);
    let m = message(&r, "token");
    assert!(m.contains("AADSTS7000215"), "{m}");
    assert!(m.contains("secret is wrong"), "{m}");
    assert!(
        !m.contains("not-the-secret"),
        "the secret must never be printed: {m}"
    );
    assert!(
        r.find(USER, "access").is_none(),
        "nothing else runs without a token"
    );
}

#[tokio::test]
async fn an_unlicensed_mailbox_gets_licence_advice() {
    let config = EmulatorConfig {
        create_mailboxes_on_first_use: false,
        ..EmulatorConfig::default()
    };
    let (r, _emu) = doctor_with(config, "demo-secret").await;
    let m = message(&r, "access");
    assert!(
        m.contains("MailboxNotEnabledForRESTAPI") && m.contains("licence"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_json_and_sets_the_exit_code() {
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |plan: &Path, json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailferry"));
        c.arg("doctor").arg("--plan").arg(plan).stdin(Stdio::null());
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let good = write_plan(dir.path(), &emu, "demo-secret", "import-mime");
    let (code, out) = tokio::task::spawn_blocking(move || run(&good, true))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], true);
    assert!(doc["findings"].as_array().is_some_and(|f| !f.is_empty()));

    let bad = write_plan(dir.path(), &emu, "wrong", "json");
    let (code, out) = tokio::task::spawn_blocking(move || run(&bad, false))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  graph exo token"), "{out}");

    let missing = dir.path().join("nope.toml");
    let (code, _) = tokio::task::spawn_blocking(move || run(&missing, false))
        .await
        .unwrap();
    assert_eq!(code, 2);
}

/// A plan whose source is the Dovecot at `port`, with `password` for user kim.
fn imap_plan(dir: &Path, dovecot: &Dovecot, port: u16, password: &str) -> Plan {
    std::fs::write(
        dir.join("mailboxes.csv"),
        format!("EmailAddress,UserName,Password\nkim@contoso.example,kim,{password}\n"),
    )
    .unwrap();
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "mailboxes = \"mailboxes.csv\"\n[source]\nhost = \"localhost\"\nport = {port}\nsecurity = \"tls\"\n\
             ca_file = \"{}\"\ntimeout_secs = 5\n\n[destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\n\
             port = {port}\nsecurity = \"tls\"\nca_file = \"{}\"\n",
            dovecot.ca_pem_path().display(),
            dovecot.ca_pem_path().display()
        ),
    )
    .unwrap();
    let mut csv = std::fs::read_to_string(dir.join("mailboxes.csv")).unwrap();
    // The destination logs in as the same user.
    csv = csv.replace(
        "EmailAddress,UserName,Password\n",
        "EmailAddress,UserName,Password,DestinationUser,DestinationPassword\n",
    );
    csv = csv.trim_end().to_owned() + &format!(",kim,{password}\n");
    std::fs::write(dir.join("mailboxes.csv"), csv).unwrap();
    Plan::load(&plan).unwrap()
}

#[tokio::test]
async fn imap_hosts_pass_and_a_wrong_password_or_closed_port_fail_clearly() {
    let dovecot = Dovecot::start(Layout::Fs);
    dovecot.add_user("kim", "pw-kim");
    let dir = tempfile::tempdir().unwrap();

    let plan = imap_plan(dir.path(), &dovecot, dovecot.port_tls(), "pw-kim");
    let r = doctor::run(&plan, &[]).await.unwrap();
    assert!(!r.failed(), "{}", doctor::render::text(&r));
    for check in ["tcp", "tls", "login", "capabilities"] {
        let c = r.find("source localhost", check).unwrap();
        assert_eq!(c.status, Status::Ok, "{check}: {}", c.message);
        let d = r.find("destination newhost", check).unwrap();
        assert_ne!(d.status, Status::Fail, "{check}: {}", d.message);
    }
    assert!(
        r.find("source localhost", "capabilities")
            .unwrap()
            .message
            .contains("CONDSTORE")
    );

    let plan = imap_plan(dir.path(), &dovecot, dovecot.port_tls(), "wrong");
    let r = doctor::run(&plan, &[]).await.unwrap();
    assert!(r.failed());
    assert_eq!(
        r.find("source localhost", "tls").unwrap().status,
        Status::Ok
    );
    let login = r.find("source localhost", "login").unwrap();
    assert_eq!(login.status, Status::Fail);
    assert!(
        login.message.contains("refused the login of kim") && login.message.contains("Password"),
        "{}",
        login.message
    );
    assert!(!login.message.contains("wrong"), "no password in messages");

    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = imap_plan(dir.path(), &dovecot, closed, "pw-kim");
    let r = doctor::run(&plan, &[]).await.unwrap();
    let tcp = r.find("source localhost", "tcp").unwrap();
    assert_eq!(tcp.status, Status::Fail);
    assert!(
        tcp.message.contains("connection refused"),
        "{}",
        tcp.message
    );
    assert!(r.find("source localhost", "login").is_none());
}
