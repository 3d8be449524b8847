//! The real third-party messages every route must carry: CPython's email tests, MimeKit's
//! messages, Dovecot imaptest's mailboxes (mbox, split on `From ` lines) and the SpamAssassin
//! samples, read from `tests/data`.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn files(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let d = root().join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", d.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .map(|p| {
            (
                format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Splits an mbox on lines starting with `From ` (the separator line itself is dropped).
pub fn split_mbox(data: &[u8]) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"From ") {
            if let Some(m) = cur.take() {
                msgs.push(m);
            }
            cur = Some(Vec::new());
        } else if let Some(m) = cur.as_mut() {
            m.extend_from_slice(line);
        }
    }
    if let Some(m) = cur {
        msgs.push(m);
    }
    msgs.into_iter()
        .filter(|m| !m.iter().all(|b| b.is_ascii_whitespace()))
        .collect()
}

/// Every corpus message, named `dir/file` or `dir/file#n` for mbox members.
pub fn all_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    out.extend(files("cpython-email", |n| n.starts_with("msg_")));
    out.extend(files("mimekit-testdata/messages", |_| true));
    out.extend(files("spamassassin-samples", |n| n.starts_with("sample-")));
    for (name, data) in files("imaptest", |n| n.ends_with(".mbox")) {
        for (i, m) in split_mbox(&data).into_iter().enumerate() {
            out.push((format!("{name}#{}", i + 1), m));
        }
    }
    out
}

#[test]
fn corpus_is_there_and_split() {
    let all = all_messages();
    assert!(all.len() > 250, "{}", all.len());
    assert_eq!(
        split_mbox(b"From a\nX: 1\n\nb\nFrom c\nY: 2\n\nd\n"),
        vec![b"X: 1\n\nb\n".to_vec(), b"Y: 2\n\nd\n".to_vec()]
    );
}
