//! The MIME skeleton of a message: its bytes with every large leaf body replaced by a short
//! placeholder, so the JSON route can hand a message of any size to mail-parser while its large
//! parts stay where they are (in a spool file, or in the body buffer) until they are uploaded.
//!
//! The scan reads the message line by line in bounded steps, following multipart boundaries
//! (RFC 2046 §5.1.1: a delimiter is `--boundary` at the start of a line, the CRLF before it
//! belongs to it). Everything that is not a large leaf
//! body is copied verbatim, so a message without large parts has a skeleton equal to itself.
//!
//! A placeholder is a token unique to the message, written in the part's own transfer encoding,
//! so mail-parser decodes it back to the token and the attachment it belongs to can be recognised.
//! A `message/rfc822` part keeps its header section in front of the token (its subject names the
//! attachment). Text parts are only replaced when they are too large for any request anyway:
//! a smaller one may be the message's body, which the create request carries.

use std::borrow::Cow;
use std::io;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::body::Body;

/// Leaf bodies at least this large are replaced (non-text ones).
pub(crate) const MIN_PART: u64 = 64 << 10;
/// Longest line kept whole while scanning headers; longer ones are broken (a header that large is
/// not one mail-parser could use either).
const MAX_HEADER_LINE: usize = 1 << 20;
/// Largest header section followed.
const MAX_HEADER_SECTION: usize = 4 << 20;
/// Bytes of a content line kept for the boundary check (a delimiter is at most 76 bytes long).
const KEEP_CONTENT: usize = 256;
/// Nesting deeper than this is treated as an opaque leaf.
const MAX_DEPTH: usize = 40;
/// Bytes read per step.
const READ_STEP: usize = 64 << 10;

/// How a part's body is encoded for transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Base64,
    QuotedPrintable,
    /// 7bit, 8bit, binary or anything unknown: the bytes are the content.
    Identity,
}

/// A leaf body left out of the skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LargePart {
    /// What mail-parser decodes the placeholder to (the end of it, for `message/rfc822`).
    pub token: String,
    /// The encoded body's byte range in the message.
    pub start: u64,
    pub end: u64,
    pub encoding: Encoding,
}

/// The skeleton and the parts it leaves out.
#[derive(Debug)]
pub(crate) struct Skeleton {
    /// `None` when nothing was left out: the skeleton is the message itself, and no copy of it
    /// was made.
    pub bytes: Option<Vec<u8>>,
    pub parts: Vec<LargePart>,
}

impl Skeleton {
    /// The skeleton's bytes: borrowed from the message when it is its own skeleton (and in
    /// memory), else the built copy.
    pub(crate) fn text<'a>(&'a self, body: &'a Body) -> io::Result<Cow<'a, [u8]>> {
        match &self.bytes {
            Some(b) => Ok(Cow::Borrowed(b)),
            None => body.bytes(),
        }
    }
}

/// Builds the skeleton of `body`. `min_part` is the size from which non-text leaves are left
/// out, `text_limit` the size from which text leaves are.
pub(crate) fn build(body: &Body, min_part: u64, text_limit: u64) -> io::Result<Skeleton> {
    let mut s = Scanner {
        lines: Lines::new(body),
        body,
        out: Vec::new(),
        run: None,
        parts: Vec::new(),
        nonce: rand::random::<u64>(),
        min_part,
        text_limit: text_limit.max(min_part),
    };
    s.entity(&[], 0, false)?;
    // Nothing left out and every byte copied in one run: the message is its own skeleton.
    let whole = s.out.is_empty() && s.run.is_none_or(|r| r == (0, body.len()));
    let bytes = if whole {
        None
    } else {
        s.flush()?;
        Some(s.out)
    };
    Ok(Skeleton {
        bytes,
        parts: s.parts,
    })
}

/// One line: where it starts, its full length (terminator included), and its first bytes.
struct Line {
    start: u64,
    len: u64,
    head: Vec<u8>,
}

