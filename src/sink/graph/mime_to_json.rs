//! The JSON route's message: rebuilt from the raw MIME with mail-parser (docs/graph-facts.md, section 3, route B).
//!
//! Everything goes into the create request: subject, body (HTML when the message has an HTML
//! part, else its text parts), addresses, Message-ID, importance, flags, categories, a few `x-`
//! headers (Graph accepts only those), PR_MESSAGE_FLAGS without the unsent bit unless the source
//! is a draft, delivery time = INTERNALDATE, submit time = the Date header, and the identity
//! stamp. Attachments (non-body parts, inline ones keeping their content-id) are returned for
//! [`super::upload`] to add after creation.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

use super::flags::{
    DELIVERY_TIME, INCOMPLETE_PROPERTY, MESSAGE_FLAGS, STAMP_PROPERTY, SUBMIT_TIME, categories,
    flag_value, verb_properties,
};
use super::skeleton::LargePart;
use crate::engine::ports::OutgoingMessage;

/// Graph refuses longer subjects.
const MAX_SUBJECT_CHARS: usize = 255;
/// `x-` headers carried over: a few, short, ASCII (Graph caps the header block of a create).
const MAX_X_HEADERS: usize = 5;
const MAX_X_HEADER_VALUE: usize = 512;
/// PR_MESSAGE_FLAGS bits.
const MSGFLAG_READ: u32 = 0x01;
const MSGFLAG_UNSENT: u32 = 0x08;

/// One attachment to add after the create.
pub(crate) struct Attachment<'a> {
    pub name: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub inline: bool,
    pub data: AttachmentData<'a>,
}

/// An attachment's bytes: decoded by mail-parser, or a large part still encoded in the message.
pub(crate) enum AttachmentData<'a> {
    Memory(Cow<'a, [u8]>),
    Part(LargePart),
}

/// The create body and the attachments to add.
pub(crate) struct Rebuilt<'a> {
    pub message: Value,
    pub attachments: Vec<Attachment<'a>>,
}

/// Parses raw MIME. `None` for input mail-parser cannot read at all, and for input it panics on
/// (mail-parser 0.11.9 panics with "Invalid part ID, could not find multipart" on some malformed
/// multipart nesting, found by the reliability suite): one bad message must not take down the
/// write task and with it the whole mailbox.
pub(crate) fn parse(raw: &[u8]) -> Option<Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
}

/// UTC with a `Z`, whole seconds: the form Graph documents for SystemTime properties.
pub(crate) fn utc_z<T: TimeZone>(t: &DateTime<T>) -> String {
    t.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn addresses(a: Option<&Address<'_>>) -> Vec<Value> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim();
            if address.is_empty() || !address.contains('@') {
                return None;
            }
            let mut e = json!({"address": address});
            if let Some(n) = addr.name().map(str::trim).filter(|n| !n.is_empty()) {
                e["name"] = json!(n);
            }
            Some(json!({"emailAddress": e}))
        })
        .collect()
}

