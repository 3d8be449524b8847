//! Known answers for the response tokenizer, one row per grammar production, each carrying the
//! ABNF line it exercises (RFC 3501 section 9 / RFC 9051 section 9, RFC 3516 for literal8,
//! RFC 4731 for ESEARCH). Token trees are written compactly: `a:` atom, `s:"…"` string (bytes
//! escaped), `nil`, `( … )` list, `[ … ]` a response code.

use super::*;

/// A token tree as text.
fn show(v: &Value) -> String {
    match v {
        Value::Atom(a) => format!("a:{a}"),
        Value::Str(s) => format!("s:\"{}\"", s.escape_ascii()),
        Value::Spooled(s) => format!("spooled:{}", s.len()),
        Value::Nil => "nil".to_owned(),
        Value::List(l) => format!("({})", l.iter().map(show).collect::<Vec<_>>().join(" ")),
    }
}

fn show_text(t: &RespText) -> String {
    let code = t.code.as_ref().map(|c| {
        let inner = c.iter().map(show).collect::<Vec<_>>().join(" ");
        format!("[{inner}] ")
    });
    format!("{}{:?}", code.unwrap_or_default(), t.text)
}

fn show_response(r: &Response) -> String {
    match r {
        Response::Continue(t) => format!("+ {t:?}"),
        Response::Tagged { tag, status, text } => format!("{tag} {status:?} {}", show_text(text)),
        Response::UntaggedStatus { status, text } => format!("* {status:?} {}", show_text(text)),
        Response::Data { number, name, args } => {
            let mut out = String::from("*");
            if let Some(n) = number {
                out.push_str(&format!(" {n}"));
            }
            out.push_str(&format!(" {name}"));
            for a in args {
                out.push(' ');
                out.push_str(&show(a));
            }
            out
        }
    }
}

