//! One authenticated IMAP connection: connect (TLS, STARTTLS or loopback plaintext), greeting,
//! login (LOGIN, AUTHENTICATE PLAIN with authzid, XOAUTH2), and running tagged commands with a
//! timeout on every network wait.
//!
//! A connection that saw a timeout, an I/O error or an unparseable response is marked broken and
//! refuses further commands: its tag state is unknown, so the only safe move is to drop it and
//! reconnect (the source does that). Both the source and the sink use this type. Reading and
//! writing bytes on the socket (literals, spooled bodies) lives in [`framing`].

use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::TcpStream;

use super::error::{ErrorContext, ErrorKind, ImapError};
use super::settings::{Capabilities, ImapAuth, ImapEndpoint, Security};
use super::transport::{self, Stream};
use super::wire::{self, Command, Part, RespText, Response, Status};

mod framing;
pub(crate) mod reader;

/// Literals at least this big are written straight to the socket instead of being copied.
const DIRECT_WRITE: usize = 64 << 10;
/// The command buffer is flushed to the socket when it grows past this.
const WRITE_CHUNK: usize = 256 << 10;

/// An authenticated session.
#[derive(Debug)]
pub(crate) struct Conn {
    io: BufReader<Stream>,
    next_tag: u32,
    pub(crate) caps: Capabilities,
    host: String,
    user: String,
    timeout: Duration,
    /// Set after any failure that leaves the protocol state unknown.
    broken: bool,
    /// The folder currently selected (raw name) and whether read-only.
    pub(crate) selected: Option<(String, bool)>,
}

impl Conn {
    /// Connects, upgrades to TLS as configured, logs in and enables CONDSTORE when offered.
    pub(crate) async fn connect(
        endpoint: &ImapEndpoint,
        auth: &ImapAuth,
    ) -> Result<Conn, ImapError> {
        let ctx = |command: &str| {
            Box::new(ErrorContext {
                host: endpoint.host.clone(),
                user: auth.user().to_owned(),
                folder: None,
                command: command.to_owned(),
            })
        };
        if endpoint.security == Security::Plain
            && !endpoint.insecure
            && !transport::is_loopback(&endpoint.host)
        {
            return Err(ImapError::policy(
                ctx("connect"),
                "plaintext IMAP is only allowed to loopback unless insecure = true",
            ));
        }
        if endpoint.security == Security::Plain && !transport::is_loopback(&endpoint.host) {
            tracing::warn!(host = %endpoint.host, "plaintext IMAP (insecure = true): the password crosses the network in clear");
        }
        let t = endpoint.timeout;
        let addr = (
            endpoint.host.trim_start_matches('[').trim_end_matches(']'),
            endpoint.port,
        );
        let tcp = match tokio::time::timeout(t, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ImapError::timeout(ctx("connect"), t));
            }
            Ok(Err(source)) => {
                return Err(ImapError::new(
                    ctx("connect"),
                    ErrorKind::Connect(std::sync::Arc::new(source)),
                ));
            }
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let tls = |command: &str| {
            transport::tls_connector(endpoint.ca_file.as_deref(), endpoint.insecure)
                .map(|c| (c, ctx(command)))
                .map_err(|reason| ImapError::new(ctx(command), ErrorKind::Tls { reason }))
        };
        let stream = if endpoint.security == Security::Tls {
            let (connector, hctx) = tls("TLS handshake")?;
            handshake(&connector, &endpoint.host, tcp, t, hctx).await?
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Conn {
            io: BufReader::with_capacity(64 << 10, stream),
            next_tag: 0,
            caps: Capabilities::default(),
            host: endpoint.host.clone(),
            user: auth.user().to_owned(),
            timeout: t,
            broken: false,
            selected: None,
        };
        conn.greeting().await?;
        if endpoint.security == Security::StartTls {
            if conn.caps.all.is_empty() {
                conn.capability().await?;
            }
            if !conn.caps.starttls() {
                return Err(ImapError::policy(
                    ctx("STARTTLS"),
                    "the server does not offer STARTTLS",
                ));
            }
            conn.run(&Command::new("STARTTLS"), "STARTTLS").await?;
            // Anything already buffered arrived before TLS and could be injected: refuse it.
            if !conn.io.buffer().is_empty() {
                return Err(ImapError::protocol(
                    ctx("STARTTLS"),
                    "the server sent data after STARTTLS before the TLS handshake",
                ));
            }
            let Stream::Plain(tcp) = conn.io.into_inner() else {
                return Err(ImapError::protocol(ctx("STARTTLS"), "already on TLS"));
            };
            let (connector, hctx) = tls("STARTTLS handshake")?;
            conn.io = BufReader::with_capacity(
                64 << 10,
                handshake(&connector, &endpoint.host, tcp, t, hctx).await?,
            );
            // Capabilities seen before TLS are not trustworthy.
            conn.caps = Capabilities::default();
        }
        if conn.caps.all.is_empty() {
            conn.capability().await?;
        }
        conn.login(auth).await?;
        if conn.caps.condstore() && conn.caps.enable() {
            conn.run(&Command::new("ENABLE CONDSTORE"), "ENABLE CONDSTORE")
                .await?;
        }
        Ok(conn)
    }

