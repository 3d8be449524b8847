//! The `mailferry migrate` binary SIGKILLed at seeded random points, over and over, then a last run
//! to completion: on the Graph route (Dovecot -> emulator) and on the IMAP route (Dovecot ->
//! Dovecot). Progress is watched by polling the destination (the emulator's inspector; the
//! destination Dovecot's Maildir), never by fixed sleeps. Afterwards each source message is at the
//! destination exactly once, byte for byte, and `verify --deep` is perfect.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rand::Rng;

use mailferry::emulator::{EmulatorConfig, Latency};

use super::{
    assert_verify_perfect, graph_bodies, imap_bodies, mailferry, record, rng, rounds, run_bin,
    tally,
};
use crate::migrate_imap::ImapRig;
use crate::support::corpus::{date_for, generated_message, imap_ready};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};

/// Source messages: generated ones plus an exact twin and two without a Message-ID.
fn messages(n: usize) -> Vec<Vec<u8>> {
    let mut msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| generated_message(i, 1000 + (i * 53) % 2500))
        .collect();
    msgs.push(msgs[3].clone());
    msgs.push(b"From: a@b.example\r\nSubject: no id\r\n\r\nbody one\r\n".to_vec());
    msgs.push(b"From: a@b.example\r\nSubject: no id\r\n\r\nbody two\r\n".to_vec());
    msgs
}

fn load(d: &Dovecot, user: &str, msgs: &[Vec<u8>]) {
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Default::default(), date_for(i)))
        .collect();
    d.load(user, &["INBOX"], &batch);
}

fn spawn_migrate(plan: &str) -> Child {
    mailferry()
        .args(["migrate", "--plan", plan])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mailferry")
}

/// Polls `progress` until it reaches `n` or the child exits; true when it reached `n`.
async fn wait_progress(child: &mut Child, n: usize, progress: impl Fn() -> usize) -> bool {
    loop {
        if progress() >= n {
            return true;
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Seeded kill points within (1, total).
fn kill_points(scenario: &str, round: usize, kills: usize, total: usize) -> Vec<usize> {
    let mut r = rng(&format!("{scenario}/{round}"));
    let mut p: Vec<usize> = (0..kills).map(|_| r.gen_range(1..total - 10)).collect();
    p.sort_unstable();
    p
}

const KILLS_PER_ROUND: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_route_survives_repeated_sigkill() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let cfg = EmulatorConfig {
            latency: Latency {
                fixed_ms: 3,
                jitter_ms: 3,
            },
            ..EmulatorConfig::default()
        };
        let rig = ImapRig::with_emulator(Layout::Fs, &["kim"], cfg).await;
        let msgs = messages(240);
        load(&rig.dovecot, "kim", &msgs);
        let plan = rig.plan_path.to_str().unwrap().to_owned();
        let insp = rig.emulator.inspect();
        let count = || {
            insp.mailbox("kim@contoso.example")
                .map_or(0, |m| m.items.len())
        };
        let mut r = rng(&format!("sigkill-graph-inflight/{k}"));
        for p in kill_points("sigkill-graph", k, KILLS_PER_ROUND, msgs.len()) {
            let mut child = spawn_migrate(&plan);
            if wait_progress(&mut child, p, count).await {
                // Half the time, kill while a write is in flight: the worst moment.
                if r.gen_bool(0.5) {
                    tokio::select! {
                        _ = insp.wait_in_flight(1) => {}
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
                child.kill().unwrap();
                inj += 1;
            }
            child.wait().unwrap();
        }
        let (code, _, err) = run_bin(&["migrate", "--plan", &plan]);
        assert_eq!(code, 0, "{err}");
        let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
        let (l, d) = tally(
            &expected,
            &graph_bodies(&rig.emulator, "kim@contoso.example"),
        );
        assert_eq!((l, d), (0, 0), "lost, duplicated");
        (lost, dup) = (lost + l, dup + d);
        let (code, out, err) = run_bin(&["verify", "--plan", &plan, "--deep"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("PERFECT"), "{out}");
    }
    record("sigkill-graph-route", inj, lost, dup);
}

/// Messages in a Maildir++ user's INBOX, counted from its files.
fn maildir_count(root: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .map(|s| std::fs::read_dir(root.join(s)).map_or(0, |d| d.count()))
        .sum()
}

/// The IMAP route under repeated SIGKILL. This test found a duplicate: a killed run's last
/// APPEND, already in the server's socket buffer, was committed after the next run had looked for
/// it, so the message was sent again. The engine now re-checks messages re-sent after a crash at
/// the end of the folder's pass and removes such orphaned copies (`engine::orphans`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_route_survives_repeated_sigkill() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let dir = tempfile::tempdir().unwrap();
        let source = Dovecot::start(Layout::Fs);
        let target = Dovecot::start(Layout::MaildirPlusPlus);
        source.add_user("ron", "pw-ron");
        target.add_user("ron", "new-ron");
        let msgs = messages(400);
        load(&source, "ron", &msgs);
        // Make sure the destination INBOX exists so its files can be counted.
        target.create_folder("ron", &["INBOX"]);
        std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
             master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
             [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
            source.port_tls(),
            source.ca_pem_path().display(),
            target.port_tls(),
            target.ca_pem_path().display(),
        );
        std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
        std::fs::write(
            dir.path().join("mailboxes.csv"),
            "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
             ron@contoso.example,ron,,newhost,ron,new-ron\n",
        )
        .unwrap();
        let plan_path = dir.path().join("plan.toml");
        let plan = plan_path.to_str().unwrap().to_owned();
        let inbox = target.mail_root("ron");
        for p in kill_points("sigkill-imap", k, KILLS_PER_ROUND, msgs.len()) {
            let mut child = spawn_migrate(&plan);
            if wait_progress(&mut child, p, || maildir_count(&inbox)).await {
                child.kill().unwrap();
                inj += 1;
            }
            child.wait().unwrap();
        }
        let (code, _, err) = run_bin(&["migrate", "--plan", &plan]);
        assert_eq!(code, 0, "{err}");
        let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
        let (l, d) = tally(&expected, &imap_bodies(&target, "ron", "new-ron").await);
        assert_eq!((l, d), (0, 0), "lost, duplicated");
        (lost, dup) = (lost + l, dup + d);
        assert_verify_perfect(&plan_path, None).await;
    }
    record("sigkill-imap-route", inj, lost, dup);
}
