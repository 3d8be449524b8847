//! Graph sink: writes one mailbox into Exchange Online through Microsoft Graph, app-only.
//!
//! [`GraphApp`] is one app registration: the HTTP client, the token cache and the app-wide
//! governor (cheap to clone). [`GraphApp::mailbox`] hands out a [`GraphMailbox`] per user that
//! shares that user's governor state and folder cache, so many tasks may write one mailbox at once.
//!
//! Files, one job each:
//! - `settings` (what the lead maps a plan onto), `error` (the error type and its classes)
//! - `jwt` (certificate assertions), `auth` (token client and cache)
//! - `retry` (the pure retry policy), `governor` (pacing and adaptive concurrency), `http` (the
//!   request loop that joins them)
//! - `folders` (tree reading, creation, well-known names), `write` (route choice, importMime,
//!   JSON create, the post-create PATCH, lost-response resolution), `mime_to_json` (the JSON
//!   message rebuilt from MIME), `upload` (attachments and upload sessions), `uploads` (their bytes in flight), `lookup` (resume and
//!   verify queries), `resolve` (interrupted writes found by content), `flags` (flag mapping and
//!   the identity stamp), `urls` (escaping).

mod auth;
mod deadline;
pub(crate) mod decode;
mod error;
mod flags;
mod folders;
mod governor;
mod http;
mod jwt;
mod lookup;
mod mime_to_json;
mod received;
mod resolve;
pub mod retry;
mod settings;
pub(crate) mod skeleton;
mod upload;
mod uploads;
mod urls;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::engine::ports::SendGate;
pub use deadline::DeadlineStore;
pub(crate) use deadline::RECHECK;
pub use error::{GraphError, HttpFailure};
pub use flags::{STAMP_GUID, STAMP_PROPERTY};
pub use governor::GovernorSnapshot;
pub use settings::{
    AssertionAlg, Cloud, GovernorSettings, GraphCredential, GraphSettings, ReceivedDate, Route,
};
pub use uploads::UploadProgress;

use crate::engine::ports::{DestItem, OutgoingMessage};
use crate::model::{Flags, SourceIdentity};
use crate::secret::Secret;

use auth::{Credential, TokenClient};
use governor::Governor;
use http::Http;
use jwt::CertificateSigner;
use retry::RetryPolicy;

/// One app registration. Cheap to clone.
#[derive(Clone)]
pub struct GraphApp {
    inner: Arc<AppInner>,
}

struct AppInner {
    settings: GraphSettings,
    http: Http,
    /// Per-user shared state (folder cache).
    mailboxes: Mutex<HashMap<String, Arc<folders::FolderCache>>>,
    /// Set once the tenant refused importMime: the rest of the run goes JSON.
    import_mime_refused: AtomicBool,
    /// Upload sessions in flight, for progress output.
    uploads: uploads::Uploads,
}

/// One mailbox of the app. Clone + Send + Sync; methods take `&self` and may run concurrently.
#[derive(Clone)]
pub struct GraphMailbox {
    app: GraphApp,
    user: String,
    folders: Arc<folders::FolderCache>,
}

