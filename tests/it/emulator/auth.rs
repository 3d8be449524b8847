//! Token endpoint (secret, Basic, certificate assertions) and Graph's 401/403/404.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mailferry::emulator::{AppConfig, EmulatorConfig, MAIL_READWRITE, start};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{Emu, MB, b64, read, token_for};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn secret_in_form_and_in_basic_auth_get_a_token() {
    let h = start(EmulatorConfig::default()).await.unwrap();
    let t = token_for(&http(), &h, "mailferry-demo", "demo-secret").await;
    assert_eq!(t.status, 200);
    assert_eq!(t.json["token_type"], "Bearer");
    assert_eq!(t.json["expires_in"], 3599);
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let r = http()
        .post(h.token_url())
        .basic_auth("mailferry-demo", Some("demo-secret"))
        .form(&form);
    let r = read(r.send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // The tenant GUID works as well as the domain.
    let by_id = h
        .token_url()
        .replace("contoso.example", &EmulatorConfig::default().tenant_id);
    let r = http()
        .post(by_id)
        .basic_auth("mailferry-demo", Some("demo-secret"))
        .form(&form);
    assert_eq!(read(r.send().await.unwrap()).await.status, 200);
}

async fn token_error(
    h: &mailferry::emulator::EmulatorHandle,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, String, u64) {
    let r = read(http().post(url).form(form).send().await.unwrap()).await;
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS"),
        "{:?}",
        r.json
    );
    assert!(
        r.json["trace_id"].is_string()
            && r.json["correlation_id"].is_string()
            && r.json["timestamp"].is_string()
    );
    let _ = h;
    (
        r.status,
        r.json["error"].as_str().unwrap_or("").to_owned(),
        r.json["error_codes"][0].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn token_errors_use_entra_codes() {
    let mut cfg = EmulatorConfig::default();
    let mut disabled = AppConfig::with_secret("off-app", "s");
    disabled.disabled = true;
    let mut expired = AppConfig::with_secret("old-app", "s");
    expired.secret_expired = true;
    cfg.apps.extend([disabled, expired]);
    let h = start(cfg).await.unwrap();
    let url = h.token_url();
    let scope = "https://graph.microsoft.com/.default";
    let f = |id: &'static str, secret: &'static str, scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ]
    };
    assert_eq!(
        token_error(&h, &url, &f("mailferry-demo", "wrong", scope)).await,
        (401, "invalid_client".into(), 7000215)
    );
    assert_eq!(
        token_error(&h, &url, &f("nobody", "x", scope)).await,
        (400, "unauthorized_client".into(), 700016)
    );
    assert_eq!(
        token_error(&h, &url, &f("off-app", "s", scope)).await,
        (400, "unauthorized_client".into(), 7000112)
    );
    assert_eq!(
        token_error(&h, &url, &f("old-app", "s", scope)).await,
        (401, "invalid_client".into(), 7000222)
    );
    assert_eq!(
        token_error(
            &h,
            &url,
            &f("mailferry-demo", "demo-secret", "Mail.ReadWrite")
        )
        .await,
        (400, "invalid_scope".into(), 70011)
    );
    assert_eq!(
        token_error(
            &h,
            &url,
            &f(
                "mailferry-demo",
                "demo-secret",
                "https://graph.microsoft.com/.default https://x/.default"
            )
        )
        .await,
        (400, "invalid_scope".into(), 700022)
    );
    let other_tenant = url.replace("contoso.example", "fabrikam.example");
    assert_eq!(
        token_error(
            &h,
            &other_tenant,
            &f("mailferry-demo", "demo-secret", scope)
        )
        .await
        .2,
        90002
    );
    let mut wrong_grant = f("mailferry-demo", "demo-secret", scope);
    wrong_grant[0] = ("grant_type", "password");
    assert_eq!(
        token_error(&h, &url, &wrong_grant).await.1,
        "unsupported_grant_type"
    );
}

/// A throwaway RSA certificate and key made with the openssl command line.
struct Cert {
    _dir: tempfile::TempDir,
    cert_pem: String,
    key_pem: Vec<u8>,
    der: Vec<u8>,
}

pub(super) fn make_cert(dir: &Path) -> (String, Vec<u8>) {
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mailferry-test",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (
        std::fs::read_to_string(dir.join("cert.pem")).unwrap(),
        std::fs::read(dir.join("key.pem")).unwrap(),
    )
}

fn cert() -> Cert {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = make_cert(dir.path());
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .unwrap()
        .to_vec();
    Cert {
        _dir: dir,
        cert_pem,
        key_pem,
        der,
    }
}

fn assertion(c: &Cert, alg: Algorithm, aud: &str, jti: &str, nbf_offset: i64) -> String {
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = Header::new(alg);
    if alg == Algorithm::PS256 {
        header.x5t_s256 = Some(b64u.encode(Sha256::digest(&c.der)));
    } else {
        header.x5t = Some(b64u.encode(Sha1::digest(&c.der)));
    }
    let now = chrono::Utc::now().timestamp() + nbf_offset;
    let claims = json!({"aud": aud, "iss": "cert-app", "sub": "cert-app", "jti": jti, "nbf": now, "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&c.key_pem).unwrap(),
    )
    .unwrap()
}

async fn post_assertion(url: &str, jwt: &str) -> super::Resp {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "cert-app"),
        ("scope", "https://graph.microsoft.com/.default"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt),
    ];
    read(http().post(url).form(&form).send().await.unwrap()).await
}

