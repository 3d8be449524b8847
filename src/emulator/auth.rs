//! Entra's client-credentials token endpoint and Graph's bearer check.
//!
//! Token endpoint: a client secret (form field or HTTP Basic) or a certificate assertion (a JWT
//! signed PS256 or RS256 with the registered certificate's key, named by `x5t#S256` or `x5t`;
//! `aud`, `iss` = `sub` = client id, `nbf`/`exp` within the allowed skew, `jti` never reused).
//! Failures use Entra's JSON shape and the AADSTS codes of docs/graph-facts.md, section 1. Tokens are opaque random
//! strings with a lifetime under the time scale. Graph: 401 `InvalidAuthenticationToken` for a
//! missing, unknown or expired token; 403 `ErrorAccessDenied` for a mailbox outside the app's
//! access policy; 404 `MailboxNotEnabledForRESTAPI` for an unknown mailbox when mailboxes are
//! not created on first use.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::config::AppConfig;
use super::dispatch::{Call, Reply};
use super::errors::ApiError;
use super::store::Mailbox;
use super::{Emu, lock};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug)]
struct TokenRec {
    client_id: String,
    expires: Instant,
}

/// Issued tokens and used assertion ids.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    tokens: HashMap<String, TokenRec>,
    jtis: HashSet<String>,
}

impl AuthState {
    /// Makes every issued token expired (tests of the refresh path).
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for t in self.tokens.values_mut() {
            t.expires = now;
        }
    }
}

