//! Folder names as bytes on the wire and as text in mailferry, without loss.
//!
//! Servers should send folder names in modified UTF-7 (ASCII), but some send raw 8-bit bytes
//! (Latin-1, or UTF-8 without announcing it). mailferry keeps a folder's name as text
//! ([`crate::model::SourceFolder::raw_name`], the ledger key), and must send back exactly the
//! bytes the server listed: decoding them lossily and sending the result would EXAMINE a
//! different folder. So a name that is not valid UTF-8 is carried as text by mapping each byte
//! that is not part of valid UTF-8 to a private-use character (U+F780 + byte - 0x80), and mapped
//! back when the name is sent. A valid character that happens to lie in that private-use range is
//! escaped byte by byte too, so the mapping is a bijection and no real name can be confused with
//! an escaped one.

use std::borrow::Cow;

const BASE: u32 = 0xF700;

fn escaped(c: char) -> bool {
    (BASE + 0x80..=BASE + 0xFF).contains(&(c as u32))
}

/// The text form of a name as sent by the server (borrowed when it is plain UTF-8).
pub(crate) fn from_wire(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !s.chars().any(escaped)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    let push_bytes = |out: &mut String, b: &[u8]| {
        for &b in b {
            out.push(char::from_u32(BASE + u32::from(b)).unwrap_or('\u{FFFD}'));
        }
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if escaped(c) {
                push_bytes(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes());
            } else {
                out.push(c);
            }
        }
        push_bytes(&mut out, chunk.invalid());
    }
    Cow::Owned(out)
}

/// The bytes to send for a name produced by [`from_wire`] (borrowed when nothing was escaped).
pub(crate) fn to_wire(name: &str) -> Cow<'_, [u8]> {
    if !name.chars().any(escaped) {
        return Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if escaped(c) {
            out.push((c as u32 - BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The name for people (paths, reports): escaped bytes shown as U+FFFD.
pub(crate) fn for_display(name: &str) -> Cow<'_, str> {
    if !name.chars().any(escaped) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(String::from_utf8_lossy(&to_wire(name)).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_through() {
        assert!(matches!(
            from_wire(b"INBOX/Sent"),
            Cow::Borrowed("INBOX/Sent")
        ));
        assert!(matches!(to_wire("Caf\u{e9}"), Cow::Borrowed(_)));
    }

    #[test]
    fn latin1_round_trips_to_the_same_bytes() {
        let text = from_wire(b"Caf\xe9");
        assert_ne!(text, "Caf\u{fffd}");
        assert_eq!(to_wire(&text).as_ref(), b"Caf\xe9");
        assert_eq!(for_display(&text), "Caf\u{fffd}");
    }

    proptest::proptest! {
        /// Any bytes: to_wire(from_wire(b)) == b, and different byte strings stay different.
        #[test]
        fn any_bytes_round_trip(a in proptest::collection::vec(proptest::num::u8::ANY, 0..24),
                                b in proptest::collection::vec(proptest::num::u8::ANY, 0..24)) {
            let text = from_wire(&a);
            let back = to_wire(&text).into_owned();
            proptest::prop_assert_eq!(back, a.clone());
            if a != b {
                proptest::prop_assert_ne!(from_wire(&a), from_wire(&b));
            }
        }
    }
}
