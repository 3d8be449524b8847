//! The ledger's disk fills up mid-run. The run must stop cleanly (no panic, exit code 1 or 2, an
//! error naming the ledger's failed write), lose and double nothing, and a run after the space
//! returns must finish. Two faults, one test each, so the test name says which one ran:
//!
//! - **tmpfs** (`ENOSPC`): the ledger (`--state`) lives on a small tmpfs mounted for the test;
//!   once the run has copied a seeded number of messages the test fills that filesystem with a
//!   filler file. Mounting needs CAP_SYS_ADMIN (root outside a restricted container). Where mount
//!   is refused this test fails with a message saying so rather than passing on another fault;
//!   `scripts/test` probes mount first and skips it by name, visibly, where it cannot run.
//! - **file-size limit** (`EFBIG`): RLIMIT_FSIZE on the child (`ulimit -f`, with SIGXFSZ ignored
//!   so a write over the limit fails instead of killing the process); the ledger reaches its
//!   limit mid-run. Needs no privilege, so it runs everywhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

use mailferry::emulator::{EmulatorConfig, Latency};

use super::{assert_verify_perfect, graph_bodies, record, rng, rounds, run_bin, tally};
use crate::migrate::{Rig, generated, write_maildir};
use crate::support::corpus::imap_ready;

/// A tmpfs mounted for the test, unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn mount(size: &str) -> Option<TinyFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyFs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros into `path` until the filesystem refuses; returns the bytes written.
fn fill(path: &Path) -> usize {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut n = 0;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len();
    }
    let _ = f.sync_all();
    n
}

const MESSAGES: usize = 400;

/// Waits for the child with a generous bound (a hang is a failure of its own).
fn wait_bounded(child: &mut std::process::Child) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mailferry hung after the disk filled up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = std::process::Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut out.stderr);
    }
    out
}

