//! The OData query options the emulator understands: `$top`, `$skip`, `$select`, `$filter`,
//! `$expand`, `includeHiddenFolders`, and paging links.
//!
//! `$filter` is a small expression language: `eq`/`ne` comparisons of a property path with a
//! literal (strings quoted with `'`, a `''` inside meaning one quote), `and`, `or`, `not`,
//! parentheses, and the lambda `collection/any(x: ...)` that the identity lookup uses. Filters are
//! evaluated on the JSON form of a folder or message, so one evaluator serves both. String
//! comparison ignores case, as Exchange's does.

use serde_json::Value;

use super::errors::ApiError;
use super::index::IndexKey;

/// Parsed query options.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pub top: Option<usize>,
    pub skip: usize,
    pub select: Option<Vec<String>>,
    pub filter: Option<Expr>,
    /// `Some(None)`: expand every extended property; `Some(Some(f))`: those matching `f`.
    pub expand_ext: Option<Option<Expr>>,
    pub expand_attachments: bool,
    pub include_hidden: bool,
    /// Every pair as received (decoded), to rebuild `@odata.nextLink`.
    pub pairs: Vec<(String, String)>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", msg)
}

impl Query {
    pub fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let key = k.trim_start_matches('$').to_ascii_lowercase();
            match key.as_str() {
                "top" => {
                    q.top = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| bad(format!("Invalid $top value '{v}'.")))?,
                    )
                }
                "skip" => {
                    q.skip = v
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("Invalid $skip value '{v}'.")))?
                }
                "select" => {
                    q.select = Some(
                        v.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "filter" => q.filter = Some(parse_filter(&v)?),
                "expand" => q.parse_expand(&v)?,
                "includehiddenfolders" => q.include_hidden = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
            q.pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(q)
    }

    fn parse_expand(&mut self, v: &str) -> Result<(), ApiError> {
        for item in split_top_level(v) {
            let item = item.trim();
            let (name, opts) = match item.find('(') {
                Some(i) if item.ends_with(')') => (&item[..i], Some(&item[i + 1..item.len() - 1])),
                _ => (item, None),
            };
            if name.eq_ignore_ascii_case("singleValueExtendedProperties") {
                let filter = match opts {
                    None => None,
                    Some(o) => {
                        let f = o
                            .trim()
                            .strip_prefix("$filter=")
                            .ok_or_else(|| bad(format!("Unsupported $expand option '{o}'.")))?;
                        Some(parse_filter(f)?)
                    }
                };
                self.expand_ext = Some(filter);
            } else if name.eq_ignore_ascii_case("attachments") {
                self.expand_attachments = true;
            } else {
                return Err(bad(format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{name}'."
                )));
            }
        }
        Ok(())
    }

    /// The page size: `$top` within `1..=max`, else the default.
    pub fn page_size(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.top {
            None => Ok(default),
            Some(t) if (1..=max).contains(&t) => Ok(t),
            Some(t) => Err(bad(format!(
                "The value of $top must be between 1 and {max}, not {t}."
            ))),
        }
    }

    /// `@odata.nextLink` for the page after `skip + top`, keeping every other option.
    pub fn next_link(&self, url_without_query: &str, top: usize) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            let key = k.trim_start_matches('$').to_ascii_lowercase();
            if key != "skip" && key != "top" {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("$top", &top.to_string());
        ser.append_pair("$skip", &(self.skip + top).to_string());
        format!("{url_without_query}?{}", ser.finish())
    }

    /// Keeps `id`, `@odata.*` and the selected properties (names ignore case).
    pub fn apply_select(&self, obj: &mut serde_json::Map<String, Value>) {
        if let Some(sel) = &self.select {
            obj.retain(|k, _| {
                k == "id"
                    || k.starts_with("@odata.")
                    || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
            });
        }
    }
}

