//! Entry points for the fuzz targets in `fuzz/` and their stable-toolchain proptest twins: thin
//! functions that feed arbitrary bytes to a parser that is otherwise private to the crate, and
//! assert what must hold for any input. Not an API: hidden, and free to change.
//!
//! Each function may panic only on a broken invariant (that is the finding); parse errors are
//! expected and ignored.

use std::time::Duration;

use crate::body::Body;
use crate::imap::conn::reader;
use crate::imap::wire;
use crate::sink::graph::{decode, skeleton};
use crate::source::maildir::filename::MaildirName;

/// IMAP responses: frames `data` as a server's byte stream (lines and literals, large ones to
/// side buffers or a spool file) and tokenises every frame, until the stream ends.
pub fn imap_responses(data: &[u8]) {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
    }
    RT.with(|rt| {
        rt.block_on(async {
            let mut io = tokio::io::BufReader::new(data);
            // Each frame consumes at least one byte, so this ends.
            while let Ok(frame) = reader::read_frame(&mut io, Duration::from_secs(60)).await {
                let mut side = frame.side;
                let _ = wire::parse_response_with(&frame.raw, &mut side);
            }
        })
    });
    let _ = wire::literal_announced(data);
}

/// Modified UTF-7: decoding never panics, and what decodes re-encodes to a name that decodes
/// to the same text.
pub fn utf7(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(decoded) = crate::utf7::decode(text) {
        let again = crate::utf7::decode(&crate::utf7::encode(&decoded));
        assert_eq!(again.as_ref(), Ok(&decoded), "{text:?}");
    }
    let encoded = crate::utf7::encode(text);
    assert_eq!(crate::utf7::decode(&encoded).as_deref(), Ok(text));
}

/// MIME skeleton and attachment decoder: with every leaf left out, each part's range lies in
/// the message and decodes; with nothing left out, the skeleton is the message itself.
pub fn mime(data: &[u8]) {
    let body = Body::Memory(data.to_vec());
    let skel = skeleton::build(&body, 1, 1).expect("in-memory build cannot fail on I/O");
    for part in &skel.parts {
        assert!(
            part.start <= part.end && part.end <= data.len() as u64,
            "{part:?} outside {} bytes",
            data.len()
        );
        decode::decoded_len(&body, part).expect("in-memory decode cannot fail on I/O");
    }
    let whole = skeleton::build(&body, u64::MAX, u64::MAX).expect("build");
    assert!(whole.parts.is_empty());
}

/// `plan.toml` and the mailboxes CSV: `data` up to the first NUL is the plan, the rest the CSV.
pub fn plan(data: &[u8]) {
    let (toml, csv) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"EmailAddress\n"[..]),
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let plan_path = dir.path().join("plan.toml");
    if std::fs::write(&plan_path, toml).is_err()
        || std::fs::write(dir.path().join("mailboxes.csv"), csv).is_err()
    {
        return;
    }
    let _ = crate::plan::Plan::load_with_env(&plan_path, &|_| Some("secret".into()));
}

/// Maildir file names: splitting and flag letters never panic, with or without keywords.
pub fn maildir_name(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = MaildirName::parse(name);
    assert!(name.starts_with(parsed.base));
    let keywords = [Some("$Label1".to_owned()), None, Some("work".to_owned())];
    let _ = parsed.flags(&keywords);
    let _ = parsed.flags(&[]);
}

#[cfg(test)]
mod tests;
