//! IMAP to IMAP with `mailferry migrate` against imapsync's figures (issue 6, "Performance").
//!
//! A Dovecot pair on this machine (source `LAYOUT=fs` with `/`, destination Maildir++ with `.`,
//! both implicit TLS with certificates checked): 5,000 generated messages, about 480 MB, in 30
//! folders, 20 of them byte-identical duplicates and 38 without a Message-ID (what imapsync skips
//! by default). The release binary copies them (first run) and runs again with nothing to copy;
//! each run is measured under `/usr/bin/time`. The destination is then counted folder by folder.
//!
//! When `imapsync` is on PATH, the same copy and re-run are done with it into a third Dovecot
//! for a side-by-side table; otherwise the figures measured for imapsync 2.229 on this kind of
//! machine (docs/field-notes.md) are printed as the reference, and the table says so.
//!
//! Run: `cargo bench --bench imap_to_imap` (needs Dovecot and GNU time; `scripts/bench` installs
//! both and tries to install imapsync).

mod support;

use support::{Measured, dovecot, num};

/// imapsync 2.229 on a 2-core machine, loopback Dovecot 2.3.19 pair, 5,078 messages / 479 MB
/// (docs/field-notes.md): messages/s on the first copy, the re-run's seconds, peak RSS, messages skipped.
const IMAPSYNC_FIRST_MSGS_PER_S: (f64, f64) = (143.0, 151.0);
const IMAPSYNC_RERUN_S: (f64, f64) = (3.3, 5.1);
const IMAPSYNC_RSS_MIB: f64 = 201.0;
const IMAPSYNC_SKIPPED: &str = "58 of 5,078";

fn plan(dir: &std::path::Path, src: &dovecot::Dovecot, dst: &dovecot::Dovecot) -> String {
    support::write_private(
        &dir.join("mailboxes.csv"),
        "EmailAddress,UserName,Password,DestinationUser,DestinationPassword\nbench@example.org,bench,pw,bench,pw2\n",
    );
    let path = dir.join("plan.toml");
    support::write_private(
        &path,
        &format!(
            "mailboxes = \"mailboxes.csv\"\n\n{}\n[destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\n\
             port = {}\nsecurity = \"tls\"\nca_file = \"{}\"\n",
            support::source_section(src),
            dst.port_tls(),
            dst.ca_pem_path().display()
        ),
    );
    path.to_string_lossy().into_owned()
}

fn imapsync(src: &dovecot::Dovecot, dst: &dovecot::Dovecot) -> Option<Measured> {
    let bin = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("imapsync"))
        .find(|p| p.is_file())?;
    let (p1, p2) = (src.port_tls().to_string(), dst.port_tls().to_string());
    let args = [
        "--host1",
        "localhost",
        "--port1",
        &p1,
        "--ssl1",
        "--user1",
        "bench",
        "--password1",
        "pw",
        "--host2",
        "localhost",
        "--port2",
        &p2,
        "--ssl2",
        "--user2",
        "bench",
        "--password2",
        "pw2",
        "--nolog",
        "--noreleasecheck",
    ];
    Some(support::run_measured(&bin, &args, &[]))
}

