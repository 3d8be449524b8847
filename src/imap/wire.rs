//! IMAP wire format: reading one complete server response (line plus any literals) and
//! tokenising it into a small generic tree, and encoding command arguments.
//!
//! Why not async-imap's parser: imap-proto cannot parse NAMESPACE, `STATUS ... SIZE` or ESEARCH,
//! and after any reply it cannot parse async-imap's session keeps answering Ok with empty results
//! (see docs/decisions.md on the IMAP layer), which can make a migration believe a
//! folder is empty. A generic tokenizer never fails on an unknown response; interpretation
//! happens in the callers, which check every count. The framing is also what lets the sink
//! pipeline APPENDs with non-UTF-8 literals.

use std::borrow::Cow;

use crate::body::{Body, Spool};

/// One token of a server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// An atom or number (including bracketed parts like `BODY[HEADER.FIELDS (MESSAGE-ID)]`).
    Atom(String),
    /// A quoted string or a literal: raw bytes.
    Str(Vec<u8>),
    /// A literal of [`crate::body::SPOOL_AT`] bytes or more, written to a spool as it was read.
    Spooled(Spool),
    Nil,
    List(Vec<Value>),
}

impl Value {
    /// Atom or string as text (lossy for non-UTF-8 bytes).
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Atom(a) => Some(Cow::Borrowed(a)),
            Value::Str(s) => Some(String::from_utf8_lossy(s)),
            _ => None,
        }
    }
    pub(crate) fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }
    pub(crate) fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// Takes the bytes of a string/literal (`NIL` and spooled literals give `None`).
    pub(crate) fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.into_bytes()),
            _ => None,
        }
    }
    /// Takes a string/literal as a message body, in memory or spooled (`NIL` gives `None`).
    pub(crate) fn into_body(self) -> Option<Body> {
        match self {
            Value::Spooled(s) => Some(Body::Spooled(s)),
            other => other.into_bytes().map(Body::Memory),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    No,
    Bad,
    Bye,
    Preauth,
}

impl Status {
    fn parse(word: &str) -> Option<Status> {
        match word.to_ascii_uppercase().as_str() {
            "OK" => Some(Status::Ok),
            "NO" => Some(Status::No),
            "BAD" => Some(Status::Bad),
            "BYE" => Some(Status::Bye),
            "PREAUTH" => Some(Status::Preauth),
            _ => None,
        }
    }
}

/// A status response's `[CODE args]` and human text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RespText {
    /// The code's tokens, first one upper-cased (`["UIDVALIDITY", "42"]`).
    pub(crate) code: Option<Vec<Value>>,
    pub(crate) text: String,
}

impl RespText {
    /// The code's name (`UIDVALIDITY`), upper-case.
    pub(crate) fn code_name(&self) -> Option<&str> {
        match self.code.as_ref()?.first()? {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }
    /// The code's first argument as a number.
    pub(crate) fn code_number(&self) -> Option<u64> {
        self.code.as_ref()?.get(1)?.number()
    }
    /// The whole code as text, for error messages.
    pub(crate) fn code_string(&self) -> Option<String> {
        let code = self.code.as_ref()?;
        Some(code.iter().map(display_value).collect::<Vec<_>>().join(" "))
    }
}

fn display_value(v: &Value) -> String {
    match v {
        Value::Atom(a) => a.clone(),
        Value::Str(s) => format!("\"{}\"", String::from_utf8_lossy(s)),
        Value::Spooled(s) => format!("{{{} bytes}}", s.len()),
        Value::Nil => "NIL".to_owned(),
        Value::List(l) => format!(
            "({})",
            l.iter().map(display_value).collect::<Vec<_>>().join(" ")
        ),
    }
}

/// One complete server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// `+ ...`: the server waits for more (a literal or a SASL step).
    Continue(String),
    Tagged {
        tag: String,
        status: Status,
        text: RespText,
    },
    /// `* OK/NO/BAD/BYE/PREAUTH [...] text`.
    UntaggedStatus { status: Status, text: RespText },
    /// `* [number] NAME args...` (`* 3 EXISTS`, `* 7 FETCH (...)`, `* LIST (...) "/" INBOX`).
    Data {
        number: Option<u32>,
        name: String,
        args: Vec<Value>,
    },
}

