//! Terminal renderings of survey, status and verify results, and the verify CSV (JSON output is
//! serde's). Used by `cli` and `demo` alike.

use crate::engine::survey::SurveyReport;
use crate::engine::verify::VerifyReport;
use crate::ledger::{FailureGroup, MailboxProgress, RunRow};
use crate::report::table::{bytes, render};

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The survey as tables: one per mailbox (its folders), then the plan's totals.
pub fn survey(r: &SurveyReport) -> String {
    let mut out = String::new();
    for m in &r.mailboxes {
        out.push_str(&format!(
            "== {} -> {} ({})\n",
            m.mailbox, m.destination, m.status
        ));
        if let Some(e) = &m.error {
            out.push_str(&format!("   error: {e}\n\n"));
            continue;
        }
        for w in &m.warnings {
            out.push_str(&format!("   warning: {w}\n"));
        }
        if m.failed_folders > 0 {
            out.push_str(&format!(
                "   {} folders could not be read (see their errors)\n",
                m.failed_folders
            ));
        }
        let rows: Vec<Vec<String>> = m
            .folders
            .iter()
            .map(|f| {
                let mut notes = Vec::new();
                if let Some(x) = &f.excluded_by {
                    notes.push(format!("excluded by {x:?}"));
                }
                notes.extend(f.changes.iter().cloned());
                if f.over_limit > 0 {
                    notes.push(format!("{} over the size limit", f.over_limit));
                }
                if f.without_message_id > 0 {
                    notes.push(format!("{} without Message-ID", f.without_message_id));
                }
                if f.duplicate_message_ids > 0 {
                    notes.push(format!("{} share a Message-ID", f.duplicate_message_ids));
                }
                if let Some(e) = &f.error {
                    notes.push(format!("error: {e}"));
                }
                vec![
                    f.source.clone(),
                    f.target.clone().unwrap_or_else(|| "-".into()),
                    f.messages.to_string(),
                    bytes(f.bytes),
                    notes.join("; "),
                ]
            })
            .collect();
        out.push_str(&render(
            &["folder", "destination", "messages", "size", "notes"],
            &rows,
        ));
        out.push_str(&format!(
            "   total {} messages, {}; {} over the limit ({}); {} without Message-ID; {} renamed folders\n",
            m.messages,
            bytes(m.bytes),
            m.over_limit,
            bytes(m.over_limit_bytes),
            m.without_message_id,
            m.renamed_folders
        ));
        if let (Some(q), Some(fits)) = (m.quota_bytes, m.fits_quota) {
            out.push_str(&format!(
                "   quota {}: {}\n",
                bytes(q),
                if fits { "fits" } else { "DOES NOT FIT" }
            ));
        }
        if let Some(l) = m.largest.first() {
            out.push_str(&format!(
                "   largest: {} in {} (UID {})\n",
                bytes(l.bytes),
                l.folder,
                l.uid
            ));
        }
        if let Some(t) = m.estimated_seconds {
            out.push_str(&format!(
                "   estimated upload time under Graph's limits: {}\n",
                duration(t)
            ));
        }
        if let Some(a) = &m.accounting {
            out.push_str(&a.render(20));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "plan: {} mailboxes ({} failed), {} messages, {}",
        r.mailboxes.len(),
        r.failed_mailboxes,
        r.messages,
        bytes(r.bytes)
    ));
    if let Some(t) = r.estimated_seconds {
        out.push_str(&format!(
            ", estimated {} at {} mailboxes at once",
            duration(t),
            r.concurrency
        ));
    }
    out.push('\n');
    for e in &r.plan_errors {
        out.push_str(&format!("plan: {e}\n"));
    }
    out
}