impl std::fmt::Debug for GraphMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphMailbox")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GraphApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphApp")
            .field("tenant", &self.inner.settings.tenant)
            .field("client_id", &self.inner.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl GraphApp {
    /// Builds the client, loads the credential (a bad certificate fails here, not mid-run).
    /// Sends nothing: the first token is fetched on first use.
    pub fn new(settings: GraphSettings) -> Result<GraphApp, GraphError> {
        let credential = match &settings.credential {
            GraphCredential::Secret(s) => Credential::Secret(s.clone()),
            GraphCredential::CertificatePem { cert_and_key_pem } => Credential::Certificate(
                CertificateSigner::from_pem_file(cert_and_key_pem, settings.assertion_alg)?,
            ),
            GraphCredential::Pkcs12 { path, .. } => {
                return Err(GraphError::Credential {
                    path: path.clone(),
                    reason: "PKCS#12 bundles are not supported by this build; convert it to one PEM file with \
                             `openssl pkcs12 -in app.pfx -nodes -out app.pem` and use certificate_file"
                        .into(),
                });
            }
        };
        for (what, u) in [
            ("graph_url", settings.graph_base()),
            ("login_url", settings.login_base()),
        ] {
            if url::Url::parse(&u).is_err() {
                return Err(GraphError::Config {
                    reason: format!("{what} `{u}` is not a URL"),
                });
            }
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(30)))
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("mailferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Config {
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        let g = &settings.governor;
        let policy = RetryPolicy {
            max_attempts: g.max_attempts.max(1),
            backoff_min: g.backoff_min,
            backoff_max: g.backoff_max,
            max_retry_after: g.max_retry_after,
            jitter_seed: None,
        };
        let tokens = Arc::new(TokenClient::new(
            client.clone(),
            settings.token_endpoint(),
            settings.client_id.clone(),
            credential,
            policy.clone(),
        ));
        let http = Http {
            client,
            tokens,
            scope: settings.graph_scope(),
            gov: Governor::new(settings.governor.clone()),
            policy,
            deadlines: Default::default(),
            gate: Default::default(),
            base: settings.graph_base(),
        };
        Ok(GraphApp {
            inner: Arc::new(AppInner {
                settings,
                http,
                mailboxes: Mutex::new(HashMap::new()),
                import_mime_refused: AtomicBool::new(false),
                uploads: Default::default(),
            }),
        })
    }

    /// The settings this app was built with.
    pub fn settings(&self) -> &GraphSettings {
        &self.inner.settings
    }

    /// A Graph token (cached, renewed early).
    pub async fn token(&self) -> Result<Secret<String>, GraphError> {
        self.inner.http.tokens.token(&self.inner.http.scope).await
    }

    /// A token for another resource, e.g. `https://outlook.office365.com/.default` for EXO IMAP
    /// XOAUTH2.
    pub async fn token_for_scope(&self, scope: &str) -> Result<Secret<String>, GraphError> {
        self.inner.http.tokens.token(scope).await
    }

    /// Tokens fetched from the endpoint so far (each renewal counts).
    pub fn tokens_fetched(&self) -> u64 {
        self.inner.http.tokens.fetched()
    }

    /// The mailbox `user` (UPN, SMTP address or object id). Every handle for the same user shares
    /// its folder cache and governor state.
    pub fn mailbox(&self, user: &str) -> GraphMailbox {
        let key = user.to_ascii_lowercase();
        let folders = {
            let mut m = self
                .inner
                .mailboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Arc::clone(m.entry(key.clone()).or_default())
        };
        GraphMailbox {
            app: self.clone(),
            user: key,
            folders,
        }
    }

    /// Keeps throttle deadlines in `store` from now on, and before each request applies a
    /// deadline found there that this app has not paused for yet (an earlier run's, or another
    /// process's on the same ledger). The first store installed stays.
    pub fn set_deadline_store(&self, store: std::sync::Arc<dyn DeadlineStore>) {
        self.inner.http.deadlines.set_store(store);
    }

    /// Asks `gate` right before every request whether it may still be sent (fleet mode's
    /// lease check). The first gate installed stays.
    pub fn set_send_gate(&self, gate: std::sync::Arc<dyn SendGate>) {
        let _ = self.inner.http.gate.set(gate);
    }

    /// Governor state of the app and each mailbox, for progress output.
    pub fn governor_snapshot(&self) -> Vec<GovernorSnapshot> {
        self.inner.http.gov.snapshot()
    }

    /// Mailboxes (users) with upload sessions in flight and how far they are, for progress
    /// output while a large message uploads.
    pub fn uploads_in_flight(&self) -> Vec<(String, UploadProgress)> {
        self.inner.uploads.snapshot()
    }

    /// True once the tenant refused importMime in this run.
    pub fn import_mime_refused(&self) -> bool {
        self.inner.import_mime_refused.load(Ordering::Relaxed)
    }

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }
}

impl GraphMailbox {
    /// The user this handle writes to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `/users/{user}` with the user escaped.
    pub(crate) fn user_path(&self) -> String {
        format!("/users/{}", urls::seg(&self.user))
    }

    /// Checks the app may open this mailbox: GETs its inbox. 403 (application access policy,
    /// missing consent) and 404 (no Exchange Online mailbox) come back with clear hints.
    pub async fn check_access(&self) -> Result<(), GraphError> {
        let url = self.app.http().v1(&format!(
            "{}/mailFolders/inbox?$select=id",
            self.user_path()
        ));
        self.app
            .http()
            .send(&self.user, http::Call::get("check mailbox access", url))
            .await
            .map(|_| ())
    }

    /// The folder id for `path` under `root` (a well-known name; `None` = `msgfolderroot`),
    /// creating missing folders top-down. An empty path gives the root's own id.
    pub async fn ensure_folder(
        &self,
        root: Option<&str>,
        path: &[String],
    ) -> Result<String, GraphError> {
        folders::ensure(self, root, path).await
    }

    /// Writes one message into `folder_id` (route chosen per message) and returns the item id.
    pub async fn write(
        &self,
        folder_id: &str,
        msg: &OutgoingMessage<'_>,
    ) -> Result<String, GraphError> {
        write::write(self, folder_id, msg).await
    }

