//! Writing messages: JSON create in a folder (extended properties honoured at creation:
//! PR_MESSAGE_FLAGS' unsent bit decides `isDraft`, 0x0E06 and 0x0039 set the received and sent
//! times; named properties stored), beta importMime (non-draft, bytes kept exactly), MIME create
//! on `/users/{id}/messages` (always a draft in Drafts; MIME on a folder's `messages` is
//! `UnableToDeserializePostBody`), PATCH (draft-only properties refused on non-drafts, the unsent
//! bit can never change), and DELETE (the item moves to Recoverable Items with a new id).

use serde_json::{Value, json};

use super::blobs::Blob;
use super::dispatch::{Call, Reply};
use super::errors::ApiError;
use super::folders::resolve_chain;
use super::routes::Ctx;
use super::store::{
    Attachment, ExtProp, Mailbox, Message, ext_id_eq, format_time, new_id, now_string,
};
use super::views::{self, DELIVERY_TIME, FLAGS, SUBMIT_TIME};
use super::{lock, mime, upload};

/// Writable only while the item is a draft.
const DRAFT_ONLY: &[&str] = &[
    "subject",
    "body",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "internetMessageHeaders",
];
/// Writable on any item.
const ALWAYS: &[&str] = &[
    "isRead",
    "flag",
    "categories",
    "importance",
    "inferenceClassification",
];
/// Read-only properties a create body may carry; Exchange ignores them.
const IGNORED: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDraft",
    "webLink",
    "bodyPreview",
    "uniqueBody",
];

fn body_read(msg: String) -> ApiError {
    ApiError::new(400, "RequestBodyRead", msg)
}

fn recipient_ok(v: &Value) -> bool {
    v.get("emailAddress")
        .and_then(|e| e.get("address"))
        .is_some_and(Value::is_string)
}

/// Type-checks one writable property and returns the value to store.
fn check_prop(name: &str, v: &Value) -> Result<Value, ApiError> {
    let wrong = || {
        body_read(format!(
            "Cannot convert the value of property '{name}' to the expected type."
        ))
    };
    let one_of = |allowed: &[&str]| -> Result<Value, ApiError> {
        let s = v.as_str().ok_or_else(wrong)?;
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(s))
            .map(|a| json!(a))
            .ok_or_else(|| body_read(format!("'{s}' is not a valid value for '{name}'.")))
    };
    match name {
        "subject" | "internetMessageId" => match v {
            Value::String(_) | Value::Null => Ok(v.clone()),
            _ => Err(wrong()),
        },
        "isRead" | "isDeliveryReceiptRequested" | "isReadReceiptRequested" => {
            v.as_bool().map(Value::Bool).ok_or_else(wrong)
        }
        "importance" => one_of(&["low", "normal", "high"]),
        "inferenceClassification" => one_of(&["focused", "other"]),
        "body" => {
            let ct = v
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("text")
                .to_ascii_lowercase();
            if ct != "text" && ct != "html" {
                return Err(wrong());
            }
            let content = v.get("content").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"contentType": ct, "content": content}))
        }
        "from" | "sender" => recipient_ok(v).then(|| v.clone()).ok_or_else(wrong),
        "toRecipients" | "ccRecipients" | "bccRecipients" | "replyTo" => match v {
            Value::Array(a) if a.iter().all(recipient_ok) => Ok(v.clone()),
            _ => Err(wrong()),
        },
        "categories" => match v {
            Value::Array(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
            _ => Err(wrong()),
        },
        "flag" => {
            let status = v
                .get("flagStatus")
                .and_then(Value::as_str)
                .unwrap_or("notFlagged");
            if !["notFlagged", "flagged", "complete"].contains(&status) {
                return Err(wrong());
            }
            let mut f = v.as_object().cloned().ok_or_else(wrong)?;
            f.insert("flagStatus".into(), json!(status));
            Ok(Value::Object(f))
        }
        "internetMessageHeaders" => {
            let list = v.as_array().ok_or_else(wrong)?;
            for h in list {
                let n = h.get("name").and_then(Value::as_str).ok_or_else(wrong)?;
                h.get("value").and_then(Value::as_str).ok_or_else(wrong)?;
                if !n.to_ascii_lowercase().starts_with("x-") {
                    return Err(ApiError::new(
                        400,
                        "InvalidInternetMessageHeader",
                        format!(
                            "The internet message header name '{n}' should start with 'x-' or 'X-'."
                        ),
                    ));
                }
            }
            Ok(v.clone())
        }
        _ => Err(wrong()),
    }
}

