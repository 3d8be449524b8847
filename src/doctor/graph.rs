//! Doctor's Graph checks: the token (AADSTS failures explained), the permissions in it when it
//! is a JWT, then per destination mailbox: access, and one test message per write route in a
//! scratch folder that is deleted afterwards whatever happened in between. What the tenant did
//! with each test message becomes findings (graph.md section 7).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::probe::{self, ProbeError, TestMessage};
use super::{DoctorReport, Finding, Status};
use crate::engine::connect::graph_settings;
use crate::model::ContentHash;
use crate::plan::{self, GraphDestination, Mailbox, Plan};
use crate::sink::OutgoingMessage;
use crate::sink::graph::{GraphApp, GraphError, GraphMailbox, Route};

const MAIL_READWRITE: &str = "Mail.ReadWrite";
const MAIL_ADVANCED: &str = "Mail-Advanced.ReadWrite.All";

/// Checks one Graph destination and its chosen mailboxes.
pub async fn check(
    plan: &Plan,
    g: &GraphDestination,
    mailboxes: &[&Mailbox],
    report: &mut DoctorReport,
) {
    let target = format!("graph {}", g.name);
    // The app writes JSON when asked to write: the importMime probe goes raw (see `probe`).
    let mut settings = graph_settings(g, plan.limits.max_message_bytes);
    settings.route = Route::Json;
    let app = match GraphApp::new(settings) {
        Ok(a) => a,
        Err(e) => {
            report.push(&target, "credential", Status::Fail, e.to_string());
            return;
        }
    };
    let roles = match app.token().await {
        Ok(t) => {
            report.push(
                &target,
                "token",
                Status::Ok,
                format!(
                    "token issued by {} for client {}",
                    app.settings().token_endpoint(),
                    g.client_id
                ),
            );
            probe::token_roles(t.expose())
        }
        Err(e) => {
            report.push(&target, "token", Status::Fail, token_advice(&e));
            return;
        }
    };
    if let Some(roles) = &roles {
        report_roles(&target, roles, g.route, report);
    }
    if mailboxes.is_empty() {
        report.push(
            &target,
            "mailboxes",
            Status::Warn,
            "no mailbox of the plan goes to this destination: nothing to test",
        );
    }
    for mb in mailboxes {
        check_mailbox(&app, g, &mb.destination_user, roles.as_deref(), report).await;
    }
}

fn has(roles: &[String], name: &str) -> bool {
    roles.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn report_roles(target: &str, roles: &[String], route: plan::Route, report: &mut DoctorReport) {
    let shown = if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.join(", ")
    };
    if !has(roles, MAIL_READWRITE) {
        report.push(
            target,
            "permissions",
            Status::Fail,
            format!(
                "the token grants {shown}, not {MAIL_READWRITE}: in the app registration add the Microsoft Graph application permission {MAIL_READWRITE} and grant admin consent"
            ),
        );
    } else if !has(roles, MAIL_ADVANCED) {
        let status = if route == plan::Route::ImportMime {
            Status::Fail
        } else {
            Status::Ok
        };
        report.push(
            target,
            "permissions",
            status,
            format!(
                "the token grants {shown}; without {MAIL_ADVANCED} importMime is refused and every message goes by the JSON route"
            ),
        );
    } else {
        report.push(
            target,
            "permissions",
            Status::Ok,
            format!("the token grants {shown}"),
        );
    }
}

/// The token failure with what to do; `GraphError::Auth` already names the AADSTS code and
/// explains it.
fn token_advice(e: &GraphError) -> String {
    match e {
        GraphError::Auth { .. } => e.to_string(),
        GraphError::Unreachable { .. } => format!(
            "{e}: check login_url/cloud and that this machine reaches the login host (proxy, firewall)"
        ),
        other => other.to_string(),
    }
}

