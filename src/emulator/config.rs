//! Emulator configuration: apps, mailboxes, limits, latency, faults and the time scale.
//!
//! Read from the TOML file given to `mailferry emulator --config`, or built in code by tests.
//! `EmulatorConfig::default()` is the documented default (docs/emulator.md):
//! tenant `contoso.example`, one app `mailferry-demo` / `demo-secret` with both mail permissions,
//! mailboxes created on first use, Microsoft's documented limits and a time scale of 1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::blobs::BodiesMode;
use super::errors::EmulatorError;
use super::faults::FaultRule;
use crate::secret::Secret;

/// Permission names as Entra spells them.
pub const MAIL_READWRITE: &str = "Mail.ReadWrite";
/// Needed for importMime.
pub const MAIL_ADVANCED_READWRITE: &str = "Mail-Advanced.ReadWrite.All";

/// Everything the emulator needs to know before it starts.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Tenant domain accepted in the token URL.
    pub tenant: String,
    /// Tenant GUID, also accepted in the token URL.
    pub tenant_id: String,
    /// Registered applications.
    pub apps: Vec<AppConfig>,
    /// Mailboxes that exist from the start.
    pub mailboxes: Vec<MailboxConfig>,
    /// When false, an unknown mailbox answers 404 `MailboxNotEnabledForRESTAPI`.
    pub create_mailboxes_on_first_use: bool,
    /// `expires_in` of issued tokens, in (unscaled) seconds.
    pub token_lifetime_secs: u64,
    /// Allowed clock skew for certificate assertions' `nbf`/`exp`.
    pub assertion_skew_secs: u64,
    /// HTTP status of `ErrorFolderExists` (real reports say 400 or 409).
    pub folder_exists_status: u16,
    /// Default page size of folder and message lists.
    pub page_size: usize,
    /// How importMime sets `receivedDateTime` (unknown on the real service).
    pub import_mime_received: ImportMimeReceived,
    /// Throttling and size limits.
    pub limits: Limits,
    /// Service latency added to every Graph request.
    pub latency: Latency,
    /// Injected faults.
    pub faults: Vec<FaultRule>,
    /// Service seconds per real second: 60 makes a 10-minute window pass in 10 seconds.
    pub time_scale: f64,
    /// How many requests the Inspector's request log keeps (oldest dropped first).
    pub request_log_limit: usize,
    /// Where item bodies live; `None` is memory in-process and disk for `mailferry emulator`.
    pub bodies: Option<BodiesMode>,
}

/// How importMime chooses `receivedDateTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMimeReceived {
    /// The date of the topmost `Received:` header, else `Date:`, else the import time.
    #[default]
    ReceivedHeader,
    /// The `Date:` header, else the import time.
    DateHeader,
    /// Always the import time.
    ImportTime,
}

/// One registered application.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret, if the app has one.
    pub client_secret: Option<Secret<String>>,
    /// DER of each registered certificate.
    pub certificates: Vec<Vec<u8>>,
    /// Granted application permissions.
    pub permissions: Vec<String>,
    /// Application access policy: when set, only these mailboxes (addresses or ids) are reachable.
    pub allowed_mailboxes: Option<Vec<String>>,
    /// A disabled app gets AADSTS7000112.
    pub disabled: bool,
    /// An expired secret gets AADSTS7000222.
    pub secret_expired: bool,
}

impl AppConfig {
    /// An app with a client secret and both mail permissions.
    pub fn with_secret(client_id: &str, secret: &str) -> Self {
        AppConfig {
            client_id: client_id.to_owned(),
            client_secret: Some(Secret::from(secret)),
            certificates: Vec::new(),
            permissions: vec![
                MAIL_READWRITE.to_owned(),
                MAIL_ADVANCED_READWRITE.to_owned(),
            ],
            allowed_mailboxes: None,
            disabled: false,
            secret_expired: false,
        }
    }