/// `{Type} 0xNNNN`, `{Type} {GUID} Name X` or `{Type} {GUID} Id 0xNNNN`.
fn valid_ext_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split_whitespace().collect();
    let hex = |s: &str| {
        s.len() > 2 && s[..2].eq_ignore_ascii_case("0x") && u32::from_str_radix(&s[2..], 16).is_ok()
    };
    let guid = |s: &str| {
        s.starts_with('{') && s.ends_with('}') && uuid::Uuid::parse_str(&s[1..s.len() - 1]).is_ok()
    };
    match parts.as_slice() {
        [_, tag] => hex(tag),
        [_, g, kind, rest @ ..] if guid(g) && !rest.is_empty() => {
            kind.eq_ignore_ascii_case("Name")
                || (kind.eq_ignore_ascii_case("Id") && rest.len() == 1 && hex(rest[0]))
        }
        _ => false,
    }
}

fn parse_ext(v: &Value) -> Result<Vec<ExtProp>, ApiError> {
    let list = v
        .as_array()
        .ok_or_else(|| body_read("singleValueExtendedProperties must be an array.".into()))?;
    list.iter()
        .map(|e| {
            let id = e.get("id").and_then(Value::as_str).unwrap_or("");
            let value = e.get("value").and_then(Value::as_str).ok_or_else(|| {
                body_read(format!(
                    "The value of extended property '{id}' must be a string."
                ))
            })?;
            if !valid_ext_id(id) {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidExtendedPropertyValue",
                    format!("'{id}' is not a valid extended property id."),
                ));
            }
            Ok(ExtProp {
                id: id.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

fn bad_ext(id: &str, value: &str) -> ApiError {
    ApiError::new(
        400,
        "ErrorInvalidExtendedPropertyValue",
        format!("'{value}' is not a valid value for '{id}'."),
    )
}

fn ext_time(e: &ExtProp) -> Result<String, ApiError> {
    chrono::DateTime::parse_from_rfc3339(&e.value)
        .map(|t| format_time(t.with_timezone(&chrono::Utc)))
        .map_err(|_| bad_ext(&e.id, &e.value))
}

fn ext_flags(e: &ExtProp) -> Result<u32, ApiError> {
    e.value
        .trim()
        .parse::<u32>()
        .map_err(|_| bad_ext(&e.id, &e.value))
}

/// Applies extended properties; `creating` allows the unsent bit to be chosen.
fn apply_ext(m: &mut Message, ext: Vec<ExtProp>, creating: bool) -> Result<(), ApiError> {
    for e in ext {
        if ext_id_eq(&e.id, FLAGS) {
            let v = ext_flags(&e)?;
            let draft = v & 0x08 != 0;
            if !creating && draft != m.is_draft() {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidPropertyRequest",
                    "The unsent flag of PR_MESSAGE_FLAGS can only be set when the item is created.",
                ));
            }
            m.props.insert("isDraft".into(), json!(draft));
            m.props.insert("isRead".into(), json!(v & 0x01 != 0));
        } else if ext_id_eq(&e.id, DELIVERY_TIME) {
            m.props
                .insert("receivedDateTime".into(), json!(ext_time(&e)?));
        } else if ext_id_eq(&e.id, SUBMIT_TIME) {
            m.props.insert("sentDateTime".into(), json!(ext_time(&e)?));
        } else {
            m.ext_set(&e.id, &e.value);
        }
    }
    Ok(())
}

/// A new item with Exchange's defaults (a draft, read, created now).
pub(crate) fn new_message(mb: &mut Mailbox, folder_id: &str) -> Message {
    let id = new_id("AAMkAD");
    let now = now_string();
    let props = json!({
        "createdDateTime": now, "lastModifiedDateTime": now, "categories": [],
        "receivedDateTime": now, "sentDateTime": now, "subject": "", "bodyPreview": "",
        "importance": "normal", "conversationId": new_id("AAQkAD"),
        "isDeliveryReceiptRequested": false, "isReadReceiptRequested": false,
        "isRead": true, "isDraft": true,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}&exvsurl=1&viewmodel=ReadMessageItem"),
        "inferenceClassification": "focused", "body": {"contentType": "text", "content": ""},
        "toRecipients": [], "ccRecipients": [], "bccRecipients": [], "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
        "internetMessageId": format!("<{}@emulator.mailferry.invalid>", uuid::Uuid::new_v4().simple()),
    });
    Message {
        id,
        folder_id: folder_id.to_owned(),
        seq: mb.take_seq(),
        props: props.as_object().cloned().unwrap_or_default(),
        ext: Vec::new(),
        raw_mime: None,
        attachments: Vec::new(),
        heavy: None,
        size: 0,
        change: 1,
    }
}

