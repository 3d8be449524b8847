//! Where item bodies live: the `bodies` setting. `memory` keeps every byte in the store (tests
//! read anything back); `disk` appends raw MIME, attachment contents and the large properties
//! (`body`, `internetMessageHeaders`, `uniqueBody`) to one spill file in a temporary directory
//! that is removed when the emulator stops, keeping only offsets in memory; `digest` keeps only
//! each blob's SHA-256 and size, so a 250,000-message rehearsal fits in little memory and no
//! disk, at the price of `$value` and bodies (answered with an error that says so).
//!
//! An item is built in memory by the handlers, then [`Blobs::settle`] moves its bytes out
//! according to the mode; the store then holds metadata only (plus offsets or digests).

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::errors::{ApiError, EmulatorError};
use super::store::Message;

/// Properties moved out of an item in `disk` mode (dropped in `digest` mode): the ones that grow
/// with the message.
pub(crate) const HEAVY: &[&str] = &["body", "internetMessageHeaders", "uniqueBody"];

/// The `bodies` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BodiesMode {
    /// Every byte in memory (the default for in-process emulators and tests).
    #[default]
    Memory,
    /// Bytes in a spill file in a temporary directory removed at exit; metadata in memory
    /// (the default of `mailferry emulator`).
    Disk,
    /// Only the SHA-256 and size of each body; `$value` and body contents are unavailable.
    Digest,
}

/// Stored bytes, or where they went. In memory the bytes are shared: reading an item hands
/// out a copy of its record (compact.rs), which must not copy a 150 MB attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Blob {
    Memory(Arc<Vec<u8>>),
    Disk { offset: u64, len: u64 },
    Digest { len: u64, sha256: [u8; 32] },
}

impl Blob {
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(v) => v.len() as u64,
            Blob::Disk { len, .. } | Blob::Digest { len, .. } => *len,
        }
    }
}

struct Spill {
    /// Removed (with the file) when the emulator is dropped.
    _dir: tempfile::TempDir,
    file: File,
    next: AtomicU64,
}

/// The body store of one emulator.
pub(crate) struct Blobs {
    mode: BodiesMode,
    spill: Option<Spill>,
}

fn io_error(what: &str, e: std::io::Error) -> ApiError {
    ApiError::new(
        500,
        "ErrorInternalServerError",
        format!("The emulator could not {what} its spill file: {e}"),
    )
}

