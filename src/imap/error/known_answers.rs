//! Known answers for the `Display` of every [`ErrorKind`]: reports, logs and tests match on this
//! text, so it must not drift when the error type is reshaped.

use super::*;

fn ctx() -> Box<ErrorContext> {
    Box::new(ErrorContext {
        host: "imap.example".into(),
        user: "alice".into(),
        folder: Some("Sent".into()),
        command: "UID FETCH 1:10".into(),
    })
}

const CTX: &str = "host imap.example, user alice, folder \"Sent\", command UID FETCH 1:10";

#[test]
fn display_of_every_kind() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let table: Vec<(ErrorKind, String)> = vec![
        (
            ErrorKind::Connect(Arc::new(io)),
            format!("cannot connect ({CTX}): refused"),
        ),
        (
            ErrorKind::Tls {
                reason: "bad certificate".into(),
            },
            format!("TLS failed ({CTX}): bad certificate"),
        ),
        (
            ErrorKind::Policy {
                reason: "plaintext to a remote host".into(),
            },
            format!("connection refused by policy ({CTX}): plaintext to a remote host"),
        ),
        (
            ErrorKind::Auth {
                server: "[AUTHENTICATIONFAILED] no".into(),
            },
            format!("login failed ({CTX}): [AUTHENTICATIONFAILED] no"),
        ),
        (
            ErrorKind::Timeout {
                after: Duration::from_millis(1500),
            },
            format!("timed out after 1.5s ({CTX})"),
        ),
        (
            ErrorKind::ConnectionLost {
                reason: "eof".into(),
            },
            format!("connection lost ({CTX}): eof"),
        ),
        (
            ErrorKind::No {
                code: Some("OVERQUOTA".into()),
                text: "quota exceeded".into(),
            },
            format!("server said NO ({CTX}): [OVERQUOTA] quota exceeded"),
        ),
        (
            ErrorKind::No {
                code: None,
                text: "no such folder".into(),
            },
            format!("server said NO ({CTX}): no such folder"),
        ),
        (
            ErrorKind::Bad {
                text: "unknown command".into(),
            },
            format!("server said BAD ({CTX}): unknown command"),
        ),
        (
            ErrorKind::Protocol {
                detail: "missing UIDVALIDITY".into(),
            },
            format!("protocol error ({CTX}): missing UIDVALIDITY"),
        ),
    ];
    for (kind, want) in table {
        assert_eq!(ImapError::new(ctx(), kind).to_string(), want);
    }
}

#[test]
fn context_without_user_folder_or_command() {
    let ctx = Box::new(ErrorContext {
        host: "h".into(),
        ..ErrorContext::default()
    });
    let e = ImapError::connection_lost(ctx, "BYE");
    assert_eq!(e.to_string(), "connection lost (host h): BYE");
}
