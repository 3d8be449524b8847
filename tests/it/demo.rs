//! `mailferry demo` end to end, as a user runs it: the binary, on the bundled samples, with no
//! server and no network. It must exit 0 and show the survey, both run summaries and PERFECT;
//! `--keep` leaves the plan, the ledger and the reports behind.

use std::process::{Command, Stdio};

fn demo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .arg("demo")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run mailferry demo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_migrates_reruns_as_a_no_op_and_verifies_perfect() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("work");
    let (code, out, err) = demo(&["--keep", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Survey, two summaries (the second copying nothing), verify.
    assert!(out.contains("plan: 3 mailboxes (0 failed)"), "{out}");
    assert_eq!(out.matches("TOTAL").count(), 2, "{out}");
    let totals: Vec<&str> = out.lines().filter(|l| l.starts_with("TOTAL")).collect();
    let copied = |l: &str| l.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(copied(totals[0]), "0", "{out}");
    assert_eq!(
        copied(totals[1]),
        "0",
        "second run copied something:\n{out}"
    );
    assert!(out.contains("verdict: PERFECT"), "{out}");
    assert!(out.contains("demo OK"), "{out}");

    // The kept directory holds what an operator would inspect; the repository's fixtures were
    // not written to (the ledger lives in the copy).
    for f in [
        "plan.toml",
        "plan.ledger.sqlite",
        "mailferry-run-1.json",
        "mailferry-run-2.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    let fixtures = mailferry::demo::default_fixtures();
    assert!(!fixtures.join("plan.ledger.sqlite").exists());

    // A non-empty --keep directory is refused (an old ledger would fake the first run).
    let (code, _, err) = demo(&["--keep", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn demo_without_fixtures_says_where_to_point_it() {
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = demo(&["--fixtures", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--fixtures"), "{err}");
}
