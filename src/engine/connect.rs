//! From the plan to live connections: maps plan settings onto each source's and sink's own
//! settings, shares one Graph app client per destination across mailboxes, and keeps the number
//! of connections to one source host under the plan's limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::adapters::{AnySink, AnySource, GraphMailboxSink, ImapDestSink};
use super::ports::StepError;
use crate::engine::ports::FailureClass;
use crate::plan::{self, Destination, Mailbox, MailboxSource, Plan, SourceKind, SourceLogin};
use crate::sink::graph::{self as graph, GraphApp};
use crate::sink::imap::ImapSink;
use crate::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security, UserRoot};
use crate::source::maildir::MaildirSource;
use crate::translate::{FolderMapper, KeywordMap, TargetKind};

/// Builds sources and sinks for a plan's mailboxes.
pub struct Connector<'p> {
    plan: &'p Plan,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    apps: Mutex<HashMap<String, GraphApp>>,
    /// Where Graph apps keep throttle deadlines between runs (none: this process only).
    deadlines: Option<Arc<crate::ledger::Ledger>>,
    /// Asked before every Graph request and IMAP APPEND (fleet mode: the mailbox's lease still
    /// held).
    gate: Option<Arc<dyn super::ports::SendGate>>,
}

impl<'p> Connector<'p> {
    pub fn new(plan: &'p Plan) -> Connector<'p> {
        Connector {
            plan,
            hosts: Mutex::default(),
            apps: Mutex::default(),
            deadlines: None,
            gate: None,
        }
    }

    /// Graph apps built from now on keep their mailboxes' throttle deadlines in `ledger`, and
    /// honour the ones an earlier run recorded.
    pub fn with_deadlines(mut self, ledger: Arc<crate::ledger::Ledger>) -> Self {
        self.deadlines = Some(ledger);
        self
    }

    /// Graph apps and IMAP destinations built from now on ask `gate` before every write.
    pub fn with_send_gate(mut self, gate: Arc<dyn super::ports::SendGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Waits for a connection slot on the mailbox's source host (none needed for Maildir).
    pub async fn host_permit(&self, mb: &Mailbox) -> Option<OwnedSemaphorePermit> {
        let ep = self.plan.source.endpoint.as_ref()?;
        if !matches!(mb.source, MailboxSource::Imap { .. }) {
            return None;
        }
        let sem = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            let limit = self.plan.source.max_connections_per_host.max(1);
            Arc::clone(
                hosts
                    .entry(ep.host.to_ascii_lowercase())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit))),
            )
        };
        sem.acquire_owned().await.ok()
    }

    /// Opens the mailbox's source.
    pub async fn source(&self, mb: &Mailbox) -> Result<AnySource, StepError> {
        match &mb.source {
            MailboxSource::Maildir { path } => MaildirSource::open(path)
                .map(AnySource::Maildir)
                .map_err(|e| StepError::caused_by(FailureClass::Mailbox, e)),
            MailboxSource::Imap { login, user_root } => {
                if self.plan.source.kind != SourceKind::Imap {
                    return Err(StepError::new(
                        FailureClass::Fatal,
                        "the plan's source is not IMAP",
                    ));
                }
                let ep = self.plan.source.endpoint.as_ref().ok_or_else(|| {
                    StepError::new(FailureClass::Fatal, "the plan has no [source] host")
                })?;
                let endpoint = imap_endpoint(ep, self.plan.source.timeout_secs);
                let auth = imap_auth(login, self.plan.source.auth);
                let mut src = ImapSource::connect(endpoint, auth)
                    .await
                    .map_err(|e| StepError::caused_by(FailureClass::Mailbox, e))?;
                if let Some(root) = user_root.as_deref().and_then(UserRoot::parse) {
                    src.set_user_root(root);
                }
                Ok(AnySource::Imap(Box::new(src)))
            }
        }
    }

    /// Opens the mailbox's destination.
    pub async fn sink(&self, mb: &Mailbox) -> Result<AnySink, StepError> {
        let dest = self.plan.destination(&mb.destination).ok_or_else(|| {
            StepError::new(
                FailureClass::Fatal,
                format!("unknown destination {:?}", mb.destination),
            )
        })?;
        match dest {
            Destination::Graph(g) => {
                let app = self.graph_app(g)?;
                let mailbox = app.mailbox(&mb.destination_user);
                mailbox
                    .check_access()
                    .await
                    .map_err(|e| StepError::caused_by(e.class(), e))?;
                Ok(AnySink::Graph(
                    GraphMailboxSink::new(mailbox, g)
                        .with_keywords(KeywordMap::new(self.plan.keywords.clone())),
                ))
            }
            Destination::Imap(d) => {
                let auth = match &d.oauth_app {
                    Some(app) => self.app_only_imap_auth(app, d, mb).await?,
                    None => imap_auth(&self.imap_dest_login(d, mb)?, d.auth),
                };
                let sink = ImapSink::connect(
                    imap_endpoint(&d.endpoint, self.plan.source.timeout_secs),
                    auth,
                    d.connections.max(1),
                )
                .await
                .map_err(|e| StepError::caused_by(FailureClass::Mailbox, e))?;
                let sink = match &self.gate {
                    Some(gate) => sink.with_send_gate(Arc::clone(gate), &mb.destination_user),
                    None => sink,
                };
                Ok(AnySink::Imap(Box::new(ImapDestSink::new(
                    sink,
                    self.plan.limits.max_message_bytes,
                    d.connections.max(1),
                ))))
            }
        }
    }

    /// Every Graph app client opened so far (for the throttling display).
    pub fn graph_apps(&self) -> Vec<GraphApp> {
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How a mailbox logs in at an IMAP destination: the plan resolved it per row (its
    /// DestinationUser/Password, or the destination's master user acting for it).
    fn imap_dest_login(
        &self,
        d: &plan::ImapDestination,
        mb: &Mailbox,
    ) -> Result<SourceLogin, StepError> {
        mb.destination_login.clone().ok_or_else(|| {
            StepError::new(
                FailureClass::Mailbox,
                format!(
                    "no login for {} at IMAP destination {:?}: set DestinationUser/DestinationPassword or a master user",
                    mb.destination_user, d.name
                ),
            )
        })
    }

    /// App-only XOAUTH2 (Exchange Online's IMAP endpoint): a token from the named Graph
    /// destination's app registration, for the IMAP host's resource
    /// (`https://outlook.office365.com/.default`), used as the mailbox's bearer.
    async fn app_only_imap_auth(
        &self,
        app: &str,
        d: &plan::ImapDestination,
        mb: &Mailbox,
    ) -> Result<ImapAuth, StepError> {
        let Some(Destination::Graph(g)) = self.plan.destination(app) else {
            return Err(StepError::new(
                FailureClass::Fatal,
                format!("oauth_app {app:?} is not a Graph destination"),
            ));
        };
        let scope = imap_oauth_scope(&d.endpoint.host);
        let token = self
            .graph_app(g)?
            .token_for_scope(&scope)
            .await
            .map_err(|e| StepError::new(e.class(), format!("token for {scope}: {e}")))?;
        Ok(ImapAuth::XOAuth2 {
            user: mb.destination_user.clone(),
            token,
        })
    }

    /// The folder mapper for a mailbox's destination.
    pub fn mapper(&self, sink: &AnySink) -> FolderMapper {
        let kind = match sink {
            AnySink::Graph(_) => TargetKind::Graph,
            AnySink::Imap(s) => TargetKind::Imap {
                delimiter: s.delimiter(),
            },
        };
        FolderMapper::new(&self.plan.folders, kind)
    }

    /// Source, sink and mapper for one mailbox.
    pub async fn open(
        &self,
        mb: &Mailbox,
    ) -> Result<(AnySource, AnySink, FolderMapper), StepError> {
        let sink = self.sink(mb).await?;
        let src = self.source(mb).await?;
        let mapper = self.mapper(&sink);
        Ok((src, sink, mapper))
    }

    /// One Graph app client per destination, shared by all its mailboxes (token cache, app-wide
    /// concurrency limit).
    pub fn graph_app(&self, g: &plan::GraphDestination) -> Result<GraphApp, StepError> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(app) = apps.get(&g.name) {
            return Ok(app.clone());
        }
        let app = GraphApp::new(graph_settings(g, self.plan.limits.max_message_bytes))
            .map_err(|e| StepError::caused_by(FailureClass::Fatal, e))?;
        if let Some(ledger) = &self.deadlines {
            app.set_deadline_store(Arc::new(super::deadlines::LedgerDeadlines {
                ledger: Arc::clone(ledger),
                destination: g.name.clone(),
            }));
        }
        if let Some(gate) = &self.gate {
            app.set_send_gate(Arc::clone(gate));
        }
        apps.insert(g.name.clone(), app.clone());
        Ok(app)
    }
}