/// Splits on commas that are not inside parentheses or quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start, mut quoted) = (Vec::new(), 0i32, 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Cmp {
        path: Vec<String>,
        negate: bool,
        lit: Value,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Any {
        path: Vec<String>,
        var: String,
        body: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Colon,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ApiError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => (out.push(Tok::Open), i += 1).1,
            ')' => (out.push(Tok::Close), i += 1).1,
            ':' => (out.push(Tok::Colon), i += 1).1,
            '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(bad("Invalid filter clause: unterminated string literal."));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            lit.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(lit));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"():'".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

/// Parses a `$filter` value.
pub(crate) fn parse_filter(s: &str) -> Result<Expr, ApiError> {
    let toks = tokenize(s)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(bad(format!(
            "Invalid filter clause: unexpected text in '{s}'."
        )));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), ApiError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(bad(format!(
                "Invalid filter clause: expected {t:?}, found {other:?}."
            ))),
        }
    }
    fn or(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, ApiError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                self.expect(Tok::Close)?;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let mut path: Vec<String> = w.split('/').map(str::to_owned).collect();
                if path.last().is_some_and(|l| l.eq_ignore_ascii_case("any"))
                    && self.toks.get(self.pos) == Some(&Tok::Open)
                {
                    path.pop();
                    self.pos += 1;
                    if self.toks.get(self.pos) == Some(&Tok::Close) {
                        self.pos += 1;
                        return Ok(Expr::Any {
                            path,
                            var: String::new(),
                            body: None,
                        });
                    }
                    let var = match self.next() {
                        Some(Tok::Word(v)) => v,
                        other => return Err(bad(format!("Invalid lambda variable {other:?}."))),
                    };
                    self.expect(Tok::Colon)?;
                    let body = self.or()?;
                    self.expect(Tok::Close)?;
                    return Ok(Expr::Any {
                        path,
                        var,
                        body: Some(Box::new(body)),
                    });
                }
                let negate = if self.peek_word("eq") {
                    false
                } else if self.peek_word("ne") {
                    true
                } else {
                    return Err(bad(format!(
                        "Invalid filter clause: only 'eq', 'ne' and any() are supported after '{w}'."
                    )));
                };
                self.pos += 1;
                let lit = match self.next() {
                    Some(Tok::Str(s)) => Value::String(s),
                    Some(Tok::Word(x)) if x == "true" => Value::Bool(true),
                    Some(Tok::Word(x)) if x == "false" => Value::Bool(false),
                    Some(Tok::Word(x)) if x == "null" => Value::Null,
                    Some(Tok::Word(x)) => match x.parse::<f64>() {
                        Ok(n) => serde_json::json!(n),
                        Err(_) => return Err(bad(format!("Invalid literal '{x}' in filter."))),
                    },
                    other => return Err(bad(format!("Invalid filter literal {other:?}."))),
                };
                Ok(Expr::Cmp { path, negate, lit })
            }
            other => Err(bad(format!("Invalid filter clause near {other:?}."))),
        }
    }
}

fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn literal_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x.eq_ignore_ascii_case(y) || x.to_lowercase() == y.to_lowercase()
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Expr {
    /// An equality every matching item must satisfy that an index can answer:
    /// `internetMessageId eq '...'`, or `singleValueExtendedProperties/any(ep: ep/id eq '...'
    /// and ep/value eq '...')`, alone or as one side of an `and`. The whole filter is still
    /// evaluated on the candidates.
    pub fn index_key(&self) -> Option<IndexKey> {
        match self {
            Expr::Cmp {
                path,
                negate: false,
                lit: Value::String(s),
            } if path.len() == 1 && path[0].eq_ignore_ascii_case("internetMessageId") => {
                Some(IndexKey::MessageId(s.clone()))
            }
            Expr::And(a, b) => a.index_key().or_else(|| b.index_key()),
            Expr::Any {
                path,
                var,
                body: Some(body),
            } if path.len() == 1
                && path[0].eq_ignore_ascii_case("singleValueExtendedProperties") =>
            {
                let (mut id, mut value) = (None, None);
                let mut stack = vec![body.as_ref()];
                while let Some(e) = stack.pop() {
                    match e {
                        Expr::And(a, b) => stack.extend([a.as_ref(), b.as_ref()]),
                        Expr::Cmp {
                            path,
                            negate: false,
                            lit: Value::String(s),
                        } if path.len() == 2 && &path[0] == var => {
                            if path[1].eq_ignore_ascii_case("id") {
                                id = Some(s.clone());
                            } else if path[1].eq_ignore_ascii_case("value") {
                                value = Some(s.clone());
                            }
                        }
                        _ => {}
                    }
                }
                Some(IndexKey::Ext {
                    id: id?,
                    value: value?,
                })
            }
            _ => None,
        }
    }

    /// Evaluates against `root` (a folder or message in JSON form).
    pub fn matches(&self, root: &Value) -> bool {
        self.eval(root, &[])
    }

    fn resolve<'a>(
        path: &[String],
        root: &'a Value,
        vars: &[(&str, &'a Value)],
    ) -> Option<&'a Value> {
        let (mut cur, rest) = match path.first().and_then(|h| vars.iter().find(|(n, _)| n == h)) {
            Some((_, v)) => (*v, &path[1..]),
            None => (root, path),
        };
        for seg in rest {
            cur = get_ci(cur, seg)?;
        }
        Some(cur)
    }

    fn eval<'a>(&self, root: &'a Value, vars: &[(&str, &'a Value)]) -> bool {
        match self {
            Expr::Cmp { path, negate, lit } => {
                let v = Self::resolve(path, root, vars).unwrap_or(&Value::Null);
                literal_eq(v, lit) != *negate
            }
            Expr::And(a, b) => a.eval(root, vars) && b.eval(root, vars),
            Expr::Or(a, b) => a.eval(root, vars) || b.eval(root, vars),
            Expr::Not(a) => !a.eval(root, vars),
            Expr::Any { path, var, body } => {
                let Some(Value::Array(items)) = Self::resolve(path, root, vars) else {
                    return false;
                };
                match body {
                    None => !items.is_empty(),
                    Some(b) => items.iter().any(|item| {
                        let mut v2: Vec<(&str, &Value)> = vars.to_vec();
                        v2.push((var.as_str(), item));
                        b.eval(root, &v2)
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_name_with_doubled_quote() {
        let f = parse_filter("displayName eq 'Bob''s stuff'").unwrap();
        assert!(f.matches(&json!({"displayName": "bob's STUFF"})));
        assert!(!f.matches(&json!({"displayName": "Bob"})));
    }

    #[test]
    fn any_lambda_over_extended_properties() {
        let f = parse_filter(
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {0B0B0B0B-0000-0000-0000-000000000000} Name X' and ep/value eq 'v1')",
        )
        .unwrap();
        let m = json!({"singleValueExtendedProperties": [
            {"id": "String {0b0b0b0b-0000-0000-0000-000000000000} Name X", "value": "v1"}]});
        assert!(f.matches(&m));
        let other = json!({"singleValueExtendedProperties": [
            {"id": "String {0b0b0b0b-0000-0000-0000-000000000000} Name X", "value": "v2"}]});
        assert!(!f.matches(&other));
        assert!(!f.matches(&json!({})));
    }

    #[test]
    fn index_keys_are_found_only_where_every_match_needs_them() {
        let k = |s: &str| parse_filter(s).unwrap().index_key();
        assert_eq!(
            k("internetMessageId eq '<a@b>'"),
            Some(IndexKey::MessageId("<a@b>".into()))
        );
        assert_eq!(
            k("singleValueExtendedProperties/any(ep: ep/id eq 'String X' and ep/value eq 'v')"),
            Some(IndexKey::Ext {
                id: "String X".into(),
                value: "v".into()
            })
        );
        assert_eq!(
            k("isRead eq true and internetMessageId eq 'm'"),
            Some(IndexKey::MessageId("m".into()))
        );
        assert_eq!(k("internetMessageId eq 'm' or isRead eq true"), None);
        assert_eq!(k("internetMessageId ne 'm'"), None);
        assert_eq!(k("not (internetMessageId eq 'm')"), None);
        assert_eq!(
            k("singleValueExtendedProperties/any(ep: ep/id eq 'String X')"),
            None
        );
    }

    #[test]
    fn bad_filters_are_400() {
        for s in [
            "displayName gt 'a'",
            "displayName eq 'a",
            "(displayName eq 'a'",
            "x eq",
        ] {
            assert_eq!(parse_filter(s).unwrap_err().status, 400, "{s}");
        }
    }

    #[test]
    fn query_paging_and_expand() {
        let q = Query::parse("%24top=5&%24skip=10&%24select=subject,isRead&%24expand=singleValueExtendedProperties(%24filter%3Did%20eq%20%27Integer%200x0E07%27)").unwrap();
        assert_eq!(q.page_size(10, 1000).unwrap(), 5);
        assert!(matches!(q.expand_ext, Some(Some(_))));
        let link = q.next_link("http://h/v1.0/users/a/messages", 5);
        assert!(link.contains("%24skip=15"), "{link}");
        assert!(link.contains("%24select=subject%2CisRead"), "{link}");
        assert!(Query::parse("$top=0").unwrap().page_size(10, 1000).is_err());
        assert!(
            Query::parse("$top=1001")
                .unwrap()
                .page_size(10, 1000)
                .is_err()
        );
        assert!(Query::parse("$expand=nonsense").is_err());
    }
}
