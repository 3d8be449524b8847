//! From `plan.toml` text to resolved settings: defaults, paths against the plan directory,
//! secrets from `*_env` / `*_file` references, and cross-field checks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::raw::{
    RawAlg, RawAuth, RawCloud, RawFolders, RawGraph, RawImapDestination, RawLimits, RawPlan,
    RawReceivedDate, RawRoute, RawSecurity, RawSource, RawSourceKind,
};
use super::{
    AssertionAlg, AuthMethod, Cloud, Destination, Endpoint, FolderRules, GraphCredential,
    GraphDestination, ImapDestination, Limits, Plan, PlanError, Route, Security, SourceKind,
    SourceSettings, plan_dir, rows,
};
use crate::secret::Secret;

/// Default per-request body limit for Graph (docs/graph-facts.md, unknown 2: about 4 MB).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

/// Looks up an environment variable (injectable so tests need not mutate the process env).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

pub(super) fn load(path: &Path, env: EnvLookup<'_>) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let raw: RawPlan = parse_toml(path, &text)?;
    let ctx = Ctx {
        file: path.to_path_buf(),
        dir: plan_dir(path),
        env,
    };
    let source = resolve_source(&ctx, raw.source)?;
    if raw.destination.0.is_empty() {
        return Err(ctx.err(
            "destination",
            "the plan needs at least one [destination.NAME] table",
        ));
    }
    let mut destinations = Vec::new();
    for (name, d) in raw.destination.0 {
        destinations.push(match d {
            super::raw::RawDestination::Graph(g) => {
                Destination::Graph(resolve_graph(&ctx, name, g)?)
            }
            super::raw::RawDestination::Imap(i) => {
                Destination::Imap(resolve_imap_dest(&ctx, name, i)?)
            }
        });
    }
    for d in &destinations {
        if let Destination::Imap(i) = d
            && let Some(app) = &i.oauth_app
            && !destinations
                .iter()
                .any(|g| matches!(g, Destination::Graph(g) if &g.name == app))
        {
            return Err(ctx.err(
                &format!("destination.{}.oauth_app", i.name),
                format!(
                    "names no Graph destination: add [destination.{app}] with kind = \"graph\""
                ),
            ));
        }
    }
    let folders = resolve_folders(&ctx, raw.folders)?;
    let limits = resolve_limits(&ctx, raw.limits)?;
    let keywords = resolve_keywords(&ctx, raw.keywords)?;
    if raw.reports.keep == Some(0) {
        return Err(ctx.err(
            "reports.keep",
            "must be at least 1 (the run's own report is always kept)",
        ));
    }
    let reports = super::ReportSettings {
        keep: raw.reports.keep,
    };
    let ledger = resolve_ledger(&ctx, raw.ledger)?;
    if raw.mailboxes.trim().is_empty() {
        return Err(ctx.err("mailboxes", "must name the mailboxes CSV file"));
    }
    let csv_path = ctx.dir.join(&raw.mailboxes);
    let parsed = rows::load_csv(&csv_path, &ctx.dir, &source, &destinations)?;
    Ok(Plan {
        path: path.to_path_buf(),
        source,
        destinations,
        folders,
        limits,
        keywords,
        verify: super::VerifySettings {
            accept_altered: raw.verify.accept_altered,
        },
        reports,
        ledger,
        mailboxes: parsed.mailboxes,
        row_errors: parsed.row_errors,
        warnings: parsed.warnings,
    })
}

/// `[ledger]`: at most one of `url` and `url_env`; a lease of 10 s to 1 hour. The URL itself is
/// parsed when a command uses it (the variable is read then, and `--ledger` may override it).
fn resolve_ledger(
    ctx: &Ctx<'_>,
    raw: super::raw::RawLedger,
) -> Result<super::LedgerSettings, PlanError> {
    let url = match (raw.url, raw.url_env) {
        (Some(_), Some(_)) => {
            return Err(ctx.err("ledger.url_env", "give either url or url_env, not both"));
        }
        (Some(u), None) => Some(super::LedgerUrl::Plain(u)),
        (None, Some(v)) if v.trim().is_empty() => {
            return Err(ctx.err("ledger.url_env", "must name an environment variable"));
        }
        (None, Some(v)) => Some(super::LedgerUrl::Env(v)),
        (None, None) => None,
    };
    let lease_secs = raw
        .lease_secs
        .unwrap_or(super::LedgerSettings::DEFAULT_LEASE_SECS);
    if !(10..=3600).contains(&lease_secs) {
        return Err(ctx.err("ledger.lease_secs", "must be between 10 and 3600 seconds"));
    }
    Ok(super::LedgerSettings { url, lease_secs })
}