/// An Entra error answer.
fn aad(status: u16, error: &str, code: u32, desc: &str) -> Reply {
    let now = chrono::Utc::now();
    let trace = uuid::Uuid::new_v4();
    let corr = uuid::Uuid::new_v4();
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {desc} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace.to_string(),
            "correlation_id": corr.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(emu: &Emu, base: &str, tenant: &str, call: &Call) -> Reply {
    match issue(emu, base, tenant, call) {
        Ok(r) | Err(r) => r,
    }
}

fn issue(emu: &Emu, base: &str, tenant: &str, call: &Call) -> Result<Reply, Reply> {
    let cfg = &emu.config;
    if call.method != axum::http::Method::POST {
        return Err(aad(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        ));
    }
    if !tenant.eq_ignore_ascii_case(&cfg.tenant) && !tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
        return Err(aad(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(aad(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; this endpoint supports client_credentials.",
        ));
    }
    let basic = basic_credentials(call.authorization.as_deref());
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .ok_or_else(|| {
            aad(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        })?;
    let app = cfg.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(&client_id)).ok_or_else(|| {
        aad(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        )
    })?;
    if app.disabled {
        return Err(aad(
            400,
            "unauthorized_client",
            7000112,
            &format!("Application '{client_id}' is disabled."),
        ));
    }
    let scope = form.get("scope").map(|s| s.trim()).unwrap_or("");
    if scope.is_empty() {
        return Err(aad(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() > 1 {
        return Err(aad(
            400,
            "invalid_scope",
            700022,
            "The provided value for the input parameter scope is not valid because it contains more than one resource.",
        ));
    }
    if !scope.ends_with("/.default") {
        return Err(aad(
            400,
            "invalid_scope",
            70011,
            &format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid: client credentials need RESOURCE/.default."
            ),
        ));
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(aad(
                400,
                "invalid_request",
                50027,
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        check_assertion(emu, app, base, tenant, assertion)?;
    } else {
        let secret = form.get("client_secret").cloned().or_else(|| basic.map(|b| b.1)).ok_or_else(|| {
            aad(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
        })?;
        match &app.client_secret {
            Some(s) if s.expose() == &secret => {
                if app.secret_expired {
                    return Err(aad(
                        401,
                        "invalid_client",
                        7000222,
                        &format!(
                            "The provided client secret keys for app '{client_id}' are expired."
                        ),
                    ));
                }
            }
            _ => {
                return Err(aad(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
        }
    }
    let token = format!(
        "emu.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let life = cfg.token_lifetime_secs;
    lock(&emu.auth).tokens.insert(
        token.clone(),
        TokenRec {
            client_id: app.client_id.clone(),
            expires: Instant::now() + cfg.scaled(life as f64),
        },
    );
    Ok(Reply::json(
        200,
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token}),
    ))
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 2.3.1).
fn basic_credentials(h: Option<&str>) -> Option<(String, String)> {
    let b64 = h?
        .strip_prefix("Basic ")
        .or_else(|| h?.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<serde_json::Value>,
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

fn check_assertion(
    emu: &Emu,
    app: &AppConfig,
    base: &str,
    tenant: &str,
    jwt: &str,
) -> Result<(), Reply> {
    let bad = |code: u32, msg: &str| aad(401, "invalid_client", code, msg);
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| {
        bad(
            50012,
            &format!("The client assertion is not a valid JWT: {e}."),
        )
    })?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(bad(
            50012,
            &format!(
                "Unsupported client assertion algorithm {:?}; use PS256 or RS256.",
                header.alg
            ),
        ));
    }
    let prints = app.thumbprints();
    let der = match (&header.x5t_s256, &header.x5t) {
        (Some(t), _) => prints.iter().find(|p| &p.0 == t).map(|p| p.2),
        (None, Some(t)) => prints.iter().find(|p| &p.1 == t).map(|p| p.2),
        (None, None) => return Err(bad(50012, "The client assertion header has neither x5t#S256 nor x5t.")),
    }
    .ok_or_else(|| {
        bad(700027, &format!("The certificate with the identifier used to sign the client assertion is not registered on application '{}'.", app.client_id))
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| bad(50012, "The registered certificate cannot be parsed."))?;
    let key = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &v)
        .map_err(|e| {
            bad(
                50013,
                &format!("Assertion failed signature validation: {e}."),
            )
        })?
        .claims;
    let expected: Vec<String> = [base, "https://login.microsoftonline.com"]
        .iter()
        .map(|h| format!("{h}/{tenant}/oauth2/v2.0/token"))
        .collect();
    let aud_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => expected.contains(a),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| expected.iter().any(|e| e == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(bad(
            50012,
            &format!(
                "The audience claim of the client assertion must be the token endpoint {}.",
                expected[0]
            ),
        ));
    }
    if claims.iss.as_deref() != Some(app.client_id.as_str())
        || claims.sub.as_deref() != Some(app.client_id.as_str())
    {
        return Err(bad(
            50012,
            "The client assertion's iss and sub must both be the client id.",
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let skew = emu.config.assertion_skew_secs as i64;
    let exp = claims
        .exp
        .ok_or_else(|| bad(50012, "The client assertion has no exp claim."))?;
    if exp + skew < now || claims.nbf.is_some_and(|nbf| nbf - skew > now) {
        return Err(bad(
            500133,
            "The client assertion is not within its valid time range (check the clock).",
        ));
    }
    let jti = claims
        .jti
        .ok_or_else(|| bad(50012, "The client assertion has no jti claim."))?;
    if !lock(&emu.auth).jtis.insert(jti) {
        return Err(bad(
            50013,
            "The client assertion's jti was already used (replay).",
        ));
    }
    Ok(())
}

/// Checks `Authorization: Bearer ...` and returns the app the token was issued to.
pub(crate) fn authenticate(emu: &Emu, header: Option<&str>) -> Result<AppConfig, ApiError> {
    let unauth = |m: &str| ApiError::new(401, "InvalidAuthenticationToken", m);
    let h = header.ok_or_else(|| unauth("Access token is empty."))?;
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .ok_or_else(|| unauth("Access token validation failure: not a bearer token."))?
        .trim();
    let st = lock(&emu.auth);
    let rec = st
        .tokens
        .get(token)
        .ok_or_else(|| unauth("Access token validation failure. Invalid audience or signature."))?;
    if Instant::now() >= rec.expires {
        return Err(unauth("Lifetime validation failed, the token is expired."));
    }
    emu.config
        .apps
        .iter()
        .find(|a| a.client_id == rec.client_id)
        .cloned()
        .ok_or_else(|| unauth("The application of this token no longer exists."))
}

/// The store key of `user` (address or id) after the app's access policy; creates the mailbox
/// on first use when configured and `user` is an address.
pub(crate) fn resolve_mailbox(emu: &Emu, app: &AppConfig, user: &str) -> Result<String, ApiError> {
    let mut store = lock(&emu.store);
    let key = store.key_of(user);
    if let Some(allowed) = &app.allowed_mailboxes {
        let permitted = allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(user) || (key.is_some() && store.key_of(a) == key));
        if !permitted {
            return Err(ApiError::new(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: the application access policy does not include this mailbox.",
            ));
        }
    }
    if let Some(k) = key {
        return Ok(k);
    }
    if emu.config.create_mailboxes_on_first_use && user.contains('@') {
        let k = user.to_ascii_lowercase();
        store.mailboxes.insert(
            k.clone(),
            Mailbox::new(user, emu.config.limits.mailbox_quota_bytes),
        );
        return Ok(k);
    }
    Err(ApiError::new(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Ac")
        );
        assert_eq!(
            basic_credentials(Some(&h)),
            Some(("my app".into(), "s:c".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
    }
}
