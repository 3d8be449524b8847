//! Settings of the Graph sink: who we are (tenant, app, credential), where Graph lives (cloud and
//! host overrides), how messages travel (route, size limits) and how hard we may push (governor).
//!
//! This type is independent of the plan module on purpose: the lead maps a plan destination onto
//! it, tests and the benchmark build it directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The national cloud an app registration lives in. Tokens never cross clouds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// Global Azure (also GCC).
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGovHigh,
    /// US Government L5 (DoD).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// The Entra ID (login) host, with scheme, without a trailing slash.
    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
    /// The Microsoft Graph host, with scheme, without a trailing slash.
    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovHigh => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
    /// importMime (beta) exists in the global cloud only.
    pub fn has_import_mime(self) -> bool {
        self == Cloud::Global
    }
}

/// How a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// beta `importMime`: byte-exact MIME, non-draft. Falls back to [`Route::Json`] per message
    /// when the MIME is too large for one request, and for the rest of the run when the tenant
    /// refuses it.
    #[default]
    ImportMime,
    /// v1.0 JSON create rebuilt from the MIME, attachments added after.
    Json,
}

/// What an importMime copy carries for Exchange to take its received time from. Exchange sets
/// `receivedDateTime` of an imported message from its topmost `Received:` header (the
/// emulator's model of the rule; a message without one gets the import time). The JSON route
/// sets the received time directly and is not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceivedDate {
    /// The source bytes unchanged: Exchange decides (top `Received:` header, else import time).
    #[default]
    AsIs,
    /// One `Received:` line carrying the INTERNALDATE is put in front of the message (about 90
    /// bytes), so Exchange's received time is the source's. Signatures (DKIM, S/MIME) do not
    /// cover a header added on top.
    PrependReceived,
}

/// How a certificate client assertion is signed (docs/graph-facts.md, section 1 and unknown 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlg {
    /// PS256 with the `x5t#S256` header (current Microsoft docs).
    #[default]
    Ps256,
    /// RS256 with the SHA-1 `x5t` header (older docs and most samples).
    Rs256,
}

/// The app registration's credential.
#[derive(Debug, Clone)]
pub enum GraphCredential {
    /// A client secret.
    Secret(Secret<String>),
    /// One PEM file holding the certificate and its RSA private key (PKCS#1 or PKCS#8, unencrypted).
    CertificatePem { cert_and_key_pem: PathBuf },
    /// A PKCS#12 (.pfx) bundle. Not supported in this build: see [`GraphError::Credential`]
    /// (convert it with `openssl pkcs12 -in app.pfx -nodes -out app.pem`).
    ///
    /// [`GraphError::Credential`]: super::GraphError::Credential
    Pkcs12 {
        path: PathBuf,
        password: Option<Secret<String>>,
    },
}

/// Pacing and concurrency limits. Defaults are Microsoft's documented Outlook limits per app and
/// mailbox (docs/graph-facts.md, section 5); the client paces itself a little inside them instead of running into them.
#[derive(Debug, Clone)]
pub struct GovernorSettings {
    /// Requests allowed per mailbox per `request_window` (Microsoft: 10,000 per 10 minutes).
    pub requests_per_window: u32,
    pub request_window: Duration,
    /// Upload bytes (POST/PUT/PATCH bodies) per mailbox per `byte_window` (Microsoft: "150 MB" per
    /// 5 minutes, read as MiB like the 4 MB request limit; lower it if a tenant disagrees).
    pub bytes_per_window: u64,
    pub byte_window: Duration,
    /// Share of each budget that may be spent in one burst; the rest is paced evenly. Burst plus
    /// steady rate never exceed the budget in any window.
    pub burst_fraction: f64,
    /// In-flight requests per mailbox: the starting and highest value of its adaptive limit.
    pub mailbox_max_in_flight: u32,
    /// In-flight requests for the whole app: the starting and highest value of its adaptive limit.
    pub app_max_in_flight: u32,
    /// Lowest value the adaptive limits may fall to.
    pub min_in_flight: u32,
    /// Multiplicative decrease on 429 ApplicationThrottled (0.5 halves the limit).
    pub decrease_factor: f64,
    /// Additive increase: +1 after `increase_after` x limit successful requests.
    pub increase_after: u32,
    /// Attempts per request before a retryable failure is reported (classed Transient).
    pub max_attempts: u32,
    /// Exponential backoff bounds when the server gives no Retry-After.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest Retry-After waited for. A longer one is never shortened (coming back early only
    /// earns a longer penalty): the request fails with [`GraphError::Throttled`](super::GraphError)
    /// and the mailbox stops until a later run.
    pub max_retry_after: Duration,
}

