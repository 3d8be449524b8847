//! `mailferry ledger copy` end to end, with real run data: part of a plan migrated on SQLite,
//! the ledger copied into a real PostgreSQL, the rest done by a fleet worker
//! (`migrate --ledger postgres://…`); and the way back (PostgreSQL -> SQLite), compared through
//! `status --json`. Sources are Maildir trees, the destination the Graph emulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailferry::emulator::EmulatorConfig;
use mailferry::engine::MigrateOptions;
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;

use crate::migrate::{Rig, write_maildir};
use crate::reliability::tally;
use crate::support::corpus::{generated_message, imap_ready};
use crate::support::postgres::{PASSWORD, Postgres};

const NAMES: [&str; 4] = ["user00", "user01", "user02", "user03"];
const PER_FOLDER: usize = 6;

/// Four mailboxes (INBOX and Archive, six messages each); the first two migrated on the plan's
/// SQLite ledger. The rig, the SQLite ledger's path, and each mailbox's messages.
async fn half_migrated() -> (Rig, PathBuf, BTreeMap<String, Vec<Vec<u8>>>) {
    let rig = Rig::new(&NAMES, EmulatorConfig::default()).await;
    let mut expected = BTreeMap::new();
    for (m, name) in NAMES.iter().enumerate() {
        let msg = |i: usize| generated_message(5000 + m * 100 + i, 400 + i * 37);
        let inbox: Vec<(Vec<u8>, &str)> = (0..PER_FOLDER).map(|i| (msg(i), "S")).collect();
        let archive: Vec<(Vec<u8>, &str)> =
            (PER_FOLDER..2 * PER_FOLDER).map(|i| (msg(i), "")).collect();
        let all = inbox
            .iter()
            .chain(&archive)
            .map(|(r, _)| r.clone())
            .collect();
        write_maildir(&rig.tree(name), &[("", inbox), ("Archive", archive)]);
        expected.insert(name.to_string(), all);
    }
    let summary = rig
        .migrate(MigrateOptions {
            mailboxes: vec![
                "user00@contoso.example".into(),
                "user01@contoso.example".into(),
            ],
            ..MigrateOptions::default()
        })
        .await;
    assert!(!summary.has_failures(), "{summary:?}");
    let state = Plan::load(&rig.plan_path).unwrap().default_state_path();
    (rig, state, expected)
}