/// Size and quota checks, then stores the item and answers 201 with it.
fn store_and_reply(ctx: &Ctx<'_>, mb: &mut Mailbox, mut m: Message) -> Result<Reply, ApiError> {
    let size = m.compute_size();
    let max = ctx.emu.config.limits.max_message_bytes;
    if size > max {
        return Err(ApiError::new(
            413,
            "ErrorMessageSizeExceeded",
            format!("The message is {size} bytes; the limit is {max}."),
        ));
    }
    mb.check_quota(size)?;
    let mut o = views::message_json(ctx, &m)?;
    o.insert(
        "@odata.context".into(),
        json!(ctx.context("messages/$entity")),
    );
    ctx.emu.blobs.settle(&mut m)?;
    mb.insert(m);
    Ok(Reply::json(201, Value::Object(o)))
}

fn set_preview(m: &mut Message) {
    let content = m
        .props
        .get("body")
        .and_then(|b| b["content"].as_str())
        .unwrap_or("")
        .to_owned();
    m.props
        .insert("bodyPreview".into(), json!(mime::preview(&content)));
}

pub(crate) fn create(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    call: &Call,
) -> Result<Reply, ApiError> {
    if call.is_text_plain() {
        if folder.is_some() {
            return Err(ApiError::unreadable_body(
                "Cannot read the request body: MIME content can only be posted to /users/{id}/messages.",
            ));
        }
        return mime_create(ctx, call);
    }
    let body = call.json_object()?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let folder_id = match folder {
        Some(c) => resolve_chain(mb, c)?,
        None => mb.well_known_id("drafts"),
    };
    let mut m = new_message(mb, &folder_id);
    let mut ext = Vec::new();
    for (k, v) in &body {
        if k.starts_with("@odata.") || IGNORED.contains(&k.as_str()) {
            continue;
        } else if k == "singleValueExtendedProperties" {
            ext = parse_ext(v)?;
        } else if k == "attachments" {
            let list = v
                .as_array()
                .ok_or_else(|| body_read("attachments must be an array.".into()))?;
            for a in list {
                let a = a
                    .as_object()
                    .ok_or_else(|| body_read("an attachment must be an object.".into()))?;
                m.attachments.push(upload::parse_file_attachment(a)?);
            }
        } else if DRAFT_ONLY.contains(&k.as_str()) || ALWAYS.contains(&k.as_str()) {
            m.props.insert(k.clone(), check_prop(k, v)?);
        } else {
            return Err(body_read(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type."
            )));
        }
    }
    let explicit_read = body.get("isRead").cloned();
    apply_ext(&mut m, ext, true)?;
    if let Some(r) = explicit_read {
        m.props.insert("isRead".into(), r);
    }
    set_preview(&mut m);
    store_and_reply(ctx, mb, m)
}

fn mime_create(ctx: &Ctx<'_>, call: &Call) -> Result<Reply, ApiError> {
    let raw = mime::decode_base64(&call.body)?;
    let (props, atts) = mime::parse(&raw, crate::emulator::ImportMimeReceived::ImportTime)?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let drafts = mb.well_known_id("drafts");
    let mut m = new_message(mb, &drafts);
    m.props.extend(props);
    m.props.insert("isDraft".into(), json!(true));
    m.attachments = atts;
    store_and_reply(ctx, mb, m)
}

pub(crate) fn import_mime(ctx: &Ctx<'_>, chain: &[String], call: &Call) -> Result<Reply, ApiError> {
    if !call.is_text_plain() {
        return Err(ApiError::unreadable_body(
            "importMime expects Content-Type: text/plain with base64 MIME.",
        ));
    }
    let raw = mime::decode_base64(&call.body)?;
    let (props, atts) = mime::parse(&raw, ctx.emu.config.import_mime_received)?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let folder_id = resolve_chain(mb, chain)?;
    let mut m = new_message(mb, &folder_id);
    m.props.extend(props);
    m.props.insert("isDraft".into(), json!(false));
    m.props.insert("isRead".into(), json!(false));
    m.raw_mime = Some(Blob::Memory(raw.into()));
    m.attachments = atts;
    store_and_reply(ctx, mb, m)
}

