//! The `mailferry` binary itself: SIGKILL at several points then resume (zero lost, zero
//! duplicated), the run lock (exit code 3), exit codes and output of survey, status and verify.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use mailferry::emulator::{EmulatorConfig, Latency};

use crate::migrate_imap::ImapRig;
use crate::support::corpus::generated_message;
use crate::support::dovecot::Layout;

fn mailferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailferry"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = mailferry().args(args).output().expect("run mailferry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits (polling the emulator, never a fixed delay) until `n` items exist in `user`'s mailbox.
async fn wait_for_items(rig: &ImapRig, user: &str, n: usize) {
    let insp = rig.emulator.inspect();
    let address = format!("{user}@contoso.example");
    for _ in 0..6000 {
        if insp.mailbox(&address).map(|m| m.items.len()).unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{n} items never arrived");
}

fn slow() -> EmulatorConfig {
    // Each request takes a few milliseconds, as the real service does, so a run lasts long enough
    // to be interrupted in the middle.
    EmulatorConfig {
        latency: Latency {
            fixed_ms: 4,
            jitter_ms: 2,
        },
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_then_resume_loses_and_doubles_nothing() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["kim"], slow()).await;
    let msgs: Vec<Vec<u8>> = (0..300)
        .map(|i| generated_message(i, 1200 + (i * 37) % 3000))
        .collect();
    // Two identical messages, and messages without a Message-ID, must each arrive exactly once.
    let mut msgs = msgs;
    msgs.push(msgs[10].clone());
    msgs.push(b"From: a@b.example\r\nSubject: no id\r\n\r\nbody one\r\n".to_vec());
    msgs.push(b"From: a@b.example\r\nSubject: no id\r\n\r\nbody two\r\n".to_vec());
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.clone(),
                Default::default(),
                crate::support::corpus::date_for(i),
            )
        })
        .collect();
    rig.dovecot.load("kim", &["INBOX"], &batch);
    let plan = rig.plan_path.to_str().unwrap().to_owned();

    for kill_after in [5, 60, 170] {
        let mut child = mailferry()
            .args(["migrate", "--plan", &plan])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_items(&rig, "kim", kill_after).await;
        // Kill while a request is in flight: the worst moment for exactly-once.
        rig.emulator.inspect().wait_in_flight(1).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let (code, _, err) = run(&["migrate", "--plan", &plan]);
    assert_eq!(code, 0, "{err}");

    // Exactly the source's messages, once each (a multiset: the twin is there twice).
    let view = rig
        .emulator
        .inspect()
        .mailbox("kim@contoso.example")
        .unwrap();
    let mut at_dest: HashMap<Vec<u8>, usize> = HashMap::new();
    for item in &view.items {
        let raw = rig
            .emulator
            .inspect()
            .raw_mime("kim@contoso.example", &item.id)
            .unwrap();
        *at_dest.entry(raw).or_default() += 1;
    }
    let mut expected: HashMap<Vec<u8>, usize> = HashMap::new();
    for m in &msgs {
        *expected
            .entry(crate::support::corpus::imap_ready(m))
            .or_default() += 1;
    }
    assert_eq!(view.items.len(), msgs.len(), "lost or duplicated");
    assert_eq!(at_dest, expected);

    let (code, out, err) = run(&["verify", "--plan", &plan, "--deep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PERFECT"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_by_the_lock_with_exit_code_3() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["lou"], slow()).await;
    let msgs: Vec<_> = (0..200)
        .map(|i| {
            (
                generated_message(i, 2000),
                Default::default(),
                crate::support::corpus::date_for(i),
            )
        })
        .collect();
    rig.dovecot.load("lou", &["INBOX"], &msgs);
    let plan = rig.plan_path.to_str().unwrap().to_owned();
    let mut first = mailferry()
        .args(["migrate", "--plan", &plan])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_items(&rig, "lou", 1).await;
    // Frozen, the first run holds the lock for as long as the second one waits for it (a run
    // lock found held is tried again for a moment before exit 3).
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (code, _, err) = run(&["migrate", "--plan", &plan]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("another mailferry run holds the lock"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_status_and_exit_codes() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["max"], EmulatorConfig::default()).await;
    let msgs: Vec<_> = (0..10)
        .map(|i| {
            (
                generated_message(i, 800),
                Default::default(),
                crate::support::corpus::date_for(i),
            )
        })
        .collect();
    rig.dovecot.load("max", &["INBOX"], &msgs);
    let plan = rig.plan_path.to_str().unwrap().to_owned();

    let (code, out, err) = run(&["survey", "--plan", &plan]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("max@contoso.example") && out.contains("10"),
        "{out}"
    );
    let (code, out, _) = run(&["survey", "--plan", &plan, "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["messages"], 10);

    let (code, _, err) = run(&["status", "--plan", &plan]);
    assert_eq!(code, 2, "no ledger yet: {err}");
    let (code, _, err) = run(&["migrate", "--plan", &plan, "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        rig.emulator
            .inspect()
            .mailbox("max@contoso.example")
            .is_none_or(|m| m.items.is_empty())
    );
    let (code, out, err) = run(&["migrate", "--plan", &plan, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.contains("\"run_finished\"")), "{out}");
    let (code, out, _) = run(&["status", "--plan", &plan]);
    assert_eq!(code, 0);
    assert!(out.contains("max@contoso.example"), "{out}");
    assert!(!out.contains("partial"), "every folder was listed: {out}");
    // The source total comes from the listing, and says it is complete.
    let (code, out, _) = run(&["status", "--plan", &plan, "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mb = &doc["mailboxes"][0];
    assert_eq!(mb["source_messages"], 10, "{doc}");
    assert_eq!(mb["folders_listed"], mb["source_folders"], "{doc}");

    // Reports are private.
    use std::os::unix::fs::PermissionsExt;
    let reports: Vec<_> = std::fs::read_dir(rig.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mailferry-run-")
        })
        .collect();
    assert!(!reports.is_empty());
    for r in reports {
        assert_eq!(
            std::fs::metadata(&r).unwrap().permissions().mode() & 0o777,
            0o600,
            "{r:?}"
        );
    }

    // A plan error is exit code 2 and names the file.
    std::fs::write(rig.dir.path().join("bad.toml"), "mailboxes = 3\n").unwrap();
    let bad = rig.dir.path().join("bad.toml");
    let (code, _, err) = run(&["survey", "--plan", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_the_writes_in_flight_and_records_them() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["ned"], slow()).await;
    let msgs: Vec<_> = (0..250)
        .map(|i| {
            (
                generated_message(i, 1500),
                Default::default(),
                crate::support::corpus::date_for(i),
            )
        })
        .collect();
    rig.dovecot.load("ned", &["INBOX"], &msgs);
    let plan = rig.plan_path.to_str().unwrap().to_owned();
    let child = mailferry()
        .args(["migrate", "--plan", &plan, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_items(&rig, "ned", 20).await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "interrupted runs exit 1: {stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let done = rig
        .emulator
        .inspect()
        .mailbox("ned@contoso.example")
        .unwrap()
        .items
        .len();
    assert!(done < 250, "the run stopped early ({done} copied)");

    // Every write that started was recorded: nothing is left `sending`.
    let (code, out, _) = run(&["status", "--plan", &plan, "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["mailboxes"][0]["sending"], 0, "{doc}");
    assert_eq!(
        doc["mailboxes"][0]["done"].as_u64(),
        Some(done as u64),
        "{doc}"
    );

    let (code, _, err) = run(&["migrate", "--plan", &plan]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        rig.emulator
            .inspect()
            .mailbox("ned@contoso.example")
            .unwrap()
            .items
            .len(),
        250
    );
}
