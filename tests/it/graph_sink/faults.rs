//! Faults survived with no error and no duplicate: a 429 storm, 503s with and without
//! Retry-After, 504s, a token expiring mid-run, and responses lost after the server committed.

use std::collections::BTreeSet;

use futures::StreamExt;
use mailferry::emulator::{ConcurrencyScope, FaultKind, FaultRule, Latency};
use mailferry::engine::ports::FailureClass;
use mailferry::sink::graph::{GraphApp, Route};

use super::*;

/// Writes `n` simple messages to the inbox of `user`, 8 at a time; returns the item ids.
async fn write_many(
    app: &GraphApp,
    user: &str,
    n: usize,
    on_half: impl Fn() + Send + Sync,
) -> Vec<String> {
    let mb = app.mailbox(user);
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let ids: Vec<String> = futures::stream::iter(1..=n)
        .map(|i| {
            let mb = mb.clone();
            let inbox = inbox.clone();
            let done = &done;
            let on_half = &on_half;
            async move {
                let raw = simple_message(i);
                let flags = flags_for(i);
                let id = identity(user, "INBOX", i as u32, &raw);
                let r = mb
                    .write(
                        &inbox,
                        &outgoing(
                            &Body::from(raw.clone()),
                            &flags,
                            &id,
                            message_id_of(&raw).as_deref(),
                        ),
                    )
                    .await;
                if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n / 2 {
                    on_half();
                }
                r.unwrap_or_else(|e| panic!("{user} message {i}: {e}"))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    ids
}

fn assert_exactly_once(
    emu: &mailferry::emulator::EmulatorHandle,
    user: &str,
    ids: &[String],
    n: usize,
) {
    let view = emu.inspect().mailbox(user).unwrap();
    let items = view.items_in("Inbox");
    assert_eq!(items.len(), n, "{user}: one item per message, no duplicate");
    let stored: BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let returned: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        stored, returned,
        "{user}: the ids returned are the items stored"
    );
    let subjects: BTreeSet<&str> = items.iter().filter_map(|i| i.subject.as_deref()).collect();
    assert_eq!(subjects.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_429s_503s_504s_and_token_expiry_no_error_no_duplicate() {
    let mut cfg = emulator_config();
    // Concurrency limit per app: four mailboxes at 4 in flight each run into it at once.
    cfg.limits.concurrency_scope = ConcurrencyScope::App;
    // 20-30 ms per request (service time divided by the scale), so requests overlap.
    cfg.latency = Latency {
        fixed_ms: 20_000,
        jitter_ms: 10_000,
    };
    let mut r503 = FaultRule::new(Some("POST"), "/importMime", FaultKind::ServiceUnavailable);
    r503.probability = Some(0.1);
    r503.retry_after = Some(2.0);
    let mut r503_bare = FaultRule::new(Some("PATCH"), "/messages/", FaultKind::ServiceUnavailable);
    r503_bare.probability = Some(0.1);
    let r504 = FaultRule::new(Some("GET"), "/mailFolders", FaultKind::GatewayTimeout).times(2);
    cfg.faults = vec![r503, r503_bare, r504];
    let emu = emulator(cfg).await;
    let mut s = settings(&emu, Route::ImportMime);
    s.governor.backoff_min = std::time::Duration::from_millis(5);
    s.governor.backoff_max = std::time::Duration::from_millis(100);
    let app = GraphApp::new(s).unwrap();
    let insp = emu.inspect();
    let users: Vec<String> = (0..4)
        .map(|i| format!("storm{i}@contoso.example"))
        .collect();
    let n = 40;
    let results = futures::future::join_all(users.iter().map(|u| {
        let app = app.clone();
        let insp = &insp;
        async move { write_many(&app, u, n, || insp.expire_tokens()).await }
    }))
    .await;
    for (u, ids) in users.iter().zip(&results) {
        assert_exactly_once(&emu, u, ids, n);
    }
    let c = insp.counters();
    assert!(c.throttled > 0, "the storm happened: {c:?}");
    let kinds: BTreeSet<(String, String)> = insp
        .fault_log()
        .iter()
        .map(|f| (format!("{:?}", f.kind), f.method.clone()))
        .collect();
    assert_eq!(
        kinds.len(),
        3,
        "503 with Retry-After, 503 without, 504 all fired: {kinds:?}"
    );
    assert!(
        app.tokens_fetched() >= 2,
        "the token was renewed after it expired mid-run"
    );
    let snap = app.governor_snapshot();
    assert!(
        snap[0].in_flight_limit < 64,
        "the app limit adapted to the per-app concurrency limit: {snap:?}"
    );
    assert!(assert_requests_valid(&emu) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_after_commit_create_no_duplicate() {
    let emu = emulator(emulator_config()).await;
    let insp = emu.inspect();
    insp.add_fault(FaultRule::new(Some("POST"), "/importMime", FaultKind::LostResponse).times(2));
    let app_mime = app(&emu, Route::ImportMime);
    let user = "lost-mime@contoso.example";
    let ids = write_many(&app_mime, user, 6, || {}).await;
    assert_exactly_once(&emu, user, &ids, 6);
    assert_eq!(insp.fault_log().len(), 2, "both lost responses happened");
    for id in &ids {
        let item = insp.item(user, id).unwrap();
        assert!(
            item.extended_properties
                .iter()
                .any(|(k, _)| k.contains("MailferryIdentity")),
            "resolved items get stamped"
        );
    }

    insp.add_fault(FaultRule::new(Some("POST"), "/messages", FaultKind::LostResponse).times(2));
    let app_json = app(&emu, Route::Json);
    let user = "lost-json@contoso.example";
    let ids = write_many(&app_json, user, 6, || {}).await;
    assert_exactly_once(&emu, user, &ids, 6);
    assert_eq!(insp.fault_log().len(), 4);

    // an attachment POST whose response is lost is not added twice
    insp.add_fault(FaultRule::new(Some("POST"), "/attachments", FaultKind::LostResponse).times(1));
    let raw = b"From: a@example.org\r\nSubject: att\r\nMessage-ID: <att@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
Content-Type: application/octet-stream; name=a.bin\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nxyz\r\n--b--\r\n";
    let mb = app_json.mailbox(user);
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let none = Flags::default();
    let id = identity(user, "INBOX", 99, raw);
    let item = mb
        .write(
            &inbox,
            &outgoing(
                &Body::from(raw.to_vec()),
                &none,
                &id,
                Some("<att@example.org>"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(insp.item(user, &item).unwrap().attachments.len(), 1);
    assert_eq!(insp.fault_log().len(), 5);
    assert!(assert_requests_valid(&emu) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_commit_is_ambiguous_and_leaves_nothing() {
    let emu = emulator(emulator_config()).await;
    let insp = emu.inspect();
    let app = app(&emu, Route::Json);
    let user = "reset@contoso.example";
    let mb = app.mailbox(user);
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    insp.add_fault(FaultRule::new(Some("POST"), "/messages", FaultKind::Reset).times(1));
    let raw = simple_message(1);
    let none = Flags::default();
    let id = identity(user, "INBOX", 1, &raw);
    let e = mb
        .write(
            &inbox,
            &outgoing(
                &Body::from(raw.clone()),
                &none,
                &id,
                Some("<m1.test@example.org>"),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Ambiguous, "{e}");
    // the engine's resolution: nothing carries the stamp, so writing again is safe
    assert!(mb.find_by_stamp(&inbox, &id).await.unwrap().is_empty());
    mb.write(
        &inbox,
        &outgoing(
            &Body::from(raw.clone()),
            &none,
            &id,
            Some("<m1.test@example.org>"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(mb.find_by_stamp(&inbox, &id).await.unwrap().len(), 1);
    let found = mb
        .find_by_message_id(&inbox, "<m1.test@example.org>")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].stamp.as_ref(), Some(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_is_rejected_with_a_reason() {
    let emu = emulator(emulator_config()).await;
    let mut s = settings(&emu, Route::ImportMime);
    s.max_message_bytes = 1000;
    let app = GraphApp::new(s).unwrap();
    let mb = app.mailbox("small@contoso.example");
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let mut raw = simple_message(1);
    raw.extend(std::iter::repeat_n(b'x', 3000));
    let none = Flags::default();
    let id = identity("small@contoso.example", "INBOX", 1, &raw);
    let e = mb
        .write(
            &inbox,
            &outgoing(&Body::from(raw.clone()), &none, &id, None),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Rejected);
    assert!(
        e.to_string().contains("over the destination's limit"),
        "{e}"
    );
}
