//! Framing on the socket: reading one complete response (line plus literals, large literals
//! into their own buffers or a spool file) and writing command bytes, every network wait under
//! the connection's timeout. Any failure here marks the connection broken.

use tokio::io::AsyncWriteExt;

use super::super::error::ImapError;
use super::super::wire::{self, Response};
use super::Conn;
use super::reader::{self, FrameError};
use crate::body::{Body, STEP, Spool};

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
        ImapError::connection_lost(self.ctx(label), reason)
    }

    pub(super) fn timed_out(&mut self, label: &str) -> ImapError {
        self.broken = true;
        ImapError::timeout(self.ctx(label), self.timeout)
    }

    /// Reads one complete response (line plus literals) and parses it.
    pub(crate) async fn read_response(&mut self, label: &str) -> Result<Response, ImapError> {
        let frame = match reader::read_frame(&mut self.io, self.timeout).await {
            Ok(frame) => frame,
            Err(FrameError::Timeout(_)) => return Err(self.timed_out(label)),
            Err(e) => return Err(self.lost(label, e.to_string())),
        };
        let (raw, mut side) = (frame.raw, frame.side);
        wire::parse_response_with(&raw, &mut side).map_err(|detail| {
            self.broken = true;
            ImapError::protocol(self.ctx(label), format!("unparseable response: {detail}"))
        })
    }
}