    /// Items in `folder_id` carrying `identity`'s stamp (complete copies only).
    pub async fn find_by_stamp(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
    ) -> Result<Vec<String>, GraphError> {
        lookup::find_by_stamp(self, folder_id, identity).await
    }

    /// Finds the item(s) a possibly interrupted write left: by stamp, else an unstamped item with
    /// the same content, which is then stamped. See the `resolve` module.
    pub async fn resolve(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
        flags: &Flags,
    ) -> Result<Vec<String>, GraphError> {
        resolve::resolve(self, folder_id, identity, message_id, flags).await
    }

    /// Items in `folder_id` with this `internetMessageId` (angle brackets included).
    pub async fn find_by_message_id(
        &self,
        folder_id: &str,
        message_id: &str,
    ) -> Result<Vec<DestItem>, GraphError> {
        lookup::find_by_message_id(self, folder_id, message_id).await
    }

    /// Brings an item's flags in line with `flags` (isRead, flag, categories, answered/forwarded).
    pub async fn set_flags(&self, item_id: &str, flags: &Flags) -> Result<(), GraphError> {
        lookup::set_flags(self, item_id, flags).await
    }

    /// Every item of `folder_id`, paged, with stamp and flags.
    pub async fn list_items(&self, folder_id: &str) -> Result<Vec<DestItem>, GraphError> {
        lookup::list_items(self, folder_id).await
    }

    /// The folder's `totalItemCount`.
    pub async fn folder_count(&self, folder_id: &str) -> Result<u64, GraphError> {
        lookup::folder_count(self, folder_id).await
    }

    /// The item's MIME as Graph serves it (`$value`), for deep verification.
    pub async fn read_mime(&self, item_id: &str) -> Result<bytes::Bytes, GraphError> {
        lookup::mime_of(self, item_id).await
    }

    /// The route [`GraphMailbox::write`] would take for `msg` right now.
    pub fn route_for(&self, msg: &OutgoingMessage<'_>) -> Route {
        write::choose_route(self, msg.body.len(), msg.flags.draft)
    }

    /// Deletes a folder (doctor's scratch folder) and forgets it in the cache.
    /// Items that are this message, stamped or unstamped, without changing any (see `resolve`).
    pub async fn copies(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
    ) -> Result<Vec<String>, GraphError> {
        resolve::copies(self, folder_id, identity, message_id).await
    }

    /// Deletes one item (an orphaned second copy the engine proved redundant).
    pub async fn delete_item(&self, item_id: &str) -> Result<(), GraphError> {
        lookup::delete_message(self, item_id).await
    }

    pub async fn delete_folder(&self, folder_id: &str) -> Result<(), GraphError> {
        folders::delete(self, folder_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The engine spawns these futures on a multi-threaded runtime: they must stay `Send`.
    /// (Compiled, never run: building the futures is the check.)
    #[allow(dead_code)]
    fn public_futures_are_send(
        mb: &GraphMailbox,
        msg: &OutgoingMessage<'_>,
        id: &SourceIdentity,
        flags: &Flags,
    ) {
        assert_send(&mb.app.token());
        assert_send(&mb.check_access());
        assert_send(&mb.ensure_folder(None, &[]));
        assert_send(&mb.write("f", msg));
        assert_send(&mb.find_by_stamp("f", id));
        assert_send(&mb.find_by_message_id("f", "<m@x>"));
        assert_send(&mb.set_flags("i", flags));
        assert_send(&mb.list_items("f"));
        assert_send(&mb.folder_count("f"));
        assert_send(&mb.delete_folder("f"));
        assert_send(&mb.read_mime("i"));
    }

    #[test]
    fn clones_share_state_per_user() {
        let app = GraphApp::new(GraphSettings::new(
            "t",
            "c",
            GraphCredential::Secret("s".into()),
        ))
        .unwrap();
        let a = app.mailbox("A@Example.org");
        let b = app.clone().mailbox("a@example.org");
        assert!(Arc::ptr_eq(&a.folders, &b.folders));
        assert_eq!(a.user(), "a@example.org");
        assert!(format!("{app:?}").contains("tenant"));
    }

    #[test]
    fn pkcs12_is_refused_with_the_conversion_command() {
        let s = GraphSettings::new(
            "t",
            "c",
            GraphCredential::Pkcs12 {
                path: "app.pfx".into(),
                password: Some("pw".into()),
            },
        );
        let e = GraphApp::new(s).unwrap_err();
        assert_eq!(e.class(), crate::engine::ports::FailureClass::Fatal);
        assert!(
            e.to_string().contains("openssl pkcs12") && !e.to_string().contains("pw"),
            "{e}"
        );
    }
}