/// The advice for a failed access check.
fn access_advice(e: &GraphError, user: &str, roles: Option<&[String]>) -> String {
    let GraphError::Http(h) = e else {
        return e.to_string();
    };
    let code = h.code.as_deref().unwrap_or("");
    let message = h.message.as_deref().unwrap_or("");
    let request = h
        .request_id
        .as_deref()
        .map(|r| format!(" [request-id {r}]"))
        .unwrap_or_default();
    match (h.status, code) {
        (403, _) => {
            // Exchange says "Access to OData is disabled" when an application access policy (or
            // RBAC for applications) keeps the app out; a missing permission is a plain denial.
            let policy = message.contains("OData is disabled")
                || roles.is_some_and(|r| has(r, MAIL_READWRITE));
            if policy {
                format!(
                    "HTTP 403 {code}: an application access policy (or Exchange RBAC for applications) keeps this app out of {user}: add the mailbox to the policy's mail-enabled security group (check with Test-ApplicationAccessPolicy -Identity {user} -AppId <client id>); changes can take an hour{request}"
                )
            } else {
                format!(
                    "HTTP 403 {code}: the app may not read mail: add the Microsoft Graph application permission {MAIL_READWRITE} to the app registration and grant admin consent{request}"
                )
            }
        }
        (404, "MailboxNotEnabledForRESTAPI") => format!(
            "HTTP 404 {code}: {user} has no Exchange Online mailbox Graph can reach: assign an Exchange Online licence (and wait for provisioning), or move an on-premises mailbox to the cloud first; inactive mailboxes cannot be written{request}"
        ),
        (404, _) => format!(
            "HTTP 404 {code}: no user {user} in this tenant: check the CSV's EmailAddress/DestinationUser (the UPN or primary SMTP address){request}"
        ),
        (401, _) => format!(
            "HTTP 401 {code}: Graph refused the token: check `cloud` (tokens do not cross clouds) and graph_url{request}"
        ),
        _ => e.to_string(),
    }
}

async fn check_mailbox(
    app: &GraphApp,
    g: &GraphDestination,
    user: &str,
    roles: Option<&[String]>,
    report: &mut DoctorReport,
) {
    let target = format!("graph {} {user}", g.name);
    let mailbox = app.mailbox(user);
    if let Err(e) = mailbox.check_access().await {
        report.push(
            &target,
            "access",
            Status::Fail,
            access_advice(&e, user, roles),
        );
        return;
    }
    report.push(
        &target,
        "access",
        Status::Ok,
        "the app can open this mailbox",
    );

    let token = format!("{:08x}", rand::random::<u32>());
    let name = format!("mailferry-doctor-{token}");
    let folder_id = match mailbox
        .ensure_folder(None, std::slice::from_ref(&name))
        .await
    {
        Ok(id) => id,
        Err(e) => {
            report.push(
                &target,
                "scratch folder",
                Status::Fail,
                format!("cannot create the folder {name}: {e}"),
            );
            return;
        }
    };
    report.push(
        &target,
        "scratch folder",
        Status::Ok,
        format!("created {name} (deleted at the end)"),
    );
    // The probes never return early from here: the folder is deleted whatever they found.
    let probes = Probes {
        app,
        mailbox: &mailbox,
        http: probe::client(),
        target: &target,
        user,
        folder_id: &folder_id,
        token: &token,
    };
    probes.import_mime(g, report).await;
    probes.json(report).await;
    match mailbox.delete_folder(&folder_id).await {
        Ok(()) => report.push(
            &target,
            "cleanup",
            Status::Ok,
            format!("deleted {name} and its test messages"),
        ),
        Err(e) => report.push(
            &target,
            "cleanup",
            Status::Fail,
            format!("could not delete the scratch folder {name}: {e}; delete it by hand"),
        ),
    }
}

struct Probes<'a> {
    app: &'a GraphApp,
    mailbox: &'a GraphMailbox,
    http: reqwest::Client,
    target: &'a str,
    user: &'a str,
    folder_id: &'a str,
    token: &'a str,
}

