//! Security: no secret (master password, client secret, access tokens, upload URLs) appears in
//! logs at any level, in output, errors, reports or the ledger's bytes; a TLS certificate that does
//! not verify is an error unless the plan says `insecure`; state and report files are 0600; the
//! emulator refuses a non-loopback address unless told.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mailferry::emulator::EmulatorConfig;

use super::{mailferry, run_bin};
use crate::migrate_imap::ImapRig;
use crate::support::corpus::{date_for, generated_message};
use crate::support::dovecot::{Layout, MASTER_PASSWORD};

/// A message with a 5 MB attachment: over the 4 MB request limit as base64, so it takes the JSON
/// route with an upload session (a pre-authenticated upload URL).
fn large_message() -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nMessage-ID: <large@example.org>\r\nSubject: large\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\nContent-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n"
        .to_vec();
    while m.len() < 5 << 20 {
        m.extend_from_slice(
            b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n",
        );
    }
    m.extend_from_slice(b"--b--\r\n");
    m
}

/// Finds a secret in `hay`: the fixed ones, an emulator access token (`emu.` + 43 base64url
/// characters) or an upload URL's `authtoken=`.
fn leak(hay: &[u8], fixed: &[&str]) -> Option<String> {
    for s in fixed {
        if hay.windows(s.len()).any(|w| w == s.as_bytes()) {
            return Some((*s).to_owned());
        }
    }
    if hay.windows(10).any(|w| w == b"authtoken=") {
        return Some("an upload URL".into());
    }
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    for (i, w) in hay.windows(4).enumerate() {
        if w == b"emu." && hay.len() >= i + 47 && hay[i + 4..i + 47].iter().all(b64) {
            return Some("an access token".into());
        }
    }
    None
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_output_reports_or_ledger_and_files_are_private() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["sam"], EmulatorConfig::default()).await;
    let mut msgs: Vec<Vec<u8>> = (0..20).map(|i| generated_message(i, 1500)).collect();
    msgs.push(large_message());
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Default::default(), date_for(i)))
        .collect();
    rig.dovecot.load("sam", &["INBOX"], &batch);
    // A second mailbox whose own (wrong) password is used and refused: its error must not show it.
    std::fs::write(
        rig.dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password\nsam@contoso.example,sam,\n\
         zed@contoso.example,zed*nobody,zed-wrong-password-42\n",
    )
    .unwrap();
    let plan = rig.plan_path.to_str().unwrap().to_owned();
    let fixed = [MASTER_PASSWORD, "demo-secret", "zed-wrong-password-42"];
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    for args in [
        vec!["survey", "--plan", &plan],
        vec!["migrate", "--plan", &plan],
        vec!["migrate", "--plan", &plan, "--json"],
        vec!["verify", "--plan", &plan, "--deep"],
        vec!["verify", "--plan", &plan, "--deep", "--json"],
        vec!["status", "--plan", &plan],
    ] {
        let out = mailferry()
            .args(&args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        seen.push((format!("{args:?} stdout"), out.stdout));
        seen.push((format!("{args:?} stderr (RUST_LOG=trace)"), out.stderr));
    }
    let sam = rig
        .emulator
        .inspect()
        .mailbox("sam@contoso.example")
        .unwrap();
    assert_eq!(sam.items.len(), msgs.len(), "everything arrived");
    assert!(
        rig.emulator
            .inspect()
            .requests()
            .iter()
            .any(|r| r.path.contains("createUploadSession")),
        "the large message used an upload session"
    );
    // The traces are real: they carry the request flow, so an empty log cannot pass.
    assert!(
        seen.iter().any(|(_, b)| b.len() > 10_000),
        "trace logs were written"
    );

    // Reports, the ledger (and its WAL) and anything else the runs left beside the plan.
    let mut private = 0;
    for p in files_in(rig.dir.path()) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if ["master", "secret", "mailboxes.csv", "plan.toml"].contains(&name.as_str()) {
            continue;
        }
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is mode {mode:o}");
        private += 1;
        seen.push((name, std::fs::read(&p).unwrap()));
    }
    assert!(private >= 3, "ledger and reports were found and checked");
    for (what, bytes) in &seen {
        assert_eq!(leak(bytes, &fixed), None, "a secret in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverifiable_certificate_is_an_error_unless_insecure() {
    let rig = ImapRig::with_emulator(Layout::Fs, &["tia"], EmulatorConfig::default()).await;
    rig.dovecot.load(
        "tia",
        &["INBOX"],
        &[(generated_message(1, 500), Default::default(), date_for(1))],
    );
    let text = std::fs::read_to_string(&rig.plan_path).unwrap();
    // Without the instance's CA, its certificate does not verify.
    let no_ca: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&rig.plan_path, &no_ca).unwrap();
    let plan = rig.plan_path.to_str().unwrap().to_owned();
    let (code, out, err) = run_bin(&["survey", "--plan", &plan]);
    assert_ne!(code, 0, "{out}{err}");
    let said = format!("{out}{err}").to_lowercase();
    assert!(
        said.contains("certificate"),
        "the error names the certificate: {out}{err}"
    );
    let (code, _, _) = run_bin(&["migrate", "--plan", &plan]);
    assert_eq!(code, 1);
    assert_eq!(
        rig.items("tia"),
        0,
        "nothing moved over an unverified connection"
    );

    let insecure = no_ca.replace(
        "security = \"tls\"\n",
        "security = \"tls\"\ninsecure = true\n",
    );
    assert_ne!(insecure, no_ca);
    std::fs::write(&rig.plan_path, insecure).unwrap();
    let (code, out, err) = run_bin(&["migrate", "--plan", &plan]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(rig.items("tia"), 1);
}

#[test]
fn the_emulator_refuses_a_non_loopback_address_unless_told() {
    let (code, out, err) = run_bin(&["emulator", "--listen", "0.0.0.0:0"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("0.0.0.0"), "{err}");
    let (code, _, err) = run_bin(&["emulator", "--listen", "192.0.2.1:8750"]);
    assert_ne!(code, 0, "{err}");
}

#[test]
fn the_leak_scanner_finds_what_it_looks_for() {
    let token = format!("Authorization: Bearer emu.{}", "A".repeat(43));
    assert!(leak(token.as_bytes(), &[]).is_some());
    assert!(leak(b"PUT /upload/AttachmentSessions/x?authtoken=abc", &[]).is_some());
    assert!(leak(b"password master-secret here", &[MASTER_PASSWORD]).is_some());
    assert_eq!(leak(b"nothing to see", &[MASTER_PASSWORD]), None);
}
