//! The few header facts mailferry reads from a raw message: where the header section ends and the
//! Message-ID. One implementation for every edge (Maildir files, IMAP FETCH answers, the IMAP
//! sink's look-ups), so a message read from disk, the same message read over IMAP and the copy at
//! the destination always yield the same identity.
//!
//! RFC 5322 §2.1: `message = fields / obs-fields [CRLF body]`; §3.6.4:
//! `msg-id = [CFWS] "<" id-left "@" id-right ">" [CFWS]`. Real mail breaks both (bare LF, no
//! angle brackets, spaces inside the id), so the value is kept as written: the `<...>` part when
//! there is one, else the trimmed value.

/// Index just past the blank line ending the header section (LF or CRLF line ends); `None` when
/// the buffer holds no complete header section. A message that starts with a blank line has an
/// empty header.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// The Message-ID of a message, a header section or an IMAP `HEADER.FIELDS (MESSAGE-ID)` answer:
/// unfolded, the `<...>` part when present, else the bare value. Anything after the header section
/// is ignored, so a `Message-ID:` line in a body never counts. `None` when absent or empty.
pub fn message_id(raw: &[u8]) -> Option<String> {
    let header = header_end(raw).map_or(raw, |end| &raw[..end]);
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((name, rest)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            value = Some(rest.trim().to_owned());
        }
    }
    let value = value?;
    let value = value.trim();
    if let (Some(open), Some(close)) = (value.find('<'), value.find('>'))
        && open < close
    {
        return Some(value[open..=close].to_owned());
    }
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers: (input, expected Message-ID).
    const MESSAGE_IDS: &[(&[u8], Option<&str>)] = &[
        (
            b"From: a@b\nMESSAGE-ID:\n <abc@\n example.org>\nSubject: x\n\n",
            Some("<abc@ example.org>"),
        ),
        (
            b"Message-Id: <9209252113.AA00975@ ebony >\n\n",
            Some("<9209252113.AA00975@ ebony >"),
        ),
        (b"Message-ID: <a@b> (comment)\n\n", Some("<a@b>")),
        (b"Message-Id: bare@id\r\n\r\n", Some("bare@id")),
        (b"MESSAGE-ID: bare@id\r\n\r\n", Some("bare@id")),
        (b"Subject: x\n\nMessage-ID: <body@x>\n", None),
        (b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", None),
        (
            b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nMessage-ID: <body@x>\r\n",
            Some("<a@b>"),
        ),
        (b"X-Message-ID: <no@x>\n", None),
        (b"X-Message-ID: <no@x>\r\n\r\n", None),
        (b"Message-ID:   \n", None),
        (b"Message-Id: \r\n\r\n", None),
        (b"\r\n", None),
        (b"", None),
    ];

    #[test]
    fn message_id_known_answers() {
        for (input, want) in MESSAGE_IDS {
            assert_eq!(
                message_id(input).as_deref(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn header_end_variants() {
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"\nbody"), Some(1));
        assert_eq!(header_end(b"A: b\nB: c\n"), None);
    }
}
