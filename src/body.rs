//! Message bodies on their way from a source to a sink: small ones in memory, large ones spooled
//! to an unlinked temporary file.
//!
//! Why: a 150 MB message held whole, then parsed, then decoded, costs several times its size in
//! memory; the migration's promise is a bounded footprint whatever the message sizes. A source
//! writes any body of [`SPOOL_AT`] bytes or more into a [`Spool`] as it reads it (hashing on the
//! way), and sinks read spooled bodies back in bounded ranges.
//!
//! Spool files are created with `tempfile` in `$TMPDIR` (mode 0600, unlinked at once, so nothing
//! is left behind even after a SIGKILL) and are read with positioned reads, so one spool can be
//! shared by concurrent readers.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::model::ContentHash;

/// Bodies of this many bytes or more are spooled to disk instead of held in memory.
pub const SPOOL_AT: u64 = 8 << 20;
/// The size of one read or write step on a spool.
pub const STEP: usize = 1 << 20;

/// The raw bytes of one message. Equality is by content (spools compare length and SHA-256).
#[derive(Clone, Eq)]
pub enum Body {
    Memory(Vec<u8>),
    Spooled(Spool),
}

/// A spooled body: an unlinked temporary file, its length and the SHA-256 computed while it was
/// written. Clones share the file.
#[derive(Clone)]
pub struct Spool {
    file: Arc<File>,
    len: u64,
    sha256: ContentHash,
}

impl PartialEq for Spool {
    /// Same content: same length and SHA-256.
    fn eq(&self, other: &Spool) -> bool {
        self.len == other.len && self.sha256 == other.sha256
    }
}
impl Eq for Spool {}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        match (self, other) {
            (Body::Memory(a), Body::Memory(b)) => a == b,
            _ => self.len() == other.len() && self.sha256() == other.sha256(),
        }
    }
}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        match self {
            Body::Memory(v) => v.as_slice() == other,
            Body::Spooled(s) => s.len == other.len() as u64 && s.sha256 == ContentHash::of(other),
        }
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self == *other.as_slice()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Memory(v) => write!(f, "Body::Memory({} bytes)", v.len()),
            Body::Spooled(s) => write!(f, "Body::Spooled({} bytes)", s.len),
        }
    }
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spool({} bytes)", self.len)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Memory(v)
    }
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(v) => v.len() as u64,
            Body::Spooled(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SHA-256 of the bytes (a spool's was computed when it was written).
    pub fn sha256(&self) -> ContentHash {
        match self {
            Body::Memory(v) => ContentHash::of(v),
            Body::Spooled(s) => s.sha256,
        }
    }

    /// The bytes when they are in memory.
    pub fn as_memory(&self) -> Option<&[u8]> {
        match self {
            Body::Memory(v) => Some(v),
            Body::Spooled(_) => None,
        }
    }

    /// Reads `buf.len()` bytes at `offset` (short only at the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Memory(v) => {
                let start = (offset.min(v.len() as u64)) as usize;
                let n = buf.len().min(v.len() - start);
                buf[..n].copy_from_slice(&v[start..start + n]);
                Ok(n)
            }
            Body::Spooled(s) => s.read_at(offset, buf),
        }
    }

    /// Bytes `start..end` (clamped to the body) as an owned buffer.
    pub fn range(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let end = end.min(self.len());
        let start = start.min(end);
        let mut out = vec![0; (end - start) as usize];
        let n = self.read_at(start, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// The first `n` bytes at most (for reading a header section).
    pub fn head(&self, n: u64) -> io::Result<Vec<u8>> {
        self.range(0, n)
    }

    /// Every byte at once: borrowed when in memory, read from the spool otherwise (only for
    /// bodies known to be small enough to hold; callers check the length).
    pub fn bytes(&self) -> io::Result<Cow<'_, [u8]>> {
        match self {
            Body::Memory(v) => Ok(Cow::Borrowed(v)),
            Body::Spooled(s) => self.range(0, s.len).map(Cow::Owned),
        }
    }

    /// A sequential reader over the bytes.
    pub fn reader(&self) -> BodyReader<'_> {
        BodyReader { body: self, pos: 0 }
    }
}

