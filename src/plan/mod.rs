//! The migration plan: `plan.toml` plus the mailboxes CSV, resolved once into one [`Plan`].
//!
//! Everything a run needs to know about where mail comes from and where it goes is decided
//! here, up front: defaults are filled in, relative paths are resolved against the plan's
//! directory, secrets are read from the environment or files into [`Secret`]s, and every CSV
//! row becomes a [`Mailbox`] with a ready-to-use [`SourceLogin`]. Later modules never look at
//! the raw files again, so a typo fails at load time with the file, line and field that caused
//! it, not half-way through a migration. This module never connects to anything.
//!
//! The format is documented for operators in `docs/plan-format.md`; the shape of `plan.toml`
//! and the CSV columns are an external contract: operators' existing files must keep working.

mod error;
mod raw;
mod resolve;
mod rows;

use std::path::{Path, PathBuf};

pub use error::PlanError;

use crate::secret::Secret;

/// A fully resolved plan. Build it with [`Plan::load`].
#[derive(Debug)]
pub struct Plan {
    /// The plan file, as given to [`Plan::load`].
    pub path: PathBuf,
    pub source: SourceSettings,
    /// Named destinations in the order the plan lists them; the first is the default for rows
    /// without a `Destination` column.
    pub destinations: Vec<Destination>,
    pub folders: FolderRules,
    pub limits: Limits,
    /// `[keywords]`: IMAP keyword -> `Some(category)` or `None` (not copied), in plan order,
    /// on top of the built-in mapping (`translate::keywords`). Graph destinations only.
    pub keywords: Vec<(String, Option<String>)>,
    pub verify: VerifySettings,
    pub reports: ReportSettings,
    /// `[ledger]`: where a fleet's shared PostgreSQL ledger is (none: the SQLite file).
    pub ledger: LedgerSettings,
    /// The good CSV rows, in file order.
    pub mailboxes: Vec<Mailbox>,
    /// Bad CSV rows: reported, while the other rows still run.
    pub row_errors: Vec<PlanError>,
    /// Things an operator should fix that do not stop a run (e.g. a CSV of passwords that
    /// other users can read).
    pub warnings: Vec<String>,
}

/// `[ledger]`: the PostgreSQL ledger of fleet mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    /// `None`: the SQLite ledger, unless `--ledger URL` is given.
    pub url: Option<LedgerUrl>,
    /// How long a worker's claim on a mailbox lasts without renewal (renewed every third).
    pub lease_secs: u64,
}

impl LedgerSettings {
    pub const DEFAULT_LEASE_SECS: u64 = 60;
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            url: None,
            lease_secs: Self::DEFAULT_LEASE_SECS,
        }
    }
}

/// Where the ledger URL is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    /// `[ledger] url` (no password allowed in it: `PGPASSWORD` gives it).
    Plain(String),
    /// `[ledger] url_env`: the variable holding the whole URL (a password may be in it).
    Env(String),
}

/// `[reports]`: retention of the run report files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSettings {
    /// Keep the newest this many `mailferry-run-*` reports, removing older ones after each run;
    /// `None` keeps them all.
    pub keep: Option<usize>,
}

impl Plan {
    /// Reads and resolves `plan.toml` and the CSV it names (relative to the plan's directory).
    ///
    /// A problem with the plan file, a secret reference or the CSV as a whole is an `Err`; a
    /// bad CSV row lands in [`Plan::row_errors`] and the other rows still load.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        resolve::load(path, &|name| std::env::var_os(name))
    }

    /// [`Plan::load`] with `*_env` references looked up through `env` instead of the process
    /// environment (tests, and callers that hold secrets elsewhere).
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Plan, PlanError> {
        resolve::load(path, env)
    }

    /// The directory relative paths in the plan are resolved against.
    pub fn dir(&self) -> PathBuf {
        plan_dir(&self.path)
    }

    /// `<plan stem>.ledger.sqlite` next to the plan: where the ledger lives without `--state`.
    pub fn default_state_path(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".to_owned());
        self.dir().join(format!("{stem}.ledger.sqlite"))
    }

    /// The mailboxes named by `--mailbox` (case-insensitive), in plan order, each once; all of
    /// them when `emails` is empty. A name the plan does not hold is an error, so a typo never
    /// silently migrates nothing.
    pub fn select(&self, emails: &[String]) -> Result<Vec<&Mailbox>, PlanError> {
        if emails.is_empty() {
            return Ok(self.mailboxes.iter().collect());
        }
        let wanted: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
        for (given, key) in emails.iter().zip(&wanted) {
            if !self.mailboxes.iter().any(|m| &m.key == key) {
                return Err(PlanError::UnknownMailbox {
                    plan: self.path.clone(),
                    email: given.clone(),
                });
            }
        }
        Ok(self
            .mailboxes
            .iter()
            .filter(|m| wanted.contains(&m.key))
            .collect())
    }

    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.name() == name)
    }

    /// The destination a mailbox goes to. Always `Some` for a mailbox of this plan (rows naming
    /// an unknown destination are row errors).
    pub fn destination_of(&self, mailbox: &Mailbox) -> Option<&Destination> {
        self.destination(&mailbox.destination)
    }
}