    /// Registers a certificate given as PEM text (the public certificate only).
    pub fn add_certificate_pem(&mut self, pem: &str) -> Result<(), EmulatorError> {
        let ders = certificates_from_pem(pem)?;
        if ders.is_empty() {
            return Err(EmulatorError::Config(
                "no CERTIFICATE block in the PEM text".into(),
            ));
        }
        self.certificates.extend(ders);
        Ok(())
    }

    pub(crate) fn has_permission(&self, name: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
    }

    /// base64url SHA-256 and SHA-1 thumbprints of each certificate, with its DER.
    pub(crate) fn thumbprints(&self) -> Vec<(String, String, &[u8])> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        self.certificates
            .iter()
            .map(|der| {
                (
                    b64.encode(Sha256::digest(der)),
                    b64.encode(Sha1::digest(der)),
                    der.as_slice(),
                )
            })
            .collect()
    }
}

/// A mailbox that exists from the start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Primary SMTP address (the UPN).
    pub address: String,
    /// Quota in bytes; over it writes answer 507.
    pub quota_bytes: Option<u64>,
}

/// Which requests share the 4-concurrent-requests limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyScope {
    /// Per app and mailbox (Outlook's service-limits page).
    #[default]
    AppMailbox,
    /// Per app, across all mailboxes.
    App,
}

/// Throttling and size limits; defaults are Microsoft's documented numbers.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests per app and mailbox per window.
    pub requests_per_window: u64,
    /// Request window in service seconds.
    pub request_window_secs: f64,
    /// Request-body bytes (POST/PUT/PATCH) per app and mailbox per upload window.
    pub upload_bytes_per_window: u64,
    /// Upload window in service seconds.
    pub upload_window_secs: f64,
    /// Concurrent requests per scope.
    pub concurrent_requests: usize,
    /// Scope of the concurrency limit.
    pub concurrency_scope: ConcurrencyScope,
    /// Retry-After (service seconds) given when over the concurrency limit.
    pub concurrency_retry_after_secs: f64,
    /// A client that comes back before Retry-After waits this many times the original delay.
    pub early_retry_penalty: f64,
    /// Largest request body, bytes; over it 413.
    pub request_body_bytes: usize,
    /// Largest item (message with its attachments), bytes; over it 413.
    pub max_message_bytes: u64,
    /// Default mailbox quota, bytes; over it 507.
    pub mailbox_quota_bytes: u64,
    /// Lifetime of an attachment upload session, service seconds.
    pub upload_session_secs: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_window: 10_000,
            request_window_secs: 600.0,
            upload_bytes_per_window: 150 * 1024 * 1024,
            upload_window_secs: 300.0,
            concurrent_requests: 4,
            concurrency_scope: ConcurrencyScope::AppMailbox,
            concurrency_retry_after_secs: 1.0,
            early_retry_penalty: 2.0,
            request_body_bytes: 4 * 1024 * 1024,
            max_message_bytes: 150 * 1024 * 1024,
            mailbox_quota_bytes: 100 * 1024 * 1024 * 1024,
            upload_session_secs: 900.0,
        }
    }
}

/// Service latency: `fixed_ms` plus a uniform random `0..=jitter_ms`, divided by the time scale.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    /// Fixed part, service milliseconds.
    pub fixed_ms: u64,
    /// Random part, service milliseconds.
    pub jitter_ms: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            tenant: "contoso.example".into(),
            tenant_id: "4f1b6c2e-8a53-4d8e-9b7a-0c5d2e1f3a7b".into(),
            apps: vec![AppConfig::with_secret("mailferry-demo", "demo-secret")],
            mailboxes: Vec::new(),
            create_mailboxes_on_first_use: true,
            token_lifetime_secs: 3599,
            assertion_skew_secs: 300,
            folder_exists_status: 409,
            page_size: 10,
            import_mime_received: ImportMimeReceived::default(),
            limits: Limits::default(),
            latency: Latency::default(),
            faults: Vec::new(),
            time_scale: 1.0,
            request_log_limit: 20_000,
            bodies: None,
        }
    }
}

