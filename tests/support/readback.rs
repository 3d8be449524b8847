//! Shared ways to drive and inspect a migration from a test: run `migrate` on a plan file, and
//! read a whole mailbox back over IMAP with mailferry's own reader (folders, flags, dates, bytes).

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use mailferry::engine::{Cancel, MigrateOptions};
use mailferry::plan::Plan;
use mailferry::report::{Events, RunSummary};
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};

use super::dovecot::Dovecot;

/// Folder path (`/`-joined, decoded) -> its messages as (flags, INTERNALDATE in UTC seconds,
/// bytes), sorted.
pub type Snapshot = BTreeMap<String, Vec<(String, i64, Vec<u8>)>>;

/// A Dovecot instance's implicit-TLS endpoint, trusting its throwaway CA.
pub fn dovecot_endpoint(d: &Dovecot) -> ImapEndpoint {
    ImapEndpoint {
        host: "localhost".into(),
        port: d.port_tls(),
        security: Security::Tls,
        ca_file: Some(d.ca_pem_path()),
        insecure: false,
        timeout: Duration::from_secs(20),
    }
}

/// LOGIN credentials.
pub fn login(user: &str, password: &str) -> ImapAuth {
    ImapAuth::Login {
        user: user.into(),
        password: Secret::from(password),
    }
}

/// Everything in a mailbox, read over IMAP. Empty folders are left out.
pub async fn snapshot(endpoint: ImapEndpoint, user: &str, password: &str) -> Snapshot {
    let mut src = ImapSource::connect(endpoint, login(user, password))
        .await
        .expect("connect");
    let mut out = BTreeMap::new();
    for f in src.list_folders().await.expect("list") {
        if !f.selectable {
            continue;
        }
        src.select(&f).await.expect("select");
        let metas = src.fetch_meta(&f, None).await.expect("metadata");
        let uids: Vec<_> = metas.iter().map(|m| m.uid).collect();
        let bodies: BTreeMap<_, _> = src
            .fetch_bodies(&f, &uids)
            .await
            .expect("bodies")
            .into_iter()
            .collect();
        assert_eq!(bodies.len(), uids.len(), "every listed UID fetched");
        let mut items: Vec<_> = metas
            .iter()
            .map(|m| {
                (
                    m.flags.to_ledger_string(),
                    m.internal_date.timestamp(),
                    bodies[&m.uid].bytes().expect("read body").into_owned(),
                )
            })
            .collect();
        items.sort();
        if !items.is_empty() {
            out.insert(f.path.to_string(), items);
        }
    }
    src.logout().await;
    out
}

/// Every message body in a mailbox, whatever its folder.
pub async fn bodies(endpoint: ImapEndpoint, user: &str, password: &str) -> Vec<Vec<u8>> {
    snapshot(endpoint, user, password)
        .await
        .into_values()
        .flat_map(|items| items.into_iter().map(|(_, _, bytes)| bytes))
        .collect()
}

/// `migrate` on a plan file with default options, its ledger next to the plan.
pub async fn migrate_plan(plan: &Path) -> RunSummary {
    let plan = Plan::load(plan).expect("plan");
    let workspace = mailferry::app::Workspace::resolve(&plan, None, None);
    mailferry::app::migrate(
        &plan,
        &workspace,
        &MigrateOptions::default(),
        Events::discard(),
        Cancel::default(),
    )
    .await
    .expect("migrate")
    .summary
}
