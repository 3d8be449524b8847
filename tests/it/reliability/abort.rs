//! Issue 12.11: every wait is cancellable. A first stop request lets the writes in flight finish
//! (and waits out a Retry-After for them); a second one aborts at once, whatever the run waits
//! for: a 600 s Retry-After pause, or an upload session between two chunks. After an abort the
//! ledger holds no `done` row the destination does not have, and the next run completes the
//! mailbox with every message exactly once. All on tokio's paused clock: no real waiting.

use std::collections::HashSet;
use std::time::Duration;

use mailferry::app;
use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule, Inspector};
use mailferry::engine::{Cancel, MigrateOptions};
use mailferry::plan::Plan;
use mailferry::report::{Events, RunSummary};
use tokio::time::Instant;

use crate::graph_sink::large::with_attachment;
use crate::migrate::{Rig, generated, write_maildir};

const USER: &str = "tom@contoso.example";

/// A rig for "tom" with `extra` appended to the plan's Graph destination.
pub(crate) async fn rig_with(cfg: EmulatorConfig, extra: &str) -> Rig {
    let rig = Rig::new(&["tom"], cfg).await;
    let plan = std::fs::read_to_string(&rig.plan_path).unwrap();
    std::fs::write(&rig.plan_path, format!("{plan}{extra}")).unwrap();
    rig
}

pub(crate) async fn run(rig: &Rig, cancel: Cancel, events: Events) -> RunSummary {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let workspace = app::Workspace::resolve(&plan, None, None);
    app::migrate(
        &plan,
        &workspace,
        &MigrateOptions::default(),
        events,
        cancel,
    )
    .await
    .unwrap()
    .summary
}

/// (state, dest_id) of every ledger row.
fn ledger_rows(rig: &Rig) -> Vec<(String, Option<String>)> {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let c = rusqlite::Connection::open(plan.default_state_path()).unwrap();
    let mut st = c.prepare("SELECT state, dest_id FROM messages").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every `done` row names an item the emulator holds.
fn done_rows_are_at_the_destination(rig: &Rig, insp: &Inspector) {
    for (state, dest) in ledger_rows(rig) {
        if state == "done" {
            let id = dest.expect("a done row names its item");
            assert!(
                insp.item(USER, &id).is_some(),
                "row done but item {id} is not at the destination"
            );
        }
    }
}

/// Items in the Inbox at the emulator (where the tests' messages go; a deleted incomplete copy
/// moves to Recoverable Items).
fn live_items(insp: &Inspector) -> Vec<mailferry::emulator::ItemView> {
    let view = insp.mailbox(USER).unwrap();
    view.items
        .into_iter()
        .filter(|i| i.folder_path == "Inbox")
        .collect()
}

/// How many messages are at the emulator, asserting none is there twice.
fn distinct_items(insp: &Inspector) -> usize {
    let ids: Vec<String> = live_items(insp)
        .iter()
        .map(|i| i.internet_message_id.clone().unwrap_or_default())
        .collect();
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "an item is there twice: {ids:?}");
    ids.len()
}

/// Polls (in 50 ms of virtual time) until `cond`, failing if `run` ends first.
async fn until<F: std::future::Future<Output = RunSummary>>(
    run: &mut std::pin::Pin<&mut F>,
    mut cond: impl FnMut() -> bool,
) {
    while !cond() {
        tokio::select! {
            s = run.as_mut() => panic!("the run ended first: {:?}", s.mailboxes),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_second_cancel_ends_a_600_s_retry_after_pause_at_once() {
    const MESSAGES: usize = 20;
    // 30 requests per 10 minutes: the run is throttled part-way with a Retry-After close to
    // 600 s; one request at a time, so one write is in flight when it comes.
    let mut cfg = EmulatorConfig::default();
    cfg.limits.requests_per_window = 30;
    cfg.limits.request_window_secs = 600.0;
    let rig = rig_with(cfg, "concurrency_per_mailbox = 1\n").await;
    let msgs = (0..MESSAGES).map(|i| (generated(i, 600), "S")).collect();
    write_maildir(&rig.tree("tom"), &[("", msgs)]);
    let insp = rig.emulator.inspect();

    let cancel = Cancel::default();
    let run_fut = run(&rig, cancel.clone(), Events::discard());
    tokio::pin!(run_fut);
    until(&mut run_fut, || insp.counters().throttled > 0).await;

    // First cancel: the write in flight waits out its pause; the run does not end in a minute.
    cancel.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), run_fut.as_mut())
            .await
            .is_err(),
        "the first cancel waits for the writes in flight"
    );
    let sent_before_abort = insp.requests().len();

    // Second cancel: back within virtual milliseconds, summary interrupted.
    let t0 = Instant::now();
    cancel.abort();
    let summary = tokio::time::timeout(Duration::from_millis(50), run_fut.as_mut())
        .await
        .expect("the abort ends the pause at once");
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert!(summary.interrupted, "{summary:?}");
    assert_eq!(summary.mailboxes.len(), 1);
    assert_eq!(summary.mailboxes[0].status, "interrupted");

    // The write that was waiting stays `sending`; nothing `done` is missing at the destination;
    // and nothing more reaches the emulator after the abort, however long we wait.
    let rows = ledger_rows(&rig);
    assert!(
        rows.iter().any(|(s, _)| s == "sending"),
        "the write in flight stays sending: {rows:?}"
    );
    done_rows_are_at_the_destination(&rig, &insp);
    tokio::time::sleep(Duration::from_secs(700)).await;
    assert_eq!(insp.requests().len(), sent_before_abort);
    let copied_before = distinct_items(&insp);
    assert!(copied_before < MESSAGES, "the run was cut short");

    // The next run completes the mailbox, every message exactly once.
    let next = run(&rig, Cancel::default(), Events::discard()).await;
    assert!(!next.has_failures(), "{:?}", next.mailboxes);
    assert_eq!(distinct_items(&insp), MESSAGES);
    done_rows_are_at_the_destination(&rig, &insp);
    assert!(ledger_rows(&rig).iter().all(|(s, _)| s == "done"));
}

