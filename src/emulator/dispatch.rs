//! One entry point for every emulated request, whether it came over HTTP or inside a `$batch`:
//! faults first, then the token endpoint, the upload URLs, or Graph (bearer check, mailbox
//! policy, permission, throttling, latency, then the route). Every request is logged for the
//! Inspector with its counters; every answer gets `request-id` and `client-request-id`.

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;

use super::blobs::BodiesMode;
use super::config::{MAIL_ADVANCED_READWRITE, MAIL_READWRITE};
use super::conn::ConnInfo;
use super::errors::{ApiError, retry_after_header};
use super::faults::FaultKind;
use super::inspect::RequestRecord;
use super::odata::Query;
use super::routes::{self, Route};
use super::throttle::Permit;
use super::{Emu, auth, batch, lock, upload};

/// Graph's JSON content type.
pub(crate) const JSON_CT: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A request as the emulator sees it (from HTTP or from a batch item).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    /// Raw (percent-encoded) path.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    pub content_type: Option<String>,
    pub content_range: Option<String>,
    pub authorization: Option<String>,
    pub client_request_id: Option<String>,
    pub body: Bytes,
    pub via_batch: bool,
}

impl Call {
    pub fn is_json(&self) -> bool {
        self.content_type
            .as_deref()
            .is_none_or(|c| c.to_ascii_lowercase().starts_with("application/json"))
    }
    pub fn is_text_plain(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/plain"))
    }
    /// The body as a JSON object, or 400 UnableToDeserializePostBody.
    pub fn json_object(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiError::unreadable_body(
                "The request body must be a JSON object.",
            )),
            Err(e) => Err(ApiError::unreadable_body(format!(
                "Cannot read the request body as JSON: {e}"
            ))),
        }
    }
}

/// Response body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Json(Value),
    Raw { content_type: String, data: Vec<u8> },
    Empty,
}

/// A response before ids are added.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Json(v),
        }
    }
    pub fn no_content() -> Self {
        Reply {
            status: 204,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    fn from_error(e: &ApiError, request_id: &str, client_request_id: Option<&str>) -> Self {
        let mut r = Reply::json(e.status.as_u16(), e.body(request_id, client_request_id));
        if let Some(s) = e.retry_after {
            r.headers
                .push(("Retry-After".into(), retry_after_header(s)));
        }
        r
    }
}

/// What the caller of [`handle`] gets: the reply and whether to drop the connection instead.
pub(crate) struct Outcome {
    pub reply: Reply,
    pub kill: bool,
}

/// The axum fallback handler: everything except `/_emulator`.
pub(crate) async fn http_entry(
    State(emu): State<Arc<Emu>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let base = base_url(&parts.headers, &emu);
    let hdr = |n: header::HeaderName| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut call = Call {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        content_type: hdr(header::CONTENT_TYPE),
        content_range: hdr(header::CONTENT_RANGE),
        authorization: hdr(header::AUTHORIZATION),
        client_request_id: parts
            .headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: Bytes::new(),
        via_batch: false,
    };
    let limit = emu.config.limits.request_body_bytes;
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => call.body = b,
        Err(_) => {
            let e = ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("The request body exceeds the maximum of {limit} bytes."),
            );
            let rid = uuid::Uuid::new_v4().to_string();
            let reply = Reply::from_error(&e, &rid, call.client_request_id.as_deref());
            record(&emu, &call, &reply, &rid, None, 0);
            return into_response(finish(reply, &rid, call.client_request_id.as_deref()));
        }
    }
    let out = handle(emu, base, call).await;
    if out.kill {
        conn.kill();
    }
    into_response(out.reply)
}

fn base_url(headers: &HeaderMap, emu: &Emu) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) if !h.is_empty() => format!("http://{h}"),
        _ => format!("http://{}", emu.local_addr),
    }
}

