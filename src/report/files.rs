//! Report files: JSON (the whole run) and CSV (one line per mailbox), created 0600 because they
//! name every mailbox and may name messages.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::RunSummary;

/// A report file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write report {path}: {source}")]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Creates (or replaces) a file readable only by its owner and writes `content`.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(content).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Writes `<stem>.json` and `<stem>.csv` into `dir`; returns their paths.
pub fn write_run_reports(
    dir: &Path,
    stem: &str,
    run: &RunSummary,
) -> Result<(PathBuf, PathBuf), ReportError> {
    let json_path = dir.join(format!("{stem}.json"));
    let csv_path = dir.join(format!("{stem}.csv"));
    let json = serde_json::to_vec_pretty(run).expect("a summary always serializes");
    write_private(&json_path, &json)?;
    write_private(&csv_path, run_csv(run).as_bytes())?;
    Ok((json_path, csv_path))
}

/// Removes all but the newest `keep` run reports (`mailferry-run-<id>.json` / `.csv`, newest by
/// run id) from `dir`; returns the files removed. Other files are never touched.
pub fn prune_run_reports(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, ReportError> {
    let err = |source| ReportError {
        path: dir.to_owned(),
        source,
    };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let id = name
            .strip_prefix("mailferry-run-")
            .and_then(|r| r.strip_suffix(".json").or_else(|| r.strip_suffix(".csv")))
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(id) = id {
            found.push((id, path));
        }
    }
    let mut ids: Vec<u64> = found.iter().map(|f| f.0).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    let Some(&oldest_kept) = ids.get(keep.max(1) - 1) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for (id, path) in found {
        if id < oldest_kept {
            std::fs::remove_file(&path).map_err(|source| ReportError {
                path: path.clone(),
                source,
            })?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// One CSV line per mailbox: counts and the first reason of each kind.
pub fn run_csv(run: &RunSummary) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "mailbox",
        "destination",
        "status",
        "copied",
        "copied_bytes",
        "already_present",
        "resolved",
        "flags_updated",
        "skipped",
        "failed",
        "pending",
        "source_gone",
        "seconds",
        "error",
        "reasons",
    ]);
    for m in &run.mailboxes {
        let reasons: Vec<String> = m
            .skipped
            .iter()
            .map(|(r, n)| format!("skipped {n}: {r}"))
            .chain(m.failures.iter().map(|(r, n)| format!("failed {n}: {r}")))
            .collect();
        let _ = w.write_record([
            m.mailbox.clone(),
            m.destination.clone(),
            m.status.clone(),
            m.copied.to_string(),
            m.copied_bytes.to_string(),
            m.already_present.to_string(),
            m.resolved.to_string(),
            m.flags_updated.to_string(),
            m.skipped_total().to_string(),
            m.failed.to_string(),
            m.pending.to_string(),
            m.source_gone.to_string(),
            format!("{:.1}", m.seconds),
            m.error.clone().unwrap_or_default(),
            reasons.join("; "),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::prune_run_reports;

    #[test]
    fn only_the_newest_run_reports_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for id in [1, 2, 9, 10] {
            for ext in ["json", "csv"] {
                std::fs::write(dir.path().join(format!("mailferry-run-{id}.{ext}")), b"x").unwrap();
            }
        }
        std::fs::write(dir.path().join("mailferry-verify.json"), b"x").unwrap();
        std::fs::write(dir.path().join("mailferry-run-notes.txt"), b"x").unwrap();
        let removed = prune_run_reports(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 4, "{removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "mailferry-run-10.csv",
                "mailferry-run-10.json",
                "mailferry-run-9.csv",
                "mailferry-run-9.json",
                "mailferry-run-notes.txt",
                "mailferry-verify.json",
            ]
        );
    }
}
