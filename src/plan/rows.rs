//! The mailboxes CSV: Exchange's IMAP-migration columns (`EmailAddress,UserName,Password`,
//! optional `UserRoot`) unchanged, plus mailferry's optional `Destination`, `DestinationUser`,
//! `DestinationPassword` and `SourcePath`. Header names are case-insensitive and may come in any
//! order; a UTF-8 BOM (Excel) is tolerated. A bad row becomes a row error naming its line and
//! field; the others still load.

use std::collections::HashMap;
use std::path::Path;

use super::{
    AuthMethod, Destination, Mailbox, MailboxSource, PlanError, SourceKind, SourceLogin,
    SourceSettings,
};
use crate::secret::Secret;

/// What a CSV file yields.
pub(super) struct Parsed {
    pub mailboxes: Vec<Mailbox>,
    pub row_errors: Vec<PlanError>,
    pub warnings: Vec<String>,
    /// Some row has a `Password` or `DestinationPassword` cell (even a row that failed).
    pub has_passwords: bool,
}

/// Column names as documented (the canonical spelling used in messages).
const COLUMNS: [&str; 8] = [
    "EmailAddress",
    "UserName",
    "Password",
    "UserRoot",
    "Destination",
    "DestinationUser",
    "DestinationPassword",
    "SourcePath",
];

pub(super) fn load_csv(
    path: &Path,
    plan_dir: &Path,
    source: &SourceSettings,
    destinations: &[Destination],
) -> Result<Parsed, PlanError> {
    let bytes = std::fs::read(path).map_err(|e| PlanError::Read {
        file: path.to_path_buf(),
        source: e,
    })?;
    let mut parsed = parse_csv(path, &bytes, plan_dir, source, destinations)?;
    if let Some(w) = readable_by_others(path, &parsed) {
        parsed.warnings.push(w);
    }
    Ok(parsed)
}

