//! Reading messages: the JSON form of an item (with `$select`, `$expand` of extended properties
//! and attachments), message lists with `$filter`, `$top` 1..=1000 and `@odata.nextLink`, and
//! `$value` (the stored bytes of importMime items, generated MIME for the rest).
//!
//! PR_MESSAGE_FLAGS (0x0E07), the delivery time (0x0E06) and the submit time (0x0039) are
//! computed from the item's state, as Exchange's are, so a client reads back what it set.

use serde_json::{Map, Value, json};

use super::blobs::{Blobs, HEAVY};
use super::dispatch::{Body, Reply};
use super::errors::ApiError;
use super::folders::resolve_chain;
use super::index::IndexKey;
use super::routes::Ctx;
use super::store::{Attachment, Mailbox, Message, ext_id_eq};
use super::{lock, mime};

pub(crate) const FLAGS: &str = "Integer 0x0E07";
pub(crate) const DELIVERY_TIME: &str = "SystemTime 0x0E06";
pub(crate) const SUBMIT_TIME: &str = "SystemTime 0x0039";

/// One page of `all`, with `@odata.context` and, when more remain, `@odata.nextLink`.
pub(crate) fn page(ctx: &Ctx<'_>, context: String, all: Vec<Value>, top: usize) -> Value {
    let skip = ctx.query.skip;
    let more = all.len() > skip + top;
    let value: Vec<Value> = all.into_iter().skip(skip).take(top).collect();
    let mut out = json!({"@odata.context": context, "value": value});
    if more {
        out["@odata.nextLink"] = Value::String(ctx.query.next_link(&ctx.url(), top));
    }
    out
}

/// The item's extended properties as Exchange reports them.
pub(crate) fn ext_view(m: &Message) -> Vec<Value> {
    let mut flags = 0u32;
    if m.is_read() {
        flags |= 0x01;
    }
    if m.is_draft() {
        flags |= 0x08;
    }
    if !m.attachments.is_empty() {
        flags |= 0x10;
    }
    let mut out = vec![json!({"id": FLAGS, "value": flags.to_string()})];
    if let Some(t) = m.str_prop("receivedDateTime") {
        out.push(json!({"id": DELIVERY_TIME, "value": t}));
    }
    if let Some(t) = m.str_prop("sentDateTime") {
        out.push(json!({"id": SUBMIT_TIME, "value": t}));
    }
    for e in &m.ext {
        if ![FLAGS, DELIVERY_TIME, SUBMIT_TIME]
            .iter()
            .any(|c| ext_id_eq(c, &e.id))
        {
            out.push(json!({"id": e.id, "value": e.value}));
        }
    }
    out
}

pub(crate) fn attachment_json(
    blobs: &Blobs,
    a: &Attachment,
    with_content: bool,
) -> Result<Value, ApiError> {
    use base64::Engine as _;
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": a.id,
        "lastModifiedDateTime": a.last_modified,
        "name": a.name,
        "contentType": a.content_type,
        "size": a.content.len(),
        "isInline": a.is_inline,
        "contentId": a.content_id,
        "contentLocation": null,
    });
    if with_content {
        let bytes = blobs.read(&a.content)?;
        v["contentBytes"] = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(v)
}

/// The full JSON form used by filters (every property and every extended property).
fn filter_view(m: &Message) -> Value {
    let mut o = m.props.clone();
    o.insert("id".into(), Value::String(m.id.clone()));
    o.insert("parentFolderId".into(), Value::String(m.folder_id.clone()));
    o.insert(
        "singleValueExtendedProperties".into(),
        Value::Array(ext_view(m)),
    );
    Value::Object(o)
}

