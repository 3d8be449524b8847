//! Large attachments (20 MB and 140 MB) through upload sessions in <= 4 MB ranges.

use base64::Engine;
use mailferry::sink::graph::Route;

use super::*;

/// A message with one attachment of `size` pseudo-random bytes, base64-encoded in 76-char lines.
pub(crate) fn with_attachment(name: &str, size: usize) -> (Vec<u8>, Vec<u8>) {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut raw = format!(
        "From: big@example.org\r\nTo: you@example.net\r\nSubject: {name}\r\nMessage-ID: <{name}@example.org>\r\n\
Date: Tue, 2 Mar 2021 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n\
--xx\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--xx\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    raw.reserve(b64.len() + b64.len() / 38 + 64);
    for line in b64.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--xx--\r\n");
    (raw, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_and_hundred_forty_mb_attachments_go_through_upload_sessions() {
    // Upload sessions live 15 service minutes: a slower clock keeps them alive through 160 MB of
    // debug-build uploads; the byte budget is raised because this test is about sessions, not pacing.
    let mut cfg = emulator_config();
    cfg.time_scale = 10.0;
    cfg.limits.upload_bytes_per_window = 1 << 40;
    let emu = emulator(cfg).await;
    let mut s = settings(&emu, Route::ImportMime);
    s.governor = GovernorSettings {
        bytes_per_window: 1 << 40,
        ..GovernorSettings::default()
    }
    .scaled(10.0);
    let app = mailferry::sink::graph::GraphApp::new(s).unwrap();
    let user = "large@contoso.example";
    let mb = app.mailbox(user);
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let insp = emu.inspect();
    for (name, size) in [
        ("twenty.bin", 20_000_000usize),
        ("hundred-forty.bin", 140_000_000),
    ] {
        let (raw, data) = with_attachment(name, size);
        let flags = Flags::from_atoms(["\\Seen"]);
        let id = identity(user, "INBOX", size as u32 / 1000, &raw);
        let mid = message_id_of(&raw);
        // Both are over the spool threshold: this is the path a source's large bodies take.
        let body = mailferry::body::from_bytes(raw.clone()).unwrap();
        assert!(matches!(body, Body::Spooled(_)));
        let msg = outgoing(&body, &flags, &id, mid.as_deref());
        assert_eq!(mb.route_for(&msg), Route::Json, "too large for importMime");
        let item = mb
            .write(&inbox, &msg)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let view = insp.item(user, &item).unwrap();
        assert!(!view.is_draft);
        assert_eq!(view.attachments.len(), 1);
        assert_eq!(view.attachments[0].name, name);
        assert_eq!(view.attachments[0].size, data.len());
        drop(data);
    }
    let puts: Vec<_> = insp
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert!(
        puts.len() >= (20_000_000 + 140_000_000) / (4 * 1024 * 1024),
        "{} chunks",
        puts.len()
    );
    assert!(
        puts.iter().all(|r| r.body_len <= 4 * 1024 * 1024),
        "every range <= 4 MiB"
    );
    assert!(puts.iter().all(|r| r.status == 200 || r.status == 201));
    assert!(assert_requests_valid(&emu) > 0);
}
