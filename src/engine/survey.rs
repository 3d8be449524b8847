//! `mailferry survey`: audit every source mailbox before anything moves. Reads metadata only
//! (never bodies): folders, counts, sizes, largest messages, what exceeds the destination's size
//! limit, messages without or with shared Message-IDs, every folder rename, quota fit, and an
//! estimate of the upload time under Microsoft Graph's per-mailbox budgets.

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use super::connect::Connector;
use super::ports::{MailSource, StepError};
use crate::model::{MessageMeta, SourceFolder};
use crate::plan::{Destination, Mailbox, Plan};
use crate::translate::{FolderMapper, FolderMapping, TargetKind};

/// Graph requests per message on the default route (importMime create + one PATCH).
const REQUESTS_PER_MESSAGE: f64 = 2.0;
/// Base64 makes an importMime body 4/3 of the message.
const BASE64_GROWTH: f64 = 4.0 / 3.0;
/// How many of the largest messages a survey lists per mailbox.
const LARGEST: usize = 5;

/// The survey of one folder.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderSurvey {
    pub source: String,
    /// Where it goes (`inbox`, `Archive/2019`), or `null` when excluded.
    pub target: Option<String>,
    /// Every rename, with its reason.
    pub changes: Vec<String>,
    pub excluded_by: Option<String>,
    /// What the server's SELECT reported.
    pub server_count: u64,
    pub messages: u64,
    pub bytes: u64,
    pub over_limit: u64,
    pub over_limit_bytes: u64,
    pub without_message_id: u64,
    /// Messages whose Message-ID another message of this folder also has.
    pub duplicate_message_ids: u64,
    /// `null` when the folder was read; otherwise why not.
    pub error: Option<String>,
}

/// One of the largest messages.
#[derive(Debug, Clone, Serialize)]
pub struct LargeMessage {
    pub folder: String,
    pub uid: u32,
    pub bytes: u64,
}

/// The survey of one mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxSurvey {
    pub mailbox: String,
    pub destination: String,
    /// `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// Folders that could not be read (each has its `error`); any makes the survey exit 1.
    pub failed_folders: u64,
    /// See [`crate::report::MailboxSummary::warnings`].
    pub warnings: Vec<String>,
    pub folders: Vec<FolderSurvey>,
    pub messages: u64,
    pub bytes: u64,
    pub over_limit: u64,
    pub over_limit_bytes: u64,
    pub without_message_id: u64,
    pub duplicate_message_ids: u64,
    pub renamed_folders: u64,
    pub largest: Vec<LargeMessage>,
    pub quota_bytes: Option<u64>,
    pub fits_quota: Option<bool>,
    /// Seconds to upload under the destination's budgets, or `null` when not estimated.
    pub estimated_seconds: Option<f64>,
    /// Where every item of the source goes (`null` when the source could not be read).
    pub accounting: Option<crate::source::accounting::SourceAccounting>,
}

/// The whole plan's survey.
#[derive(Debug, Clone, Serialize)]
pub struct SurveyReport {
    pub mailboxes: Vec<MailboxSurvey>,
    pub messages: u64,
    pub bytes: u64,
    pub failed_mailboxes: u64,
    /// Folders that could not be read, across mailboxes.
    pub failed_folders: u64,
    pub concurrency: usize,
    /// Seconds for the whole plan at `concurrency` mailboxes at once.
    pub estimated_seconds: Option<f64>,
    pub plan_errors: Vec<String>,
    pub seconds: f64,
}