fn into_response(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (ct, bytes) = match r.body {
        Body::Json(v) => (
            Some(JSON_CT.to_owned()),
            serde_json::to_vec(&v).unwrap_or_default(),
        ),
        Body::Raw { content_type, data } => (Some(content_type), data),
        Body::Empty => (None, Vec::new()),
    };
    let mut resp = (status, AxumBody::from(bytes)).into_response();
    let h = resp.headers_mut();
    if let Some(ct) = ct
        && let Ok(v) = HeaderValue::from_str(&ct)
    {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

fn finish(mut reply: Reply, request_id: &str, client_request_id: Option<&str>) -> Reply {
    reply
        .headers
        .push(("request-id".into(), request_id.to_owned()));
    if let Some(c) = client_request_id {
        reply
            .headers
            .push(("client-request-id".into(), c.to_owned()));
    }
    reply
}

/// Handles one request (boxed: `$batch` items come back through here).
pub(crate) fn handle(emu: Arc<Emu>, base: String, call: Call) -> BoxFuture<'static, Outcome> {
    Box::pin(async move {
        let rid = uuid::Uuid::new_v4().to_string();
        let crid = call.client_request_id.clone();
        let fault = lock(&emu.faults).pick(call.method.as_str(), &call.path, &rid);
        let mut kill = false;
        let mut mailbox = None;
        let mut visited = 0;
        let result = match fault.as_ref().map(|f| f.kind) {
            Some(FaultKind::Reset) => {
                let reply = finish(Reply::no_content(), &rid, crid.as_deref());
                record(&emu, &call, &reply, &rid, None, 0);
                return Outcome { reply, kill: true };
            }
            Some(FaultKind::ServiceUnavailable) => {
                let mut e = ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                );
                if let Some(s) = fault.as_ref().and_then(|f| f.retry_after) {
                    e = e.with_retry_after(s / emu.config.time_scale);
                }
                Err(e)
            }
            Some(FaultKind::GatewayTimeout) => Err(ApiError::new(
                504,
                "GatewayTimeout",
                "The gateway did not receive a timely response.",
            )),
            Some(FaultKind::Latency) => {
                let ms = fault.as_ref().and_then(|f| f.latency_ms).unwrap_or(0);
                tokio::time::sleep(emu.config.scaled(ms as f64 / 1000.0)).await;
                route(&emu, &base, &call, &mut mailbox, &mut visited, &mut kill).await
            }
            Some(FaultKind::LostResponse) => {
                kill = true;
                route(&emu, &base, &call, &mut mailbox, &mut visited, &mut kill).await
            }
            None => route(&emu, &base, &call, &mut mailbox, &mut visited, &mut kill).await,
        };
        let reply = match result {
            Ok(r) => r,
            Err(e) => Reply::from_error(&e, &rid, crid.as_deref()),
        };
        let reply = finish(reply, &rid, crid.as_deref());
        record(&emu, &call, &reply, &rid, mailbox, visited);
        Outcome { reply, kill }
    })
}

/// With bodies out of memory, the request log keeps JSON bodies only up to this size (it would
/// otherwise hold every message again).
const LOGGED_JSON_MAX: usize = 8 * 1024;

fn record(
    emu: &Emu,
    call: &Call,
    reply: &Reply,
    rid: &str,
    mailbox: Option<String>,
    items_visited: u64,
) {
    let keep_all = emu.blobs.mode() == BodiesMode::Memory;
    let body_json = if call.is_json()
        && !call.body.is_empty()
        && (keep_all || call.body.len() <= LOGGED_JSON_MAX)
    {
        serde_json::from_slice(&call.body).ok()
    } else {
        None
    };
    let response_json = match &reply.body {
        Body::Json(v) if keep_all || reply.status >= 400 => Some(v.clone()),
        Body::Json(v) => serde_json::to_vec(v)
            .ok()
            .filter(|b| b.len() <= LOGGED_JSON_MAX)
            .map(|_| v.clone()),
        _ => None,
    };
    let rec = RequestRecord {
        request_id: rid.to_owned(),
        at: chrono::Utc::now().to_rfc3339(),
        method: call.method.to_string(),
        path: percent_encoding::percent_decode_str(&call.path)
            .decode_utf8_lossy()
            .into_owned(),
        query: redact_query(&call.query),
        content_type: call.content_type.clone(),
        body_json,
        body_len: call.body.len(),
        status: reply.status,
        response_json,
        mailbox,
        via_batch: call.via_batch,
        kind: request_kind(call).to_owned(),
        items_visited,
    };
    lock(&emu.activity).push(rec, emu.config.request_log_limit);
}

