//! App-only auth against the emulator's token endpoint: certificates (PS256 and RS256), wrong
//! and expired secrets, access policies, other scopes.

use std::path::PathBuf;

use mailferry::emulator::AppConfig;
use mailferry::engine::ports::FailureClass;
use mailferry::sink::graph::{AssertionAlg, GraphApp, GraphCredential, GraphError, Route};

use super::*;

fn fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/graph")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credentials_work_with_both_algorithms() {
    let mut cfg = emulator_config();
    let mut cert_app = AppConfig::with_secret("cert-app", "unused");
    cert_app.client_secret = None;
    cert_app
        .add_certificate_pem(&std::fs::read_to_string(fixture("app-pkcs8.pem")).unwrap())
        .unwrap();
    cfg.apps.push(cert_app);
    let emu = emulator(cfg).await;
    for (file, alg) in [
        ("app-pkcs8.pem", AssertionAlg::Ps256),
        ("app-pkcs1.pem", AssertionAlg::Rs256),
    ] {
        let mut s = settings(&emu, Route::ImportMime);
        s.client_id = "cert-app".into();
        s.credential = GraphCredential::CertificatePem {
            cert_and_key_pem: fixture(file),
        };
        s.assertion_alg = alg;
        let app = GraphApp::new(s).unwrap();
        let mb = app.mailbox("cert@contoso.example");
        mb.check_access()
            .await
            .unwrap_or_else(|e| panic!("{file} {alg:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_expired_secret_is_fatal_with_an_actionable_message() {
    let mut cfg = emulator_config();
    let mut expired = AppConfig::with_secret("expired-app", "old");
    expired.secret_expired = true;
    cfg.apps.push(expired);
    let emu = emulator(cfg).await;

    let mut s = settings(&emu, Route::ImportMime);
    s.credential = GraphCredential::Secret("not-the-secret".into());
    let e = GraphApp::new(s).unwrap().token().await.unwrap_err();
    assert_eq!(e.class(), FailureClass::Fatal);
    let text = e.to_string();
    assert!(
        text.contains("AADSTS7000215") && text.contains("secret is wrong"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-secret"),
        "the secret never appears in errors"
    );

    let mut s = settings(&emu, Route::ImportMime);
    s.client_id = "expired-app".into();
    s.credential = GraphCredential::Secret("old".into());
    let e = GraphApp::new(s).unwrap().token().await.unwrap_err();
    assert!(
        matches!(&e, GraphError::Auth { aadsts, .. } if aadsts.contains(&7000222)),
        "{e}"
    );
    assert!(e.to_string().contains("expired"));

    let mut s = settings(&emu, Route::ImportMime);
    s.tenant = "nowhere.example".into();
    let e = GraphApp::new(s).unwrap().token().await.unwrap_err();
    assert_eq!(e.class(), FailureClass::Fatal, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_outside_the_access_policy_is_a_mailbox_failure() {
    let mut cfg = emulator_config();
    cfg.apps[0].allowed_mailboxes = Some(vec!["allowed@contoso.example".into()]);
    let emu = emulator(cfg).await;
    let app = app(&emu, Route::ImportMime);
    app.mailbox("allowed@contoso.example")
        .check_access()
        .await
        .unwrap();
    let e = app
        .mailbox("denied@contoso.example")
        .check_access()
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Mailbox, "{e}");
    assert_eq!(e.status(), Some(403));
    assert!(
        e.request_id().is_some(),
        "the request id is kept for support: {e}"
    );
    assert!(e.to_string().contains("Application Access Policy"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_per_scope() {
    let emu = emulator(emulator_config()).await;
    let app = app(&emu, Route::ImportMime);
    let a = app.token().await.unwrap();
    let b = app.token().await.unwrap();
    assert_eq!(a.expose(), b.expose());
    assert_eq!(app.tokens_fetched(), 1);

    // Another resource (Exchange IMAP for XOAUTH2) is another scope: its own token, one fetch,
    // then served from the cache like the Graph one. The emulator, like Entra, issues a token
    // for any `RESOURCE/.default` the app asks for.
    let exo = "https://outlook.office365.com/.default";
    let imap = app
        .token_for_scope(exo)
        .await
        .unwrap_or_else(|e| panic!("token for {exo}: {e}"));
    assert_ne!(imap.expose(), a.expose(), "one token per scope");
    assert_eq!(app.tokens_fetched(), 2);
    let again = app.token_for_scope(exo).await.unwrap();
    assert_eq!(again.expose(), imap.expose());
    assert_eq!(app.tokens_fetched(), 2);

    let mb = app.mailbox("cache@contoso.example");
    for _ in 0..5 {
        mb.check_access().await.unwrap();
    }
    assert_eq!(app.tokens_fetched(), 2, "no token fetch per request");
    let token_requests: Vec<String> = emu
        .inspect()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        token_requests.len(),
        2,
        "the endpoint saw one request per scope: {token_requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_without_import_permission_falls_back_to_json_for_the_run() {
    let mut cfg = emulator_config();
    cfg.apps[0].permissions = vec![mailferry::emulator::MAIL_READWRITE.to_owned()];
    let emu = emulator(cfg).await;
    let app = app(&emu, Route::ImportMime);
    let user = "noimport@contoso.example";
    let mb = app.mailbox(user);
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let none = Flags::default();
    for n in 1..=3 {
        let raw = simple_message(n);
        let id = identity(user, "INBOX", n as u32, &raw);
        let item = mb
            .write(
                &inbox,
                &outgoing(
                    &Body::from(raw.clone()),
                    &none,
                    &id,
                    message_id_of(&raw).as_deref(),
                ),
            )
            .await
            .unwrap();
        let view = emu.inspect().item(user, &item).unwrap();
        assert!(!view.is_draft && !view.has_raw_mime);
    }
    assert!(app.import_mime_refused());
    let imports = emu
        .inspect()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/importMime"))
        .count();
    assert_eq!(
        imports, 1,
        "the refusal is remembered: importMime tried once"
    );
    assert_eq!(
        emu.inspect().mailbox(user).unwrap().items_in("Inbox").len(),
        3
    );
    assert!(assert_requests_valid(&emu) > 0);
}