/// `[keywords]`: a category name, `true` (keep the keyword's own name) or `false` (drop it).
fn resolve_keywords(
    ctx: &Ctx<'_>,
    raw: super::raw::Ordered<super::raw::RawKeyword>,
) -> Result<Vec<(String, Option<String>)>, PlanError> {
    use super::raw::RawKeyword;
    let mut out = Vec::new();
    for (k, v) in raw.0 {
        let target = match v {
            RawKeyword::Category(c) if c.trim().is_empty() => {
                return Err(ctx.err(
                    &format!("keywords.{k}"),
                    "an empty category name: use false to drop the keyword",
                ));
            }
            RawKeyword::Category(c) => Some(c),
            RawKeyword::Keep(true) => Some(k.clone()),
            RawKeyword::Keep(false) => None,
        };
        out.push((k, target));
    }
    Ok(out)
}

/// Parses TOML and turns a serde error into one that names the line and column.
pub(super) fn parse_toml(path: &Path, text: &str) -> Result<RawPlan, PlanError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_col(text, key_offset(text, s, e.message())))
            .unwrap_or((1, 1));
        PlanError::Toml {
            file: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

/// Where an error points. An unknown key inside a table read through a tagged enum (the
/// destinations) comes with the whole table's span; the key's own line is more use to an
/// operator, so it is looked up inside that span.
fn key_offset(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    else {
        return span.start;
    };
    let Some(region) = text.get(span.clone()) else {
        return span.start;
    };
    let mut pos = span.start;
    for line in region.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return pos + (line.len() - trimmed.len());
        }
        pos += line.len();
    }
    span.start
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Ctx<'e> {
    file: PathBuf,
    dir: PathBuf,
    env: EnvLookup<'e>,
}