impl Line {
    fn end(&self) -> u64 {
        self.start + self.len
    }
    fn is_blank(&self) -> bool {
        self.head == b"\r\n" || self.head == b"\n"
    }
}

/// Reads lines of a body in bounded steps, keeping only the first bytes of each.
struct Lines<'a> {
    body: &'a Body,
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the body.
    buf_start: u64,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(body: &'a Body) -> Lines<'a> {
        Lines {
            body,
            buf: Vec::new(),
            buf_start: 0,
            pos: 0,
        }
    }

    fn offset(&self) -> u64 {
        self.buf_start + self.pos as u64
    }

    /// The next line, keeping at most `keep` bytes of it; `None` at the end of the body.
    fn next(&mut self, keep: usize) -> io::Result<Option<Line>> {
        let start = self.offset();
        let mut head = Vec::new();
        let mut len = 0u64;
        loop {
            if self.pos == self.buf.len() {
                self.buf_start += self.buf.len() as u64;
                self.buf = self
                    .body
                    .range(self.buf_start, self.buf_start + READ_STEP as u64)?;
                self.pos = 0;
                if self.buf.is_empty() {
                    return Ok((len > 0).then_some(Line { start, len, head }));
                }
            }
            let rest = &self.buf[self.pos..];
            let (take, done) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (rest.len(), false),
            };
            let room = keep.saturating_sub(head.len()).min(take);
            head.extend_from_slice(&rest[..room]);
            self.pos += take;
            len += take as u64;
            if done {
                return Ok(Some(Line { start, len, head }));
            }
        }
    }
}

/// What ended an entity: the delimiter line and the index of its boundary in the stack.
struct Delimiter {
    line: Line,
    depth: usize,
    closing: bool,
}

struct Scanner<'a> {
    lines: Lines<'a>,
    body: &'a Body,
    /// What the skeleton holds that is not a plain copy of the message, and the copies before it.
    out: Vec<u8>,
    /// Bytes of the message to copy next, not read yet: copies are contiguous until something is
    /// left out, so a message without large parts is never copied at all.
    run: Option<(u64, u64)>,
    parts: Vec<LargePart>,
    nonce: u64,
    min_part: u64,
    text_limit: u64,
}