/// Runs `mailferry args…` to completion (within 2 minutes, polling so the emulator in this
/// process keeps serving): exit code, stdout, stderr.
async fn mailferry(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .env("PGPASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailferry {args:?} still running after 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out_path), read(&err_path))
}

/// `status --json` of the plan on the ledger named by `ledger_args`.
async fn status_json(plan: &Path, ledger_args: &[&str]) -> serde_json::Value {
    let mut args = vec!["status", "--json", "--plan", plan.to_str().unwrap()];
    args.extend_from_slice(ledger_args);
    let (code, out, err) = mailferry(&args).await;
    assert_eq!(code, 0, "status {ledger_args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// Request-body bytes the emulator accepted for each mailbox (every copied message is one
/// upload; a message sent again would add to it).
fn uploaded(rig: &Rig) -> BTreeMap<String, u64> {
    let counters = rig.emulator.inspect().counters();
    NAMES
        .iter()
        .map(|n| {
            let key = format!("{n}@contoso.example");
            let bytes = counters.mailboxes.get(&key).map_or(0, |m| m.bytes_uploaded);
            (n.to_string(), bytes)
        })
        .collect()
}

/// (lost, duplicated) over the whole plan, from the emulator's own listing.
fn lost_and_duplicated(rig: &Rig, expected: &BTreeMap<String, Vec<Vec<u8>>>) -> (usize, usize) {
    let (mut lost, mut dup) = (0, 0);
    for (name, messages) in expected {
        let at_dest: Vec<Vec<u8>> = rig.items(name).into_iter().map(|(_, raw)| raw).collect();
        let want: Vec<Vec<u8>> = messages.iter().map(|m| imap_ready(m)).collect();
        let (l, d) = tally(&want, &at_dest);
        lost += l;
        dup += d;
    }
    (lost, dup)
}

fn done(status: &serde_json::Value) -> u64 {
    status["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["done"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_ledger_copied_to_postgres_is_finished_by_a_fleet_worker_exactly_once() {
    let pg = Postgres::start();
    let (rig, state, expected) = half_migrated().await;
    let plan = rig.plan_path.to_str().unwrap();
    let (state_s, url) = (state.to_str().unwrap(), pg.url());
    let before = uploaded(&rig);
    assert!(before["user00"] > 0 && before["user02"] == 0, "{before:?}");

    // Refused while a run holds the SQLite ledger's lock (exit 3), and without the plan.
    let lock = Ledger::lock_run(&state).unwrap();
    let copy = [
        "ledger", "copy", "--from", state_s, "--to", &url, "--plan", plan,
    ];
    let (code, _, err) = mailferry(&copy).await;
    assert_eq!(code, 3, "{err}");
    drop(lock);
    let (code, _, err) = mailferry(&copy[..6]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs --plan"), "{err}");

    let (code, out, err) = mailferry(&copy).await;
    assert_eq!(code, 0, "{err}");
    let row = |table: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(row("messages").as_deref(), Some("24"), "{out}");
    assert_eq!(row("mailboxes").as_deref(), Some("2"), "{out}");
    assert_eq!(row("runs").as_deref(), Some("1"), "{out}");
    assert!(out.contains("registered the plan: 4 mailboxes"), "{out}");
    // Ids kept: the same (folder, uid, id) triples on both sides.
    let sqlite_ids: Vec<(i64, i64, i64)> = {
        let c = rusqlite::Connection::open(&state).unwrap();
        let mut st = c
            .prepare("SELECT id, folder_id, uid FROM messages ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let pg_ids: Vec<(i64, i64, i64)> = pg
        .psql("SELECT id, folder_id, uid FROM messages ORDER BY id")
        .lines()
        .map(|l| {
            let v: Vec<i64> = l.split('|').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect();
    assert_eq!(pg_ids, sqlite_ids);

    // A second copy into the now full database is refused (exit 2), naming what it holds.
    let (code, _, err) = mailferry(&copy).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already holds data") && err.contains("24 messages"),
        "{err}"
    );

    // A fleet worker continues the project.
    let (code, _, err) = mailferry(&[
        "migrate",
        "--plan",
        plan,
        "--ledger",
        &url,
        "--concurrency",
        "2",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing left to claim"), "{err}");
    assert_eq!(lost_and_duplicated(&rig, &expected), (0, 0));
    // Nothing copied on SQLite was sent again: the first two mailboxes' uploads did not grow,
    // and their rows still name the SQLite run that copied them.
    let after = uploaded(&rig);
    assert_eq!(after["user00"], before["user00"], "{after:?}");
    assert_eq!(after["user01"], before["user01"], "{after:?}");
    assert!(after["user02"] > 0 && after["user03"] > 0, "{after:?}");
    let by_run = pg.psql("SELECT m.updated_run, count(*) FROM messages m GROUP BY 1 ORDER BY 1");
    let by_run: Vec<&str> = by_run.lines().collect();
    assert_eq!(by_run.len(), 2, "{by_run:?}");
    assert_eq!(by_run[0], "1|24", "the SQLite run's rows: {by_run:?}");
    assert!(
        by_run[1].ends_with("|24"),
        "the fleet run's rows: {by_run:?}"
    );
    // The worker's new rows got ids past the copied ones (the sequences were moved).
    let min_new: i64 = pg
        .psql("SELECT min(id) FROM messages WHERE updated_run <> 1")
        .trim()
        .parse()
        .unwrap();
    assert!(min_new > 24, "{min_new}");

    // status --ledger: every message done, and the rates of the fleet's passes: positive where
    // the worker copied messages, 0 where it found everything copied already.
    let status = status_json(&rig.plan_path, &["--ledger", &url]).await;
    assert_eq!(done(&status) as usize, NAMES.len() * 2 * PER_FOLDER);
    let rates: BTreeMap<String, f64> = status["fleet"]["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["mailbox"].as_str().unwrap().to_owned(),
                r["messages_per_second"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rates.len(), 4, "{rates:?}");
    for n in ["user02", "user03"] {
        let r = rates[&format!("{n}@contoso.example")];
        // 12 messages in one pass: more than 0, and no more than 12 in a millisecond.
        assert!(r > 0.0 && r <= 12_000.0, "{n}: {r}");
    }
    for n in ["user00", "user01"] {
        assert_eq!(rates[&format!("{n}@contoso.example")], 0.0, "{n}");
    }
    let (code, text, err) = mailferry(&["status", "--plan", plan, "--ledger", &url]).await;
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("rate") && text.contains("msg/"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_ledger_copied_back_to_sqlite_shows_the_same_status() {
    let pg = Postgres::start();
    let (rig, state, expected) = half_migrated().await;
    let plan = rig.plan_path.to_str().unwrap();
    let url = pg.url();
    let copy = |from: &str, to: &str| {
        let args: Vec<String> = ["ledger", "copy", "--from", from, "--to", to, "--plan", plan]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args
    };
    let args = copy(state.to_str().unwrap(), &url);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(mailferry(&refs).await.0, 0);
    let (code, _, err) = mailferry(&["migrate", "--plan", plan, "--ledger", &url]).await;
    assert_eq!(code, 0, "{err}");

    // Back out of fleet mode: PostgreSQL -> a new SQLite file.
    let back = rig.dir.path().join("back.db");
    let args = copy(&url, back.to_str().unwrap());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut json_args = refs[..6].to_vec();
    json_args.push("--json");
    let (code, out, err) = mailferry(&json_args).await;
    assert_eq!(code, 0, "{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    let messages = outcome["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "messages")
        .unwrap();
    assert_eq!(messages["rows"], 48, "{outcome:#}");
    assert_eq!(outcome["mailboxes_in_flight"], 0, "{outcome:#}");
    assert!(!out.contains(PASSWORD), "{out}");
    // Into a SQLite file that holds data: refused, and the file is unchanged.
    let (code, _, err) = mailferry(&refs[..6]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds data"), "{err}");

    let on_pg = status_json(&rig.plan_path, &["--ledger", &url]).await;
    let on_sqlite = status_json(&rig.plan_path, &["--state", back.to_str().unwrap()]).await;
    assert_eq!(on_sqlite["mailboxes"], on_pg["mailboxes"]);
    assert_eq!(on_sqlite["failures"], on_pg["failures"]);
    assert_eq!(done(&on_sqlite) as usize, NAMES.len() * 2 * PER_FOLDER);
    // The same runs, less the fleet's `worker` column (SQLite has no fleet).
    let mut pg_runs = on_pg["runs"].as_array().unwrap().clone();
    for r in &mut pg_runs {
        r.as_object_mut().unwrap().remove("worker");
    }
    assert_eq!(on_sqlite["runs"].as_array().unwrap(), &pg_runs);
    assert_eq!(pg_runs.len(), 2);

    // The SQLite copy carries on as a single run: nothing is sent again.
    let before = uploaded(&rig);
    let (code, _, err) =
        mailferry(&["migrate", "--plan", plan, "--state", back.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(uploaded(&rig), before);
    assert_eq!(lost_and_duplicated(&rig, &expected), (0, 0));
}

/// Every row of every ledger table of a SQLite file, as SQLite values, in id order.
fn dump(path: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let c = rusqlite::Connection::open(path).unwrap();
    ["runs", "mailboxes", "folders", "messages", "throttle"]
        .iter()
        .map(|t| {
            let mut st = c
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1, 2"))
                .unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<Vec<Vec<_>>, _>>()
                .unwrap();
            (t.to_string(), rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_rows_than_one_batch_go_there_and_back_value_for_value() {
    use mailferry::ledger::postgres::{Clock, PgLedger, PgUrl, UrlOrigin};
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (from, back) = (dir.path().join("from.db"), dir.path().join("back.db"));
    let source = Ledger::open(&from).unwrap();
    let run = source.start_run("migrate").unwrap();
    let mb = source.mailbox("ann@x", "exo").unwrap();
    source.set_mailbox_state(mb, run, "ok", None).unwrap();
    let folders = [
        source.folder(mb, "INBOX").unwrap().id,
        source.folder(mb, "Archive").unwrap().id,
    ];
    drop(source);
    // 4,500 messages: three batches, the last one partial. Extreme values where the types are
    // widest (UIDVALIDITY 2^32 - 1, a 63-bit MODSEQ), NULLs and non-ASCII text.
    {
        let mut c = rusqlite::Connection::open(&from).unwrap();
        let tx = c.transaction().unwrap();
        tx.execute(
            "UPDATE folders SET uid_validity = 4294967295, highest_modseq = 9223372036854775807,
             uid_next = 4294967295, source_messages = 4500, source_bytes = 123456789012",
            [],
        )
        .unwrap();
        for i in 0..4500i64 {
            let done = i % 3 != 0;
            tx.execute(
                "INSERT INTO messages (folder_id, uid_validity, uid, size, sha256, message_id,
                 internal_date, flags, state, dest_id, attempts, last_error, error_class,
                 source_gone, updated_run, recheck)
                 VALUES (?1, 4294967295, ?2, ?3, ?4, ?5, '2024-05-01T00:00:00Z', ?6, ?7, ?8, ?9,
                 ?10, ?11, ?12, ?13, ?14)",
                rusqlite::params![
                    folders[(i % 2) as usize],
                    i + 1,
                    i * 1000,
                    format!("{i:064x}"),
                    (i % 5 != 0).then(|| format!("<m{i}@x>")),
                    if i % 2 == 0 { "\\Seen" } else { "" },
                    if done { "done" } else { "failed" },
                    done.then(|| format!("AAMk{i}")),
                    i % 4,
                    (!done).then_some("Grösse überschritten"),
                    (!done).then_some("item"),
                    i % 7 == 0,
                    run,
                    i % 11 == 0,
                ],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO throttle (destination, mailbox, until_ms) VALUES
             ('exo', 'ann@x', 1700000000000), ('exo', 'bob@x', 5)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let url = PgUrl::parse(&pg.url(), UrlOrigin::CommandLine, Some(PASSWORD.into())).unwrap();
    let db = PgLedger::connect(&url, Clock::Database).await.unwrap();
    let counts = db
        .import_ledger(&Ledger::open(&from).unwrap())
        .await
        .unwrap();
    let rows: Vec<(&str, u64)> = counts.iter().map(|c| (c.table.as_str(), c.rows)).collect();
    assert_eq!(
        rows,
        vec![
            ("runs", 1),
            ("mailboxes", 1),
            ("folders", 2),
            ("messages", 4500),
            ("throttle", 2)
        ]
    );
    // The sequences are past the copied ids: the next run is 2.
    assert_eq!(db.start_run("migrate").await.unwrap(), 2);
    pg.psql("DELETE FROM runs WHERE id = 2");
    let back_ledger = Ledger::open(&back).unwrap();
    let counts = db.export_ledger(&back_ledger).await.unwrap();
    assert_eq!(
        counts.iter().find(|c| c.table == "messages").unwrap().rows,
        4500
    );
    drop(back_ledger);
    assert_eq!(dump(&back), dump(&from));
}
