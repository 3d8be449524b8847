//! The Graph sink's error type and how each error maps onto the engine's [`FailureClass`].
//!
//! Every variant carries what an operator needs to act: the mailbox, the operation, the HTTP status
//! and Graph error code, and the `request-id` / `client-request-id` pair Microsoft support asks
//! for. Nothing here ever holds a secret: URLs are logged as paths without query strings, and the
//! upload-session URL is never logged at all.

use std::path::PathBuf;

use crate::engine::ports::FailureClass;

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The settings cannot work (bad URL, unsupported combination).
    #[error("graph configuration: {reason}")]
    Config { reason: String },

    /// The credential file cannot be used.
    #[error("graph credential {}: {reason}", path.display())]
    Credential { path: PathBuf, reason: String },

    /// The token endpoint refused us. `explanation` says what to fix.
    #[error("token request failed (HTTP {status}, {error}{}): {explanation}{}",
        codes_text(aadsts), trace_id.as_deref().map(|t| format!(" [trace id {t}]")).unwrap_or_default())]
    Auth {
        status: u16,
        /// The OAuth `error` field (`invalid_client`, ...).
        error: String,
        /// AADSTS numbers from `error_codes`.
        aadsts: Vec<u64>,
        explanation: String,
        trace_id: Option<String>,
        /// Worth retrying later (`temporarily_unavailable`, tenant throttling, 5xx).
        retryable: bool,
    },

    /// Graph answered with an error status.
    #[error("{0}")]
    Http(Box<HttpFailure>),

    /// The request never reached Graph (connection refused, DNS, TLS), retries exhausted.
    #[error(
        "{op} for {mailbox}: could not reach Graph: {reason} [client-request-id {client_request_id}] after {attempts} attempt(s)"
    )]
    Unreachable {
        op: String,
        mailbox: String,
        reason: String,
        client_request_id: String,
        attempts: u32,
    },

    /// A create was sent but its response was lost (timeout or connection reset after sending):
    /// the item may exist. Resolve by identity, never re-send blindly.
    #[error(
        "{op} for {mailbox}: response lost after the request was sent ({reason}); the item may exist [client-request-id {client_request_id}]"
    )]
    Ambiguous {
        op: String,
        mailbox: String,
        reason: String,
        client_request_id: String,
    },

    /// The message is refused before sending (too large, cannot be rebuilt for the JSON route).
    #[error("message rejected for {mailbox}: {reason}")]
    Rejected { mailbox: String, reason: String },

    /// Reading the message or writing a decoded attachment on this machine failed (a spool file
    /// in `$TMPDIR`: disk full, I/O error). Nothing was sent for it; worth trying again.
    #[error("{op} for {mailbox}: local file error: {reason}")]
    Local {
        op: String,
        mailbox: String,
        reason: String,
    },

    /// The destination asked this mailbox to wait longer than the longest wait allowed
    /// (`max_throttle_wait_secs`). Sending earlier would only earn a longer penalty, so the
    /// mailbox stops; the deadline is kept in the ledger for the next run.
    #[error(
        "{op} for {mailbox}: Graph asked this mailbox to wait {wait_secs} s before the next request, longer than max_throttle_wait_secs ({max_secs} s): the mailbox stops here, and a run after the wait continues it"
    )]
    Throttled {
        op: String,
        mailbox: String,
        wait_secs: u64,
        max_secs: u64,
    },

    /// Graph answered 2xx with a body we cannot use.
    #[error("{op} for {mailbox}: unexpected response: {reason}{}",
        request_id.as_deref().map(|r| format!(" [request-id {r}]")).unwrap_or_default())]
    Protocol {
        op: String,
        mailbox: String,
        reason: String,
        request_id: Option<String>,
    },
}

/// Details of an error response (boxed: errors travel through every `Result`).
#[derive(Debug)]
pub struct HttpFailure {
    pub op: String,
    pub mailbox: String,
    pub status: u16,
    /// Graph's error code (`ErrorFolderExists`, ...).
    pub code: Option<String>,
    pub message: Option<String>,
    pub hint: Option<&'static str>,
    pub request_id: Option<String>,
    pub client_request_id: String,
    pub attempts: u32,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} for {}: HTTP {}", self.op, self.mailbox, self.status)?;
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(h) = self.hint {
            write!(f, " ({h})")?;
        }
        write!(f, " [client-request-id {}", self.client_request_id)?;
        if let Some(r) = &self.request_id {
            write!(f, ", request-id {r}")?;
        }
        write!(f, "] after {} attempt(s)", self.attempts)
    }
}

fn codes_text(codes: &[u64]) -> String {
    if codes.is_empty() {
        String::new()
    } else {
        let v: Vec<String> = codes.iter().map(|c| format!("AADSTS{c}")).collect();
        format!(", {}", v.join(","))
    }
}

impl GraphError {
    /// What this failure means for the message and the mailbox.
    pub fn class(&self) -> FailureClass {
        match self {
            GraphError::Config { .. } | GraphError::Credential { .. } => FailureClass::Fatal,
            GraphError::Auth {
                retryable: true, ..
            } => FailureClass::Transient,
            GraphError::Auth { .. } => FailureClass::Fatal,
            GraphError::Http(h) => class_of_status(h.status, h.code.as_deref()),
            GraphError::Unreachable { .. }
            | GraphError::Protocol { .. }
            | GraphError::Local { .. } => FailureClass::Transient,
            GraphError::Ambiguous { .. } => FailureClass::Ambiguous,
            GraphError::Throttled { .. } => FailureClass::Mailbox,
            GraphError::Rejected { .. } => FailureClass::Rejected,
        }
    }