/// Why a response could not be tokenised: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {at} near {near:?}")]
pub(crate) struct WireError {
    pub(crate) kind: WireErrorKind,
    /// Byte offset in the framed response.
    pub(crate) at: usize,
    /// Up to 40 bytes either side, lossily decoded, for the operator.
    pub(crate) near: String,
}

/// The ways a framed response can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireErrorKind {
    #[error("empty response")]
    Empty,
    #[error("tagged response without status")]
    TaggedWithoutStatus,
    #[error("unterminated response code")]
    UnterminatedCode,
    #[error("unterminated list")]
    UnterminatedList,
    #[error("lists nested more than {MAX_NESTING} deep")]
    TooDeep,
    #[error("unterminated quoted string")]
    UnterminatedQuoted,
    #[error("bad literal announcement")]
    BadLiteral,
    #[error("bad side literal")]
    BadSideLiteral,
    #[error("literal without CRLF")]
    LiteralWithoutCrlf,
    #[error("literal shorter than announced")]
    ShortLiteral,
    #[error("unexpected character")]
    Unexpected,
}

/// Deepest list nesting accepted. The tokenizer recurses per level, so an unbounded depth would
/// let `((((...` overflow the stack; real responses (BODYSTRUCTURE of nested multiparts)
/// stay far below this.
pub(crate) const MAX_NESTING: usize = 100;

/// FETCH attributes whose `[section]` may contain spaces and parentheses
/// (`BODY[HEADER.FIELDS (MESSAGE-ID)]`); after any other atom `[` is an ordinary atom character
/// (`$a[b` is a legal keyword).
const SECTION_ATOMS: [&str; 5] = ["BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"];

/// Parses one response as framed by [`literal_announced`] (line, literals inline, final CRLF).
#[cfg(test)]
pub(crate) fn parse_response(buf: &[u8]) -> Result<Response, WireError> {
    parse_response_with(buf, &mut Vec::new())
}

/// Like [`parse_response`], where large literals were read aside: `{@k}` + CRLF in `buf` stands
/// for `side[k]`, which is moved (not copied) into the value. Saves one copy of every body, and
/// lets the largest ones stay on disk.
pub(crate) fn parse_response_with(buf: &[u8], side: &mut [Body]) -> Result<Response, WireError> {
    let mut c = Cursor {
        buf,
        pos: 0,
        side,
        depth: 0,
    };
    if c.peek() == Some(b'+') {
        c.pos += 1;
        c.skip_spaces();
        return Ok(Response::Continue(c.rest_of_line()));
    }
    let tag = c.word();
    if tag.is_empty() {
        return Err(c.error(WireErrorKind::Empty));
    }
    c.skip_spaces();
    if tag != "*" {
        let word = c.word();
        let status =
            Status::parse(&word).ok_or_else(|| c.error(WireErrorKind::TaggedWithoutStatus))?;
        let text = c.resp_text()?;
        return Ok(Response::Tagged { tag, status, text });
    }
    let mut word = c.word();
    let mut number = None;
    if let Ok(n) = word.parse::<u32>() {
        number = Some(n);
        c.skip_spaces();
        word = c.word();
    }
    if number.is_none()
        && let Some(status) = Status::parse(&word)
    {
        let text = c.resp_text()?;
        return Ok(Response::UntaggedStatus { status, text });
    }
    let name = word.to_ascii_uppercase();
    let mut args = Vec::new();
    loop {
        c.skip_spaces();
        if c.at_line_end() {
            break;
        }
        args.push(c.value(false)?);
    }
    Ok(Response::Data { number, name, args })
}

/// If a line (ending in CRLF or LF) ends with a literal announcement `{N}` / `{N+}` / `~{N}`,
/// the literal's length.
pub(crate) fn literal_announced(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = inner.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    literal_length(digits)
}

