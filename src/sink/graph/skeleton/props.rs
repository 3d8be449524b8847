//! Skeleton + attachment decoder against mail-parser on generated MIME trees: nested multiparts
//! with odd but legal boundaries (RFC 2046 `bchars`, a child's boundary extending its parent's),
//! every transfer encoding (7bit, 8bit, binary, base64, quoted-printable), bare-LF and CRLF
//! line ends. With every leaf left out of the skeleton, mail-parser must find the same
//! attachments in the skeleton as in the message, and each left-out part must decode to exactly
//! the bytes mail-parser decodes from the whole message (and to the bytes that were encoded).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;

use super::*;
use crate::sink::graph::decode;

#[derive(Debug, Clone, Copy)]
enum Cte {
    SevenBit,
    EightBit,
    Binary,
    Base64,
    QuotedPrintable,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        cte: Cte,
        data: Vec<u8>,
    },
    Multi {
        subtype: &'static str,
        boundary_tail: String,
        children: Vec<Node>,
    },
}

/// Data a part with this encoding can carry verbatim: never a `-` (so no line of it can look
/// like a delimiter) and, below binary, only what the encoding allows.
fn leaf() -> impl Strategy<Value = Node> {
    let seven = proptest::collection::vec(
        prop_oneof![
            8 => proptest::sample::select(b"abcXYZ019 .,:=?_".to_vec()).prop_map(|b| vec![b]),
            1 => Just(b"\r\n".to_vec()),
        ],
        1..60,
    )
    .prop_map(|v| v.concat());
    let eight = proptest::collection::vec(
        prop_oneof![
            4 => (0x80u8..=0xff).prop_map(|b| vec![b]),
            4 => proptest::sample::select(b"abc 019".to_vec()).prop_map(|b| vec![b]),
            1 => Just(b"\r\n".to_vec()),
        ],
        1..60,
    )
    .prop_map(|v| v.concat());
    let binary = proptest::collection::vec(any::<u8>().prop_filter("no -", |&b| b != b'-'), 1..200);
    let any_bytes = proptest::collection::vec(any::<u8>(), 1..400);
    prop_oneof![
        seven.prop_map(|data| Node::Leaf {
            cte: Cte::SevenBit,
            data
        }),
        eight.prop_map(|data| Node::Leaf {
            cte: Cte::EightBit,
            data
        }),
        binary.prop_map(|data| Node::Leaf {
            cte: Cte::Binary,
            data
        }),
        any_bytes.clone().prop_map(|data| Node::Leaf {
            cte: Cte::Base64,
            data
        }),
        any_bytes.prop_map(|data| Node::Leaf {
            cte: Cte::QuotedPrintable,
            data
        }),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        (
            proptest::sample::select(vec!["mixed", "alternative", "related", "x-odd"]),
            // RFC 2046 bchars without space (a trailing space is not allowed).
            "[0-9a-zA-Z'()+_,./:=?-]{0,12}",
            proptest::collection::vec(inner, 1..4),
        )
            .prop_map(|(subtype, boundary_tail, children)| Node::Multi {
                subtype,
                boundary_tail,
                children,
            })
    })
}

fn encode(cte: Cte, data: &[u8], nl: &str) -> (&'static str, String) {
    match cte {
        Cte::SevenBit => ("7bit", String::from_utf8_lossy(data).into_owned()),
        Cte::EightBit => ("8bit", String::new()),
        Cte::Binary => ("binary", String::new()),
        Cte::Base64 => {
            let b64 = STANDARD.encode(data);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            ("base64", lines.join(nl))
        }
        Cte::QuotedPrintable => {
            let mut out = String::new();
            let mut line = 0;
            for &b in data {
                if line >= 70 {
                    out.push('=');
                    out.push_str(nl);
                    line = 0;
                }
                if b.is_ascii_alphanumeric() {
                    out.push(b as char);
                    line += 1;
                } else {
                    out.push_str(&format!("={b:02X}"));
                    line += 3;
                }
            }
            ("quoted-printable", out)
        }
    }
}