#[tokio::test]
async fn certificate_assertions_ps256_and_rs256_with_replay_and_time_checks() {
    let c = cert();
    let other = cert();
    let mut app = AppConfig::with_secret("cert-app", "unused");
    app.client_secret = None;
    app.add_certificate_pem(&c.cert_pem).unwrap();
    let mut cfg = EmulatorConfig::default();
    cfg.apps.push(app);
    let h = start(cfg).await.unwrap();
    let url = h.token_url();
    let ok = post_assertion(&url, &assertion(&c, Algorithm::PS256, &url, "j1", 0)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let ok = post_assertion(&url, &assertion(&c, Algorithm::RS256, &url, "j2", 0)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let replay = post_assertion(&url, &assertion(&c, Algorithm::PS256, &url, "j1", 0)).await;
    assert_eq!(
        (replay.status, replay.json["error_codes"][0].as_u64()),
        (401, Some(50013))
    );
    let early = post_assertion(&url, &assertion(&c, Algorithm::PS256, &url, "j3", 3600)).await;
    assert_eq!(early.json["error_codes"][0], 500133);
    let stale = post_assertion(&url, &assertion(&c, Algorithm::PS256, &url, "j4", -7200)).await;
    assert_eq!(stale.json["error_codes"][0], 500133);
    let wrong_aud = post_assertion(
        &url,
        &assertion(&c, Algorithm::PS256, "https://example.org/token", "j5", 0),
    )
    .await;
    assert_eq!(wrong_aud.json["error_codes"][0], 50012);
    let unknown_cert =
        post_assertion(&url, &assertion(&other, Algorithm::PS256, &url, "j6", 0)).await;
    assert_eq!(
        (unknown_cert.status, unknown_cert.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Right thumbprint, wrong key: the signature check fails.
    let mut forged = assertion(&other, Algorithm::PS256, &url, "j7", 0);
    let good_header = assertion(&c, Algorithm::PS256, &url, "j7", 0);
    let (h_good, _) = good_header.split_once('.').unwrap();
    let rest = forged.split_once('.').unwrap().1.to_owned();
    forged = format!("{h_good}.{rest}");
    let bad_sig = post_assertion(&url, &forged).await;
    assert_eq!(bad_sig.json["error_codes"][0], 50013);
}

#[tokio::test(start_paused = true)]
async fn expired_missing_and_bogus_tokens_are_401() {
    let cfg = EmulatorConfig {
        token_lifetime_secs: 60,
        ..Default::default()
    };
    let e = Emu::start(cfg).await;
    assert_eq!(e.get(&format!("/users/{MB}/mailFolders")).await.status, 200);
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    let r = e.get(&format!("/users/{MB}/mailFolders")).await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationToken"));
    let r = read(
        e.http
            .get(e.url(&format!("/users/{MB}/mailFolders")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationToken"));
    let r = read(
        e.http
            .get(e.url(&format!("/users/{MB}/mailFolders")))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn inspector_can_expire_tokens() {
    let e = Emu::default().await;
    e.h.inspect().expire_tokens();
    assert_eq!(e.get(&format!("/users/{MB}/mailFolders")).await.status, 401);
}

#[tokio::test]
async fn permissions_policy_and_unknown_mailboxes() {
    let mut cfg = EmulatorConfig::default();
    let mut limited = AppConfig::with_secret("limited", "s");
    limited.permissions = vec![MAIL_READWRITE.into()];
    limited.allowed_mailboxes = Some(vec![MB.into()]);
    cfg.apps.push(limited);
    cfg.create_mailboxes_on_first_use = false;
    cfg.mailboxes.push(mailferry::emulator::MailboxConfig {
        address: MB.into(),
        quota_bytes: None,
    });
    cfg.mailboxes.push(mailferry::emulator::MailboxConfig {
        address: "bob@contoso.example".into(),
        quota_bytes: None,
    });
    let e = Emu::start_as(cfg, "limited", "s").await;
    assert_eq!(e.get(&format!("/users/{MB}/mailFolders")).await.status, 200);
    let r = e.get("/users/bob@contoso.example/mailFolders").await;
    assert_eq!((r.status, r.code()), (403, "ErrorAccessDenied"));
    let r = e
        .text(
            &format!("/beta/users/{MB}/mailFolders/inbox/importMime"),
            b64(b"Subject: x\r\n\r\nx"),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "ErrorAccessDenied"),
        "importMime needs Mail-Advanced.ReadWrite.All"
    );
    // The default app has no policy: an unknown mailbox is not created when configured so.
    let cfg = EmulatorConfig {
        create_mailboxes_on_first_use: false,
        ..Default::default()
    };
    let e = Emu::start(cfg).await;
    let r = e.get("/users/ghost@contoso.example/mailFolders").await;
    assert_eq!((r.status, r.code()), (404, "MailboxNotEnabledForRESTAPI"));
    let r = e.get("/me/mailFolders").await;
    assert_eq!(r.status, 400);
}
