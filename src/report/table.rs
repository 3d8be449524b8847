//! Plain-text tables for terminals: the end-of-run summary and anything else in columns.

use super::{MailboxSummary, RunSummary};

/// Renders rows under a header with aligned columns (first column left, the rest right).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    out.push_str(&line(
        &mut widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    ));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// Bytes for humans: `512 B`, `1.5 MB` (decimal units, as quotas and Microsoft's limits use).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn summary_row(m: &MailboxSummary) -> Vec<String> {
    vec![
        m.mailbox.clone(),
        m.status.clone(),
        m.copied.to_string(),
        bytes(m.copied_bytes),
        m.already_present.to_string(),
        m.flags_updated.to_string(),
        m.skipped_total().to_string(),
        m.failed.to_string(),
        m.pending.to_string(),
        format!("{:.1}s", m.seconds),
    ]
}

/// The end-of-run table, one line per mailbox and a total, followed by reasons.
pub fn run_summary(run: &RunSummary) -> String {
    let header = [
        "mailbox", "status", "copied", "bytes", "present", "flags", "skipped", "failed", "pending",
        "time",
    ];
    let mut rows: Vec<Vec<String>> = run.mailboxes.iter().map(summary_row).collect();
    let total = run.total();
    let mut t = summary_row(&total);
    t[1] = String::new();
    rows.push(t);
    let mut out = render(&header, &rows);
    for m in &run.mailboxes {
        if let Some(e) = &m.error {
            out.push_str(&format!("{}: {e}\n", m.mailbox));
        }
        for (reason, n) in &m.skipped {
            out.push_str(&format!("{}: skipped {n}: {reason}\n", m.mailbox));
        }
        for (reason, n) in &m.failures {
            out.push_str(&format!("{}: failed {n}: {reason}\n", m.mailbox));
        }
        for w in &m.warnings {
            out.push_str(&format!("{}: warning: {w}\n", m.mailbox));
        }
        if !m.keywords_dropped.is_empty() {
            let list: Vec<String> = m
                .keywords_dropped
                .iter()
                .map(|(k, n)| format!("{k} on {n}"))
                .collect();
            out.push_str(&format!(
                "{}: keywords not made categories: {} (see the operator guide, Keywords)\n",
                m.mailbox,
                list.join(", ")
            ));
        }
        if m.source_gone > 0 {
            out.push_str(&format!(
                "{}: {} messages are no longer at the source (kept at the destination)\n",
                m.mailbox, m.source_gone
            ));
        }
        if m.repaired > 0 {
            out.push_str(&format!(
                "{}: repair: {} recorded as copied were missing at the destination and were copied again\n",
                m.mailbox, m.repaired
            ));
        }
        if let Some(a) = &m.accounting {
            out.push_str(&format!("{}:\n{}", m.mailbox, a.render(20)));
        }
    }
    for e in &run.plan_errors {
        out.push_str(&format!("plan: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_units_are_decimal() {
        let t = render(
            &["a", "bb"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "100".into()],
            ],
        );
        assert_eq!(t, "a     bb\n---  ---\nxyz    1\nq    100\n");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
    }
}
