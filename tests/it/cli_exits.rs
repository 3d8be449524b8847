//! How the `mailferry` binary ends (issue 13, points 6, 11, 13, 14): SIGTERM drains like Ctrl-C
//! and a second signal stops at once with nothing lost or doubled; a closed stdout ends it
//! quietly; `--report-dir` is created or refused before the run; `http://` to a remote host is
//! refused before anything is sent. The source is the scripted server (cheap to start).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mailferry::emulator::{EmulatorConfig, Latency};

use crate::hostile::{Rig, bodies, rig_with, run_bin};
use crate::support::hostile::{Folder, Hostile, Script};

const MESSAGES: usize = 250;

fn slow() -> EmulatorConfig {
    EmulatorConfig {
        latency: Latency {
            fixed_ms: 6,
            jitter_ms: 2,
        },
        ..EmulatorConfig::default()
    }
}

async fn server(n: usize) -> Hostile {
    Hostile::start(Script::with(vec![Folder::new(b"INBOX", &bodies(n))])).await
}

fn spawn(args: &[&str], stdout: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .args(args)
        .spawn()
        .expect("spawn mailferry")
}

fn items(rig: &Rig) -> usize {
    rig.emulator
        .inspect()
        .mailbox("u@contoso.example")
        .map(|m| m.items.len())
        .unwrap_or(0)
}

/// Polls the emulator (never a fixed delay) until `n` items exist.
async fn wait_for_items(rig: &Rig, n: usize) {
    for _ in 0..6000 {
        if items(rig) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{n} items never arrived");
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{name}");
}

async fn finish(child: Child) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Point 6: SIGTERM drains like Ctrl-C (summary printed, exit 1, status interrupted); a second
/// signal (SIGINT after SIGTERM) stops at once; after each, the next run completes the mailbox
/// with every message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_second_signal_stops_at_once() {
    let h = server(MESSAGES).await;
    let rig = rig_with(&h, slow(), None, "").await;
    let plan = rig.plan.to_str().unwrap();

    let child = spawn(&["migrate", "--plan", plan], Stdio::piped());
    wait_for_items(&rig, 5).await;
    signal(&child, "TERM");
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    assert!(out.contains("interrupted"), "the summary is printed: {out}");
    let after_first = items(&rig);
    assert!(after_first < MESSAGES, "the run was not cut short");

    let child = spawn(&["migrate", "--plan", plan], Stdio::piped());
    wait_for_items(&rig, after_first + 5).await;
    signal(&child, "TERM");
    signal(&child, "INT");
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 1, "{out}\n{err}");
    // Both signals are pending by the time the process looks: whichever it reads second is the
    // one that stops it at once.
    assert!(
        err.contains("SIGINT again: stopping now") || err.contains("SIGTERM again: stopping now"),
        "{err}"
    );

    let (code, out, err) = run_bin(vec!["migrate".into(), "--plan".into(), plan.into()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(items(&rig), MESSAGES, "every message exactly once");
}

/// Point 13: stdout closed early (`| head -1`) ends survey, verify and migrate quietly: the
/// closed-pipe exit code, no panic, no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_quietly() {
    let h = server(30).await;
    let rig = rig_with(&h, EmulatorConfig::default(), None, "").await;
    let plan = rig.plan.to_str().unwrap();
    for command in ["survey", "verify", "status"] {
        if command == "status" {
            let (code, _, _) = run_bin(vec!["migrate".into(), "--plan".into(), plan.into()]).await;
            assert_eq!(code, 0);
        }
        let mut child = spawn(&[command, "--plan", plan, "--json"], Stdio::piped());
        drop(child.stdout.take());
        let (code, _, err) = finish(child).await;
        assert_eq!(code, 141, "{command}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{command}: {err}"
        );
    }
    // migrate --json | head -1: the first event is read, then the pipe closes.
    let h = server(MESSAGES).await;
    let rig = rig_with(&h, slow(), None, "").await;
    let plan = rig.plan.to_str().unwrap();
    let mut child = spawn(&["migrate", "--plan", plan, "--json"], Stdio::piped());
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    drop(reader);
    assert!(first.contains("\"event\""), "{first}");
    let (code, _, err) = finish(child).await;
    assert_eq!(code, 141, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The next run finishes the job, exactly once.
    let (code, _, err) = run_bin(vec!["migrate".into(), "--plan".into(), plan.into()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(items(&rig), MESSAGES);
    // `mailferry demo | head`: the demo prints through the same writer.
    let mut child = spawn(&["demo"], Stdio::piped());
    drop(child.stdout.take());
    let (code, _, err) = finish(child).await;
    assert_eq!(code, 141, "demo: {err}");
    assert!(!err.contains("panicked"), "demo: {err}");
}

/// Point 14: a missing `--report-dir` is created (0700, parents too) and holds the reports; one
/// that cannot be created fails with exit 2 before anything is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_report_dir_is_created_or_refused_before_the_run() {
    let h = server(3).await;
    let rig = rig_with(&h, EmulatorConfig::default(), None, "").await;
    let plan = rig.plan.to_str().unwrap().to_owned();
    let blocker = rig.dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    for command in ["migrate", "verify"] {
        let bad = blocker.join("reports");
        let (code, _, err) = run_bin(vec![
            command.into(),
            "--plan".into(),
            plan.clone(),
            "--report-dir".into(),
            bad.to_str().unwrap().into(),
        ])
        .await;
        assert_eq!(code, 2, "{command}: {err}");
        assert!(err.contains("--report-dir"), "{err}");
        assert_eq!(items(&rig), 0, "{command}: nothing may be copied");
    }
    let dir = rig.dir.path().join("new/reports");
    let (code, _, err) = run_bin(vec![
        "migrate".into(),
        "--plan".into(),
        plan,
        "--report-dir".into(),
        dir.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".json")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".csv")), "{names:?}");
}

/// Point 11: `http://` to a host that is not loopback is refused with exit 2 before any
/// connection (the source sees no LOGIN); `insecure = true` for the destination allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_remote_host_is_refused_unless_insecure() {
    let h = server(1).await;
    let remote = "http://192.0.2.10:8750";
    let rig = rig_with(&h, EmulatorConfig::default(), Some(remote), "").await;
    let plan = rig.plan.to_str().unwrap().to_owned();
    for command in ["migrate", "survey", "doctor"] {
        let (code, _, err) = run_bin(vec![command.into(), "--plan".into(), plan.clone()]).await;
        assert_eq!(code, 2, "{command}: {err}");
        assert!(
            err.contains("http://") && err.contains("insecure = true"),
            "{command}: {err}"
        );
    }
    assert_eq!(h.count("LOGIN"), 0, "nothing may be sent");
    let rig = rig_with(
        &h,
        EmulatorConfig::default(),
        Some(remote),
        "insecure = true",
    )
    .await;
    let (code, out, err) = run_bin(vec![
        "survey".into(),
        "--plan".into(),
        rig.plan.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
}