impl Default for GovernorSettings {
    fn default() -> Self {
        GovernorSettings {
            requests_per_window: 10_000,
            request_window: Duration::from_secs(600),
            bytes_per_window: 150 * 1024 * 1024,
            byte_window: Duration::from_secs(300),
            burst_fraction: 0.05,
            mailbox_max_in_flight: 4,
            app_max_in_flight: 64,
            min_in_flight: 1,
            decrease_factor: 0.5,
            increase_after: 20,
            max_attempts: 10,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl GovernorSettings {
    /// The same limits on a clock running `scale` times faster (the emulator's scaled clock):
    /// windows and waits shrink, counts stay.
    pub fn scaled(mut self, scale: f64) -> Self {
        let s = |d: Duration| d.div_f64(scale.max(1e-9));
        self.request_window = s(self.request_window);
        self.byte_window = s(self.byte_window);
        self.backoff_min = s(self.backoff_min);
        self.backoff_max = s(self.backoff_max);
        self.max_retry_after = s(self.max_retry_after);
        self
    }
}

/// Everything a [`GraphApp`](super::GraphApp) needs.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Tenant id (GUID) or verified domain.
    pub tenant: String,
    pub client_id: String,
    pub credential: GraphCredential,
    pub cloud: Cloud,
    pub route: Route,
    /// Overrides the cloud's Graph host (scheme + host[:port], e.g. the emulator).
    pub graph_url: Option<String>,
    /// Overrides the cloud's login host.
    pub login_url: Option<String>,
    pub assertion_alg: AssertionAlg,
    /// Largest plain request body (the base64 MIME for importMime), 4 MiB by default.
    pub max_request_bytes: u64,
    /// Largest message accepted (Exchange's ceiling is 150 MiB).
    pub max_message_bytes: u64,
    pub governor: GovernorSettings,
    /// What importMime copies carry for the received time.
    pub received_date: ReceivedDate,
    /// Timeout of one HTTP request (connect + send + response).
    pub timeout: Duration,
}

impl GraphSettings {
    /// Settings with every default: global cloud, import-mime, 4 MiB requests, 150 MiB messages,
    /// Microsoft's limits, 120 s per request.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: GraphCredential,
    ) -> Self {
        GraphSettings {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            cloud: Cloud::Global,
            route: Route::ImportMime,
            graph_url: None,
            login_url: None,
            assertion_alg: AssertionAlg::Ps256,
            max_request_bytes: 4 * 1024 * 1024,
            max_message_bytes: 150 * 1024 * 1024,
            governor: GovernorSettings::default(),
            received_date: ReceivedDate::AsIs,
            timeout: Duration::from_secs(120),
        }
    }

    /// Graph base (no trailing slash, no version).
    pub fn graph_base(&self) -> String {
        self.graph_url
            .as_deref()
            .unwrap_or(self.cloud.graph_host())
            .trim_end_matches('/')
            .to_owned()
    }

    /// Login base (no trailing slash).
    pub fn login_base(&self) -> String {
        self.login_url
            .as_deref()
            .unwrap_or(self.cloud.login_host())
            .trim_end_matches('/')
            .to_owned()
    }

    /// The token endpoint (also the `aud` of certificate assertions).
    pub fn token_endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.login_base(), self.tenant)
    }

    /// The `.default` scope of Graph in this cloud. With a `graph_url` override the scope still
    /// names the cloud's real Graph resource: the token is for Graph, wherever it is reached.
    pub fn graph_scope(&self) -> String {
        format!("{}/.default", self.cloud.graph_host())
    }

    /// The route to start with: import-mime only where it exists (global cloud, or an explicit
    /// `graph_url` such as the emulator).
    pub fn effective_route(&self) -> Route {
        match self.route {
            Route::ImportMime if self.cloud.has_import_mime() || self.graph_url.is_some() => {
                Route::ImportMime
            }
            _ => Route::Json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_pick_their_hosts() {
        assert_eq!(
            Cloud::UsGovDod.graph_host(),
            "https://dod-graph.microsoft.us"
        );
        assert_eq!(
            Cloud::UsGovDod.login_host(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Cloud::China.graph_host(),
            "https://microsoftgraph.chinacloudapi.cn"
        );
        let mut s = GraphSettings::new(
            "contoso.example",
            "app",
            GraphCredential::Secret("x".into()),
        );
        assert_eq!(
            s.token_endpoint(),
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
        );
        assert_eq!(s.graph_scope(), "https://graph.microsoft.com/.default");
        s.login_url = Some("http://127.0.0.1:8750/".into());
        assert_eq!(
            s.token_endpoint(),
            "http://127.0.0.1:8750/contoso.example/oauth2/v2.0/token"
        );
    }

    #[test]
    fn import_mime_only_where_it_exists() {
        let mut s = GraphSettings::new("t", "a", GraphCredential::Secret("x".into()));
        assert_eq!(s.effective_route(), Route::ImportMime);
        s.cloud = Cloud::China;
        assert_eq!(s.effective_route(), Route::Json);
        s.graph_url = Some("http://127.0.0.1:1".into());
        assert_eq!(s.effective_route(), Route::ImportMime);
    }

    #[test]
    fn scaling_shrinks_windows_not_counts() {
        let g = GovernorSettings::default().scaled(60.0);
        assert_eq!(g.request_window, Duration::from_secs(10));
        assert_eq!(g.requests_per_window, 10_000);
    }
}