pub(crate) fn patch(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
    call: &Call,
) -> Result<Reply, ApiError> {
    let body = call.json_object()?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    // Work on a copy so a rejected property leaves the item untouched.
    let mut m: Message = views::find(mb, folder, id)?;
    let touches_heavy = body
        .keys()
        .any(|k| super::blobs::HEAVY.contains(&k.as_str()));
    if touches_heavy {
        // A draft's body or headers may change: bring them back so the whole item is rebuilt.
        ctx.emu.blobs.unsettle_heavy(&mut m)?;
    }
    for (k, v) in &body {
        let k = k.as_str();
        if k.starts_with("@odata.") {
            continue;
        } else if k == "singleValueExtendedProperties" {
            apply_ext(&mut m, parse_ext(v)?, false)?;
        } else if ALWAYS.contains(&k) {
            m.props.insert(k.to_owned(), check_prop(k, v)?);
        } else if DRAFT_ONLY.contains(&k) {
            if !m.is_draft() {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidPropertyUpdateSentMessage",
                    format!(
                        "Update operation failed: the property '{k}' cannot be updated on an item that is not a draft."
                    ),
                ));
            }
            m.props.insert(k.to_owned(), check_prop(k, v)?);
        } else if IGNORED.contains(&k) {
            return Err(ApiError::new(
                400,
                "ErrorInvalidPropertyRequest",
                format!("The property '{k}' is read-only."),
            ));
        } else {
            return Err(body_read(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.message'."
            )));
        }
    }
    if body.contains_key("body") {
        set_preview(&mut m);
    }
    m.touch();
    let mut o = views::message_json(ctx, &m)?;
    o.insert(
        "@odata.context".into(),
        json!(ctx.context("messages/$entity")),
    );
    ctx.emu.blobs.settle(&mut m)?;
    mb.insert(m);
    Ok(Reply::json(200, Value::Object(o)))
}

pub(crate) fn delete(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
) -> Result<Reply, ApiError> {
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    views::find(mb, folder, id)?;
    let recoverable = mb.well_known_id("recoverableitemsdeletions");
    if let Some(mut m) = mb.remove(id) {
        // Moving changes an item's id (no immutable ids here).
        m.id = new_id("AAMkAD");
        m.folder_id = recoverable;
        mb.insert(m);
    }
    Ok(Reply::no_content())
}

/// Adds a parsed attachment after the size and quota checks.
pub(crate) fn attach(
    ctx: &Ctx<'_>,
    mb: &mut Mailbox,
    msg_id: &str,
    a: Attachment,
) -> Result<(), ApiError> {
    let max = ctx.emu.config.limits.max_message_bytes;
    let extra = a.content.len();
    let m = mb
        .get(msg_id)
        .ok_or_else(|| ApiError::not_found(&format!("message {msg_id}")))?;
    if m.size + extra > max {
        return Err(ApiError::new(
            413,
            "ErrorMessageSizeExceeded",
            format!("The item would exceed the maximum size of {max} bytes."),
        ));
    }
    if m.attachments.len() >= 250 {
        return Err(ApiError::new(
            400,
            "ErrorAttachmentLimitExceeded",
            "An item can have at most 250 attachments.",
        ));
    }
    mb.check_quota(extra)?;
    let mut a = a;
    if let Blob::Memory(c) = &mut a.content {
        a.content = ctx.emu.blobs.put(super::blobs::take(c))?;
    }
    mb.update(msg_id, |m| {
        m.attachments.push(a);
        m.size += extra;
        m.touch();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_property_ids() {
        assert!(valid_ext_id("Integer 0x0E07"));
        assert!(valid_ext_id(
            "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name mailferry-identity"
        ));
        assert!(valid_ext_id(
            "Integer {66f5a359-4659-4830-9070-00047ec6ac6e} Id 0x8001"
        ));
        assert!(!valid_ext_id("Integer 0xZZ"));
        assert!(!valid_ext_id("String {nope} Name x"));
        assert!(!valid_ext_id("Foo"));
    }

    #[test]
    fn property_checks() {
        assert!(check_prop("importance", &json!("HIGH")).is_ok());
        assert!(check_prop("importance", &json!("urgent")).is_err());
        assert_eq!(
            check_prop(
                "internetMessageHeaders",
                &json!([{"name": "Subject", "value": "x"}])
            )
            .unwrap_err()
            .code,
            "InvalidInternetMessageHeader"
        );
        assert!(check_prop("flag", &json!({"flagStatus": "flagged"})).is_ok());
        assert!(check_prop("toRecipients", &json!([{"emailAddress": {"name": "x"}}])).is_err());
    }
}
