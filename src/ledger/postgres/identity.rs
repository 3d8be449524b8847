//! Plan identity: the first worker stores what the plan is (its source, its destinations, its
//! mailboxes and where each goes); every later worker compares its own plan with it and is
//! refused, with the differences named, if they differ. Two workers with different CSVs or
//! destinations on one ledger would otherwise each believe the other's mailboxes are finished
//! or missing.
//!
//! The identity holds descriptors, not secrets: the application layer builds it from the plan
//! (host, port, tenant, client id, route; never a password or client secret).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{PgLedger, PgLedgerError, db_err, now_sql};

/// Key of the transaction-scoped advisory lock held while registering a plan ("mfplan").
pub(super) const PLAN_LOCK: i64 = 0x6d66_706c_616e;
/// How many names a difference lists before "and N more".
const NAMES_SHOWN: usize = 5;

/// What the plan is, for comparing workers' plans. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanIdentity {
    /// The source, e.g. `imap imap.old-host.example:993 tls` or `maildir /srv/mail/{EmailAddress}`.
    pub source: String,
    /// Destination name -> descriptor, e.g. `graph tenant=contoso.example client_id=… route=json`.
    pub destinations: BTreeMap<String, String>,
    /// Mailbox key -> where it comes from and goes.
    pub mailboxes: BTreeMap<String, PlanMailbox>,
}

/// One mailbox of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMailbox {
    /// The destination's name.
    pub destination: String,
    /// The mailbox at the destination.
    pub destination_user: String,
    /// The source host it connects to (lower-cased), `None` for Maildir: what the host
    /// connection cap counts.
    pub source_host: Option<String>,
}

impl PlanMailbox {
    fn entry(&self) -> String {
        format!(
            "destination={} user={} source_host={}",
            self.destination,
            self.destination_user,
            self.source_host.as_deref().unwrap_or("-")
        )
    }
}

