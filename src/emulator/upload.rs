//! Attachments: `POST .../attachments` (fileAttachment with base64 `contentBytes`, `isInline`,
//! `contentId`), list, get, delete; and large-attachment upload sessions:
//! `createUploadSession` returns a pre-authenticated `uploadUrl` (its token in the query; a PUT
//! that carries an Authorization header is refused), then `PUT` chunks in order with
//! `Content-Range`, answered with `nextExpectedRanges`, and 201 with `Location` at the end.
//! Upload PUTs are throttled and counted like any request of the session's app and mailbox.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::blobs::Blob;
use super::dispatch::{Call, Reply};
use super::errors::ApiError;
use super::messages::attach;
use super::routes::Ctx;
use super::store::{Attachment, UploadSession, new_id, now_string};
use super::throttle::Permit;
use super::views::{attachment_json, find};
use super::{Emu, lock};

/// A fileAttachment from its JSON form.
pub(crate) fn parse_file_attachment(a: &Map<String, Value>) -> Result<Attachment, ApiError> {
    let ty = a.get("@odata.type").and_then(Value::as_str).unwrap_or("");
    if !ty.eq_ignore_ascii_case("#microsoft.graph.fileAttachment") {
        return Err(ApiError::bad_request(format!(
            "Only #microsoft.graph.fileAttachment is emulated (got '{ty}'); @odata.type is required."
        )));
    }
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("An attachment needs a name."))?;
    let bytes = a
        .get("contentBytes")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("A fileAttachment needs contentBytes."))?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(bytes.trim())
        .map_err(|_| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "contentBytes is not valid base64.",
            )
        })?;
    Ok(Attachment {
        id: new_id("AAMkADAtt"),
        name: name.to_owned(),
        content_type: a
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned(),
        content: Blob::Memory(content.into()),
        is_inline: a.get("isInline").and_then(Value::as_bool).unwrap_or(false),
        content_id: a
            .get("contentId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        last_modified: now_string(),
    })
}

fn attachments_context(ctx: &Ctx<'_>, msg: &str, entity: bool) -> String {
    ctx.context(&format!(
        "messages('{msg}')/attachments{}",
        if entity { "/$entity" } else { "" }
    ))
}

pub(crate) fn list_attachments(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
) -> Result<Reply, ApiError> {
    let store = lock(&ctx.emu.store);
    let mb = store
        .mailboxes
        .get(&ctx.mailbox)
        .ok_or_else(|| ApiError::not_found("mailbox"))?;
    let m = find(mb, folder, id)?;
    let value: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| attachment_json(&ctx.emu.blobs, a, true))
        .collect::<Result<_, _>>()?;
    Ok(Reply::json(
        200,
        json!({"@odata.context": attachments_context(ctx, id, false), "value": value}),
    ))
}

pub(crate) fn add_attachment(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
    call: &Call,
) -> Result<Reply, ApiError> {
    let body = call.json_object()?;
    let a = parse_file_attachment(&body)?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    find(mb, folder, id)?;
    let mut v = attachment_json(&ctx.emu.blobs, &a, true)?;
    attach(ctx, mb, id, a)?;
    v["@odata.context"] = json!(attachments_context(ctx, id, true));
    Ok(Reply::json(201, v))
}

pub(crate) fn get_attachment(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
    aid: &str,
) -> Result<Reply, ApiError> {
    let store = lock(&ctx.emu.store);
    let mb = store
        .mailboxes
        .get(&ctx.mailbox)
        .ok_or_else(|| ApiError::not_found("mailbox"))?;
    let m = find(mb, folder, id)?;
    let a = m
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(|| ApiError::not_found(&format!("attachment {aid}")))?;
    let mut v = attachment_json(&ctx.emu.blobs, a, true)?;
    v["@odata.context"] = json!(attachments_context(ctx, id, true));
    Ok(Reply::json(200, v))
}

pub(crate) fn delete_attachment(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
    aid: &str,
) -> Result<Reply, ApiError> {
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let m = find(mb, folder, id)?;
    let Some(gone) = m
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .map(|a| a.content.len())
    else {
        return Err(ApiError::not_found(&format!("attachment {aid}")));
    };
    mb.update(id, |m| {
        m.attachments.retain(|a| a.id != aid);
        m.size = m.size.saturating_sub(gone);
        m.touch();
    });
    Ok(Reply::no_content())
}

pub(crate) fn create_session(
    ctx: &Ctx<'_>,
    folder: Option<&[String]>,
    id: &str,
    call: &Call,
) -> Result<Reply, ApiError> {
    let body = call.json_object()?;
    let item = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("AttachmentItem"))
        .and_then(|(_, v)| v.as_object())
        .ok_or_else(|| ApiError::bad_request("The request needs an AttachmentItem object."))?;
    if item
        .get("attachmentType")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.eq_ignore_ascii_case("file"))
    {
        return Err(ApiError::bad_request(
            "Only attachmentType 'file' is supported.",
        ));
    }
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("AttachmentItem needs a name."))?;
    let size = item
        .get("size")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or_else(|| ApiError::bad_request("AttachmentItem needs a positive size."))?;
    let cfg = &ctx.emu.config;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let m = find(mb, folder, id)?;
    if m.size + size > cfg.limits.max_message_bytes {
        return Err(ApiError::new(
            413,
            "ErrorMessageSizeExceeded",
            format!(
                "The item would exceed the maximum size of {} bytes.",
                cfg.limits.max_message_bytes
            ),
        ));
    }
    mb.check_quota(size)?;
    let sid = new_id("AAMkADSess");
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let life = cfg.limits.upload_session_secs / cfg.time_scale;
    let expires_text = (chrono::Utc::now()
        + chrono::Duration::milliseconds((life * 1000.0) as i64))
    .format("%Y-%m-%dT%H:%M:%S%.6f")
    .to_string()
        // Graph prints seven fractional digits; chrono stops at six.
        + "0Z";
    let session = UploadSession {
        mailbox: ctx.mailbox.clone(),
        client_id: ctx.client_id.clone(),
        message_id: id.to_owned(),
        token: token.clone(),
        name: name.to_owned(),
        content_type: item
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned(),
        is_inline: item
            .get("isInline")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content_id: item
            .get("contentId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        size,
        data: Vec::new(),
        expires: Instant::now() + cfg.scaled(cfg.limits.upload_session_secs),
        expires_text: expires_text.clone(),
    };
    store.uploads.insert(sid.clone(), session);
    Ok(Reply::json(
        201,
        json!({
            "@odata.context": format!("{}/{}/$metadata#microsoft.graph.uploadSession", ctx.base, ctx.version),
            "uploadUrl": format!("{}/upload/AttachmentSessions/{sid}?authtoken={token}", ctx.base),
            "expirationDateTime": expires_text,
            "nextExpectedRanges": ["0-"],
        }),
    ))
}

