//! Real third-party test messages from `tests/data`, and generated ones.
//!
//! IMAP servers store and return messages with CRLF line ends (Dovecot converts bare LF on APPEND),
//! so [`imap_ready`] normalises line ends first: that normalised form is what a byte-exact copy must
//! preserve.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, TimeZone};
use mailferry::model::Flags;

/// `tests/data` relative to the package root.
pub fn corpora_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every message of the corpora, as `(name, raw bytes)` in a stable order: cpython-email,
/// mimekit-testdata (messages, dkim, smime, partial, mbox files split on `From ` lines), imaptest
/// mbox files, spamassassin samples.
pub fn corpus_messages() -> Vec<(String, Vec<u8>)> {
    let root = corpora_dir();
    let mut out = Vec::new();
    let files = |sub: &str, accept: &dyn Fn(&str) -> bool| {
        let dir = root.join(sub);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| accept(&n.to_string_lossy())))
            .collect();
        names.sort();
        names
    };
    for p in files("cpython-email", &|n| n.starts_with("msg_")) {
        out.push((label(&p), std::fs::read(&p).expect("read corpus")));
    }
    for sub in [
        "mimekit-testdata/messages",
        "mimekit-testdata/partial",
        "mimekit-testdata/smime",
    ] {
        for p in files(sub, &|n| {
            n.ends_with(".txt") || n.ends_with(".eml") || n.ends_with(".msg")
        }) {
            out.push((label(&p), std::fs::read(&p).expect("read corpus")));
        }
    }
    for p in files("mimekit-testdata/dkim", &|n| n.ends_with(".msg")) {
        out.push((label(&p), std::fs::read(&p).expect("read corpus")));
    }
    for p in files("mimekit-testdata/mbox", &|n| n.ends_with(".mbox.txt")) {
        out.extend(split_mbox(
            &label(&p),
            &std::fs::read(&p).expect("read corpus"),
        ));
    }
    for p in files("imaptest", &|n| n.ends_with(".mbox")) {
        out.extend(split_mbox(
            &label(&p),
            &std::fs::read(&p).expect("read corpus"),
        ));
    }
    for p in files("spamassassin-samples", &|n| {
        !n.contains("SOURCE") && !n.contains("LICENSE")
    }) {
        out.push((label(&p), std::fs::read(&p).expect("read corpus")));
    }
    out.retain(|(_, raw)| !raw.iter().all(u8::is_ascii_whitespace));
    out
}

fn label(p: &std::path::Path) -> String {
    let parent = p
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    format!(
        "{}/{}",
        parent.unwrap_or_default(),
        p.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Splits an mbox on `From ` lines at the start of a line (dropping the separator line).
pub fn split_mbox(name: &str, data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                out.push(m);
            }
            current = Some(Vec::new());
        } else if let Some(m) = current.as_mut() {
            m.extend_from_slice(line);
        }
    }
    out.extend(current);
    out.into_iter()
        .filter(|m| !m.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(i, m)| (format!("{name}#{i}"), m))
        .collect()
}

/// The bytes an IMAP server will hand back for this message: every line ending CRLF, and a final
/// CRLF when the message does not end with one.
pub fn imap_ready(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A deterministic INTERNALDATE for message `i` (with varied offsets).
pub fn date_for(i: usize) -> DateTime<FixedOffset> {
    let offsets = [0, 3600, -5 * 3600, 5 * 3600 + 1800, -8 * 3600];
    let tz = FixedOffset::east_opt(offsets[i % offsets.len()])
        .unwrap_or(FixedOffset::east_opt(0).expect("utc"));
    tz.timestamp_opt(1_500_000_000 + (i as i64) * 7_919, 0)
        .single()
        .expect("valid date")
}

/// Deterministic flags for message `i`: a mix of system flags and keywords.
pub fn flags_for(i: usize) -> Flags {
    let mut atoms = Vec::new();
    if i.is_multiple_of(2) {
        atoms.push("\\Seen");
    }
    if i.is_multiple_of(3) {
        atoms.push("\\Answered");
    }
    if i.is_multiple_of(5) {
        atoms.push("\\Flagged");
    }
    if i.is_multiple_of(7) {
        atoms.push("$Forwarded");
    }
    if i.is_multiple_of(11) {
        atoms.push("Work");
    }
    if i.is_multiple_of(13) {
        atoms.push("\\Draft");
    }
    Flags::from_atoms(atoms)
}

/// A generated message of about `size` bytes with a unique Message-ID (CRLF line ends, base64 body).
pub fn generated_message(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <sender{i}@example.org>\r\nTo: rcpt@example.net\r\n\
         Subject: Generated message {i}\r\nDate: Mon, 3 Jul 2017 10:00:00 +0000\r\n\
         Message-ID: <gen-{i}@mailferry.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while m.len() < size {
        for _ in 0..76 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            m.push(alphabet[(x >> 58) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}
