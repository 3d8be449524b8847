//! App-only tokens: the OAuth 2.0 client-credentials grant against Entra ID's v2.0 endpoint.
//!
//! A small token client of our own rather than the `oauth2` crate, which would leave the token
//! cache, certificate assertions and Entra's `error_codes` to us anyway (docs/decisions.md). This
//! one reuses the app's reqwest client, builds certificate assertions
//! ([`super::jwt`]), caches one token per scope, renews it before it runs out (5 minutes early, or
//! half its lifetime when shorter), lets only one task fetch at a time per scope, and turns AADSTS
//! codes into actionable messages. See docs/decisions.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::time::Instant;

use super::error::{GraphError, explain_aadsts};
use super::jwt::CertificateSigner;
use super::retry::{RetryPolicy, backoff, parse_retry_after};
use crate::secret::Secret;

/// The credential in its ready-to-use form.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Secret(Secret<String>),
    Certificate(CertificateSigner),
}

#[derive(Clone)]
struct Cached {
    token: Secret<String>,
    renew_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Token client with a per-scope cache.
pub(crate) struct TokenClient {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    credential: Credential,
    policy: RetryPolicy,
    slots: Mutex<HashMap<String, Slot>>,
    /// Tokens fetched so far (for tests and the benchmark).
    fetched: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenOk {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenErr {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    trace_id: Option<String>,
}

/// How long before expiry a token is renewed.
fn renew_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 2)
}

impl TokenClient {
    pub(crate) fn new(
        client: reqwest::Client,
        endpoint: String,
        client_id: String,
        credential: Credential,
        policy: RetryPolicy,
    ) -> TokenClient {
        TokenClient {
            client,
            endpoint,
            client_id,
            credential,
            policy,
            slots: Mutex::new(HashMap::new()),
            fetched: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn slot(&self, scope: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(scope.to_owned()).or_default())
    }

    /// Number of tokens fetched from the endpoint so far.
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid token for `scope`, from the cache when it is not due for renewal.
    pub(crate) async fn token(&self, scope: &str) -> Result<Secret<String>, GraphError> {
        let slot = self.slot(scope);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(scope).await?;
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime - renew_margin(lifetime),
        });
        Ok(token)
    }

    /// Forgets `token` (Graph said it is no longer valid) so the next call fetches a new one.
    /// A token already replaced by another task is left alone.
    pub(crate) async fn invalidate(&self, scope: &str, token: &Secret<String>) {
        let slot = self.slot(scope);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == *token) {
            *cached = None;
        }
    }

    /// The form body of a token request (a fresh assertion each time). Built outside any await:
    /// the serializer is not `Send`.
    fn token_form(&self, scope: &str) -> Result<Secret<String>, GraphError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        form.append_pair("client_id", &self.client_id);
        form.append_pair("scope", scope);
        match &self.credential {
            Credential::Secret(s) => {
                form.append_pair("client_secret", s.expose());
            }
            Credential::Certificate(signer) => {
                let assertion = signer.assertion(&self.endpoint, &self.client_id)?;
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", assertion.expose());
            }
        }
        Ok(Secret::new(form.finish()))
    }

    async fn fetch(&self, scope: &str) -> Result<(Secret<String>, Duration), GraphError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let body = self.token_form(scope)?;
            let sent = self
                .client
                .post(&self.endpoint)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header("client-request-id", uuid::Uuid::new_v4().to_string())
                .body(body.expose().clone())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if attempt >= self.policy.max_attempts.min(5) {
                        return Err(GraphError::Unreachable {
                            op: "token request".into(),
                            mailbox: "-".into(),
                            reason: e.without_url().to_string(),
                            client_request_id: "-".into(),
                            attempts: attempt,
                        });
                    }
                    tracing::warn!(error = %e.without_url(), attempt, "token endpoint unreachable, retrying");
                    tokio::time::sleep(backoff(attempt, &self.policy)).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let bytes = resp.bytes().await.unwrap_or_default();
            if status == 200 {
                let ok: TokenOk =
                    serde_json::from_slice(&bytes).map_err(|e| GraphError::Protocol {
                        op: "token request".into(),
                        mailbox: "-".into(),
                        reason: format!("token response is not JSON with access_token: {e}"),
                        request_id: None,
                    })?;
                let secs = match ok.expires_in {
                    Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3599),
                    Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599),
                    _ => 3599,
                };
                self.fetched
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(scope, expires_in = secs, "access token obtained");
                return Ok((
                    Secret::new(ok.access_token),
                    Duration::from_secs(secs.max(1)),
                ));
            }
            let err: TokenErr = serde_json::from_slice(&bytes).unwrap_or_default();
            let retryable = status == 429
                || status >= 500
                || err.error == "temporarily_unavailable"
                || err.error_codes.contains(&90055);
            if retryable && attempt < self.policy.max_attempts.min(5) {
                let wait = retry_after
                    .unwrap_or_else(|| backoff(attempt, &self.policy))
                    .min(self.policy.max_retry_after);
                tracing::warn!(status, error = %err.error, attempt, wait_ms = wait.as_millis() as u64, "token endpoint busy, retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            let error = if err.error.is_empty() {
                format!("http_{status}")
            } else {
                err.error
            };
            return Err(GraphError::Auth {
                status,
                explanation: explain_aadsts(&error, &err.error_codes),
                error,
                aadsts: err.error_codes,
                trace_id: err.trace_id,
                retryable,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_early_but_not_immediate() {
        assert_eq!(
            renew_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renew_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }
}