fn importance(m: &Message<'_>) -> Option<&'static str> {
    let imp = m
        .header_raw("Importance")
        .map(|v| v.trim().to_ascii_lowercase());
    match imp.as_deref() {
        Some("high") => return Some("high"),
        Some("low") => return Some("low"),
        Some("normal") => return Some("normal"),
        _ => {}
    }
    let p = m.header_raw("X-Priority")?.trim().chars().next()?;
    match p {
        '1' | '2' => Some("high"),
        '4' | '5' => Some("low"),
        '3' => Some("normal"),
        _ => None,
    }
}

fn x_headers(m: &Message<'_>) -> Vec<Value> {
    m.headers_raw()
        .filter(|(name, _)| name.len() > 2 && name.as_bytes()[..2].eq_ignore_ascii_case(b"x-"))
        .filter_map(|(name, value)| {
            let v: String = value.split_whitespace().collect::<Vec<_>>().join(" ");
            (v.is_ascii() && !v.is_empty() && v.len() <= MAX_X_HEADER_VALUE && name.is_ascii())
                .then(|| json!({"name": name, "value": v}))
        })
        .take(MAX_X_HEADERS)
        .collect()
}

fn body(m: &Message<'_>) -> Value {
    let html = m.html_bodies().find_map(|p| match &p.body {
        PartType::Html(h) => Some(h.to_string()),
        _ => None,
    });
    match html {
        Some(h) => json!({"contentType": "html", "content": h}),
        None => {
            let texts: Vec<String> = m
                .text_bodies()
                .filter_map(|p| match &p.body {
                    PartType::Text(t) => Some(t.to_string()),
                    _ => None,
                })
                .collect();
            json!({"contentType": "text", "content": texts.join("\n")})
        }
    }
}

fn extension_for(ctype: &str, subtype: &str) -> &'static str {
    match (ctype, subtype) {
        ("message", "rfc822") => ".eml",
        ("text", "plain") => ".txt",
        ("text", "html") => ".html",
        ("image", "png") => ".png",
        ("image", "jpeg") => ".jpg",
        ("image", "gif") => ".gif",
        ("application", "pdf") => ".pdf",
        _ => ".bin",
    }
}

fn attachments<'a>(m: &'a Message<'a>) -> Vec<Attachment<'a>> {
    let mut out = Vec::new();
    for (n, part) in m.attachments().enumerate() {
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let (ctype, subtype) = part
            .content_type()
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("octet-stream").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("application".into(), "octet-stream".into()));
        let nested_subject = part
            .message()
            .and_then(|msg| msg.subject())
            .map(str::to_owned);
        let name = part
            .attachment_name()
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                nested_subject.map(|s| format!("{}.eml", s.chars().take(100).collect::<String>()))
            })
            .unwrap_or_else(|| format!("attachment-{}{}", n + 1, extension_for(&ctype, &subtype)));
        let content_id = part.content_id().map(|c| {
            c.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        });
        let inline =
            part.content_disposition().is_some_and(|d| d.is_inline()) && content_id.is_some();
        out.push(Attachment {
            name,
            content_type: format!("{ctype}/{subtype}"),
            content_id,
            inline,
            data: AttachmentData::Memory(Cow::Borrowed(part.contents())),
        });
    }
    out
}

/// Builds the create body for `msg`. `stamp` goes in; `incomplete` is set when attachments
/// follow (see [`super::flags::INCOMPLETE_PROPERTY`]).
pub(crate) fn rebuild<'a>(
    m: &'a Message<'a>,
    msg: &OutgoingMessage<'_>,
    stamp: &str,
) -> Rebuilt<'a> {
    let mut j = json!({
        "subject": m.subject().map(|s| s.chars().take(MAX_SUBJECT_CHARS).collect::<String>()).unwrap_or_default(),
        "body": body(m),
        "isRead": msg.flags.seen,
        "flag": flag_value(msg.flags),
        "categories": categories(msg.flags),
    });
    if let Some(from) = addresses(m.from()).into_iter().next() {
        j["from"] = from;
    }
    if let Some(sender) = addresses(m.sender()).into_iter().next() {
        j["sender"] = sender;
    }
    for (key, list) in [
        ("toRecipients", addresses(m.to())),
        ("ccRecipients", addresses(m.cc())),
        ("bccRecipients", addresses(m.bcc())),
        ("replyTo", addresses(m.reply_to())),
    ] {
        if !list.is_empty() {
            j[key] = Value::Array(list);
        }
    }
    let mid = msg
        .message_id
        .map(str::to_owned)
        .or_else(|| m.message_id().map(|id| format!("<{id}>")));
    if let Some(mid) = mid
        .filter(|id| id.starts_with('<') && id.ends_with('>') && id.contains('@') && id.is_ascii())
    {
        j["internetMessageId"] = json!(mid);
    }
    if let Some(i) = importance(m) {
        j["importance"] = json!(i);
    }
    let xh = x_headers(m);
    if !xh.is_empty() {
        j["internetMessageHeaders"] = Value::Array(xh);
    }
    let atts = attachments(m);
    let mut pr_flags = 0;
    if msg.flags.seen {
        pr_flags |= MSGFLAG_READ;
    }
    if msg.flags.draft {
        pr_flags |= MSGFLAG_UNSENT;
    }
    let submit = m
        .date()
        .filter(|d| d.is_valid())
        .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single())
        .map(|d| utc_z(&d))
        .unwrap_or_else(|| utc_z(&msg.internal_date));
    let mut props = vec![
        json!({"id": MESSAGE_FLAGS, "value": pr_flags.to_string()}),
        json!({"id": DELIVERY_TIME, "value": utc_z(&msg.internal_date)}),
        json!({"id": SUBMIT_TIME, "value": submit}),
        json!({"id": STAMP_PROPERTY, "value": stamp}),
    ];
    props.extend(verb_properties(msg.flags));
    if !atts.is_empty() {
        props.push(json!({"id": INCOMPLETE_PROPERTY, "value": "1"}));
    }
    j["singleValueExtendedProperties"] = Value::Array(props);
    Rebuilt {
        message: j,
        attachments: atts,
    }
}

