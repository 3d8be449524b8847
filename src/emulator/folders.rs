//! Folder endpoints: list (top level = children of msgfolderroot, or childFolders), paging with
//! `$top`/`@odata.nextLink` (default page 10), `includeHiddenFolders`, `$filter` on the folder's
//! JSON (`displayName eq '...'`), create (only `displayName` and `isHidden` writable; a sibling of
//! the same name, ignoring case, is `ErrorFolderExists` with the configured status), rename,
//! and DELETE (not for well-known folders).

use serde_json::{Value, json};

use super::dispatch::{Call, Reply};
use super::errors::ApiError;
use super::routes::Ctx;
use super::store::{Folder, Mailbox, new_id};
use super::{lock, views};

/// The id of the last folder of a chain, checking each link is a child of the previous one.
pub(crate) fn resolve_chain(mb: &Mailbox, chain: &[String]) -> Result<String, ApiError> {
    let mut parent: Option<String> = None;
    for name in chain {
        let f = mb.folder(name)?;
        if let Some(p) = &parent
            && f.parent_id.as_ref() != Some(p)
        {
            return Err(ApiError::not_found(&format!("folder {name} under {p}")));
        }
        parent = Some(f.id.clone());
    }
    parent.ok_or_else(|| ApiError::not_found("folder"))
}

fn folder_json(mb: &Mailbox, f: &Folder) -> Value {
    let (total, unread) = mb.folder_counts(&f.id);
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": mb.children(&f.id).count(),
        "unreadItemCount": unread,
        "totalItemCount": total,
        "isHidden": f.is_hidden,
    })
}

pub(crate) fn list(ctx: &Ctx<'_>, parent: Option<&[String]>) -> Result<Reply, ApiError> {
    let store = lock(&ctx.emu.store);
    let mb = store
        .mailboxes
        .get(&ctx.mailbox)
        .ok_or_else(|| ApiError::not_found("mailbox"))?;
    let (parent_id, context) = match parent {
        None => (
            mb.well_known_id("msgfolderroot"),
            ctx.context("mailFolders"),
        ),
        Some(chain) => {
            let id = resolve_chain(mb, chain)?;
            let c = ctx.context(&format!("mailFolders('{id}')/childFolders"));
            (id, c)
        }
    };
    let q = &ctx.query;
    let top = q.page_size(ctx.emu.config.page_size, 1000)?;
    let mut kids: Vec<&Folder> = mb
        .children(&parent_id)
        .filter(|f| q.include_hidden || !f.is_hidden)
        .collect();
    kids.sort_by_key(|f| f.display_name.to_lowercase());
    let mut all: Vec<Value> = kids.iter().map(|f| folder_json(mb, f)).collect();
    if let Some(filter) = &q.filter {
        all.retain(|v| filter.matches(v));
    }
    Ok(Reply::json(200, views::page(ctx, context, all, top)))
}

pub(crate) fn get(ctx: &Ctx<'_>, chain: &[String]) -> Result<Reply, ApiError> {
    let store = lock(&ctx.emu.store);
    let mb = store
        .mailboxes
        .get(&ctx.mailbox)
        .ok_or_else(|| ApiError::not_found("mailbox"))?;
    let id = resolve_chain(mb, chain)?;
    let f = mb.folder(&id)?;
    let mut v = folder_json(mb, f);
    if let Value::Object(o) = &mut v {
        ctx.query.apply_select(o);
        o.insert(
            "@odata.context".into(),
            Value::String(ctx.context("mailFolders/$entity")),
        );
    }
    Ok(Reply::json(200, v))
}

fn name_taken(mb: &Mailbox, parent: &str, name: &str, except: Option<&str>) -> bool {
    mb.children(parent).any(|f| {
        Some(f.id.as_str()) != except && f.display_name.to_lowercase() == name.to_lowercase()
    })
}

fn exists_error(ctx: &Ctx<'_>, name: &str) -> ApiError {
    ApiError::new(
        ctx.emu.config.folder_exists_status,
        "ErrorFolderExists",
        format!(
            "A folder with the specified name already exists., Could not create folder '{name}'."
        ),
    )
}

pub(crate) fn create(
    ctx: &Ctx<'_>,
    parent: Option<&[String]>,
    call: &Call,
) -> Result<Reply, ApiError> {
    let body = call.json_object()?;
    for k in body.keys() {
        if !matches!(k.as_str(), "displayName" | "isHidden" | "@odata.type") {
            return Err(ApiError::new(
                400,
                "RequestBodyRead",
                format!(
                    "The property '{k}' does not exist on type 'microsoft.graph.mailFolder' or is not writable."
                ),
            ));
        }
    }
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("The displayName of a folder is required."))?
        .to_owned();
    let is_hidden = match body.get("isHidden") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::unreadable_body("isHidden must be a boolean.")),
    };
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let parent_id = match parent {
        None => mb.well_known_id("msgfolderroot"),
        Some(chain) => resolve_chain(mb, chain)?,
    };
    if name_taken(mb, &parent_id, &name, None) {
        return Err(exists_error(ctx, &name));
    }
    let id = new_id("AAMkAD");
    let f = Folder {
        id: id.clone(),
        display_name: name,
        parent_id: Some(parent_id.clone()),
        is_hidden,
        well_known: None,
    };
    mb.folders.insert(id.clone(), f);
    let f = mb.folder(&id)?;
    let mut v = folder_json(mb, f);
    let tail = match parent {
        None => "mailFolders/$entity".to_owned(),
        Some(_) => format!("mailFolders('{parent_id}')/childFolders/$entity"),
    };
    v["@odata.context"] = Value::String(ctx.context(&tail));
    Ok(Reply::json(201, v))
}

pub(crate) fn update(ctx: &Ctx<'_>, chain: &[String], call: &Call) -> Result<Reply, ApiError> {
    let body = call.json_object()?;
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let id = resolve_chain(mb, chain)?;
    for (k, v) in &body {
        match k.as_str() {
            "displayName" => {
                let name = v
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request("displayName must be a non-empty string.")
                    })?;
                let f = mb.folder(&id)?;
                if f.well_known.is_some() {
                    return Err(ApiError::new(
                        400,
                        "ErrorInvalidRequest",
                        "A distinguished folder cannot be renamed.",
                    ));
                }
                let parent = f.parent_id.clone().unwrap_or_default();
                if name_taken(mb, &parent, name, Some(&id)) {
                    return Err(exists_error(ctx, name));
                }
                if let Some(f) = mb.folders.get_mut(&id) {
                    f.display_name = name.to_owned();
                }
            }
            "@odata.type" => {}
            other => {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidPropertyRequest",
                    format!("The property '{other}' of a mail folder cannot be updated."),
                ));
            }
        }
    }
    let f = mb.folder(&id)?;
    let mut v = folder_json(mb, f);
    v["@odata.context"] = Value::String(ctx.context("mailFolders/$entity"));
    Ok(Reply::json(200, v))
}

pub(crate) fn delete(ctx: &Ctx<'_>, chain: &[String]) -> Result<Reply, ApiError> {
    let mut store = lock(&ctx.emu.store);
    let mb = store.mailbox_mut(&ctx.mailbox)?;
    let id = resolve_chain(mb, chain)?;
    if mb.folder(&id)?.well_known.is_some() {
        return Err(ApiError::new(
            400,
            "ErrorDeleteDistinguishedFolder",
            "Distinguished folders cannot be deleted.",
        ));
    }
    let doomed = mb.subtree(&id);
    for f in &doomed {
        mb.folders.remove(f);
    }
    mb.remove_items_in(&doomed);
    Ok(Reply::no_content())
}