/// A CSV holding passwords that group or others can read is worth a warning.
#[cfg(unix)]
fn readable_by_others(path: &Path, parsed: &Parsed) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let has_secrets = parsed.has_passwords;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (has_secrets && mode & 0o077 != 0).then(|| {
        format!(
            "{} holds passwords and can be read by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path, _parsed: &Parsed) -> Option<String> {
    None
}

/// Parses CSV bytes (no file access), so tests and property tests can feed any text.
pub(super) fn parse_csv(
    file: &Path,
    bytes: &[u8],
    plan_dir: &Path,
    source: &SourceSettings,
    destinations: &[Destination],
) -> Result<Parsed, PlanError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let csv_err = |message: String| PlanError::Csv {
        file: file.to_path_buf(),
        message,
    };
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") || bytes.contains(&0) {
        return Err(csv_err(
            "the file is UTF-16 (or holds NUL bytes): save it as UTF-8 (in Excel: \"CSV UTF-8\")"
                .into(),
        ));
    }
    if let Some(line) = unterminated_quote(bytes) {
        return Err(csv_err(format!(
            "line {line}: a quoted cell starts here and its closing quote never comes, so the \
             rest of the file would be read as that one cell; close the quote (a quote inside a \
             quoted cell is written twice: \"\")"
        )));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();

    // The header: the first non-blank record.
    let (header, header_line) = loop {
        match records.next() {
            None => {
                return Err(csv_err(
                    "no header row (expected EmailAddress,UserName,Password)".into(),
                ));
            }
            Some(Err(e)) => return Err(csv_err(format!("unreadable header: {e}"))),
            Some(Ok(r)) if is_blank(&r) => continue,
            Some(Ok(r)) => break (r.clone(), line_of(bytes, r.position(), 1)),
        }
    };
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw);
        let name = name.trim();
        let Some(canon) = COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name)) else {
            return Err(csv_err(format!(
                "line {header_line}: unknown column {name:?} (known: {})",
                COLUMNS.join(", ")
            )));
        };
        if index.insert(canon, i).is_some() {
            return Err(csv_err(format!(
                "line {header_line}: column {canon} appears twice"
            )));
        }
    }
    if !index.contains_key("EmailAddress") {
        return Err(csv_err(format!(
            "line {header_line}: the header has no EmailAddress column"
        )));
    }

    let ctx = RowCtx {
        file,
        plan_dir,
        source,
        destinations,
        index,
    };
    let mut out = Parsed {
        mailboxes: Vec::new(),
        row_errors: Vec::new(),
        warnings: Vec::new(),
        has_passwords: false,
    };
    let password_columns: Vec<usize> = ["Password", "DestinationPassword"]
        .iter()
        .filter_map(|c| ctx.index.get(c).copied())
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last_line = header_line;
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = line_of(bytes, e.position(), last_line + 1);
                last_line = line;
                out.row_errors.push(PlanError::Row {
                    file: file.to_path_buf(),
                    line,
                    field: "(row)".into(),
                    message: format!("malformed CSV: {e}"),
                });
                continue;
            }
        };
        let line = line_of(bytes, rec.position(), last_line + 1);
        last_line = line;
        if is_blank(&rec) {
            continue;
        }
        // A shifted row (an unquoted comma in a password, a missing cell) would put one column's
        // value in another; refuse it whole, and never quote a cell: any of them may be a secret.
        if rec.len() != header.len() {
            out.has_passwords |= !password_columns.is_empty();
            out.row_errors.push(ctx.err(
                line,
                "(row)",
                format!(
                    "{} fields but the header has {}; a cell containing a comma must be quoted \
                     (\"...\")",
                    rec.len(),
                    header.len()
                ),
            ));
            continue;
        }
        out.has_passwords |= password_columns
            .iter()
            .any(|&i| rec.get(i).is_some_and(|cell| !cell.is_empty()));
        match ctx.mailbox(&rec, line) {
            Ok(m) => {
                if let Some(first) = seen.get(&m.key) {
                    out.row_errors.push(ctx.err(
                        line,
                        "EmailAddress",
                        format!("{} already appears on line {first}", m.email),
                    ));
                } else {
                    seen.insert(m.key.clone(), line);
                    out.mailboxes.push(m);
                }
            }
            Err(e) => out.row_errors.push(e),
        }
    }
    Ok(out)
}

/// The line of a quoted cell that is never closed (RFC 4180 quoting, as the csv crate reads
/// it: a quote opens a cell only at its start; `""` inside is a literal quote).
fn unterminated_quote(bytes: &[u8]) -> Option<usize> {
    let (mut line, mut opened_at) = (1, None);
    let mut field_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match opened_at {
            Some(_) if b == b'"' && bytes.get(i + 1) == Some(&b'"') => i += 1,
            Some(_) if b == b'"' => {
                opened_at = None;
                field_start = false;
            }
            Some(_) => {}
            None if b == b'"' && field_start => opened_at = Some(line),
            None => field_start = b == b',' || b == b'\n' || b == b'\r',
        }
        if b == b'\n' {
            line += 1;
        }
        i += 1;
    }
    opened_at
}

