//! Attachments of JSON-route items: small ones in one POST, large ones (3 to 150 MB) through an
//! upload session in ranges of at most 4 MB.
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
use super::error::GraphError;
use super::http::{Call, Target};
use super::mime_to_json::Attachment;
use super::urls::seg;
use crate::secret::Secret;

/// Attachments below this go in one POST (Microsoft: under 3 MB).
pub(crate) const SMALL_ATTACHMENT: usize = 3 * 1024 * 1024;
/// Upload chunk: 12 x 320 KiB, under the 4 MB per-request ceiling.
pub(crate) const CHUNK: usize = 12 * 320 * 1024;

pub(crate) async fn add_all(
    mb: &GraphMailbox,
    item_id: &str,
    atts: &[Attachment<'_>],
    max_request: u64,
) -> Result<(), GraphError> {
    for a in atts {
        let b64_len = a.data.len().div_ceil(3) * 4;
        if a.data.len() < SMALL_ATTACHMENT && (b64_len as u64 + 4096) <= max_request {
            post_small(mb, item_id, a).await?;
        } else {
            upload_session(mb, item_id, a, max_request).await?;
        }
    }
    Ok(())
}

async fn post_small(
    mb: &GraphMailbox,
    item_id: &str,
    a: &Attachment<'_>,
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
        "contentBytes": STANDARD.encode(&a.data),
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
    max_request: u64,
) -> Result<(), GraphError> {
    let http = mb.app.http();
    let total = a.data.len() as u64;
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
    let data = Bytes::copy_from_slice(&a.data);
    let mut start = next_expected(&v).unwrap_or(0);
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
                data.slice(start as usize..end as usize),
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
            return Ok(());
        }
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        start = next_expected(&v).unwrap_or(end);
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
