//! A scripted hostile IMAP server: plain text on 127.0.0.1, answering LOGIN, CAPABILITY, LIST,
//! NAMESPACE, SELECT/EXAMINE, STATUS, (UID) FETCH, UID SEARCH and LOGOUT from a [`Script`], with
//! per-scenario overrides of single replies (malformed lines, a FETCH without `BODY[]` or with
//! `BODY[] NIL`, a huge UIDNEXT, EOF in the middle of a SELECT reply, 8-bit folder names, no
//! folders at all).
//!
//! The one hand-written server in the tests, and on purpose: real servers do not send these
//! replies. Everything it does not script is the plain RFC 3501 answer, so mailferry (the client
//! under test) reaches the reply being tested. Every command line received is logged, so a test
//! can count round trips.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message of a scripted folder.
#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    pub body: Vec<u8>,
}

/// One scripted folder; `name` is sent exactly as these bytes (quoted) in LIST.
#[derive(Debug, Clone)]
pub struct Folder {
    pub name: Vec<u8>,
    pub uid_validity: u32,
    /// `None`: one above the highest UID.
    pub uid_next: Option<u32>,
    pub messages: Vec<Msg>,
}

impl Folder {
    /// A folder holding `bodies` at UIDs 1, 2, ...
    pub fn new(name: &[u8], bodies: &[Vec<u8>]) -> Folder {
        Folder {
            name: name.to_vec(),
            uid_validity: 7,
            uid_next: None,
            messages: bodies
                .iter()
                .enumerate()
                .map(|(i, b)| Msg {
                    uid: i as u32 + 1,
                    body: b.clone(),
                })
                .collect(),
        }
    }
}

/// How a FETCH of `BODY.PEEK[]` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bodies {
    #[default]
    Normal,
    /// The FETCH response carries UID and RFC822.SIZE but no `BODY[]`.
    Missing,
    /// `BODY[] NIL`.
    Nil,
}

/// A scripted answer replacing the normal one for a command verb.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These bytes instead of the whole answer (`$TAG` is replaced by the command's tag).
    Raw(Vec<u8>),
    /// These bytes, then the connection is closed.
    Close(Vec<u8>),
}

/// What the server serves.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub folders: Vec<Folder>,
    /// Names LIST shows that do not exist (their EXAMINE gets NO).
    pub phantoms: Vec<Vec<u8>>,
    pub bodies: Bodies,
    /// (verb, reply): the first matching entry answers a command whose verb (`LIST`, `EXAMINE`,
    /// `UID FETCH`, ...) is this one.
    pub overrides: Vec<(String, Reply)>,
}

impl Script {
    pub fn with(folders: Vec<Folder>) -> Script {
        Script {
            folders,
            ..Script::default()
        }
    }
    pub fn answer(mut self, verb: &str, reply: Reply) -> Script {
        self.overrides.push((verb.to_owned(), reply));
        self
    }
}

/// A running hostile server; stops when dropped.
pub struct Hostile {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    pub async fn start(script: Script) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let l = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (script, log) = (Arc::clone(&script), Arc::clone(&l));
                tokio::spawn(async move {
                    let _ = serve(sock, &script, &log).await;
                });
            }
        });
        Hostile { port, log, task }
    }

    /// Command lines received so far (tags stripped, literals shown as `{n}`).
    pub fn commands(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many received commands start with `prefix` (case-insensitive).
    pub fn count(&self, prefix: &str) -> usize {
        let p = prefix.to_ascii_uppercase();
        self.commands()
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with(&p))
            .count()
    }
}

/// One parsed command: tag, verb words, arguments (atoms, quoted strings and literals as bytes).
struct Cmd {
    tag: String,
    verb: String,
    args: Vec<Vec<u8>>,
}

