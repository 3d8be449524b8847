//! Writing one message: route choice, importMime, JSON create, the post-create PATCH, and the
//! resolution of creates whose response was lost.
//!
//! Route per message: importMime (byte-exact, non-draft) unless the settings say JSON, the cloud
//! lacks it, the base64 MIME would exceed the request limit, or the tenant refused importMime
//! earlier in the run. A refusal (403, or 400/404/405/501 with a not-supported code) retries the
//! message as JSON, and once JSON worked for that mailbox the refusal is remembered for the run
//! (so one denied mailbox does not switch the whole tenant).
//!
//! A create whose response was lost is never re-sent. importMime items carry no stamp until the
//! PATCH, so they are found by Message-ID among unstamped items and confirmed by the SHA-256 of
//! their `$value` (importMime keeps the bytes); JSON items carry the stamp from the start.
//! Unresolvable cases return [`GraphError::Ambiguous`] for the engine.

use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use serde_json::json;

use super::error::GraphError;
use super::flags::{INCOMPLETE_PROPERTY, patch_body};
use super::http::{Call, Resp, Target};
use super::lookup::{by_message_id_raw, by_stamp_raw, delete_message, mime_of, patch_message};
use super::settings::{ReceivedDate, Route};
use super::urls::seg;
use super::{GraphMailbox, decode, mime_to_json, skeleton, upload};
use crate::body::Body;
use crate::engine::ports::OutgoingMessage;

/// Codes that mean "this tenant or endpoint does not do importMime".
const NOT_SUPPORTED_CODES: &[&str] = &[
    "RequestBroker--ParseUri",
    "NotSupported",
    "ErrorNotSupported",
    "BadRequest",
    "ResourceNotFound",
    "UnknownError",
    "ErrorInvalidRequest",
];

/// The route a message takes. A draft goes JSON: importMime always makes a delivered item,
/// and only PR_MESSAGE_FLAGS at creation can keep it a draft.
pub(crate) fn choose_route(mb: &GraphMailbox, raw_len: u64, draft: bool) -> Route {
    let s = mb.app.settings();
    if draft
        || s.effective_route() == Route::Json
        || mb.app.inner.import_mime_refused.load(Ordering::Relaxed)
    {
        return Route::Json;
    }
    let b64 = raw_len.div_ceil(3) * 4;
    if b64 > s.max_request_bytes {
        Route::Json
    } else {
        Route::ImportMime
    }
}

pub(crate) async fn write(
    mb: &GraphMailbox,
    folder_id: &str,
    msg: &OutgoingMessage<'_>,
) -> Result<String, GraphError> {
    let size = msg.body.len();
    let max = mb.app.settings().max_message_bytes;
    if size > max {
        // Exchange sizes the item it stores, not the base64-inflated MIME: a message whose raw
        // form is over the limit may still fit once its attachments are decoded (JSON route).
        let stored = if size <= max.saturating_mul(3) / 2 {
            stored_size(msg.body, mb.app.settings().max_request_bytes)
        } else {
            None
        };
        if stored.is_none_or(|s| s > max) {
            return Err(GraphError::Rejected {
                mailbox: mb.user.clone(),
                reason: format!(
                    "message {} of folder {} is {size} bytes ({} decoded), over the destination's limit of {max} bytes",
                    msg.identity.uid,
                    msg.identity.folder,
                    stored
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "more".into())
                ),
            });
        }
    }
    match choose_route(mb, size, msg.flags.draft) {
        Route::Json => write_json(mb, folder_id, msg).await,
        Route::ImportMime => match import_mime(mb, folder_id, msg).await {
            Ok(id) => Ok(id),
            Err(e) if refusal(&e) => {
                tracing::warn!(mailbox = %mb.user, error = %e, "importMime refused: writing this message as JSON");
                let id = write_json(mb, folder_id, msg).await?;
                let remember = e.status() == Some(403)
                    || e.code().is_some_and(|c| NOT_SUPPORTED_CODES.contains(&c));
                if remember
                    && !mb
                        .app
                        .inner
                        .import_mime_refused
                        .swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "the tenant refuses importMime: the rest of this run uses the JSON route"
                    );
                }
                Ok(id)
            }
            Err(e) => Err(e),
        },
    }
}

