//! `mailferry doctor`: checks a deployment before a migration, one line per check (ok, warn or
//! FAIL) with a specific, actionable message, plus findings about how the tenant treats imported
//! mail.
//!
//! - [`imap`]: per IMAP host (the plan's source, once per host; each IMAP destination): TCP
//!   connect, TLS handshake and certificate, the login of the first (or each selected) mailbox,
//!   and the capabilities mailferry relies on.
//! - [`graph`]: per Graph destination: the token (AADSTS errors turned into advice), then per
//!   destination mailbox: access (403/404 turned into permission, access-policy or licence
//!   advice), and a scratch folder (`mailferry-doctor-<random>`, always deleted) for
//! - `routes`: one test message per write route, read back to settle docs/graph-facts.md's unknowns on the
//!   real tenant.
//! - `folder_rules`: the status of a duplicate folder create and which folder names the tenant
//!   takes (docs/graph-facts.md, unknowns 4 and 5), warning about any name mailferry would send unchanged
//!   that the tenant refuses.
//! - [`probe`]: the test message and the raw Graph requests the route probes need (a probe must
//!   see the tenant's own answer, so it never falls back to another route as a migration does).
//! - [`render`]: the text and JSON output.
//!
//! Everything connects through the same code a migration uses (`engine::connect`, the IMAP
//! source, the Graph sink), so a green doctor means the migration's own connections work.

mod folder_rules;
pub mod graph;
pub mod imap;
mod probe;
pub mod render;
mod routes;

use serde::Serialize;

use crate::plan::{Destination, Mailbox, Plan, PlanError};

/// Application permissions as Entra spells them: folders, JSON create, PATCH and lists.
const MAIL_READWRITE: &str = "Mail.ReadWrite";
/// Needed for importMime.
const MAIL_ADVANCED: &str = "Mail-Advanced.ReadWrite.All";

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the doctor's output.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `source imap.example:993`, `graph exo`, `graph exo ann@contoso.com`.
    pub target: String,
    /// The check's name: `tcp`, `tls`, `login`, `capabilities`, `token`, `access`, `route
    /// import-mime`, ...
    pub check: String,
    pub status: Status,
    /// What was found and, when not ok, what to do about it.
    pub message: String,
}

/// How the tenant treated a test message: one property of one route.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `graph exo ann@contoso.com`.
    pub target: String,
    /// `import-mime` or `json`.
    pub route: String,
    /// `isDraft`, `receivedDateTime`, `isRead`, `flag`, `$value`, ...
    pub property: String,
    /// What the tenant returned.
    pub value: String,
    /// What that means for a migration.
    pub meaning: String,
}

/// Everything doctor found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub(crate) fn push(
        &mut self,
        target: &str,
        check: &str,
        status: Status,
        message: impl Into<String>,
    ) {
        self.checks.push(Check {
            target: target.to_owned(),
            check: check.to_owned(),
            status,
            message: message.into(),
        });
    }

    /// True when some check failed (exit code 1).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The checks of one target and name (tests, and callers that branch on one result).
    pub fn find(&self, target_contains: &str, check: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.check == check && c.target.contains(target_contains))
    }
}

/// Errors that stop doctor before any check (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Runs every check of the plan. `mailboxes` selects which mailboxes to log in to and probe
/// (empty: the first of each host and destination).
pub async fn run(plan: &Plan, mailboxes: &[String]) -> Result<DoctorReport, DoctorError> {
    let selected = plan.select(mailboxes)?;
    let explicit = !mailboxes.is_empty();
    let mut report = DoctorReport::default();
    for e in &plan.row_errors {
        report.push("plan", "rows", Status::Warn, e.to_string());
    }
    imap::check_source(plan, &pick(&selected, explicit, |_| true), &mut report).await;
    for dest in &plan.destinations {
        let name = dest.name();
        let of_dest = pick(&selected, explicit, |m| m.destination == name);
        match dest {
            Destination::Imap(d) => imap::check_destination(plan, d, &of_dest, &mut report).await,
            Destination::Graph(g) => graph::check(plan, g, &of_dest, &mut report).await,
        }
    }
    Ok(report)
}

/// The mailboxes to check among `selected` that satisfy `keep`: all of them when chosen with
/// `--mailbox`, else the first.
fn pick<'p>(
    selected: &[&'p Mailbox],
    explicit: bool,
    keep: impl Fn(&Mailbox) -> bool,
) -> Vec<&'p Mailbox> {
    let mut v: Vec<&Mailbox> = selected.iter().copied().filter(|m| keep(m)).collect();
    if !explicit {
        v.truncate(1);
    }
    v
}