/// `status` as tables.
pub fn status(progress: &[MailboxProgress], failures: &[FailureGroup], runs: &[RunRow]) -> String {
    let rows: Vec<Vec<String>> = progress
        .iter()
        .map(|p| {
            // Measured against the source's own total when a listing recorded one (issue
            // 12.12), and marked partial while folders remain unlisted: the share of what was
            // listed so far would otherwise read as the share of the mailbox.
            let total = p.bytes_total.max(p.source_bytes);
            let partial = p.source_total_partial();
            let pct = if total > 0 {
                let v = 100.0 * p.bytes_done as f64 / total as f64;
                if partial {
                    format!("{v:.1}% (partial)")
                } else {
                    format!("{v:.1}%")
                }
            } else {
                "-".into()
            };
            let source = match p.source_folders {
                _ if p.folders_listed == 0 && p.source_folders.is_none() => "-".into(),
                Some(n) if p.folders_listed < n => format!(
                    "{} (partial: {} of {n} folders listed)",
                    p.source_messages, p.folders_listed
                ),
                Some(_) => p.source_messages.to_string(),
                None => format!("{} (partial: folder list incomplete)", p.source_messages),
            };
            vec![
                p.mailbox.clone(),
                p.destination.clone(),
                p.state.clone().unwrap_or_else(|| "-".into()),
                p.done.to_string(),
                p.pending.to_string(),
                p.sending.to_string(),
                p.skipped.to_string(),
                p.failed.to_string(),
                source,
                format!("{} / {}", bytes(p.bytes_done), bytes(total)),
                pct,
            ]
        })
        .collect();
    let mut out = render(
        &[
            "mailbox",
            "destination",
            "last run",
            "done",
            "pending",
            "sending",
            "skipped",
            "failed",
            "source",
            "bytes",
            "%",
        ],
        &rows,
    );
    for p in progress.iter().filter(|p| p.last_error.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            p.mailbox,
            p.last_error.as_deref().unwrap_or_default()
        ));
    }
    if !failures.is_empty() {
        out.push_str("\nfailures and skips by reason:\n");
        let rows: Vec<Vec<String>> = failures
            .iter()
            .map(|f| {
                vec![
                    f.mailbox.clone(),
                    f.class.clone(),
                    f.count.to_string(),
                    f.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&render(&["mailbox", "class", "count", "reason"], &rows));
    }
    if !runs.is_empty() {
        out.push_str("\nrecent runs:\n");
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.command.clone(),
                    r.started_at.clone(),
                    r.finished_at.clone().unwrap_or_else(|| "-".into()),
                    r.status.clone(),
                ]
            })
            .collect();
        out.push_str(&render(
            &["run", "command", "started", "finished", "status"],
            &rows,
        ));
    }
    out
}

/// `verify` as a table of folders per mailbox, then the verdict and every discrepancy.
/// How many discrepancies (and unaccounted items) a mailbox lists on the terminal; the JSON
/// output and the report files hold every one.
const VERIFY_CAP: usize = 50;