    /// The error context for a command on this connection.
    pub(crate) fn ctx(&self, command: &str) -> Box<ErrorContext> {
        Box::new(ErrorContext {
            host: self.host.clone(),
            user: self.user.clone(),
            folder: None,
            command: command.to_owned(),
        })
    }

    /// False once the session must be dropped.
    pub(crate) fn is_usable(&self) -> bool {
        !self.broken
    }

    async fn greeting(&mut self) -> Result<(), ImapError> {
        match self.read_response("greeting").await? {
            Response::UntaggedStatus {
                status: Status::Ok | Status::Preauth,
                text,
            } => {
                self.take_capability_code(&text);
                Ok(())
            }
            Response::UntaggedStatus {
                status: Status::Bye,
                text,
            } => {
                self.broken = true;
                Err(ImapError::connection_lost(
                    self.ctx("greeting"),
                    format!("BYE {}", text.text),
                ))
            }
            other => {
                self.broken = true;
                Err(ImapError::protocol(
                    self.ctx("greeting"),
                    format!("unexpected greeting {other:?}"),
                ))
            }
        }
    }

    pub(super) fn take_capability_code(&mut self, text: &RespText) {
        if text.code_name() == Some("CAPABILITY")
            && let Some(code) = &text.code
        {
            self.caps = Capabilities::from_atoms(code[1..].iter().filter_map(|v| match v {
                wire::Value::Atom(a) => Some(a.as_str()),
                _ => None,
            }));
        }
    }

    /// Runs CAPABILITY and stores the result.
    pub(crate) async fn capability(&mut self) -> Result<(), ImapError> {
        let mut caps = None;
        self.run_with(&Command::new("CAPABILITY"), "CAPABILITY", |r| {
            if let Response::Data { name, args, .. } = r
                && name == "CAPABILITY"
            {
                let atoms: Vec<String> = args
                    .iter()
                    .filter_map(|v| v.text().map(|t| t.into_owned()))
                    .collect();
                caps = Some(Capabilities::from_atoms(atoms.iter().map(String::as_str)));
            }
        })
        .await?;
        self.caps = caps
            .ok_or_else(|| ImapError::protocol(self.ctx("CAPABILITY"), "no CAPABILITY response"))?;
        Ok(())
    }