/// Surveys the selected mailboxes, `concurrency` at a time.
pub async fn survey(plan: &Plan, mailboxes: &[&Mailbox], concurrency: usize) -> SurveyReport {
    let started = Instant::now();
    let connector = Connector::new(plan);
    let mut results: Vec<MailboxSurvey> = futures::stream::iter(mailboxes)
        .map(|mb| survey_mailbox(plan, &connector, mb))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
    let estimates: Vec<f64> = results.iter().filter_map(|m| m.estimated_seconds).collect();
    SurveyReport {
        messages: results.iter().map(|m| m.messages).sum(),
        bytes: results.iter().map(|m| m.bytes).sum(),
        failed_mailboxes: results.iter().filter(|m| m.status != "ok").count() as u64,
        failed_folders: results.iter().map(|m| m.failed_folders).sum(),
        concurrency,
        estimated_seconds: (!estimates.is_empty()).then(|| makespan(&estimates, concurrency)),
        mailboxes: results,
        plan_errors: plan.row_errors.iter().map(|e| e.to_string()).collect(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Upload time of one mailbox under Graph's per-mailbox budgets: whichever of the request
/// budget and the byte budget binds.
pub fn graph_estimate(
    messages: u64,
    bytes: u64,
    requests_per_10min: u32,
    bytes_per_5min: u64,
) -> f64 {
    let by_requests =
        messages as f64 * REQUESTS_PER_MESSAGE / (requests_per_10min.max(1) as f64 / 600.0);
    let by_bytes = bytes as f64 * BASE64_GROWTH / (bytes_per_5min.max(1) as f64 / 300.0);
    by_requests.max(by_bytes)
}

/// The finishing time of jobs run `workers` at a time, longest first (each mailbox has its own
/// budget, so mailboxes in parallel do not slow each other under Graph's per-mailbox limits).
pub fn makespan(jobs: &[f64], workers: usize) -> f64 {
    let mut sorted = jobs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut load = vec![0.0f64; workers.max(1)];
    for j in sorted {
        if let Some(min) = load.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *min += j;
        }
    }
    load.into_iter().fold(0.0, f64::max)
}

async fn survey_mailbox(plan: &Plan, connector: &Connector<'_>, mb: &Mailbox) -> MailboxSurvey {
    let dest = plan.destination(&mb.destination);
    let mut s = MailboxSurvey {
        mailbox: mb.key.clone(),
        destination: mb.destination.clone(),
        status: "ok".into(),
        error: None,
        failed_folders: 0,
        warnings: Vec::new(),
        folders: Vec::new(),
        messages: 0,
        bytes: 0,
        over_limit: 0,
        over_limit_bytes: 0,
        without_message_id: 0,
        duplicate_message_ids: 0,
        renamed_folders: 0,
        largest: Vec::new(),
        quota_bytes: plan.limits.quota_bytes,
        fits_quota: None,
        estimated_seconds: None,
        accounting: None,
    };
    let _permit = connector.host_permit(mb).await;
    let result = async {
        let mut src = connector.source(mb).await?;
        let kind = match dest {
            Some(Destination::Imap(_)) => TargetKind::Imap { delimiter: '/' },
            _ => TargetKind::Graph,
        };
        let mapper = FolderMapper::new(&plan.folders, kind);
        let r = survey_folders(plan, &mut src, &mapper, &mut s).await;
        src.close().await;
        r
    }
    .await;
    if let Err(e) = result {
        s.status = "failed".into();
        s.error = Some(e.detail());
        return s;
    }
    s.fits_quota = s.quota_bytes.map(|q| s.bytes <= q);
    if let Some(Destination::Graph(g)) = dest {
        s.estimated_seconds = Some(graph_estimate(
            s.messages - s.over_limit,
            s.bytes - s.over_limit_bytes,
            g.requests_per_10min,
            g.bytes_per_5min,
        ));
    }
    s
}

/// Folders listed per pipelined batch: the source reads a batch without a round trip per
/// folder, and only one batch's metadata is held at a time.
const LIST_BATCH: usize = 100;

async fn survey_folders<S: MailSource>(
    plan: &Plan,
    src: &mut S,
    mapper: &FolderMapper,
    s: &mut MailboxSurvey,
) -> Result<(), StepError> {
    let folders = src.list_folders().await?;
    s.warnings
        .extend(crate::report::folder_list_warning(&folders));
    let mappings = mapper.map(&folders);
    let mut acc = src.accounting(&mappings).await?;
    let mut largest: Vec<LargeMessage> = Vec::new();
    for batch in mappings.chunks(LIST_BATCH) {
        let readable = |m: &&FolderMapping| m.source.selectable && m.target.is_some();
        let to_read: Vec<SourceFolder> = batch
            .iter()
            .filter(readable)
            .map(|m| m.source.clone())
            .collect();
        let mut listings = if to_read.is_empty() {
            Vec::new()
        } else {
            src.list_messages(&to_read).await?
        }
        .into_iter();
        for mapping in batch {
            let mut f = FolderSurvey {
                source: mapping.source.path.to_string(),
                target: mapping.target.as_ref().map(|t| t.label(mapper.kind())),
                changes: mapping
                    .changes
                    .iter()
                    .map(|c| format!("{} -> {}: {}", c.from, c.to, c.reason))
                    .collect(),
                excluded_by: mapping.excluded_by.clone(),
                ..FolderSurvey::default()
            };
            if !f.changes.is_empty() {
                s.renamed_folders += 1;
            }
            if readable(&mapping) {
                let listing = listings.next().unwrap_or_else(|| {
                    Err(StepError::new(
                        crate::engine::ports::FailureClass::Transient,
                        "the source returned no listing for this folder",
                    ))
                });
                match listing {
                    Ok((status, metas)) => {
                        f.server_count = status.exists as u64;
                        tally(&mut f, &metas, plan.limits.max_message_bytes);
                        largest.extend(metas.iter().map(|m| LargeMessage {
                            folder: f.source.clone(),
                            uid: m.uid.get(),
                            bytes: m.size,
                        }));
                        largest.sort_by_key(|l| std::cmp::Reverse(l.bytes));
                        largest.truncate(LARGEST);
                    }
                    Err(e)
                        if matches!(
                            e.class,
                            crate::engine::ports::FailureClass::Mailbox
                                | crate::engine::ports::FailureClass::Fatal
                        ) =>
                    {
                        return Err(e);
                    }
                    Err(e) => {
                        super::accounting::refused(&mut acc, &f.source, &e.detail());
                        s.failed_folders += 1;
                        f.error = Some(e.detail());
                    }
                }
            }
            s.messages += f.messages;
            s.bytes += f.bytes;
            s.over_limit += f.over_limit;
            s.over_limit_bytes += f.over_limit_bytes;
            s.without_message_id += f.without_message_id;
            s.duplicate_message_ids += f.duplicate_message_ids;
            s.folders.push(f);
        }
    }
    s.largest = largest;
    s.accounting = Some(acc);
    Ok(())
}

fn tally(f: &mut FolderSurvey, metas: &[MessageMeta], limit: u64) {
    let mut ids: HashMap<&str, u64> = HashMap::new();
    for m in metas {
        f.messages += 1;
        f.bytes += m.size;
        if m.size > limit {
            f.over_limit += 1;
            f.over_limit_bytes += m.size;
        }
        match m.message_id.as_deref() {
            Some(id) => *ids.entry(id).or_default() += 1,
            None => f.without_message_id += 1,
        }
    }
    f.duplicate_message_ids = ids.values().filter(|n| **n > 1).sum();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_takes_the_binding_budget() {
        // 10,000 small messages: 20,000 requests at 10,000 per 600 s = 1,200 s.
        assert_eq!(
            graph_estimate(10_000, 10_000_000, 10_000, 150_000_000),
            1200.0
        );
        // 1 GB in 100 messages: bytes bind, 1e9 * 4/3 / (150e6/300) = 2,666.7 s.
        let t = graph_estimate(100, 1_000_000_000, 10_000, 150_000_000);
        assert!((t - 2666.67).abs() < 0.1, "{t}");
    }

    #[test]
    fn makespan_packs_longest_first() {
        assert_eq!(makespan(&[10.0, 10.0, 10.0, 10.0], 2), 20.0);
        assert_eq!(makespan(&[30.0, 10.0, 10.0, 10.0], 2), 30.0);
        assert_eq!(makespan(&[5.0], 4), 5.0);
    }
}
