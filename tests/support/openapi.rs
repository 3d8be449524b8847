//! A small validator for the subset of OpenAPI 3.0 used by the mail projection of Microsoft
//! Graph's metadata (`tests/data/graph-metadata/mail-projection-v1.0.openapi3.json`):
//! `$ref`, `type`, `properties`, `items`, `enum`, `nullable`, `allOf`/`anyOf`/`oneOf`,
//! `additionalProperties`, `required`, `format: date-time`.
//!
//! Unknown properties are errors (the description never sets `additionalProperties`, but a
//! property Graph does not know is exactly the mistake worth catching); `@odata.*` annotations
//! are allowed. Known quirks of the description, handled here:
//! - the `*-create` schemas wrongly require `id`: `required: ["id"]` is ignored;
//! - `$batch` is described as multipart; JSON batching gets its own schema below, and each item
//!   of a batch is validated as a request of its own;
//! - actions appear namespace-qualified (`microsoft.graph.createUploadSession`) while Graph also
//!   accepts the bare name: a spec segment `microsoft.graph.X` matches `X`;
//! - message is a media entity, so POST `.../messages` is described as a `*/*` stream: a JSON
//!   body is checked against `message-create`;
//! - importMime is beta and absent from the v1.0 description: its body is text, its response a
//!   message;
//! - PATCH is described as 204 while Graph answers 200 with the entity (validated against the
//!   GET schema), and createUploadSession as 200 while Graph answers 201: a 2xx matches any
//!   described 2xx;
//! - Graph's error bodies carry `innerError` where the description says `innererror`;
//! - `contentBytes` is described as base64url but Graph uses standard base64: formats other than
//!   date-time are not checked; `oneOf` is checked like `anyOf`.
//!
//! API: `Spec::load()`, `spec.validate_request(method, path, body)`,
//! `spec.validate_response(method, path, status, body)`; each returns every problem found.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value, json};

/// The loaded description.
#[derive(Clone)]
pub struct Spec {
    doc: Arc<Value>,
    paths: Arc<Vec<(Vec<String>, String)>>,
}

static SPEC: OnceLock<Spec> = OnceLock::new();

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/graph-metadata/mail-projection-v1.0.openapi3.json"
);

