//! Attachments of JSON-route items: small ones in one POST, large ones (3 to 150 MB) through an
//! upload session in ranges of at most 4 MB, each range read from the decoded attachment's spool
//! file when it is sent (never the whole attachment in memory).
//!
//! The upload URL carries its own token: it lives in a [`Secret`], is sent without an
//! Authorization header, and the HTTP layer logs it as `<upload session>`. Chunks follow the
//! server's `nextExpectedRanges`, so a retried chunk the server already took is not sent twice.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use super::GraphMailbox;
use super::decode;
use super::error::GraphError;
use super::http::{Call, Target};
use super::mime_to_json::{Attachment, AttachmentData};
use super::uploads::MessageUpload;
use super::urls::seg;
use crate::body::Body;
use crate::secret::Secret;

/// Attachments below this go in one POST (Microsoft: under 3 MB).
pub(crate) const SMALL_ATTACHMENT: usize = 3 * 1024 * 1024;
/// Upload chunk: 12 x 320 KiB, under the 4 MB per-request ceiling.
pub(crate) const CHUNK: usize = 12 * 320 * 1024;

/// Adds every attachment, one at a time: a large part is decoded from `message` into a spool
/// first, so at most one upload chunk of it is in memory.
pub(crate) async fn add_all(
    mb: &GraphMailbox,
    item_id: &str,
    atts: &[Attachment<'_>],
    message: &Body,
    max_request: u64,
) -> Result<(), GraphError> {
    let small =
        |len: u64| len < SMALL_ATTACHMENT as u64 && len.div_ceil(3) * 4 + 4096 <= max_request;
    // Counted while this message's sessions run, for progress lines; dropped with the future.
    let mut progress = mb.app.inner.uploads.message(&mb.user);
    for a in atts {
        match &a.data {
            AttachmentData::Memory(bytes) if small(bytes.len() as u64) => {
                post_small(mb, item_id, a, bytes).await?
            }
            // Only text attachments are this large in memory (under the request limit, see
            // `skeleton`): one copy to give the session a body to read its ranges from.
            AttachmentData::Memory(bytes) => {
                upload_session(
                    mb,
                    item_id,
                    a,
                    &Body::Memory(bytes.to_vec()),
                    max_request,
                    &mut progress,
                )
                .await?
            }
            AttachmentData::Part(part) => {
                let data = Body::Spooled(decode::to_spool(message, part).map_err(|e| {
                    GraphError::Local {
                        op: "decode attachment".into(),
                        mailbox: mb.user.clone(),
                        reason: format!("attachment {:?}: {e}", a.name),
                    }
                })?);
                if small(data.len()) {
                    let bytes = read(mb, &data, 0, data.len())?;
                    post_small(mb, item_id, a, &bytes).await?;
                } else {
                    upload_session(mb, item_id, a, &data, max_request, &mut progress).await?;
                }
            }
        }
    }
    Ok(())
}

/// Bytes `start..end` of an attachment's decoded data.
fn read(mb: &GraphMailbox, data: &Body, start: u64, end: u64) -> Result<Vec<u8>, GraphError> {
    data.range(start, end).map_err(|e| GraphError::Local {
        op: "read attachment".into(),
        mailbox: mb.user.clone(),
        reason: e.to_string(),
    })
}

async fn post_small(
    mb: &GraphMailbox,
    item_id: &str,
    a: &Attachment<'_>,
    data: &[u8],
) -> Result<(), GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/messages/{}/attachments",
        mb.user_path(),
        seg(item_id)
    ));
    let mut body = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": a.name,
        "contentType": a.content_type,
        "contentBytes": STANDARD.encode(data),
        "isInline": a.inline,
    });
    if let Some(cid) = &a.content_id {
        body["contentId"] = json!(cid);
    }
    match http
        .send(
            &mb.user,
            Call::json("add attachment", Method::POST, url.clone(), &body, false),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(GraphError::Ambiguous { .. }) => {
            // The attachment may be there: look before sending it again.
            let listed = http
                .get_all(
                    &mb.user,
                    "list attachments",
                    format!("{url}?$select=id,name,size"),
                )
                .await?;
            if listed
                .iter()
                .any(|x| x["name"].as_str() == Some(a.name.as_str()))
            {
                Ok(())
            } else {
                http.send(
                    &mb.user,
                    Call::json("add attachment", Method::POST, url, &body, false),
                )
                .await
                .map(|_| ())
            }
        }
        Err(e) => Err(e),
    }
}

