//! Doctor's IMAP checks, per host: TCP connect, TLS (handshake and certificate), the login of
//! each chosen mailbox, and the capabilities mailferry relies on. Logins go through the IMAP
//! source's own connection code with the plan's settings mapped exactly as a migration maps them.
//! Maildir sources get a check that each chosen tree can be opened.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::{DoctorReport, Status};
use crate::engine::connect::{imap_auth, imap_endpoint};
use crate::plan::{ImapDestination, Mailbox, MailboxSource, Plan, SourceKind, SourceLogin};
use crate::source::imap::{
    Capabilities, ErrorKind, ImapAuth, ImapEndpoint, ImapError, ImapSource, Security,
};
use crate::source::maildir::MaildirSource;

/// Which side a host is on: the capabilities that matter differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Destination,
}

/// The plan's source: one IMAP host (checked once) or the chosen Maildir trees.
pub async fn check_source(plan: &Plan, mailboxes: &[&Mailbox], report: &mut DoctorReport) {
    match plan.source.kind {
        SourceKind::Maildir => {
            for mb in mailboxes {
                if let MailboxSource::Maildir { path } = &mb.source {
                    let target = format!("source maildir {}", mb.email);
                    match MaildirSource::open(path) {
                        Ok(_) => report.push(
                            &target,
                            "open",
                            Status::Ok,
                            format!("{} opens as a Maildir tree", path.display()),
                        ),
                        Err(e) => report.push(
                            &target,
                            "open",
                            Status::Fail,
                            format!(
                                "{e}: check SourcePath (or [source] maildir_root) and that this user may read the tree"
                            ),
                        ),
                    }
                }
            }
        }
        SourceKind::Imap => {
            let Some(ep) = &plan.source.endpoint else {
                report.push(
                    "source",
                    "plan",
                    Status::Fail,
                    "the plan's [source] has no host",
                );
                return;
            };
            let logins: Vec<ImapAuth> = mailboxes
                .iter()
                .filter_map(|mb| match &mb.source {
                    MailboxSource::Imap { login, .. } => Some(imap_auth(login, plan.source.auth)),
                    MailboxSource::Maildir { .. } => None,
                })
                .collect();
            let endpoint = imap_endpoint(ep, plan.source.timeout_secs);
            let target = format!("source {}:{}", ep.host, ep.port);
            check_host(&target, &endpoint, &logins, Role::Source, report).await;
        }
    }
}

/// One IMAP destination: its host, logged in as each chosen mailbox's destination login.
pub async fn check_destination(
    plan: &Plan,
    d: &ImapDestination,
    mailboxes: &[&Mailbox],
    report: &mut DoctorReport,
) {
    let target = format!(
        "destination {} {}:{}",
        d.name, d.endpoint.host, d.endpoint.port
    );
    let mut logins = Vec::new();
    for mb in mailboxes {
        // The same choice the migration's connector makes.
        let login = match (&mb.destination_login, &d.master_user, &d.master_password) {
            (Some(l), _, _) => l.clone(),
            (None, Some(master), Some(pw)) => SourceLogin::Proxy {
                authzid: mb.destination_user.clone(),
                authcid: master.clone(),
                password: pw.clone(),
            },
            _ => {
                report.push(
                    &target,
                    "login",
                    Status::Fail,
                    format!(
                        "no login for {}: set DestinationUser/DestinationPassword in the CSV or master_user/master_password_env in [destination.{}]",
                        mb.destination_user, d.name
                    ),
                );
                continue;
            }
        };
        logins.push(imap_auth(&login, d.auth));
    }
    let endpoint = imap_endpoint(&d.endpoint, plan.source.timeout_secs);
    check_host(&target, &endpoint, &logins, Role::Destination, report).await;
}

async fn check_host(
    target: &str,
    endpoint: &ImapEndpoint,
    logins: &[ImapAuth],
    role: Role,
    report: &mut DoctorReport,
) {
    if !check_tcp(target, endpoint, report).await {
        return;
    }
    let mut tls_reported = false;
    let mut caps_reported = false;
    for auth in logins {
        let result = ImapSource::connect(endpoint.clone(), auth.clone()).await;
        match result {
            Ok(src) => {
                if !tls_reported {
                    report_tls_ok(target, endpoint, report);
                    tls_reported = true;
                }
                report.push(
                    target,
                    "login",
                    Status::Ok,
                    format!("logged in as {}", auth.user()),
                );
                if !caps_reported {
                    report_capabilities(target, src.capabilities(), role, report);
                    caps_reported = true;
                }
                src.logout().await;
            }
            Err(e) => {
                if e.is_auth_failure() && !tls_reported {
                    report_tls_ok(target, endpoint, report);
                    tls_reported = true;
                }
                let (check, message) = advise(&e, endpoint, auth);
                if check == "tls" {
                    if tls_reported {
                        continue;
                    }
                    tls_reported = true;
                }
                report.push(target, check, Status::Fail, message);
                if check != "login" {
                    // The host itself is the problem: every other login would fail the same way.
                    return;
                }
            }
        }
    }
    if logins.is_empty() {
        report.push(
            target,
            "login",
            Status::Warn,
            "no mailbox of the plan logs in here: nothing to test",
        );
    }
}

