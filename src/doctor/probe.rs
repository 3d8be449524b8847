//! The route probes' raw material: the test message (three distinct dates, so the tenant's
//! choice of `receivedDateTime` can be read off), importMime sent exactly once with no fallback,
//! the item read back with the properties doctor reports, and the reading of a token's roles.
//!
//! A migration's write falls back from importMime to JSON when the tenant refuses it; a probe
//! must see the refusal itself, so importMime and the item read are sent here directly, with the
//! token of the same [`GraphApp`] the rest of doctor uses.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, FixedOffset, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::model::{ContentHash, Flags, SourceIdentity, Uid, UidValidity};
use crate::sink::graph::GraphApp;

/// Path-segment escaping (user principal names keep `@` and `.` readable).
const SEG: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'@')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEG).to_string()
}

/// Why a raw probe request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{op}: HTTP {status}{}{}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        request_id.as_deref().map(|r| format!(" [request-id {r}]")).unwrap_or_default())]
    Http {
        op: &'static str,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        request_id: Option<String>,
    },
    #[error("{op}: {reason}")]
    Transport { op: &'static str, reason: String },
    #[error("{op}: the token could not be fetched: {reason}")]
    Token { op: &'static str, reason: String },
}

impl ProbeError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ProbeError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The dates of the test message: all different, so the one the tenant picks is recognisable.
pub struct TestDates {
    /// The `Date:` header.
    pub date_header: DateTime<FixedOffset>,
    /// The topmost `Received:` header.
    pub received_header: DateTime<FixedOffset>,
    /// The INTERNALDATE a migration would ask for.
    pub internal_date: DateTime<FixedOffset>,
}

impl TestDates {
    pub fn fixed() -> TestDates {
        let p = |s: &str| DateTime::parse_from_rfc3339(s).unwrap_or_default();
        TestDates {
            date_header: p("2024-06-03T10:15:00+00:00"),
            received_header: p("2024-06-03T10:17:30+00:00"),
            internal_date: p("2024-06-03T10:20:00+00:00"),
        }
    }
}

/// One small test message for one route.
pub struct TestMessage {
    pub raw: Vec<u8>,
    pub message_id: String,
    pub dates: TestDates,
    /// The flags a migration would carry over: read and flagged.
    pub flags: Flags,
    pub identity: SourceIdentity,
}

impl TestMessage {
    /// `None` only for `uid` 0 (not a valid UID).
    pub fn new(route: &str, user: &str, token: &str, uid: u32) -> Option<TestMessage> {
        let dates = TestDates::fixed();
        let message_id = format!("<doctor.{token}.{route}@mailferry.invalid>");
        let raw = format!(
            "Received: from mx.mailferry.invalid by mail.mailferry.invalid; {}\r\n\
             From: mailferry doctor <doctor@mailferry.invalid>\r\n\
             To: <{user}>\r\n\
             Subject: mailferry doctor test message ({route}) {token}\r\n\
             Date: {}\r\n\
             Message-ID: {message_id}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             X-Mailferry-Doctor: {route}\r\n\
             \r\n\
             A test message written by `mailferry doctor` into a scratch folder it deletes.\r\n\
             Its Date, Received and INTERNALDATE differ on purpose.\r\n",
            dates.received_header.to_rfc2822(),
            dates.date_header.to_rfc2822(),
        )
        .into_bytes();
        let flags = Flags {
            seen: true,
            flagged: true,
            ..Flags::default()
        };
        let identity = SourceIdentity {
            mailbox: user.to_ascii_lowercase(),
            folder: "mailferry-doctor".into(),
            uid_validity: UidValidity::new(1)?,
            uid: Uid::new(uid)?,
            sha256: ContentHash::of(&raw),
        };
        Some(TestMessage {
            raw,
            message_id,
            dates,
            flags,
            identity,
        })
    }
}

/// A bare HTTP client for the raw probes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(std::time::Duration::from_secs(120))
        .user_agent(concat!("mailferry-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

async fn send(
    op: &'static str,
    req: reqwest::RequestBuilder,
    app: &GraphApp,
) -> Result<Value, ProbeError> {
    let token = app.token().await.map_err(|e| ProbeError::Token {
        op,
        reason: e.to_string(),
    })?;
    let resp = req
        .bearer_auth(token.expose())
        .header("client-request-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map_err(|e| ProbeError::Transport {
            op,
            reason: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let err = &body["error"];
    Err(ProbeError::Http {
        op,
        status,
        code: err["code"].as_str().map(str::to_owned),
        message: err["message"].as_str().map(str::to_owned),
        request_id,
    })
}

/// POSTs the message to beta importMime once; the created item's id.
pub async fn import_mime(
    http: &reqwest::Client,
    app: &GraphApp,
    user: &str,
    folder_id: &str,
    raw: &[u8],
) -> Result<String, ProbeError> {
    let url = format!(
        "{}/beta/users/{}/mailFolders/{}/importMime",
        app.settings().graph_base(),
        seg(user),
        seg(folder_id)
    );
    let req = http
        .post(url)
        .header("Content-Type", "text/plain")
        .body(STANDARD.encode(raw));
    let v = send("importMime", req, app).await?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or(ProbeError::Transport {
            op: "importMime",
            reason: "the answer carries no item id".into(),
        })
}

/// Creates a child folder once, with no lookup on a conflict: the probe must see the answer.
pub async fn create_child(
    http: &reqwest::Client,
    app: &GraphApp,
    user: &str,
    parent_id: &str,
    name: &str,
) -> Result<String, ProbeError> {
    let url = format!(
        "{}/v1.0/users/{}/mailFolders/{}/childFolders",
        app.settings().graph_base(),
        seg(user),
        seg(parent_id)
    );
    let req = http
        .post(url)
        .json(&serde_json::json!({"displayName": name, "isHidden": false}));
    let v = send("create folder", req, app).await?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or(ProbeError::Transport {
            op: "create folder",
            reason: "the answer carries no folder id".into(),
        })
}

/// The item's properties doctor reports.
pub async fn get_item(
    http: &reqwest::Client,
    app: &GraphApp,
    user: &str,
    item_id: &str,
) -> Result<Value, ProbeError> {
    let url = format!(
        "{}/v1.0/users/{}/messages/{}?$select=isDraft,isRead,flag,receivedDateTime,sentDateTime,internetMessageId",
        app.settings().graph_base(),
        seg(user),
        seg(item_id)
    );
    send("read the test item", http.get(url), app).await
}

/// The application permissions (`roles`) of a JWT access token; `None` when the token is
/// opaque (the emulator's) or unreadable. Only the payload is decoded: nothing is verified,
/// and nothing of the token is kept.
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some(
        v["roles"]
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

/// Which of the message's dates the tenant used for `receivedDateTime`.
pub fn received_source(
    got: DateTime<FixedOffset>,
    d: &TestDates,
    sent_at: DateTime<Utc>,
) -> &'static str {
    if got == d.internal_date {
        "the INTERNALDATE asked for (PR_MESSAGE_DELIVERY_TIME 0x0E06)"
    } else if got == d.received_header {
        "the topmost Received: header"
    } else if got == d.date_header {
        "the Date: header"
    } else if (got.with_timezone(&Utc) - sent_at).num_seconds().abs() < 600 {
        "the time of the import (the message's own dates are lost)"
    } else {
        "none of the message's dates"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_a_jwt_and_opaque_tokens_give_none() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"aud":"https://graph.microsoft.com","roles":["Mail.ReadWrite"]}"#);
        let jwt = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(token_roles(&jwt), Some(vec!["Mail.ReadWrite".to_owned()]));
        assert_eq!(token_roles("opaque-random-string"), None);
        let no_roles = URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#);
        assert_eq!(token_roles(&format!("a.{no_roles}.c")), None);
    }

    #[test]
    fn each_date_is_recognised() {
        let d = TestDates::fixed();
        let now = Utc::now();
        assert!(received_source(d.internal_date, &d, now).contains("INTERNALDATE"));
        assert!(received_source(d.received_header, &d, now).contains("Received"));
        assert!(received_source(d.date_header, &d, now).contains("Date:"));
        assert!(received_source(now.fixed_offset(), &d, now).contains("import"));
        let other = DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z").unwrap();
        assert!(received_source(other, &d, now).contains("none"));
    }

    #[test]
    fn the_test_message_carries_three_different_dates() {
        let m = TestMessage::new("json", "ann@contoso.example", "abc", 2).unwrap();
        assert!(TestMessage::new("json", "a@b", "abc", 0).is_none());
        let text = String::from_utf8(m.raw.clone()).unwrap();
        assert!(
            text.contains("Date: Mon, 3 Jun 2024 10:15:00 +0000"),
            "{text}"
        );
        assert!(
            text.contains("; Mon, 3 Jun 2024 10:17:30 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains(&m.message_id));
        assert_eq!(m.identity.uid.get(), 2);
        assert_eq!(m.identity.sha256, ContentHash::of(&m.raw));
    }
}
