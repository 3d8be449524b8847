//! [`ImapError`]: every way an IMAP conversation can fail, with the context an operator needs
//! (host, user, folder, command; never a password or token) and a classification the engine uses
//! to decide between retrying, skipping and stopping.

use std::fmt;
use std::time::Duration;

/// Where an IMAP error happened. The command is a label chosen by the caller (for example
/// `UID FETCH 1:500`), never the literal wire text, so credentials cannot end up here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    pub host: String,
    pub user: String,
    pub folder: Option<String>,
    pub command: String,
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {}", self.host)?;
        if !self.user.is_empty() {
            write!(f, ", user {}", self.user)?;
        }
        if let Some(folder) = &self.folder {
            write!(f, ", folder {folder:?}")?;
        }
        if !self.command.is_empty() {
            write!(f, ", command {}", self.command)?;
        }
        Ok(())
    }
}

/// An IMAP failure. See the `is_*` methods for the classification. `Clone`, so one failure of a
/// batch can be reported for each of its items.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImapError {
    /// TCP connect failed (refused, unreachable, DNS).
    #[error("cannot connect ({ctx}): {source}")]
    Connect {
        ctx: Box<ErrorContext>,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// The TLS handshake or certificate verification failed, or the TLS settings are unusable.
    #[error("TLS failed ({ctx}): {reason}")]
    Tls {
        ctx: Box<ErrorContext>,
        reason: String,
    },
    /// The settings forbid this connection (plaintext to a non-loopback host, STARTTLS not offered).
    #[error("connection refused by policy ({ctx}): {reason}")]
    Policy {
        ctx: Box<ErrorContext>,
        reason: String,
    },
    /// The server rejected the credentials.
    #[error("login failed ({ctx}): {server}")]
    Auth {
        ctx: Box<ErrorContext>,
        server: String,
    },
    /// No answer within the configured timeout; the session was dropped.
    #[error("timed out after {after:?} ({ctx})")]
    Timeout {
        ctx: Box<ErrorContext>,
        after: Duration,
    },
    /// The connection broke (EOF, reset, BYE) in the middle of a command.
    #[error("connection lost ({ctx}): {reason}")]
    ConnectionLost {
        ctx: Box<ErrorContext>,
        reason: String,
    },
    /// The server answered NO (with its response code, if any, such as `TRYCREATE` or `OVERQUOTA`).
    #[error("server said NO ({ctx}): {code}{text}", code = code.as_deref().map(|c| format!("[{c}] ")).unwrap_or_default())]
    No {
        ctx: Box<ErrorContext>,
        code: Option<String>,
        text: String,
    },
    /// The server answered BAD: it did not understand the command.
    #[error("server said BAD ({ctx}): {text}")]
    Bad {
        ctx: Box<ErrorContext>,
        text: String,
    },
    /// The server's answer was unusable or inconsistent (unparseable response, missing
    /// UIDVALIDITY, fewer messages than EXISTS, a body shorter than its RFC822.SIZE, ...).
    #[error("protocol error ({ctx}): {detail}")]
    Protocol {
        ctx: Box<ErrorContext>,
        detail: String,
    },
}

impl ImapError {
    /// The context of the failure.
    pub fn context(&self) -> &ErrorContext {
        match self {
            ImapError::Connect { ctx, .. }
            | ImapError::Tls { ctx, .. }
            | ImapError::Policy { ctx, .. }
            | ImapError::Auth { ctx, .. }
            | ImapError::Timeout { ctx, .. }
            | ImapError::ConnectionLost { ctx, .. }
            | ImapError::No { ctx, .. }
            | ImapError::Bad { ctx, .. }
            | ImapError::Protocol { ctx, .. } => ctx,
        }
    }

    /// Adds the folder to the context (when the error arose below the folder level).
    pub fn in_folder(mut self, folder: &str) -> Self {
        let ctx = match &mut self {
            ImapError::Connect { ctx, .. }
            | ImapError::Tls { ctx, .. }
            | ImapError::Policy { ctx, .. }
            | ImapError::Auth { ctx, .. }
            | ImapError::Timeout { ctx, .. }
            | ImapError::ConnectionLost { ctx, .. }
            | ImapError::No { ctx, .. }
            | ImapError::Bad { ctx, .. }
            | ImapError::Protocol { ctx, .. } => ctx,
        };
        if ctx.folder.is_none() {
            ctx.folder = Some(folder.to_owned());
        }
        self
    }

    /// The credentials were refused: retrying will not help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, ImapError::Auth { .. })
    }

    /// TLS could not be established or the certificate did not verify.
    pub fn is_tls(&self) -> bool {
        matches!(self, ImapError::Tls { .. })
    }

    /// The server could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, ImapError::Connect { .. })
    }

    /// The server did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ImapError::Timeout { .. })
    }

    /// The session is gone (timeout, EOF, reset): reconnecting may help.
    pub fn is_connection_drop(&self) -> bool {
        matches!(
            self,
            ImapError::Timeout { .. } | ImapError::ConnectionLost { .. }
        )
    }

    /// The response code of a NO, if any (`TRYCREATE`, `OVERQUOTA`, `TOOBIG`, `LIMIT`, ...).
    pub fn response_code(&self) -> Option<&str> {
        match self {
            ImapError::No { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Worth trying again later: network trouble, a server that is temporarily unavailable, or an
    /// inconsistent answer (for example a folder changing while it was read).
    pub fn is_retryable(&self) -> bool {
        match self {
            ImapError::Connect { .. }
            | ImapError::Timeout { .. }
            | ImapError::ConnectionLost { .. }
            | ImapError::Protocol { .. } => true,
            ImapError::No { code, .. } => code.as_deref().is_some_and(|c| {
                let c = c.split(' ').next().unwrap_or("").to_ascii_uppercase();
                matches!(
                    c.as_str(),
                    "UNAVAILABLE" | "INUSE" | "SERVERBUG" | "LIMIT" | "EXPUNGEISSUED"
                )
            }),
            ImapError::Tls { .. }
            | ImapError::Policy { .. }
            | ImapError::Auth { .. }
            | ImapError::Bad { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_context_and_classification_holds() {
        let ctx = Box::new(ErrorContext {
            host: "imap.example".into(),
            user: "alice".into(),
            folder: Some("Sent".into()),
            command: "UID FETCH 1:10".into(),
        });
        let e = ImapError::No {
            ctx: ctx.clone(),
            code: Some("UNAVAILABLE".into()),
            text: "later".into(),
        };
        let text = e.to_string();
        assert!(text.contains("imap.example") && text.contains("alice") && text.contains("Sent"));
        assert!(text.contains("[UNAVAILABLE] later"), "{text}");
        assert!(e.is_retryable());
        let e = ImapError::No {
            ctx: ctx.clone(),
            code: Some("OVERQUOTA".into()),
            text: String::new(),
        };
        assert!(!e.is_retryable());
        let e = ImapError::Auth {
            ctx,
            server: "[AUTHENTICATIONFAILED] no".into(),
        };
        assert!(e.is_auth_failure() && !e.is_retryable());
    }
}