impl Spec {
    /// Loads (once per test binary) the mail OpenAPI description.
    pub fn load() -> Spec {
        SPEC.get_or_init(|| {
            let text =
                std::fs::read_to_string(FILE).unwrap_or_else(|e| panic!("reading {FILE}: {e}"));
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {FILE}: {e}"));
            let paths = doc["paths"]
                .as_object()
                .map(|p| {
                    p.keys()
                        .map(|k| {
                            (
                                k.split('/')
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_owned)
                                    .collect(),
                                k.clone(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Spec {
                doc: Arc::new(doc),
                paths: Arc::new(paths),
            }
        })
        .clone()
    }

    /// The spec path key matching a request path (`/v1.0/users/x/...`, `/users/x/...` or a
    /// full URL; the query is ignored).
    pub fn find_path(&self, path: &str) -> Option<String> {
        let segs = request_segments(path);
        let mut best: Option<(usize, &String)> = None;
        for (spec, key) in self.paths.iter() {
            if spec.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = spec.iter().zip(&segs).all(|(s, r)| {
                if s.starts_with('{') {
                    true
                } else if s.eq_ignore_ascii_case(r)
                    || s.strip_prefix("microsoft.graph.")
                        .is_some_and(|b| b.eq_ignore_ascii_case(r))
                {
                    literal += 1;
                    true
                } else {
                    false
                }
            });
            if ok && best.is_none_or(|(n, _)| literal > n) {
                best = Some((literal, key));
            }
        }
        best.map(|(_, k)| k.clone())
    }

    fn operation(&self, method: &str, path: &str) -> Result<&Value, Vec<String>> {
        let key = self
            .find_path(path)
            .ok_or_else(|| vec![format!("{method} {path}: no such path in the description")])?;
        let op = &self.doc["paths"][&key][method.to_ascii_lowercase()];
        if op.is_null() {
            return Err(vec![format!(
                "{method} {path}: {key} has no {method} operation"
            )]);
        }
        Ok(op)
    }

    /// Checks a request: the operation exists and a JSON body fits its schema. A non-JSON
    /// body (MIME as text/plain) is passed as `None` and not checked.
    pub fn validate_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let segs = request_segments(path);
        if segs.last().is_some_and(|s| s == "$batch") {
            let mut errs = Vec::new();
            if let Some(b) = body {
                self.check(b, &batch_request_schema(), "$batch", &mut errs);
                for item in b["requests"].as_array().into_iter().flatten() {
                    let m = item["method"].as_str().unwrap_or("GET");
                    let u = item["url"].as_str().unwrap_or("");
                    let json_body = item_is_json(item)
                        .then(|| &item["body"])
                        .filter(|v| !v.is_null());
                    if let Err(e) = self.validate_request(m, u, json_body) {
                        errs.extend(
                            e.into_iter()
                                .map(|e| format!("batch item {}: {e}", item["id"])),
                        );
                    }
                }
            }
            return finish(errs);
        }
        if segs
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("importMime"))
        {
            return if method.eq_ignore_ascii_case("POST") && body.is_none() {
                Ok(())
            } else {
                Err(vec![
                    "importMime takes POST with a text/plain base64 body".into(),
                ])
            };
        }
        let op = self.operation(method, path)?;
        let mut errs = Vec::new();
        if let Some(b) = body {
            let mut schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            if schema.is_null() && !op["requestBody"]["content"]["*/*"].is_null() {
                schema = self.media_create_schema(op);
            }
            let schema = &schema;
            if schema.is_null() {
                errs.push(format!("{method} {path}: the operation takes no JSON body"));
            } else {
                self.check(b, schema, "body", &mut errs);
            }
        }
        finish(errs)
    }

    /// Checks a response status and JSON body against the operation's description.
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let segs = request_segments(path);
        let mut errs = Vec::new();
        if status >= 400 {
            match body {
                Some(b) => self.check(
                    b,
                    &json!({"$ref": "#/components/schemas/error"}),
                    "error",
                    &mut errs,
                ),
                None => errs.push(format!(
                    "{method} {path}: error {status} without a JSON body"
                )),
            }
            return finish(errs);
        }
        if segs.last().is_some_and(|s| s == "$batch") {
            if let Some(b) = body {
                self.check(b, &batch_response_schema(), "$batch", &mut errs);
            }
            return finish(errs);
        }
        if segs
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("importMime"))
        {
            if let Some(b) = body {
                self.check(
                    b,
                    &json!({"$ref": "#/components/schemas/microsoft.graph.message"}),
                    "body",
                    &mut errs,
                );
            }
            return finish(errs);
        }
        let op = self.operation(method, path)?;
        let responses = &op["responses"];
        let described = responses
            .get(status.to_string())
            .or_else(|| {
                responses
                    .as_object()?
                    .iter()
                    .find(|(k, _)| k.len() == 3 && k.starts_with('2') && status / 100 == 2)
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| vec![format!("{method} {path}: status {status} is not described")])?;
        let mut schema = described["content"]["application/json"]["schema"].clone();
        if method.eq_ignore_ascii_case("PATCH") && status == 200 && schema.is_null() {
            schema = self.operation("GET", path)?["responses"]["200"]["content"]["application/json"]["schema"].clone();
        }
        match (body, schema.is_null()) {
            (Some(b), false) => self.check(b, &schema, "body", &mut errs),
            (Some(_), true) => errs.push(format!(
                "{method} {path}: status {status} is described without a body"
            )),
            (None, _) => {}
        }
        finish(errs)
    }

    /// Quirk: message is a media entity, so POST .../messages is described as `*/*` binary;
    /// a JSON body is the entity's `-create` schema (named after the 201 response's schema).
    fn media_create_schema(&self, op: &Value) -> Value {
        let created =
            op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].as_str();
        match created.map(|r| format!("{r}-create")) {
            Some(r) if self.doc.pointer(r.trim_start_matches('#')).is_some() => json!({"$ref": r}),
            _ => Value::Null,
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        for _ in 0..32 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let ptr = r.trim_start_matches('#');
                    s = self.doc.pointer(ptr).unwrap_or(&Value::Null);
                }
                None => break,
            }
        }
        s
    }

    /// Every property schema a (resolved) schema knows, through allOf/anyOf/oneOf.
    fn known_properties(&self, schema: &Value, out: &mut Map<String, Value>, depth: usize) {
        let s = self.resolve(schema);
        if depth > 16 {
            return;
        }
        if let Some(p) = s["properties"].as_object() {
            for (k, v) in p {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for comb in ["allOf", "anyOf", "oneOf"] {
            for sub in s[comb].as_array().into_iter().flatten() {
                self.known_properties(sub, out, depth + 1);
            }
        }
    }

    fn check(&self, v: &Value, schema: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        if s.is_null() {
            errs.push(format!("{at}: unresolvable schema {schema}"));
            return;
        }
        if v.is_null() {
            let nullable = s["nullable"].as_bool().unwrap_or(false)
                || schema["nullable"].as_bool().unwrap_or(false);
            if !nullable && !s["type"].is_null() {
                errs.push(format!("{at}: null is not allowed"));
            }
            return;
        }
        // `{"allOf": [{"$ref": X}], "nullable": true}` is how the description writes "X or null".
        if let Some([only]) = s["allOf"].as_array().map(Vec::as_slice)
            && s["type"].is_null()
            && s["properties"].is_null()
        {
            self.check(v, only, at, errs);
            return;
        }
        for sub in s["allOf"].as_array().into_iter().flatten() {
            self.check_open(v, sub, at, errs);
        }
        for comb in ["anyOf", "oneOf"] {
            if let Some(subs) = s[comb].as_array() {
                // A branch that only adds properties (attachment -> fileAttachment) is checked
                // through the property union below; a branch of a different type must match.
                let typed: Vec<&Value> = subs
                    .iter()
                    .filter(|b| !self.resolve(b)["type"].is_null())
                    .collect();
                let all_objects = typed.iter().all(|b| self.resolve(b)["type"] == "object")
                    && s["type"] == "object";
                if !typed.is_empty() && !all_objects {
                    let ok = typed.iter().any(|b| {
                        let mut e = Vec::new();
                        self.check_open(v, b, at, &mut e);
                        e.is_empty()
                    });
                    if !ok {
                        errs.push(format!("{at}: matches none of the {comb} alternatives"));
                    }
                }
            }
        }
        if let Some(en) = s["enum"].as_array()
            && !en.contains(v)
        {
            errs.push(format!("{at}: {v} is not one of {en:?}"));
        }
        match s["type"].as_str() {
            Some("object") => {
                let Some(obj) = v.as_object() else {
                    errs.push(format!("{at}: expected an object, got {v}"));
                    return;
                };
                let mut known = Map::new();
                self.known_properties(schema, &mut known, 0);
                // An object with no described properties is service-specific (innererror).
                let open = known.is_empty();
                for req in s["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    // Quirk: the *-create schemas require `id`, which a client never sends.
                    if req != "id" && !obj.contains_key(req) {
                        errs.push(format!("{at}: missing required property {req}"));
                    }
                }
                for (k, val) in obj {
                    if k.starts_with('@') || k.contains("@odata.") {
                        continue;
                    }
                    match known.get(k) {
                        Some(ps) => self.check(val, ps, &format!("{at}.{k}"), errs),
                        None => match &s["additionalProperties"] {
                            Value::Object(_) => self.check(
                                val,
                                &s["additionalProperties"],
                                &format!("{at}.{k}"),
                                errs,
                            ),
                            Value::Bool(true) => {}
                            _ if open => {}
                            // Quirk: Graph writes innerError, the description innererror.
                            _ if k == "innerError" && known.contains_key("innererror") => {}
                            _ => errs.push(format!("{at}: unknown property {k}")),
                        },
                    }
                }
            }
            Some("array") => match v.as_array() {
                Some(items) => {
                    if let Some(max) = s["maxItems"].as_u64()
                        && items.len() as u64 > max
                    {
                        errs.push(format!("{at}: more than {max} items"));
                    }
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, &s["items"], &format!("{at}[{i}]"), errs);
                    }
                }
                None => errs.push(format!("{at}: expected an array, got {v}")),
            },
            Some("string") => match v.as_str() {
                Some(text) => {
                    if s["format"] == "date-time"
                        && chrono::DateTime::parse_from_rfc3339(text).is_err()
                    {
                        errs.push(format!("{at}: '{text}' is not an RFC 3339 date-time"));
                    }
                }
                None => errs.push(format!("{at}: expected a string, got {v}")),
            },
            Some("integer") => {
                if !(v.is_i64() || v.is_u64()) {
                    errs.push(format!("{at}: expected an integer, got {v}"));
                } else if s["format"] == "int32"
                    && v.as_i64().is_none_or(|n| i32::try_from(n).is_err())
                {
                    errs.push(format!("{at}: {v} does not fit int32"));
                }
            }
            Some("number") if !v.is_number() => {
                errs.push(format!("{at}: expected a number, got {v}"))
            }
            Some("boolean") if !v.is_boolean() => {
                errs.push(format!("{at}: expected a boolean, got {v}"))
            }
            _ => {}
        }
    }

    /// Checks `v` against a sub-schema without the unknown-property rule (the caller checks
    /// properties against the union of all branches).
    fn check_open(&self, v: &Value, schema: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        let mut relaxed = s.clone();
        if let Some(o) = relaxed.as_object_mut() {
            o.insert("additionalProperties".into(), Value::Bool(true));
        }
        if s["type"] == "object" {
            // Only type and per-property checks matter here.
            if let (Some(obj), Some(props)) = (v.as_object(), s["properties"].as_object()) {
                for (k, ps) in props {
                    if let Some(val) = obj.get(k) {
                        self.check(val, ps, &format!("{at}.{k}"), errs);
                    }
                }
            } else if !v.is_object() {
                errs.push(format!("{at}: expected an object, got {v}"));
            }
        } else {
            self.check(v, &relaxed, at, errs);
        }
    }
}