/// The JSON form a client sees, after `$select` and `$expand`.
pub(crate) fn message_json(ctx: &Ctx<'_>, m: &Message) -> Result<Map<String, Value>, ApiError> {
    let q = &ctx.query;
    let mut o = Map::new();
    o.insert(
        "@odata.etag".into(),
        Value::String(format!("W/\"CQAAABYAAAD{:08}\"", m.change)),
    );
    o.insert("id".into(), Value::String(m.id.clone()));
    for (k, v) in &m.props {
        o.insert(k.clone(), v.clone());
    }
    // Spilled bodies are read back only when the answer shows them.
    let wants_heavy = q.select.as_ref().is_none_or(|s| {
        s.iter()
            .any(|x| HEAVY.iter().any(|h| h.eq_ignore_ascii_case(x)))
    });
    if m.heavy.is_some() && wants_heavy {
        o.extend(ctx.emu.blobs.heavy_props(m)?);
    }
    o.insert(
        "changeKey".into(),
        Value::String(format!("CQAAABYAAAD{:08}", m.change)),
    );
    o.insert("parentFolderId".into(), Value::String(m.folder_id.clone()));
    o.insert(
        "hasAttachments".into(),
        Value::Bool(m.attachments.iter().any(|a| !a.is_inline)),
    );
    let headers_selected = q.select.as_ref().is_some_and(|s| {
        s.iter()
            .any(|x| x.eq_ignore_ascii_case("internetMessageHeaders"))
    });
    if !headers_selected {
        o.remove("internetMessageHeaders");
    }
    q.apply_select(&mut o);
    if let Some(filter) = &q.expand_ext {
        let props: Vec<Value> = ext_view(m)
            .into_iter()
            .filter(|e| filter.as_ref().is_none_or(|f| f.matches(e)))
            .collect();
        o.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    if q.expand_attachments {
        let atts = m
            .attachments
            .iter()
            .map(|a| attachment_json(&ctx.emu.blobs, a, true))
            .collect::<Result<Vec<_>, _>>()?;
        o.insert("attachments".into(), Value::Array(atts));
    }
    Ok(o)
}

/// `@odata.context` tail for messages, with the `$select` list when present.
fn messages_context(ctx: &Ctx<'_>, entity: bool) -> String {
    let sel = ctx
        .query
        .select
        .as_ref()
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    ctx.context(&format!(
        "messages{sel}{}",
        if entity { "/$entity" } else { "" }
    ))
}

/// Finds a message (a copy), checking it lies in the folder the URL names (when it names one).
pub(crate) fn find(mb: &Mailbox, folder: Option<&[String]>, id: &str) -> Result<Message, ApiError> {
    let m = mb
        .get(id)
        .ok_or_else(|| ApiError::not_found(&format!("message {id}")))?;
    if let Some(chain) = folder
        && resolve_chain(mb, chain)? != m.folder_id
    {
        return Err(ApiError::not_found(&format!("message {id} in this folder")));
    }
    Ok(m)
}

pub(crate) fn list_messages(ctx: &Ctx<'_>, folder: Option<&[String]>) -> Result<Reply, ApiError> {
    let store = lock(&ctx.emu.store);
    let mb = store
        .mailboxes
        .get(&ctx.mailbox)
        .ok_or_else(|| ApiError::not_found("mailbox"))?;
    let folder_id = folder.map(|c| resolve_chain(mb, c)).transpose()?;
    let top = ctx.query.page_size(ctx.emu.config.page_size, 1000)?;
    let skip = ctx.query.skip;
    let in_folder = |m: &Message| folder_id.as_ref().is_none_or(|f| &m.folder_id == f);
    // Computed properties are not in the index (they are derived when read).
    let key = ctx
        .query
        .filter
        .as_ref()
        .and_then(|f| f.index_key())
        .filter(|k| match k {
            IndexKey::Ext { id, .. } => ![FLAGS, DELIVERY_TIME, SUBMIT_TIME]
                .iter()
                .any(|c| ext_id_eq(c, id)),
            IndexKey::MessageId(_) => true,
        });
    // Newest first, as Graph lists messages by default; one item past the page tells whether
    // another page follows.
    let items: Vec<Message> = match (&ctx.query.filter, key) {
        (Some(f), Some(k)) => mb
            .by_index(&k)
            .into_iter()
            .filter(|m| in_folder(m) && f.matches(&filter_view(m)))
            .skip(skip)
            .take(top + 1)
            .collect(),
        (Some(f), None) => mb
            .newest_first(folder_id.as_deref(), 0)
            .filter(|m| f.matches(&filter_view(m)))
            .skip(skip)
            .take(top + 1)
            .collect(),
        (None, _) => mb
            .newest_first(folder_id.as_deref(), skip)
            .take(top + 1)
            .collect(),
    };
    let more = items.len() > top;
    let values = items
        .iter()
        .take(top)
        .map(|m| message_json(ctx, m).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = json!({"@odata.context": messages_context(ctx, false), "value": values});
    if more {
        out["@odata.nextLink"] = Value::String(ctx.query.next_link(&ctx.url(), top));
    }
    Ok(Reply::json(200, out))
}

pub(crate) fn get_message(
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
    let mut o = message_json(ctx, &m)?;
    o.insert(
        "@odata.context".into(),
        Value::String(messages_context(ctx, true)),
    );
    Ok(Reply::json(200, Value::Object(o)))
}

pub(crate) fn message_value(
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
    let data = match &m.raw_mime {
        Some(raw) => ctx.emu.blobs.read(raw)?.into_owned(),
        None => mime::generate(&ctx.emu.blobs, &m)?,
    };
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: Body::Raw {
            content_type: "text/plain".into(),
            data,
        },
    })
}
