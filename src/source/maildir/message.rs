//! One message file's bytes: what mailferry hands on (CRLF line ends), its size in that form, and
//! its Message-ID from the header block.
//!
//! Maildir files written by Dovecot (and most MDAs) have bare LF line ends; Dovecot turns every LF
//! not preceded by CR into CRLF when it serves the message over IMAP, and its `W=` file-name field
//! is that size. mailferry does the same, so the bytes, the size and the SHA-256 identity of a
//! message read from disk equal those of the same message read from Dovecot over IMAP, and the
//! sinks get the CRLF form RFC 5322 and IMAP APPEND expect. A file already stored with CRLF is
//! passed through unchanged.

use crate::body::{bare_lf_count, to_crlf};
use crate::header::{header_end, message_id};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::error::MaildirError;
use crate::body::{Body, SPOOL_AT, STEP, SpoolWriter};

/// Reading stops after this many header bytes even without a blank line: a header block that
/// large is broken, and the Message-ID is near the top in practice. (MimeKit's corpus has a
/// 136 KB `To:` header, well inside this.)
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The file at `path` in CRLF form: in memory when small, else converted chunk by chunk into a
/// spool (a large message is never whole in memory).
pub(super) fn read_crlf(path: &Path) -> io::Result<Body> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < SPOOL_AT {
        let mut raw = Vec::with_capacity(len as usize);
        file.read_to_end(&mut raw)?;
        return Ok(Body::Memory(to_crlf(&raw)));
    }
    let mut spool = SpoolWriter::new()?;
    let mut buf = vec![0; STEP];
    let mut out = Vec::with_capacity(2 * STEP);
    let mut prev_cr = false;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        for &b in &buf[..n] {
            if b == b'\n' && !prev_cr {
                out.push(b'\r');
            }
            out.push(b);
            prev_cr = b == b'\r';
        }
        spool.write_all(&out)?;
    }
    Ok(Body::Spooled(spool.finish()?))
}

/// What fetch_meta needs from a file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileInfo {
    /// Size of the CRLF form; `None` when only the header was read (the caller knows the size).
    pub crlf_size: Option<u64>,
    pub message_id: Option<String>,
}

/// Reads a message file's header block (and, when `count_size`, the whole file in bounded chunks
/// to compute the CRLF size without holding it in memory).
pub(super) fn inspect(path: &Path, count_size: bool) -> Result<FileInfo, MaildirError> {
    let mut file = File::open(path).map_err(|e| MaildirError::io("opening", path, e))?;
    let mut header = Vec::new();
    let mut header_done = false;
    let mut size: u64 = 0;
    let mut prev_cr = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(MaildirError::io("reading", path, e)),
        };
        let chunk = &buf[..n];
        if !header_done {
            let room = MAX_HEADER_BYTES.saturating_sub(header.len());
            header.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if let Some(end) = header_end(&header) {
                header.truncate(end);
                header_done = true;
            } else if header.len() >= MAX_HEADER_BYTES {
                header_done = true;
            }
        }
        if count_size {
            size += n as u64 + bare_lf_count(chunk, prev_cr);
            prev_cr = chunk.last() == Some(&b'\r');
        } else if header_done {
            break;
        }
    }
    Ok(FileInfo {
        crlf_size: count_size.then_some(size),
        message_id: message_id(&header),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_conversion_keeps_existing_crlf_and_lone_cr() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n");
        assert_eq!(to_crlf(b"no newline"), b"no newline");
        assert_eq!(to_crlf(b"\n\n"), b"\r\n\r\n");
    }

    #[test]
    fn a_large_file_is_spooled_in_crlf_form_even_with_a_crlf_split_across_reads() {
        let mut raw = Vec::with_capacity(SPOOL_AT as usize + 10);
        while raw.len() < SPOOL_AT as usize {
            raw.extend_from_slice(b"a line with a bare LF\n");
        }
        // A CRLF whose CR ends one read step and whose LF starts the next.
        raw.truncate(STEP - 1);
        raw.extend_from_slice(b"\r\n");
        while raw.len() < SPOOL_AT as usize + 100 {
            raw.extend_from_slice(b"another\n");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.msg");
        std::fs::write(&path, &raw).expect("write");
        let body = read_crlf(&path).expect("read");
        assert!(matches!(body, Body::Spooled(_)));
        let expected = to_crlf(&raw);
        assert_eq!(body.len(), expected.len() as u64);
        assert_eq!(body.sha256(), crate::model::ContentHash::of(&expected));
        let small = dir.path().join("2.msg");
        std::fs::write(&small, b"a\nb\n").expect("write");
        assert_eq!(
            read_crlf(&small).expect("small"),
            Body::Memory(b"a\r\nb\r\n".to_vec())
        );
    }

    #[test]
    fn chunked_count_handles_cr_at_chunk_edge() {
        let all = b"x\r\ny\nz\r";
        let whole = bare_lf_count(all, false);
        let split = bare_lf_count(&all[..2], false) + bare_lf_count(&all[2..], true);
        assert_eq!(whole, 1);
        assert_eq!(split, 1);
    }

    #[test]
    fn inspect_counts_crlf_size_over_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        // Larger than one read buffer, so the chunk-edge logic runs.
        let mut body = b"Message-ID: <big@x>\nSubject: s\n\n".to_vec();
        for _ in 0..20_000 {
            body.extend_from_slice(b"line of text\n");
        }
        std::fs::write(&p, &body).unwrap();
        let info = inspect(&p, true).unwrap();
        assert_eq!(info.crlf_size, Some(to_crlf(&body).len() as u64));
        assert_eq!(info.message_id.as_deref(), Some("<big@x>"));
        let info = inspect(&p, false).unwrap();
        assert_eq!(info.crlf_size, None);
        assert_eq!(info.message_id.as_deref(), Some("<big@x>"));
    }
}
