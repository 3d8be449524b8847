//! Issue 13.3: an IMAP destination that stores other bytes than it was given. Dovecot turns NUL
//! bytes of an APPENDed message into 0x80 (same length, so sizes agree); `verify --deep` reads the
//! destination's bytes back and reports the item as "altered by the destination": exit 4, unless
//! the plan says `[verify] accept_altered = true`, when it is a warning and the exit is 0.

use mailferry::engine;
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;

use super::{imap_bodies, run_bin};
use crate::migrate::write_maildir;
use crate::support::dovecot::{Dovecot, Layout};
use crate::support::readback::migrate_plan;

fn message(subject: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: ann@example.org\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_changed_by_the_destination_are_reported_as_altered() {
    let dir = tempfile::tempdir().unwrap();
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    target.add_user("nul", "pw-nul");
    let clean = message("clean", b"nothing unusual here\r\n");
    let with_nul = message("nul", b"before\0after\r\nand \0\0 twice\r\n");
    write_maildir(
        &dir.path().join("trees").join("nul"),
        &[("", vec![(clean.clone(), "S"), (with_nul.clone(), "")])],
    );
    let plan_text = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nkind = \"maildir\"\n\n[destination.dst]\n\
         kind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
        target.port_tls(),
        target.ca_pem_path().display()
    );
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, &plan_text).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,SourcePath,DestinationUser,DestinationPassword\n\
         nul@contoso.example,nul,,trees/nul,nul,pw-nul\n",
    )
    .unwrap();

    let run = migrate_plan(&plan_path).await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    assert_eq!(run.total().copied, 2);
    // The premise: the destination holds the NUL message with other bytes, of the same length.
    let bodies = imap_bodies(&target, "nul", "pw-nul").await;
    assert_eq!(bodies.len(), 2);
    let held = bodies
        .iter()
        .find(|b| b.ends_with(b" twice\r\n"))
        .expect("the NUL message at the destination");
    assert_eq!(held.len(), with_nul.len());
    assert!(*held != with_nul, "Dovecot changed the NUL bytes");
    assert!(bodies.contains(&clean));

    // Through the library: one altered item, the NUL message, named by its source UID.
    let plan = Plan::load(&plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let report =
        engine::verify::verify(&plan, Some(&ledger), &plan.select(&[]).unwrap(), true, 1).await;
    assert!(!report.perfect);
    let mb = &report.mailboxes[0];
    assert_eq!(mb.altered.len(), 1, "{mb:#?}");
    assert_eq!(mb.altered[0].kind, "altered");
    assert_eq!(
        mb.altered[0].message_id.as_deref(),
        Some("<nul@example.org>")
    );
    assert!(mb.missing.is_empty() && mb.doubled.is_empty() && mb.changed.is_empty());
    drop(ledger);

    // The binary: exit 4, the class named in the text output.
    let plan_arg = plan_path.to_str().unwrap();
    let (code, out, err) = run_bin(&["verify", "--plan", plan_arg, "--deep"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("altered by the destination"), "{out}");
    assert!(out.contains("INVESTIGATE"), "{out}");

    // Accepted by the plan: a warning, exit 0.
    std::fs::write(
        &plan_path,
        format!("{plan_text}\n[verify]\naccept_altered = true\n"),
    )
    .unwrap();
    let (code, out, err) = run_bin(&["verify", "--plan", plan_arg, "--deep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: 1 altered by the destination"),
        "{out}"
    );
    assert!(out.contains("PERFECT"), "{out}");
}