fn row(label: &str, m: &Measured, messages: usize, bytes: u64, skipped: &str) -> String {
    let per_s = if messages > 0 {
        format!("{:.0}", messages as f64 / m.wall)
    } else {
        String::new()
    };
    let mb_s = if bytes > 0 {
        format!("{:.1}", bytes as f64 / 1e6 / m.wall)
    } else {
        String::new()
    };
    format!(
        "| {label} | {:.2} s | {per_s} | {mb_s} | {:.1} | {:.0} MiB | {skipped} |",
        m.wall,
        m.cpu(),
        m.peak_rss_mib
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let src = dovecot::Dovecot::start(dovecot::Layout::Fs);
    let dst = dovecot::Dovecot::start(dovecot::Layout::MaildirPlusPlus);
    src.add_user("bench", "pw");
    dst.add_user("bench", "pw2");
    let loaded = support::load_mailbox(&src, "bench", None);
    let dir = tempfile::Builder::new()
        .prefix("mailferry-bench-imap-")
        .tempdir()
        .expect("temp dir");
    let plan = plan(dir.path(), &src, &dst);
    let args = ["migrate", "--plan", plan.as_str(), "--json"];

    let dovecots = || support::dovecot_cpu(&src) + support::dovecot_cpu(&dst);
    let cpu0 = dovecots();
    let first = support::run_measured(&support::mailferry_bin(), &args, &[]);
    let cpu1 = dovecots();
    let s1 = support::mailbox_summary(&first);
    let rerun = support::run_measured(&support::mailferry_bin(), &args, &[]);
    let cpu2 = dovecots();
    let s2 = support::mailbox_summary(&rerun);
    assert_eq!(first.exit, 0, "first run failed:\n{}", first.stderr);
    assert_eq!(rerun.exit, 0, "re-run failed:\n{}", rerun.stderr);
    let at_dest = support::count_messages(&dst, "bench");
    let copied = num(&s1, "copied") as usize;
    let skipped = support::map_total(&s1, "skipped") + num(&s1, "failed");
    assert_eq!(
        (copied, at_dest),
        (loaded.messages, loaded.messages),
        "first run: copied, found at the destination"
    );
    assert_eq!(num(&s2, "copied"), 0, "the re-run copied something");

    let theirs = {
        let third = dovecot::Dovecot::start(dovecot::Layout::MaildirPlusPlus);
        third.add_user("bench", "pw2");
        imapsync(&src, &third).map(|first| {
            let rerun = imapsync(&src, &third).unwrap_or_default();
            let n = support::count_messages(&third, "bench");
            (first, rerun, n)
        })
    };

    println!();
    println!(
        "machine: {}; source {} messages, {:.0} MB, {} folders ({} duplicates, {} without Message-ID); TLS both sides",
        support::machine(),
        loaded.messages,
        loaded.bytes as f64 / 1e6,
        loaded.folders,
        support::DUPLICATES,
        support::WITHOUT_MESSAGE_ID
    );
    println!();
    println!("| run | wall | messages/s | MB/s | CPU s | peak RSS | messages skipped |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "{}",
        row(
            "mailferry first copy",
            &first,
            copied,
            num(&s1, "copied_bytes"),
            &format!(
                "{skipped} ({at_dest} of {} at the destination)",
                loaded.messages
            ),
        )
    );
    println!(
        "{}",
        row(
            &format!(
                "mailferry no-op re-run ({} folders unchanged)",
                num(&s2, "folders_unchanged")
            ),
            &rerun,
            0,
            0,
            "0"
        )
    );
    let (ref_rate, ref_rerun) = match &theirs {
        Some((f, r, n)) => {
            let skipped = loaded.messages.saturating_sub(*n);
            println!(
                "{}",
                row(
                    "imapsync first copy (measured here)",
                    f,
                    *n,
                    loaded.bytes,
                    &format!("{skipped} of {}", loaded.messages)
                )
            );
            println!("{}", row("imapsync re-run (measured here)", r, 0, 0, ""));
            (*n as f64 / f.wall, r.wall)
        }
        None => {
            println!(
                "| imapsync 2.229 first copy (docs/field-notes.md, not measured here: imapsync is not installable on this machine) | 33-35 s | {:.0}-{:.0} | 12.9-13.7 MiB/s | about 20 | {IMAPSYNC_RSS_MIB:.0} MiB | {IMAPSYNC_SKIPPED} |",
                IMAPSYNC_FIRST_MSGS_PER_S.0, IMAPSYNC_FIRST_MSGS_PER_S.1
            );
            println!(
                "| imapsync 2.229 re-run (docs/field-notes.md) | {:.1}-{:.1} s | | | | 192 MiB | |",
                IMAPSYNC_RERUN_S.0, IMAPSYNC_RERUN_S.1
            );
            (IMAPSYNC_FIRST_MSGS_PER_S.1, IMAPSYNC_RERUN_S.0)
        }
    };
    let rate = copied as f64 / first.wall;
    let peak = first.peak_rss_mib.max(rerun.peak_rss_mib);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    println!();
    println!(
        "Dovecot pair CPU (both instances): {:.1} s during the first copy, {:.2} s during the re-run",
        cpu1 - cpu0,
        cpu2 - cpu1
    );
    println!(
        "Goals (against imapsync's best figure): first copy >= 4x its messages/s: {:.1}x ({}); re-run >= 10x faster: {:.1}x ({}); peak RSS <= 50 MB: {peak:.0} MiB ({}); zero skipped: {skipped} ({})",
        rate / ref_rate,
        verdict(rate >= 4.0 * ref_rate),
        ref_rerun / rerun.wall,
        verdict(ref_rerun >= 10.0 * rerun.wall),
        verdict(peak * 1.048_576 <= 50.0),
        verdict(skipped == 0 && at_dest == loaded.messages)
    );
}
