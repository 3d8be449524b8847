//! The Dovecot harness's loader: a minimal synchronous IMAP client over the plain port that
//! logs in, creates folders and APPENDs with MULTIAPPEND + LITERAL+ (so thousands of messages load
//! in seconds). Independent of mailferry's own IMAP code on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use chrono::{DateTime, FixedOffset};
use mailferry::model::Flags;

/// A minimal synchronous IMAP client over the plain port.
pub(super) struct Loader {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    separator: char,
}

impl Loader {
    pub(super) fn connect(port: u16, user: &str, password: &str, separator: char) -> Loader {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Dovecot");
        stream.set_nodelay(true).ok();
        let writer = stream.try_clone().expect("clone stream");
        let mut l = Loader {
            reader: BufReader::new(stream),
            writer,
            next_tag: 0,
            separator,
        };
        let greeting = l.read_line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        l.command_ok(&format!("LOGIN {} {}", quote(user), quote(password)));
        l
    }

    pub(super) fn wire_name(&self, folder: &[&str]) -> String {
        if folder.len() == 1 && folder[0].eq_ignore_ascii_case("INBOX") {
            return "INBOX".to_owned();
        }
        folder
            .iter()
            .map(|s| mailferry::utf7::encode(s))
            .collect::<Vec<_>>()
            .join(&self.separator.to_string())
    }

    pub(super) fn create(&mut self, folder: &[&str]) {
        let name = self.wire_name(folder);
        if name == "INBOX" {
            return;
        }
        let tag = self.send(&format!("CREATE {}", quote(&name)));
        let (status, lines) = self.read_tagged(&tag);
        assert!(
            status == "OK" || lines.last().is_some_and(|l| l.contains("ALREADYEXISTS")),
            "CREATE {name}: {lines:?}"
        );
    }

    pub(super) fn multiappend<B: AsRef<[u8]>>(
        &mut self,
        name: &str,
        messages: &[(B, Flags, DateTime<FixedOffset>)],
    ) -> Vec<u32> {
        self.next_tag += 1;
        let tag = format!("L{}", self.next_tag);
        let mut buf = Vec::new();
        buf.extend_from_slice(format!("{tag} APPEND {}", quote(name)).as_bytes());
        for (raw, flags, date) in messages {
            let raw = raw.as_ref();
            let atoms: Vec<String> = flags
                .to_atoms()
                .into_iter()
                .filter(|a| a != "\\Recent")
                .collect();
            buf.extend_from_slice(
                format!(
                    " ({}) \"{}\" {{{}+}}\r\n",
                    atoms.join(" "),
                    date.format("%d-%b-%Y %H:%M:%S %z"),
                    raw.len()
                )
                .as_bytes(),
            );
            buf.extend_from_slice(raw);
            if buf.len() > 1 << 20 {
                self.writer.write_all(&buf).expect("write APPEND");
                buf.clear();
            }
        }
        buf.extend_from_slice(b"\r\n");
        self.writer.write_all(&buf).expect("write APPEND");
        let (status, lines) = self.read_tagged(&tag);
        let last = lines.last().cloned().unwrap_or_default();
        assert_eq!(status, "OK", "APPEND to {name}: {last}");
        parse_appenduid(&last, messages.len())
    }

    pub(super) fn send(&mut self, command: &str) -> String {
        self.next_tag += 1;
        let tag = format!("L{}", self.next_tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("write command");
        tag
    }

    pub(super) fn command_ok(&mut self, command: &str) -> Vec<String> {
        let tag = self.send(command);
        let (status, lines) = self.read_tagged(&tag);
        assert_eq!(status, "OK", "{command}: {lines:?}");
        lines
    }

    /// Reads lines (skipping any literal payloads) until the tagged completion.
    pub(super) fn read_tagged(&mut self, tag: &str) -> (String, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            let done = line
                .strip_prefix(tag)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|rest| rest.split(' ').next().unwrap_or("").to_owned());
            lines.push(line);
            if let Some(status) = done {
                return (status, lines);
            }
        }
    }

    pub(super) fn read_line(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .expect("read from Dovecot");
            assert!(n > 0, "Dovecot closed the loader connection");
            out.extend_from_slice(&line);
            // A line ending in {N}\r\n announces N literal bytes, then the line continues.
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let literal = trimmed.strip_suffix(b"}").and_then(|t| {
                let open = t.iter().rposition(|&b| b == b'{')?;
                std::str::from_utf8(&t[open + 1..])
                    .ok()?
                    .parse::<usize>()
                    .ok()
            });
            match literal {
                Some(len) => {
                    let mut payload = vec![0; len];
                    self.reader.read_exact(&mut payload).expect("read literal");
                    out.extend_from_slice(&payload);
                }
                None => break,
            }
        }
        String::from_utf8_lossy(&out).trim_end().to_owned()
    }

    pub(super) fn logout(mut self) {
        let tag = self.send("LOGOUT");
        let _ = self.read_tagged(&tag);
    }
}

/// `[APPENDUID v 5:7]` or `[APPENDUID v 5,6,7]` into UIDs.
fn parse_appenduid(line: &str, count: usize) -> Vec<u32> {
    let Some(start) = line.find("[APPENDUID ") else {
        return Vec::new();
    };
    let rest = &line[start + 11..];
    let set = rest
        .split(']')
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("");
    let mut uids = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                uids.extend(a.min(b)..=a.max(b));
            }
            None => uids.extend(part.parse::<u32>().ok()),
        }
    }
    assert_eq!(uids.len(), count, "APPENDUID {line}");
    uids
}

/// An IMAP quoted string.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
