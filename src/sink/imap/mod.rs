//! The IMAP sink: writes messages into any IMAP server (another Dovecot, Cyrus, Exchange Online
//! over IMAP with XOAUTH2) byte for byte, with flags and INTERNALDATE.
//!
//! - [`ImapSink::ensure_folder`] maps a decoded path onto the destination's NAMESPACE prefix and
//!   delimiter, or a special-use role onto the destination's own folder, creates and subscribes.
//! - [`append`]: APPEND written by hand (async-imap's drops APPENDUID): MULTIAPPEND when offered,
//!   else pipelined single APPENDs, LITERAL+ when offered, so round trips do not bound the rate.
//! - [`lookup`]: finding items again (resume of an ambiguous write), listing for verify, flag sync.
//!
//! Destination ids are `UIDVALIDITY:UID`. Connections come from a small internal pool so every
//! method takes `&self` and several folders can be written at once.

/// Runs `$body` (an expression using `$c: &mut Conn`, idempotent) on a pooled connection; a
/// connection that turns out to be dead (the server restarted since it was pooled) is replaced
/// once.
macro_rules! with_lease {
    ($self:ident, |$c:ident| $body:expr) => {{
        crate::imap::reconnect::with_reconnect!($self.pool.get(), |$c| $body, |e, attempt| {
            (attempt >= 2 || !e.is_connection_drop()).then_some(e)
        })
    }};
}

mod append;
mod lookup;
mod pool;
mod remove;
mod subscribe;

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, FixedOffset};

use crate::body::Body;
use crate::engine::ports::FailureClass;
use crate::engine::ports::SendGate;
use crate::imap::conn::Conn;
use crate::imap::wire::Command;
use crate::imap::{Capabilities, ErrorContext, ErrorKind, ImapAuth, ImapEndpoint, ImapError};
use crate::model::{Flags, FolderPath, SpecialUse};
use pool::Pool;

/// One message to APPEND.
#[derive(Debug, Clone, Copy)]
pub struct AppendItem<'a> {
    pub body: &'a Body,
    pub flags: &'a Flags,
    pub internal_date: DateTime<FixedOffset>,
}

/// Writes into one destination mailbox. See the module docs.
#[derive(Debug)]
pub struct ImapSink {
    pool: Pool,
    caps: Capabilities,
    /// Personal namespace prefix (`""`, `"INBOX."`).
    prefix: String,
    delimiter: Option<char>,
    /// The destination's own special-use folders (raw names).
    special: HashMap<SpecialUse, String>,
    /// Folders already ensured: path -> raw name.
    ensured: Mutex<HashMap<FolderPath, String>>,
    /// Asked before each APPEND command, for this destination user (fleet mode).
    gate: Option<(std::sync::Arc<dyn SendGate>, String)>,
}

impl ImapSink {
    /// Logs in once (checking the credentials), reads NAMESPACE and the special-use folders.
    /// Up to `connections` sessions are opened as needed.
    pub async fn connect(
        endpoint: ImapEndpoint,
        auth: ImapAuth,
        connections: usize,
    ) -> Result<ImapSink, ImapError> {
        let mut conn = Conn::connect(&endpoint, &auth).await?;
        let caps = conn.caps.clone();
        let (prefix, ns_delim) = conn.namespace().await?.unwrap_or_default();
        let entries = conn.list("*").await?;
        let delimiter = ns_delim.or_else(|| entries.iter().find_map(|e| e.delimiter));
        let mut special = HashMap::new();
        for e in &entries {
            if let Some(s) = e
                .attributes
                .iter()
                .find_map(|a| SpecialUse::from_attribute(a))
            {
                special.entry(s).or_insert_with(|| e.raw_name.clone());
            }
        }
        Ok(ImapSink {
            pool: Pool::new(endpoint, auth, connections, conn),
            caps,
            prefix,
            delimiter,
            special,
            ensured: Mutex::new(HashMap::new()),
            gate: None,
        })
    }

    /// Asks `gate` before every APPEND command from now on, for destination user `user`.
    pub fn with_send_gate(mut self, gate: std::sync::Arc<dyn SendGate>, user: &str) -> ImapSink {
        self.gate = Some((gate, user.to_owned()));
        self
    }

    /// Why nothing more may be written, if the gate says so.
    fn gate_closed(&self, folder: &str) -> Option<ImapError> {
        let (gate, user) = self.gate.as_ref()?;
        let reason = gate.may_send(user).err()?;
        Some(ImapError::policy(self.ctx("APPEND", Some(folder)), reason))
    }

    /// The destination's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The hierarchy delimiter used for new folders.
    pub fn delimiter(&self) -> Option<char> {
        self.delimiter
    }

