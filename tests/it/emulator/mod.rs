//! Graph emulator tests: every endpoint and error, throttling, faults, inspection. Each test
//! starts its own emulator on port 0 and talks to it with reqwest, as the Graph sink does.

mod auth;
mod batch_upload;
mod folders;
mod messages;
mod openapi_walk;
mod scale;
mod serve;
mod throttling;

use base64::Engine as _;
use mailferry::emulator::{EmulatorConfig, EmulatorHandle, start};
use reqwest::Method;
use serde_json::Value;

pub const MB: &str = "alice@contoso.example";

/// A corpus file, by path under tests/data.
pub fn corpus(rel: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {p}: {e}"))
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("reading the response body").to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        bytes,
        json,
    }
}

/// A running emulator, an HTTP client and a token of the default app.
pub struct Emu {
    pub h: EmulatorHandle,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn token_for(http: &reqwest::Client, h: &EmulatorHandle, id: &str, secret: &str) -> Resp {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    read(
        http.post(h.token_url())
            .form(&form)
            .send()
            .await
            .expect("token request"),
    )
    .await
}

impl Emu {
    pub async fn start(cfg: EmulatorConfig) -> Emu {
        Self::start_as(cfg, "mailferry-demo", "demo-secret").await
    }

    pub async fn start_as(cfg: EmulatorConfig, id: &str, secret: &str) -> Emu {
        let h = start(cfg).await.expect("emulator starts");
        // No idle timer: with a paused clock a pool timer would make time jump.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(None)
            .build()
            .expect("client");
        let t = token_for(&http, &h, id, secret).await;
        assert_eq!(t.status, 200, "{:?}", t.json);
        let token = t.json["access_token"].as_str().expect("token").to_owned();
        Emu { h, http, token }
    }

    pub async fn default() -> Emu {
        Self::start(EmulatorConfig::default()).await
    }

    /// `{base}{path}` when path starts with `/v1.0` or `/beta`, else `{base}/v1.0{path}`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else if path.starts_with("/v1.0") || path.starts_with("/beta") {
            format!("{}{path}", self.h.base_url())
        } else {
            format!("{}/v1.0{path}", self.h.base_url())
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Resp {
        read(self.req(Method::GET, path).send().await.expect("GET")).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        read(self.req(Method::DELETE, path).send().await.expect("DELETE")).await
    }

    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Resp {
        read(
            self.req(method, path)
                .json(body)
                .send()
                .await
                .expect("JSON request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::POST, path, body).await
    }

    pub async fn text(&self, path: &str, body: String) -> Resp {
        let r = self
            .req(Method::POST, path)
            .header("Content-Type", "text/plain")
            .body(body);
        read(r.send().await.expect("text request")).await
    }

    /// Creates a folder under msgfolderroot and returns its id.
    pub async fn folder(&self, name: &str) -> String {
        let r = self
            .post(
                &format!("/users/{MB}/mailFolders"),
                &serde_json::json!({"displayName": name}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json["id"].as_str().expect("folder id").to_owned()
    }

    /// importMime into a folder; returns the created item's JSON.
    pub async fn import(&self, folder: &str, raw: &[u8]) -> Value {
        let r = self
            .text(
                &format!("/beta/users/{MB}/mailFolders/{folder}/importMime"),
                b64(raw),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json
    }
}
