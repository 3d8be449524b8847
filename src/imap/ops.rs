//! Folder-level commands on one connection: LIST, NAMESPACE, EXAMINE/SELECT, STATUS and the two
//! UID FETCH shapes (metadata, bodies). These only send and interpret; the consistency checks
//! that need a whole folder's view (counts against EXISTS, reconnects) live in the source.

use std::collections::BTreeMap;

use super::conn::Conn;
use super::error::ImapError;
use super::fetch::FetchItem;
use super::names;
use super::wire::{Command, Response, Value};

/// One `* LIST` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListEntry {
    pub(crate) raw_name: String,
    pub(crate) delimiter: Option<char>,
    /// Attributes as sent (`\HasNoChildren`, `\Sent`, ...).
    pub(crate) attributes: Vec<String>,
}

/// What SELECT/EXAMINE reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SelectInfo {
    pub(crate) exists: u32,
    pub(crate) uid_validity: Option<u32>,
    pub(crate) uid_next: Option<u32>,
    pub(crate) highest_modseq: Option<u64>,
    /// `PERMANENTFLAGS`, when sent.
    pub(crate) permanent_flags: Option<Vec<String>>,
}

/// Metadata or bodies of one UID FETCH, plus how EXISTS moved while it ran.
#[derive(Debug, Default)]
pub(crate) struct FetchOutcome {
    pub(crate) items: BTreeMap<u32, FetchItem>,
    pub(crate) exists: Option<u32>,
    pub(crate) expunged: u32,
}

