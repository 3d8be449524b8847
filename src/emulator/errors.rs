//! Errors: [`EmulatorError`] for the operator (config, bind, serve), and the Graph-shaped error
//! responses the emulator sends to clients ([`ApiError`]), kept apart so a client-visible error
//! never becomes a server failure.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// Why the emulator could not be configured or served.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The configuration is invalid.
    #[error("emulator config: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A non-loopback listen address without `--allow-remote`.
    #[error(
        "refusing to listen on {0}: not a loopback address (the emulator has no real security; pass --allow-remote to override)"
    )]
    NotLoopback(std::net::SocketAddr),
}

/// A Graph (or Entra) error answer, before it is given request ids and turned into a response.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Retry-After in real seconds (fractional allowed).
    pub retry_after: Option<f64>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "ErrorInvalidRequest", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            404,
            "ErrorItemNotFound",
            format!("The specified object was not found in the store. ({what})"),
        )
    }
    pub fn unreadable_body(detail: impl Into<String>) -> Self {
        Self::new(400, "UnableToDeserializePostBody", detail)
    }
    pub fn with_retry_after(mut self, secs: f64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The Graph error body with innerError ids.
    pub fn body(&self, request_id: &str, client_request_id: Option<&str>) -> Value {
        let mut inner = json!({
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": request_id,
        });
        if let Some(c) = client_request_id {
            inner["client-request-id"] = Value::String(c.to_owned());
        }
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

/// Formats Retry-After the way Graph does: integer seconds when whole, else up to 3 decimals.
pub(crate) fn retry_after_header(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).ceil() as u64;
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_fractional_only_when_needed() {
        assert_eq!(retry_after_header(2.0), "2");
        assert_eq!(retry_after_header(2.128), "2.128");
        assert_eq!(retry_after_header(0.5), "0.5");
        assert_eq!(retry_after_header(-1.0), "0");
    }

    #[test]
    fn error_body_has_graph_shape() {
        let e = ApiError::not_found("message");
        let b = e.body("rid", Some("cid"));
        assert_eq!(b["error"]["code"], "ErrorItemNotFound");
        assert_eq!(b["error"]["innerError"]["request-id"], "rid");
        assert_eq!(b["error"]["innerError"]["client-request-id"], "cid");
        assert!(b["error"]["innerError"]["date"].is_string());
    }
}
