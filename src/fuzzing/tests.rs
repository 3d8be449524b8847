//! Stable-toolchain twins of the fuzz targets in `fuzz/`: the same entry points, fed by proptest
//! with a bounded number of cases so `cargo test` (and CI) covers them. Inputs mix grammar-shaped
//! fragments with arbitrary bytes, so the interesting branches are reached in few cases.

use proptest::prelude::*;

use super::*;
use crate::imap::wire::props::imapish;

/// Concatenated fragments chosen from `words`, mixed with arbitrary bytes.
fn shaped(words: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        3 => proptest::sample::select(words).prop_map(|w| w.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(fragment, 0..max).prop_map(|f| f.concat())
}

const MIME_WORDS: &[&str] = &[
    "MIME-Version: 1.0\r\n",
    "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
    "Content-Type: multipart/alternative; boundary=b2\r\n",
    "Content-Type: message/rfc822\r\n",
    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n",
    "Content-Type: text/plain\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "Content-Transfer-Encoding: 8bit\r\n",
    "Content-Disposition: attachment\r\n",
    "Subject: x\r\n",
    "\r\n",
    "\n",
    "--b\r\n",
    "--b--\r\n",
    "--b2\r\n",
    "--b2--\r\n",
    "--",
    "QUJD",
    "=3D",
    "=\r\n",
    "=ZZ",
    "body text ",
    " folded\r\n",
];

const PLAN_WORDS: &[&str] = &[
    "mailboxes = \"mailboxes.csv\"\n",
    "[source]\n",
    "host = \"imap.example\"\n",
    "[destination.exo]\n",
    "kind = \"graph\"\n",
    "kind = \"imap\"\n",
    "tenant = \"t.example\"\n",
    "client_id = \"cid\"\n",
    "client_secret_env = \"S\"\n",
    "[folders]\n",
    "max_depth = ",
    "[limits]\n",
    "timeout_secs = 9999999999999999999\n",
    "\"",
    "=",
    "\n",
    "\0",
    "EmailAddress,UserName,Password,Destination\n",
    "a@example.com,",
    "\"x\ny\",",
    ",",
    "\r\n",
    "\u{feff}",
];

const MAILDIR_WORDS: &[&str] = &[
    "1700000000.M1P2.host",
    ",S=",
    ",W=",
    "123",
    "18446744073709551616",
    ":2,",
    ":1,",
    ":",
    ",",
    "S",
    "R",
    "F",
    "T",
    "D",
    "P",
    "a",
    "b",
    "z",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn imap_responses_twin(data in imapish()) {
        imap_responses(&data.0);
    }

    #[test]
    fn utf7_twin(
        text in "([&\\-+,A-Za-z0-9/]|[^\\x00-\\x7f]){0,24}",
        raw in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        utf7(text.as_bytes());
        utf7(&raw);
    }

    #[test]
    fn mime_twin(data in shaped(MIME_WORDS, 40)) {
        mime(&data);
    }

    #[test]
    fn maildir_name_twin(data in shaped(MAILDIR_WORDS, 12)) {
        maildir_name(&data);
    }
}

proptest! {
    // Each case writes two files to a temporary directory.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn plan_twin(data in shaped(PLAN_WORDS, 30)) {
        plan(&data);
    }
}