/// The size of the item Exchange would store: decoded bodies and attachments (large parts are
/// decoded from the message only to be counted).
fn stored_size(body: &Body, text_limit: u64) -> Option<u64> {
    let skel = skeleton::build(body, skeleton::MIN_PART, text_limit).ok()?;
    let text = skel.text(body).ok()?;
    let m = mime_to_json::parse(&text)?;
    let bodies: usize = m
        .text_bodies()
        .chain(m.html_bodies())
        .map(|p| p.contents().len())
        .sum();
    let atts: usize = m.attachments().map(|p| p.contents().len()).sum();
    let mut large = 0;
    for p in &skel.parts {
        large += decode::decoded_len(body, p).ok()?;
    }
    Some((bodies + atts) as u64 + large)
}

/// Worth retrying as JSON: importMime itself was refused (not throttling, not the mailbox).
fn refusal(e: &GraphError) -> bool {
    matches!(e, GraphError::Http(h) if matches!(h.status, 400 | 403 | 404 | 405 | 501))
        && e.code() != Some("MailboxNotEnabledForRESTAPI")
        && e.code() != Some("ErrorInvalidUser")
}

async fn import_mime(
    mb: &GraphMailbox,
    folder_id: &str,
    msg: &OutgoingMessage<'_>,
) -> Result<String, GraphError> {
    let http = mb.app.http();
    let url = http.beta(&format!(
        "{}/mailFolders/{}/importMime",
        mb.user_path(),
        seg(folder_id)
    ));
    // The importMime route is only taken for messages under the request limit: small enough to
    // hold (whether or not the source spooled them).
    let raw = msg.body.bytes().map_err(|e| GraphError::Local {
        op: "importMime".into(),
        mailbox: mb.user.clone(),
        reason: format!("reading the spooled message: {e}"),
    })?;
    let body = match mb.app.settings().received_date {
        ReceivedDate::AsIs => Bytes::from(STANDARD.encode(&raw)),
        ReceivedDate::PrependReceived => {
            Bytes::from(STANDARD.encode(super::received::prepend(&raw, msg.internal_date)))
        }
    };
    drop(raw);
    let call = Call {
        op: "importMime",
        method: Method::POST,
        target: Target::Graph(url),
        body: Some((body, "text/plain")),
        headers: Vec::new(),
        idempotent: false,
    };
    let id = match http.send(&mb.user, call).await {
        Ok(resp) => created_id(&resp, mb, "importMime")?,
        Err(e @ GraphError::Ambiguous { .. }) => {
            match resolve_lost_import(mb, folder_id, msg).await {
                Ok(Some(id)) => {
                    tracing::info!(mailbox = %mb.user, item = %id, "lost importMime response resolved: the item was created");
                    id
                }
                Ok(None) => return Err(e),
                // The look-up could not answer: the outcome is still unknown, and stays so (the
                // row stays `sending` until the destination answers; never a plain failure, which
                // the next run would write again).
                Err(lookup) => return Err(still_unknown(e, &lookup)),
            }
        }
        Err(e) => return Err(e),
    };
    let patch = patch_body(msg.flags, Some(&msg.identity.to_stamp()));
    if let Err(e) = patch_message(mb, &id, &patch, "stamp and flags").await {
        // An unstamped copy would be invisible to resume: remove it so the message is written again.
        return match delete_message(mb, &id).await {
            Ok(()) => Err(e),
            Err(_) => Err(GraphError::Ambiguous {
                op: "stamp and flags".into(),
                mailbox: mb.user.clone(),
                reason: format!("imported item could be neither stamped ({e}) nor removed"),
                client_request_id: "-".into(),
            }),
        };
    }
    Ok(id)
}

/// The ambiguous error of a create whose look-up failed too: still ambiguous, with both reasons.
fn still_unknown(create: GraphError, lookup: &GraphError) -> GraphError {
    match create {
        GraphError::Ambiguous {
            op,
            mailbox,
            reason,
            client_request_id,
        } => GraphError::Ambiguous {
            op,
            mailbox,
            reason: format!("{reason}; the look-up for the item failed too ({lookup})"),
            client_request_id,
        },
        other => other,
    }
}

/// Only the id of a created item is read; serde skips the rest (bodies can be large).
#[derive(serde::Deserialize)]
struct Created {
    id: Option<String>,
}

fn created_id(resp: &Resp, mb: &GraphMailbox, op: &str) -> Result<String, GraphError> {
    resp.json::<Created>(op, &mb.user)?
        .id
        .ok_or_else(|| GraphError::Protocol {
            op: op.to_owned(),
            mailbox: mb.user.clone(),
            reason: "no id in the created item".into(),
            request_id: resp.request_id.clone(),
        })
}