impl Blobs {
    pub fn new(mode: BodiesMode) -> Result<Self, EmulatorError> {
        let spill = match mode {
            BodiesMode::Disk => {
                let dir = tempfile::Builder::new()
                    .prefix("mailferry-emulator-bodies-")
                    .tempdir()
                    .map_err(|source| EmulatorError::Io {
                        context: "creating the emulator's spill directory".into(),
                        source,
                    })?;
                let path = dir.path().join("bodies");
                let file = File::options()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|source| EmulatorError::Io {
                        context: format!("creating {}", path.display()),
                        source,
                    })?;
                Some(Spill {
                    _dir: dir,
                    file,
                    next: AtomicU64::new(0),
                })
            }
            _ => None,
        };
        Ok(Blobs { mode, spill })
    }

    pub fn mode(&self) -> BodiesMode {
        self.mode
    }

    /// Stores bytes according to the mode.
    pub fn put(&self, data: Vec<u8>) -> Result<Blob, ApiError> {
        match (&self.spill, self.mode) {
            (Some(s), BodiesMode::Disk) => {
                let len = data.len() as u64;
                // Reserve the range first so concurrent writers never overlap.
                let offset = s.next.fetch_add(len, Ordering::Relaxed);
                s.file
                    .write_all_at(&data, offset)
                    .map_err(|e| io_error("write to", e))?;
                Ok(Blob::Disk { offset, len })
            }
            (_, BodiesMode::Digest) => Ok(Blob::Digest {
                len: data.len() as u64,
                sha256: Sha256::digest(&data).into(),
            }),
            _ => Ok(Blob::Memory(Arc::new(data))),
        }
    }

    /// The bytes of a blob; a digest-only blob is an error that says so.
    pub fn read<'a>(&self, b: &'a Blob) -> Result<Cow<'a, [u8]>, ApiError> {
        match b {
            Blob::Memory(v) => Ok(Cow::Borrowed(v.as_slice())),
            Blob::Disk { offset, len } => {
                let s = self.spill.as_ref().ok_or_else(|| {
                    ApiError::new(500, "ErrorInternalServerError", "no spill file")
                })?;
                let mut buf = vec![0; *len as usize];
                s.file
                    .read_exact_at(&mut buf, *offset)
                    .map_err(|e| io_error("read from", e))?;
                Ok(Cow::Owned(buf))
            }
            Blob::Digest { len, sha256 } => Err(digest_only(*len, sha256)),
        }
    }

    /// Moves an item's bytes out of memory according to the mode, after computing its size from
    /// the in-memory form (so an item counts the same against limits in every mode).
    pub fn settle(&self, m: &mut Message) -> Result<(), ApiError> {
        m.size = m.compute_size();
        if self.mode == BodiesMode::Memory {
            return Ok(());
        }
        if let Some(Blob::Memory(raw)) = &mut m.raw_mime {
            m.raw_mime = Some(self.put(take(raw))?);
        }
        for a in &mut m.attachments {
            if let Blob::Memory(c) = &mut a.content {
                a.content = self.put(take(c))?;
            }
        }
        let mut heavy = Map::new();
        for k in HEAVY {
            if let Some(v) = m.props.remove(*k) {
                heavy.insert((*k).to_owned(), v);
            }
        }
        if heavy.is_empty() {
            return Ok(());
        }
        if self.mode == BodiesMode::Digest {
            // Keep the body's type so a reader learns what it was; the text is gone.
            if let Some(ct) = heavy.get("body").and_then(|b| b["contentType"].as_str()) {
                m.props
                    .insert("body".into(), json!({"contentType": ct, "content": ""}));
            }
        }
        let bytes = serde_json::to_vec(&heavy).unwrap_or_default();
        m.heavy = Some(self.put(bytes)?);
        Ok(())
    }

    /// The heavy properties of a settled item, back in memory (nothing in digest mode).
    pub fn heavy_props(&self, m: &Message) -> Result<Map<String, Value>, ApiError> {
        match &m.heavy {
            None | Some(Blob::Digest { .. }) => Ok(Map::new()),
            Some(b) => {
                let bytes = self.read(b)?;
                Ok(serde_json::from_slice(&bytes).unwrap_or_default())
            }
        }
    }

    /// Brings the heavy properties back into `m.props` (before a PATCH may change them).
    pub fn unsettle_heavy(&self, m: &mut Message) -> Result<(), ApiError> {
        let props = self.heavy_props(m)?;
        if m.heavy
            .as_ref()
            .is_some_and(|b| !matches!(b, Blob::Digest { .. }))
        {
            m.heavy = None;
        }
        m.props.extend(props);
        Ok(())
    }
}

/// The bytes of an in-memory blob, leaving it empty (copied only if still shared).
pub(crate) fn take(shared: &mut Arc<Vec<u8>>) -> Vec<u8> {
    let a = std::mem::take(shared);
    Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())
}

/// What `$value` and attachment contents answer in digest mode.
pub(crate) fn digest_only(len: u64, sha256: &[u8; 32]) -> ApiError {
    ApiError::new(
        501,
        "ErrorEmulatorDigestOnly",
        format!(
            "This emulator runs with bodies = \"digest\": it kept only the SHA-256 ({}) and size ({len} bytes) of this content, not its bytes.",
            hex::encode(sha256)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_blobs_round_trip_and_the_directory_goes_away() {
        let b = Blobs::new(BodiesMode::Disk).unwrap();
        let dir = b.spill.as_ref().unwrap()._dir.path().to_owned();
        let x = b.put(b"hello".to_vec()).unwrap();
        let y = b.put(b"world!".to_vec()).unwrap();
        assert_eq!(x, Blob::Disk { offset: 0, len: 5 });
        assert_eq!(&*b.read(&y).unwrap(), b"world!");
        assert_eq!(&*b.read(&x).unwrap(), b"hello");
        assert!(dir.exists());
        drop(b);
        assert!(!dir.exists(), "the spill directory is removed");
    }

    #[test]
    fn digest_blobs_keep_only_hash_and_size() {
        let b = Blobs::new(BodiesMode::Digest).unwrap();
        let x = b.put(b"abc".to_vec()).unwrap();
        assert_eq!(x.len(), 3);
        let e = b.read(&x).unwrap_err();
        assert_eq!(e.code, "ErrorEmulatorDigestOnly");
        assert!(
            e.message
                .contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            "{}",
            e.message
        );
    }
}
