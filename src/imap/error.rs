//! [`ImapError`]: every way an IMAP conversation can fail, with the context an operator needs
//! (host, user, folder, command; never a password or token) and a classification the engine uses
//! to decide between retrying, skipping and stopping.
//!
//! Shaped like `std::io::Error`: a struct holding the [`ErrorContext`] once and an [`ErrorKind`]
//! saying what went wrong, so adding context (`in_folder`) or reading it needs no match over
//! every kind. Sites that branch on the failure match on [`ImapError::kind`].

use std::fmt;
use std::sync::Arc;
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

/// What went wrong. Not `#[non_exhaustive]`: the crate's own matches (the sink's
/// classification, the doctor's advice) are meant to stop compiling when a kind is added.
#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// TCP connect failed (refused, unreachable, DNS). In an `Arc` so the error stays `Clone`.
    Connect(Arc<std::io::Error>),
    /// The TLS handshake or certificate verification failed, or the TLS settings are unusable.
    Tls { reason: String },
    /// The settings forbid this connection (plaintext to a non-loopback host, STARTTLS not offered).
    Policy { reason: String },
    /// The server rejected the credentials.
    Auth { server: String },
    /// No answer within the configured timeout; the session was dropped.
    Timeout { after: Duration },
    /// The connection broke (EOF, reset, BYE) in the middle of a command.
    ConnectionLost { reason: String },
    /// The server answered NO (with its response code, if any, such as `TRYCREATE` or `OVERQUOTA`).
    No { code: Option<String>, text: String },
    /// The server answered BAD: it did not understand the command.
    Bad { text: String },
    /// The server's answer was unusable or inconsistent (unparseable response, missing
    /// UIDVALIDITY, fewer messages than EXISTS, a body shorter than its RFC822.SIZE, ...).
    Protocol { detail: String },
}

/// An IMAP failure: its context and its [`ErrorKind`]. See the `is_*` methods for the
/// classification. `Clone`, so one failure of a batch can be reported for each of its items.
#[derive(Debug, Clone)]
pub struct ImapError {
    ctx: Box<ErrorContext>,
    kind: ErrorKind,
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = &self.ctx;
        match &self.kind {
            ErrorKind::Connect(source) => write!(f, "cannot connect ({ctx}): {source}"),
            ErrorKind::Tls { reason } => write!(f, "TLS failed ({ctx}): {reason}"),
            ErrorKind::Policy { reason } => {
                write!(f, "connection refused by policy ({ctx}): {reason}")
            }
            ErrorKind::Auth { server } => write!(f, "login failed ({ctx}): {server}"),
            ErrorKind::Timeout { after } => write!(f, "timed out after {after:?} ({ctx})"),
            ErrorKind::ConnectionLost { reason } => write!(f, "connection lost ({ctx}): {reason}"),
            ErrorKind::No { code, text } => {
                write!(f, "server said NO ({ctx}): ")?;
                if let Some(code) = code {
                    write!(f, "[{code}] ")?;
                }
                f.write_str(text)
            }
            ErrorKind::Bad { text } => write!(f, "server said BAD ({ctx}): {text}"),
            ErrorKind::Protocol { detail } => write!(f, "protocol error ({ctx}): {detail}"),
        }
    }
}

impl std::error::Error for ImapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Connect(source) => Some(&**source),
            _ => None,
        }
    }
}

impl ImapError {
    /// A failure of `kind` at `ctx`.
    pub fn new(ctx: Box<ErrorContext>, kind: ErrorKind) -> Self {
        ImapError { ctx, kind }
    }

    /// The server's answer was unusable or inconsistent ([`ErrorKind::Protocol`]).
    pub fn protocol(ctx: Box<ErrorContext>, detail: impl Into<String>) -> Self {
        Self::new(
            ctx,
            ErrorKind::Protocol {
                detail: detail.into(),
            },
        )
    }

    /// The settings forbid this connection or operation ([`ErrorKind::Policy`]).
    pub fn policy(ctx: Box<ErrorContext>, reason: impl Into<String>) -> Self {
        Self::new(
            ctx,
            ErrorKind::Policy {
                reason: reason.into(),
            },
        )
    }