impl Ctx<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> PlanError {
        PlanError::Setting {
            file: self.file.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// A file the run will need later: checked now so a typo fails before anything connects.
    fn existing(&self, key: &str, p: &str) -> Result<PathBuf, PlanError> {
        let path = self.path(p);
        if path.is_file() {
            Ok(path)
        } else {
            Err(self.err(key, format!("{} is not a readable file", path.display())))
        }
    }

    /// Reads a secret from `{prefix}_env` or `{prefix}_file`; at most one may be set.
    fn secret(
        &self,
        prefix: &str,
        env: Option<String>,
        file: Option<String>,
    ) -> Result<Option<Secret<String>>, PlanError> {
        match (env, file) {
            (Some(_), Some(_)) => Err(self.err(
                &format!("{prefix}_env"),
                format!("set only one of {prefix}_env and {prefix}_file"),
            )),
            (Some(var), None) => {
                let key = format!("{prefix}_env");
                match (self.env)(&var).map(OsString::into_string) {
                    Some(Ok(v)) if !v.is_empty() => Ok(Some(Secret::new(v))),
                    Some(Ok(_)) => {
                        Err(self.err(&key, format!("environment variable {var} is empty")))
                    }
                    None => Err(self.err(&key, format!("environment variable {var} is not set"))),
                    Some(Err(_)) => Err(self.err(
                        &key,
                        format!("environment variable {var} is not valid UTF-8"),
                    )),
                }
            }
            (None, Some(f)) => {
                let key = format!("{prefix}_file");
                let path = self.path(&f);
                let mut v = std::fs::read_to_string(&path)
                    .map_err(|e| self.err(&key, format!("cannot read {}: {e}", path.display())))?;
                // Files written by `echo` end with a newline that is not part of the secret.
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                if v.is_empty() {
                    return Err(self.err(&key, format!("{} is empty", path.display())));
                }
                Ok(Some(Secret::new(v)))
            }
            (None, None) => Ok(None),
        }
    }
}

fn security(raw: Option<RawSecurity>) -> Security {
    match raw {
        None | Some(RawSecurity::Tls) => Security::Tls,
        Some(RawSecurity::Starttls) => Security::StartTls,
        Some(RawSecurity::Plain) => Security::Plain,
    }
}

fn auth(raw: Option<RawAuth>) -> AuthMethod {
    match raw {
        None | Some(RawAuth::Login) => AuthMethod::Login,
        Some(RawAuth::Plain) => AuthMethod::Plain,
        Some(RawAuth::Xoauth2) => AuthMethod::XOAuth2,
    }
}

/// Loopback by name or address: where a plaintext connection cannot be sniffed on the wire.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[allow(clippy::too_many_arguments)]
fn endpoint(
    ctx: &Ctx,
    section: &str,
    host: String,
    port: Option<u16>,
    sec: Option<RawSecurity>,
    ca_file: Option<String>,
    insecure: bool,
) -> Result<Endpoint, PlanError> {
    let host = host.trim().to_owned();
    if host.is_empty() {
        return Err(ctx.err(&format!("{section}.host"), "must not be empty"));
    }
    let security = security(sec);
    if security == Security::Plain && !insecure && !is_loopback(&host) {
        return Err(ctx.err(
            &format!("{section}.security"),
            format!(
                "plain (unencrypted) IMAP to {host} would send passwords in clear; use tls or \
                 starttls, or set insecure = true"
            ),
        ));
    }
    let port = port.unwrap_or(if security == Security::Tls { 993 } else { 143 });
    if port == 0 {
        return Err(ctx.err(&format!("{section}.port"), "must not be 0"));
    }
    let ca_file = ca_file
        .map(|f| ctx.existing(&format!("{section}.ca_file"), &f))
        .transpose()?;
    Ok(Endpoint {
        host,
        port,
        security,
        ca_file,
        insecure,
    })
}

fn master(
    ctx: &Ctx,
    section: &str,
    user: Option<String>,
    env: Option<String>,
    file: Option<String>,
) -> Result<(Option<String>, Option<Secret<String>>), PlanError> {
    let password = ctx.secret(&format!("{section}.master_password"), env, file)?;
    match (user, password) {
        (Some(u), Some(p)) if !u.trim().is_empty() => Ok((Some(u.trim().to_owned()), Some(p))),
        (Some(_), Some(_)) => Err(ctx.err(&format!("{section}.master_user"), "must not be empty")),
        (Some(_), None) => Err(ctx.err(
            &format!("{section}.master_password_env"),
            "master_user needs master_password_env or master_password_file",
        )),
        (None, Some(_)) => Err(ctx.err(
            &format!("{section}.master_user"),
            "a master password is set but master_user is missing",
        )),
        (None, None) => Ok((None, None)),
    }
}

fn resolve_source(ctx: &Ctx, s: RawSource) -> Result<SourceSettings, PlanError> {
    let kind = match s.kind {
        RawSourceKind::Imap => SourceKind::Imap,
        RawSourceKind::Maildir => SourceKind::Maildir,
    };
    let endpoint = match (kind, s.host) {
        (SourceKind::Imap, Some(host)) => Some(endpoint(
            ctx, "source", host, s.port, s.security, s.ca_file, s.insecure,
        )?),
        (SourceKind::Imap, None) => {
            return Err(ctx.err("source.host", "an IMAP source needs a host"));
        }
        (SourceKind::Maildir, Some(_)) => {
            return Err(ctx.err("source.host", "a maildir source reads files; remove host"));
        }
        (SourceKind::Maildir, None) => None,
    };
    if kind == SourceKind::Imap && s.maildir_root.is_some() {
        return Err(ctx.err("source.maildir_root", "only for kind = \"maildir\""));
    }
    let (master_user, master_password) = master(
        ctx,
        "source",
        s.master_user,
        s.master_password_env,
        s.master_password_file,
    )?;
    let max_connections_per_host = s.max_connections_per_host.unwrap_or(8);
    if max_connections_per_host == 0 {
        return Err(ctx.err("source.max_connections_per_host", "must be at least 1"));
    }
    let timeout_secs = s.timeout_secs.unwrap_or(60);
    if timeout_secs == 0 {
        return Err(ctx.err("source.timeout_secs", "must be at least 1"));
    }
    Ok(SourceSettings {
        kind,
        endpoint,
        auth: auth(s.auth),
        master_user,
        master_password,
        maildir_root: s.maildir_root,
        max_connections_per_host,
        timeout_secs,
    })
}

fn resolve_graph(ctx: &Ctx, name: String, g: RawGraph) -> Result<GraphDestination, PlanError> {
    let sec = format!("destination.{name}");
    let key = |k: &str| format!("{sec}.{k}");
    if g.tenant.trim().is_empty() {
        return Err(ctx.err(&key("tenant"), "must not be empty"));
    }
    if g.client_id.trim().is_empty() {
        return Err(ctx.err(&key("client_id"), "must not be empty"));
    }
    let secret = ctx.secret(
        &key("client_secret"),
        g.client_secret_env,
        g.client_secret_file,
    )?;
    let cert_password = ctx.secret(
        &key("certificate_password"),
        g.certificate_password_env,
        g.certificate_password_file,
    )?;
    let credential = match (secret, g.certificate_file) {
        (Some(s), None) => {
            if cert_password.is_some() {
                return Err(ctx.err(
                    &key("certificate_password_env"),
                    "only with certificate_file",
                ));
            }
            GraphCredential::Secret(s)
        }
        (None, Some(f)) => GraphCredential::Certificate {
            path: ctx.existing(&key("certificate_file"), &f)?,
            password: cert_password,
        },
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                &key("certificate_file"),
                "set either a client secret or a certificate, not both",
            ));
        }
        (None, None) => {
            return Err(ctx.err(
                &key("client_secret_env"),
                "needs client_secret_env, client_secret_file or certificate_file",
            ));
        }
    };
    let cloud = match g.cloud {
        None | Some(RawCloud::Global) => Cloud::Global,
        Some(RawCloud::UsgovHigh) => Cloud::UsGovHigh,
        Some(RawCloud::UsgovDod) => Cloud::UsGovDod,
        Some(RawCloud::China) => Cloud::China,
    };
    // importMime is global-cloud only (docs/graph-facts.md, section 1): national clouds default to JSON
    // and refuse an explicit import-mime.
    let route = match (g.route, cloud) {
        (Some(RawRoute::ImportMime), c) if c != Cloud::Global => {
            return Err(ctx.err(
                &key("route"),
                "import-mime is only available in the global cloud; use json",
            ));
        }
        (Some(RawRoute::ImportMime), _) => Route::ImportMime,
        (Some(RawRoute::Json), _) => Route::Json,
        (None, Cloud::Global) => Route::ImportMime,
        (None, _) => Route::Json,
    };
    for (k, v) in [("graph_url", &g.graph_url), ("login_url", &g.login_url)] {
        if let Some(u) = v {
            match url::Url::parse(u) {
                Ok(p) if p.scheme() == "https" => {}
                // The client secret and every message would cross the network in clear: only
                // to this machine, unless the plan says so.
                Ok(p) if p.scheme() == "http" => {
                    let host = p.host_str().unwrap_or_default();
                    if !g.insecure && !is_loopback(host) {
                        return Err(ctx.err(
                            &key(k),
                            format!(
                                "http:// to {host:?} would send the client secret and the mail in clear; use https://, a loopback host, or set insecure = true for this destination"
                            ),
                        ));
                    }
                }
                _ => return Err(ctx.err(&key(k), format!("not an http(s) URL: {u}"))),
            }
        }
    }
    let positive = |k: &str, v: u64| -> Result<(), PlanError> {
        if v == 0 {
            Err(ctx.err(&key(k), "must be at least 1"))
        } else {
            Ok(())
        }
    };
    let max_request_bytes = g.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
    positive("max_request_bytes", max_request_bytes)?;
    let requests_per_10min = g.requests_per_10min.unwrap_or(10_000);
    positive("requests_per_10min", requests_per_10min.into())?;
    let bytes_per_5min = g.bytes_per_5min.unwrap_or(150_000_000);
    positive("bytes_per_5min", bytes_per_5min)?;
    let concurrency_per_mailbox = g.concurrency_per_mailbox.unwrap_or(4);
    positive("concurrency_per_mailbox", concurrency_per_mailbox.into())?;
    let concurrency_per_app = g.concurrency_per_app.unwrap_or(16);
    positive("concurrency_per_app", concurrency_per_app.into())?;
    let max_throttle_wait_secs = g.max_throttle_wait_secs.unwrap_or(3600);
    positive("max_throttle_wait_secs", max_throttle_wait_secs)?;
    Ok(GraphDestination {
        name,
        tenant: g.tenant.trim().to_owned(),
        client_id: g.client_id.trim().to_owned(),
        credential,
        cloud,
        route,
        graph_url: g.graph_url.map(|u| u.trim_end_matches('/').to_owned()),
        login_url: g.login_url.map(|u| u.trim_end_matches('/').to_owned()),
        assertion_alg: match g.assertion_alg {
            None | Some(RawAlg::Ps256) => AssertionAlg::Ps256,
            Some(RawAlg::Rs256) => AssertionAlg::Rs256,
        },
        max_request_bytes,
        requests_per_10min,
        bytes_per_5min,
        concurrency_per_mailbox,
        concurrency_per_app,
        max_throttle_wait_secs,
        received_date: match g.received_date {
            None | Some(RawReceivedDate::AsIs) => super::ReceivedDate::AsIs,
            Some(RawReceivedDate::PrependReceived) => super::ReceivedDate::PrependReceived,
        },
    })
}