/// `number` of a literal announcement: ASCII digits only (`str::parse` would also take a sign).
fn literal_length(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Position in one framed response. Every index is checked (`get`, `checked_add`): the bytes
/// come from the server, and no byte sequence may panic.
struct Cursor<'a, 's> {
    buf: &'a [u8],
    pos: usize,
    side: &'s mut [Body],
    /// Lists currently open.
    depth: usize,
}

impl Cursor<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }
    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.buf.get(self.pos.checked_add(ahead)?).copied()
    }
    fn error(&self, kind: WireErrorKind) -> WireError {
        let at = self.pos.min(self.buf.len());
        let start = at.saturating_sub(40);
        let end = at.saturating_add(40).min(self.buf.len());
        WireError {
            kind,
            at,
            near: String::from_utf8_lossy(self.buf.get(start..end).unwrap_or_default())
                .into_owned(),
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }
    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\r') | Some(b'\n'))
    }
    /// The bytes from `start` to the cursor.
    fn since(&self, start: usize) -> &[u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }
    /// A run of non-space, non-CRLF bytes.
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b' ' || b == b'\r' || b == b'\n' {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(self.since(start)).into_owned()
    }
    fn rest_of_line(&mut self) -> String {
        let start = self.pos;
        while !self.at_line_end() {
            self.pos += 1;
        }
        String::from_utf8_lossy(self.since(start)).into_owned()
    }
    fn resp_text(&mut self) -> Result<RespText, WireError> {
        self.skip_spaces();
        let mut code = None;
        if self.peek() == Some(b'[') {
            self.pos += 1;
            let mut tokens = Vec::new();
            loop {
                self.skip_spaces();
                match self.peek() {
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    None | Some(b'\r') | Some(b'\n') => {
                        return Err(self.error(WireErrorKind::UnterminatedCode));
                    }
                    _ => tokens.push(self.value(true)?),
                }
            }
            if let Some(Value::Atom(first)) = tokens.first_mut() {
                *first = first.to_ascii_uppercase();
            }
            code = Some(tokens);
        }
        self.skip_spaces();
        Ok(RespText {
            code,
            text: self.rest_of_line(),
        })
    }
    /// One value. In a response code an atom also ends at `]`.
    fn value(&mut self, in_code: bool) -> Result<Value, WireError> {
        match self.peek() {
            Some(b'(') => self.list(in_code),
            Some(b'"') => self.quoted(),
            // literal8 (RFC 3516): `~` only announces one when `{` follows; `~archive` is an atom.
            Some(b'~') if self.peek_at(1) == Some(b'{') => {
                self.pos += 1;
                self.literal()
            }
            Some(b'{') => self.literal(),
            _ => self.atom(in_code),
        }
    }
    fn list(&mut self, in_code: bool) -> Result<Value, WireError> {
        if self.depth >= MAX_NESTING {
            return Err(self.error(WireErrorKind::TooDeep));
        }
        self.depth += 1;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::List(items));
                }
                None | Some(b'\r') | Some(b'\n') => {
                    return Err(self.error(WireErrorKind::UnterminatedList));
                }
                _ => items.push(self.value(in_code)?),
            }
        }
    }
    fn quoted(&mut self) -> Result<Value, WireError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    if let Some(b) = self.peek() {
                        out.push(b);
                        self.pos += 1;
                    }
                }
                Some(b'\r') | Some(b'\n') | None => {
                    return Err(self.error(WireErrorKind::UnterminatedQuoted));
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }
    /// `{N}` / `{N+}` then CRLF and N bytes, or `{@k}` then CRLF for a side literal. The cursor
    /// is on `{`.
    fn literal(&mut self) -> Result<Value, WireError> {
        let rest = self.buf.get(self.pos + 1..).unwrap_or_default();
        let close = rest
            .iter()
            .position(|&b| b == b'}')
            .ok_or_else(|| self.error(WireErrorKind::BadLiteral))?;
        let spec = &rest[..close];
        if let Some(index) = spec.strip_prefix(b"@") {
            let k = literal_length(index)
                .filter(|&k| k < self.side.len())
                .ok_or_else(|| self.error(WireErrorKind::BadSideLiteral))?;
            self.pos += close + 2;
            if self.buf.get(self.pos..self.pos + 2) != Some(b"\r\n") {
                return Err(self.error(WireErrorKind::LiteralWithoutCrlf));
            }
            self.pos += 2;
            return Ok(
                match std::mem::replace(&mut self.side[k], Body::Memory(Vec::new())) {
                    Body::Memory(v) => Value::Str(v),
                    Body::Spooled(s) => Value::Spooled(s),
                },
            );
        }
        let digits = spec.strip_suffix(b"+").unwrap_or(spec);
        let len = literal_length(digits).ok_or_else(|| self.error(WireErrorKind::BadLiteral))?;
        self.pos += close + 2;
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        if self.peek() != Some(b'\n') {
            return Err(self.error(WireErrorKind::LiteralWithoutCrlf));
        }
        self.pos += 1;
        let data = self
            .pos
            .checked_add(len)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| self.error(WireErrorKind::ShortLiteral))?;
        self.pos += len;
        Ok(Value::Str(data.to_vec()))
    }
    /// An atom, number or `NIL`: up to a space, parenthesis or line end (and `]` in a response
    /// code), except inside the `[section]` of a [`SECTION_ATOMS`] attribute.
    fn atom(&mut self, in_code: bool) -> Result<Value, WireError> {
        let start = self.pos;
        let mut in_section = false;
        while let Some(b) = self.peek() {
            match b {
                b'\r' | b'\n' => break,
                b'[' if !in_section
                    && SECTION_ATOMS
                        .iter()
                        .any(|a| a.as_bytes().eq_ignore_ascii_case(self.since(start))) =>
                {
                    in_section = true;
                }
                b']' if in_section => in_section = false,
                _ if in_section => {}
                b']' if in_code => break,
                b' ' | b'(' | b')' => break,
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(WireErrorKind::Unexpected));
        }
        let atom = String::from_utf8_lossy(self.since(start)).into_owned();
        if atom.eq_ignore_ascii_case("NIL") {
            Ok(Value::Nil)
        } else {
            Ok(Value::Atom(atom))
        }
    }
}