    pub(super) fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("m{}", self.next_tag)
    }

    pub(super) fn ensure_usable(&self, label: &str) -> Result<(), ImapError> {
        if self.broken {
            return Err(ImapError::connection_lost(
                self.ctx(label),
                "the session was dropped after an earlier failure",
            ));
        }
        Ok(())
    }

    pub(super) fn completion(
        &mut self,
        status: Status,
        text: RespText,
        label: &str,
    ) -> Result<RespText, ImapError> {
        match status {
            Status::Ok => Ok(text),
            Status::No => Err(ImapError::new(
                self.ctx(label),
                ErrorKind::No {
                    code: text.code_string(),
                    text: text.text,
                },
            )),
            _ => Err(ImapError::new(
                self.ctx(label),
                ErrorKind::Bad { text: text.text },
            )),
        }
    }

    /// Runs a command and collects its untagged responses.
    pub(crate) async fn run(&mut self, cmd: &Command<'_>, label: &str) -> Result<Reply, ImapError> {
        let mut untagged = Vec::new();
        let done = self.run_with(cmd, label, |r| untagged.push(r)).await?;
        Ok(Reply { untagged, done })
    }

    /// Runs a command, handing each untagged response to `on_untagged` as it arrives.
    pub(crate) async fn run_with(
        &mut self,
        cmd: &Command<'_>,
        label: &str,
        mut on_untagged: impl FnMut(Response),
    ) -> Result<RespText, ImapError> {
        let tag = self.start(cmd, label, &mut on_untagged).await?;
        self.finish(&tag, label, on_untagged).await
    }

    /// Sends a command (waiting for continuations of synchronising literals) without reading its
    /// completion: the sink uses this to pipeline. Returns the tag.
    pub(crate) async fn start(
        &mut self,
        cmd: &Command<'_>,
        label: &str,
        on_untagged: &mut impl FnMut(Response),
    ) -> Result<String, ImapError> {
        self.ensure_usable(label)?;
        let tag = self.tag();
        let mut out: Vec<u8> = Vec::with_capacity(256);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        for part in &cmd.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Literal(_) | Part::Spooled(_) => {
                    let len = match part {
                        Part::Literal(data) => data.len(),
                        Part::Spooled(spool) => spool.len() as usize,
                        Part::Text(_) => 0,
                    };
                    let plus =
                        self.caps.literal_plus() || (self.caps.literal_minus() && len <= 4096);
                    if plus {
                        out.extend_from_slice(format!("{{{len}+}}\r\n").as_bytes());
                    } else {
                        out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                        self.write(&out, label).await?;
                        out.clear();
                        self.flush(label).await?;
                        loop {
                            match self.read_response(label).await? {
                                Response::Continue(_) => break,
                                Response::Tagged {
                                    tag: t,
                                    status,
                                    text,
                                } if t == tag => {
                                    self.completion(status, text, label)?;
                                    return Err(ImapError::protocol(
                                        self.ctx(label),
                                        "command completed before its literal was sent",
                                    ));
                                }
                                other => on_untagged(other),
                            }
                        }
                    }
                    match part {
                        Part::Spooled(spool) => {
                            self.write(&out, label).await?;
                            out.clear();
                            self.write_spool(spool, label).await?;
                        }
                        Part::Literal(data) if data.len() >= DIRECT_WRITE => {
                            self.write(&out, label).await?;
                            out.clear();
                            self.write(data, label).await?;
                        }
                        Part::Literal(data) => {
                            out.extend_from_slice(data);
                            if out.len() >= WRITE_CHUNK {
                                self.write(&out, label).await?;
                                out.clear();
                            }
                        }
                        Part::Text(_) => {}
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.write(&out, label).await?;
        self.flush(label).await?;
        Ok(tag)
    }

    /// Reads until the completion of `tag`.
    pub(crate) async fn finish(
        &mut self,
        tag: &str,
        label: &str,
        mut on_untagged: impl FnMut(Response),
    ) -> Result<RespText, ImapError> {
        loop {
            match self.read_response(label).await? {
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => return self.completion(status, text, label),
                Response::Tagged { tag: t, .. } => {
                    self.broken = true;
                    return Err(ImapError::protocol(
                        self.ctx(label),
                        format!("completion for unknown tag {t} while waiting for {tag}"),
                    ));
                }
                Response::UntaggedStatus {
                    status: Status::Bye,
                    text,
                } => {
                    // The server is closing; the EOF that follows becomes the error.
                    tracing::debug!(host = %self.host, "server said BYE: {}", text.text);
                }
                other => on_untagged(other),
            }
        }
    }

    /// Reads the completions of several pipelined commands (in any order). The outer error is a
    /// connection failure (every command's outcome unknown); the inner ones are per-command NO/BAD.
    pub(crate) async fn finish_all(
        &mut self,
        tags: &[String],
        label: &str,
        mut on_untagged: impl FnMut(Response),
    ) -> Result<Vec<Result<RespText, ImapError>>, ImapError> {
        let mut results: Vec<Option<Result<RespText, ImapError>>> =
            tags.iter().map(|_| None).collect();
        let mut pending = tags.len();
        while pending > 0 {
            match self.read_response(label).await? {
                Response::Tagged { tag, status, text } => {
                    let Some(i) = tags.iter().position(|t| *t == tag) else {
                        self.broken = true;
                        return Err(ImapError::protocol(
                            self.ctx(label),
                            format!("completion for unknown tag {tag}"),
                        ));
                    };
                    if results[i].is_none() {
                        pending -= 1;
                    }
                    results[i] = Some(self.completion(status, text, label));
                }
                Response::UntaggedStatus {
                    status: Status::Bye,
                    text,
                } => {
                    tracing::debug!(host = %self.host, "server said BYE: {}", text.text);
                }
                other => on_untagged(other),
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// LOGOUT, ignoring any failure (the session ends either way).
    pub(crate) async fn logout(mut self) {
        if self.broken {
            return;
        }
        self.timeout = self.timeout.min(Duration::from_secs(5));
        let _ = self.run(&Command::new("LOGOUT"), "LOGOUT").await;
    }
}

/// Untagged responses of one command and its completion text.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) untagged: Vec<Response>,
    pub(crate) done: RespText,
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    tcp: TcpStream,
    t: Duration,
    ctx: Box<ErrorContext>,
) -> Result<Stream, ImapError> {
    match tokio::time::timeout(t, transport::handshake(connector, host, tcp)).await {
        Err(_) => Err(ImapError::timeout(ctx, t)),
        Ok(Err(reason)) => Err(ImapError::new(ctx, ErrorKind::Tls { reason })),
        Ok(Ok(s)) => Ok(s),
    }
}
