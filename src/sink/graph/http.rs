//! The HTTP layer: every Graph request goes through [`Http::send`].
//!
//! One reqwest client (rustls, HTTP/2 when offered, timeouts) per app. Each attempt gets a fresh
//! `client-request-id`, `Prefer: IdType="ImmutableId"` (message ids survive moves) and a bearer
//! token, passes the governor (pacing, in-flight limits, pauses), and its outcome goes through the
//! pure [`decide`] policy. Failures are logged with the client-request-id and Graph's `request-id`;
//! URLs are logged as paths only, and upload-session URLs (which carry their own token) never.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;

use super::auth::TokenClient;
use super::deadline::Deadlines;
use super::error::{GraphError, HttpFailure, hint_for};
use super::governor::{Feedback, Governor};
use super::retry::{
    Attempt, Decision, Outcome, PauseScope, RetryPolicy, decide, parse_retry_after,
};
use crate::engine::ports::FailureClass;
use crate::secret::Secret;

/// Where a request goes.
pub(crate) enum Target<'a> {
    /// A Graph URL (absolute), authorised with the app's bearer token.
    Graph(String),
    /// An upload-session URL: carries its own token, gets no Authorization header, never logged.
    Upload(&'a Secret<String>),
}

/// One logical request (retried as the policy says).
pub(crate) struct Call<'a> {
    /// What this is, for logs and errors ("importMime", "create folder").
    pub op: &'a str,
    pub method: Method,
    pub target: Target<'a>,
    /// Body and its content type.
    pub body: Option<(Bytes, &'static str)>,
    /// Extra headers (Content-Range for upload chunks).
    pub headers: Vec<(&'static str, String)>,
    /// False for creates: a lost response is never re-sent.
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn get(op: &'a str, url: String) -> Call<'a> {
        Call {
            op,
            method: Method::GET,
            target: Target::Graph(url),
            body: None,
            headers: Vec::new(),
            idempotent: true,
        }
    }
    pub(crate) fn json(
        op: &'a str,
        method: Method,
        url: String,
        body: &serde_json::Value,
        idempotent: bool,
    ) -> Call<'a> {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        Call {
            op,
            method,
            target: Target::Graph(url),
            body: Some((bytes, "application/json")),
            headers: Vec::new(),
            idempotent,
        }
    }
}

/// A successful response.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: Bytes,
    pub request_id: Option<String>,
}

impl Resp {
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        op: &str,
        mailbox: &str,
    ) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::Protocol {
            op: op.to_owned(),
            mailbox: mailbox.to_owned(),
            reason: format!("response body does not parse: {e}"),
            request_id: self.request_id.clone(),
        })
    }
}

/// Graph's error body.
#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorInner,
}

#[derive(serde::Deserialize, Default)]
struct ErrorInner {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The app's HTTP machinery.
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) tokens: Arc<TokenClient>,
    pub(crate) scope: String,
    pub(crate) gov: Arc<Governor>,
    pub(crate) policy: RetryPolicy,
    /// Throttle deadlines kept beyond this process.
    pub(crate) deadlines: Deadlines,
    /// Asked right before each request is sent (fleet mode: is the mailbox's lease still held?).
    pub(crate) gate: std::sync::OnceLock<Arc<dyn super::SendGate>>,
    /// Graph base without version, e.g. `https://graph.microsoft.com`.
    pub(crate) base: String,
}

fn log_path(target: &Target<'_>) -> String {
    match target {
        Target::Graph(u) => match url::Url::parse(u) {
            Ok(u) => u.path().to_owned(),
            Err(_) => "<bad url>".to_owned(),
        },
        Target::Upload(_) => "<upload session>".to_owned(),
    }
}