impl Scanner<'_> {
    fn copy(&mut self, start: u64, end: u64) -> io::Result<()> {
        match self.run {
            Some((from, to)) if to == start => self.run = Some((from, end)),
            _ => {
                self.flush()?;
                self.run = Some((start, end));
            }
        }
        Ok(())
    }

    /// Writes the pending copy into `out`.
    fn flush(&mut self) -> io::Result<()> {
        if let Some((start, end)) = self.run.take() {
            let bytes = self.body.range(start, end)?;
            self.out.extend_from_slice(&bytes);
        }
        Ok(())
    }

    /// Adds bytes that are not the message's own (a placeholder, a dropped filler's line end).
    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Scans one entity (headers and body); returns the delimiter that ended it, if any.
    /// `in_digest`: without a Content-Type it is a `message/rfc822` (RFC 2046 §5.1.5).
    fn entity(
        &mut self,
        bounds: &[Vec<u8>],
        depth: usize,
        in_digest: bool,
    ) -> io::Result<Option<Delimiter>> {
        let mut header = Vec::new();
        // A header section with no end in sight is broken: what follows is treated as body.
        while header.len() < MAX_HEADER_SECTION {
            let Some(line) = self.lines.next(MAX_HEADER_LINE)? else {
                return Ok(None);
            };
            if let Some(d) = delimiter(&line, bounds) {
                return Ok(Some(d));
            }
            self.copy(line.start, line.end())?;
            if line.is_blank() {
                break;
            }
            header.extend_from_slice(&line.head);
        }
        let fields = Fields::parse(&header, in_digest);
        if let Some(boundary) = fields.boundary.clone().filter(|_| depth < MAX_DEPTH) {
            let mut inner = bounds.to_vec();
            inner.push(boundary.into_bytes());
            return self.multipart(&inner, depth, fields.is_digest);
        }
        self.leaf(bounds, &fields)
    }

    /// A multipart body: preamble, parts, epilogue. `bounds` ends with its own boundary.
    fn multipart(
        &mut self,
        bounds: &[Vec<u8>],
        depth: usize,
        digest: bool,
    ) -> io::Result<Option<Delimiter>> {
        let own = bounds.len() - 1;
        // Preamble and epilogue are ignored by every reader: copied when small, else dropped.
        let mut end = self.filler(bounds)?;
        loop {
            match end {
                None => return Ok(None),
                Some(d) if d.depth != own => return Ok(Some(d)),
                Some(d) => {
                    self.copy(d.line.start, d.line.end())?;
                    if d.closing {
                        end = self.filler(&bounds[..own])?;
                        return Ok(end);
                    }
                    end = self.entity(bounds, depth + 1, digest)?;
                }
            }
        }
    }

    /// Skips to the next delimiter, copying what lies between when it is small.
    fn filler(&mut self, bounds: &[Vec<u8>]) -> io::Result<Option<Delimiter>> {
        let start = self.lines.offset();
        let found = self.until_delimiter(bounds)?;
        let end = found.as_ref().map_or(self.lines.offset(), |d| d.line.start);
        if end - start < self.min_part {
            self.copy(start, end)?;
        } else {
            self.emit(b"\r\n")?;
        }
        Ok(found)
    }

    fn until_delimiter(&mut self, bounds: &[Vec<u8>]) -> io::Result<Option<Delimiter>> {
        while let Some(line) = self.lines.next(KEEP_CONTENT)? {
            if let Some(d) = delimiter(&line, bounds) {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// A leaf body: copied, or replaced by a placeholder when large.
    fn leaf(&mut self, bounds: &[Vec<u8>], fields: &Fields) -> io::Result<Option<Delimiter>> {
        let start = self.lines.offset();
        let found = self.until_delimiter(bounds)?;
        let stop = found.as_ref().map_or(self.lines.offset(), |d| d.line.start);
        // The line break before a delimiter belongs to the delimiter.
        let mut end = stop;
        if found.is_some() {
            let tail = self.body.range(stop.saturating_sub(2).max(start), stop)?;
            end -= match tail.as_slice() {
                [.., b'\r', b'\n'] => 2,
                [.., b'\n'] => 1,
                _ => 0,
            };
        }
        let limit = if fields.is_text {
            self.text_limit
        } else {
            self.min_part
        };
        if end - start < limit {
            self.copy(start, stop)?;
            return Ok(found);
        }
        let token = format!("mailferry-part-{:016x}-{}", self.nonce, self.parts.len());
        let mut placeholder = Vec::new();
        if fields.is_message && fields.encoding == Encoding::Identity {
            // Keep the nested header section: its subject names the attachment.
            let head = self.body.range(start, (start + MIN_PART).min(end))?;
            let blank = head
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4)
                .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|p| p + 2));
            if let Some(p) = blank {
                placeholder.extend_from_slice(&head[..p]);
            }
        }
        placeholder.extend_from_slice(token.as_bytes());
        match fields.encoding {
            Encoding::Base64 => self.emit(STANDARD.encode(&placeholder).as_bytes())?,
            _ => self.emit(&placeholder)?,
        }
        self.copy(end, stop)?;
        self.parts.push(LargePart {
            token,
            start,
            end,
            encoding: fields.encoding,
        });
        Ok(found)
    }
}

