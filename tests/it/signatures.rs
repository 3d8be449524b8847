//! The DKIM-signed and S/MIME-signed messages of the MimeKit corpus still verify after a copy,
//! checked by independent verifiers: dkimpy (`scripts/dkim-verify`) and `openssl smime -verify`.
//! Dovecot source -> Dovecot destination over IMAP, and -> the Graph emulator through importMime.

use std::path::{Path, PathBuf};
use std::process::Command;

use mailferry::emulator::{self, EmulatorConfig};

use crate::support::corpus::{corpora_dir, date_for, imap_ready};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};

/// (file, public key) of the DKIM-signed messages that verify at the source.
pub(crate) const DKIM: [(&str, &str); 3] = [
    ("dkim/gmail.msg", "dkim/gmail.pub"),
    ("dkim/related.msg", "dkim/gmail.pub"),
    ("dkim/multipart-no-end-boundary.msg", "dkim/gmail.pub"),
];
const SMIME: &str = "smime/thunderbird-signed.txt";

pub(crate) fn mimekit(rel: &str) -> PathBuf {
    corpora_dir().join("mimekit-testdata").join(rel)
}

/// dkimpy's verdict on `message` with the PEM key; panics with an install hint when missing.
pub(crate) fn dkim_verifies(message: &[u8], key: &Path, dir: &Path) -> bool {
    let file = dir.join(format!("m{}.eml", message.len()));
    std::fs::write(&file, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dkim-verify");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(key)
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'dkim'"),
        "dkimpy is required: python3 -m pip install dkimpy (scripts/install-deps does it)"
    );
    out.status.success()
}

/// OpenSSL's verdict on the S/MIME signature (the signer's certificate chain is not checked:
/// only that the signed bytes are intact).
fn smime_verifies(message: &[u8], dir: &Path) -> bool {
    let file = dir.join("smime.eml");
    std::fs::write(&file, message).unwrap();
    Command::new("openssl")
        .args(["smime", "-verify", "-noverify", "-out", "/dev/null", "-in"])
        .arg(&file)
        .output()
        .expect("openssl is required (apt-get install openssl)")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_and_smime_signatures_still_verify_at_both_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let mut signed: Vec<Vec<u8>> = DKIM
        .iter()
        .map(|(m, _)| imap_ready(&std::fs::read(mimekit(m)).unwrap()))
        .collect();
    signed.push(imap_ready(&std::fs::read(mimekit(SMIME)).unwrap()));

    // The oracles: every message verifies as loaded, and a one-byte change is caught.
    for ((_, key), m) in DKIM.iter().zip(&signed) {
        assert!(dkim_verifies(m, &mimekit(key), dir.path()), "source DKIM");
    }
    assert!(smime_verifies(&signed[3], dir.path()), "source S/MIME");
    let mut tampered = signed[0].clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 0x20;
    assert!(!dkim_verifies(&tampered, &mimekit(DKIM[0].1), dir.path()));

    let source = Dovecot::start(Layout::Fs);
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    source.add_user("imapuser", "pw1");
    source.add_user("exouser", "pw2");
    target.add_user("imapuser", "new1");
    let batch: Vec<_> = signed
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Default::default(), date_for(i)))
        .collect();
    source.load("imapuser", &["INBOX"], &batch);
    source.load("exouser", &["INBOX"], &batch);
    let emulator = emulator::start(EmulatorConfig::default()).await.unwrap();
    std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
    std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
    std::fs::write(
        dir.path().join("plan.toml"),
        format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
             master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{2}\"\nlogin_url = \"{2}\"\n\n\
             [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {3}\nca_file = \"{4}\"\n",
            source.port_tls(),
            source.ca_pem_path().display(),
            emulator.base_url(),
            target.port_tls(),
            target.ca_pem_path().display(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         exouser@contoso.example,exouser,,exo,,\nimapuser@contoso.example,imapuser,,newhost,imapuser,new1\n",
    )
    .unwrap();
    let run = crate::support::readback::migrate_plan(&dir.path().join("plan.toml")).await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);

    // IMAP destination: read back over IMAP.
    let copies = crate::reliability::imap_bodies(&target, "imapuser", "new1").await;
    // Graph destination: the MIME importMime stored.
    let insp = emulator.inspect();
    let view = insp.mailbox("exouser@contoso.example").unwrap();
    let graph: Vec<Vec<u8>> = view
        .items
        .iter()
        .map(|i| {
            insp.raw_mime("exouser@contoso.example", &i.id)
                .unwrap_or_default()
        })
        .collect();
    for (name, got) in [("IMAP", copies), ("Graph importMime", graph)] {
        assert_eq!(got.len(), signed.len(), "{name}");
        for ((_, key), original) in DKIM.iter().zip(&signed) {
            let copy = got
                .iter()
                .find(|g| g.len() == original.len() && *g == original);
            let copy =
                copy.unwrap_or_else(|| panic!("{name}: a DKIM message is not byte-identical"));
            assert!(
                dkim_verifies(copy, &mimekit(key), dir.path()),
                "{name}: DKIM fails after the copy"
            );
        }
        let smime = got
            .iter()
            .find(|g| **g == signed[3])
            .unwrap_or_else(|| panic!("{name}: S/MIME copy differs"));
        assert!(
            smime_verifies(smime, dir.path()),
            "{name}: S/MIME fails after the copy"
        );
    }
}