/// The plan's directory: the parent of the plan file, or `.` for a bare file name.
pub(crate) fn plan_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where mail is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Imap,
    Maildir,
}

/// How a connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS (port 993 by default).
    Tls,
    /// Plain connection upgraded with STARTTLS (port 143 by default).
    StartTls,
    /// No TLS: allowed only to loopback addresses unless the endpoint is marked `insecure`.
    Plain,
}

/// The SASL mechanism (or LOGIN command) used for a plain user/password credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Login,
    Plain,
    XOAuth2,
}

/// An IMAP server to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// An extra trust anchor (PEM), resolved against the plan directory.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (and allow plaintext to non-loopback hosts).
    pub insecure: bool,
}

/// `[source]`: defaults shared by every row.
#[derive(Clone, Debug)]
pub struct SourceSettings {
    pub kind: SourceKind,
    /// `Some` for IMAP sources.
    pub endpoint: Option<Endpoint>,
    pub auth: AuthMethod,
    /// Log in to every mailbox through this admin/master account (AUTHENTICATE PLAIN with the
    /// row's user as authorization identity).
    pub master_user: Option<String>,
    pub master_password: Option<Secret<String>>,
    /// Maildir sources: root of the per-mailbox trees, a template with `{EmailAddress}`,
    /// `{LocalPart}` and `{Domain}`, resolved against the plan directory.
    pub maildir_root: Option<String>,
    /// Connections open at once to one source host, across all mailboxes.
    pub max_connections_per_host: usize,
    /// Per-command timeout.
    pub timeout_secs: u64,
}

/// A named destination.
#[derive(Clone, Debug)]
pub enum Destination {
    Graph(GraphDestination),
    Imap(ImapDestination),
}

impl Destination {
    /// The name from `[destination.NAME]`.
    pub fn name(&self) -> &str {
        match self {
            Destination::Graph(g) => &g.name,
            Destination::Imap(i) => &i.name,
        }
    }
}

/// A Microsoft 365 tenant reached through Microsoft Graph with app-only OAuth.
#[derive(Clone, Debug)]
pub struct GraphDestination {
    pub name: String,
    /// Tenant GUID or verified domain.
    pub tenant: String,
    pub client_id: String,
    pub credential: GraphCredential,
    pub cloud: Cloud,
    pub route: Route,
    /// Overrides the cloud's Graph host (e.g. the emulator).
    pub graph_url: Option<String>,
    /// Overrides the cloud's login host (e.g. the emulator).
    pub login_url: Option<String>,
    pub assertion_alg: AssertionAlg,
    /// Largest request body sent in one request; bigger messages take upload sessions.
    pub max_request_bytes: u64,
    /// Request budget per mailbox per 10 minutes (Outlook: 10,000).
    pub requests_per_10min: u32,
    /// Upload budget per mailbox per 5 minutes (Outlook: 150 MB).
    pub bytes_per_5min: u64,
    /// Starting (and maximum) concurrent requests per mailbox.
    pub concurrency_per_mailbox: u32,
    /// Maximum concurrent requests across all mailboxes of this app.
    pub concurrency_per_app: u32,
    /// Longest Retry-After waited for (seconds): a mailbox asked to wait longer stops with that
    /// reason instead of coming back early (default one hour).
    pub max_throttle_wait_secs: u64,
    /// `received_date`: what importMime copies carry for Exchange's received time.
    pub received_date: ReceivedDate,
}

impl GraphDestination {
    /// The login host to use: the override, or the cloud's.
    pub fn login_base(&self) -> &str {
        self.login_url.as_deref().unwrap_or(self.cloud.login_host())
    }
    /// The Graph host to use: the override, or the cloud's.
    pub fn graph_base(&self) -> &str {
        self.graph_url.as_deref().unwrap_or(self.cloud.graph_host())
    }
}