/// `line` as a delimiter of the innermost boundary. Like mail-parser (whose view of the message
/// the skeleton must not change), enclosing boundaries inside a part are content: RFC 2046 forbids
/// them there, so a line that looks like one is text that happens to.
fn delimiter(line: &Line, bounds: &[Vec<u8>]) -> Option<Delimiter> {
    let depth = bounds.len().checked_sub(1)?;
    let after = line
        .head
        .strip_prefix(b"--")?
        .strip_prefix(bounds[depth].as_slice())?;
    let (closing, after) = match after.strip_prefix(b"--") {
        Some(a) => (true, a),
        None => (false, after),
    };
    (after.iter().all(|c| c.is_ascii_whitespace()) && line.len as usize == line.head.len()).then(
        || Delimiter {
            line: Line {
                start: line.start,
                len: line.len,
                head: Vec::new(),
            },
            depth,
            closing,
        },
    )
}

/// What the scan needs from an entity's header section.
struct Fields {
    boundary: Option<String>,
    encoding: Encoding,
    is_text: bool,
    is_message: bool,
    is_digest: bool,
}

impl Fields {
    fn parse(header: &[u8], in_digest: bool) -> Fields {
        let text = String::from_utf8_lossy(header);
        let mut ctype = String::new();
        let mut cte = String::new();
        let mut current: Option<&mut String> = None;
        for line in text.split('\n') {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = current.as_deref_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            current = None;
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let target = match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => &mut ctype,
                "content-transfer-encoding" => &mut cte,
                _ => continue,
            };
            target.clear();
            target.push_str(value.trim());
            current = Some(target);
        }
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let boundary = if mime.starts_with("multipart/") {
            param(&ctype, "boundary")
        } else {
            None
        };
        let encoding = match cte.trim().to_ascii_lowercase().as_str() {
            "base64" => Encoding::Base64,
            "quoted-printable" => Encoding::QuotedPrintable,
            _ => Encoding::Identity,
        };
        // No Content-Type means text/plain (RFC 2045 §5.2), or a message inside a digest.
        let mime = match mime.as_str() {
            "" if in_digest => "message/rfc822".to_owned(),
            "" => "text/plain".to_owned(),
            _ => mime,
        };
        Fields {
            boundary,
            encoding,
            is_text: mime.starts_with("text/"),
            is_message: mime == "message/rfc822",
            is_digest: mime == "multipart/digest",
        }
    }
}

/// A Content-Type parameter's value (quoted or not), including RFC 2231 forms: `name*=` with a
/// charset and language prefix and percent-encoding, and `name*0=`, `name*1*=` continuations.
fn param(ctype: &str, name: &str) -> Option<String> {
    let mut plain = None;
    let mut pieces: Vec<(u32, String)> = Vec::new();
    for p in ctype.split(';').skip(1) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let Some(rest) = k.strip_prefix(&name.to_ascii_lowercase()) else {
            continue;
        };
        let v = unquote(v.trim());
        if rest.is_empty() {
            plain = Some(v.to_owned());
            continue;
        }
        let Some(rest) = rest.strip_prefix('*') else {
            continue;
        };
        let (index, extended) = match rest.strip_suffix('*') {
            Some(n) => (n, true),
            None if rest.is_empty() => ("", true),
            None => (rest, false),
        };
        let index: u32 = if index.is_empty() {
            0
        } else {
            match index.parse() {
                Ok(i) => i,
                Err(_) => continue,
            }
        };
        let value = if extended {
            // The first extended piece carries `charset'language'`.
            let v = if index == 0 {
                v.splitn(3, '\'').nth(2).unwrap_or(v)
            } else {
                v
            };
            percent_decode(v)
        } else {
            v.to_owned()
        };
        pieces.push((index, value));
    }
    if !pieces.is_empty() {
        pieces.sort_by_key(|p| p.0);
        let joined: String = pieces.into_iter().map(|p| p.1).collect();
        return (!joined.is_empty()).then_some(joined);
    }
    plain.filter(|v| !v.is_empty())
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.split('"').next())
        .unwrap_or(v)
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(n) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("x"), 16)
        {
            out.push(n);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