    /// Ensures a folder exists (NAMESPACE prefix and delimiter; a special-use role maps onto the
    /// destination's own folder of that role), subscribes it, and returns its raw (wire) name,
    /// which is the folder id for the other methods.
    pub async fn ensure_folder(
        &self,
        path: &FolderPath,
        special: Option<SpecialUse>,
    ) -> Result<String, ImapError> {
        if let Some(raw) = self
            .ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return Ok(raw.clone());
        }
        let raw = match special {
            Some(SpecialUse::Inbox) => "INBOX".to_owned(),
            Some(s) if self.special.contains_key(&s) => self.special[&s].clone(),
            _ => self.wire_name(path)?,
        };
        let mut lease = self.pool.get().await?;
        let conn = lease.conn();
        if raw != "INBOX" {
            let mut cmd = Command::new("CREATE ");
            cmd.astring(&raw);
            match conn.run(&cmd, "CREATE").await {
                Ok(_) => {}
                // Already there (ALREADYEXISTS, or older servers' plain NO): confirm with LIST.
                Err(e) if matches!(e.kind(), ErrorKind::No { .. }) => {
                    let found = conn.list(&raw).await?;
                    if !found.iter().any(|e| e.raw_name == raw) {
                        let mut cmd = Command::new("CREATE ");
                        cmd.astring(&raw);
                        conn.run(&cmd, "CREATE")
                            .await
                            .map_err(|e| e.in_folder(&raw))?;
                    }
                }
                Err(e) => return Err(e.in_folder(&raw)),
            }
            let mut cmd = Command::new("SUBSCRIBE ");
            cmd.astring(&raw);
            conn.run(&cmd, "SUBSCRIBE")
                .await
                .map_err(|e| e.in_folder(&raw))?;
        }
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone(), raw.clone());
        Ok(raw)
    }

    /// The wire name of a path: modified UTF-7 segments joined by the delimiter, under the prefix.
    fn wire_name(&self, path: &FolderPath) -> Result<String, ImapError> {
        let segments = path.segments();
        if segments.len() == 1 && segments[0].eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        let delim = self.delimiter;
        if let Some(d) = delim
            && let Some(bad) = segments.iter().find(|s| s.contains(d))
        {
            return Err(ImapError::policy(
                self.ctx("CREATE", Some(&path.to_string())),
                format!(
                    "folder name {bad:?} contains the destination's delimiter {d:?}; map it first"
                ),
            ));
        }
        if delim.is_none() && segments.len() > 1 {
            return Err(ImapError::policy(
                self.ctx("CREATE", Some(&path.to_string())),
                "the destination has no hierarchy delimiter; flatten the path first",
            ));
        }
        let joined = segments
            .iter()
            .map(|s| crate::utf7::encode(s))
            .collect::<Vec<_>>()
            .join(&delim.map(String::from).unwrap_or_default());
        // `INBOX.` style prefixes: a path already starting with INBOX must not get it twice.
        let prefix_is_inbox = self
            .prefix
            .trim_end_matches(|c| Some(c) == delim)
            .eq_ignore_ascii_case("INBOX");
        if prefix_is_inbox && segments[0].eq_ignore_ascii_case("INBOX") {
            let rest = joined
                .split_once(delim.unwrap_or('/'))
                .map(|x| x.1)
                .unwrap_or("");
            return Ok(format!("{}{rest}", self.prefix));
        }
        Ok(format!("{}{joined}", self.prefix))
    }

    fn ctx(&self, command: &str, folder: Option<&str>) -> Box<ErrorContext> {
        Box::new(ErrorContext {
            host: self.pool.endpoint().host.clone(),
            user: self.pool.user().to_owned(),
            folder: folder.map(str::to_owned),
            command: command.to_owned(),
        })
    }

    /// How the engine should treat a failed sink call. A connection lost or timed out during a
    /// write is ambiguous (the server may have stored the message): resolve with [`ImapSink::find`].
    pub fn classify(err: &ImapError) -> FailureClass {
        match err.kind() {
            ErrorKind::Auth { .. } | ErrorKind::Tls { .. } | ErrorKind::Policy { .. } => {
                FailureClass::Fatal
            }
            ErrorKind::Connect(_) => FailureClass::Transient,
            ErrorKind::Timeout { .. } | ErrorKind::ConnectionLost { .. } => FailureClass::Ambiguous,
            ErrorKind::Protocol { .. } => FailureClass::Transient,
            ErrorKind::Bad { .. } => FailureClass::Rejected,
            ErrorKind::No { code, .. } => {
                let code = code
                    .as_deref()
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match code.as_str() {
                    "OVERQUOTA" | "NOPERM" | "TRYCREATE" | "NONEXISTENT" => FailureClass::Mailbox,
                    "UNAVAILABLE" | "INUSE" | "SERVERBUG" | "LIMIT" | "EXPUNGEISSUED" => {
                        FailureClass::Transient
                    }
                    _ => FailureClass::Rejected,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let ctx = Box::<ErrorContext>::default;
        let no = |code: &str| {
            ImapError::new(
                ctx(),
                ErrorKind::No {
                    code: Some(code.into()),
                    text: String::new(),
                },
            )
        };
        assert_eq!(ImapSink::classify(&no("OVERQUOTA")), FailureClass::Mailbox);
        assert_eq!(ImapSink::classify(&no("TOOBIG")), FailureClass::Rejected);
        assert_eq!(
            ImapSink::classify(&no("UNAVAILABLE")),
            FailureClass::Transient
        );
        let lost = ImapError::connection_lost(ctx(), "eof");
        assert_eq!(ImapSink::classify(&lost), FailureClass::Ambiguous);
        let auth = ImapError::new(
            ctx(),
            ErrorKind::Auth {
                server: String::new(),
            },
        );
        assert_eq!(ImapSink::classify(&auth), FailureClass::Fatal);
    }

    /// Compile-time check: the engine spawns these futures, so they must be `Send`.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn futures_are_send(sink: &ImapSink, f: &crate::model::SourceFolder, item: AppendItem<'_>) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&sink.ensure_folder(&f.path, None));
        is_send(&sink.append_batch("x", std::slice::from_ref(&item)));
        is_send(&sink.find("x", None, 0, &crate::model::ContentHash::of(b"")));
        is_send(&sink.set_flags("x", "1:1", item.flags, None));
        is_send(&sink.list_items("x"));
        fn is_sync<T: Sync + Send>() {}
        is_sync::<ImapSink>();
    }
}