    /// The connection broke in the middle of a command ([`ErrorKind::ConnectionLost`]).
    pub fn connection_lost(ctx: Box<ErrorContext>, reason: impl Into<String>) -> Self {
        Self::new(
            ctx,
            ErrorKind::ConnectionLost {
                reason: reason.into(),
            },
        )
    }

    /// No answer within `after` ([`ErrorKind::Timeout`]).
    pub fn timeout(ctx: Box<ErrorContext>, after: Duration) -> Self {
        Self::new(ctx, ErrorKind::Timeout { after })
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The context of the failure.
    pub fn context(&self) -> &ErrorContext {
        &self.ctx
    }

    /// Adds the folder to the context (when the error arose below the folder level).
    pub fn in_folder(mut self, folder: &str) -> Self {
        if self.ctx.folder.is_none() {
            self.ctx.folder = Some(folder.to_owned());
        }
        self
    }

    /// The credentials were refused: retrying will not help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.kind, ErrorKind::Auth { .. })
    }

    /// TLS could not be established or the certificate did not verify.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, ErrorKind::Tls { .. })
    }

    /// The server could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, ErrorKind::Connect(_))
    }

    /// The server did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout { .. })
    }

    /// The session is gone (timeout, EOF, reset): reconnecting may help.
    pub fn is_connection_drop(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Timeout { .. } | ErrorKind::ConnectionLost { .. }
        )
    }

    /// The response code of a NO, if any (`TRYCREATE`, `OVERQUOTA`, `TOOBIG`, `LIMIT`, ...).
    pub fn response_code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::No { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Worth trying again later: network trouble, a server that is temporarily unavailable, or an
    /// inconsistent answer (for example a folder changing while it was read).
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            ErrorKind::Connect(_)
            | ErrorKind::Timeout { .. }
            | ErrorKind::ConnectionLost { .. }
            | ErrorKind::Protocol { .. } => true,
            ErrorKind::No { code, .. } => code.as_deref().is_some_and(|c| {
                let c = c.split(' ').next().unwrap_or("").to_ascii_uppercase();
                matches!(
                    c.as_str(),
                    "UNAVAILABLE" | "INUSE" | "SERVERBUG" | "LIMIT" | "EXPUNGEISSUED"
                )
            }),
            ErrorKind::Tls { .. }
            | ErrorKind::Policy { .. }
            | ErrorKind::Auth { .. }
            | ErrorKind::Bad { .. } => false,
        }
    }
}

#[cfg(test)]
mod known_answers;

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
        let no = |code: &str, text: &str| {
            ImapError::new(
                ctx.clone(),
                ErrorKind::No {
                    code: Some(code.into()),
                    text: text.into(),
                },
            )
        };
        let e = no("UNAVAILABLE", "later");
        let text = e.to_string();
        assert!(text.contains("imap.example") && text.contains("alice") && text.contains("Sent"));
        assert!(text.contains("[UNAVAILABLE] later"), "{text}");
        assert!(e.is_retryable());
        assert!(!no("OVERQUOTA", "").is_retryable());
        let e = ImapError::new(
            ctx,
            ErrorKind::Auth {
                server: "[AUTHENTICATIONFAILED] no".into(),
            },
        );
        assert!(e.is_auth_failure() && !e.is_retryable());
    }

    #[test]
    fn in_folder_fills_a_missing_folder_only() {
        let e = ImapError::protocol(Box::default(), "x").in_folder("INBOX");
        assert_eq!(e.context().folder.as_deref(), Some("INBOX"));
        let e = e.in_folder("Sent");
        assert_eq!(e.context().folder.as_deref(), Some("INBOX"));
    }

    #[test]
    fn source_is_the_io_error_of_a_connect_failure_only() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ImapError::new(Box::default(), ErrorKind::Connect(Arc::new(io)));
        let source = e.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(ImapError::policy(Box::default(), "no").source().is_none());
    }
}
