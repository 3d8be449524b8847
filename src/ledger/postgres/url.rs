//! The PostgreSQL ledger's address: `postgres://user@host:port/db?sslmode=…`, parsed into a
//! type that cannot print its password.
//!
//! Where the URL came from decides whether it may carry a password: a URL read from an
//! environment variable (the plan's `url_env`) may; one written in the plan file or given on the
//! command line (visible in `ps`) may not, and the password comes from `PGPASSWORD` instead.
//! The TLS mode defaults to `verify-full` for every host but loopback and Unix sockets, where it
//! defaults to `disable`. `prefer` and `allow` are refused: they fall back to plaintext without a
//! word, which is exactly what a ledger full of mailbox names should never do.

use std::fmt;
use std::path::PathBuf;

use crate::secret::Secret;

/// PostgreSQL's own default port.
const DEFAULT_PORT: u16 = 5432;

/// Where a ledger URL was read from (decides whether a password in it is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlOrigin {
    /// `--ledger URL` on the command line.
    CommandLine,
    /// The plan's `[ledger] url`.
    PlanFile,
    /// The environment variable named by the plan's `[ledger] url_env`.
    Env(String),
}

impl fmt::Display for UrlOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlOrigin::CommandLine => f.write_str("--ledger"),
            UrlOrigin::PlanFile => f.write_str("the plan's [ledger] url"),
            UrlOrigin::Env(name) => write!(f, "${name}"),
        }
    }
}

/// How the connection to PostgreSQL is protected (libpq's `sslmode`, the safe subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext. The default only for loopback hosts and Unix sockets.
    Disable,
    /// TLS, but the certificate is not checked (libpq's meaning of `require`).
    Require,
    /// TLS with the certificate chain checked against the webpki roots (plus `sslrootcert`) and
    /// the host name checked against the certificate. The default for every other host.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    /// A host name or IP address, over TCP.
    Tcp(String),
    /// A directory holding the server's Unix socket (`?host=/run/postgresql`).
    Socket(PathBuf),
}

/// A parsed ledger URL. `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    pub host: PgHost,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret<String>>,
    pub sslmode: SslMode,
    /// An extra trust anchor (PEM) for `verify-full` (libpq's `sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
}

/// Why a ledger URL was refused. Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger URL from {origin}: {reason}")]
pub struct UrlError {
    pub origin: UrlOrigin,
    pub reason: String,
}