/// One piece of a command: text, or a literal sent as `{N}` / `{N+}` plus its bytes.
#[derive(Debug, Clone)]
pub(crate) enum Part<'a> {
    Text(Cow<'a, [u8]>),
    Literal(&'a [u8]),
    /// A literal streamed from a spool file.
    Spooled(&'a Spool),
}

/// A command being built (without the tag and final CRLF).
#[derive(Debug, Clone, Default)]
pub(crate) struct Command<'a> {
    pub(crate) parts: Vec<Part<'a>>,
}

impl<'a> Command<'a> {
    pub(crate) fn new(text: &str) -> Command<'a> {
        let mut c = Command::default();
        c.text(text);
        c
    }
    /// Appends raw text (must not contain CR or LF).
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        if let Some(Part::Text(Cow::Owned(last))) = self.parts.last_mut() {
            last.extend_from_slice(text.as_bytes());
        } else {
            self.parts
                .push(Part::Text(Cow::Owned(text.as_bytes().to_vec())));
        }
        self
    }
    /// Appends an astring: an atom when safe, else a quoted string, else a literal.
    pub(crate) fn astring(&mut self, value: &'a str) -> &mut Self {
        let bytes = value.as_bytes();
        let atom_safe = !bytes.is_empty()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
        if atom_safe {
            self.text(value)
        } else if bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            let quoted = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
            self.text(&quoted)
        } else {
            self.literal(bytes)
        }
    }
    /// Appends a literal.
    pub(crate) fn literal(&mut self, bytes: &'a [u8]) -> &mut Self {
        self.parts.push(Part::Literal(bytes));
        self
    }
    /// Appends a message body as a literal (a spooled one is streamed from its file).
    pub(crate) fn body(&mut self, body: &'a Body) -> &mut Self {
        match body {
            Body::Memory(v) => self.literal(v),
            Body::Spooled(s) => {
                self.parts.push(Part::Spooled(s));
                self
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(line: &str) -> (Option<u32>, String, Vec<Value>) {
        match parse_response(line.as_bytes()).expect("parses") {
            Response::Data { number, name, args } => (number, name, args),
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn fetch_with_literal_header_section() {
        let raw = b"* 3 FETCH (UID 7 FLAGS (\\Seen $Forwarded) INTERNALDATE \" 7-Jul-2017 10:00:00 +0200\" RFC822.SIZE 120 BODY[HEADER.FIELDS (MESSAGE-ID)] {23}\r\nMessage-ID: <a@b>\r\n\r\n\r\n)\r\n";
        let (n, name, args) = match parse_response(raw).expect("parses") {
            Response::Data { number, name, args } => (number, name, args),
            other => panic!("{other:?}"),
        };
        assert_eq!((n, name.as_str()), (Some(3), "FETCH"));
        let items = args[0].list().expect("list");
        assert_eq!(items[0], Value::Atom("UID".into()));
        assert_eq!(
            items[8],
            Value::Atom("BODY[HEADER.FIELDS (MESSAGE-ID)]".into())
        );
        assert_eq!(
            items[9],
            Value::Str(b"Message-ID: <a@b>\r\n\r\n\r\n".to_vec())
        );
    }

    #[test]
    fn list_status_namespace_and_codes() {
        let (_, name, args) = data("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n");
        assert_eq!(name, "LIST");
        assert_eq!(args[1], Value::Str(b"/".to_vec()));
        assert_eq!(args[2], Value::Str(b"Sent Items".to_vec()));
        let (_, _, args) = data("* LIST (\\Noselect) NIL foo\r\n");
        assert_eq!(args[1], Value::Nil);
        let (_, name, args) = data("* STATUS INBOX (MESSAGES 2 SIZE 12345)\r\n");
        assert_eq!(name, "STATUS");
        assert_eq!(args[1].list().expect("list")[3].number(), Some(12345));
        let (_, name, args) = data("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
        assert_eq!(name, "NAMESPACE");
        assert_eq!(args[1], Value::Nil);
        match parse_response(b"* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n").expect("parses") {
            Response::UntaggedStatus { status, text } => {
                assert_eq!(status, Status::Ok);
                assert_eq!(text.code_name(), Some("PERMANENTFLAGS"));
                assert_eq!(text.text, "Limited");
            }
            other => panic!("{other:?}"),
        }
        match parse_response(b"a1 OK [APPENDUID 38505 3955:3957] APPEND completed\r\n")
            .expect("parses")
        {
            Response::Tagged { tag, status, text } => {
                assert_eq!((tag.as_str(), status), ("a1", Status::Ok));
                assert_eq!(text.code_number(), Some(38505));
                assert_eq!(
                    text.code_string().as_deref(),
                    Some("APPENDUID 38505 3955:3957")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_response(b"+ go ahead\r\n"),
            Ok(Response::Continue("go ahead".into()))
        );
        assert_eq!(
            parse_response(b"+\r\n"),
            Ok(Response::Continue(String::new()))
        );
    }

    #[test]
    fn human_text_with_odd_characters_is_not_tokenised() {
        match parse_response(b"a2 NO [TRYCREATE] Mailbox doesn't exist: \"x (y\r\n")
            .expect("parses")
        {
            Response::Tagged { text, .. } => {
                assert_eq!(text.code_name(), Some("TRYCREATE"));
                assert_eq!(text.text, "Mailbox doesn't exist: \"x (y");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        for bad in [
            &b"* 1 FETCH (UID 1 BODY[] {10}\r\nabc"[..],
            b"* LIST (\\A \"/\r\n",
            b"* 1 FETCH (UID",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn side_literals_are_moved_in() {
        let mut side = vec![Body::Memory(b"BIG BODY".to_vec())];
        let r = parse_response_with(b"* 1 FETCH (UID 3 BODY[] {@0}\r\n)\r\n", &mut side)
            .expect("parses");
        let Response::Data { args, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            args[0].list().expect("list")[3],
            Value::Str(b"BIG BODY".to_vec())
        );
        assert!(parse_response_with(b"* 1 FETCH (BODY[] {@1}\r\n)\r\n", &mut side).is_err());
    }

    #[test]
    fn literal_announcement() {
        assert_eq!(literal_announced(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_announced(b"* 1 FETCH (BINARY[] ~{5}\r\n"), Some(5));
        assert_eq!(literal_announced(b"* OK done {x}\r\n"), None);
        assert_eq!(literal_announced(b"* OK done\r\n"), None);
    }

    #[test]
    fn astring_chooses_atom_quoted_or_literal() {
        let mut c = Command::new("LOGIN ");
        c.astring("alice")
            .text(" ")
            .astring("p a\"ss")
            .text(" ")
            .astring("pässword");
        let texts: Vec<String> = c
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Part::Literal(l) => format!("<lit {}>", l.len()),
                Part::Spooled(s) => format!("<spool {}>", s.len()),
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                "LOGIN alice \"p a\\\"ss\" ".to_owned(),
                "<lit 9>".to_owned()
            ]
        );
    }
}

#[cfg(test)]
pub(crate) mod props;

#[cfg(test)]
mod known_answers;
