//! The skeleton against real messages (`tests/data`) and mail-parser: a message without
//! large parts is its own skeleton, and when every leaf is left out, each placeholder decodes back
//! to exactly the attachment mail-parser finds in the whole message.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::*;
use crate::body::SpoolWriter;
use crate::body::to_crlf;
use crate::engine::ports::OutgoingMessage;
use crate::model::{Flags, SourceIdentity, Uid, UidValidity};
use crate::sink::graph::decode;
use crate::sink::graph::mime_to_json::{self, AttachmentData};

fn corpus_files() -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if !p.extension().is_some_and(|e| e == "md" || e == "json") {
                out.push((p.clone(), std::fs::read(&p).expect("read corpus file")));
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for sub in [
        "cpython-email",
        "mimekit-testdata",
        "spamassassin-samples",
        "imaptest",
    ] {
        walk(&root.join(sub), &mut out);
    }
    assert!(out.len() > 100, "corpus files: {}", out.len());
    out
}

fn spooled(raw: &[u8]) -> Body {
    let mut w = SpoolWriter::new().expect("spool");
    w.write_all(raw).expect("write");
    Body::Spooled(w.finish().expect("finish"))
}

fn identity(body: &Body) -> SourceIdentity {
    SourceIdentity {
        mailbox: "m".into(),
        folder: "INBOX".into(),
        uid_validity: UidValidity::new(1).expect("validity"),
        uid: Uid::new(1).expect("uid"),
        sha256: body.sha256(),
    }
}

fn outgoing<'a>(
    body: &'a Body,
    flags: &'a Flags,
    identity: &'a SourceIdentity,
    message_id: Option<&'a str>,
) -> OutgoingMessage<'a> {
    OutgoingMessage {
        body,
        flags,
        internal_date: chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("date"),
        identity,
        message_id,
    }
}

#[test]
fn a_message_without_large_parts_is_its_own_skeleton() {
    for (path, raw) in corpus_files() {
        for bytes in [raw.clone(), to_crlf(&raw)] {
            let skel = build(&Body::Memory(bytes.clone()), u64::MAX, u64::MAX).expect("build");
            assert!(skel.parts.is_empty(), "{}", path.display());
            // Copied in one contiguous run: the message is its own skeleton, with no copy made.
            assert!(skel.bytes.is_none(), "{}: skeleton differs", path.display());
            assert!(*skel.text(&Body::Memory(bytes.clone())).expect("text") == *bytes);
        }
    }
}

/// Every leaf left out (text too): mail-parser must find the same attachments in the skeleton,
/// and each placeholder must decode to the bytes mail-parser decodes from the whole message.
#[test]
fn placeholders_decode_to_what_mail_parser_decodes() {
    let mut compared = 0;
    for (path, raw) in corpus_files() {
        let raw = to_crlf(&raw);
        let Some(whole) = mime_to_json::parse(&raw) else {
            continue;
        };
        let body = Body::Memory(raw.clone());
        let skel = build(&body, 1, 1).expect("build");
        let text = skel.text(&body).expect("text");
        let skeleton = MessageParser::default()
            .parse(&text)
            .unwrap_or_else(|| panic!("{}: skeleton does not parse", path.display()));
        let names = |m: &mail_parser::Message<'_>| -> Vec<Option<String>> {
            m.attachments()
                .map(|a| a.attachment_name().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(&whole), names(&skeleton), "{}", path.display());
        for (a, s) in whole.attachments().zip(skeleton.attachments()) {
            // Text is converted to UTF-8 by mail-parser and nested messages re-framed; binary
            // parts must be byte-identical.
            if !matches!(a.body, PartType::Binary(_) | PartType::InlineBinary(_)) {
                continue;
            }
            if a.contents().is_empty() {
                // mail-parser gives up on invalid base64 (a truncated last group); the streamed
                // decoder keeps what it can, which is not a difference worth matching.
                continue;
            }
            let data = s.contents().trim_ascii_end();
            let Some(part) = skel
                .parts
                .iter()
                .find(|p| data.ends_with(p.token.as_bytes()))
            else {
                panic!(
                    "{}: no placeholder for {:?}",
                    path.display(),
                    a.attachment_name()
                );
            };
            let decoded = Body::Spooled(decode::to_spool(&body, part).expect("decode"))
                .bytes()
                .expect("read")
                .into_owned();
            assert!(
                decoded == a.contents(),
                "{}: attachment {:?} decodes to {} bytes, mail-parser has {}",
                path.display(),
                a.attachment_name(),
                decoded.len(),
                a.contents().len()
            );
            compared += 1;
        }
    }
    assert!(compared >= 30, "binary attachments compared: {compared}");
}

