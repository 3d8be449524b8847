//! The route probes of one mailbox, inside doctor's scratch folder: one test message per write
//! route, read back to report how the tenant set isDraft, receivedDateTime, sentDateTime, isRead,
//! flag, and whether `$value` is byte-identical (docs/graph-facts.md, section 7, settled on the real tenant).
//! Every probe reports and returns normally, so the caller always gets to delete the folder.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::probe::{self, ProbeError, TestMessage};
use super::{DoctorReport, Finding, MAIL_ADVANCED, MAIL_READWRITE, Status};
use crate::body::Body;
use crate::engine::ports::OutgoingMessage;
use crate::model::ContentHash;
use crate::plan::GraphDestination;
use crate::sink::graph::{GraphApp, GraphMailbox};

/// What the probes of one mailbox share.
pub(super) struct Probes<'a> {
    pub app: &'a GraphApp,
    pub mailbox: &'a GraphMailbox,
    pub http: reqwest::Client,
    /// The report target (`graph NAME user`).
    pub target: &'a str,
    pub user: &'a str,
    pub folder_id: &'a str,
    /// The random part of the scratch folder's name, also in the test messages.
    pub token: &'a str,
}

impl Probes<'_> {
    pub(super) fn finding(
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
    pub async fn import_mime(&self, g: &GraphDestination, report: &mut DoctorReport) {
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
                let status = if g.route == crate::sink::graph::Route::ImportMime {
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
    pub async fn json(&self, report: &mut DoctorReport) {
        const ROUTE: &str = "json";
        let check = "route json";
        let Some(msg) = TestMessage::new(ROUTE, self.user, self.token, 2) else {
            return;
        };
        let body = Body::Memory(msg.raw.clone());
        let out = OutgoingMessage {
            body: &body,
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