/// A message whose attachment goes up in 4 chunks, each taking 30 s at the emulator.
async fn slow_upload_rig() -> Rig {
    let mut cfg = EmulatorConfig::default();
    cfg.limits.upload_bytes_per_window = 1 << 40;
    cfg.limits.upload_session_secs = 86_400.0;
    let rig = rig_with(cfg, "").await;
    let (raw, _) = with_attachment("big.bin", 14_000_000);
    write_maildir(&rig.tree("tom"), &[("", vec![(raw, "S")])]);
    let mut slow = FaultRule::new(Some("PUT"), "/upload/", FaultKind::Latency);
    slow.latency_ms = Some(30_000);
    rig.emulator.inspect().add_fault(slow);
    rig
}

fn chunks(insp: &Inspector) -> usize {
    insp.requests()
        .iter()
        .filter(|r| r.path.contains("/upload/"))
        .count()
}

#[tokio::test(start_paused = true)]
async fn an_upload_session_in_progress_is_abandoned_at_abort() {
    let rig = slow_upload_rig().await;
    let insp = rig.emulator.inspect();
    let cancel = Cancel::default();
    let run_fut = run(&rig, cancel.clone(), Events::discard());
    tokio::pin!(run_fut);
    until(&mut run_fut, || chunks(&insp) >= 1).await;
    let t0 = Instant::now();
    cancel.abort();
    let summary = tokio::time::timeout(Duration::from_millis(50), run_fut.as_mut())
        .await
        .expect("the abort ends the upload at once");
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert!(summary.interrupted);
    let at_abort = chunks(&insp);
    tokio::time::sleep(Duration::from_secs(600)).await;
    // The chunk in flight may still land (the server had it), but no further one is sent.
    assert!(chunks(&insp) <= at_abort + 1, "the session went on");
    assert!(chunks(&insp) < 4, "the whole attachment went up");
    let rows = ledger_rows(&rig);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "sending", "not confirmed, not done");

    insp.clear_faults();
    let next = run(&rig, Cancel::default(), Events::discard()).await;
    assert!(!next.has_failures(), "{:?}", next.mailboxes);
    assert_eq!(distinct_items(&insp), 1);
    let item = &live_items(&insp)[0];
    assert_eq!(item.attachments.len(), 1, "complete, with its attachment");
    done_rows_are_at_the_destination(&rig, &insp);
}

/// A `Write` the test can read while the progress display holds it.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 12.13: a progress line at least every 30 s even while one large message uploads, with
/// the bytes sent so far.
#[tokio::test(start_paused = true)]
async fn progress_lines_show_the_bytes_of_an_upload_in_flight() {
    use mailferry::report::progress::{Mode, show_to};
    let rig = slow_upload_rig().await;
    let insp = rig.emulator.inspect();
    let (events, rx) = Events::channel();
    let out = Shared::default();
    let shower = tokio::spawn(show_to(
        Mode::Plain {
            interval: Duration::from_secs(10),
        },
        rx,
        out.clone(),
    ));
    let summary = run(&rig, Cancel::default(), events).await;
    assert!(!summary.has_failures(), "{:?}", summary.mailboxes);
    shower.await.unwrap();
    assert_eq!(chunks(&insp), 4, "a multi-chunk upload");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let uploading: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tom@") && l.contains("uploading 1 message"))
        .collect();
    // Four 30 s chunks: lines every 10 s while they go up, the sent bytes rising.
    assert!(uploading.len() >= 8, "{text}");
    assert!(
        uploading.iter().any(|l| l.contains("0 B of 14.0 MB sent")),
        "{text}"
    );
    assert!(
        uploading
            .iter()
            .any(|l| l.contains("3.9 MB of 14.0 MB sent")),
        "{text}"
    );
    assert!(
        uploading
            .iter()
            .any(|l| l.contains("11.8 MB of 14.0 MB sent")),
        "{text}"
    );
}
