//! The grouping key of a failure reason: the reason with what differs per request taken out
//! (request ids, client-request-ids, trace ids, GUIDs, timestamps), so that the same failure met
//! a thousand times reads as one line with a count. The full reason, ids included, stays in the
//! per-item detail (ledger rows, events, CSV) where support needs it.

/// Bracketed tags whose whole content identifies one request, dropped from the key.
const ID_TAGS: &[&str] = &["[client-request-id ", "[request-id ", "[trace id "];

/// `reason` without its per-request parts.
pub fn group_key(reason: &str) -> String {
    let mut s = reason.to_owned();
    for tag in ID_TAGS {
        while let Some(start) = s.find(tag) {
            let end = s[start..].find(']').map_or(s.len(), |e| start + e + 1);
            let start = if s[..start].ends_with(' ') {
                start - 1
            } else {
                start
            };
            s.replace_range(start..end, "");
        }
    }
    mask(&s)
}

/// Replaces GUIDs with `<id>` and ISO-8601 timestamps with `<time>`.
fn mask(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(n) = guid_len(&b[i..]) {
            out.push_str("<id>");
            i += n;
        } else if let Some(n) = timestamp_len(&b[i..]) {
            out.push_str("<time>");
            i += n;
        } else {
            let ch = s[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8().max(1);
        }
    }
    out
}

/// Length of a GUID (`8-4-4-4-12` hex digits) at the start of `b`, when one starts there.
fn guid_len(b: &[u8]) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (k, n) in groups.iter().enumerate() {
        if k > 0 {
            (b.get(i) == Some(&b'-')).then_some(())?;
            i += 1;
        }
        let part = b.get(i..i + n)?;
        part.iter().all(u8::is_ascii_hexdigit).then_some(())?;
        i += n;
    }
    Some(i)
}

/// Length of `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` at the start of `b`, when one starts there.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let head = b.get(..shape.len())?;
    let ok = head.iter().zip(shape).all(|(c, p)| match p {
        b'd' => c.is_ascii_digit(),
        b'T' => *c == b'T' || *c == b' ',
        p => c == p,
    });
    ok.then_some(())?;
    let mut i = shape.len();
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-')
            if b.get(i + 1..i + 6).is_some_and(|z| {
                z[0].is_ascii_digit() && z[1].is_ascii_digit() && z[2] == b':'
            }) =>
        {
            i += 6
        }
        _ => {}
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::group_key;

    #[test]
    fn request_ids_and_timestamps_do_not_split_a_group() {
        let a = "create message for ann: HTTP 400 ErrorInvalidRequest: bad MIME [client-request-id 1b4e28ba-2fa1-11d2-883f-0016d3cca427, request-id 6f1c0a5e-0000-4000-8000-000000000001] after 1 attempt(s)";
        let b = "create message for ann: HTTP 400 ErrorInvalidRequest: bad MIME [client-request-id 9e107d9d-372b-4f1c-9ab9-2d3c1e0f0a11, request-id 0a0b0c0d-1111-4222-8333-444455556666] after 1 attempt(s)";
        assert_eq!(group_key(a), group_key(b));
        assert_eq!(
            group_key(a),
            "create message for ann: HTTP 400 ErrorInvalidRequest: bad MIME after 1 attempt(s)"
        );
        let t1 = "upload: unexpected response: at 2026-12-06T00:21:11.123Z id 0a0b0c0d-1111-4222-8333-444455556666 [request-id r-1]";
        let t2 = "upload: unexpected response: at 2026-12-05T23:01:02Z id 1a0b0c0d-1111-4222-8333-444455556666 [request-id r-2]";
        assert_eq!(group_key(t1), group_key(t2));
        assert_eq!(
            group_key(t1),
            "upload: unexpected response: at <time> id <id>"
        );
    }

    #[test]
    fn other_reasons_keep_their_text() {
        for r in [
            "message too large: 40000000 bytes (limit 37748736)",
            "folder \"Entwürfe\": no such folder",
        ] {
            assert_eq!(group_key(r), r);
        }
        assert_eq!(
            group_key("token request failed (HTTP 401) [trace id abc-1]: check the secret"),
            "token request failed (HTTP 401): check the secret"
        );
    }
}