/// Writes `node` (headers and body) to `out`; leaves are numbered attachments, whose original
/// bytes are collected in `leaves`.
fn write(node: &Node, boundary: &str, nl: &str, out: &mut Vec<u8>, leaves: &mut Vec<Vec<u8>>) {
    match node {
        Node::Leaf { cte, data } => {
            let n = leaves.len();
            leaves.push(data.clone());
            let (name, text) = encode(*cte, data, nl);
            out.extend_from_slice(
                format!(
                    "Content-Type: application/octet-stream; name=\"p{n}.bin\"{nl}\
                     Content-Disposition: attachment; filename=\"p{n}.bin\"{nl}\
                     Content-Transfer-Encoding: {name}{nl}{nl}"
                )
                .as_bytes(),
            );
            match cte {
                Cte::EightBit | Cte::Binary => out.extend_from_slice(data),
                _ => out.extend_from_slice(text.as_bytes()),
            }
        }
        Node::Multi {
            subtype,
            boundary_tail,
            children,
        } => {
            // A child's boundary extends its parent's: `b` and `b'x` must not be confused.
            let own = format!("{boundary}{boundary_tail}x");
            out.extend_from_slice(
                format!(
                    "Content-Type: multipart/{subtype}; boundary=\"{own}\"{nl}{nl}preamble{nl}"
                )
                .as_bytes(),
            );
            for child in children {
                out.extend_from_slice(format!("--{own}{nl}").as_bytes());
                write(child, &own, nl, out, leaves);
                out.extend_from_slice(nl.as_bytes());
            }
            out.extend_from_slice(format!("--{own}--{nl}epilogue{nl}").as_bytes());
        }
    }
}

fn message(children: &[Node], nl: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = format!(
        "From: a@example.org{nl}Subject: generated{nl}Message-ID: <g@example.org>{nl}MIME-Version: 1.0{nl}"
    )
    .into_bytes();
    let mut leaves = Vec::new();
    let top = Node::Multi {
        subtype: "mixed",
        boundary_tail: "=_top".into(),
        children: children.to_vec(),
    };
    write(&top, "", nl, &mut out, &mut leaves);
    (out, leaves)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn left_out_parts_decode_to_what_mail_parser_decodes(
        children in proptest::collection::vec(tree(), 1..4),
        crlf in any::<bool>(),
    ) {
        let (raw, leaves) = message(&children, if crlf { "\r\n" } else { "\n" });
        let body = Body::Memory(raw.clone());
        let whole = MessageParser::default().parse(&raw).expect("message parses");
        let skel = build(&body, 1, 1).expect("build");
        let text = skel.text(&body).expect("text");
        let skeleton = MessageParser::default().parse(&text).expect("skeleton parses");
        let names = |m: &mail_parser::Message<'_>| -> Vec<Option<String>> {
            m.attachments().map(|a| a.attachment_name().map(str::to_owned)).collect()
        };
        prop_assert_eq!(names(&whole), names(&skeleton));
        prop_assert_eq!(whole.attachments().count(), leaves.len());
        for (a, s) in whole.attachments().zip(skeleton.attachments()) {
            let n: usize = a
                .attachment_name()
                .and_then(|n| n.strip_prefix('p')?.strip_suffix(".bin")?.parse().ok())
                .expect("numbered attachment");
            // A binary part ending in CR or LF is ambiguous against the delimiter's own line
            // end; there only the decoder and mail-parser are compared.
            if !leaves[n].ends_with(b"\r") && !leaves[n].ends_with(b"\n") {
                prop_assert_eq!(a.contents(), &leaves[n][..], "mail-parser on p{}", n);
            }
            let data = s.contents().trim_ascii_end();
            let part = skel.parts.iter().find(|p| data.ends_with(p.token.as_bytes()));
            prop_assert!(part.is_some(), "no placeholder for p{}", n);
            let mut decoded = Vec::new();
            let spool = decode::to_spool(&body, part.expect("checked")).expect("decode");
            decoded.extend_from_slice(&Body::Spooled(spool).bytes().expect("read"));
            prop_assert_eq!(&decoded[..], a.contents(), "decoder on p{}", n);
        }
    }
}
