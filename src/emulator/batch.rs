//! JSON batching (`POST /v1.0/$batch`, `/beta/$batch`): at most 20 items with unique ids, a body
//! needs a Content-Type header, `dependsOn` orders items and a failed dependency answers 424.
//! Items go through the same path as HTTP requests (faults, throttling one by one), at most 4
//! at a time as Outlook does; responses come back in completion order, each with its status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::Method;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::Emu;
use super::dispatch::{Body, Call, Reply, handle};
use super::errors::ApiError;

/// Items of one batch that Outlook runs in parallel.
const PARALLEL: usize = 4;
/// Largest batch.
const MAX_ITEMS: usize = 20;

struct Item {
    id: String,
    call: Call,
    depends_on: Vec<String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", msg)
}

fn header_ci<'a>(h: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn parse_item(v: &Value, version: &str, outer: &Call) -> Result<Item, ApiError> {
    let o = v
        .as_object()
        .ok_or_else(|| bad("Invalid batch payload format: each request must be an object."))?;
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(bad(
                "Invalid batch payload format: every request needs a string id.",
            ));
        }
    };
    let method = o
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .ok_or_else(|| bad(format!("Request {id}: a valid method is required.")))?;
    let url = o
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("Request {id}: url is required.")))?;
    if url.contains("://") {
        return Err(bad(format!(
            "Request {id}: the url must be relative, e.g. /users/{{id}}/messages."
        )));
    }
    let url = if url.starts_with('/') {
        url.to_owned()
    } else {
        format!("/{url}")
    };
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let empty = Map::new();
    let headers = o
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let content_type = header_ci(headers, "content-type").map(str::to_owned);
    let body = match o.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(b) => {
            if content_type.is_none() {
                return Err(bad(format!(
                    "Request {id}: the Content-Type header is required when a body is present."
                )));
            }
            let json = content_type
                .as_deref()
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
            match b {
                Value::String(s) if !json => Bytes::from(s.clone().into_bytes()),
                other => Bytes::from(serde_json::to_vec(other).unwrap_or_default()),
            }
        }
    };
    let depends_on = match o.get("dependsOn") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return Err(bad(format!(
                "Request {id}: dependsOn must be an array of ids."
            )));
        }
    };
    Ok(Item {
        id,
        call: Call {
            method,
            path: format!("/{version}{path}"),
            query: query.to_owned(),
            content_type,
            content_range: header_ci(headers, "content-range").map(str::to_owned),
            authorization: outer.authorization.clone(),
            client_request_id: header_ci(headers, "client-request-id").map(str::to_owned),
            body,
            via_batch: true,
        },
        depends_on,
    })
}

fn response_json(id: &str, r: &Reply) -> Value {
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        headers.insert(k.clone(), json!(v));
    }
    let mut out = json!({"id": id, "status": r.status});
    match &r.body {
        Body::Json(v) => {
            headers.insert("Content-Type".into(), json!(super::dispatch::JSON_CT));
            out["body"] = v.clone();
        }
        Body::Raw { content_type, data } => {
            headers.insert("Content-Type".into(), json!(content_type));
            out["body"] = if content_type.starts_with("text/") {
                json!(String::from_utf8_lossy(data))
            } else {
                json!(base64::engine::general_purpose::STANDARD.encode(data))
            };
        }
        Body::Empty => {}
    }
    out["headers"] = Value::Object(headers);
    out
}

/// Runs a batch. `kill` is set when an item's response was lost (the whole connection drops).
pub(crate) async fn run(
    emu: &Arc<Emu>,
    base: &str,
    version: &str,
    call: &Call,
    kill: &mut bool,
) -> Result<Reply, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::new(
            405,
            "BadRequest",
            "$batch accepts POST only.",
        ));
    }
    let body = call.json_object()?;
    let list = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Invalid batch payload format: 'requests' array expected."))?;
    if list.is_empty() {
        return Err(bad(
            "Invalid batch payload: the batch contains no requests.",
        ));
    }
    if list.len() > MAX_ITEMS {
        return Err(bad(format!(
            "Invalid batch payload: the number of requests exceeds the limit of {MAX_ITEMS}."
        )));
    }
    let items: Vec<Item> = list
        .iter()
        .map(|v| parse_item(v, version, call))
        .collect::<Result<_, _>>()?;
    let mut ids = HashSet::new();
    for it in &items {
        if !ids.insert(it.id.clone()) {
            return Err(bad(format!(
                "Batch request contains duplicate id '{}'.",
                it.id
            )));
        }
    }
    for it in &items {
        if let Some(d) = it
            .depends_on
            .iter()
            .find(|d| !ids.contains(*d) || **d == it.id)
        {
            return Err(bad(format!(
                "Request {}: dependsOn names '{d}', which is not another request of this batch.",
                it.id
            )));
        }
    }
    let mut status: HashMap<String, u16> = HashMap::new();
    let mut pending = items;
    let mut responses = Vec::new();
    while !pending.is_empty() {
        let (ready, rest): (Vec<Item>, Vec<Item>) = pending
            .into_iter()
            .partition(|it| it.depends_on.iter().all(|d| status.contains_key(d)));
        pending = rest;
        if ready.is_empty() {
            return Err(bad("Batch dependsOn forms a cycle."));
        }
        let mut runnable = Vec::new();
        for it in ready {
            if let Some(d) = it
                .depends_on
                .iter()
                .find(|d| status.get(*d).is_some_and(|s| *s >= 400))
            {
                let e = ApiError::new(
                    424,
                    "FailedDependency",
                    format!("Request {d}, a dependency of this request, failed."),
                );
                let reply = Reply::json(424, e.body(&uuid::Uuid::new_v4().to_string(), None));
                status.insert(it.id.clone(), 424);
                responses.push(response_json(&it.id, &reply));
            } else {
                runnable.push(it);
            }
        }
        let outcomes: Vec<(String, super::dispatch::Outcome)> = futures::stream::iter(runnable)
            .map(|it| {
                let emu = emu.clone();
                let base = base.to_owned();
                async move { (it.id, handle(emu, base, it.call).await) }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (id, out) in outcomes {
            *kill |= out.kill;
            status.insert(id.clone(), out.reply.status);
            responses.push(response_json(&id, &out.reply));
        }
    }
    Ok(Reply::json(200, json!({"responses": responses})))
}