impl PgUrl {
    /// Parses `text`; `pgpassword` is the value of `PGPASSWORD`, used when the URL has none.
    pub fn parse(
        text: &str,
        origin: UrlOrigin,
        pgpassword: Option<Secret<String>>,
    ) -> Result<PgUrl, UrlError> {
        let err = |reason: String| UrlError {
            origin: origin.clone(),
            reason,
        };
        let url = url::Url::parse(text.trim()).map_err(|e| {
            // The url crate's messages never echo the input, so the password cannot leak here.
            err(format!(
                "not a URL ({e}); expected postgres://user@host:port/database"
            ))
        })?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(err(format!(
                "scheme {:?} is not postgres:// (SQLite ledgers are chosen with --state FILE)",
                url.scheme()
            )));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| err("the URL holds invalid UTF-8 after percent-decoding".into()))
        };
        let url_password = match url.password() {
            None => None,
            Some(_) if !matches!(origin, UrlOrigin::Env(_)) => {
                return Err(err(
                    "a password must not be written here (it would sit in the plan file or show \
                     in the process list); set PGPASSWORD, or put the whole URL in the variable \
                     named by [ledger] url_env"
                        .into(),
                ));
            }
            Some(p) => Some(Secret::new(decode(p)?)),
        };
        // libpq spells a socket directory as a percent-encoded host (`%2Frun%2Fpostgresql`) or
        // as `?host=/run/postgresql`.
        let mut host = match url.host_str() {
            Some(h) if !h.is_empty() => match decode(h)? {
                dir if dir.starts_with('/') => Some(PgHost::Socket(dir.into())),
                name => Some(PgHost::Tcp(name)),
            },
            _ => None,
        };
        let mut sslmode = None;
        let mut sslrootcert = None;
        let mut port = url.port();
        let mut user = decode(url.username())?;
        let mut dbname = decode(url.path().trim_start_matches('/'))?;
        for (key, value) in url.query_pairs() {
            match &*key {
                "sslmode" => {
                    sslmode = Some(match &*value {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        "prefer" | "allow" => {
                            return Err(err(format!(
                                "sslmode={value} falls back to plaintext silently; use disable, \
                                 require or verify-full"
                            )));
                        }
                        "verify-ca" => {
                            return Err(err(
                                "sslmode=verify-ca is not supported; use verify-full (with \
                                 sslrootcert=FILE for a private CA)"
                                    .into(),
                            ));
                        }
                        other => return Err(err(format!("unknown sslmode {other:?}"))),
                    })
                }
                "sslrootcert" => sslrootcert = Some(PathBuf::from(&*value)),
                "host" if value.starts_with('/') => {
                    host = Some(PgHost::Socket(PathBuf::from(&*value)))
                }
                "host" => host = Some(PgHost::Tcp(value.into_owned())),
                "port" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .map_err(|_| err(format!("port {value:?} is not a port number")))?,
                    )
                }
                "user" => user = value.into_owned(),
                "dbname" => dbname = value.into_owned(),
                "password" => {
                    return Err(err(
                        "a password must not be a URL parameter; set PGPASSWORD".into(),
                    ));
                }
                other => {
                    return Err(err(format!(
                        "unsupported parameter {other:?} (known: sslmode, sslrootcert, host, \
                         port, user, dbname)"
                    )));
                }
            }
        }
        let host = host.ok_or_else(|| err("the URL names no host".into()))?;
        if user.is_empty() {
            return Err(err("the URL names no user (postgres://USER@host/db)".into()));
        }
        if dbname.is_empty() {
            dbname = user.clone();
        }
        let local = match &host {
            PgHost::Socket(_) => true,
            PgHost::Tcp(h) => is_loopback(h),
        };
        let sslmode = sslmode.unwrap_or(if local {
            SslMode::Disable
        } else {
            SslMode::VerifyFull
        });
        if matches!(host, PgHost::Socket(_)) && sslmode != SslMode::Disable {
            return Err(err(
                "TLS over a Unix socket is not supported; drop sslmode".into()
            ));
        }
        Ok(PgUrl {
            host,
            port: port.unwrap_or(DEFAULT_PORT),
            user,
            dbname,
            password: url_password.or(pgpassword),
            sslmode,
            sslrootcert,
        })
    }

    /// The server as `host:port` (or the socket directory), for messages.
    pub fn server(&self) -> String {
        match &self.host {
            PgHost::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            PgHost::Tcp(h) => format!("{h}:{}", self.port),
            PgHost::Socket(dir) => format!("{}:{}", dir.display(), self.port),
        }
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pw = if self.password.is_some() { ":***" } else { "" };
        match &self.host {
            PgHost::Tcp(_) => write!(
                f,
                "postgres://{}{pw}@{}/{}?sslmode={}",
                self.user,
                self.server(),
                self.dbname,
                self.sslmode.as_str()
            ),
            PgHost::Socket(dir) => write!(
                f,
                "postgres:///{}?host={}&port={}&user={}",
                self.dbname,
                dir.display(),
                self.port,
                self.user,
            ),
        }
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

/// `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> UrlOrigin {
        UrlOrigin::Env("MAILFERRY_LEDGER".into())
    }

    #[test]
    fn defaults_verify_remote_hosts_and_not_loopback() {
        let u = PgUrl::parse(
            "postgres://mf@db.internal/mailferry",
            UrlOrigin::PlanFile,
            None,
        )
        .unwrap();
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        assert_eq!(u.port, 5432);
        assert_eq!(u.dbname, "mailferry");
        let u = PgUrl::parse("postgres://mf@127.0.0.1:6543", UrlOrigin::CommandLine, None).unwrap();
        assert_eq!(u.sslmode, SslMode::Disable);
        assert_eq!(u.port, 6543);
        assert_eq!(
            u.dbname, "mf",
            "the database defaults to the user name, as in libpq"
        );
    }

    #[test]
    fn password_only_from_env_urls_or_pgpassword() {
        let e = PgUrl::parse("postgres://mf:hunter2@db/x", UrlOrigin::PlanFile, None).unwrap_err();
        assert!(e.to_string().contains("PGPASSWORD"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = PgUrl::parse("postgres://mf:hunter2@db/x", UrlOrigin::CommandLine, None);
        assert!(e.is_err());
        let u = PgUrl::parse("postgres://mf:hun%40ter2@db/x", env(), None).unwrap();
        assert_eq!(
            u.password.as_ref().map(|p| p.expose().as_str()),
            Some("hun@ter2")
        );
        let u = PgUrl::parse("postgres://mf@db/x", UrlOrigin::PlanFile, Some("pw".into())).unwrap();
        assert_eq!(u.password.as_ref().map(|p| p.expose().as_str()), Some("pw"));
        let u = PgUrl::parse("postgres://mf:inurl@db/x", env(), Some("pw".into())).unwrap();
        assert_eq!(
            u.password.as_ref().map(|p| p.expose().as_str()),
            Some("inurl"),
            "the URL's own password wins over PGPASSWORD"
        );
    }

    #[test]
    fn printing_never_shows_the_password() {
        let u = PgUrl::parse(
            "postgres://mf:hunter2@db:5433/x?sslmode=require",
            env(),
            None,
        )
        .unwrap();
        for text in [u.to_string(), format!("{u:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(
                text.contains("db:5433") && text.contains("require"),
                "{text}"
            );
        }
    }

    #[test]
    fn silent_fallback_modes_and_unknown_parameters_are_refused() {
        for bad in [
            "postgres://mf@db/x?sslmode=prefer",
            "postgres://mf@db/x?sslmode=allow",
            "postgres://mf@db/x?sslmode=verify-ca",
            "postgres://mf@db/x?sslmode=bogus",
            "postgres://mf@db/x?password=p",
            "postgres://mf@db/x?application_name=y",
            "mysql://mf@db/x",
            "postgres:///x",
            "postgres://db/x",
        ] {
            assert!(
                PgUrl::parse(bad, env(), None).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn unix_socket_and_root_cert_parameters() {
        let u = PgUrl::parse(
            "postgres:///x?host=/run/postgresql&user=mf&sslrootcert=/etc/ca.pem",
            UrlOrigin::CommandLine,
            None,
        )
        .unwrap();
        assert_eq!(u.host, PgHost::Socket("/run/postgresql".into()));
        assert_eq!(u.user, "mf");
        assert_eq!(u.sslmode, SslMode::Disable);
        assert_eq!(u.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
        let again = PgUrl::parse(&u.to_string(), UrlOrigin::CommandLine, None).unwrap();
        let without_root = PgUrl {
            sslrootcert: None,
            ..u.clone()
        };
        assert_eq!(again, without_root, "printed form parses back: {u}");
        let u = PgUrl::parse(
            "postgres://mf@%2Frun%2Fpostgresql/x",
            UrlOrigin::CommandLine,
            None,
        )
        .unwrap();
        assert_eq!(u.host, PgHost::Socket("/run/postgresql".into()));
        let u = PgUrl::parse(
            "postgres://mf@db/x?sslmode=verify-full&sslrootcert=ca.pem",
            UrlOrigin::CommandLine,
            None,
        )
        .unwrap();
        assert_eq!(u.sslmode, SslMode::VerifyFull);
    }
}