/// How the app proves its identity.
#[derive(Clone, Debug)]
pub enum GraphCredential {
    Secret(Secret<String>),
    /// A PEM file holding the certificate and its private key.
    Certificate {
        path: PathBuf,
        password: Option<Secret<String>>,
    },
}

// The cloud (docs/graph-facts.md, section 1), write route and assertion algorithm are the Graph sink's own
// types: defined once, resolved by the plan, taken by the sink as they are (not re-exported).
use crate::sink::graph::{AssertionAlg, Cloud, ReceivedDate, Route};

/// Another IMAP server.
#[derive(Clone, Debug)]
pub struct ImapDestination {
    pub name: String,
    pub endpoint: Endpoint,
    pub auth: AuthMethod,
    pub master_user: Option<String>,
    pub master_password: Option<Secret<String>>,
    /// Connections open at once to this server.
    pub connections: usize,
    /// App-only XOAUTH2 (Exchange Online's IMAP endpoint): the name of a Graph destination whose
    /// app registration gets the token, for the scope of this IMAP host.
    pub oauth_app: Option<String>,
}

/// `[folders]`: how folder names are chosen at the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderRules {
    /// Globs (`*` = any characters, including `/`) matched against the source display path
    /// joined with `/`, case-insensitively.
    pub exclude: Vec<String>,
    /// Exact source path -> target path (both with `/`), applied before sanitising.
    pub rename: Vec<(String, String)>,
    /// Put every folder except the well-known ones under this folder.
    pub nest_under: Option<String>,
    /// Migrate messages flagged `\Deleted` (default false).
    pub migrate_deleted: bool,
    /// Deepest folder path to create; deeper paths are flattened. `None`: the target's limit
    /// (300 for Graph). At least 2: a well-known folder counts as a level.
    pub max_depth: Option<usize>,
}

/// `[verify]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifySettings {
    /// `[verify] accept_altered`: an IMAP destination that stores other bytes than the source's
    /// (Dovecot turns NUL bytes into 0x80 on APPEND) is a warning, not a difference (exit 0).
    pub accept_altered: bool,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Larger messages are skipped with a reason (Exchange Online: 150 MiB).
    pub max_message_bytes: u64,
    /// Destination quota per mailbox, for survey's fit check.
    pub quota_bytes: Option<u64>,
    /// Message bytes held in memory at once across the whole run.
    pub memory_budget_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            quota_bytes: None,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
        }
    }
}

/// Exchange Online's largest message (150 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 157_286_400;
/// Default memory budget for message bytes (256 MiB).
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// One mailbox to migrate: one good CSV row.
#[derive(Clone, Debug)]
pub struct Mailbox {
    /// 1-based CSV line the row starts on.
    pub line: usize,
    /// `EmailAddress` as written.
    pub email: String,
    /// `EmailAddress` lower-cased: the ledger's mailbox key.
    pub key: String,
    pub source: MailboxSource,
    /// Name of the destination (the row's `Destination`, else the plan's first).
    pub destination: String,
    /// The mailbox at the destination (`DestinationUser`, else `EmailAddress`).
    pub destination_user: String,
    /// How to log in at an IMAP destination; `None` for Graph.
    pub destination_login: Option<SourceLogin>,
}

/// Where one mailbox's mail is read from.
#[derive(Clone, Debug)]
pub enum MailboxSource {
    Imap {
        login: SourceLogin,
        /// `UserRoot`: the folder under which this user's tree lives (shared-namespace setups).
        user_root: Option<String>,
    },
    Maildir {
        path: PathBuf,
    },
}

/// How to authenticate one mailbox at an IMAP server.
#[derive(Clone, Debug)]
pub enum SourceLogin {
    /// LOGIN (or AUTHENTICATE PLAIN without authzid, per [`AuthMethod`]) with this user; also
    /// Dovecot's `user*admin`, sent verbatim.
    Login {
        user: String,
        password: Secret<String>,
    },
    /// AUTHENTICATE PLAIN as `authcid` (an admin) acting for `authzid` (the mailbox user).
    Proxy {
        authzid: String,
        authcid: String,
        password: Secret<String>,
    },
    /// AUTHENTICATE XOAUTH2 with a bearer token.
    XOAuth2 { user: String, token: Secret<String> },
}

impl SourceLogin {
    /// The mailbox user this login opens (for messages and logs; never the secret).
    pub fn user(&self) -> &str {
        match self {
            SourceLogin::Login { user, .. } | SourceLogin::XOAuth2 { user, .. } => user,
            SourceLogin::Proxy { authzid, .. } => authzid,
        }
    }
}

#[cfg(test)]
mod tests;