/// Swaps the placeholders of a skeleton's large parts (see [`super::skeleton`]) for those parts.
/// A placeholder inside the body means a body too large for the create request.
pub(crate) fn adopt_parts(rebuilt: &mut Rebuilt<'_>, parts: &[LargePart]) -> Result<(), String> {
    if parts.is_empty() {
        return Ok(());
    }
    let body = rebuilt.message["body"]["content"].as_str().unwrap_or("");
    if let Some(p) = parts.iter().find(|p| body.contains(&p.token)) {
        return Err(format!(
            "its text body ({} bytes) is too large for the JSON route",
            p.end - p.start
        ));
    }
    for a in &mut rebuilt.attachments {
        let AttachmentData::Memory(data) = &a.data else {
            continue;
        };
        let data = data.trim_ascii_end();
        if let Some(p) = parts.iter().find(|p| data.ends_with(p.token.as_bytes())) {
            a.data = AttachmentData::Part(p.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;
    use crate::model::{ContentHash, Flags, SourceIdentity, Uid, UidValidity};

    fn out<'a>(body: &'a Body, flags: &'a Flags, id: &'a SourceIdentity) -> OutgoingMessage<'a> {
        OutgoingMessage {
            body,
            flags,
            internal_date: DateTime::parse_from_rfc3339("2020-02-03T04:05:06+02:00").unwrap(),
            identity: id,
            message_id: None,
        }
    }

    fn ident(raw: &[u8]) -> SourceIdentity {
        SourceIdentity {
            mailbox: "a@b".into(),
            folder: "INBOX".into(),
            uid_validity: UidValidity::new(1).unwrap(),
            uid: Uid::new(1).unwrap(),
            sha256: ContentHash::of(raw),
        }
    }

    const MSG: &[u8] = b"From: \"Ann Example\" <ann@example.org>\r\nTo: bob@example.net, Group: c@example.net, d@example.net;\r\n\
Cc: e@example.com\r\nReply-To: r@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Tue, 1 Oct 2019 10:00:00 -0400\r\n\
Message-ID: <m1@example.org>\r\nX-Priority: 1\r\nX-Mailer: Test 1.0\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b2\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--b2--\r\n\
--b1\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\nContent-ID: <img1@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgo=\r\n--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\r\n%PDF-1\r\n--b1--\r\n";

    #[test]
    fn rebuilds_headers_bodies_dates_and_stamp() {
        let flags = Flags::from_atoms(["\\Seen", "\\Answered", "Work"]);
        let id = ident(MSG);
        let m = parse(MSG).unwrap();
        let r = rebuild(&m, &out(&Body::Memory(MSG.to_vec()), &flags, &id), "STAMP");
        let j = &r.message;
        assert_eq!(j["subject"], "café");
        assert_eq!(j["body"]["contentType"], "html");
        assert!(
            j["body"]["content"]
                .as_str()
                .unwrap()
                .contains("<p>hello</p>")
        );
        assert_eq!(
            j["from"]["emailAddress"],
            json!({"address": "ann@example.org", "name": "Ann Example"})
        );
        let to: Vec<&str> = j["toRecipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["emailAddress"]["address"].as_str().unwrap())
            .collect();
        assert_eq!(to, ["bob@example.net", "c@example.net", "d@example.net"]);
        assert_eq!(
            j["ccRecipients"][0]["emailAddress"]["address"],
            "e@example.com"
        );
        assert_eq!(j["replyTo"][0]["emailAddress"]["address"], "r@example.org");
        assert_eq!(j["internetMessageId"], "<m1@example.org>");
        assert_eq!(j["importance"], "high");
        assert_eq!(j["isRead"], true);
        assert_eq!(j["categories"], json!(["Work"]));
        assert_eq!(
            j["internetMessageHeaders"],
            json!([{"name": "X-Priority", "value": "1"}, {"name": "X-Mailer", "value": "Test 1.0"}])
        );
        let props = j["singleValueExtendedProperties"].as_array().unwrap();
        let get = |id: &str| {
            props
                .iter()
                .find(|p| p["id"] == id)
                .map(|p| p["value"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            get(MESSAGE_FLAGS).as_deref(),
            Some("1"),
            "read, not a draft"
        );
        assert_eq!(get(DELIVERY_TIME).as_deref(), Some("2020-02-03T02:05:06Z"));
        assert_eq!(get(SUBMIT_TIME).as_deref(), Some("2019-10-01T14:00:00Z"));
        assert_eq!(get(STAMP_PROPERTY).as_deref(), Some("STAMP"));
        assert_eq!(get(INCOMPLETE_PROPERTY).as_deref(), Some("1"));
        assert_eq!(get("Integer 0x1081").as_deref(), Some("102"));
        assert_eq!(r.attachments.len(), 2);
        let img = &r.attachments[0];
        assert!(img.inline);
        assert_eq!(img.content_id.as_deref(), Some("img1@x"));
        assert_eq!(img.content_type, "image/png");
        let AttachmentData::Memory(data) = &img.data else {
            panic!("a small attachment is decoded in memory")
        };
        assert_eq!(&data[..4], b"\x89PNG");
        assert_eq!(r.attachments[1].name, "r.pdf");
        assert!(!r.attachments[1].inline);
    }

    #[test]
    fn draft_bit_only_for_drafts_and_plain_text_bodies() {
        let raw = b"Subject: x\r\n\r\nbody only\r\n";
        let id = ident(raw);
        let m = parse(raw).unwrap();
        let plain = Flags::default();
        let r = rebuild(&m, &out(&Body::Memory(raw.to_vec()), &plain, &id), "S");
        let props = r.message["singleValueExtendedProperties"]
            .as_array()
            .unwrap()
            .clone();
        assert!(props.contains(&json!({"id": MESSAGE_FLAGS, "value": "0"})));
        assert!(!props.iter().any(|p| p["id"] == INCOMPLETE_PROPERTY));
        // no Date header: submit time falls back to INTERNALDATE
        assert!(props.contains(&json!({"id": SUBMIT_TIME, "value": "2020-02-03T02:05:06Z"})));
        assert_eq!(
            r.message["body"],
            json!({"contentType": "text", "content": "body only\r\n"})
        );
        assert!(r.message.get("internetMessageId").is_none());
        let draft = Flags::from_atoms(["\\Draft"]);
        let r = rebuild(&m, &out(&Body::Memory(raw.to_vec()), &draft, &id), "S");
        assert!(
            r.message["singleValueExtendedProperties"]
                .as_array()
                .unwrap()
                .contains(&json!({"id": MESSAGE_FLAGS, "value": "8"}))
        );
    }
}