pub fn verify(r: &VerifyReport) -> String {
    let mut out = String::new();
    for m in &r.mailboxes {
        out.push_str(&format!(
            "== {} -> {}: {}\n",
            m.mailbox,
            m.destination,
            m.verdict.to_uppercase()
        ));
        let rows: Vec<Vec<String>> = m
            .folders
            .iter()
            .map(|f| {
                vec![
                    f.source.clone(),
                    f.target.clone(),
                    f.source_count.to_string(),
                    f.ledger_done.to_string(),
                    f.ledger_skipped.to_string(),
                    f.destination_count.to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push_str(&render(
                &[
                    "folder",
                    "destination",
                    "source",
                    "done",
                    "skipped",
                    "at destination",
                ],
                &rows,
            ));
        }
        for reason in &m.reasons {
            out.push_str(&format!("   {reason}\n"));
        }
        if let Some(a) = &m.accounting {
            out.push_str(&a.render(VERIFY_CAP));
        }
        let all: Vec<_> = m
            .missing
            .iter()
            .chain(&m.doubled)
            .chain(&m.changed)
            .chain(&m.altered)
            .collect();
        if all.len() > VERIFY_CAP {
            out.push_str(&format!(
                "   {} discrepancies; the first {VERIFY_CAP} follow (--report-dir or --json for all)\n",
                all.len()
            ));
        }
        for d in all.into_iter().take(VERIFY_CAP) {
            out.push_str(&format!(
                "   {} {} UID {} {}: {}\n",
                d.kind,
                d.folder,
                d.uid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                d.message_id.as_deref().unwrap_or(""),
                d.detail
            ));
        }
        out.push('\n');
    }
    out.push_str(if r.perfect {
        "verdict: PERFECT\n"
    } else {
        "verdict: INVESTIGATE\n"
    });
    out
}

/// One CSV line per discrepancy (and one per mailbox verdict).
pub fn verify_csv(r: &VerifyReport) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "mailbox",
        "verdict",
        "kind",
        "folder",
        "folder_name",
        "uid",
        "message_id",
        "detail",
    ]);
    for m in &r.mailboxes {
        let _ = w.write_record([
            m.mailbox.as_str(),
            m.verdict.as_str(),
            "verdict",
            "",
            "",
            "",
            "",
            &m.reasons.join("; "),
        ]);
        for d in m
            .missing
            .iter()
            .chain(&m.doubled)
            .chain(&m.changed)
            .chain(&m.altered)
        {
            let uid = d.uid.map(|u| u.to_string()).unwrap_or_default();
            let _ = w.write_record([
                m.mailbox.as_str(),
                m.verdict.as_str(),
                d.kind.as_str(),
                d.folder.as_str(),
                decoded_folder(&d.folder).as_str(),
                uid.as_str(),
                d.message_id.as_deref().unwrap_or(""),
                d.detail.as_str(),
            ]);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A source folder name (modified UTF-7) as an operator reads it; a name that is not valid
/// modified UTF-7 is shown as it is.
fn decoded_folder(raw: &str) -> String {
    crate::utf7::decode(raw).unwrap_or_else(|_| raw.to_owned())
}

/// Fleet mode's part of `status`: who holds each mailbox, and how fresh its heartbeat is; then
/// the workers. `round` is the newest round: a mailbox finished in an older one is waiting.
pub fn fleet_status(
    round: i64,
    leases: &[crate::ledger::postgres::LeaseRow],
    workers: &[crate::ledger::postgres::WorkerRow],
    rates: &[(&str, f64)],
) -> String {
    let secs = |ms: Option<i64>| {
        ms.map(|ms| format!("{:.0}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            let state = match (&l.outcome, &l.owner, l.expires_in_ms) {
                (Some(o), _, _) if l.round >= round => format!("finished ({o})"),
                (None, Some(_), Some(ms)) if ms <= 0 => "lease expired".into(),
                (None, Some(_), _) if l.round < round => format!("working (round {})", l.round),
                (None, Some(_), _) => "working".into(),
                _ => "waiting".into(),
            };
            let last = match (&l.last_outcome, l.last_outcome_round) {
                (Some(o), Some(r)) => format!("{o} (round {r})"),
                _ => "-".into(),
            };
            let worker = match (&l.owner, &l.owner_hostname) {
                (Some(id), Some(host)) => format!("{host} {}", &id[..id.len().min(8)]),
                (Some(id), None) => id[..id.len().min(8)].to_owned(),
                _ => "-".into(),
            };
            vec![
                l.mailbox.clone(),
                state,
                worker,
                secs(l.heartbeat_age_ms),
                secs(l.expires_in_ms),
                l.generation.to_string(),
                last,
                rates
                    .iter()
                    .find(|(m, _)| *m == l.mailbox)
                    .map(|(_, r)| rate(*r))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = format!("\nfleet (PostgreSQL ledger), round {round}:\n");
    out.push_str(&render(
        &[
            "mailbox",
            "lease",
            "worker",
            "heartbeat age",
            "expires in",
            "generation",
            "last outcome",
            "rate",
        ],
        &rows,
    ));
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            vec![
                format!("{} {}", w.hostname, &w.id[..w.id.len().min(8)]),
                w.pid.to_string(),
                if w.alive {
                    "alive".into()
                } else if w.stopped {
                    "stopped".into()
                } else {
                    "silent".into()
                },
                secs(Some(w.heartbeat_age_ms)),
                w.runs.to_string(),
                w.mailboxes_held.to_string(),
            ]
        })
        .collect();
    out.push_str("\nworkers:\n");
    out.push_str(&render(
        &[
            "worker",
            "pid",
            "state",
            "heartbeat age",
            "runs",
            "mailboxes held",
        ],
        &rows,
    ));
    out
}

/// Messages per second, as `status` shows it: `12.3 msg/s`; below 1, per minute.
fn rate(per_second: f64) -> String {
    if per_second >= 1.0 || per_second == 0.0 {
        format!("{per_second:.1} msg/s")
    } else {
        format!("{:.1} msg/min", per_second * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_status_shows_the_round_and_waits_for_mailboxes_finished_in_an_older_one() {
        let row =
            |mailbox: &str, outcome: Option<&str>, round: i64| crate::ledger::postgres::LeaseRow {
                mailbox: mailbox.into(),
                source_host: None,
                owner: None,
                owner_hostname: None,
                generation: 1,
                expires_in_ms: None,
                heartbeat_age_ms: None,
                outcome: outcome.map(Into::into),
                round,
                last_outcome: outcome.map(Into::into),
                last_outcome_round: outcome.map(|_| round),
            };
        let text = fleet_status(
            2,
            &[row("a@x", Some("ok"), 1), row("b@x", Some("failed"), 2)],
            &[],
            &[("a@x", 2.5)],
        );
        assert!(text.contains("round 2:"), "{text}");
        let line = |m: &str| text.lines().find(|l| l.contains(m)).unwrap().to_owned();
        // Finished in round 1: still to pass in round 2.
        assert!(
            line("a@x").contains("waiting")
                && line("a@x").contains("ok (round 1)")
                && line("a@x").contains("2.5 msg/s"),
            "{text}"
        );
        assert!(
            line("b@x").contains("finished (failed)") && line("b@x").contains("failed (round 2)"),
            "{text}"
        );
    }

    #[test]
    fn verify_csv_names_folders_decoded_beside_the_raw_name() {
        assert_eq!(decoded_folder("Entw&APw-rfe"), "Entwürfe");
        assert_eq!(decoded_folder("A&B"), "A&B");
    }

    fn progress(source_folders: Option<u64>, folders_listed: u64) -> MailboxProgress {
        MailboxProgress {
            mailbox: "ann@example.org".into(),
            destination: "graph".into(),
            state: Some("interrupted".into()),
            last_run: Some(1),
            last_error: None,
            folders: folders_listed,
            pending: 0,
            sending: 0,
            done: 10,
            skipped: 0,
            failed: 0,
            bytes_done: 1000,
            bytes_total: 1000,
            source_gone: 0,
            source_folders,
            folders_listed,
            source_messages: 10,
            source_bytes: 1000,
        }
    }

    #[test]
    fn status_says_when_the_source_total_is_partial() {
        let out = status(&[progress(Some(3), 1)], &[], &[]);
        assert!(out.contains("100.0% (partial)"), "{out}");
        assert!(out.contains("1 of 3 folders listed"), "{out}");
        let out = status(&[progress(Some(1), 1)], &[], &[]);
        assert!(out.contains("100.0%") && !out.contains("partial"), "{out}");
    }

    #[test]
    fn rates_read_per_second_or_per_minute() {
        assert_eq!(rate(12.34), "12.3 msg/s");
        assert_eq!(rate(0.0), "0.0 msg/s");
        assert_eq!(rate(0.05), "3.0 msg/min");
    }
}