impl Spool {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.len.saturating_sub(offset) as usize);
        let mut done = 0;
        while done < want {
            match self
                .file
                .read_at(&mut buf[done..want], offset + done as u64)
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "spool file is shorter than recorded",
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Sequential reads over a [`Body`].
pub struct BodyReader<'a> {
    body: &'a Body,
    pos: u64,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.body.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes a body into a new spool, hashing on the way.
pub struct SpoolWriter {
    file: File,
    len: u64,
    hasher: Sha256,
}

impl SpoolWriter {
    /// A new unlinked 0600 file in `$TMPDIR`.
    pub fn new() -> io::Result<SpoolWriter> {
        let file = tempfile::tempfile().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create a spool file in {}: {e}",
                    std::env::temp_dir().display()
                ),
            )
        })?;
        Ok(SpoolWriter {
            file,
            len: 0,
            hasher: Sha256::new(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(mut self) -> io::Result<Spool> {
        self.file.flush()?;
        Ok(Spool {
            file: Arc::new(self.file),
            len: self.len,
            sha256: ContentHash::from_digest(self.hasher.finalize().into()),
        })
    }
}

impl Write for SpoolWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A body from bytes that may be large: kept in memory below [`SPOOL_AT`], else spooled.
pub fn from_bytes(v: Vec<u8>) -> io::Result<Body> {
    if (v.len() as u64) < SPOOL_AT {
        return Ok(Body::Memory(v));
    }
    let mut w = SpoolWriter::new()?;
    w.write_all(&v)?;
    Ok(Body::Spooled(w.finish()?))
}

/// Copies `raw` with every LF not preceded by CR turned into CRLF.
pub(crate) fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let extra = bare_lf_count(raw, false);
    let mut out = Vec::with_capacity(raw.len() + extra as usize);
    let mut prev_cr = false;
    for &b in raw {
        if b == b'\n' && !prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        prev_cr = b == b'\r';
    }
    out
}

/// Number of LFs not preceded by CR; `prev_cr` says whether the byte before `chunk` was a CR, so
/// a file can be counted chunk by chunk.
pub(crate) fn bare_lf_count(chunk: &[u8], mut prev_cr: bool) -> u64 {
    let mut n = 0;
    for &b in chunk {
        if b == b'\n' && !prev_cr {
            n += 1;
        }
        prev_cr = b == b'\r';
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(data: &[u8]) -> Body {
        let mut w = SpoolWriter::new().expect("spool");
        for chunk in data.chunks(7) {
            w.write_all(chunk).expect("write");
        }
        Body::Spooled(w.finish().expect("finish"))
    }

    #[test]
    fn memory_and_spool_read_alike() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mem = Body::Memory(data.clone());
        let spool = spooled(&data);
        for b in [&mem, &spool] {
            assert_eq!(b.len(), 10_000);
            assert_eq!(b.sha256(), ContentHash::of(&data));
            assert_eq!(b.range(100, 250).expect("range"), data[100..250]);
            assert_eq!(b.range(9_990, 20_000).expect("tail"), data[9_990..]);
            assert_eq!(b.head(5).expect("head"), data[..5]);
            assert_eq!(*b.bytes().expect("all"), *data);
            let mut all = Vec::new();
            b.reader().read_to_end(&mut all).expect("read");
            assert_eq!(all, data);
        }
        assert!(spool.as_memory().is_none());
        assert_eq!(spool.clone(), spool);
    }

    #[test]
    fn small_bytes_stay_in_memory_and_large_ones_spool() {
        assert!(matches!(
            from_bytes(vec![1; 10]).expect("small"),
            Body::Memory(_)
        ));
        let big = from_bytes(vec![2; SPOOL_AT as usize]).expect("big");
        assert!(matches!(big, Body::Spooled(_)));
        assert_eq!(big.sha256(), ContentHash::of(&vec![2; SPOOL_AT as usize]));
    }
}