fn parse_range(h: &str) -> Option<(u64, u64, u64)> {
    let rest = h.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `PUT {base}/upload/AttachmentSessions/{id}?authtoken=...`.
pub(crate) async fn put_chunk(
    emu: &Arc<Emu>,
    base: &str,
    segs: &[String],
    call: &Call,
    mailbox: &mut Option<String>,
) -> Result<Reply, ApiError> {
    let sid = match segs {
        [_, s, id] if s.eq_ignore_ascii_case("AttachmentSessions") => id,
        _ => return Err(ApiError::not_found("upload session")),
    };
    if call.method != axum::http::Method::PUT {
        return Err(ApiError::new(
            405,
            "BadRequest",
            "Upload URLs accept PUT only.",
        ));
    }
    if call.authorization.is_some() {
        return Err(ApiError::new(
            401,
            "InvalidAuthenticationToken",
            "The upload URL is pre-authenticated: do not send an Authorization header.",
        ));
    }
    let token = url::form_urlencoded::parse(call.query.as_bytes())
        .find(|(k, _)| k == "authtoken")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (client_id, mb_key) = {
        let store = lock(&emu.store);
        let s = store
            .uploads
            .get(sid)
            .ok_or_else(|| ApiError::not_found("upload session"))?;
        if s.token != token {
            return Err(ApiError::new(
                401,
                "InvalidAuthenticationToken",
                "The upload URL's authtoken is not valid.",
            ));
        }
        (s.client_id.clone(), s.mailbox.clone())
    };
    *mailbox = Some(mb_key.clone());
    let _permit = Permit::acquire(emu, &client_id, &mb_key, call.body.len() as u64)?;
    let mut store = lock(&emu.store);
    let s = store
        .uploads
        .get_mut(sid)
        .ok_or_else(|| ApiError::not_found("upload session"))?;
    if Instant::now() >= s.expires {
        store.uploads.remove(sid);
        return Err(ApiError::not_found("upload session (expired)"));
    }
    let next = s.data.len() as u64;
    let range = call
        .content_range
        .as_deref()
        .and_then(parse_range)
        .ok_or_else(|| {
            ApiError::bad_request("A Content-Range header 'bytes START-END/TOTAL' is required.")
        })?;
    let (start, end, total) = range;
    if total != s.size {
        return Err(ApiError::bad_request(format!(
            "Content-Range total {total} differs from the session size {}.",
            s.size
        )));
    }
    if start != next || end < start || end >= total {
        return Err(ApiError::new(
            416,
            "ErrorInvalidRange",
            format!("The range {start}-{end} is not the next expected range {next}-."),
        ));
    }
    if end - start + 1 != call.body.len() as u64 {
        return Err(ApiError::bad_request(format!(
            "Content-Range covers {} bytes but the body has {}.",
            end - start + 1,
            call.body.len()
        )));
    }
    s.data.extend_from_slice(&call.body);
    if (s.data.len() as u64) < s.size {
        return Ok(Reply::json(
            200,
            json!({"expirationDateTime": s.expires_text, "nextExpectedRanges": [format!("{}-", s.data.len())]}),
        ));
    }
    let Some(s) = store.uploads.remove(sid) else {
        return Err(ApiError::not_found("upload session"));
    };
    let a = Attachment {
        id: new_id("AAMkADAtt"),
        name: s.name,
        content_type: s.content_type,
        content: Blob::Memory(s.data.into()),
        is_inline: s.is_inline,
        content_id: s.content_id,
        last_modified: now_string(),
    };
    let aid = a.id.clone();
    let mb = store.mailbox_mut(&s.mailbox)?;
    let mb_id = mb.id.clone();
    let ctx = super::routes::Ctx {
        emu,
        base,
        version: "v1.0",
        user: mb_id.clone(),
        mailbox: s.mailbox.clone(),
        client_id,
        query: Default::default(),
        path: String::new(),
    };
    attach(&ctx, mb, &s.message_id, a)?;
    Ok(Reply {
        status: 201,
        headers: Vec::new(),
        body: super::dispatch::Body::Empty,
    }
    .header(
        "Location",
        format!(
            "{base}/v1.0/users('{mb_id}')/messages('{}')/attachments('{aid}')",
            s.message_id
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_range("bytes 0-9/20"), Some((0, 9, 20)));
        assert_eq!(parse_range("bytes 10-19/20"), Some((10, 19, 20)));
        assert_eq!(parse_range("0-9/20"), None);
        assert_eq!(parse_range("bytes x-9/20"), None);
    }
}
