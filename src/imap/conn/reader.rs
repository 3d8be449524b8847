//! Reading one complete server response (line plus literals) from any buffered async reader,
//! with a timeout on every wait. Generic over the reader so the framing can be tested and fuzzed
//! from memory; [`super::Conn`] runs it on its socket and maps a [`FrameError`] to an
//! [`super::super::error::ImapError`] that marks the connection broken.

use std::io::Write as _;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use super::super::wire;
use crate::body::{Body, SPOOL_AT, STEP, SpoolWriter};

/// Longest response line (without literals) accepted; Dovecot caps its own at 64 KiB by default.
pub(crate) const MAX_LINE: usize = 8 << 20;
/// Literals at least this big are read into their own buffer and moved, never copied.
pub(crate) const SIDE_LITERAL: usize = 16 << 10;

/// One response's bytes as [`wire::parse_response_with`] takes them.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The lines, with small literals inline and large ones referenced as `{@k}`.
    pub(crate) raw: Vec<u8>,
    /// The large literals, in order.
    pub(crate) side: Vec<Body>,
}

/// Why no complete response could be read. Every variant leaves the stream position unknown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("read literal: {0}")]
    ReadLiteral(#[source] std::io::Error),
    #[error("no data within {0:?}")]
    Timeout(Duration),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server closed the connection in the middle of a response line")]
    ClosedInLine,
    #[error("response line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the server closed the connection inside a literal")]
    ClosedInLiteral,
    #[error("spooling a large literal to disk: {0}")]
    Spool(#[source] std::io::Error),
}

/// Reads one response; literals of [`SIDE_LITERAL`] bytes or more are read into their own
/// buffers (referenced as `{@k}` in the line) so a body is never copied, and those of
/// [`SPOOL_AT`] bytes or more go to a spool file as they arrive, never whole in memory.
pub(crate) async fn read_frame<R: AsyncBufRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<Frame, FrameError> {
    let mut buf = Vec::new();
    let mut side: Vec<Body> = Vec::new();
    loop {
        let start = buf.len();
        let n = match tokio::time::timeout(
            timeout,
            (&mut *io).take(MAX_LINE as u64).read_until(b'\n', &mut buf),
        )
        .await
        {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(FrameError::Read(e)),
            Err(_) => return Err(FrameError::Timeout(timeout)),
        };
        if n == 0 {
            return Err(FrameError::Closed);
        }
        if buf.last() != Some(&b'\n') {
            // `take` stops either at the cap or at end of stream.
            return Err(if n >= MAX_LINE {
                FrameError::LineTooLong
            } else {
                FrameError::ClosedInLine
            });
        }
        let Some(len) = wire::literal_announced(buf.get(start..).unwrap_or_default()) else {
            return Ok(Frame { raw: buf, side });
        };
        if len < SIDE_LITERAL {
            buf.reserve(len);
            read_literal(io, timeout, len, &mut buf, |_| Ok(())).await?;
            continue;
        }
        // Replace the announcement by a reference to the side buffer (`literal_announced` saw
        // its `{`, so the fallback is never taken).
        let open = buf.iter().rposition(|&b| b == b'{').unwrap_or(buf.len());
        buf.truncate(open);
        buf.extend_from_slice(format!("{{@{}}}\r\n", side.len()).as_bytes());
        if (len as u64) < SPOOL_AT {
            let mut v = Vec::with_capacity(len);
            read_literal(io, timeout, len, &mut v, |_| Ok(())).await?;
            side.push(Body::Memory(v));
        } else {
            let mut spool = SpoolWriter::new().map_err(FrameError::Spool)?;
            let mut step = Vec::with_capacity(STEP);
            read_literal(io, timeout, len, &mut step, |chunk| {
                let r = spool.write_all(chunk);
                chunk.clear();
                r
            })
            .await?;
            side.push(Body::Spooled(spool.finish().map_err(FrameError::Spool)?));
        }
    }
}

/// Reads a literal of `len` bytes into `dest` in steps of at most [`STEP`] bytes, so the timeout
/// measures silence, not size; `drain` sees `dest` after every step (and may empty it).
async fn read_literal<R: AsyncBufRead + Unpin>(
    io: &mut R,
    timeout: Duration,
    len: usize,
    dest: &mut Vec<u8>,
    mut drain: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<(), FrameError> {
    let mut remaining = len;
    while remaining > 0 {
        let step = remaining.min(STEP);
        let before = dest.len();
        let read =
            tokio::time::timeout(timeout, (&mut *io).take(step as u64).read_to_end(dest)).await;
        let got = dest.len() - before;
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(FrameError::ReadLiteral(e)),
            Err(_) => return Err(FrameError::Timeout(timeout)),
        }
        if got == 0 {
            return Err(FrameError::ClosedInLiteral);
        }
        remaining -= got;
        drain(dest).map_err(FrameError::Spool)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