/// Finds the item a lost importMime created: unstamped items with the message's Message-ID whose
/// MIME hashes to the source's SHA-256. Without a Message-ID it cannot be told apart safely.
async fn resolve_lost_import(
    mb: &GraphMailbox,
    folder_id: &str,
    msg: &OutgoingMessage<'_>,
) -> Result<Option<String>, GraphError> {
    // Maybe a previous attempt got as far as the stamp.
    if let Some(l) = by_stamp_raw(mb, folder_id, &msg.identity.to_stamp())
        .await?
        .into_iter()
        .next()
    {
        return Ok(l.id().map(str::to_owned));
    }
    let Some(mid) = msg.message_id else {
        return Ok(None);
    };
    let mut found = None;
    for l in by_message_id_raw(mb, folder_id, mid)
        .await?
        .into_iter()
        .filter(|l| l.stamp.is_none())
    {
        let Some(id) = l.id() else { continue };
        let mime = mime_of(mb, id).await?;
        if super::received::is_copy_of(&mime, &msg.identity.sha256) {
            if found.is_some() {
                // Two identical unstamped copies: not ours to pick.
                return Ok(None);
            }
            found = Some(id.to_owned());
        }
    }
    Ok(found)
}

async fn write_json(
    mb: &GraphMailbox,
    folder_id: &str,
    msg: &OutgoingMessage<'_>,
) -> Result<String, GraphError> {
    let settings = mb.app.settings();
    // Large parts stay in the message (or its spool) until they are uploaded; mail-parser reads
    // the skeleton, which is the message itself when nothing is large.
    let local = |e: std::io::Error| GraphError::Local {
        op: "create message".into(),
        mailbox: mb.user.clone(),
        reason: format!("reading the spooled message: {e}"),
    };
    let skel =
        skeleton::build(msg.body, skeleton::MIN_PART, settings.max_request_bytes).map_err(local)?;
    let text = skel.text(msg.body).map_err(local)?;
    let Some(parsed) = mime_to_json::parse(&text) else {
        return Err(GraphError::Rejected {
            mailbox: mb.user.clone(),
            reason: format!(
                "message {} of folder {} cannot be parsed as MIME for the JSON route",
                msg.identity.uid, msg.identity.folder
            ),
        });
    };
    let stamp = msg.identity.to_stamp();
    let mut rebuilt = mime_to_json::rebuild(&parsed, msg, &stamp);
    if let Err(reason) = mime_to_json::adopt_parts(&mut rebuilt, &skel.parts) {
        return Err(GraphError::Rejected {
            mailbox: mb.user.clone(),
            reason: format!(
                "message {} of folder {}: {reason}",
                msg.identity.uid, msg.identity.folder
            ),
        });
    }
    let body_len = serde_json::to_vec(&rebuilt.message)
        .map(|v| v.len() as u64)
        .unwrap_or(u64::MAX);
    if body_len > settings.max_request_bytes {
        return Err(GraphError::Rejected {
            mailbox: mb.user.clone(),
            reason: format!(
                "message {} of folder {}: its text/HTML body alone ({body_len} bytes as JSON) exceeds the {}-byte request limit",
                msg.identity.uid, msg.identity.folder, settings.max_request_bytes
            ),
        });
    }
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/mailFolders/{}/messages",
        mb.user_path(),
        seg(folder_id)
    ));
    let id = match http
        .send(
            &mb.user,
            Call::json("create message", Method::POST, url, &rebuilt.message, false),
        )
        .await
    {
        Ok(resp) => created_id(&resp, mb, "create message")?,
        Err(e @ GraphError::Ambiguous { .. }) => {
            let found = match by_stamp_raw(mb, folder_id, &stamp).await {
                Ok(found) => found,
                Err(lookup) => return Err(still_unknown(e, &lookup)),
            };
            match found.as_slice() {
                [one] => match one.id() {
                    Some(id) => {
                        tracing::info!(mailbox = %mb.user, item = id, "lost create response resolved by stamp");
                        id.to_owned()
                    }
                    None => return Err(e),
                },
                _ => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if !rebuilt.attachments.is_empty() {
        let done = async {
            upload::add_all(
                mb,
                &id,
                &rebuilt.attachments,
                msg.body,
                settings.max_request_bytes,
            )
            .await?;
            patch_message(mb, &id, &json!({"singleValueExtendedProperties": [{"id": INCOMPLETE_PROPERTY, "value": "0"}]}), "mark complete").await
        }
        .await;
        if let Err(e) = done {
            // Leave no half-copy behind; if even that fails, lookups delete it later (it is marked incomplete).
            if let Err(d) = delete_message(mb, &id).await {
                tracing::warn!(mailbox = %mb.user, error = %d, "could not remove an incomplete copy; the next lookup will");
            }
            return Err(e);
        }
    }
    Ok(id)
}
