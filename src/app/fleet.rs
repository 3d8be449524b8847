//! Fleet mode in the application layer: where the PostgreSQL ledger is (`--ledger URL`, or the
//! plan's `[ledger] url`/`url_env`, with the password from `PGPASSWORD` or the variable), the
//! plan's identity each worker registers, and connecting.

use std::sync::Arc;

use crate::ledger::postgres::{
    Clock, PgLedger, PgLedgerError, PgUrl, PlanIdentity, PlanMailbox, UrlError, UrlOrigin,
};
use crate::plan::{Destination, LedgerUrl, MailboxSource, Plan, SourceKind};
use crate::secret::Secret;

/// The PostgreSQL ledger to use, if any: `--ledger` wins over the plan's `[ledger]`.
pub fn ledger_url(plan: &Plan, cli: Option<&str>) -> Result<Option<PgUrl>, UrlError> {
    let pgpassword = || std::env::var("PGPASSWORD").ok().map(Secret::new);
    if let Some(text) = cli {
        return PgUrl::parse(text, UrlOrigin::CommandLine, pgpassword()).map(Some);
    }
    match &plan.ledger.url {
        None => Ok(None),
        Some(LedgerUrl::Plain(text)) => {
            PgUrl::parse(text, UrlOrigin::PlanFile, pgpassword()).map(Some)
        }
        Some(LedgerUrl::Env(var)) => {
            let origin = UrlOrigin::Env(var.clone());
            let text = std::env::var(var).map_err(|_| UrlError {
                origin: origin.clone(),
                reason: format!(
                    "the environment variable {var} (named by [ledger] url_env) is not set"
                ),
            })?;
            PgUrl::parse(&text, origin, pgpassword()).map(Some)
        }
    }
}

/// Connects (migrating the schema) and registers or checks the plan's identity.
pub async fn connect(url: &PgUrl, plan: &Plan) -> Result<Arc<PgLedger>, PgLedgerError> {
    let db = PgLedger::connect(url, Clock::Database).await?;
    db.register_plan(&plan_identity(plan)).await?;
    Ok(Arc::new(db))
}

/// What the plan is, for comparing workers' plans: descriptors, never secrets.
pub fn plan_identity(plan: &Plan) -> PlanIdentity {
    let source = match (plan.source.kind, &plan.source.endpoint) {
        (SourceKind::Imap, Some(ep)) => format!(
            "imap {}:{} {:?}",
            ep.host.to_ascii_lowercase(),
            ep.port,
            ep.security
        )
        .to_lowercase(),
        (SourceKind::Imap, None) => "imap".to_owned(),
        (SourceKind::Maildir, _) => format!(
            "maildir {}",
            plan.source.maildir_root.as_deref().unwrap_or("")
        ),
    };
    let destinations = plan
        .destinations
        .iter()
        .map(|d| {
            let what = match d {
                Destination::Graph(g) => format!(
                    "graph tenant={} client_id={} cloud={:?} route={:?}{}",
                    g.tenant,
                    g.client_id,
                    g.cloud,
                    g.route,
                    g.graph_url
                        .as_deref()
                        .map(|u| format!(" graph_url={u}"))
                        .unwrap_or_default()
                ),
                Destination::Imap(i) => format!(
                    "imap {}:{}",
                    i.endpoint.host.to_ascii_lowercase(),
                    i.endpoint.port
                ),
            };
            (d.name().to_owned(), what)
        })
        .collect();
    let host = plan
        .source
        .endpoint
        .as_ref()
        .map(|ep| ep.host.to_ascii_lowercase());
    let mailboxes = plan
        .mailboxes
        .iter()
        .map(|mb| {
            let source_host = match mb.source {
                MailboxSource::Imap { .. } => host.clone(),
                MailboxSource::Maildir { .. } => None,
            };
            (
                mb.key.clone(),
                PlanMailbox {
                    destination: mb.destination.clone(),
                    destination_user: mb.destination_user.clone(),
                    source_host,
                },
            )
        })
        .collect();
    PlanIdentity {
        source,
        destinations,
        mailboxes,
    }
}

/// This machine's name for `status` (`HOSTNAME`, else the kernel's, else `unknown`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