impl PlanIdentity {
    /// SHA-256 over every mailbox's key and entry, in key order.
    fn mailboxes_sha256(&self) -> String {
        let mut h = Sha256::new();
        for (key, mb) in &self.mailboxes {
            h.update(key.as_bytes());
            h.update(b"\t");
            h.update(mb.entry().as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }
}

impl PgLedger {
    /// Stores `plan` as the ledger's plan (the first worker), or checks that it is the stored
    /// one and fails with [`PgLedgerError::PlanMismatch`] naming what differs. The first worker
    /// also creates every mailbox row and its lease.
    pub async fn register_plan(&self, plan: &PlanIdentity) -> Result<(), PgLedgerError> {
        let err = |e| db_err(&self.url, e);
        let destinations =
            serde_json::to_string(&plan.destinations).map_err(|e| self.corrupt(e.to_string()))?;
        let hash = plan.mailboxes_sha256();
        let mut conn = self.conn().await?;
        let tx = conn.client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLAN_LOCK])
            .await
            .map_err(err)?;
        let stored = tx
            .query_opt(
                "SELECT source, destinations, mailboxes_sha256 FROM fleet_plan WHERE id = 1",
                &[],
            )
            .await
            .map_err(err)?;
        if let Some(row) = stored {
            let (source, dests, stored_hash): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let mut differences = Vec::new();
            if source != plan.source {
                differences.push(format!(
                    "source: the ledger's plan reads from «{source}», this plan from «{}»",
                    plan.source
                ));
            }
            let stored_dests: BTreeMap<String, String> = serde_json::from_str(&dests)
                .map_err(|e| self.corrupt(format!("fleet_plan.destinations: {e}")))?;
            diff_destinations(&stored_dests, &plan.destinations, &mut differences);
            if stored_hash != hash {
                let rows = tx
                    .query(
                        "SELECT mb.key, l.plan_entry FROM leases l
                         JOIN mailboxes mb ON mb.id = l.mailbox_id",
                        &[],
                    )
                    .await
                    .map_err(err)?;
                let stored: BTreeMap<String, String> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                diff_mailboxes(&stored, plan, &mut differences);
                if differences.is_empty() {
                    differences.push("the mailbox list differs (same keys and entries, another hash: a ledger written by another mailferry version?)".into());
                }
            }
            if !differences.is_empty() {
                return Err(PgLedgerError::PlanMismatch {
                    target: self.url.to_string(),
                    differences,
                });
            }
            return tx.commit().await.map_err(err);
        }
        tx.execute(
            concat!(
                "INSERT INTO fleet_plan (id, source, destinations, mailboxes_sha256,
                 mailbox_count, registered_at) VALUES (1, $2, $3, $4, $5, ",
                now_sql!(1),
                ")"
            ),
            &[
                &self.clock.param(),
                &plan.source,
                &destinations,
                &hash,
                &(plan.mailboxes.len() as i64),
            ],
        )
        .await
        .map_err(err)?;
        let keys: Vec<&str> = plan.mailboxes.keys().map(String::as_str).collect();
        let dests: Vec<&str> = plan
            .mailboxes
            .values()
            .map(|m| m.destination.as_str())
            .collect();
        let hosts: Vec<Option<&str>> = plan
            .mailboxes
            .values()
            .map(|m| m.source_host.as_deref())
            .collect();
        let entries: Vec<String> = plan.mailboxes.values().map(PlanMailbox::entry).collect();
        // One statement for the whole list: a plan of thousands of mailboxes registers in one
        // round trip.
        tx.execute(
            "WITH input AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 AS t(key, destination, source_host, entry)),
             mb AS (
               INSERT INTO mailboxes (key, destination) SELECT key, destination FROM input
               ON CONFLICT (key) DO UPDATE SET destination = excluded.destination
               RETURNING id, key)
             INSERT INTO leases (mailbox_id, source_host, plan_entry)
             SELECT mb.id, input.source_host, input.entry FROM mb JOIN input USING (key)
             ON CONFLICT (mailbox_id) DO UPDATE
               SET source_host = excluded.source_host, plan_entry = excluded.plan_entry",
            &[&keys, &dests, &hosts, &entries],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

fn diff_destinations(
    stored: &BTreeMap<String, String>,
    plan: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    for (name, desc) in stored {
        match plan.get(name) {
            None => out.push(format!(
                "destination {name} is in the ledger's plan only («{desc}»)"
            )),
            Some(mine) if mine != desc => out.push(format!(
                "destination {name}: the ledger's plan has «{desc}», this plan «{mine}»"
            )),
            Some(_) => {}
        }
    }
    for (name, desc) in plan {
        if !stored.contains_key(name) {
            out.push(format!(
                "destination {name} is in this plan only («{desc}»)"
            ));
        }
    }
}

fn diff_mailboxes(stored: &BTreeMap<String, String>, plan: &PlanIdentity, out: &mut Vec<String>) {
    let only_ledger: Vec<&str> = stored
        .keys()
        .filter(|k| !plan.mailboxes.contains_key(*k))
        .map(String::as_str)
        .collect();
    let only_plan: Vec<&str> = plan
        .mailboxes
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .map(String::as_str)
        .collect();
    let changed: Vec<String> = plan
        .mailboxes
        .iter()
        .filter_map(|(k, mb)| {
            let old = stored.get(k)?;
            let new = mb.entry();
            (*old != new).then(|| format!("{k} (ledger: {old}; this plan: {new})"))
        })
        .collect();
    if !only_plan.is_empty() {
        out.push(format!(
            "{} mailbox(es) in this plan only: {}",
            only_plan.len(),
            names(&only_plan)
        ));
    }
    if !only_ledger.is_empty() {
        out.push(format!(
            "{} mailbox(es) in the ledger's plan only: {}",
            only_ledger.len(),
            names(&only_ledger)
        ));
    }
    if !changed.is_empty() {
        let refs: Vec<&str> = changed.iter().map(String::as_str).collect();
        out.push(format!(
            "{} mailbox(es) go elsewhere: {}",
            changed.len(),
            names(&refs)
        ));
    }
}

/// The first few names, then how many more.
fn names(list: &[&str]) -> String {
    let shown = list[..list.len().min(NAMES_SHOWN)].join(", ");
    match list.len().saturating_sub(NAMES_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(dest: &str, host: Option<&str>) -> PlanMailbox {
        PlanMailbox {
            destination: dest.into(),
            destination_user: "u".into(),
            source_host: host.map(Into::into),
        }
    }

    #[test]
    fn mailbox_differences_are_named() {
        let stored: BTreeMap<String, String> = [
            ("a@x".to_owned(), mb("exo", Some("h")).entry()),
            ("b@x".to_owned(), mb("exo", Some("h")).entry()),
        ]
        .into();
        let plan = PlanIdentity {
            mailboxes: [
                ("a@x".to_owned(), mb("other", Some("h"))),
                ("c@x".to_owned(), mb("exo", Some("h"))),
            ]
            .into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        diff_mailboxes(&stored, &plan, &mut out);
        let text = out.join("\n");
        assert!(
            text.contains("1 mailbox(es) in this plan only: c@x"),
            "{text}"
        );
        assert!(text.contains("in the ledger's plan only: b@x"), "{text}");
        assert!(text.contains("a@x (ledger: destination=exo"), "{text}");
    }

    #[test]
    fn long_lists_are_cut() {
        let list: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        assert_eq!(names(&refs), "m0, m1, m2, m3, m4 and 3 more");
    }

    #[test]
    fn the_hash_covers_destination_and_host() {
        let a = PlanIdentity {
            mailboxes: [("a@x".to_owned(), mb("exo", Some("h1")))].into(),
            ..Default::default()
        };
        let mut b = a.clone();
        b.mailboxes.insert("a@x".into(), mb("exo", Some("h2")));
        assert_ne!(a.mailboxes_sha256(), b.mailboxes_sha256());
        assert_eq!(a.mailboxes_sha256(), a.clone().mailboxes_sha256());
    }
}
