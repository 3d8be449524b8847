//! Escaping for Graph URLs: path segments (user ids, item ids) and OData query values.
//!
//! Query keys such as `$filter` are written literally (Graph documents them that way); values are
//! percent-encoded so quotes, spaces, braces and `=` inside `$filter`/`$expand` survive.

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters escaped in a path segment: `@` stays (UPNs read better), `/` and `?` never.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'\'')
    .add(b'\\')
    .add(b'+');

/// Everything but unreserved characters and a few OData-friendly ones.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'@');

/// One path segment.
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// One query value.
pub(crate) fn qv(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// An OData string literal: single quotes doubled, then quoted.
pub(crate) fn odata_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `?k=v&k=v` from pairs (values escaped).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", qv(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_would_break_a_url() {
        assert_eq!(seg("a.b@contoso.example"), "a.b@contoso.example");
        assert_eq!(seg("AAMk/x+y=="), "AAMk%2Fx%2By==");
        assert_eq!(odata_str("O'Brien"), "'O''Brien'");
        let q = query(&[("$filter", "displayName eq 'A & B'"), ("$top", "10")]);
        assert_eq!(q, "?$filter=displayName%20eq%20%27A%20%26%20B%27&$top=10");
        let url = url::Url::parse(&format!("http://x/y{q}")).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        assert_eq!(pairs[0].1, "displayName eq 'A & B'");
    }
}
