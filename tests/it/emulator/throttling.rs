//! Throttling (concurrency, request and upload budgets on paused, scaled time), size and quota
//! limits, and injected faults (lost responses, resets, 503/504).

use std::time::Duration;

use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule, MailboxConfig};
use serde_json::json;

use super::{Emu, MB, b64, read};

#[tokio::test]
async fn fifth_concurrent_request_gets_429_with_retry_after() {
    let mut cfg = EmulatorConfig::default();
    // Requests hold their slot for a minute: long enough to stay in flight during the test.
    cfg.latency.fixed_ms = 60_000;
    let e = Emu::start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let r = e.req(
            reqwest::Method::GET,
            &format!("/users/{MB}/mailFolders/inbox"),
        );
        held.push(tokio::spawn(r.send()));
    }
    e.h.inspect().wait_in_flight(4).await;
    let r = e.get(&format!("/users/{MB}/mailFolders/inbox")).await;
    assert_eq!((r.status, r.code()), (429, "ApplicationThrottled"));
    let wait: f64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait > 0.0);
    assert_eq!(e.h.inspect().counters().mailboxes[MB].throttled, 1);
    // Another mailbox has its own four slots (default scope: app + mailbox).
    let r = e.req(
        reqwest::Method::GET,
        "/users/bob@contoso.example/mailFolders/inbox",
    );
    held.push(tokio::spawn(r.send()));
    e.h.inspect().wait_in_flight(5).await;
    for h in held {
        h.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn the_10001st_request_in_the_window_is_throttled_and_the_window_recovers() {
    // The 10-minute window lasts 10 real seconds.
    let cfg = EmulatorConfig {
        time_scale: 60.0,
        ..Default::default()
    };
    let e = Emu::start(cfg).await;
    let url = format!("/users/{MB}/mailFolders/inbox");
    for i in 0..10_000 {
        let r = e.req(reqwest::Method::GET, &url).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {}", i + 1);
    }
    let r = e.get(&url).await;
    assert_eq!((r.status, r.code()), (429, "ApplicationThrottled"));
    let wait: f64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 9.0 && wait <= 10.0, "{wait}");
    // Coming back early is throttled again, for longer.
    tokio::time::advance(Duration::from_secs(1)).await;
    let early = e.get(&url).await;
    assert_eq!(early.status, 429);
    let longer: f64 = early.header("retry-after").unwrap().parse().unwrap();
    assert!(longer > wait, "{longer} vs {wait}");
    tokio::time::advance(Duration::from_secs_f64(longer + 0.01)).await;
    let r = e.get(&url).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let c = e.h.inspect().counters();
    assert_eq!(c.mailboxes[MB].requests, 10_003);
    assert_eq!(c.mailboxes[MB].throttled, 2);
}

#[tokio::test]
async fn upload_budget_body_limit_quota_and_item_size() {
    let mut cfg = EmulatorConfig::default();
    cfg.limits.upload_bytes_per_window = 3000;
    cfg.limits.request_body_bytes = 2500;
    cfg.limits.max_message_bytes = 1200;
    cfg.mailboxes.push(MailboxConfig {
        address: "small@contoso.example".into(),
        quota_bytes: Some(1500),
    });
    let e = Emu::start(cfg).await;
    let msg = |n: usize| format!("Subject: s\r\n\r\n{}\r\n", "x".repeat(n)).into_bytes();
    let url = |mb: &str| format!("/beta/users/{mb}/mailFolders/inbox/importMime");
    // 1,364 + 1,364 bytes of base64 fit in 3,000; the third upload does not.
    for _ in 0..2 {
        assert_eq!(e.text(&url(MB), b64(&msg(1000))).await.status, 201);
    }
    let r = e.text(&url(MB), b64(&msg(1000))).await;
    assert_eq!((r.status, r.code()), (429, "ApplicationThrottled"));
    assert!(r.header("retry-after").is_some());
    let r = e.text(&url("big@contoso.example"), b64(&msg(1300))).await;
    assert_eq!((r.status, r.code()), (413, "ErrorMessageSizeExceeded"));
    let r = e.text(&url("big@contoso.example"), b64(&msg(3000))).await;
    assert_eq!((r.status, r.code()), (413, "RequestEntityTooLarge"));
    let r = e.text(&url("small@contoso.example"), b64(&msg(1000))).await;
    assert_eq!(r.status, 201);
    let r = e.text(&url("small@contoso.example"), b64(&msg(1000))).await;
    assert_eq!((r.status, r.code()), (507, "ErrorQuotaExceeded"));
    let c = e.h.inspect().counters();
    assert_eq!(
        c.mailboxes[MB].bytes_uploaded,
        2 * b64(&msg(1000)).len() as u64
    );
}