fn resolve_imap_dest(
    ctx: &Ctx,
    name: String,
    d: RawImapDestination,
) -> Result<ImapDestination, PlanError> {
    let sec = format!("destination.{name}");
    let endpoint = endpoint(ctx, &sec, d.host, d.port, d.security, d.ca_file, d.insecure)?;
    let (master_user, master_password) = master(
        ctx,
        &sec,
        d.master_user,
        d.master_password_env,
        d.master_password_file,
    )?;
    let connections = d.connections.unwrap_or(4);
    if connections == 0 {
        return Err(ctx.err(&format!("{sec}.connections"), "must be at least 1"));
    }
    Ok(ImapDestination {
        name,
        endpoint,
        auth: auth(d.auth),
        master_user,
        master_password,
        connections,
        oauth_app: d.oauth_app,
    })
}

fn resolve_folders(ctx: &Ctx, f: RawFolders) -> Result<FolderRules, PlanError> {
    let clean = |s: &str| s.trim().trim_matches('/').to_owned();
    for (from, to) in &f.rename.0 {
        if clean(from).is_empty() || clean(to).is_empty() {
            return Err(ctx.err(
                "folders.rename",
                format!("empty folder name in {from:?} = {to:?}"),
            ));
        }
    }
    if f.exclude.iter().any(|g| g.trim().is_empty()) {
        return Err(ctx.err("folders.exclude", "empty pattern"));
    }
    let nest_under = f.nest_under.map(|n| clean(&n));
    if nest_under.as_deref() == Some("") {
        return Err(ctx.err("folders.nest_under", "must name a folder"));
    }
    if f.max_depth.is_some_and(|d| d < 2) {
        return Err(ctx.err(
            "folders.max_depth",
            "must be at least 2 (a folder under Inbox or Sent Items is two levels deep)",
        ));
    }
    Ok(FolderRules {
        exclude: f.exclude,
        rename: f
            .rename
            .0
            .into_iter()
            .map(|(a, b)| (clean(&a), clean(&b)))
            .collect(),
        nest_under,
        migrate_deleted: f.migrate_deleted,
        max_depth: f.max_depth,
    })
}

fn resolve_limits(ctx: &Ctx, l: RawLimits) -> Result<Limits, PlanError> {
    let d = Limits::default();
    let out = Limits {
        max_message_bytes: l.max_message_bytes.unwrap_or(d.max_message_bytes),
        quota_bytes: l.quota_bytes,
        memory_budget_bytes: l.memory_budget_bytes.unwrap_or(d.memory_budget_bytes),
    };
    if out.max_message_bytes == 0 {
        return Err(ctx.err("limits.max_message_bytes", "must be at least 1"));
    }
    // Below 1 MiB even ordinary messages could not be buffered: such a value is a typo (bytes
    // meant as MiB), not a choice.
    if out.memory_budget_bytes < 1024 * 1024 {
        return Err(ctx.err("limits.memory_budget_bytes", "must be at least 1 MiB"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1));
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("imap.example"));
    }
}