impl Probes<'_> {
    fn finding(
        &self,
        report: &mut DoctorReport,
        route: &str,
        property: &str,
        value: String,
        meaning: &str,
    ) {
        report.findings.push(Finding {
            target: self.target.to_owned(),
            route: route.to_owned(),
            property: property.to_owned(),
            value,
            meaning: meaning.to_owned(),
        });
    }

    /// importMime, sent once: does the tenant take it, and what does the item look like?
    async fn import_mime(&self, g: &GraphDestination, report: &mut DoctorReport) {
        const ROUTE: &str = "import-mime";
        let check = "route import-mime";
        let settings = self.app.settings();
        if !settings.cloud.has_import_mime() && settings.graph_url.is_none() {
            report.push(
                self.target,
                check,
                Status::Warn,
                "importMime does not exist in this national cloud: every message goes by the JSON route",
            );
            return;
        }
        let Some(msg) = TestMessage::new(ROUTE, self.user, self.token, 1) else {
            return;
        };
        let sent_at = Utc::now();
        let id = match probe::import_mime(&self.http, self.app, self.user, self.folder_id, &msg.raw)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let status = if g.route == plan::Route::ImportMime {
                    Status::Fail
                } else {
                    Status::Warn
                };
                report.push(self.target, check, status, import_advice(&e));
                return;
            }
        };
        report.push(
            self.target,
            check,
            Status::Ok,
            format!("importMime works ({MAIL_ADVANCED} granted)"),
        );
        let as_imported = self.read_back(report, ROUTE, &id).await;
        if let Some(item) = &as_imported {
            self.report_draft_and_dates(report, ROUTE, item, &msg, sent_at);
            self.finding(
                report,
                ROUTE,
                "isRead as imported",
                item["isRead"].to_string(),
                "mailferry sets isRead and flag itself right after the import",
            );
        }
        // What a migration does next: the flags PATCH (with the stamp).
        match self.mailbox.set_flags(&id, &msg.flags).await {
            Ok(()) => {
                if let Some(item) = self.read_back(report, ROUTE, &id).await {
                    self.report_flags(report, ROUTE, &item);
                }
            }
            Err(e) => report.push(
                self.target,
                "flags import-mime",
                Status::Fail,
                format!("PATCH of isRead/flag on an imported item failed: {e}"),
            ),
        }
        self.report_bytes(report, ROUTE, &id, &msg, true).await;
    }

    /// JSON create, exactly as a migration writes it (the sink's own JSON route).
    async fn json(&self, report: &mut DoctorReport) {
        const ROUTE: &str = "json";
        let check = "route json";
        let Some(msg) = TestMessage::new(ROUTE, self.user, self.token, 2) else {
            return;
        };
        let out = OutgoingMessage {
            raw: &msg.raw,
            flags: &msg.flags,
            internal_date: msg.dates.internal_date,
            identity: &msg.identity,
            message_id: Some(&msg.message_id),
        };
        let sent_at = Utc::now();
        let id = match self.mailbox.write(self.folder_id, &out).await {
            Ok(id) => id,
            Err(e) => {
                let advice = match e.status() {
                    Some(403) => format!(
                        "{e}: JSON create needs the application permission {MAIL_READWRITE} with admin consent"
                    ),
                    _ => e.to_string(),
                };
                report.push(self.target, check, Status::Fail, advice);
                return;
            }
        };
        report.push(
            self.target,
            check,
            Status::Ok,
            format!("JSON create works ({MAIL_READWRITE} granted)"),
        );
        if let Some(item) = self.read_back(report, ROUTE, &id).await {
            self.report_draft_and_dates(report, ROUTE, &item, &msg, sent_at);
            self.report_flags(report, ROUTE, &item);
        }
        self.report_bytes(report, ROUTE, &id, &msg, false).await;
    }

    async fn read_back(&self, report: &mut DoctorReport, route: &str, id: &str) -> Option<Value> {
        match probe::get_item(&self.http, self.app, self.user, id).await {
            Ok(v) => Some(v),
            Err(e) => {
                report.push(
                    self.target,
                    &format!("read back {route}"),
                    Status::Fail,
                    e.to_string(),
                );
                None
            }
        }
    }

    fn report_draft_and_dates(
        &self,
        report: &mut DoctorReport,
        route: &str,
        item: &Value,
        msg: &TestMessage,
        sent_at: DateTime<Utc>,
    ) {
        let draft = item["isDraft"].as_bool();
        self.finding(
            report,
            route,
            "isDraft",
            item["isDraft"].to_string(),
            if draft == Some(false) {
                "a normal delivered item, as it should be"
            } else {
                "the item is a DRAFT: users would see it as unsent"
            },
        );
        if draft != Some(false) {
            report.push(
                self.target,
                &format!("draft {route}"),
                Status::Fail,
                format!("the {route} route created a draft (isDraft = {}): do not migrate by this route", item["isDraft"]),
            );
        }
        let received = item["receivedDateTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        let (value, meaning) = match received {
            Some(r) => (
                r.to_rfc3339(),
                format!(
                    "taken from {} (Date: {}, Received: {}, INTERNALDATE asked: {})",
                    probe::received_source(r, &msg.dates, sent_at),
                    msg.dates.date_header.to_rfc3339(),
                    msg.dates.received_header.to_rfc3339(),
                    msg.dates.internal_date.to_rfc3339()
                ),
            ),
            None => (item["receivedDateTime"].to_string(), "not readable".into()),
        };
        self.finding(report, route, "receivedDateTime", value, &meaning);
        if let Some(s) = item["sentDateTime"].as_str() {
            self.finding(
                report,
                route,
                "sentDateTime",
                s.to_owned(),
                &format!(
                    "the Date: header was {}",
                    msg.dates.date_header.to_rfc3339()
                ),
            );
        }
    }

    fn report_flags(&self, report: &mut DoctorReport, route: &str, item: &Value) {
        let read = item["isRead"].as_bool() == Some(true);
        let flag = item["flag"]["flagStatus"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        self.finding(
            report,
            route,
            "isRead",
            item["isRead"].to_string(),
            if read {
                "\\Seen carried over"
            } else {
                "\\Seen was asked for but the item is unread"
            },
        );
        self.finding(
            report,
            route,
            "flag",
            flag.clone(),
            if flag == "flagged" {
                "\\Flagged carried over"
            } else {
                "\\Flagged was asked for but the item is not flagged"
            },
        );
        if !read || flag != "flagged" {
            report.push(
                self.target,
                &format!("flags {route}"),
                Status::Warn,
                format!(
                    "asked for read and flagged, got isRead = {}, flag = {flag}",
                    item["isRead"]
                ),
            );
        }
    }

    async fn report_bytes(
        &self,
        report: &mut DoctorReport,
        route: &str,
        id: &str,
        msg: &TestMessage,
        must_match: bool,
    ) {
        match self.mailbox.read_mime(id).await {
            Ok(mime) => {
                let same = ContentHash::of(&mime) == msg.identity.sha256;
                let meaning = match (same, must_match) {
                    (true, _) => {
                        "byte-identical to what was sent: verify --deep compares content exactly"
                    }
                    (false, true) => {
                        "NOT byte-identical: this tenant rewrites imported MIME; verify --deep will report content differences"
                    }
                    (false, false) => "rebuilt by Exchange (expected for the JSON route)",
                };
                self.finding(
                    report,
                    route,
                    "$value",
                    format!(
                        "{} bytes, {}",
                        mime.len(),
                        if same { "identical" } else { "different" }
                    ),
                    meaning,
                );
                if must_match && !same {
                    report.push(
                        self.target,
                        &format!("bytes {route}"),
                        Status::Warn,
                        meaning,
                    );
                }
            }
            Err(e) => report.push(
                self.target,
                &format!("read back {route}"),
                Status::Fail,
                format!("$value could not be read: {e}"),
            ),
        }
    }
}

/// What an importMime refusal means.
fn import_advice(e: &ProbeError) -> String {
    match e.status() {
        Some(403) => format!(
            "{e}: importMime needs the application permission {MAIL_ADVANCED} with admin consent; without it mailferry writes every message by the JSON route (Exchange rebuilds the message: MIME details and signatures are lost)"
        ),
        Some(400 | 404 | 405 | 501) => format!(
            "{e}: this tenant or endpoint does not offer importMime (a beta API): set route = \"json\""
        ),
        _ => e.to_string(),
    }
}
