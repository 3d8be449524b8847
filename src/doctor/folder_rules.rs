//! The folder probes of one mailbox, inside doctor's scratch folder (deleted with it): docs/graph-facts.md
//! section 7 leaves open the HTTP status of `ErrorFolderExists` (unknown 4) and Exchange's folder
//! name rules (unknown 5). mailferry does not bet on either (it recognises the conflict by its code
//! and renames conservatively), but an operator should know what the tenant does, and above all
//! whether it refuses a name mailferry would send unchanged.

use super::probe::{self, ProbeError};
use super::routes::Probes;
use super::{DoctorReport, Status};
use crate::translate::TargetKind;
use crate::translate::names::sanitize;

const ROUTE: &str = "folders";

/// Names a real mailbox may hold. Those [`sanitize`] leaves alone must be accepted; for the others
/// the probe only reports whether the renaming was needed.
fn sample_names() -> Vec<String> {
    vec![
        "Ünïcödé Ordner – Größe".to_owned(),
        "Réunions & Comptes-rendus (2024)".to_owned(),
        "Punctuation !#$%'+,;=@[]^`{}~".to_owned(),
        "a.b.c".to_owned(),
        "Emoji 📁 folder".to_owned(),
        "n".repeat(255),
        "Slash/inside".to_owned(),
        "Back\\slash".to_owned(),
        " leading space".to_owned(),
        "trailing dot.".to_owned(),
        "n".repeat(256),
    ]
}

impl Probes<'_> {
    /// Creates a folder twice (the second answer settles unknown 4), then each sample name.
    pub async fn folder_rules(&self, report: &mut DoctorReport) {
        let create = |name: &str| {
            let name = name.to_owned();
            async move {
                probe::create_child(&self.http, self.app, self.user, self.folder_id, &name).await
            }
        };
        let dup = format!("mailferry-dup-{}", self.token);
        match create(&dup).await {
            Err(e) => {
                report.push(
                    self.target,
                    "folder names",
                    Status::Fail,
                    format!("cannot create a folder inside the scratch folder: {e}"),
                );
                return;
            }
            Ok(_) => match create(&dup).await {
                Ok(_) => {
                    self.finding(
                        report,
                        ROUTE,
                        "second create of one name",
                        "accepted".into(),
                        "the tenant made two folders of the same name: mailferry finds folders by name before creating them, so a migration is not affected",
                    );
                }
                Err(e) => {
                    let value = match &e {
                        ProbeError::Http { status, code, .. } => {
                            format!("HTTP {status} {}", code.as_deref().unwrap_or("(no code)"))
                        }
                        other => other.to_string(),
                    };
                    let meaning = if matches!(&e, ProbeError::Http { code: Some(c), .. } if c == "ErrorFolderExists")
                    {
                        "ErrorFolderExists: mailferry recognises it by its code, whatever the status, and uses the existing folder"
                    } else {
                        "not ErrorFolderExists: a re-run that meets an existing folder will fail to create it; report this answer"
                    };
                    self.finding(report, ROUTE, "second create of one name", value, meaning);
                }
            },
        }
        let mut refused_kept = Vec::new();
        for name in sample_names() {
            let (sent, notes) = sanitize(&name, TargetKind::Graph);
            let kept = notes.is_empty() && sent == name;
            let shown = if name.chars().count() > 40 {
                format!("{} characters", name.chars().count())
            } else {
                format!("{name:?}")
            };
            let (value, meaning) = match (create(&name).await, kept) {
                (Ok(_), true) => (
                    "accepted".to_owned(),
                    "mailferry sends such names unchanged".to_owned(),
                ),
                (Ok(_), false) => (
                    "accepted".to_owned(),
                    format!(
                        "mailferry renames it anyway ({}): conservative, not needed here",
                        notes.join("; ")
                    ),
                ),
                (Err(e), true) => {
                    refused_kept.push(format!("{shown}: {e}"));
                    (
                        format!("refused: {e}"),
                        "mailferry sends such names unchanged: folders named like this will fail; add a [folders] rename rule for them".to_owned(),
                    )
                }
                (Err(e), false) => (
                    format!("refused: {e}"),
                    format!("mailferry renames it ({}), as needed", notes.join("; ")),
                ),
            };
            self.finding(report, ROUTE, &format!("name {shown}"), value, &meaning);
        }
        if refused_kept.is_empty() {
            report.push(
                self.target,
                "folder names",
                Status::Ok,
                "every sample name mailferry sends unchanged was accepted (see the findings for the rest)",
            );
        } else {
            report.push(
                self.target,
                "folder names",
                Status::Warn,
                format!(
                    "the tenant refuses names mailferry sends unchanged: {}; add [folders] rename rules for such folders",
                    refused_kept.join("; ")
                ),
            );
        }
    }
}