impl Conn {
    /// `LIST "" pattern` (with `RETURN (SPECIAL-USE)` when offered).
    pub(crate) async fn list(&mut self, pattern: &str) -> Result<Vec<ListEntry>, ImapError> {
        let mut cmd = Command::new("LIST \"\" ");
        cmd.astring(pattern);
        if self.caps.special_use() && self.caps.has("LIST-EXTENDED") {
            cmd.text(" RETURN (SPECIAL-USE)");
        }
        let reply = self.run(&cmd, "LIST").await?;
        let mut out = Vec::new();
        for r in reply.untagged {
            let Response::Data { name, args, .. } = r else {
                continue;
            };
            if name != "LIST" {
                continue;
            }
            let mut it = args.into_iter();
            let (Some(attrs), Some(delim), Some(mbox)) = (it.next(), it.next(), it.next()) else {
                return Err(ImapError::protocol(self.ctx("LIST"), "short LIST response"));
            };
            let attributes = attrs
                .list()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.text().map(|t| t.into_owned()))
                .collect();
            let delimiter = match delim {
                Value::Nil => None,
                other => other.text().and_then(|t| t.chars().next()),
            };
            // A quoted or literal name keeps its bytes exactly (see [`names`]), so the EXAMINE
            // that follows names the folder the server listed, 8-bit bytes included.
            let raw_name = match mbox {
                Value::Nil => continue,
                Value::Str(bytes) => names::from_wire(&bytes).into_owned(),
                other => other.text().map(|t| t.into_owned()).unwrap_or_default(),
            };
            out.push(ListEntry {
                raw_name,
                delimiter,
                attributes,
            });
        }
        Ok(out)
    }

    /// The personal namespace's prefix and delimiter from NAMESPACE (RFC 2342), if offered.
    pub(crate) async fn namespace(&mut self) -> Result<Option<(String, Option<char>)>, ImapError> {
        if !self.caps.namespace() {
            return Ok(None);
        }
        let reply = self.run(&Command::new("NAMESPACE"), "NAMESPACE").await?;
        for r in reply.untagged {
            if let Response::Data { name, args, .. } = r {
                if name != "NAMESPACE" {
                    continue;
                }
                let personal = args
                    .first()
                    .and_then(Value::list)
                    .and_then(|l| l.first())
                    .and_then(Value::list);
                if let Some(entry) = personal {
                    let prefix = entry
                        .first()
                        .and_then(Value::text)
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let delim = entry
                        .get(1)
                        .and_then(Value::text)
                        .and_then(|t| t.chars().next());
                    return Ok(Some((prefix, delim)));
                }
            }
        }
        Ok(None)
    }

    /// EXAMINE (read-only) or SELECT a folder by its raw name.
    pub(crate) async fn select_raw(
        &mut self,
        raw_name: &str,
        read_only: bool,
    ) -> Result<SelectInfo, ImapError> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let wire = names::to_wire(raw_name);
        let cmd = select_command(verb, &wire);
        self.selected = None;
        let mut info = SelectInfo::default();
        self.run_with(&cmd, verb, |r| info.absorb(r))
            .await
            .map_err(|e| e.in_folder(raw_name))?;
        self.selected = Some((raw_name.to_owned(), read_only));
        Ok(info)
    }

    /// EXAMINE and a metadata UID FETCH for each folder, pipelined: up to `window` folders'
    /// command pairs are on the wire ahead of the one being read, so the server never waits for
    /// a round trip between folders. One result per folder of the prefix that was read, in
    /// order; when the connection fails, the error comes second and the rest are unread.
    ///
    /// Responses are attributed by order: a server runs commands that change the selected
    /// folder one after another (RFC 3501 §5.5). A folder whose EXAMINE fails has no folder
    /// selected for its FETCH (the server deselects on a failed EXAMINE), so that FETCH cannot
    /// read another folder; its refusal is consumed and the EXAMINE's error kept.
    pub(crate) async fn examine_fetch_many(
        &mut self,
        raw_names: &[&str],
        set: &str,
        attributes: &str,
        window: usize,
    ) -> (
        Vec<Result<(SelectInfo, FetchOutcome), ImapError>>,
        Option<ImapError>,
    ) {
        let label = format!("UID FETCH {set} (metadata)");
        let fetch = Command::new(&format!("UID FETCH {set} ({attributes})"));
        // A name sent as a synchronising literal would wait for a continuation while earlier
        // folders' responses arrive: pipeline only names that go as atoms or quoted strings.
        let window = if raw_names
            .iter()
            .all(|n| n.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            window.max(1)
        } else {
            1
        };
        let mut results = Vec::with_capacity(raw_names.len());
        let mut queued: std::collections::VecDeque<(String, String)> = Default::default();
        let mut sent = 0;
        while results.len() < raw_names.len() {
            while sent < raw_names.len() && queued.len() < window {
                let wire = names::to_wire(raw_names[sent]);
                let examine = select_command("EXAMINE", &wire);
                let tags = match self.start(&examine, "EXAMINE", &mut |_| {}).await {
                    Ok(first) => match self.start(&fetch, &label, &mut |_| {}).await {
                        Ok(second) => (first, second),
                        Err(e) => return (results, Some(e.in_folder(raw_names[sent]))),
                    },
                    Err(e) => return (results, Some(e.in_folder(raw_names[sent]))),
                };
                queued.push_back(tags);
                sent += 1;
            }
            let Some((first, second)) = queued.pop_front() else {
                break;
            };
            let name = raw_names[results.len()];
            self.selected = None;
            let mut info = SelectInfo::default();
            if let Err(e) = self.finish(&first, "EXAMINE", |r| info.absorb(r)).await {
                if !self.is_usable() {
                    return (results, Some(e.in_folder(name)));
                }
                // The FETCH's own refusal ("no mailbox selected") still has to be read.
                if let Err(e2) = self.finish(&second, &label, |_| {}).await
                    && !self.is_usable()
                {
                    return (results, Some(e2.in_folder(name)));
                }
                results.push(Err(e.in_folder(name)));
                continue;
            }
            self.selected = Some((name.to_owned(), true));
            let mut out = FetchOutcome::default();
            let mut bad = None;
            match self
                .finish(&second, &label, |r| out.absorb(r, &mut bad))
                .await
            {
                Ok(_) => results.push(
                    self.fetch_result(out, bad, &label)
                        .map(|out| (info, out))
                        .map_err(|e| e.in_folder(name)),
                ),
                Err(e) if self.is_usable() => results.push(Err(e.in_folder(name))),
                Err(e) => return (results, Some(e.in_folder(name))),
            }
        }
        (results, None)
    }

    /// `STATUS name (items)`: the numbers by item name (upper-case).
    pub(crate) async fn status(
        &mut self,
        raw_name: &str,
        items: &str,
    ) -> Result<BTreeMap<String, u64>, ImapError> {
        let wire = names::to_wire(raw_name);
        let mut cmd = Command::new("STATUS ");
        mailbox_arg(&mut cmd, &wire);
        cmd.text(&format!(" ({items})"));
        let reply = self
            .run(&cmd, "STATUS")
            .await
            .map_err(|e| e.in_folder(raw_name))?;
        let mut out = BTreeMap::new();
        for r in reply.untagged {
            if let Response::Data { name, args, .. } = r {
                if name != "STATUS" {
                    continue;
                }
                if let Some(list) = args.get(1).and_then(Value::list) {
                    for pair in list.chunks(2) {
                        if let [Value::Atom(k), v] = pair
                            && let Some(n) = v.number()
                        {
                            out.insert(k.to_ascii_uppercase(), n);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// `UID FETCH set (attributes) [modifiers]` on the selected folder, collecting items by UID and
    /// tracking EXISTS/EXPUNGE. Responses without a UID (unsolicited flag updates) are ignored.
    pub(crate) async fn uid_fetch(
        &mut self,
        set: &str,
        attributes: &str,
        modifiers: Option<&str>,
        label: &str,
    ) -> Result<FetchOutcome, ImapError> {
        self.fetch_with("UID FETCH", set, attributes, modifiers, label)
            .await
    }

    /// `FETCH set (attributes) [modifiers]` by message sequence numbers; otherwise as
    /// [`Conn::uid_fetch`] (items are still collected by UID, so UID must be asked for).
    pub(crate) async fn seq_fetch(
        &mut self,
        set: &str,
        attributes: &str,
        modifiers: Option<&str>,
        label: &str,
    ) -> Result<FetchOutcome, ImapError> {
        self.fetch_with("FETCH", set, attributes, modifiers, label)
            .await
    }

    async fn fetch_with(
        &mut self,
        verb: &str,
        set: &str,
        attributes: &str,
        modifiers: Option<&str>,
        label: &str,
    ) -> Result<FetchOutcome, ImapError> {
        let mut text = format!("{verb} {set} ({attributes})");
        if let Some(m) = modifiers {
            text.push_str(&format!(" ({m})"));
        }
        let mut out = FetchOutcome::default();
        let mut bad = None;
        self.run_with(&Command::new(&text), label, |r| out.absorb(r, &mut bad))
            .await?;
        self.fetch_result(out, bad, label)
    }

    fn fetch_result(
        &self,
        out: FetchOutcome,
        bad: Option<String>,
        label: &str,
    ) -> Result<FetchOutcome, ImapError> {
        match bad {
            Some(detail) => Err(ImapError::protocol(self.ctx(label), detail)),
            None => Ok(out),
        }
    }
}

fn select_command<'a>(verb: &str, wire: &'a [u8]) -> Command<'a> {
    let mut cmd = Command::new(verb);
    cmd.text(" ");
    mailbox_arg(&mut cmd, wire);
    cmd
}

/// A mailbox name as its exact bytes: an astring when it is UTF-8, else a literal.
fn mailbox_arg<'a>(cmd: &mut Command<'a>, wire: &'a [u8]) {
    match std::str::from_utf8(wire) {
        Ok(text) => cmd.astring(text),
        Err(_) => cmd.literal(wire),
    };
}

impl SelectInfo {
    /// Takes in one untagged response of a SELECT/EXAMINE.
    fn absorb(&mut self, r: Response) {
        match r {
            Response::Data {
                number: Some(n),
                name,
                ..
            } if name == "EXISTS" => self.exists = n,
            Response::UntaggedStatus { text, .. } => match text.code_name() {
                Some("UIDVALIDITY") => self.uid_validity = text.code_number().map(|n| n as u32),
                Some("UIDNEXT") => self.uid_next = text.code_number().map(|n| n as u32),
                Some("HIGHESTMODSEQ") => self.highest_modseq = text.code_number(),
                Some("PERMANENTFLAGS") => {
                    self.permanent_flags = text
                        .code
                        .as_ref()
                        .and_then(|c| c.get(1))
                        .and_then(Value::list)
                        .map(|l| {
                            l.iter()
                                .filter_map(|v| v.text().map(|t| t.into_owned()))
                                .collect()
                        })
                }
                _ => {}
            },
            _ => {}
        }
    }
}

impl FetchOutcome {
    /// Takes in one untagged response of a UID FETCH: items by UID (responses without a UID,
    /// unsolicited flag updates, are ignored), EXISTS and EXPUNGE counted. The first
    /// unparseable item is kept in `bad`.
    fn absorb(&mut self, r: Response, bad: &mut Option<String>) {
        match r {
            Response::Data {
                number: Some(_),
                name,
                args,
            } if name == "FETCH" => match FetchItem::parse(args) {
                Ok(item) => {
                    if let Some(uid) = item.uid {
                        self.items.entry(uid).or_default().merge(item);
                    }
                }
                Err(e) => {
                    bad.get_or_insert(e);
                }
            },
            Response::Data {
                number: Some(n),
                name,
                ..
            } if name == "EXISTS" => self.exists = Some(n),
            Response::Data {
                number: Some(_),
                name,
                ..
            } if name == "EXPUNGE" => self.expunged += 1,
            _ => {}
        }
    }
}