/// (ABNF production, framed response, expected token tree).
const ANSWERS: &[(&str, &str, &str)] = &[
    (
        "atom = 1*ATOM-CHAR ; ATOM-CHAR = <any CHAR except atom-specials>",
        "* FLAGS (\\Seen ~archive $a[b ~} a]b)\r\n",
        "* FLAGS (a:\\Seen a:~archive a:$a[b a:~} a:a]b)",
    ),
    (
        "flag-list = \"(\" [flag *(SP flag)] \")\" ; flag-keyword = \"$MDNSent\" / \"$Forwarded\" / atom",
        "* FLAGS (\\Answered \\Flagged $Forwarded $MDNSent Junk)\r\n",
        "* FLAGS (a:\\Answered a:\\Flagged a:$Forwarded a:$MDNSent a:Junk)",
    ),
    (
        "quoted = DQUOTE *QUOTED-CHAR DQUOTE ; QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / \"\\\" quoted-specials",
        "* LIST () \"/\" \"a \\\"b\\\" \\\\c (d)\"\r\n",
        "* LIST () s:\"/\" s:\"a \\\"b\\\" \\\\c (d)\"",
    ),
    (
        "literal = \"{\" number64 [\"+\"] \"}\" CRLF *CHAR8",
        "* LIST () \"/\" {5}\r\na b)c\r\n",
        "* LIST () s:\"/\" s:\"a b)c\"",
    ),
    (
        "literal = \"{\" number64 [\"+\"] \"}\" CRLF *CHAR8 ; non-synchronizing form (RFC 7888)",
        "* LIST () \"/\" {2+}\r\nab\r\n",
        "* LIST () s:\"/\" s:\"ab\"",
    ),
    (
        "literal = \"{\" number64 [\"+\"] \"}\" CRLF *CHAR8 ; zero length",
        "* LIST () \"/\" {0}\r\n\r\n",
        "* LIST () s:\"/\" s:\"\"",
    ),
    (
        "literal8 = \"~{\" number64 \"}\" CRLF *OCTET ; msg-att-static =/ \"BINARY\" section-binary SP (nstring / literal8)",
        "* 1 FETCH (BINARY[] ~{3}\r\na\0b)\r\n",
        "* 1 FETCH (a:BINARY[] s:\"a\\x00b\")",
    ),
    (
        "nil = \"NIL\" ; ABNF strings are case-insensitive (RFC 5234 section 2.3)",
        "* LIST (\\Noselect) nil Foo\r\n",
        "* LIST (a:\\Noselect) nil a:Foo",
    ),
    (
        "mailbox-list = \"(\" [mbx-list-flags] \")\" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox",
        "* LIST (\\HasNoChildren \\Sent) \".\" INBOX.Sent\r\n",
        "* LIST (a:\\HasNoChildren a:\\Sent) s:\".\" a:INBOX.Sent",
    ),
    (
        "mailbox = \"INBOX\" / astring ; ATOM-CHAR includes \"~\" and \"}\"",
        "* LIST () \"/\" ~}\r\n",
        "* LIST () s:\"/\" a:~}",
    ),
    (
        "mbox-list-extended = \"(\" [mbox-list-extended-item *(SP mbox-list-extended-item)] \")\"",
        "* LIST () \"/\" INBOX (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
        "* LIST () s:\"/\" a:INBOX (s:\"CHILDINFO\" (s:\"SUBSCRIBED\"))",
    ),
    (
        "resp-text-code =/ \"PERMANENTFLAGS\" SP \"(\" [flag-perm *(SP flag-perm)] \")\"",
        "* OK [PERMANENTFLAGS (\\Seen $a[b \\*)] Limited\r\n",
        "* Ok [a:PERMANENTFLAGS (a:\\Seen a:$a[b a:\\*)] \"Limited\"",
    ),
    (
        "resp-text-code =/ \"UIDVALIDITY\" SP nz-number ; first atom upper-cased",
        "* OK [uidvalidity 3857529045] UIDs valid\r\n",
        "* Ok [a:UIDVALIDITY a:3857529045] \"UIDs valid\"",
    ),
    (
        "resp-code-apnd = \"APPENDUID\" SP nz-number SP append-uid (RFC 4315)",
        "a1 OK [APPENDUID 38505 3955:3957] APPEND completed\r\n",
        "a1 Ok [a:APPENDUID a:38505 a:3955:3957] \"APPEND completed\"",
    ),
    (
        "resp-text-code =/ atom [SP 1*<any TEXT-CHAR except \"]\">]",
        "a2 NO [TRYCREATE] Mailbox doesn't exist: \"x (y\r\n",
        "a2 No [a:TRYCREATE] \"Mailbox doesn't exist: \\\"x (y\"",
    ),
    (
        "status-att-list = status-att-val *(SP status-att-val) ; status-att =/ \"SIZE\" (RFC 9051)",
        "* STATUS \"Sent Items\" (MESSAGES 2 UIDNEXT 9 UIDVALIDITY 1 SIZE 12345)\r\n",
        "* STATUS s:\"Sent Items\" (a:MESSAGES a:2 a:UIDNEXT a:9 a:UIDVALIDITY a:1 a:SIZE a:12345)",
    ),
    (
        "esearch-response = \"ESEARCH\" [search-correlator] [SP \"UID\"] *(SP search-return-data)",
        "* ESEARCH (TAG \"a3\") UID ALL 1:3,5 COUNT 4\r\n",
        "* ESEARCH (a:TAG s:\"a3\") a:UID a:ALL a:1:3,5 a:COUNT a:4",
    ),
    (
        "msg-att-static =/ \"BODY\" section [\"<\" number \">\"] SP nstring ; section-text = \"HEADER.FIELDS\" SP header-list",
        "* 2 FETCH (UID 7 BODY[HEADER.FIELDS (MESSAGE-ID)]<0> {5}\r\nhello)\r\n",
        "* 2 FETCH (a:UID a:7 a:BODY[HEADER.FIELDS (MESSAGE-ID)]<0> s:\"hello\")",
    ),
    (
        "msg-att-static =/ \"INTERNALDATE\" SP date-time / \"RFC822.SIZE\" SP number64",
        "* 3 FETCH (INTERNALDATE \" 7-Jul-2017 10:00:00 +0200\" RFC822.SIZE 120 BODY[] NIL)\r\n",
        "* 3 FETCH (a:INTERNALDATE s:\" 7-Jul-2017 10:00:00 +0200\" a:RFC822.SIZE a:120 a:BODY[] nil)",
    ),
    (
        "message-data = nz-number SP (\"EXPUNGE\" / (\"FETCH\" SP msg-att))",
        "* 4 EXPUNGE\r\n",
        "* 4 EXPUNGE",
    ),
    (
        "mailbox-data =/ number SP \"EXISTS\"",
        "* 0 EXISTS\r\n",
        "* 0 EXISTS",
    ),
    (
        "namespace-response = \"NAMESPACE\" SP namespace SP namespace SP namespace (RFC 2342)",
        "* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\r\n",
        "* NAMESPACE ((s:\"\" s:\"/\")) nil ((s:\"#shared/\" s:\"/\"))",
    ),
    (
        "capability-data = \"CAPABILITY\" *(SP capability) SP \"IMAP4rev1\" *(SP capability)",
        "* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\n",
        "* CAPABILITY a:IMAP4rev1 a:LITERAL+ a:AUTH=PLAIN",
    ),
    (
        "response-tagged = tag SP resp-cond-state CRLF ; resp-cond-state = (\"OK\" / \"NO\" / \"BAD\") SP resp-text",
        "A017 bad command unknown\r\n",
        "A017 Bad \"command unknown\"",
    ),
    (
        "resp-cond-bye = \"BYE\" SP resp-text",
        "* BYE [UNAVAILABLE] shutting down\r\n",
        "* Bye [a:UNAVAILABLE] \"shutting down\"",
    ),
    (
        "continue-req = \"+\" SP (resp-text / base64) CRLF",
        "+ Ready for literal data\r\n",
        "+ \"Ready for literal data\"",
    ),
];

