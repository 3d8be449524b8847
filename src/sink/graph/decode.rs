//! Streamed transfer decoding of the large parts a [`super::skeleton`] leaves out: base64 and
//! quoted-printable decoded in bounded steps from the message into a spool file (or only counted),
//! so an attachment of any size is never whole in memory.
//!
//! Both decoders are lenient the way mail readers are: base64 skips bytes outside its alphabet,
//! stops at padding and decodes a truncated last group as far as it goes (mail-parser drops such
//! a part's content); quoted-printable keeps a malformed `=` sequence as it is.

use std::io::{self, Write};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::skeleton::{Encoding, LargePart};
use crate::body::{Body, STEP, Spool, SpoolWriter};

/// Decodes `part` of `body` into a new spool.
pub(crate) fn to_spool(body: &Body, part: &LargePart) -> io::Result<Spool> {
    let mut w = SpoolWriter::new()?;
    decode(body, part, &mut w)?;
    w.finish()
}

/// The decoded size of `part`, decoding without keeping anything.
pub(crate) fn decoded_len(body: &Body, part: &LargePart) -> io::Result<u64> {
    let mut counter = Counter(0);
    decode(body, part, &mut counter)?;
    Ok(counter.0)
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn decode(body: &Body, part: &LargePart, out: &mut impl Write) -> io::Result<()> {
    let mut b64 = Base64::default();
    let mut qp = QuotedPrintable::default();
    let mut decoded = Vec::with_capacity(STEP);
    let mut offset = part.start;
    while offset < part.end {
        let chunk = body.range(offset, (offset + STEP as u64).min(part.end))?;
        if chunk.is_empty() {
            break;
        }
        offset += chunk.len() as u64;
        decoded.clear();
        match part.encoding {
            Encoding::Base64 => b64.feed(&chunk, &mut decoded),
            Encoding::QuotedPrintable => qp.feed(&chunk, &mut decoded),
            Encoding::Identity => decoded.extend_from_slice(&chunk),
        }
        out.write_all(&decoded)?;
    }
    decoded.clear();
    match part.encoding {
        Encoding::Base64 => b64.finish(&mut decoded),
        Encoding::QuotedPrintable => qp.finish(&mut decoded),
        Encoding::Identity => {}
    }
    out.write_all(&decoded)
}

/// Base64 decoding across chunk edges: the alphabet's characters are collected (everything
/// else skipped, padding ends the data) and decoded in whole groups of four by the base64 crate;
/// the last one to three characters wait for the next chunk.
#[derive(Default)]
struct Base64 {
    clean: Vec<u8>,
    done: bool,
}

/// No padding is ever passed in, and a truncated last group may have non-zero trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

impl Base64 {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        for &c in input {
            if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' {
                self.clean.push(c);
            } else if c == b'=' {
                self.done = true;
                break;
            }
        }
        let whole = self.clean.len() / 4 * 4;
        if whole > 0 {
            // Whole groups of alphabet characters always decode.
            let _ = LENIENT.decode_vec(&self.clean[..whole], out);
            self.clean.drain(..whole);
        }
    }

    /// A last group of two or three characters still holds one or two bytes; one alone, none.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.clean.len() >= 2 {
            let _ = LENIENT.decode_vec(&self.clean, out);
        }
        self.clean.clear();
    }
}

/// Quoted-printable decoding across chunk edges.
#[derive(Default)]
enum QuotedPrintable {
    #[default]
    Text,
    /// After `=`.
    Equals,
    /// After `=` and one hex digit.
    Hex(u8),
    /// After `=` CR (a soft line break, if LF follows).
    SoftCr,
}