/// The 1-based line a record starts on. Counted from the byte offset, because the csv crate's
/// own line counter lags behind after CRLF endings and skipped empty lines; the offset can
/// point at the end of the previous line, so line breaks right at it are skipped first.
fn line_of(bytes: &[u8], pos: Option<&csv::Position>, fallback: usize) -> usize {
    let Some(pos) = pos else { return fallback };
    let mut at = usize::try_from(pos.byte())
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

fn is_blank(r: &csv::ByteRecord) -> bool {
    r.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

struct RowCtx<'a> {
    file: &'a Path,
    plan_dir: &'a Path,
    source: &'a SourceSettings,
    destinations: &'a [Destination],
    index: HashMap<&'static str, usize>,
}

impl RowCtx<'_> {
    fn err(&self, line: usize, field: &str, message: impl Into<String>) -> PlanError {
        PlanError::Row {
            file: self.file.to_path_buf(),
            line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A cell's text; `None` when the column is absent or the cell is empty. Names and
    /// addresses are trimmed; passwords (`keep_spaces`) are taken exactly as written.
    fn cell(
        &self,
        rec: &csv::ByteRecord,
        line: usize,
        col: &'static str,
        keep_spaces: bool,
    ) -> Result<Option<String>, PlanError> {
        let Some(raw) = self.index.get(col).and_then(|&i| rec.get(i)) else {
            return Ok(None);
        };
        // The error never quotes the cell: it may be a password.
        let text = std::str::from_utf8(raw)
            .map_err(|_| self.err(line, col, "not valid UTF-8 (save the CSV as UTF-8)"))?;
        let text = if keep_spaces { text } else { text.trim() };
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }

    fn mailbox(&self, rec: &csv::ByteRecord, line: usize) -> Result<Mailbox, PlanError> {
        let email = self
            .cell(rec, line, "EmailAddress", false)?
            .ok_or_else(|| self.err(line, "EmailAddress", "empty"))?;
        check_email(&email).map_err(|m| self.err(line, "EmailAddress", m))?;
        let key = email.to_lowercase();

        let destination = match self.cell(rec, line, "Destination", false)? {
            Some(name) => {
                if !self.destinations.iter().any(|d| d.name() == name) {
                    let known: Vec<&str> =
                        self.destinations.iter().map(Destination::name).collect();
                    return Err(self.err(
                        line,
                        "Destination",
                        format!(
                            "no destination {name:?} in the plan (known: {})",
                            known.join(", ")
                        ),
                    ));
                }
                name
            }
            None => self
                .destinations
                .first()
                .map(|d| d.name().to_owned())
                .unwrap_or_default(),
        };
        let destination_user = self
            .cell(rec, line, "DestinationUser", false)?
            .unwrap_or_else(|| email.clone());
        let dest_password = self.cell(rec, line, "DestinationPassword", true)?;
        let destination_login = match self.destinations.iter().find(|d| d.name() == destination) {
            // App-only XOAUTH2: the token comes from the Graph app, no per-row login.
            Some(Destination::Imap(d)) if d.oauth_app.is_some() => None,
            Some(Destination::Imap(d)) => Some(match (&d.master_user, &d.master_password) {
                (Some(m), Some(p)) => SourceLogin::Proxy {
                    authzid: destination_user.clone(),
                    authcid: m.clone(),
                    password: p.clone(),
                },
                _ => {
                    let password = dest_password.ok_or_else(|| {
                        self.err(
                            line,
                            "DestinationPassword",
                            format!(
                                "IMAP destination {destination} has no master_user, so each row \
                                 needs a DestinationPassword"
                            ),
                        )
                    })?;
                    plain_login(d.auth, destination_user.clone(), password)
                }
            }),
            _ => None,
        };

        let source = match self.source.kind {
            SourceKind::Imap => self.imap_source(rec, line, &email)?,
            SourceKind::Maildir => self.maildir_source(rec, line, &email)?,
        };
        Ok(Mailbox {
            line,
            email,
            key,
            source,
            destination,
            destination_user,
            destination_login,
        })
    }

    fn imap_source(
        &self,
        rec: &csv::ByteRecord,
        line: usize,
        email: &str,
    ) -> Result<MailboxSource, PlanError> {
        let user = self
            .cell(rec, line, "UserName", false)?
            .unwrap_or_else(|| email.to_owned());
        let user_root = self.cell(rec, line, "UserRoot", false)?;
        let login = match (&self.source.master_user, &self.source.master_password) {
            // A plan-level master account: every row logs in as the admin on behalf of its user.
            (Some(m), Some(p)) => SourceLogin::Proxy {
                authzid: user,
                authcid: m.clone(),
                password: p.clone(),
            },
            _ => {
                let password = self.cell(rec, line, "Password", true)?.ok_or_else(|| {
                    self.err(line, "Password", "empty (and the plan has no master_user)")
                })?;
                parse_login(&user, Secret::new(password), self.source.auth)
                    .map_err(|m| self.err(line, "UserName", m))?
            }
        };
        Ok(MailboxSource::Imap { login, user_root })
    }

    fn maildir_source(
        &self,
        rec: &csv::ByteRecord,
        line: usize,
        email: &str,
    ) -> Result<MailboxSource, PlanError> {
        let path = match (
            self.cell(rec, line, "SourcePath", false)?,
            &self.source.maildir_root,
        ) {
            (Some(p), _) => self.plan_dir.join(p),
            (None, Some(template)) => {
                let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
                self.plan_dir.join(
                    template
                        .replace("{EmailAddress}", email)
                        .replace("{LocalPart}", local)
                        .replace("{Domain}", domain),
                )
            }
            (None, None) => {
                return Err(self.err(
                    line,
                    "SourcePath",
                    "empty, and [source] has no maildir_root to derive it from",
                ));
            }
        };
        Ok(MailboxSource::Maildir { path })
    }
}

/// A user/password credential sent with the configured mechanism.
fn plain_login(auth: AuthMethod, user: String, password: String) -> SourceLogin {
    match auth {
        AuthMethod::XOAuth2 => SourceLogin::XOAuth2 {
            user,
            token: Secret::new(password),
        },
        AuthMethod::Login | AuthMethod::Plain => SourceLogin::Login {
            user,
            password: Secret::new(password),
        },
    }
}

/// Reads the admin login formats Exchange's IMAP migration accepts in `UserName`
/// (docs/graph-facts.md, section 8):
/// - `user*admin` (Dovecot master user): sent verbatim with LOGIN, Dovecot splits it;
/// - `domain/admin/user` (Exchange): AUTHENTICATE PLAIN as `admin` for `user@domain`;
/// - `#user@domain#admin#` (Mirapoint): AUTHENTICATE PLAIN as `admin` for `user@domain`;
/// - anything else: that user with its own password.
pub(super) fn parse_login(
    user: &str,
    password: Secret<String>,
    auth: AuthMethod,
) -> Result<SourceLogin, String> {
    if let Some(inner) = user.strip_prefix('#') {
        let inner = inner
            .strip_suffix('#')
            .ok_or("Mirapoint format is #user@domain#admin#: missing final #")?;
        let (authzid, authcid) = inner
            .split_once('#')
            .filter(|(z, c)| !z.is_empty() && !c.is_empty() && !c.contains('#'))
            .ok_or("Mirapoint format is #user@domain#admin#")?;
        return Ok(SourceLogin::Proxy {
            authzid: authzid.into(),
            authcid: authcid.into(),
            password,
        });
    }
    let parts: Vec<&str> = user.split('/').collect();
    if parts.len() > 1 {
        let [domain, admin, who] = parts[..] else {
            return Err("Exchange admin format is domain/admin/user (exactly two /)".into());
        };
        if domain.is_empty() || admin.is_empty() || who.is_empty() {
            return Err("Exchange admin format is domain/admin/user: a part is empty".into());
        }
        let authzid = if who.contains('@') {
            who.to_owned()
        } else {
            format!("{who}@{domain}")
        };
        return Ok(SourceLogin::Proxy {
            authzid,
            authcid: admin.into(),
            password,
        });
    }
    if user.contains('*') {
        let (u, a) = user.split_once('*').unwrap_or((user, ""));
        if u.is_empty() || a.is_empty() {
            return Err("Dovecot master format is user*admin: a part is empty".into());
        }
        return Ok(SourceLogin::Login {
            user: user.into(),
            password,
        });
    }
    Ok(plain_login(auth, user.into(), password.expose().clone()))
}

/// A light check: enough to catch a shifted column, not an RFC 5321 validator.
fn check_email(email: &str) -> Result<(), String> {
    match email.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !email.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        // The cell is not quoted back: with shifted columns it could hold a password.
        _ => Err("not an email address (needs user@domain, no spaces)".to_owned()),
    }
}
