//! `plan.toml` as written: serde structures with no defaults applied, unknown keys rejected.
//! [`super::resolve`] turns them into the resolved types.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    pub mailboxes: String,
    pub source: RawSource,
    #[serde(default)]
    pub destination: Ordered<RawDestination>,
    #[serde(default)]
    pub folders: RawFolders,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub verify: RawVerify,
    /// `[keywords]`: IMAP keyword -> Outlook category name, or `false` to drop, `true` to keep.
    #[serde(default)]
    pub keywords: Ordered<RawKeyword>,
    #[serde(default)]
    pub reports: RawReports,
    #[serde(default)]
    pub ledger: RawLedger,
}

/// `[ledger]`: a PostgreSQL ledger shared by a fleet of workers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub lease_secs: Option<u64>,
}

/// One `[keywords]` entry.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawKeyword {
    Category(String),
    Keep(bool),
}

/// `[verify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    #[serde(default)]
    pub accept_altered: bool,
}

/// `[reports]`: what happens to run report files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReports {
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSourceKind {
    #[default]
    Imap,
    Maildir,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSecurity {
    Tls,
    Starttls,
    Plain,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAuth {
    Login,
    Plain,
    Xoauth2,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    #[serde(default)]
    pub kind: RawSourceKind,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<RawSecurity>,
    pub ca_file: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    pub auth: Option<RawAuth>,
    pub master_user: Option<String>,
    pub master_password_env: Option<String>,
    pub master_password_file: Option<String>,
    pub maildir_root: Option<String>,
    pub max_connections_per_host: Option<usize>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum RawDestination {
    Graph(RawGraph),
    Imap(RawImapDestination),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawCloud {
    Global,
    UsgovHigh,
    UsgovDod,
    China,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawRoute {
    ImportMime,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAlg {
    Ps256,
    Rs256,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGraph {
    pub tenant: String,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    pub certificate_file: Option<String>,
    pub certificate_password_env: Option<String>,
    pub certificate_password_file: Option<String>,
    pub cloud: Option<RawCloud>,
    pub route: Option<RawRoute>,
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
    /// Allows `http://` overrides to a host that is not loopback.
    #[serde(default)]
    pub insecure: bool,
    pub assertion_alg: Option<RawAlg>,
    pub max_request_bytes: Option<u64>,
    pub requests_per_10min: Option<u32>,
    pub bytes_per_5min: Option<u64>,
    pub concurrency_per_mailbox: Option<u32>,
    pub concurrency_per_app: Option<u32>,
    pub max_throttle_wait_secs: Option<u64>,
    pub received_date: Option<RawReceivedDate>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawReceivedDate {
    AsIs,
    PrependReceived,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImapDestination {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<RawSecurity>,
    pub ca_file: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    pub auth: Option<RawAuth>,
    pub master_user: Option<String>,
    pub master_password_env: Option<String>,
    pub master_password_file: Option<String>,
    pub connections: Option<usize>,
    pub oauth_app: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFolders {
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub rename: Ordered<String>,
    pub nest_under: Option<String>,
    #[serde(default)]
    pub migrate_deleted: bool,
    pub max_depth: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_message_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub memory_budget_bytes: Option<u64>,
}

/// A TOML table kept in document order (the first destination is the default, and renames
/// are reported in the order written), without needing the `preserve_order` feature: the
/// TOML deserializer hands keys to the visitor in the order they appear.
#[derive(Debug)]
pub(super) struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}