/// Which way the ledger's disk runs out.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A 4 MiB tmpfs filled up mid-run: writes fail with ENOSPC.
    FullTmpfs,
    /// RLIMIT_FSIZE of 1 MiB on the child: writes past it fail with EFBIG.
    FileSizeLimit,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_on_a_tmpfs_that_fills_up_fails_cleanly_then_resumes() {
    ledger_disk_runs_out(Fault::FullTmpfs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_over_its_file_size_limit_fails_cleanly_then_resumes() {
    ledger_disk_runs_out(Fault::FileSizeLimit).await;
}

async fn ledger_disk_runs_out(fault: Fault) {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let cfg = EmulatorConfig {
            latency: Latency {
                fixed_ms: 2,
                jitter_ms: 2,
            },
            ..EmulatorConfig::default()
        };
        let rig = Rig::new(&["dan"], cfg).await;
        let msgs: Vec<Vec<u8>> = (0..MESSAGES).map(|i| generated(i, 800 + i * 3)).collect();
        write_maildir(
            &rig.tree("dan"),
            &[("", msgs.iter().map(|m| (m.clone(), "S")).collect())],
        );
        let plan = rig.plan_path.to_str().unwrap().to_owned();
        let tiny = match fault {
            Fault::FullTmpfs => Some(TinyFs::mount("4m").unwrap_or_else(|| {
                panic!(
                    "mount -t tmpfs was refused, so the ENOSPC fault cannot run here (it needs \
                     CAP_SYS_ADMIN). The EFBIG fault (ledger_over_its_file_size_limit_...) runs \
                     without privilege; skip this one by name where mount is not permitted."
                )
            })),
            Fault::FileSizeLimit => None,
        };
        let (state, out): (PathBuf, std::process::Output) = match &tiny {
            Some(fs) => {
                let state = fs.path().join("ledger.sqlite");
                let mut child = super::mailferry()
                    .args([
                        "migrate",
                        "--plan",
                        &plan,
                        "--state",
                        state.to_str().unwrap(),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let p = rng(&format!("disk-full/{k}")).gen_range(20..MESSAGES / 2);
                let insp = rig.emulator.inspect();
                while insp
                    .mailbox("dan@contoso.example")
                    .map_or(0, |m| m.items.len())
                    < p
                    && child.try_wait().unwrap().is_none()
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the run ended before the disk filled"
                );
                assert!(fill(&fs.path().join("filler")) < 8 << 20);
                (
                    state,
                    tokio::task::block_in_place(|| wait_bounded(&mut child)),
                )
            }
            None => {
                // The file-size limit stops the ledger growing past 1 MiB, about half way through.
                let dir = rig.dir.path().join("state");
                std::fs::create_dir_all(&dir).unwrap();
                let state = dir.join("ledger.sqlite");
                let out = Command::new("bash")
                    .args([
                        "-c",
                        "trap '' XFSZ; ulimit -f 1024; exec \"$0\" migrate --plan \"$1\" --state \"$2\"",
                        env!("CARGO_BIN_EXE_mailferry"),
                        &plan,
                        state.to_str().unwrap(),
                    ])
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                (state, out)
            }
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        assert!(matches!(code, 1 | 2), "a clean failure, not {code}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        // Each fault has its own words, and asserting the ones that belong to the fault proves
        // which fault the run met. ENOSPC is SQLITE_FULL, "database or disk is full", on stderr.
        // SQLite reports EFBIG as a plain I/O error ("disk I/O error") with the ledger's path.
        let lower = err.to_lowercase();
        match fault {
            Fault::FullTmpfs => assert!(
                lower.contains("full") || lower.contains("no space"),
                "the message names the full disk: {err}"
            ),
            Fault::FileSizeLimit => {
                // Where the write fails decides where the error lands: in the mailbox's failure
                // (then in the run report), or in the run itself (then on stderr, no report).
                let report: String = err
                    .split_whitespace()
                    .filter(|w| w.ends_with(".json"))
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .collect();
                let text = format!("{err}{report}");
                assert!(
                    text.contains("ledger") && text.contains("disk I/O error"),
                    "the failure names the ledger's write error: {text}"
                );
                // The summary line: "dan@contoso.example: failed (N copied, ...".
                let copied: u64 = err
                    .split_once("failed (")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("a summary line: {err}"));
                assert!(
                    copied > 0 && copied < MESSAGES as u64,
                    "the limit was reached mid-run: {err}"
                );
            }
        }
        inj += 1;

        // Space returns: the next run finishes, and nothing was lost or doubled.
        if let Some(fs) = &tiny {
            std::fs::remove_file(fs.path().join("filler")).unwrap();
        }
        let (code, _, err) = run_bin(&[
            "migrate",
            "--plan",
            &plan,
            "--state",
            state.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
        let (l, d) = tally(
            &expected,
            &graph_bodies(&rig.emulator, "dan@contoso.example"),
        );
        assert_eq!((l, d), (0, 0), "lost, duplicated");
        (lost, dup) = (lost + l, dup + d);
        assert_verify_perfect(&rig.plan_path, Some(&state)).await;
        drop(tiny);
    }
    let name = match fault {
        Fault::FullTmpfs => "ledger-disk-full",
        Fault::FileSizeLimit => "ledger-file-size-limit",
    };
    record(name, inj, lost, dup);
}

/// The spool directory cannot be used (here `$TMPDIR` does not exist; a full disk fails the same
/// way, at the first write). A message large enough to be spooled cannot be read, which must be a
/// clear error naming the directory, must not touch the messages already copied nor mark the
/// large one done, and a run with a usable `$TMPDIR` must then copy it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_spool_directory_fails_clearly_and_loses_nothing() {
    let rig = Rig::new(&["sam"], EmulatorConfig::default()).await;
    let attachment: Vec<u8> = (0..7_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut big = b"From: a@example.org\r\nMessage-ID: <spool@example.org>\r\nSubject: big\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\nContent-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n"
        .to_vec();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&attachment);
    for line in encoded.as_bytes().chunks(76) {
        big.extend_from_slice(line);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"--b--\r\n");
    assert!(big.len() as u64 >= mailferry::body::SPOOL_AT);
    let small: Vec<(Vec<u8>, &str)> = (0..3).map(|i| (generated(i, 2_000), "S")).collect();
    let mut inbox = small.clone();
    inbox.push((big, "S"));
    write_maildir(&rig.tree("sam"), &[("", inbox)]);
    let plan = rig.plan_path.to_str().unwrap().to_owned();

    let missing = rig.dir.path().join("no-such-tmp");
    let out = super::mailferry()
        .args(["migrate", "--plan", &plan])
        .env("TMPDIR", &missing)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}\n{err}");
    assert!(
        format!("{stdout}{err}").contains("spool")
            && format!("{stdout}{err}").contains("no-such-tmp"),
        "the error names the spool directory: {stdout}\n{err}"
    );
    let view = |emu: &mailferry::emulator::EmulatorHandle| {
        emu.inspect()
            .mailbox("sam@contoso.example")
            .map(|m| m.items.len())
            .unwrap_or(0)
    };
    assert!(
        view(&rig.emulator) <= 3,
        "the large message was not written"
    );

    let (code, _, err) = run_bin(&["migrate", "--plan", &plan]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(view(&rig.emulator), 4, "every message exactly once");
    assert_verify_perfect(&rig.plan_path, None).await;
}