async fn serve(sock: TcpStream, script: &Script, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ NAMESPACE] hostile ready\r\n")
        .await?;
    let mut selected: Option<usize> = None;
    loop {
        let Some((raw, shown)) = read_command(&mut r, &mut w).await? else {
            return Ok(());
        };
        let Some(cmd) = parse(&raw) else {
            w.write_all(b"* BAD unparseable\r\n").await?;
            continue;
        };
        log.lock().unwrap().push(shown);
        let t = &cmd.tag;
        if let Some((_, reply)) = script.overrides.iter().find(|(v, _)| *v == cmd.verb) {
            match reply {
                Reply::Raw(bytes) => w.write_all(&subst(bytes, t)).await?,
                Reply::Close(bytes) => {
                    w.write_all(&subst(bytes, t)).await?;
                    w.shutdown().await?;
                    return Ok(());
                }
            }
            continue;
        }
        let mut out: Vec<u8> = Vec::new();
        match cmd.verb.as_str() {
            "LOGIN" | "NOOP" | "ENABLE" | "CHECK" => {}
            "CAPABILITY" => out.extend_from_slice(b"* CAPABILITY IMAP4rev1 LITERAL+ NAMESPACE\r\n"),
            "NAMESPACE" => out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"),
            "LOGOUT" => {
                w.write_all(format!("* BYE bye\r\n{t} OK LOGOUT\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
            "LIST" => {
                let names = script.folders.iter().map(|f| &f.name);
                for name in names.chain(&script.phantoms) {
                    out.extend_from_slice(b"* LIST () \"/\" ");
                    out.extend_from_slice(&quoted(name));
                    out.extend_from_slice(b"\r\n");
                }
            }
            "SELECT" | "EXAMINE" | "STATUS" => {
                let name = cmd.args.first().cloned().unwrap_or_default();
                let Some(i) = script.folders.iter().position(|f| f.name == name) else {
                    selected = None;
                    w.write_all(format!("{t} NO no such mailbox\r\n").as_bytes())
                        .await?;
                    continue;
                };
                let f = &script.folders[i];
                let next = f
                    .uid_next
                    .unwrap_or_else(|| f.messages.iter().map(|m| m.uid).max().unwrap_or(0) + 1);
                if cmd.verb == "STATUS" {
                    out.extend_from_slice(b"* STATUS ");
                    out.extend_from_slice(&quoted(&f.name));
                    out.extend_from_slice(
                        format!(
                            " (MESSAGES {} UIDNEXT {next} UIDVALIDITY {})\r\n",
                            f.messages.len(),
                            f.uid_validity
                        )
                        .as_bytes(),
                    );
                } else {
                    selected = Some(i);
                    out.extend_from_slice(
                        format!(
                            "* FLAGS (\\Seen)\r\n* {} EXISTS\r\n* OK [UIDVALIDITY {}] v\r\n* OK [UIDNEXT {next}] n\r\n",
                            f.messages.len(),
                            f.uid_validity
                        )
                        .as_bytes(),
                    );
                }
            }
            "UID FETCH" | "FETCH" | "UID SEARCH" => {
                let Some(f) = selected.map(|i| &script.folders[i]) else {
                    w.write_all(format!("{t} BAD no mailbox selected\r\n").as_bytes())
                        .await?;
                    continue;
                };
                let by_uid = cmd.verb != "FETCH";
                // `UID SEARCH UID set` (the `UID` key dropped by `parse`) or `UID SEARCH ALL`.
                let set = match cmd.args.first() {
                    Some(s) if s.as_slice() != b"ALL" => String::from_utf8_lossy(s).into_owned(),
                    _ => "1:*".to_owned(),
                };
                let rest = String::from_utf8_lossy(&raw).to_ascii_uppercase();
                let wants_body = rest.contains("BODY.PEEK[]") || rest.contains("BODY[]");
                let mut hits = Vec::new();
                for (seq, m) in f.messages.iter().enumerate() {
                    let (key, top) = if by_uid {
                        (m.uid, f.messages.last().map_or(0, |m| m.uid))
                    } else {
                        (seq as u32 + 1, f.messages.len() as u32)
                    };
                    if in_set(&set, key, top) {
                        hits.push((seq + 1, m));
                    }
                }
                if cmd.verb == "UID SEARCH" {
                    out.extend_from_slice(b"* SEARCH");
                    for (_, m) in &hits {
                        out.extend_from_slice(format!(" {}", m.uid).as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
                for (seq, m) in hits.iter().filter(|_| cmd.verb != "UID SEARCH") {
                    out.extend_from_slice(
                        format!("* {seq} FETCH (UID {} RFC822.SIZE {}", m.uid, m.body.len())
                            .as_bytes(),
                    );
                    if wants_body {
                        match script.bodies {
                            Bodies::Normal => {
                                out.extend_from_slice(
                                    format!(" BODY[] {{{}}}\r\n", m.body.len()).as_bytes(),
                                );
                                out.extend_from_slice(&m.body);
                            }
                            Bodies::Missing => {}
                            Bodies::Nil => out.extend_from_slice(b" BODY[] NIL"),
                        }
                    } else {
                        // The Message-ID line of the body itself, as a real server would send.
                        let header = message_id_line(&m.body);
                        out.extend_from_slice(
                            format!(
                                " FLAGS () INTERNALDATE \" 7-Jul-2017 10:00:00 +0200\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n{header}",
                                header.len()
                            )
                            .as_bytes(),
                        );
                    }
                    out.extend_from_slice(b")\r\n");
                }
            }
            _ => {
                w.write_all(format!("{t} BAD unknown command\r\n").as_bytes())
                    .await?;
                continue;
            }
        }
        out.extend_from_slice(format!("{t} OK {} done\r\n", cmd.verb).as_bytes());
        w.write_all(&out).await?;
    }
}

/// Reads one command with its literals (`{n}` gets a continuation, `{n+}` does not). Returns
/// the raw bytes and a printable form for the log (literals as `{n}`).
async fn read_command(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<Option<(Vec<u8>, String)>> {
    let mut raw = Vec::new();
    let mut shown = String::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        raw.extend_from_slice(&line);
        let literal = text
            .strip_suffix('}')
            .and_then(|t| t.rsplit_once('{'))
            .map(|(_, n)| (n.ends_with('+'), n.trim_end_matches('+').parse::<usize>()));
        match literal {
            Some((plus, Ok(n))) => {
                shown.push_str(text.rsplit_once('{').map_or("", |(a, _)| a));
                shown.push_str(&format!("{{{n}}}"));
                if !plus {
                    w.write_all(b"+ go on\r\n").await?;
                }
                let mut data = vec![0; n];
                r.read_exact(&mut data).await?;
                raw.extend_from_slice(&data);
            }
            _ => {
                shown.push_str(&text);
                let shown = shown
                    .split_once(' ')
                    .map_or(shown.clone(), |(_, s)| s.into());
                return Ok(Some((raw, shown)));
            }
        }
    }
}

/// Splits a command into tag, verb (two words for `UID x`) and arguments.
fn parse(raw: &[u8]) -> Option<Cmd> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let mut v = Vec::new();
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' {
                        i += 1;
                    }
                    v.push(raw[i]);
                    i += 1;
                }
                i += 1;
                args.push(v);
            }
            b'{' => {
                let close = i + raw[i..].iter().position(|&b| b == b'}')?;
                let n: usize = String::from_utf8_lossy(&raw[i + 1..close])
                    .trim_end_matches('+')
                    .parse()
                    .ok()?;
                let start = close + 3;
                args.push(raw.get(start..start + n)?.to_vec());
                i = start + n;
            }
            b'(' => {
                // Parenthesised attribute lists are read by the caller from the raw line.
                let mut depth = 0;
                while i < raw.len() {
                    match raw[i] {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => {
                let start = i;
                while i < raw.len() && !b" \r\n(".contains(&raw[i]) {
                    i += 1;
                }
                args.push(raw[start..i].to_vec());
            }
        }
    }
    let mut it = args.into_iter();
    let tag = String::from_utf8(it.next()?).ok()?;
    let mut verb = String::from_utf8(it.next()?).ok()?.to_ascii_uppercase();
    if verb == "UID" {
        verb = format!(
            "UID {}",
            String::from_utf8(it.next()?).ok()?.to_ascii_uppercase()
        );
    }
    let mut args: Vec<Vec<u8>> = it.collect();
    if verb == "LIST" || verb == "UID SEARCH" && args.first().is_some_and(|a| a == b"UID") {
        args.remove(0);
    }
    Some(Cmd { tag, verb, args })
}

fn quoted(name: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in name {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

fn subst(bytes: &[u8], tag: &str) -> Vec<u8> {
    let text = bytes
        .windows(4)
        .position(|w| w == b"$TAG")
        .map(|p| [&bytes[..p], tag.as_bytes(), &bytes[p + 4..]].concat());
    match text {
        Some(t) => subst(&t, tag),
        None => bytes.to_vec(),
    }
}

/// Whether `n` is in an IMAP sequence set, `*` being `top`.
fn in_set(set: &str, n: u32, top: u32) -> bool {
    let num = |s: &str| {
        if s == "*" {
            Some(top)
        } else {
            s.parse::<u32>().ok()
        }
    };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&n),
            _ => false,
        },
        None => num(part) == Some(n),
    })
}

/// `HEADER.FIELDS (MESSAGE-ID)` of a message: its Message-ID line (if any) and the blank line.
fn message_id_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let line = head
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"));
    match line {
        Some(l) => format!("{l}\r\n\r\n"),
        None => "\r\n".to_owned(),
    }
}
