//! Connection settings for one IMAP endpoint and one login, independent of the plan format
//! (the engine maps plan entries onto these), and the server's capabilities as parsed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain connect, then `STARTTLS` before anything else (port 143).
    StartTls,
    /// No TLS at all: refused unless the host is loopback or `insecure` is set.
    Plain,
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct ImapEndpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// An extra trust anchor (PEM), added to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate, and plaintext to any host. Logged loudly.
    pub insecure: bool,
    /// Upper bound for every single network wait (connect, handshake, each read).
    pub timeout: Duration,
}

impl ImapEndpoint {
    /// Implicit TLS on `port` with a 60 s timeout and no extra CA.
    pub fn tls(host: impl Into<String>, port: u16) -> ImapEndpoint {
        ImapEndpoint {
            host: host.into(),
            port,
            security: Security::Tls,
            ca_file: None,
            insecure: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// How to log in.
#[derive(Debug, Clone)]
pub enum ImapAuth {
    /// `LOGIN user password` (also `user*master` style admin logins).
    Login {
        user: String,
        password: Secret<String>,
    },
    /// `AUTHENTICATE PLAIN`, with an authorization identity for master/admin logins.
    Plain {
        authzid: Option<String>,
        authcid: String,
        password: Secret<String>,
    },
    /// `AUTHENTICATE XOAUTH2` with a bearer token (Gmail, Exchange Online).
    XOAuth2 { user: String, token: Secret<String> },
}

impl ImapAuth {
    /// The user the session acts as (for logs and errors; never the secret).
    pub fn user(&self) -> &str {
        match self {
            ImapAuth::Login { user, .. } | ImapAuth::XOAuth2 { user, .. } => user,
            ImapAuth::Plain {
                authzid: Some(z), ..
            } if !z.is_empty() => z,
            ImapAuth::Plain { authcid, .. } => authcid,
        }
    }
}

/// What the server announced in CAPABILITY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Every capability, upper-cased (`IMAP4REV1`, `AUTH=PLAIN`, `STATUS=SIZE`, ...).
    pub all: BTreeSet<String>,
}

impl Capabilities {
    pub(crate) fn from_atoms<'a>(atoms: impl IntoIterator<Item = &'a str>) -> Capabilities {
        Capabilities {
            all: atoms.into_iter().map(|a| a.to_ascii_uppercase()).collect(),
        }
    }
    /// Whether a capability is present (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.all.contains(&name.to_ascii_uppercase())
    }
    pub fn condstore(&self) -> bool {
        self.has("CONDSTORE") || self.has("QRESYNC")
    }
    pub fn qresync(&self) -> bool {
        self.has("QRESYNC")
    }
    pub fn uidplus(&self) -> bool {
        self.has("UIDPLUS")
    }
    pub fn multiappend(&self) -> bool {
        self.has("MULTIAPPEND")
    }
    /// Non-synchronising literals of any size (RFC 7888 LITERAL+).
    pub fn literal_plus(&self) -> bool {
        self.has("LITERAL+")
    }
    /// Non-synchronising literals up to 4096 bytes (RFC 7888 LITERAL-).
    pub fn literal_minus(&self) -> bool {
        self.has("LITERAL-")
    }
    pub fn special_use(&self) -> bool {
        self.has("SPECIAL-USE")
    }
    pub fn namespace(&self) -> bool {
        self.has("NAMESPACE")
    }
    pub fn status_size(&self) -> bool {
        self.has("STATUS=SIZE")
    }
    pub fn enable(&self) -> bool {
        self.has("ENABLE")
    }
    pub fn sasl_ir(&self) -> bool {
        self.has("SASL-IR")
    }
    pub fn starttls(&self) -> bool {
        self.has("STARTTLS")
    }
    pub fn auth(&self, mechanism: &str) -> bool {
        self.has(&format!("AUTH={mechanism}"))
    }
}