fn finish(errs: Vec<String>) -> Result<(), Vec<String>> {
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn item_is_json(item: &Value) -> bool {
    item["headers"]
        .as_object()
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        })
        .and_then(|(_, v)| v.as_str())
        .is_none_or(|ct| ct.to_ascii_lowercase().starts_with("application/json"))
}

fn request_segments(path: &str) -> Vec<String> {
    let no_scheme = match path.find("://") {
        Some(i) => path[i + 3..]
            .find('/')
            .map(|j| &path[i + 3 + j..])
            .unwrap_or("/"),
        None => path,
    };
    let no_query = no_scheme.split('?').next().unwrap_or("");
    let mut segs: Vec<String> = no_query
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segs.first().is_some_and(|s| s == "v1.0" || s == "beta") {
        segs.remove(0);
    }
    segs
}

/// JSON batching request (the description models `$batch` as multipart).
fn batch_request_schema() -> Value {
    json!({
        "type": "object", "required": ["requests"],
        "properties": {"requests": {"type": "array", "maxItems": 20, "items": {
            "type": "object", "required": ["id", "method", "url"],
            "properties": {
                "id": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                "url": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {},
                "dependsOn": {"type": "array", "items": {"type": "string"}}
            }
        }}}
    })
}

/// JSON batching response.
fn batch_response_schema() -> Value {
    json!({
        "type": "object", "required": ["responses"],
        "properties": {"responses": {"type": "array", "items": {
            "type": "object", "required": ["id", "status"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "integer"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {}
            }
        }}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_quirks() {
        let s = Spec::load();
        assert!(
            s.validate_request(
                "POST",
                "/v1.0/users/a@b/mailFolders",
                Some(&json!({"displayName": "X"}))
            )
            .is_ok()
        );
        let e = s
            .validate_request(
                "POST",
                "/v1.0/users/a@b/mailFolders",
                Some(&json!({"displayName": 3, "colour": "red"})),
            )
            .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            s.validate_request(
                "POST",
                "/users/a/messages/m/attachments/createUploadSession",
                Some(
                    &json!({"AttachmentItem": {"attachmentType": "file", "name": "a", "size": 5}})
                )
            )
            .is_ok()
        );
        assert!(
            s.validate_request(
                "POST",
                "/users/a/mailFolders/inbox/messages",
                Some(&json!({"importance": "urgent"}))
            )
            .is_err()
        );
        assert!(
            s.validate_request("GET", "/users/a/calendar", None)
                .is_err()
        );
        // messages is a media entity: JSON bodies are checked against message-create.
        assert!(
            s.validate_request(
                "POST",
                "/users/a/messages",
                Some(&json!({"subject": "s", "isRead": true}))
            )
            .is_ok()
        );
        assert!(
            s.validate_request("POST", "/users/a/messages", Some(&json!({"subjekt": "s"})))
                .is_err()
        );
        let batch = json!({"requests": [{"id": "1", "method": "POST", "url": "/users/a/mailFolders",
            "headers": {"Content-Type": "application/json"}, "body": {"displayName": 1}}]});
        assert!(
            s.validate_request("POST", "/v1.0/$batch", Some(&batch))
                .is_err(),
            "items are checked"
        );
    }

    #[test]
    fn responses_and_quirks() {
        let s = Spec::load();
        let err =
            json!({"error": {"code": "X", "message": "m", "innerError": {"request-id": "r"}}});
        assert!(
            s.validate_response("GET", "/users/a/messages/m", 404, Some(&err))
                .is_ok()
        );
        assert!(
            s.validate_response("GET", "/users/a/messages/m", 404, Some(&json!({"oops": 1})))
                .is_err()
        );
        let att = json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": "a", "name": "n", "size": 3,
            "isInline": false, "contentBytes": "AQID", "contentType": "x/y", "lastModifiedDateTime": "2020-01-01T00:00:00Z"});
        assert!(
            s.validate_response("POST", "/users/a/messages/m/attachments", 201, Some(&att))
                .is_ok()
        );
        let bad_date = json!({"id": "m", "receivedDateTime": "yesterday"});
        assert!(
            s.validate_response("GET", "/users/a/messages/m", 200, Some(&bad_date))
                .is_err()
        );
        assert!(
            s.validate_response(
                "PATCH",
                "/users/a/messages/m",
                200,
                Some(&json!({"id": "m", "isRead": true}))
            )
            .is_ok()
        );
    }
}