impl EmulatorConfig {
    /// Parses the TOML format documented in docs/emulator.md. Relative certificate paths are
    /// resolved against the current directory.
    pub fn from_toml_str(s: &str) -> Result<Self, EmulatorError> {
        Self::parse(s, None)
    }

    /// Reads and parses a TOML file; certificate paths are relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Io {
            context: format!("reading emulator config {}", path.display()),
            source,
        })?;
        Self::parse(&text, path.parent()).map_err(|e| match e {
            EmulatorError::Config(m) => EmulatorError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn parse(s: &str, base: Option<&Path>) -> Result<Self, EmulatorError> {
        let raw: RawConfig = toml::from_str(s).map_err(|e| EmulatorError::Config(e.to_string()))?;
        let d = EmulatorConfig::default();
        let mut apps = Vec::new();
        for a in raw.apps.unwrap_or_default() {
            let mut app = AppConfig {
                client_id: a.client_id,
                client_secret: a.client_secret.map(Secret::new),
                certificates: Vec::new(),
                permissions: a.permissions.unwrap_or_else(|| {
                    vec![
                        MAIL_READWRITE.to_owned(),
                        MAIL_ADVANCED_READWRITE.to_owned(),
                    ]
                }),
                allowed_mailboxes: a.allowed_mailboxes,
                disabled: a.disabled,
                secret_expired: a.secret_expired,
            };
            if let Some(pem) = a.certificate_pem {
                app.add_certificate_pem(&pem)?;
            }
            if let Some(file) = a.certificate_file {
                let path = match base {
                    Some(b) if file.is_relative() => b.join(&file),
                    _ => file,
                };
                let pem = std::fs::read_to_string(&path).map_err(|source| EmulatorError::Io {
                    context: format!("reading certificate {}", path.display()),
                    source,
                })?;
                app.add_certificate_pem(&pem)?;
            }
            if app.client_secret.is_none() && app.certificates.is_empty() {
                return Err(EmulatorError::Config(format!(
                    "app {} has neither client_secret nor a certificate",
                    app.client_id
                )));
            }
            apps.push(app);
        }
        if apps.is_empty() {
            apps = d.apps.clone();
        }
        let cfg = EmulatorConfig {
            tenant: raw.tenant.unwrap_or(d.tenant),
            tenant_id: raw.tenant_id.unwrap_or(d.tenant_id),
            apps,
            mailboxes: raw.mailboxes.unwrap_or_default(),
            create_mailboxes_on_first_use: raw
                .create_mailboxes_on_first_use
                .unwrap_or(d.create_mailboxes_on_first_use),
            token_lifetime_secs: raw.token_lifetime_secs.unwrap_or(d.token_lifetime_secs),
            assertion_skew_secs: raw.assertion_skew_secs.unwrap_or(d.assertion_skew_secs),
            folder_exists_status: raw.folder_exists_status.unwrap_or(d.folder_exists_status),
            page_size: raw.page_size.unwrap_or(d.page_size),
            import_mime_received: raw.import_mime_received.unwrap_or_default(),
            limits: raw.limits.unwrap_or_default(),
            latency: raw.latency.unwrap_or_default(),
            faults: raw.faults.unwrap_or_default(),
            time_scale: raw.time_scale.unwrap_or(d.time_scale),
            request_log_limit: raw.request_log_limit.unwrap_or(d.request_log_limit),
            bodies: raw.bodies,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values the emulator cannot run with.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |m: &str| Err(EmulatorError::Config(m.to_owned()));
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad("time_scale must be a positive number");
        }
        if !matches!(self.folder_exists_status, 400 | 409) {
            return bad("folder_exists_status must be 400 or 409");
        }
        if self.page_size == 0 || self.page_size > 1000 {
            return bad("page_size must be 1..=1000");
        }
        if self.limits.concurrent_requests == 0 {
            return bad("limits.concurrent_requests must be at least 1");
        }
        if !(self.limits.request_window_secs > 0.0 && self.limits.upload_window_secs > 0.0) {
            return bad("limits windows must be positive");
        }
        for f in &self.faults {
            f.validate()?;
        }
        Ok(())
    }

    /// A service duration (seconds) as real time under the time scale.
    pub(crate) fn scaled(&self, service_secs: f64) -> Duration {
        Duration::from_secs_f64((service_secs / self.time_scale).max(0.0))
    }
}

/// Extracts the DER of every CERTIFICATE block.
fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, EmulatorError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| {
            c.map(|der| der.as_ref().to_vec())
                .map_err(|e| EmulatorError::Config(format!("bad certificate PEM: {e}")))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tenant: Option<String>,
    tenant_id: Option<String>,
    create_mailboxes_on_first_use: Option<bool>,
    token_lifetime_secs: Option<u64>,
    assertion_skew_secs: Option<u64>,
    folder_exists_status: Option<u16>,
    page_size: Option<usize>,
    import_mime_received: Option<ImportMimeReceived>,
    time_scale: Option<f64>,
    request_log_limit: Option<usize>,
    bodies: Option<BodiesMode>,
    apps: Option<Vec<RawApp>>,
    mailboxes: Option<Vec<MailboxConfig>>,
    limits: Option<Limits>,
    latency: Option<Latency>,
    faults: Option<Vec<FaultRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: String,
    client_secret: Option<String>,
    certificate_pem: Option<String>,
    certificate_file: Option<PathBuf>,
    permissions: Option<Vec<String>>,
    allowed_mailboxes: Option<Vec<String>>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    secret_expired: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_documented_default() {
        let c = EmulatorConfig::from_toml_str("").unwrap();
        assert_eq!(c.tenant, "contoso.example");
        assert_eq!(c.apps[0].client_id, "mailferry-demo");
        assert_eq!(
            c.apps[0].client_secret.as_ref().unwrap().expose(),
            "demo-secret"
        );
        assert!(c.apps[0].has_permission(MAIL_ADVANCED_READWRITE));
        assert!(c.create_mailboxes_on_first_use);
        assert_eq!(c.limits.requests_per_window, 10_000);
        assert_eq!(c.limits.concurrent_requests, 4);
        assert_eq!(c.folder_exists_status, 409);
    }

    #[test]
    fn full_toml_parses_and_bad_values_are_refused() {
        let c = EmulatorConfig::from_toml_str(
            r#"
            tenant = "fabrikam.example"
            create_mailboxes_on_first_use = false
            time_scale = 60.0
            folder_exists_status = 400
            [[apps]]
            client_id = "a1"
            client_secret = "s1"
            permissions = ["Mail.ReadWrite"]
            allowed_mailboxes = ["x@fabrikam.example"]
            [[mailboxes]]
            address = "x@fabrikam.example"
            quota_bytes = 1000
            [limits]
            requests_per_window = 5
            concurrency_scope = "app"
            [latency]
            fixed_ms = 20
            [[faults]]
            method = "POST"
            path_contains = "/messages"
            kind = "lost-response"
            count = 1
            "#,
        )
        .unwrap();
        assert_eq!(c.tenant, "fabrikam.example");
        assert_eq!(c.limits.requests_per_window, 5);
        assert_eq!(c.limits.concurrency_scope, ConcurrencyScope::App);
        assert_eq!(c.faults.len(), 1);
        assert!(!c.apps[0].has_permission(MAIL_ADVANCED_READWRITE));
        assert!(EmulatorConfig::from_toml_str("time_scale = 0.0").is_err());
        assert!(EmulatorConfig::from_toml_str("folder_exists_status = 500").is_err());
        assert!(EmulatorConfig::from_toml_str("bogus = 1").is_err());
        assert!(EmulatorConfig::from_toml_str("[[apps]]\nclient_id = \"x\"").is_err());
    }
}