impl Http {
    /// `{base}/v1.0{path}`.
    pub(crate) fn v1(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.base)
    }
    /// `{base}/beta{path}`.
    pub(crate) fn beta(&self, path: &str) -> String {
        format!("{}/beta{path}", self.base)
    }

    /// Sends `call` for `mailbox`, retrying as the policy says. Returns the 2xx response.
    pub(crate) async fn send(&self, mailbox: &str, call: Call<'_>) -> Result<Resp, GraphError> {
        let mut attempt = Attempt::default();
        let body_len = call.body.as_ref().map(|(b, _)| b.len() as u64).unwrap_or(0);
        loop {
            attempt.number += 1;
            if let Some(left) = self.deadlines.fresh(mailbox) {
                tracing::info!(
                    mailbox,
                    wait_s = left.as_secs_f64(),
                    "an earlier run or another process was asked to hold off this mailbox: waiting for the end of that pause"
                );
                self.gov.pause_mailbox(mailbox, left);
            }
            if let Some(left) = self.gov.paused_for(mailbox)
                && left > self.policy.max_retry_after
            {
                return Err(self.too_long(&call, mailbox, left));
            }
            let token = match call.target {
                Target::Graph(_) => Some(self.tokens.token(&self.scope).await?),
                Target::Upload(_) => None,
            };
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let mut permit = loop {
                let permit = tokio::select! {
                    p = self.gov.acquire(mailbox, body_len) => p,
                    left = self.gov.pause_longer_than(mailbox, self.policy.max_retry_after) => {
                        return Err(self.too_long(&call, mailbox, left));
                    }
                };
                // Another process may have been told to hold off while this one waited in the
                // governor: look again right before sending, and wait for that deadline too.
                let Some(left) = self.deadlines.fresh(mailbox) else {
                    // The last moment before the request leaves: a worker that lost its
                    // mailbox's lease (frozen past it) sends nothing more for it.
                    if let Some(gate) = self.gate.get()
                        && let Err(reason) = gate.may_send(mailbox)
                    {
                        return Err(self.internal(&call, mailbox, &reason));
                    }
                    break permit;
                };
                drop(permit);
                tracing::info!(
                    mailbox,
                    wait_s = left.as_secs_f64(),
                    "another process was asked to hold off this mailbox: waiting for the end of that pause"
                );
                if left > self.policy.max_retry_after {
                    return Err(self.too_long(&call, mailbox, left));
                }
                self.gov.pause_mailbox(mailbox, left);
            };
            let url = match &call.target {
                Target::Graph(u) => u.as_str(),
                Target::Upload(s) => s.expose().as_str(),
            };
            let mut rb = self
                .client
                .request(call.method.clone(), url)
                .header("client-request-id", &client_request_id)
                .header("return-client-request-id", "true");
            if let Some(t) = &token {
                rb = rb
                    .header(AUTHORIZATION, format!("Bearer {}", t.expose()))
                    .header("Prefer", "IdType=\"ImmutableId\"");
            }
            for (k, v) in &call.headers {
                rb = rb.header(*k, v);
            }
            if let Some((b, ct)) = &call.body {
                rb = rb.header(CONTENT_TYPE, *ct).body(b.clone());
            }
            let result = match rb.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r.headers().clone();
                    match r.bytes().await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err((false, e)),
                    }
                }
                Err(e) => Err((e.is_connect(), e)),
            };
            let (outcome, resp, transport) = match result {
                Ok((status, headers, body)) => {
                    let request_id = headers
                        .get("request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let err: Option<ErrorBody> = if status >= 400 {
                        Some(serde_json::from_slice(&body).unwrap_or_default())
                    } else {
                        None
                    };
                    let code = err.as_ref().and_then(|e| e.error.code.clone());
                    let retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    permit.set_feedback(match (status, code.as_deref()) {
                        (429, Some("ApplicationThrottled")) => Feedback::ConcurrencyThrottled,
                        (429, _) => Feedback::Throttled,
                        _ => Feedback::Ok,
                    });
                    let message = err.and_then(|e| e.error.message);
                    (
                        Outcome::Response {
                            status,
                            code: code.clone(),
                            retry_after,
                        },
                        Some((status, code, message, request_id, headers, body)),
                        None,
                    )
                }
                Err((not_sent, e)) => {
                    let outcome = if not_sent {
                        Outcome::NotSent
                    } else {
                        Outcome::Lost {
                            idempotent: call.idempotent,
                        }
                    };
                    // `without_url`: an upload URL must never reach a log or an error.
                    (outcome, None, Some(e.without_url().to_string()))
                }
            };
            drop(permit);
            match decide(attempt, &outcome, &self.policy) {
                Decision::Done => {
                    let Some((status, _, _, request_id, _, body)) = resp else {
                        return Err(self.internal(&call, mailbox, "success without a response"));
                    };
                    return Ok(Resp {
                        status,
                        body,
                        request_id,
                    });
                }
                Decision::RenewToken => {
                    if let Some(t) = &token {
                        tracing::info!(
                            op = call.op,
                            mailbox,
                            "access token refused (expired?): renewing"
                        );
                        self.tokens.invalidate(&self.scope, t).await;
                    }
                    attempt.token_renewals += 1;
                }
                Decision::Retry { after, scope } => {
                    tracing::debug!(
                        op = call.op, mailbox, path = %log_path(&call.target), ?outcome, %client_request_id,
                        wait_ms = after.as_millis() as u64, attempt = attempt.number, "retrying"
                    );
                    match scope {
                        PauseScope::Mailbox => {
                            // Recorded first: a process killed during the pause must not come
                            // back early after a restart.
                            self.deadlines.record(mailbox, after);
                            self.gov.pause_mailbox(mailbox, after);
                        }
                        PauseScope::Request => tokio::time::sleep(after).await,
                    }
                }
                Decision::TooLong(after) => {
                    self.deadlines.record(mailbox, after);
                    self.gov.pause_mailbox(mailbox, after);
                    return Err(self.too_long(&call, mailbox, after));
                }
                Decision::Fail(class) => {
                    let path = log_path(&call.target);
                    return Err(match (resp, transport) {
                        (Some((status, code, message, request_id, _, _)), _) => {
                            tracing::warn!(
                                op = call.op, mailbox, %path, status, code = code.as_deref().unwrap_or("-"),
                                request_id = request_id.as_deref().unwrap_or("-"), %client_request_id,
                                attempts = attempt.number, "graph request failed"
                            );
                            GraphError::Http(Box::new(HttpFailure {
                                op: call.op.to_owned(),
                                mailbox: mailbox.to_owned(),
                                status,
                                hint: hint_for(status, code.as_deref()),
                                code,
                                message,
                                request_id,
                                client_request_id,
                                attempts: attempt.number,
                            }))
                        }
                        (None, reason) => {
                            let reason = reason.unwrap_or_default();
                            tracing::warn!(op = call.op, mailbox, %path, %reason, %client_request_id, ?class, "graph request got no response");
                            if class == FailureClass::Ambiguous {
                                GraphError::Ambiguous {
                                    op: call.op.to_owned(),
                                    mailbox: mailbox.to_owned(),
                                    reason,
                                    client_request_id,
                                }
                            } else {
                                GraphError::Unreachable {
                                    op: call.op.to_owned(),
                                    mailbox: mailbox.to_owned(),
                                    reason,
                                    client_request_id,
                                    attempts: attempt.number,
                                }
                            }
                        }
                    });
                }
            }
        }
    }

    fn too_long(&self, call: &Call<'_>, mailbox: &str, wait: std::time::Duration) -> GraphError {
        tracing::warn!(
            op = call.op,
            mailbox,
            wait_s = wait.as_secs(),
            "throttled for longer than max_throttle_wait_secs: stopping the mailbox"
        );
        GraphError::Throttled {
            op: call.op.to_owned(),
            mailbox: mailbox.to_owned(),
            wait_secs: wait.as_secs_f64().ceil() as u64,
            max_secs: self.policy.max_retry_after.as_secs(),
        }
    }

    fn internal(&self, call: &Call<'_>, mailbox: &str, reason: &str) -> GraphError {
        GraphError::Protocol {
            op: call.op.to_owned(),
            mailbox: mailbox.to_owned(),
            reason: reason.to_owned(),
            request_id: None,
        }
    }

    /// GETs every page of a collection, following `@odata.nextLink` verbatim.
    pub(crate) async fn get_all(
        &self,
        mailbox: &str,
        op: &str,
        first: String,
    ) -> Result<Vec<serde_json::Value>, GraphError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let resp = self.send(mailbox, Call::get(op, url)).await?;
            let mut page: serde_json::Value = resp.json(op, mailbox)?;
            if let Some(serde_json::Value::Array(items)) =
                page.get_mut("value").map(serde_json::Value::take)
            {
                out.extend(items);
            }
            next = page
                .get("@odata.nextLink")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
        }
        Ok(out)
    }
}