#[tokio::test]
async fn lost_response_after_commit_leaves_the_item_stored() {
    let e = Emu::default().await;
    e.h.inspect().add_fault(
        FaultRule::new(
            Some("POST"),
            "/mailFolders/inbox/messages",
            FaultKind::LostResponse,
        )
        .times(1),
    );
    let body = json!({"subject": "once", "internetMessageId": "<once@x>"});
    let err = e
        .req(
            reqwest::Method::POST,
            &format!("/users/{MB}/mailFolders/inbox/messages"),
        )
        .json(&body)
        .send()
        .await
        .expect_err("the response is lost");
    assert!(
        !err.is_status(),
        "a transport error, not an HTTP status: {err}"
    );
    let view = e.h.inspect().mailbox(MB).unwrap();
    assert_eq!(view.items_in("Inbox").len(), 1, "the handler committed");
    let log = e.h.inspect().fault_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, FaultKind::LostResponse);
    // A blind retry duplicates; that is what the client must avoid.
    let r = e
        .post(&format!("/users/{MB}/mailFolders/inbox/messages"), &body)
        .await;
    assert_eq!(r.status, 201);
    let r = e
        .get(&format!(
            "/users/{MB}/messages?$filter=internetMessageId eq '<once@x>'"
        ))
        .await;
    assert_eq!(r.json["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn reset_stores_nothing_and_503_504_answer_with_status() {
    let mut cfg = EmulatorConfig::default();
    let mut unavailable = FaultRule::new(
        Some("GET"),
        "/mailFolders/drafts",
        FaultKind::ServiceUnavailable,
    )
    .times(1);
    unavailable.retry_after = Some(2.5);
    cfg.faults = vec![
        FaultRule::new(None, "/importMime", FaultKind::Reset).times(1),
        unavailable,
        FaultRule::new(
            Some("GET"),
            "/mailFolders/sentitems",
            FaultKind::GatewayTimeout,
        )
        .times(1),
    ];
    let e = Emu::start(cfg).await;
    let r = e
        .req(
            reqwest::Method::POST,
            &format!("/beta/users/{MB}/mailFolders/inbox/importMime"),
        )
        .header("Content-Type", "text/plain")
        .body(b64(b"Subject: r\r\n\r\nx"))
        .send()
        .await;
    assert!(r.is_err(), "connection reset");
    assert!(e.h.inspect().mailbox(MB).is_none_or(|m| m.items.is_empty()));
    let r = e.get(&format!("/users/{MB}/mailFolders/drafts")).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("2.5")));
    assert_eq!(
        e.get(&format!("/users/{MB}/mailFolders/drafts"))
            .await
            .status,
        200,
        "count 1"
    );
    assert_eq!(
        e.get(&format!("/users/{MB}/mailFolders/sentitems"))
            .await
            .status,
        504
    );
    assert_eq!(e.h.inspect().fault_log().len(), 3);
}

#[tokio::test]
async fn inspection_over_http_and_reset() {
    let e = Emu::default().await;
    e.import("inbox", b"Subject: i\r\nMessage-ID: <i@x>\r\n\r\nx\r\n")
        .await;
    let base = e.h.base_url();
    let r = read(
        e.http
            .get(format!("{base}/_emulator/mailboxes/{MB}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap();
    let raw = read(
        e.http
            .get(format!("{base}/_emulator/mailboxes/{MB}/items/{id}/mime"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(raw.bytes, b"Subject: i\r\nMessage-ID: <i@x>\r\n\r\nx\r\n");
    let c = read(
        e.http
            .get(format!("{base}/_emulator/counters"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(c.json["requests"].as_u64().unwrap() >= 2);
    let reqs = read(
        e.http
            .get(format!("{base}/_emulator/requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        reqs.json
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("/importMime"))
    );
    let add = e
        .http
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"kind": "504", "path_contains": "/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), 204);
    assert_eq!(e.h.inspect().fault_rules().len(), 1);
    assert_eq!(
        e.http
            .post(format!("{base}/_emulator/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(e.h.inspect().mailboxes().is_empty());
    assert_eq!(e.h.inspect().counters().requests, 0);
}
