//! Doctor's output: aligned `ok` / `warn` / `FAIL` lines, then the findings; or one JSON document.

use super::{DoctorReport, Status};

fn label(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok  ",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
    }
}

/// The report as text.
pub fn text(r: &DoctorReport) -> String {
    let width = r
        .checks
        .iter()
        .map(|c| c.target.chars().count() + c.check.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in &r.checks {
        let what = format!("{} {}", c.target, c.check);
        out.push_str(&format!(
            "{}  {what:<width$}  {}\n",
            label(c.status),
            c.message
        ));
    }
    if !r.findings.is_empty() {
        out.push_str("\nhow this tenant treated the test messages:\n");
        for f in &r.findings {
            out.push_str(&format!(
                "  {} [{}] {} = {}: {}\n",
                f.target, f.route, f.property, f.value, f.meaning
            ));
        }
    }
    let (fails, warns) = r.checks.iter().fold((0, 0), |(f, w), c| match c.status {
        Status::Fail => (f + 1, w),
        Status::Warn => (f, w + 1),
        Status::Ok => (f, w),
    });
    out.push_str(&format!(
        "\n{} checks: {} failed, {} warnings\n",
        r.checks.len(),
        fails,
        warns
    ));
    out
}

/// The report as one JSON document.
pub fn json(r: &DoctorReport) -> String {
    let doc = serde_json::json!({
        "ok": !r.failed(),
        "checks": r.checks,
        "findings": r.findings,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_status_and_the_summary_counts() {
        let mut r = DoctorReport::default();
        r.push("source h:993", "tcp", Status::Ok, "connected");
        r.push("source h:993", "login", Status::Fail, "refused");
        r.push("graph exo", "token", Status::Warn, "hm");
        let t = text(&r);
        assert!(t.contains("ok    source h:993 tcp"), "{t}");
        assert!(t.contains("FAIL  source h:993 login  refused"), "{t}");
        assert!(t.contains("3 checks: 1 failed, 1 warnings"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"][1]["status"], "fail");
    }
}
