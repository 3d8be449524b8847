//! Rounds in fleet mode end to end: the incremental pass after the MX switch (`--round 2`) and
//! `--retry-failed`, with worker processes on a real PostgreSQL ledger (the rig and helpers of
//! `fleet`). Every scenario ends by listing the destination: every message exactly once.

use std::process::Command;
use std::time::Duration;

use crate::fleet::{
    MAILBOXES, PER_FOLDER, Workers, lost_and_duplicated, rig, run, total_items, wait_all,
};
use crate::support::corpus::generated_message;
use crate::support::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_two_copies_what_arrived_since_the_first_pass_exactly_once() {
    const NEW: usize = 3;
    let pg = Postgres::start();
    let (rig, names, mut expected) = rig(5).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 2);
    let codes = wait_all(&mut w.children, Duration::from_secs(240)).await;
    assert_eq!(codes, vec![0, 0], "{}\n{}", w.stderr(0), w.stderr(1));
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let first = total_items(&rig);
    assert_eq!(first, MAILBOXES * 2 * PER_FOLDER);
    // The fleet finished round 1: a plain worker has nothing to do.
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing left to claim in round 1"), "{err}");
    assert_eq!(total_items(&rig), first);

    // Mail arrives at the old server after the MX switch: NEW messages in each INBOX.
    for (m, name) in names.iter().enumerate() {
        let cur = rig.tree(name).join("cur");
        for i in 0..NEW {
            let raw = generated_message(m * 1000 + 500 + i, 700 + i * 131);
            let file = cur.join(format!("18000000{i:02}.M{i}P2.host,S={}:2,", raw.len()));
            std::fs::write(file, &raw).unwrap();
            expected
                .get_mut(&format!("{name}@contoso.example"))
                .unwrap()
                .push(raw);
        }
    }

    // Round 2 with two workers: every mailbox is passed again, each exactly once.
    let mut w2 = Workers::start_with(&rig.plan_path, &pg, rig.dir.path(), 2, &["--round", "2"]);
    let codes = wait_all(&mut w2.children, Duration::from_secs(240)).await;
    assert_eq!(codes, vec![0, 0], "{}\n{}", w2.stderr(0), w2.stderr(1));
    for i in 0..2 {
        let err = w2.stderr(i);
        assert!(err.contains("nothing left to claim in round 2"), "{err}");
    }
    // The new messages arrived once each; nothing of round 1 was sent again.
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    assert_eq!(total_items(&rig), first + MAILBOXES * NEW);

    // status: round 2, every mailbox finished in it.
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["fleet"]["round"], 2, "{out}");
    let leases = status["fleet"]["leases"].as_array().unwrap();
    assert_eq!(leases.len(), MAILBOXES);
    assert!(
        leases.iter().all(|l| l["outcome"] == "ok"
            && l["round"] == 2
            && l["last_outcome"] == "ok"
            && l["last_outcome_round"] == 2),
        "{leases:#?}"
    );
    let (code, text, err) = run(&rig.plan_path, &pg, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("round 2:") && text.contains("ok (round 2)"),
        "{text}"
    );
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");

    // Round 1 is over, and round 4 is not the next: both refused as usage errors.
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate", "--round", "1"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("round 1 is over"), "{err}");
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate", "--round", "4"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the next is 3"), "{err}");
    assert_eq!(total_items(&rig), first + MAILBOXES * NEW);
    // On the plan's SQLite ledger (no --ledger, no [ledger] url) --round means nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(["migrate", "--round", "2", "--plan"])
        .arg(&rig.plan_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--round works on a PostgreSQL ledger"),
        "{err}"
    );
    assert_eq!(total_items(&rig), first + MAILBOXES * NEW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_passes_a_mailbox_that_failed_in_the_round_once_more() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(0).await;
    // user03's Maildir is unreadable in the first pass (a file where its tree should be).
    let tree = rig.tree("user03");
    let aside = tree.with_extension("aside");
    std::fs::rename(&tree, &aside).unwrap();
    std::fs::write(&tree, "not a Maildir").unwrap();
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 1);
    let codes = wait_all(&mut w.children, Duration::from_secs(240)).await;
    assert_eq!(codes, vec![1], "{}", w.stderr(0));
    let outcome = |status: &serde_json::Value, key: &str| {
        status["fleet"]["leases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["mailbox"] == key)
            .map(|l| (l["outcome"].clone(), l["round"].clone()))
            .unwrap()
    };
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        outcome(&status, "user03@contoso.example"),
        ("failed".into(), 1.into())
    );
    assert_eq!(rig.items("user03").len(), 0);
    // Failed finishes the mailbox for the round: a plain worker leaves it.
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing left to claim in round 1"), "{err}");
    assert_eq!(rig.items("user03").len(), 0);

    // Fixed: --retry-failed passes it once more, in the same round, and nothing else.
    std::fs::remove_file(&tree).unwrap();
    std::fs::rename(&aside, &tree).unwrap();
    let before = total_items(&rig);
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate", "--retry-failed"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(total_items(&rig), before + 2 * PER_FOLDER);
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["fleet"]["round"], 1);
    assert_eq!(
        outcome(&status, "user03@contoso.example"),
        ("ok".into(), 1.into())
    );
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
}
