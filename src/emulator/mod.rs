//! The Graph emulator: a local stand-in for the Microsoft Graph mail endpoints and the Entra
//! token endpoint, with Microsoft's documented throttling and injectable faults.
//!
//! It is a product feature (`mailferry emulator` for rehearsals, the embedded target of `demo`)
//! and the Graph side of every test. It follows docs/graph-facts.md, including the ugly
//! parts: MIME create makes drafts, throttling answers 429 with Retry-After, and a response can be
//! lost after the item was stored. Everything lives in memory, except item bodies when the
//! `bodies` setting sends them to a spill file or keeps only their digests (`blobs`).
//!
//! Layout: [`config`] (TOML settings), `conn` (connections that faults can kill), `dispatch`
//! (one entry for HTTP and `$batch` items: faults, auth, throttling, routing), `auth` (token
//! endpoint, bearer check), `routes` (URL grammar), `folders`, `messages`, `mime`, `views`,
//! `upload` (attachments, upload sessions), `batch`, `throttle`, `faults`, `odata` (query
//! options), `store` (data), `compact` (the stored form of an item), `index` (incremental indexes and
//! counters), `blobs` (bodies in
//! memory, on disk or as digests), [`Inspector`] (typed and HTTP inspection under `/_emulator`).

mod auth;
mod batch;
mod blobs;
mod compact;
mod config;
mod conn;
mod dispatch;
mod errors;
mod faults;
mod folders;
#[cfg(test)]
mod footprint;
mod index;
mod inspect;
mod messages;
mod mime;
mod odata;
mod routes;
mod store;
mod throttle;
mod upload;
mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use blobs::BodiesMode;
pub use config::{
    AppConfig, ConcurrencyScope, EmulatorConfig, ImportMimeReceived, Latency, Limits,
    MAIL_ADVANCED_READWRITE, MAIL_READWRITE, MailboxConfig,
};
pub use errors::EmulatorError;
pub use faults::{FaultKind, FaultLogEntry, FaultRule};
pub use inspect::{
    AttachmentView, Counters, FolderView, Inspector, ItemView, MailboxCounters, MailboxView,
    RequestRecord,
};

/// Shared state of one running emulator.
pub(crate) struct Emu {
    pub config: EmulatorConfig,
    pub store: Mutex<store::Store>,
    /// Where item bodies live (`bodies` setting).
    pub blobs: blobs::Blobs,
    pub auth: Mutex<auth::AuthState>,
    pub throttle: Mutex<throttle::Throttle>,
    pub faults: Mutex<faults::Faults>,
    pub activity: Mutex<inspect::Activity>,
    /// Graph requests currently holding a throttling permit (for tests that need N in flight).
    pub in_flight: watch::Sender<usize>,
    /// Where the server listens, for links when a request has no Host header.
    pub local_addr: SocketAddr,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section leaves the state consistent, so the data is still good.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Emu {
    fn new(config: EmulatorConfig, local_addr: SocketAddr) -> Result<Self, EmulatorError> {
        config.validate()?;
        let mut st = store::Store::default();
        for mb in &config.mailboxes {
            let quota = mb.quota_bytes.unwrap_or(config.limits.mailbox_quota_bytes);
            st.mailboxes.insert(
                mb.address.to_ascii_lowercase(),
                store::Mailbox::new(&mb.address, quota),
            );
        }
        Ok(Emu {
            blobs: blobs::Blobs::new(config.bodies.unwrap_or_default())?,
            faults: Mutex::new(faults::Faults::new(&config.faults)),
            config,
            store: Mutex::new(st),
            auth: Mutex::new(auth::AuthState::default()),
            throttle: Mutex::new(throttle::Throttle::default()),
            activity: Mutex::new(inspect::Activity::default()),
            in_flight: watch::channel(0).0,
            local_addr,
        })
    }
}

fn router(emu: Arc<Emu>) -> Router {
    Router::new()
        .nest("/_emulator", inspect::routes())
        .fallback(any(dispatch::http_entry))
        .with_state(emu)
}

async fn serve_emu(
    listener: TcpListener,
    emu: Arc<Emu>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EmulatorError> {
    let app = router(emu).into_make_service_with_connect_info::<conn::ConnInfo>();
    axum::serve(conn::KillableListener(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| EmulatorError::Io {
            context: "serving the emulator".into(),
            source,
        })
}

/// Serves until `shutdown` completes. Takes its listener, so tests can bind port 0.
pub async fn serve(
    listener: TcpListener,
    config: EmulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EmulatorError> {
    let addr = listener.local_addr().map_err(|source| EmulatorError::Io {
        context: "reading the listen address".into(),
        source,
    })?;
    let emu = Arc::new(Emu::new(config, addr)?);
    serve_emu(listener, emu, shutdown).await
}

/// A running in-process emulator; dropping it stops the server.
pub struct EmulatorHandle {
    addr: SocketAddr,
    emu: Arc<Emu>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), EmulatorError>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`: both the login URL and the Graph URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint for the configured tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url(),
            self.emu.config.tenant
        )
    }

    /// Typed access to the store, counters, request and fault logs.
    pub fn inspect(&self) -> Inspector {
        Inspector::new(self.emu.clone())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Graceful shutdown would wait for held requests (latency faults); a dropped handle
        // means the caller is done, so stop accepting at once.
        self.task.abort();
    }
}

/// In-process start for tests and the demo: binds 127.0.0.1:0.
pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| EmulatorError::Io {
            context: "binding 127.0.0.1:0".into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EmulatorError::Io {
        context: "reading the listen address".into(),
        source,
    })?;
    let emu = Arc::new(Emu::new(config, addr)?);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_emu(listener, emu.clone(), async {
        let _ = rx.await;
    }));
    Ok(EmulatorHandle {
        addr,
        emu,
        stop: Some(tx),
        task,
    })
}

/// What `mailferry emulator --listen ADDR [--config FILE] [--allow-remote]` runs: refuses a
/// non-loopback address unless `allow_remote`, prints where it listens, stops on Ctrl-C.
pub async fn run_cli(
    listen: SocketAddr,
    config: Option<PathBuf>,
    allow_remote: bool,
) -> Result<(), EmulatorError> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(EmulatorError::NotLoopback(listen));
    }
    let mut cfg = match config.as_deref() {
        Some(p) => EmulatorConfig::from_file(Path::new(p))?,
        None => EmulatorConfig::default(),
    };
    // A rehearsal can hold far more mail than memory: bodies go to a spill file unless the
    // config says otherwise (in-process emulators, for tests, keep them in memory).
    cfg.bodies.get_or_insert(BodiesMode::Disk);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| EmulatorError::Io {
            context: format!("binding {listen}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EmulatorError::Io {
        context: "reading the listen address".into(),
        source,
    })?;
    println!("mailferry emulator listening on http://{addr}");
    println!(
        "  token endpoint: http://{addr}/{}/oauth2/v2.0/token   graph: http://{addr}/v1.0   inspection: http://{addr}/_emulator/mailboxes",
        cfg.tenant
    );
    serve(listener, cfg, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    println!("mailferry emulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_cli_refuses_remote_addresses() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let err = run_cli(addr, None, false).await.unwrap_err();
        assert!(matches!(err, EmulatorError::NotLoopback(_)), "{err}");
    }

    #[tokio::test]
    async fn run_cli_reports_a_missing_config_file() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let err = run_cli(addr, Some("/nonexistent/emu.toml".into()), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/emu.toml"), "{err}");
    }
}
