//! Framing on the socket: reading one complete response (line plus literals, large literals
//! into their own buffers or a spool file) and writing command bytes, every network wait under
//! the connection's timeout. Any failure here marks the connection broken.

use std::io::Write as _;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::super::error::ImapError;
use super::super::wire::{self, Response};
use super::Conn;
use crate::body::{Body, SPOOL_AT, STEP, Spool, SpoolWriter};

/// Longest response line (without literals) accepted; Dovecot caps its own at 64 KiB by default.
const MAX_LINE: usize = 8 << 20;
/// Literals at least this big are read into their own buffer and moved, never copied.
const SIDE_LITERAL: usize = 16 << 10;

impl Conn {
    /// Streams a spooled literal to the socket in [`STEP`]-sized reads.
    pub(super) async fn write_spool(
        &mut self,
        spool: &Spool,
        label: &str,
    ) -> Result<(), ImapError> {
        let body = Body::Spooled(spool.clone());
        let mut chunk = vec![0; STEP];
        let mut offset = 0;
        while offset < spool.len() {
            let n = match body.read_at(offset, &mut chunk) {
                Ok(n) => n,
                Err(e) => {
                    // Part of the literal is on the wire: the session cannot be continued.
                    return Err(self.lost(label, format!("reading the spooled message: {e}")));
                }
            };
            self.write(&chunk[..n], label).await?;
            offset += n as u64;
        }
        Ok(())
    }

    pub(in crate::imap) async fn write(
        &mut self,
        data: &[u8],
        label: &str,
    ) -> Result<(), ImapError> {
        let t = self.timeout;
        match tokio::time::timeout(t, self.io.get_mut().write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(label, format!("write: {e}"))),
            Err(_) => Err(self.timed_out(label)),
        }
    }

    pub(in crate::imap) async fn flush(&mut self, label: &str) -> Result<(), ImapError> {
        let t = self.timeout;
        match tokio::time::timeout(t, self.io.get_mut().flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(label, format!("flush: {e}"))),
            Err(_) => Err(self.timed_out(label)),
        }
    }

    pub(super) fn lost(&mut self, label: &str, reason: String) -> ImapError {
        self.broken = true;
        ImapError::ConnectionLost {
            ctx: self.ctx(label),
            reason,
        }
    }

    pub(super) fn timed_out(&mut self, label: &str) -> ImapError {
        self.broken = true;
        ImapError::Timeout {
            ctx: self.ctx(label),
            after: self.timeout,
        }
    }

    /// Reads one complete response (line plus literals) and parses it.
    pub(crate) async fn read_response(&mut self, label: &str) -> Result<Response, ImapError> {
        let (raw, mut side) = self.read_raw(label).await?;
        wire::parse_response_with(&raw, &mut side).map_err(|detail| {
            self.broken = true;
            ImapError::Protocol {
                ctx: self.ctx(label),
                detail: format!("unparseable response: {detail}"),
            }
        })
    }

    /// One response's bytes; literals of [`SIDE_LITERAL`] bytes or more are read into their own
    /// buffers (referenced as `{@k}` in the line) so a body is never copied, and those of
    /// [`SPOOL_AT`] bytes or more go to a spool file as they arrive, never whole in memory.
    async fn read_raw(&mut self, label: &str) -> Result<(Vec<u8>, Vec<Body>), ImapError> {
        let t = self.timeout;
        let mut buf = Vec::new();
        let mut side: Vec<Body> = Vec::new();
        loop {
            let start = buf.len();
            let n = match tokio::time::timeout(
                t,
                (&mut self.io)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(self.lost(label, format!("read: {e}"))),
                Err(_) => return Err(self.timed_out(label)),
            };
            if n == 0 {
                return Err(self.lost(label, "the server closed the connection".into()));
            }
            if buf.last() != Some(&b'\n') {
                // `take` stops at MAX_LINE bytes; fewer bytes without a line end mean the stream
                // ended in the middle of the line.
                let reason = if n < MAX_LINE {
                    format!(
                        "the server closed the connection in the middle of a response ({} bytes of an unfinished line)",
                        buf.len() - start
                    )
                } else {
                    format!("response line longer than {MAX_LINE} bytes")
                };
                return Err(self.lost(label, reason));
            }
            let Some(len) = wire::literal_announced(&buf[start..]) else {
                return Ok((buf, side));
            };
            if len < SIDE_LITERAL {
                buf.reserve(len);
                self.read_literal(len, label, &mut buf, |_| Ok(())).await?;
                continue;
            }
            // Replace the announcement by a reference to the side buffer.
            let open = buf.iter().rposition(|&b| b == b'{').unwrap_or(buf.len());
            buf.truncate(open);
            buf.extend_from_slice(format!("{{@{}}}\r\n", side.len()).as_bytes());
            if (len as u64) < SPOOL_AT {
                let mut v = Vec::with_capacity(len);
                self.read_literal(len, label, &mut v, |_| Ok(())).await?;
                side.push(Body::Memory(v));
            } else {
                let mut spool = SpoolWriter::new().map_err(|e| self.spool_failed(label, e))?;
                let mut step = Vec::with_capacity(STEP);
                self.read_literal(len, label, &mut step, |chunk| {
                    let r = spool.write_all(chunk);
                    chunk.clear();
                    r
                })
                .await?;
                let spool = spool.finish().map_err(|e| self.spool_failed(label, e))?;
                side.push(Body::Spooled(spool));
            }
        }
    }

    /// Reads a literal of `len` bytes into `dest` in steps of at most [`STEP`] bytes, so the
    /// timeout measures silence, not size; `drain` sees `dest` after every step (and may empty it).
    async fn read_literal(
        &mut self,
        len: usize,
        label: &str,
        dest: &mut Vec<u8>,
        mut drain: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), ImapError> {
        let t = self.timeout;
        let mut remaining = len;
        while remaining > 0 {
            let step = remaining.min(STEP);
            let before = dest.len();
            let read =
                tokio::time::timeout(t, (&mut self.io).take(step as u64).read_to_end(dest)).await;
            let got = dest.len() - before;
            match read {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.lost(label, format!("read literal: {e}"))),
                Err(_) => return Err(self.timed_out(label)),
            }
            if got == 0 {
                return Err(self.lost(
                    label,
                    "the server closed the connection inside a literal".into(),
                ));
            }
            remaining -= got;
            drain(dest).map_err(|e| self.spool_failed(label, e))?;
        }
        Ok(())
    }

    /// A spool file could not be written: the response is lost mid-way, so is the session.
    fn spool_failed(&mut self, label: &str, e: std::io::Error) -> ImapError {
        self.lost(label, format!("spooling a large literal to disk: {e}"))
    }
}
