//! The `Received:` line mailferry puts in front of an importMime copy when the plan asks for
//! `received_date = "prepend-received"`: Exchange takes an imported message's received time from
//! its topmost `Received:` header, so one line carrying the source's INTERNALDATE makes the
//! received time the source's. The rest of the message is untouched (signatures cover neither
//! this header nor anything above the signed ones), and the copy is still recognised as the
//! source's message: [`is_copy_of`] strips the line before comparing contents.

use chrono::{DateTime, FixedOffset};

use crate::model::ContentHash;

/// The fixed start of the line, which tells it apart from any real hop.
const MARK: &[u8] = b"Received: by mailferry.invalid (mailferry: source INTERNALDATE); ";

/// The header line (CRLF included), e.g.
/// `Received: by mailferry.invalid (mailferry: source INTERNALDATE); Mon, 3 Jul 2017 10:00:00 +0200`.
pub(crate) fn line(internal_date: DateTime<FixedOffset>) -> Vec<u8> {
    let mut v = MARK.to_vec();
    v.extend_from_slice(internal_date.to_rfc2822().as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// `raw` with the line in front.
pub(crate) fn prepend(raw: &[u8], internal_date: DateTime<FixedOffset>) -> Vec<u8> {
    let mut v = line(internal_date);
    v.extend_from_slice(raw);
    v
}

/// The source's bytes of a stored copy: without mailferry's line when it carries one.
pub(crate) fn source_bytes(mime: &[u8]) -> &[u8] {
    if !mime.starts_with(MARK) {
        return mime;
    }
    match mime.windows(2).position(|w| w == b"\r\n") {
        Some(end) => &mime[end + 2..],
        None => mime,
    }
}

/// Whether a stored MIME is the message whose SHA-256 is `sha256` (with or without the line).
pub(crate) fn is_copy_of(mime: &[u8], sha256: &ContentHash) -> bool {
    ContentHash::of(mime) == *sha256 || ContentHash::of(source_bytes(mime)) == *sha256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_carries_the_date_and_comes_off_again() {
        let raw =
            b"Received: from a by b; Tue, 1 Jan 2019 10:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n";
        let date = DateTime::parse_from_rfc3339("2017-07-03T10:00:00+02:00").unwrap();
        let out = prepend(raw, date);
        assert!(out.starts_with(
            b"Received: by mailferry.invalid (mailferry: source INTERNALDATE); Mon, 3 Jul 2017 10:00:00 +0200\r\nReceived: from a"
        ));
        assert_eq!(out.len() - raw.len(), line(date).len());
        assert_eq!(source_bytes(&out), raw);
        assert!(is_copy_of(&out, &ContentHash::of(raw)));
        assert!(is_copy_of(raw, &ContentHash::of(raw)));
        assert_eq!(source_bytes(raw), raw);
    }
}
