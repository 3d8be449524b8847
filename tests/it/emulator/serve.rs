//! `serve` with a shutdown future, and config files with relative certificate paths.

use mailferry::emulator::{EmulatorConfig, serve};

use super::auth::make_cert;
use super::read;

#[tokio::test]
async fn serve_answers_until_its_shutdown_future_completes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, EmulatorConfig::default(), async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "mailferry-demo"),
        ("client_secret", "demo-secret"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("http://{addr}/contoso.example/oauth2/v2.0/token");
    assert_eq!(
        read(http.post(&url).form(&form).send().await.unwrap())
            .await
            .status,
        200
    );
    tx.send(()).unwrap();
    server.await.unwrap().expect("serve ends cleanly");
    assert!(
        http.post(&url).form(&form).send().await.is_err(),
        "no longer listening"
    );
}

#[test]
fn config_file_resolves_certificate_paths_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path());
    let path = dir.path().join("emulator.toml");
    std::fs::write(
        &path,
        "[[apps]]\nclient_id = \"cert-app\"\ncertificate_file = \"cert.pem\"\npermissions = [\"Mail.ReadWrite\"]\n",
    )
    .unwrap();
    let cfg = EmulatorConfig::from_file(&path).unwrap();
    assert_eq!(cfg.apps.len(), 1);
    assert_eq!(cfg.apps[0].certificates.len(), 1);
    assert!(cfg.apps[0].client_secret.is_none());
    std::fs::write(
        &path,
        "[[apps]]\nclient_id = \"x\"\ncertificate_file = \"missing.pem\"\n",
    )
    .unwrap();
    let err = EmulatorConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
}