#[test]
fn every_production_gives_its_token_tree() {
    for (abnf, input, expected) in ANSWERS {
        let got =
            parse_response(input.as_bytes()).unwrap_or_else(|e| panic!("{abnf}\n{input:?}: {e}"));
        assert_eq!(show_response(&got), *expected, "{abnf}\n{input:?}");
    }
}

/// Malformed responses: each is a typed error of the named kind (never a panic, never a guess).
const MALFORMED: &[(&str, &[u8], WireErrorKind)] = &[
    (
        "literal8 = \"~{\" number64 \"}\" ...: `~{` without `}`",
        b"* 1 FETCH (BINARY[] ~{5\r\n",
        WireErrorKind::BadLiteral,
    ),
    (
        "number64 = 1*DIGIT: a sign is not a digit",
        b"* LIST () \"/\" {+3}\r\nabc\r\n",
        WireErrorKind::BadLiteral,
    ),
    (
        "number64 above usize",
        b"* LIST () \"/\" {99999999999999999999999}\r\nabc\r\n",
        WireErrorKind::BadLiteral,
    ),
    (
        "literal length that would overflow the offset",
        b"* LIST () \"/\" {18446744073709551615}\r\nabc\r\n",
        WireErrorKind::ShortLiteral,
    ),
    (
        "literal shorter than announced",
        b"* 1 FETCH (BODY[] {10}\r\nabc",
        WireErrorKind::ShortLiteral,
    ),
    (
        "literal = ... \"}\" CRLF: announcement not at line end",
        b"* LIST () \"/\" {3}abc\r\n",
        WireErrorKind::LiteralWithoutCrlf,
    ),
    (
        "side literal that was never read",
        b"* 1 FETCH (BODY[] {@0}\r\n)\r\n",
        WireErrorKind::BadSideLiteral,
    ),
    (
        "quoted without closing DQUOTE",
        b"* LIST (\\A \"/\r\n",
        WireErrorKind::UnterminatedQuoted,
    ),
    (
        "list without \")\"",
        b"* 1 FETCH (UID 1\r\n",
        WireErrorKind::UnterminatedList,
    ),
    (
        "resp-text-code without \"]\"",
        b"* OK [ALERT\r\n",
        WireErrorKind::UnterminatedCode,
    ),
    (
        "response-tagged without resp-cond-state",
        b"a1 FOO bar\r\n",
        WireErrorKind::TaggedWithoutStatus,
    ),
    ("empty line", b"\r\n", WireErrorKind::Empty),
    (
        "\")\" where a value starts",
        b"* LIST ) x\r\n",
        WireErrorKind::Unexpected,
    ),
];

#[test]
fn malformed_responses_are_typed_errors() {
    for (what, input, kind) in MALFORMED {
        let err = parse_response(input).expect_err(what);
        assert_eq!(err.kind, *kind, "{what}: {err}");
        assert!(err.at <= input.len(), "{what}: {err}");
    }
}

/// Nesting is bounded: the tokenizer recurses per list, and a server must not be able to
/// overflow the stack with `((((…`.
#[test]
fn nesting_is_bounded() {
    let ok = format!(
        "* X {}{}\r\n",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert!(parse_response(ok.as_bytes()).is_ok());
    let deep = format!("* X {}\r\n", "(".repeat(1 << 20));
    let err = parse_response(deep.as_bytes()).expect_err("too deep");
    assert_eq!(err.kind, WireErrorKind::TooDeep);
}
