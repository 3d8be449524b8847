//! The memory an item costs the emulator once stored (issue 16: a 250,000-message rehearsal must
//! fit in 1 GiB with bodies on disk or as digests). Items are built as importMime and mailferry's
//! stamp PATCH build them, from messages shaped like the rehearsal's.

use serde_json::{Value, json};

use super::blobs::{Blob, Blobs, BodiesMode};
use super::config::ImportMimeReceived;
use super::messages::new_message;
use super::mime;
use super::store::Mailbox;

const STAMP: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name mailferry-identity";

/// A message like the rehearsal's: headers, about 3 KB of text, one in ten with a PDF.
pub(crate) fn rehearsal_message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "Received: from mx.example.org by mail.example.net; Fri, 14 Jul 2017 02:40:00 +0000\r\n\
         From: Sender {i} <s{i}@example.org>\r\nTo: user1 <user1@contoso.example>\r\n\
         Subject: Message {i} of mailbox 1\r\nDate: Fri, 14 Jul 2017 02:40:00 +0000\r\n\
         Message-ID: <r1-{i}@rehearsal.test>\r\nMIME-Version: 1.0\r\n"
    );
    let text = "the meeting budget report please review attached thanks for update\r\n".repeat(45);
    if i % 10 == 3 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--b\r\n\
             Content-Type: application/pdf; name=\"doc{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"doc{i}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            "QUJDRA==".repeat(10)
        ));
    } else {
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        ));
    }
    m.into_bytes()
}

/// Stores `n` rehearsal-shaped items the way importMime and the stamp PATCH do.
pub(crate) fn fill(mb: &mut Mailbox, blobs: &Blobs, n: usize) {
    let inbox = mb.well_known_id("inbox");
    for i in 0..n {
        let raw = rehearsal_message(i);
        let (props, atts) = mime::parse(&raw, ImportMimeReceived::ReceivedHeader).unwrap();
        let mut m = new_message(mb, &inbox);
        m.props.extend(props);
        m.props.insert("isDraft".into(), json!(false));
        m.props.insert("isRead".into(), json!(false));
        m.raw_mime = Some(Blob::Memory(raw.into()));
        m.attachments = atts;
        blobs.settle(&mut m).unwrap();
        let id = m.id.clone();
        mb.insert(m);
        mb.update(&id, |m| {
            m.ext_set(STAMP, &format!("INBOX/{i}/<r1-{i}@rehearsal.test>"));
            m.props.insert("isRead".into(), Value::Bool(i % 3 != 0));
            m.touch();
        });
    }
}

/// What memory a stored item holds does not depend on the allocator: its encoded properties
/// (the part that used to be about 10 KB of JSON trees) stay a few hundred bytes.
#[test]
fn a_rehearsal_item_keeps_its_properties_in_a_few_hundred_bytes() {
    for mode in [BodiesMode::Digest, BodiesMode::Disk, BodiesMode::Memory] {
        let blobs = Blobs::new(mode).unwrap();
        let mut mb = Mailbox::new("a@b.example", u64::MAX);
        fill(&mut mb, &blobs, 20);
        let lens: Vec<usize> = mb.stored().map(|s| s.props_len()).collect();
        let json_len = serde_json::to_vec(&mb.newest_first(None, 0).next().unwrap().props)
            .unwrap()
            .len();
        println!("{mode:?}: encoded properties {lens:?} bytes; one as JSON text: {json_len}");
        assert_eq!(lens.len(), 20);
        let cap = if mode == BodiesMode::Memory {
            5_000
        } else {
            800
        };
        assert!(lens.iter().all(|l| *l < cap), "{mode:?}: {lens:?}");
    }
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Prints the resident memory 20,000 items add, per item, in each mode. A measurement, not a
/// check (other tests share the process): run alone with
/// `cargo test --lib emulator::footprint -- --ignored --nocapture --test-threads=1`.
#[test]
#[ignore]
fn resident_bytes_per_item() {
    const N: usize = 20_000;
    let mode = match std::env::var("FOOTPRINT_MODE").as_deref() {
        Ok("disk") => BodiesMode::Disk,
        _ => BodiesMode::Digest,
    };
    {
        let blobs = Blobs::new(mode).unwrap();
        let mut mb = Mailbox::new("a@b.example", u64::MAX);
        let before = status_kib("VmRSS:");
        fill(&mut mb, &blobs, N);
        let after = status_kib("VmRSS:");
        println!(
            "{mode:?}: {N} items, RSS {before} KiB -> {after} KiB, {} bytes per item (VmHWM {} KiB)",
            (after.saturating_sub(before)) * 1024 / N as u64,
            status_kib("VmHWM:")
        );
        drop(mb);
    }
}