/// First byte of the first `nextExpectedRanges` entry (`"4194304-"` or `"4194304-8388607"`).
pub(crate) fn next_expected(v: &Value) -> Option<u64> {
    let r = v["nextExpectedRanges"].as_array()?.first()?.as_str()?;
    r.split('-').next()?.trim().parse().ok()
}

async fn upload_session(
    mb: &GraphMailbox,
    item_id: &str,
    a: &Attachment<'_>,
    data: &Body,
    max_request: u64,
    progress: &mut MessageUpload<'_>,
) -> Result<(), GraphError> {
    let http = mb.app.http();
    let total = data.len();
    let url = http.v1(&format!(
        "{}/messages/{}/attachments/createUploadSession",
        mb.user_path(),
        seg(item_id)
    ));
    let mut item = json!({"attachmentType": "file", "name": a.name, "size": total, "contentType": a.content_type, "isInline": a.inline});
    if let Some(cid) = &a.content_id {
        item["contentId"] = json!(cid);
    }
    // Creating a session creates nothing visible: safe to repeat.
    let resp = http
        .send(
            &mb.user,
            Call::json(
                "create upload session",
                Method::POST,
                url,
                &json!({"AttachmentItem": item}),
                true,
            ),
        )
        .await?;
    let v: Value = resp.json("create upload session", &mb.user)?;
    let upload_url = Secret::new(v["uploadUrl"].as_str().map(str::to_owned).ok_or_else(|| {
        GraphError::Protocol {
            op: "create upload session".into(),
            mailbox: mb.user.clone(),
            reason: "no uploadUrl in the response".into(),
            request_id: resp.request_id.clone(),
        }
    })?);
    let chunk = (CHUNK as u64).min(max_request.max(320 * 1024));
    let mut start = next_expected(&v).unwrap_or(0);
    progress.session(total);
    progress.sent(start);
    let mut rounds = 0u64;
    while start < total {
        rounds += 1;
        if rounds > total / chunk + 10 {
            return Err(GraphError::Protocol {
                op: "upload attachment".into(),
                mailbox: mb.user.clone(),
                reason: "the upload session does not advance".into(),
                request_id: None,
            });
        }
        let end = (start + chunk).min(total);
        let call = Call {
            op: "upload attachment chunk",
            method: Method::PUT,
            target: Target::Upload(&upload_url),
            body: Some((
                Bytes::from(read(mb, data, start, end)?),
                "application/octet-stream",
            )),
            headers: vec![(
                "Content-Range",
                format!("bytes {}-{}/{}", start, end - 1, total),
            )],
            idempotent: true,
        };
        let resp = http.send(&mb.user, call).await?;
        if resp.status == 201 {
            progress.sent(total - start);
            return Ok(());
        }
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let next = next_expected(&v).unwrap_or(end);
        progress.sent(next.saturating_sub(start));
        start = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_range_parsing() {
        assert_eq!(
            next_expected(&json!({"nextExpectedRanges": ["0-"]})),
            Some(0)
        );
        assert_eq!(
            next_expected(&json!({"nextExpectedRanges": ["3932160-7864319"]})),
            Some(3932160)
        );
        assert_eq!(next_expected(&json!({})), None);
        const { assert!(CHUNK <= 4 * 1024 * 1024 && CHUNK.is_multiple_of(320 * 1024)) };
    }
}
