//! The stored form of an item: what a mailbox keeps per message between requests, as small as
//! the Graph behaviour allows (issue 16: a 250,000-message rehearsal in 1 GiB).
//!
//! Handlers work on [`Message`], whose Graph properties are a `serde_json::Map`. Kept as such, an
//! item cost about 12 KB: every JSON object is a B-tree whose nodes hold eleven (String, Value)
//! slots whatever their use, so `from`, `sender`, each recipient, `flag` and `body` cost over
//! 600 bytes each before any text. [`Stored`] keeps the properties as one byte string instead
//! (a tagged encoding of the JSON tree in which the common property names and values are one
//! byte, and canonical timestamps eight), ids and folder ids as shared strings, and extended
//! property ids interned per mailbox. A handler gets a rebuilt [`Message`], identical to the one
//! stored, so the Graph answers do not change.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Number, Value};

use super::blobs::Blob;
use super::store::{Attachment, ExtProp, Message};

/// Strings written as one byte: the property names of a message and its nested objects, and
/// their common values. Only ever appended to (the index is the encoding).
const WORDS: &[&str] = &[
    "",
    "bccRecipients",
    "body",
    "bodyPreview",
    "categories",
    "ccRecipients",
    "conversationId",
    "createdDateTime",
    "flag",
    "from",
    "importance",
    "inferenceClassification",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isDraft",
    "isRead",
    "isReadReceiptRequested",
    "lastModifiedDateTime",
    "receivedDateTime",
    "replyTo",
    "sender",
    "sentDateTime",
    "subject",
    "toRecipients",
    "webLink",
    "uniqueBody",
    "internetMessageHeaders",
    "emailAddress",
    "name",
    "address",
    "contentType",
    "content",
    "flagStatus",
    "dueDateTime",
    "startDateTime",
    "completedDateTime",
    "dateTime",
    "timeZone",
    "value",
    "normal",
    "low",
    "high",
    "focused",
    "other",
    "notFlagged",
    "flagged",
    "complete",
    "text",
    "html",
    "UTC",
];

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUMBER: u8 = 3;
const STRING: u8 = 4;
const WORD: u8 = 5;
const ARRAY: u8 = 6;
const OBJECT: u8 = 7;
/// A `YYYY-MM-DDTHH:MM:SSZ` string, as seconds since the epoch.
const TIME: u8 = 8;

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Seconds since the epoch of a canonical Graph timestamp (`2020-01-02T03:04:05Z`), when the
/// string is exactly that form (so formatting the seconds gives the string back).
pub(crate) fn canonical_secs(s: &str) -> Option<i64> {
    if s.len() != 20 {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(s, TIME_FORMAT).ok()?;
    let secs = t.and_utc().timestamp();
    (t.format(TIME_FORMAT).to_string() == s).then_some(secs)
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    if let Some(i) = WORDS.iter().position(|w| *w == s) {
        out.extend([WORD, i as u8]);
    } else {
        out.push(STRING);
        put_len(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }
}

fn put(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            let s = n.to_string();
            out.push(NUMBER);
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::String(s) => match canonical_secs(s) {
            Some(secs) => {
                out.push(TIME);
                out.extend_from_slice(&secs.to_le_bytes());
            }
            None => put_str(out, s),
        },
        Value::Array(a) => {
            out.push(ARRAY);
            put_len(out, a.len());
            a.iter().for_each(|x| put(out, x));
        }
        Value::Object(o) => put_object(out, o),
    }
}

fn put_object(out: &mut Vec<u8>, o: &Map<String, Value>) {
    out.push(OBJECT);
    put_len(out, o.len());
    for (k, x) in o {
        put_str(out, k);
        put(out, x);
    }
}

/// The encoded form of a property map.
pub(crate) fn encode(props: &Map<String, Value>) -> Box<[u8]> {
    let mut out = Vec::with_capacity(1024);
    put_object(&mut out, props);
    out.into_boxed_slice()
}

/// Reads what [`encode`] wrote (only ever its own output, so a short or odd input is a bug:
/// it decodes to what it can rather than panic).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .0
            .split_first()
            .map_or((NULL, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn len(&mut self) -> usize {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte();
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        n
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn string(&mut self, tag: u8) -> String {
        match tag {
            WORD => WORDS
                .get(usize::from(self.byte()))
                .copied()
                .unwrap_or("")
                .to_owned(),
            TIME => {
                let mut b = [0u8; 8];
                let src = self.bytes(8);
                b[..src.len()].copy_from_slice(src);
                DateTime::from_timestamp(i64::from_le_bytes(b), 0)
                    .map(|t| t.format(TIME_FORMAT).to_string())
                    .unwrap_or_default()
            }
            _ => {
                let n = self.len();
                String::from_utf8_lossy(self.bytes(n)).into_owned()
            }
        }
    }
    fn value(&mut self) -> Value {
        match self.byte() {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            NUMBER => {
                let n = self.len();
                let s = String::from_utf8_lossy(self.bytes(n)).into_owned();
                serde_json::from_str::<Number>(&s).map_or(Value::Null, Value::Number)
            }
            ARRAY => {
                let n = self.len();
                Value::Array((0..n).map(|_| self.value()).collect())
            }
            OBJECT => Value::Object(self.object_body()),
            tag => Value::String(self.string(tag)),
        }
    }
    fn object_body(&mut self) -> Map<String, Value> {
        let n = self.len();
        let mut o = Map::new();
        for _ in 0..n {
            let tag = self.byte();
            let k = self.string(tag);
            o.insert(k, self.value());
        }
        o
    }
}

/// The property map [`encode`] encoded.
pub(crate) fn decode(bytes: &[u8]) -> Map<String, Value> {
    match Reader(bytes).value() {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// Strings many items share (folder ids, extended property ids), one copy per mailbox.
#[derive(Debug, Default)]
pub(crate) struct Names(HashSet<Arc<str>>);

impl Names {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

/// An item as a mailbox keeps it (its creation order is the key it is kept under).
#[derive(Debug)]
pub(crate) struct Stored {
    pub id: Arc<str>,
    pub folder: Arc<str>,
    size: u64,
    change: u64,
    props: Box<[u8]>,
    ext: Box<[(Arc<str>, Box<str>)]>,
    attachments: Box<[Attachment]>,
    raw_mime: Option<Blob>,
    heavy: Option<Blob>,
}

impl Stored {
    pub fn new(m: Message, names: &mut Names) -> Self {
        Stored {
            id: Arc::from(m.id),
            folder: names.intern(&m.folder_id),
            size: m.size,
            change: m.change,
            props: encode(&m.props),
            ext: m
                .ext
                .into_iter()
                .map(|e| (names.intern(&e.id), e.value.into_boxed_str()))
                .collect(),
            attachments: m.attachments.into_boxed_slice(),
            raw_mime: m.raw_mime,
            heavy: m.heavy,
        }
    }

    /// The item as handlers see it (bodies in memory mode are shared, not copied).
    pub fn to_message(&self, seq: u64) -> Message {
        Message {
            raw_mime: self.raw_mime.clone(),
            attachments: self.attachments.to_vec(),
            heavy: self.heavy.clone(),
            ..self.light(seq)
        }
    }

    /// Like [`Stored::to_message`], consuming the record.
    pub fn into_message(self, seq: u64) -> Message {
        let light = self.light(seq);
        Message {
            raw_mime: self.raw_mime,
            attachments: self.attachments.into_vec(),
            heavy: self.heavy,
            ..light
        }
    }

    /// Everything but the blobs and attachments.
    fn light(&self, seq: u64) -> Message {
        Message {
            id: self.id.to_string(),
            folder_id: self.folder.to_string(),
            seq,
            props: decode(&self.props),
            ext: self
                .ext
                .iter()
                .map(|(id, value)| ExtProp {
                    id: id.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            raw_mime: None,
            attachments: Vec::new(),
            heavy: None,
            size: self.size,
            change: self.change,
        }
    }

    /// Bytes of the encoded properties (for the footprint test).
    #[cfg(test)]
    pub fn props_len(&self) -> usize {
        self.props.len()
    }
}

#[cfg(test)]
mod tests;