impl QuotedPrintable {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            *self = match std::mem::take(self) {
                QuotedPrintable::Text if c == b'=' => QuotedPrintable::Equals,
                QuotedPrintable::Text => {
                    out.push(c);
                    QuotedPrintable::Text
                }
                QuotedPrintable::Equals if c.is_ascii_hexdigit() => QuotedPrintable::Hex(c),
                QuotedPrintable::Equals if c == b'\r' => QuotedPrintable::SoftCr,
                QuotedPrintable::Equals if c == b'\n' => QuotedPrintable::Text,
                QuotedPrintable::Equals => {
                    out.extend_from_slice(&[b'=', c]);
                    QuotedPrintable::Text
                }
                QuotedPrintable::Hex(h) if c.is_ascii_hexdigit() => {
                    out.push(hex(h) << 4 | hex(c));
                    QuotedPrintable::Text
                }
                QuotedPrintable::Hex(h) => {
                    out.extend_from_slice(&[b'=', h, c]);
                    QuotedPrintable::Text
                }
                QuotedPrintable::SoftCr if c == b'\n' => QuotedPrintable::Text,
                QuotedPrintable::SoftCr => {
                    out.push(c);
                    QuotedPrintable::Text
                }
            };
        }
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        match std::mem::take(self) {
            QuotedPrintable::Equals => out.push(b'='),
            QuotedPrintable::Hex(h) => out.extend_from_slice(&[b'=', h]),
            _ => {}
        }
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;

    fn part(body: &Body, encoding: Encoding) -> LargePart {
        LargePart {
            token: String::new(),
            start: 0,
            end: body.len(),
            encoding,
        }
    }

    fn decoded(body: &Body, encoding: Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        decode(body, &part(body, encoding), &mut out).expect("decode");
        assert_eq!(
            decoded_len(body, &part(body, encoding)).expect("count"),
            out.len() as u64
        );
        out
    }

    proptest! {
        /// Base64 wrapped at 76 columns with CRLF, as mail carries it, decodes to the input
        /// whatever the chunk edges (the body is read in STEP-sized pieces).
        #[test]
        fn base64_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let encoded = STANDARD.encode(&data);
            let mut wrapped = Vec::new();
            for line in encoded.as_bytes().chunks(76) {
                wrapped.extend_from_slice(line);
                wrapped.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(decoded(&Body::Memory(wrapped), Encoding::Base64), data);
        }

        /// Quoted-printable of any bytes (every byte escaped, soft breaks every 75 columns).
        #[test]
        fn quoted_printable_round_trips(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut encoded = Vec::new();
            let mut col = 0;
            for b in &data {
                if col >= 72 {
                    encoded.extend_from_slice(b"=\r\n");
                    col = 0;
                }
                encoded.extend_from_slice(format!("={b:02X}").as_bytes());
                col += 3;
            }
            prop_assert_eq!(decoded(&Body::Memory(encoded), Encoding::QuotedPrintable), data);
        }
    }

    #[test]
    fn lenient_on_malformed_input() {
        assert_eq!(
            decoded(
                &Body::Memory(b"a=zzb=4".to_vec()),
                Encoding::QuotedPrintable
            ),
            b"a=zzb=4"
        );
        assert_eq!(
            decoded(
                &Body::Memory(b"line=\nnext=3D".to_vec()),
                Encoding::QuotedPrintable
            ),
            b"linenext="
        );
        assert_eq!(
            decoded(
                &Body::Memory(b"aGVs*bG8=\r\nignored".to_vec()),
                Encoding::Base64
            ),
            b"hello"
        );
    }

    #[test]
    fn a_spooled_part_is_decoded_from_its_range() {
        let data: Vec<u8> = (0..(3 * STEP as u32)).map(|i| (i * 7) as u8).collect();
        let mut raw = b"header\r\n\r\n".to_vec();
        let start = raw.len() as u64;
        raw.extend_from_slice(STANDARD.encode(&data).as_bytes());
        let end = raw.len() as u64;
        raw.extend_from_slice(b"\r\n--b--\r\n");
        let body = crate::body::from_bytes(raw).expect("body");
        let spool = to_spool(
            &body,
            &LargePart {
                token: String::new(),
                start,
                end,
                encoding: Encoding::Base64,
            },
        )
        .expect("spool");
        assert_eq!(
            Body::Spooled(spool).bytes().expect("read").into_owned(),
            data
        );
    }
}