/// Upload URLs carry their credential in `authtoken`: never keep it in the request log.
fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("authtoken") => format!("{k}=[redacted]"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The kind of a request, for the counters (what a client spends its request budget on).
pub(crate) fn request_kind(call: &Call) -> &'static str {
    let segs: Vec<String> = segments(&call.path)
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let last = segs.last().map(String::as_str).unwrap_or("");
    let has = |s: &str| segs.iter().any(|x| x == s);
    let filtered = url::form_urlencoded::parse(call.query.as_bytes())
        .any(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case("filter"));
    let m = &call.method;
    if segs.first().map(String::as_str) == Some("upload") {
        "chunk"
    } else if last.ends_with("createuploadsession") {
        "upload session"
    } else if last == "importmime" {
        "importMime"
    } else if last == "$batch" {
        "batch"
    } else if last == "token" && has("oauth2") {
        "token"
    } else if last == "$value" {
        "$value"
    } else if has("attachments") {
        if *m == Method::POST {
            "attachment POST"
        } else {
            "attachments"
        }
    } else if last == "messages" {
        match (m, filtered) {
            (&Method::POST, _) => "create",
            (_, true) => "lookup",
            _ => "list",
        }
    } else if has("messages") {
        match *m {
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "get",
        }
    } else if has("mailfolders") || has("childfolders") {
        "folders"
    } else {
        "other"
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

async fn route(
    emu: &Arc<Emu>,
    base: &str,
    call: &Call,
    mailbox: &mut Option<String>,
    visited: &mut u64,
    kill: &mut bool,
) -> Result<Reply, ApiError> {
    let segs = segments(&call.path);
    let first = segs.first().map(String::as_str).unwrap_or("");
    if segs.len() == 4
        && segs[1].eq_ignore_ascii_case("oauth2")
        && segs[2] == "v2.0"
        && segs[3] == "token"
    {
        return Ok(auth::token_endpoint(emu, base, &segs[0], call));
    }
    if first.eq_ignore_ascii_case("upload") {
        return upload::put_chunk(emu, base, &segs, call, mailbox).await;
    }
    let version = match first {
        "v1.0" => "v1.0",
        "beta" => "beta",
        _ => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("Invalid version: {first}"),
            ));
        }
    };
    graph(emu, base, version, &segs[1..], call, mailbox, visited, kill).await
}

/// Items the store has touched for a mailbox so far.
fn visits_of(emu: &Emu, key: &str) -> u64 {
    lock(&emu.store)
        .mailboxes
        .get(key)
        .map_or(0, |m| m.visits())
}

#[allow(clippy::too_many_arguments)]
async fn graph(
    emu: &Arc<Emu>,
    base: &str,
    version: &str,
    segs: &[String],
    call: &Call,
    mailbox: &mut Option<String>,
    visited: &mut u64,
    kill: &mut bool,
) -> Result<Reply, ApiError> {
    let app = auth::authenticate(emu, call.authorization.as_deref())?;
    if segs.len() == 1 && segs[0] == "$batch" {
        if call.via_batch {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "A batch request cannot contain another batch.",
            ));
        }
        return batch::run(emu, base, version, call, kill).await;
    }
    match segs.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("users") if segs.len() >= 2 => {}
        Some("me") => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            ));
        }
        _ => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "Resource not found for the segment '{}'.",
                    segs.first().map(String::as_str).unwrap_or("")
                ),
            ));
        }
    }
    let user = &segs[1];
    let route = routes::parse(version, &segs[2..])?;
    let key = auth::resolve_mailbox(emu, &app, user)?;
    *mailbox = Some(key.clone());
    let needed = if matches!(route, Route::ImportMime(_)) {
        MAIL_ADVANCED_READWRITE
    } else {
        MAIL_READWRITE
    };
    if !app.has_permission(needed) {
        return Err(ApiError::new(
            403,
            "ErrorAccessDenied",
            format!("Access is denied. Check credentials and try again. (the app lacks {needed})"),
        ));
    }
    let upload_bytes = match call.method {
        Method::POST | Method::PUT | Method::PATCH => call.body.len() as u64,
        _ => 0,
    };
    let _permit = Permit::acquire(emu, &app.client_id, &key, upload_bytes)?;
    let lat = &emu.config.latency;
    if lat.fixed_ms > 0 || lat.jitter_ms > 0 {
        let jitter = if lat.jitter_ms > 0 {
            rand::random::<u64>() % (lat.jitter_ms + 1)
        } else {
            0
        };
        tokio::time::sleep(emu.config.scaled((lat.fixed_ms + jitter) as f64 / 1000.0)).await;
    }
    let ctx = routes::Ctx {
        emu,
        base,
        version,
        user: user.clone(),
        mailbox: key,
        client_id: app.client_id.clone(),
        query: Query::parse(&call.query)?,
        path: call.path.clone(),
    };
    let before = visits_of(emu, &ctx.mailbox);
    let out = routes::execute(&ctx, route, call);
    *visited = visits_of(emu, &ctx.mailbox).saturating_sub(before);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_tokens_are_redacted_from_the_log() {
        assert_eq!(
            redact_query("a=1&authtoken=s3cret&b=2"),
            "a=1&authtoken=[redacted]&b=2"
        );
        assert_eq!(redact_query("$top=5"), "$top=5");
    }
}
