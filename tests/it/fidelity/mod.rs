//! What users notice after a migration beyond "every message arrived": flag removals, keywords
//! that must not become Outlook categories, folder subscriptions, received dates, and a
//! shared-namespace source read one `UserRoot` subtree per row. Real Dovecot on both IMAP
//! sides, the Graph emulator as Exchange.

mod dates;
mod flags;
mod keywords;
mod subscriptions;
mod user_root;

use std::path::PathBuf;

use mailferry::emulator::{self, EmulatorConfig, EmulatorHandle};
use mailferry::report::{MailboxSummary, RunSummary};

use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};

/// A Dovecot source and both kinds of destination in one plan: `exo` (the Graph emulator) and
/// `newhost` (a second Dovecot). Rows are written by the test.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub source: Dovecot,
    pub target: Dovecot,
    pub emulator: EmulatorHandle,
    pub plan_path: PathBuf,
}

impl Rig {
    /// `source_config` is appended to the source's dovecot.conf, `plan_extra` to plan.toml after
    /// the destinations (a `[keywords]` table, say), `exo_extra` inside `[destination.exo]`.
    pub async fn new(
        source_config: &str,
        config: EmulatorConfig,
        exo_extra: &str,
        plan_extra: &str,
    ) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let source = Dovecot::start_with(Layout::Fs, source_config);
        let target = Dovecot::start(Layout::MaildirPlusPlus);
        let emulator = emulator::start(config).await.unwrap();
        std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
        std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
             master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{2}\"\nlogin_url = \"{2}\"\n{exo_extra}\n\n\
             [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {3}\nca_file = \"{4}\"\n\n\
             {plan_extra}\n",
            source.port_tls(),
            source.ca_pem_path().display(),
            emulator.base_url(),
            target.port_tls(),
            target.ca_pem_path().display(),
        );
        let plan_path = dir.path().join("plan.toml");
        std::fs::write(&plan_path, plan).unwrap();
        Rig {
            dir,
            source,
            target,
            emulator,
            plan_path,
        }
    }

    /// Writes the mailboxes CSV (header included by the caller).
    pub fn rows(&self, csv: &str) {
        std::fs::write(self.dir.path().join("mailboxes.csv"), csv).unwrap();
    }

    pub async fn migrate(&self) -> RunSummary {
        crate::support::readback::migrate_plan(&self.plan_path).await
    }

    pub fn plan(&self) -> mailferry::plan::Plan {
        mailferry::plan::Plan::load(&self.plan_path).unwrap()
    }

    /// `verify --deep` of every mailbox.
    pub async fn verify(&self) -> mailferry::engine::verify::VerifyReport {
        let plan = self.plan();
        let ledger = mailferry::ledger::Ledger::open(&plan.default_state_path()).unwrap();
        mailferry::engine::verify::verify(&plan, Some(&ledger), &plan.select(&[]).unwrap(), true, 2)
            .await
    }
}

pub fn summary<'a>(run: &'a RunSummary, user: &str) -> &'a MailboxSummary {
    run.mailboxes
        .iter()
        .find(|m| m.mailbox.starts_with(user))
        .unwrap_or_else(|| panic!("no summary for {user}: {run:#?}"))
}