/// The OAuth resource scope of an IMAP host: `https://outlook.office365.com/.default` for
/// Exchange Online (and likewise for the national clouds' Outlook hosts).
pub fn imap_oauth_scope(host: &str) -> String {
    format!(
        "https://{}/.default",
        host.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// Plan endpoint -> IMAP endpoint.
pub fn imap_endpoint(ep: &plan::Endpoint, timeout_secs: u64) -> ImapEndpoint {
    ImapEndpoint {
        host: ep.host.clone(),
        port: ep.port,
        security: match ep.security {
            plan::Security::Tls => Security::Tls,
            plan::Security::StartTls => Security::StartTls,
            plan::Security::Plain => Security::Plain,
        },
        ca_file: ep.ca_file.clone(),
        insecure: ep.insecure,
        timeout: Duration::from_secs(timeout_secs.max(1)),
    }
}

/// Plan login -> IMAP authentication.
pub fn imap_auth(login: &SourceLogin, method: plan::AuthMethod) -> ImapAuth {
    match login {
        SourceLogin::Login { user, password } => match method {
            plan::AuthMethod::Plain => ImapAuth::Plain {
                authzid: None,
                authcid: user.clone(),
                password: password.clone(),
            },
            plan::AuthMethod::XOAuth2 => ImapAuth::XOAuth2 {
                user: user.clone(),
                token: password.clone(),
            },
            plan::AuthMethod::Login => ImapAuth::Login {
                user: user.clone(),
                password: password.clone(),
            },
        },
        SourceLogin::Proxy {
            authzid,
            authcid,
            password,
        } => ImapAuth::Plain {
            authzid: Some(authzid.clone()),
            authcid: authcid.clone(),
            password: password.clone(),
        },
        SourceLogin::XOAuth2 { user, token } => ImapAuth::XOAuth2 {
            user: user.clone(),
            token: token.clone(),
        },
    }
}

/// Environment variable for rehearsals against an emulator whose clock runs faster
/// (`time_scale` in its config): the governor's windows shrink by the same factor, so the client
/// paces itself inside the emulator's scaled limits instead of running into them. Unset (the
/// normal case) means real time. The benchmarks set it; nothing else should.
pub const REHEARSAL_TIME_SCALE_ENV: &str = "MAILFERRY_REHEARSAL_TIME_SCALE";

/// The rehearsal time scale, when set to a positive number other than 1.
fn rehearsal_time_scale() -> Option<f64> {
    let v = std::env::var(REHEARSAL_TIME_SCALE_ENV).ok()?;
    let scale: f64 = v.trim().parse().ok()?;
    if scale.is_finite() && scale > 0.0 && scale != 1.0 {
        tracing::warn!(
            "{REHEARSAL_TIME_SCALE_ENV}={scale}: Graph pacing windows are {scale}x shorter (emulator rehearsal only)"
        );
        Some(scale)
    } else {
        None
    }
}

/// Plan Graph destination -> Graph sink settings.
pub fn graph_settings(g: &plan::GraphDestination, max_message_bytes: u64) -> graph::GraphSettings {
    let credential = match &g.credential {
        plan::GraphCredential::Secret(s) => graph::GraphCredential::Secret(s.clone()),
        plan::GraphCredential::Certificate { path, password } => {
            let is_p12 = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"));
            if is_p12 {
                graph::GraphCredential::Pkcs12 {
                    path: path.clone(),
                    password: password.clone(),
                }
            } else {
                graph::GraphCredential::CertificatePem {
                    cert_and_key_pem: path.clone(),
                }
            }
        }
    };
    let governor = graph::GovernorSettings {
        requests_per_window: g.requests_per_10min,
        bytes_per_window: g.bytes_per_5min,
        mailbox_max_in_flight: g.concurrency_per_mailbox,
        app_max_in_flight: g.concurrency_per_app,
        max_retry_after: Duration::from_secs(g.max_throttle_wait_secs),
        ..Default::default()
    };
    let governor = match rehearsal_time_scale() {
        Some(scale) => governor.scaled(scale),
        None => governor,
    };
    graph::GraphSettings {
        tenant: g.tenant.clone(),
        client_id: g.client_id.clone(),
        credential,
        cloud: g.cloud,
        route: g.route,
        graph_url: g.graph_url.clone(),
        login_url: g.login_url.clone(),
        assertion_alg: g.assertion_alg,
        max_request_bytes: g.max_request_bytes,
        max_message_bytes,
        governor,
        received_date: g.received_date,
        timeout: Duration::from_secs(300),
    }
}
