//! MIME in and out: reads an RFC 5322 message into Graph properties (mail-parser) for importMime
//! and MIME create, and writes a MIME rendering of an item that has no stored bytes (what
//! `$value` returns for JSON-created items, as Exchange regenerates MIME from its own store).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Map, Value, json};

use super::blobs::{Blob, Blobs, digest_only};
use super::config::ImportMimeReceived;
use super::errors::ApiError;
use super::store::{Attachment, Message, format_time, new_id, now_string};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decodes the base64 body of a MIME request (whitespace ignored, as .NET's decoder does).
pub(crate) fn decode_base64(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let invalid = || {
        ApiError::new(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        )
    };
    if compact.is_empty() {
        return Err(invalid());
    }
    B64.decode(&compact).map_err(|_| invalid())
}

fn recipients(a: Option<&Address<'_>>) -> Vec<Value> {
    a.map(|a| {
        a.iter()
            .filter_map(|r| {
                let addr = r.address.as_deref()?;
                Some(json!({"emailAddress": {"name": r.name.as_deref().unwrap_or(addr), "address": addr}}))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn to_utc(d: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&d.to_rfc3339())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// First 255 characters of text, whitespace collapsed, as Graph's bodyPreview.
pub(crate) fn preview(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(255).collect()
}

/// Graph properties and attachments of a MIME message.
pub(crate) fn parse(
    raw: &[u8],
    received: ImportMimeReceived,
) -> Result<(Map<String, Value>, Vec<Attachment>), ApiError> {
    // mail-parser 0.11.9 panics on some malformed multipart nesting; the service answers 400
    // for content it cannot read, so the emulator must too rather than drop the connection.
    let msg = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorMimeContentInvalid",
                "The MIME content is not a valid message.",
            )
        })?;
    let now = now_string();
    let date = msg.date().and_then(to_utc);
    // The topmost `Received:` header (mail-parser's `received()` answers the last one).
    let top_received = msg
        .header_values(mail_parser::HeaderName::Received)
        .next()
        .and_then(|v| v.as_received())
        .and_then(|r| r.date())
        .as_ref()
        .and_then(to_utc);
    let received_at = match received {
        ImportMimeReceived::ReceivedHeader => top_received.or(date),
        ImportMimeReceived::DateHeader => date,
        ImportMimeReceived::ImportTime => None,
    }
    .map(format_time)
    .unwrap_or_else(|| now.clone());
    let has_html = msg.html_part(0).is_some_and(|p| p.is_text_html());
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let body = if has_html {
        json!({"contentType": "html", "content": msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default()})
    } else {
        json!({"contentType": "text", "content": text})
    };
    let headers: Vec<Value> = msg
        .headers_raw()
        .map(|(n, v)| json!({"name": n, "value": v.trim()}))
        .collect();
    let mut p = Map::new();
    p.insert("subject".into(), json!(msg.subject().unwrap_or("")));
    p.insert("bodyPreview".into(), json!(preview(&text)));
    p.insert("body".into(), body);
    if let Some(id) = msg.message_id() {
        p.insert("internetMessageId".into(), json!(format!("<{id}>")));
    }
    p.insert(
        "sentDateTime".into(),
        json!(date.map(format_time).unwrap_or_else(|| now.clone())),
    );
    p.insert("receivedDateTime".into(), json!(received_at));
    let from = recipients(msg.from());
    if let Some(f) = from.first() {
        p.insert("from".into(), f.clone());
    }
    let sender = recipients(msg.sender());
    if let Some(s) = sender.first().or(from.first()) {
        p.insert("sender".into(), s.clone());
    }
    p.insert("toRecipients".into(), Value::Array(recipients(msg.to())));
    p.insert("ccRecipients".into(), Value::Array(recipients(msg.cc())));
    p.insert("bccRecipients".into(), Value::Array(recipients(msg.bcc())));
    p.insert("replyTo".into(), Value::Array(recipients(msg.reply_to())));
    p.insert("internetMessageHeaders".into(), Value::Array(headers));
    let atts = msg
        .attachments()
        .map(|part| Attachment {
            id: new_id("AAMkADAtt"),
            name: part.attachment_name().unwrap_or("attachment").to_owned(),
            content_type: part
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into()),
            content: Blob::Memory(part.contents().to_vec().into()),
            is_inline: part.content_disposition().is_some_and(|d| d.is_inline()),
            content_id: part.content_id().map(str::to_owned),
            last_modified: now.clone(),
        })
        .collect();
    Ok((p, atts))
}

/// RFC 2047 encoding of a header value when it is not plain ASCII.
fn encode_word(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        s.to_owned()
    } else {
        format!("=?utf-8?B?{}?=", B64.encode(s))
    }
}

fn address_list(v: Option<&Value>) -> Option<String> {
    let one = |r: &Value| {
        let addr = r["emailAddress"]["address"].as_str()?;
        Some(match r["emailAddress"]["name"].as_str() {
            Some(n) if !n.is_empty() && n != addr => format!("{} <{addr}>", encode_word(n)),
            _ => format!("<{addr}>"),
        })
    };
    let list: Vec<String> = match v? {
        Value::Array(a) => a.iter().filter_map(one).collect(),
        r @ Value::Object(_) => one(r).into_iter().collect(),
        _ => Vec::new(),
    };
    (!list.is_empty()).then(|| list.join(", "))
}

fn wrap_base64(data: &[u8]) -> String {
    let enc = B64.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2 + 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

/// A MIME rendering of an item from its properties and attachments.
pub(crate) fn generate(blobs: &Blobs, m: &Message) -> Result<Vec<u8>, ApiError> {
    if let Some(Blob::Digest { len, sha256 }) = &m.heavy {
        return Err(digest_only(*len, sha256));
    }
    let mut full = m.props.clone();
    full.extend(blobs.heavy_props(m)?);
    let p = &full;
    let mut h = String::new();
    for (name, key) in [
        ("From", "from"),
        ("To", "toRecipients"),
        ("Cc", "ccRecipients"),
        ("Reply-To", "replyTo"),
    ] {
        if let Some(v) = address_list(p.get(key)) {
            h.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    h.push_str(&format!(
        "Subject: {}\r\n",
        encode_word(m.str_prop("subject").unwrap_or(""))
    ));
    if let Some(d) = m
        .str_prop("sentDateTime")
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
    {
        h.push_str(&format!("Date: {}\r\n", d.to_rfc2822()));
    }
    if let Some(id) = m.str_prop("internetMessageId") {
        h.push_str(&format!("Message-ID: {id}\r\n"));
    }
    if let Some(Value::Array(hs)) = p.get("internetMessageHeaders") {
        for x in hs {
            if let (Some(n), Some(v)) = (x["name"].as_str(), x["value"].as_str())
                && n.to_ascii_lowercase().starts_with("x-")
            {
                h.push_str(&format!("{n}: {}\r\n", encode_word(v)));
            }
        }
    }
    h.push_str("MIME-Version: 1.0\r\n");
    let html = p.get("body").and_then(|b| b["contentType"].as_str()) == Some("html");
    let content = p
        .get("body")
        .and_then(|b| b["content"].as_str())
        .unwrap_or("");
    let body_part = format!(
        "Content-Type: text/{}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        if html { "html" } else { "plain" },
        wrap_base64(content.as_bytes())
    );
    if m.attachments.is_empty() {
        return Ok(format!("{h}{body_part}").into_bytes());
    }
    let boundary = format!(
        "_emulator_{}",
        m.id.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    let mut out = format!(
        "{h}Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{body_part}"
    );
    for a in &m.attachments {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: {}; name=\"{}\"\r\n",
            a.content_type,
            encode_word(&a.name)
        ));
        out.push_str(&format!(
            "Content-Disposition: {}; filename=\"{}\"\r\n",
            if a.is_inline { "inline" } else { "attachment" },
            encode_word(&a.name)
        ));
        if let Some(cid) = &a.content_id {
            out.push_str(&format!(
                "Content-ID: <{}>\r\n",
                cid.trim_matches(['<', '>'])
            ));
        }
        out.push_str(&format!(
            "Content-Transfer-Encoding: base64\r\n\r\n{}",
            wrap_base64(&blobs.read(&a.content)?)
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"Received: from a by b; Tue, 1 Jan 2019 10:00:00 +0000\r\nFrom: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 31 Dec 2018 09:00:00 +0100\r\nMessage-ID: <x1@example.org>\r\nX-Custom: yes\r\n\r\nHello there.\r\n";

    #[test]
    fn the_topmost_received_header_decides() {
        let raw = b"Received: by b; Wed, 2 Jan 2019 10:00:00 +0000\r\nReceived: by a; Tue, 1 Jan 2019 10:00:00 +0000\r\nSubject: x\r\n\r\nHi.\r\n";
        let (p, _) = parse(raw, ImportMimeReceived::ReceivedHeader).unwrap();
        assert_eq!(p["receivedDateTime"], "2019-01-02T10:00:00Z");
    }

    #[test]
    fn parses_headers_dates_and_addresses() {
        let (p, atts) = parse(RAW, ImportMimeReceived::ReceivedHeader).unwrap();
        assert_eq!(p["subject"], "café");
        assert_eq!(p["internetMessageId"], "<x1@example.org>");
        assert_eq!(p["sentDateTime"], "2018-12-31T08:00:00Z");
        assert_eq!(p["receivedDateTime"], "2019-01-01T10:00:00Z");
        assert_eq!(p["from"]["emailAddress"]["address"], "ann@example.org");
        assert_eq!(
            p["toRecipients"][0]["emailAddress"]["address"],
            "bob@example.org"
        );
        assert!(atts.is_empty());
        let (p, _) = parse(RAW, ImportMimeReceived::DateHeader).unwrap();
        assert_eq!(p["receivedDateTime"], "2018-12-31T08:00:00Z");
    }

    #[test]
    fn bad_base64_is_the_graph_error() {
        assert_eq!(
            decode_base64(b"!!!").unwrap_err().code,
            "ErrorMimeContentInvalidBase64String"
        );
        assert_eq!(
            decode_base64(b"").unwrap_err().code,
            "ErrorMimeContentInvalidBase64String"
        );
        assert_eq!(decode_base64(b"aGVs\r\nbG8=").unwrap(), b"hello");
    }

    #[test]
    fn generated_mime_round_trips_through_the_parser() {
        let (props, atts) = parse(RAW, ImportMimeReceived::DateHeader).unwrap();
        let mut m = Message {
            id: "AAMkADx".into(),
            folder_id: "f".into(),
            seq: 1,
            props,
            ext: Vec::new(),
            raw_mime: None,
            attachments: atts,
            heavy: None,
            size: 0,
            change: 0,
        };
        m.attachments.push(Attachment {
            id: "a".into(),
            name: "r.pdf".into(),
            content_type: "application/pdf".into(),
            content: Blob::Memory(vec![1, 2, 3].into()),
            is_inline: false,
            content_id: None,
            last_modified: now_string(),
        });
        let blobs = Blobs::new(super::super::blobs::BodiesMode::Memory).unwrap();
        let out = generate(&blobs, &m).unwrap();
        let (p2, atts2) = parse(&out, ImportMimeReceived::DateHeader).unwrap();
        assert_eq!(p2["subject"], "café");
        assert_eq!(p2["internetMessageId"], "<x1@example.org>");
        assert_eq!(p2["sentDateTime"], "2018-12-31T08:00:00Z");
        assert_eq!(atts2.len(), 1);
        assert_eq!(atts2[0].content, Blob::Memory(vec![1, 2, 3].into()));
    }
}