/// A spooled message with a large PDF, a large quoted-printable part and a large forwarded
/// message: the JSON route's rebuild finds each as an attachment, keeps the forwarded message's
/// subject as its name, and the body text stays in the create request.
#[test]
fn large_parts_of_a_spooled_message_become_attachments_read_from_the_message() {
    let pdf: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let qp_data = "caf\u{e9} ".repeat(40_000);
    let mut qp = String::new();
    for (i, b) in qp_data.bytes().enumerate() {
        if i % 24 == 23 {
            qp.push_str("=\r\n");
        }
        if b.is_ascii_alphanumeric() {
            qp.push(b as char);
        } else {
            qp.push_str(&format!("={b:02X}"));
        }
    }
    let forwarded = format!(
        "Subject: Quarterly figures\r\nFrom: a@example.org\r\n\r\n{}",
        "figures line\r\n".repeat(10_000)
    );
    let mut b64 = String::new();
    for line in STANDARD.encode(&pdf).as_bytes().chunks(76) {
        b64.push_str(std::str::from_utf8(line).expect("ascii"));
        b64.push_str("\r\n");
    }
    let raw = format!(
        "From: b@example.org\r\nSubject: big one\r\nMessage-ID: <big@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         preamble\r\n--outer\r\nContent-Type: text/plain\r\n\r\nHello, see attached.\r\n\
         --outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\
         --outer\r\nContent-Type: application/octet-stream; name=\"notes.bin\"\r\n\
         Content-Disposition: attachment; filename=\"notes.bin\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n\
         --outer\r\nContent-Type: message/rfc822\r\n\r\n{forwarded}\r\n--outer--\r\nepilogue\r\n"
    );
    let body = spooled(raw.as_bytes());
    let skel = build(&body, MIN_PART, 4 << 20).expect("build");
    assert_eq!(skel.parts.len(), 3, "{:?}", skel.parts);
    assert!(
        skel.bytes.as_ref().is_some_and(|b| b.len() < 4_000),
        "skeleton is {:?} bytes",
        skel.bytes.as_ref().map(Vec::len)
    );
    let text = skel.text(&body).expect("text");
    let parsed = mime_to_json::parse(&text).expect("parses");
    let flags = Flags::default();
    let identity = identity(&body);
    let msg = outgoing(&body, &flags, &identity, Some("<big@example.org>"));
    let mut rebuilt = mime_to_json::rebuild(&parsed, &msg, "stamp");
    mime_to_json::adopt_parts(&mut rebuilt, &skel.parts).expect("adopted");
    assert_eq!(
        rebuilt.message["body"]["content"]
            .as_str()
            .map(str::trim_end),
        Some("Hello, see attached.")
    );
    let names: Vec<&str> = rebuilt
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["report.pdf", "notes.bin", "Quarterly figures.eml"],
        "attachment names"
    );
    let data: Vec<Vec<u8>> = rebuilt
        .attachments
        .iter()
        .map(|a| match &a.data {
            AttachmentData::Part(p) => Body::Spooled(decode::to_spool(&body, p).expect("decode"))
                .bytes()
                .expect("read")
                .into_owned(),
            AttachmentData::Memory(_) => panic!("{} was kept in memory", a.name),
        })
        .collect();
    assert!(data[0] == pdf, "pdf differs");
    assert!(
        data[1] == qp_data.as_bytes(),
        "quoted-printable part differs"
    );
    assert!(data[2] == forwarded.as_bytes(), "forwarded message differs");
}

#[test]
fn a_text_body_too_large_for_a_request_is_refused_not_truncated() {
    let raw = format!(
        "Subject: huge text\r\nContent-Type: text/plain\r\n\r\n{}",
        "x".repeat(200_000)
    );
    let body = Body::Memory(raw.into_bytes());
    let skel = build(&body, MIN_PART, 100_000).expect("build");
    assert_eq!(skel.parts.len(), 1);
    let text = skel.text(&body).expect("text");
    let parsed = mime_to_json::parse(&text).expect("parses");
    let flags = Flags::default();
    let identity = identity(&body);
    let msg = outgoing(&body, &flags, &identity, None);
    let mut rebuilt = mime_to_json::rebuild(&parsed, &msg, "stamp");
    let err = mime_to_json::adopt_parts(&mut rebuilt, &skel.parts).expect_err("refused");
    assert!(err.contains("text body"), "{err}");
}
