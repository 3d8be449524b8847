//! The response reader fed from memory: known answers for each framing case, and properties
//! over arbitrary bytes (never a panic, every error typed, the same frames however the bytes are
//! split across reads).

use proptest::prelude::*;
use tokio::io::BufReader;

use super::*;
use crate::imap::wire::props::{Bytes, imapish};
use crate::imap::wire::{Response, WireError};

const T: Duration = Duration::from_secs(60);

/// A frame's line bytes and its side literals' bytes.
type Owned = (Vec<u8>, Vec<Vec<u8>>);

/// Every frame `data` holds, read with a buffer of `capacity` bytes, until the first error.
fn frames(data: &[u8], capacity: usize) -> (Vec<Owned>, Option<FrameError>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut io = BufReader::with_capacity(capacity, data);
        let mut out = Vec::new();
        loop {
            match read_frame(&mut io, T).await {
                Ok(f) => out.push((
                    f.raw,
                    f.side
                        .iter()
                        .map(|b| b.bytes().expect("side").into_owned())
                        .collect(),
                )),
                Err(e) => return (out, Some(e)),
            }
        }
    })
}

fn parse(frame: &Owned) -> Result<Response, WireError> {
    let mut side: Vec<Body> = frame.1.iter().cloned().map(Body::Memory).collect();
    wire::parse_response_with(&frame.0, &mut side)
}

/// `}` is no atom-special (RFC 3501 section 9), so `~}` is an atom: a mailbox and a flag named
/// `~}`, not a literal8 announcement and not a crash.
#[test]
fn tilde_brace_lines_are_one_frame_each_and_atoms() {
    let (f, end) = frames(
        b"* LIST () \"/\" ~}\r\n* FLAGS (~} ~archive $a[b)\r\n",
        8192,
    );
    assert_eq!(f.len(), 2);
    assert!(matches!(end, Some(FrameError::Closed)));
    let Response::Data { args, .. } = parse(&f[0]).expect("LIST parses") else {
        panic!("not data")
    };
    assert_eq!(args[2], wire::Value::Atom("~}".into()));
    let Response::Data { args, .. } = parse(&f[1]).expect("FLAGS parses") else {
        panic!("not data")
    };
    let atoms = ["~}", "~archive", "$a[b"].map(|a| wire::Value::Atom(a.into()));
    assert_eq!(args[0], wire::Value::List(atoms.to_vec()));
}

#[test]
fn end_of_stream_inside_a_line_is_not_called_a_long_line() {
    let (f, end) = frames(b"* 3 EXISTS\r\n* OK [UIDVALIDITY 1", 8192);
    assert_eq!(f.len(), 1);
    let end = end.expect("error");
    assert!(matches!(end, FrameError::ClosedInLine), "{end}");
    assert!(!end.to_string().contains("longer than"));
}

#[test]
fn small_literals_inline_large_ones_aside_short_ones_an_error() {
    let big = vec![b'x'; SIDE_LITERAL];
    let mut data = b"* 1 FETCH (BODY[] {3}\r\nabc BINARY[] ~{".to_vec();
    data.extend_from_slice(format!("{}}}\r\n", big.len()).as_bytes());
    data.extend_from_slice(&big);
    data.extend_from_slice(b")\r\n* 2 FETCH (BODY[] {9}\r\nshort");
    let (f, end) = frames(&data, 8192);
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].0,
        b"* 1 FETCH (BODY[] {3}\r\nabc BINARY[] ~{@0}\r\n)\r\n".to_vec()
    );
    assert_eq!(f[0].1, vec![big.clone()]);
    let Response::Data { args, .. } = parse(&f[0]).expect("parses") else {
        panic!("not data")
    };
    let items = args[0].list().expect("list");
    assert_eq!(items[1], wire::Value::Str(b"abc".to_vec()));
    assert_eq!(items[3], wire::Value::Str(big));
    assert!(matches!(end, Some(FrameError::ClosedInLiteral)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: a sequence of frames, then a typed end; each frame tokenises or gives a typed
    /// error. Framing does not depend on how the bytes arrive (one byte per read or many).
    #[test]
    fn any_bytes_frame_and_parse_without_panic(data in imapish(), capacity in 1usize..64) {
        let (whole, end) = frames(&data.0, 8192);
        prop_assert!(end.is_some());
        for frame in &whole {
            let _ = parse(frame);
        }
        let (split, split_end) = frames(&data.0, capacity);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(end.map(|e| e.to_string()), split_end.map(|e| e.to_string()));
    }

    #[test]
    fn raw_bytes_frame_and_parse_without_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512).prop_map(Bytes),
    ) {
        let (whole, _) = frames(&data.0, 8192);
        for frame in &whole {
            let _ = parse(frame);
        }
    }
}