/// TCP connect with the plan's timeout; false when the host cannot be reached.
async fn check_tcp(target: &str, endpoint: &ImapEndpoint, report: &mut DoctorReport) -> bool {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let started = Instant::now();
    let t = endpoint.timeout.max(Duration::from_secs(1));
    match tokio::time::timeout(t, TcpStream::connect((host, endpoint.port))).await {
        Ok(Ok(_)) => {
            report.push(
                target,
                "tcp",
                Status::Ok,
                format!("connected in {} ms", started.elapsed().as_millis().max(1)),
            );
            true
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            report.push(
                target,
                "tcp",
                Status::Fail,
                format!(
                    "connection refused: nothing listens on {}:{}; check `port` (993 for security = \"tls\", 143 for \"starttls\") and that the IMAP service runs",
                    endpoint.host, endpoint.port
                ),
            );
            false
        }
        Ok(Err(e)) => {
            report.push(
                target,
                "tcp",
                Status::Fail,
                format!(
                    "cannot connect to {}:{}: {e}; check the host name (DNS) and the network path from this machine",
                    endpoint.host, endpoint.port
                ),
            );
            false
        }
        Err(_) => {
            report.push(
                target,
                "tcp",
                Status::Fail,
                format!(
                    "no answer within {}s: a firewall drops the connection, or the host or port is wrong",
                    t.as_secs()
                ),
            );
            false
        }
    }
}

fn report_tls_ok(target: &str, endpoint: &ImapEndpoint, report: &mut DoctorReport) {
    let loopback = is_loopback(&endpoint.host);
    let (status, message) = match endpoint.security {
        Security::Plain if loopback => (Status::Ok, "plain IMAP on loopback (no TLS needed)".into()),
        Security::Plain => (
            Status::Warn,
            "no TLS (security = \"plain\", insecure = true): passwords cross the network in clear; use \"tls\" or \"starttls\"".to_owned(),
        ),
        _ if endpoint.insecure => (
            Status::Warn,
            format!(
                "{} done, but the certificate is NOT verified (insecure = true); add the issuing CA with ca_file instead",
                tls_kind(endpoint.security)
            ),
        ),
        _ => (
            Status::Ok,
            format!(
                "{} done; certificate valid for {}{}",
                tls_kind(endpoint.security),
                endpoint.host,
                if endpoint.ca_file.is_some() {
                    " (trusted through ca_file)"
                } else {
                    ""
                }
            ),
        ),
    };
    report.push(target, "tls", status, message);
}

fn tls_kind(s: Security) -> &'static str {
    match s {
        Security::Tls => "TLS handshake",
        Security::StartTls => "STARTTLS upgrade",
        Security::Plain => "plain connection",
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The check an error belongs to and what to do about it.
fn advise(e: &ImapError, endpoint: &ImapEndpoint, auth: &ImapAuth) -> (&'static str, String) {
    match e.kind() {
        ErrorKind::Tls { reason } => (
            "tls",
            format!(
                "{reason}; if the server uses a private CA, set ca_file = \"ca.pem\" to its certificate; check that `host` is the name on the certificate{}",
                if endpoint.security == Security::Tls && endpoint.port == 143 {
                    " (port 143 normally needs security = \"starttls\")"
                } else {
                    ""
                }
            ),
        ),
        ErrorKind::Policy { reason } => (
            "tls",
            format!("{reason}; choose security = \"tls\" (port 993) or \"starttls\" (port 143)"),
        ),
        ErrorKind::Auth { server } => {
            let how = match auth {
                ImapAuth::Plain {
                    authzid: Some(_),
                    authcid,
                    ..
                } => format!(
                    "through the master/admin account {authcid}: check master_user and its password, and that the server allows master logins (Dovecot: a passdb with master = yes; some servers want LOGIN as `user*admin` instead: set auth = \"login\" and write that in UserName)"
                ),
                ImapAuth::XOAuth2 { .. } => {
                    "with XOAUTH2: check that the token is current and grants IMAP access".into()
                }
                _ => "check the UserName and Password columns of the CSV (or the *_env / *_file the password comes from)".into(),
            };
            (
                "login",
                format!(
                    "the server refused the login of {} ({server}); {how}",
                    auth.user()
                ),
            )
        }
        ErrorKind::Timeout { after } => (
            "login",
            format!(
                "the server stopped answering for {}s; raise [source] timeout_secs or check the server's load",
                after.as_secs()
            ),
        ),
        _ => ("login", e.to_string()),
    }
}

fn report_capabilities(target: &str, caps: &Capabilities, role: Role, report: &mut DoctorReport) {
    let wanted: &[(&str, &str)] = match role {
        Role::Source => &[
            (
                "CONDSTORE",
                "flag changes are found by re-reading every message's flags on each pass (slower delta passes)",
            ),
            (
                "SPECIAL-USE",
                "Sent, Drafts, Trash and Junk are recognised by their names only",
            ),
            (
                "NAMESPACE",
                "the folder prefix and delimiter are guessed from LIST",
            ),
            ("UIDPLUS", "no effect on reading"),
        ],
        Role::Destination => &[
            (
                "UIDPLUS",
                "appended messages are found again by searching (APPENDUID missing): slower, and resume relies on Message-ID",
            ),
            ("MULTIAPPEND", "one APPEND per message (slower)"),
            (
                "LITERAL+",
                "every message waits for the server's go-ahead (slower on high latency)",
            ),
            (
                "SPECIAL-USE",
                "Sent, Drafts, Trash and Junk are matched by name only",
            ),
        ],
    };
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for (cap, effect) in wanted {
        let present = if *cap == "CONDSTORE" {
            caps.condstore()
        } else {
            caps.has(cap)
        };
        if present {
            have.push(*cap);
        } else if !effect.starts_with("no effect") {
            missing.push(format!("{cap} missing: {effect}"));
        }
    }
    let status = if missing.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    let mut message = format!("has {}", have.join(", "));
    for m in &missing {
        message.push_str("; ");
        message.push_str(m);
    }
    report.push(target, "capabilities", status, message);
}