    /// Graph's `request-id` of the failed response, for support cases.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Http(h) => h.request_id.as_deref(),
            GraphError::Protocol { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, when Graph answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Http(h) => Some(h.status),
            GraphError::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The Graph error code (`ErrorFolderExists`, ...), when Graph answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Http(h) => h.code.as_deref(),
            _ => None,
        }
    }
}

/// Status and code to class. 401 after a token refresh means the app lost its permission.
pub(crate) fn class_of_status(status: u16, code: Option<&str>) -> FailureClass {
    match (status, code) {
        (401, _) => FailureClass::Fatal,
        (403, _) => FailureClass::Mailbox,
        (404, Some("MailboxNotEnabledForRESTAPI" | "ResourceNotFound" | "ErrorInvalidUser")) => {
            FailureClass::Mailbox
        }
        (507, _) => FailureClass::Mailbox,
        (408 | 429, _) | (500..=599, _) => FailureClass::Transient,
        _ => FailureClass::Rejected,
    }
}

/// A hint for the operator for well-known Graph failures.
pub(crate) fn hint_for(status: u16, code: Option<&str>) -> Option<&'static str> {
    Some(match (status, code) {
        (403, Some("ErrorAccessDenied")) => {
            "the app may not open this mailbox: check Mail.ReadWrite consent and any Application Access Policy or RBAC scope (changes can take an hour)"
        }
        (403, _) => "access denied: check the app's application permissions and admin consent",
        (404, Some("MailboxNotEnabledForRESTAPI")) => {
            "the mailbox has no Exchange Online licence, is on-premises, or is inactive"
        }
        (404, Some("ErrorInvalidUser" | "ResourceNotFound")) => "no such user in this tenant",
        (413, _) => "request too large for Graph",
        (507, _) => "mailbox quota is full",
        (401, _) => "token refused even after renewal: check the app's permissions",
        _ => return None,
    })
}

/// An actionable explanation of an Entra (AADSTS) failure. Branches on codes, never on text.
pub(crate) fn explain_aadsts(error: &str, codes: &[u64]) -> String {
    for c in codes {
        let s = match c {
            7000215 => "the client secret is wrong (use the secret's Value, not its ID)",
            7000222 => "the client secret has expired: create a new one in the app registration",
            700016 => {
                "the application is not known in this tenant: check the client id and tenant, and that an admin consented the app in this tenant"
            }
            90002 => {
                "the tenant was not found: check the tenant id or domain, and the cloud (global, usgov, china)"
            }
            90038 => "the tenant lives in another national cloud: set `cloud` accordingly",
            70011 => "the requested scope is invalid",
            700022 => "the request named more than one resource in its scope",
            50012 | 50013 => {
                "the certificate assertion was refused: check that this certificate is uploaded to the app registration and the assertion algorithm (ps256/rs256)"
            }
            500133 => {
                "the certificate assertion is outside its validity window: check this machine's clock"
            }
            7000112 => "the application is disabled in this tenant",
            90055 => "the tenant is throttling token requests: retry later",
            700027 => {
                "the certificate assertion's signature or thumbprint does not match a certificate registered on the app"
            }
            _ => continue,
        };
        return s.to_owned();
    }
    match error {
        "invalid_client" => "the client credential was refused".to_owned(),
        "unauthorized_client" => "the application is not authorised in this tenant".to_owned(),
        "invalid_scope" => "the requested scope is invalid".to_owned(),
        "temporarily_unavailable" => "Entra ID is temporarily unavailable: retry later".to_owned(),
        "invalid_request" => "the token request was malformed or the tenant is wrong".to_owned(),
        other => format!("the token endpoint answered `{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_contract() {
        assert_eq!(
            class_of_status(429, Some("ApplicationThrottled")),
            FailureClass::Transient
        );
        assert_eq!(
            class_of_status(403, Some("ErrorAccessDenied")),
            FailureClass::Mailbox
        );
        assert_eq!(
            class_of_status(404, Some("MailboxNotEnabledForRESTAPI")),
            FailureClass::Mailbox
        );
        assert_eq!(
            class_of_status(404, Some("ErrorItemNotFound")),
            FailureClass::Rejected
        );
        assert_eq!(class_of_status(413, None), FailureClass::Rejected);
        assert_eq!(class_of_status(507, None), FailureClass::Mailbox);
        assert_eq!(
            class_of_status(401, Some("InvalidAuthenticationToken")),
            FailureClass::Fatal
        );
    }

    #[test]
    fn aadsts_codes_win_over_error_text() {
        assert!(explain_aadsts("invalid_client", &[7000222]).contains("expired"));
        assert!(explain_aadsts("invalid_request", &[90038]).contains("cloud"));
        assert!(explain_aadsts("invalid_client", &[]).contains("refused"));
        let e = GraphError::Auth {
            status: 401,
            error: "invalid_client".into(),
            aadsts: vec![7000215],
            explanation: explain_aadsts("invalid_client", &[7000215]),
            trace_id: Some("t-1".into()),
            retryable: false,
        };
        let text = e.to_string();
        assert!(
            text.contains("AADSTS7000215")
                && text.contains("secret is wrong")
                && text.contains("t-1"),
            "{text}"
        );
        assert_eq!(e.class(), FailureClass::Fatal);
    }
}
