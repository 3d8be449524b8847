//! Queries for resume and verify: items by identity stamp, by `internetMessageId`, the whole
//! folder listing, counts, and flag updates.
//!
//! Listings ask for a small `$select` and expand only mailferry's own properties and the
//! answered/forwarded verb, so pages stay small (large pages can 504).

use chrono::{DateTime, FixedOffset};
use reqwest::Method;
use serde_json::Value;

use super::GraphMailbox;
use super::error::GraphError;
use super::flags::{
    INCOMPLETE_PROPERTY, LAST_VERB, STAMP_PROPERTY, extended, flags_from_item, update_body,
};
use super::http::Call;
use super::urls::{odata_str, query, seg};
use crate::engine::ports::DestItem;
use crate::model::{Flags, SourceIdentity};

const ITEM_SELECT: &str = "id,internetMessageId,isRead,isDraft,flag,categories,receivedDateTime";
const PAGE: &str = "200";

fn expand() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {} or id eq {} or id eq {})",
        odata_str(STAMP_PROPERTY),
        odata_str(INCOMPLETE_PROPERTY),
        odata_str(LAST_VERB)
    )
}

fn messages_url(mb: &GraphMailbox, folder_id: &str, filter: Option<&str>) -> String {
    let exp = expand();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(f) = filter {
        pairs.push(("$filter", f));
    }
    pairs.extend([
        ("$select", ITEM_SELECT),
        ("$expand", exp.as_str()),
        ("$top", PAGE),
    ]);
    mb.app.http().v1(&format!(
        "{}/mailFolders/{}/messages{}",
        mb.user_path(),
        seg(folder_id),
        query(&pairs)
    ))
}

/// An item as listed, with the stamp and completeness parsed.
pub(crate) struct Listed {
    pub raw: Value,
    pub stamp: Option<String>,
    pub incomplete: bool,
}

impl Listed {
    fn from(raw: Value) -> Listed {
        let stamp = extended(&raw, STAMP_PROPERTY);
        let incomplete = extended(&raw, INCOMPLETE_PROPERTY).as_deref() == Some("1");
        Listed {
            raw,
            stamp,
            incomplete,
        }
    }
    pub(crate) fn id(&self) -> Option<&str> {
        self.raw["id"].as_str()
    }
    fn to_dest(&self) -> Option<DestItem> {
        Some(DestItem {
            id: self.id()?.to_owned(),
            stamp: self.stamp.as_deref().and_then(SourceIdentity::from_stamp),
            message_id: self.raw["internetMessageId"].as_str().map(str::to_owned),
            size: None,
            flags: flags_from_item(&self.raw),
            received: self.raw["receivedDateTime"]
                .as_str()
                .and_then(|s| DateTime::<FixedOffset>::parse_from_rfc3339(s).ok()),
        })
    }
}

/// Items of `folder_id` whose stamp equals `stamp`, complete or not.
pub(crate) async fn by_stamp_raw(
    mb: &GraphMailbox,
    folder_id: &str,
    stamp: &str,
) -> Result<Vec<Listed>, GraphError> {
    let filter = format!(
        "singleValueExtendedProperties/any(ep: ep/id eq {} and ep/value eq {})",
        odata_str(STAMP_PROPERTY),
        odata_str(stamp)
    );
    let items = mb
        .app
        .http()
        .get_all(
            &mb.user,
            "find by stamp",
            messages_url(mb, folder_id, Some(&filter)),
        )
        .await?;
    Ok(items.into_iter().map(Listed::from).collect())
}

/// Complete items carrying the stamp. An incomplete one (a JSON-route write interrupted while its
/// attachments were being added) is deleted here, so the caller writes the message again.
pub(crate) async fn find_by_stamp(
    mb: &GraphMailbox,
    folder_id: &str,
    identity: &SourceIdentity,
) -> Result<Vec<String>, GraphError> {
    let mut out = Vec::new();
    for l in by_stamp_raw(mb, folder_id, &identity.to_stamp()).await? {
        let Some(id) = l.id() else { continue };
        if l.incomplete {
            tracing::warn!(mailbox = %mb.user, item = id, "removing an incomplete copy left by an interrupted write");
            delete_message(mb, id).await?;
        } else {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

pub(crate) async fn by_message_id_raw(
    mb: &GraphMailbox,
    folder_id: &str,
    message_id: &str,
) -> Result<Vec<Listed>, GraphError> {
    let filter = format!("internetMessageId eq {}", odata_str(message_id));
    let items = mb
        .app
        .http()
        .get_all(
            &mb.user,
            "find by Message-ID",
            messages_url(mb, folder_id, Some(&filter)),
        )
        .await?;
    Ok(items.into_iter().map(Listed::from).collect())
}

pub(crate) async fn find_by_message_id(
    mb: &GraphMailbox,
    folder_id: &str,
    message_id: &str,
) -> Result<Vec<DestItem>, GraphError> {
    Ok(by_message_id_raw(mb, folder_id, message_id)
        .await?
        .iter()
        .filter_map(Listed::to_dest)
        .collect())
}

pub(crate) async fn list_raw(
    mb: &GraphMailbox,
    folder_id: &str,
) -> Result<Vec<Listed>, GraphError> {
    let items = mb
        .app
        .http()
        .get_all(&mb.user, "list items", messages_url(mb, folder_id, None))
        .await?;
    Ok(items.into_iter().map(Listed::from).collect())
}

pub(crate) async fn list_items(
    mb: &GraphMailbox,
    folder_id: &str,
) -> Result<Vec<DestItem>, GraphError> {
    Ok(list_raw(mb, folder_id)
        .await?
        .iter()
        .filter_map(Listed::to_dest)
        .collect())
}

pub(crate) async fn folder_count(mb: &GraphMailbox, folder_id: &str) -> Result<u64, GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/mailFolders/{}{}",
        mb.user_path(),
        seg(folder_id),
        query(&[("$select", "id,totalItemCount")])
    ));
    let v: Value = http
        .send(&mb.user, Call::get("folder count", url))
        .await?
        .json("folder count", &mb.user)?;
    v["totalItemCount"]
        .as_u64()
        .ok_or_else(|| GraphError::Protocol {
            op: "folder count".into(),
            mailbox: mb.user.clone(),
            reason: "no totalItemCount in the response".into(),
            request_id: None,
        })
}

pub(crate) async fn set_flags(
    mb: &GraphMailbox,
    item_id: &str,
    flags: &Flags,
) -> Result<(), GraphError> {
    patch_message(mb, item_id, &update_body(flags), "set flags").await
}

pub(crate) async fn patch_message(
    mb: &GraphMailbox,
    item_id: &str,
    body: &Value,
    op: &str,
) -> Result<(), GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!("{}/messages/{}", mb.user_path(), seg(item_id)));
    http.send(&mb.user, Call::json(op, Method::PATCH, url, body, true))
        .await
        .map(|_| ())
}

pub(crate) async fn delete_message(mb: &GraphMailbox, item_id: &str) -> Result<(), GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!("{}/messages/{}", mb.user_path(), seg(item_id)));
    match http
        .send(
            &mb.user,
            Call {
                method: Method::DELETE,
                ..Call::get("delete message", url)
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone (a retried delete whose first response was lost): fine.
        Err(e) if e.status() == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The item's MIME (`$value`).
pub(crate) async fn mime_of(mb: &GraphMailbox, item_id: &str) -> Result<bytes::Bytes, GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/messages/{}/$value",
        mb.user_path(),
        seg(item_id)
    ));
    Ok(http.send(&mb.user, Call::get("read MIME", url)).await?.body)
}
