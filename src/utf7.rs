//! Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of IMAP folder names on the wire and of
//! Maildir++ folder directory names.
//!
//! Decode only for display and mapping; always send the server the raw name it gave.

use base64::Engine;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};

const B64: GeneralPurpose = GeneralPurpose::new(&IMAP_MUTF7, NO_PAD);

/// A name that is not valid modified UTF-7.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not valid modified UTF-7 at byte {position} of {name:?}")]
pub struct Utf7Error {
    pub name: String,
    pub position: usize,
}

/// Decodes a modified UTF-7 name to Unicode.
pub fn decode(name: &str) -> Result<String, Utf7Error> {
    let err = |position| Utf7Error {
        name: name.to_owned(),
        position,
    };
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    let mut pos = 0;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-').ok_or_else(|| err(pos + amp))?;
        let chunk = &after[..end];
        if chunk.is_empty() {
            out.push('&');
        } else {
            let bytes = B64.decode(chunk).map_err(|_| err(pos + amp))?;
            if bytes.len() % 2 != 0 {
                return Err(err(pos + amp));
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).map_err(|_| err(pos + amp))?);
        }
        let consumed = amp + 1 + end + 1;
        pos += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a Unicode name to modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&B64.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_from_rfc_3501() {
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(decode("Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode("Envoyés"), "Envoy&AOk-s");
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode("A&-B").unwrap(), "A&B");
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").unwrap(), "😀");
    }

    #[test]
    fn broken_input_is_an_error_with_position() {
        assert_eq!(decode("ab&AOk").unwrap_err().position, 2);
        assert!(decode("&A-").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any Unicode name (controls, `&`, astral characters, unpaired runs of non-ASCII)
        /// encodes to printable ASCII that decodes back to exactly the name.
        #[test]
        fn round_trip_any_unicode_string(s in proptest::prelude::any::<String>()) {
            let e = encode(&s);
            proptest::prop_assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", e);
            proptest::prop_assert_eq!(decode(&e), Ok(s));
        }

        /// Names mixing the characters that change the encoder's state.
        #[test]
        fn round_trip_mixed_names(s in "([&\\-/ a-zA-Z]|[\u{80}-\u{7ff}]|[\u{e000}-\u{ffff}]|[\u{10000}-\u{10ffff}]){0,40}") {
            proptest::prop_assert_eq!(decode(&encode(&s)), Ok(s));
        }
    }

    #[test]
    fn round_trip_any_string() {
        for s in [
            "",
            "plain",
            "Gel&öschte",
            "Ordner/Unter Ordner",
            "日本語 & more",
            "\u{1F600}x",
        ] {
            assert_eq!(decode(&encode(s)).unwrap(), s);
        }
    }
}
