//! Property tests of the response tokenizer: any bytes give a response or a typed error, never a
//! panic. Inputs are built from IMAP-shaped fragments (so literal announcements, brackets,
//! `~` and quotes meet each other often) mixed with arbitrary bytes.

use proptest::prelude::*;

use super::*;

/// How a response starts: enough of a real one that the argument tokenizer is reached.
fn opening() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(vec![
        &b"* "[..],
        b"* 1 FETCH (",
        b"* LIST () \"/\" ",
        b"* FLAGS (",
        b"* OK [",
        b"a1 NO [",
        b"* ESEARCH (TAG \"a\") ",
        b"+ ",
        b"",
    ])
    .prop_map(<[u8]>::to_vec)
}

/// Pieces that make the tokenizer's branches meet: single special bytes (so pairs like `~}`
/// come up often), words of the grammar, and arbitrary bytes.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(b"()[]~{}\"\\ +@0123\r\n".to_vec()).prop_map(|b| vec![b]),
        2 => proptest::sample::select(vec![
            &b"\r\n"[..], b"NIL", b"FETCH ", b"BODY[", b"BODY[HEADER.FIELDS (", b"BINARY[]",
            b"$a[b", b"~archive", b"\\Seen", b"{5}\r\n", b"~{3}\r\n", b"{@0}\r\n", b"{@1}\r\n",
            b"{18446744073709551615}\r\n", b"{99999999999999999999}\r\n", b"{0}\r\n", b"{2+}\r\n",
        ]).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

/// Bytes shown as an escaped byte string when proptest reports a failing case.
#[derive(Clone)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

pub(crate) fn imapish() -> impl Strategy<Value = Bytes> {
    (opening(), proptest::collection::vec(fragment(), 0..24))
        .prop_map(|(open, parts)| Bytes([open, parts.concat()].concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn tokenizer_never_panics(buf in imapish(), side_len in 0usize..3) {
        let mut side: Vec<Body> = (0..side_len).map(|k| Body::Memory(vec![b'x'; k])).collect();
        let _ = parse_response_with(&buf.0, &mut side);
    }

    #[test]
    fn tokenizer_never_panics_on_raw_bytes(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_response(&buf);
        let _ = literal_announced(&buf);
    }
}
