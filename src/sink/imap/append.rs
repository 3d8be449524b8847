//! APPEND, by hand: MULTIAPPEND batches (atomic on the server: if one fails they all fail, so a
//! failed batch is retried item by item to find which), or pipelined single APPENDs with LITERAL+;
//! flags filtered by PERMANENTFLAGS; APPENDUID read from every completion.

use super::{AppendItem, ImapSink};

use crate::imap::conn::Conn;
use crate::imap::fetch::{format_internal_date, parse_uid_set};
use crate::imap::wire::{Command, RespText};
use crate::imap::{ErrorKind, ImapError, ops::SelectInfo};
use crate::model::Flags;

/// Most items in one MULTIAPPEND command.
const MULTI_ITEMS: usize = 100;
/// Most bytes in one MULTIAPPEND command (the server holds the batch until it commits).
const MULTI_BYTES: u64 = 16 << 20;

impl ImapSink {
    /// Writes a batch into one folder (its raw name). One result per item, in order: the
    /// destination id `UIDVALIDITY:UID`, or why that item failed.
    pub async fn append_batch(
        &self,
        folder: &str,
        items: &[AppendItem<'_>],
    ) -> Vec<Result<String, ImapError>> {
        if items.is_empty() {
            return Vec::new();
        }
        if let Some(e) = self.gate_closed(folder) {
            return items.iter().map(|_| Err(e.clone())).collect();
        }
        // SELECTing the target first saves the server work on every APPEND and tells us
        // PERMANENTFLAGS and UIDVALIDITY. Nothing is written yet, so a pooled connection that
        // turns out to be dead is simply replaced once.
        let mut attempt = 0;
        let (mut lease, info) = loop {
            attempt += 1;
            let mut lease = match self.pool.get().await {
                Ok(l) => l,
                Err(e) => {
                    return items
                        .iter()
                        .map(|_| Err(e.clone().in_folder(folder)))
                        .collect();
                }
            };
            match select(lease.conn(), folder).await {
                Ok(info) => break (lease, info),
                Err(e) if attempt < 2 && e.is_connection_drop() => continue,
                Err(e) => {
                    return items
                        .iter()
                        .map(|_| Err(e.clone().in_folder(folder)))
                        .collect();
                }
            }
        };
        let conn = lease.conn();
        let mut out: Vec<Result<String, ImapError>> = Vec::with_capacity(items.len());
        if self.caps.multiappend() && items.len() > 1 {
            for chunk in chunks(items) {
                // Checked again before each command: the worker may have been frozen since.
                if let Some(e) = self.gate_closed(folder) {
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                    continue;
                }
                match self.multiappend(conn, folder, &info, chunk).await {
                    Ok(ids) => out.extend(ids.into_iter().map(Ok)),
                    Err(e)
                        if conn.is_usable()
                            && matches!(e.kind(), ErrorKind::No { .. } | ErrorKind::Bad { .. }) =>
                    {
                        // The batch was refused as a whole: find the culprit(s) one by one.
                        out.extend(self.singles(conn, folder, &info, chunk).await);
                    }
                    Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone().in_folder(folder)))),
                }
            }
        } else {
            out = self.singles(conn, folder, &info, items).await;
        }
        // Without UIDPLUS, look each stored item up by Message-ID and size.
        if !self.caps.uidplus() {
            for (res, item) in out.iter_mut().zip(items) {
                if let Ok(id) = res
                    && id.is_empty()
                {
                    *res = self.locate(conn, folder, item).await;
                }
            }
        }
        out
    }

    async fn multiappend(
        &self,
        conn: &mut Conn,
        folder: &str,
        info: &SelectInfo,
        items: &[AppendItem<'_>],
    ) -> Result<Vec<String>, ImapError> {
        let flags: Vec<String> = items
            .iter()
            .map(|i| self.flag_list(i.flags, info))
            .collect();
        let dates: Vec<String> = items
            .iter()
            .map(|i| format_internal_date(&i.internal_date))
            .collect();
        let mut cmd = Command::new("APPEND ");
        cmd.astring(folder);
        for ((item, f), d) in items.iter().zip(&flags).zip(&dates) {
            cmd.text(&format!(" ({f}) {d} ")).body(item.body);
        }
        let label = format!("APPEND ({} messages)", items.len());
        let done = conn
            .run(&cmd, &label)
            .await
            .map_err(|e| e.in_folder(folder))?
            .done;
        if !self.caps.uidplus() {
            return Ok(vec![String::new(); items.len()]);
        }
        let ids = appenduids(&done).ok_or_else(|| {
            ImapError::protocol(
                conn.ctx(&label),
                format!(
                    "APPEND completed without a usable APPENDUID: {:?}",
                    done.code_string()
                ),
            )
        })?;
        if ids.len() != items.len() {
            return Err(ImapError::protocol(
                conn.ctx(&label),
                format!(
                    "APPENDUID names {} messages for {} appended",
                    ids.len(),
                    items.len()
                ),
            ));
        }
        Ok(ids)
    }

    /// Single APPENDs, pipelined when LITERAL+ lets us send without waiting.
    async fn singles(
        &self,
        conn: &mut Conn,
        folder: &str,
        info: &SelectInfo,
        items: &[AppendItem<'_>],
    ) -> Vec<Result<String, ImapError>> {
        let pipelined = self.caps.literal_plus();
        let mut out = Vec::with_capacity(items.len());
        // A connection-level failure: every item not yet confirmed shares its fate.
        let mut fatal: Option<ImapError> = None;
        let step = if pipelined { 32 } else { 1 };
        for chunk in items.chunks(step) {
            let mut slots: Vec<Option<Result<String, ImapError>>> =
                chunk.iter().map(|_| None).collect();
            let mut tags: Vec<(usize, String)> = Vec::new();
            for (i, item) in chunk.iter().enumerate() {
                if fatal.is_none() {
                    fatal = self.gate_closed(folder);
                }
                if fatal.is_some() {
                    break;
                }
                let f = self.flag_list(item.flags, info);
                let d = format_internal_date(&item.internal_date);
                let mut cmd = Command::new("APPEND ");
                cmd.astring(folder)
                    .text(&format!(" ({f}) {d} "))
                    .body(item.body);
                match conn.start(&cmd, "APPEND", &mut |_| {}).await {
                    Ok(tag) => tags.push((i, tag)),
                    Err(e) if conn.is_usable() => slots[i] = Some(Err(e.in_folder(folder))),
                    Err(e) => fatal = Some(e.in_folder(folder)),
                }
            }
            if conn.is_usable() && !tags.is_empty() {
                let list: Vec<String> = tags.iter().map(|(_, t)| t.clone()).collect();
                match conn.finish_all(&list, "APPEND", |_| {}).await {
                    Ok(results) => {
                        for ((i, _), r) in tags.iter().zip(results) {
                            slots[*i] = Some(match r {
                                Ok(done) => self.id_from(conn, &done),
                                Err(e) => Err(e.in_folder(folder)),
                            });
                        }
                    }
                    Err(e) => fatal = Some(e.in_folder(folder)),
                }
            }
            for slot in slots {
                out.push(match (slot, &fatal) {
                    (Some(r), _) => r,
                    (None, Some(e)) => Err(e.clone().in_folder(folder)),
                    (None, None) => Err(ImapError::protocol(
                        conn.ctx("APPEND"),
                        "no completion for an APPEND",
                    )),
                });
            }
        }
        out
    }

    fn id_from(&self, conn: &Conn, done: &RespText) -> Result<String, ImapError> {
        if !self.caps.uidplus() {
            return Ok(String::new());
        }
        match appenduids(done) {
            Some(ids) if ids.len() == 1 => Ok(ids[0].clone()),
            _ => Err(ImapError::protocol(
                conn.ctx("APPEND"),
                format!(
                    "APPEND completed without a usable APPENDUID: {:?}",
                    done.code_string()
                ),
            )),
        }
    }

    /// Finds a just-appended item when the server has no UIDPLUS.
    async fn locate(
        &self,
        conn: &mut Conn,
        folder: &str,
        item: &AppendItem<'_>,
    ) -> Result<String, ImapError> {
        // The header section is near the top; 1 MiB covers any sane one.
        let head = item.body.head(1 << 20).map_err(|e| {
            ImapError::protocol(
                conn.ctx("APPEND"),
                format!("reading the spooled message back: {e}"),
            )
        })?;
        let message_id = crate::header::message_id(&head);
        let hash = item.body.sha256();
        let found = self
            .find_on(conn, folder, message_id.as_deref(), item.body.len(), &hash)
            .await?;
        // The newest match is the one just written.
        found.into_iter().last().ok_or_else(|| {
            ImapError::protocol(
                conn.ctx("APPEND"),
                "the appended message cannot be found again (no UIDPLUS)",
            )
        })
    }

    /// The flags to send: `\Recent` never (Flags cannot hold it), system flags only when in
    /// PERMANENTFLAGS, keywords only when PERMANENTFLAGS has `\*` (or lists them).
    pub(super) fn flag_list(&self, flags: &Flags, info: &SelectInfo) -> String {
        let atoms = flags.to_atoms();
        let Some(perm) = &info.permanent_flags else {
            return atoms.join(" ");
        };
        let any_keyword = perm.iter().any(|p| p == "\\*");
        atoms
            .into_iter()
            .filter(|a| {
                perm.iter().any(|p| p.eq_ignore_ascii_case(a))
                    || (any_keyword && !a.starts_with('\\'))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// SELECTs (read-write) unless already selected.
pub(super) async fn select(conn: &mut Conn, folder: &str) -> Result<SelectInfo, ImapError> {
    conn.select_raw(folder, false).await
}

/// Splits a batch by item count and bytes.
fn chunks<'a, 'b>(items: &'a [AppendItem<'b>]) -> Vec<&'a [AppendItem<'b>]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut bytes = 0u64;
        while end < items.len()
            && end - start < MULTI_ITEMS
            && (end == start || bytes + items[end].body.len() <= MULTI_BYTES)
        {
            bytes += items[end].body.len();
            end += 1;
        }
        out.push(&items[start..end]);
        start = end;
    }
    out
}

/// `[APPENDUID v set]` -> `["v:u", ...]` in append order.
fn appenduids(done: &RespText) -> Option<Vec<String>> {
    if done.code_name() != Some("APPENDUID") {
        return None;
    }
    let code = done.code.as_ref()?;
    let validity = code.get(1)?.number()?;
    let set = code.get(2)?.text()?;
    let uids = parse_uid_set(&set)?;
    Some(
        uids.into_iter()
            .map(|u| format!("{validity}:{u}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::wire::{Response, parse_response};

    #[test]
    fn appenduid_ranges_expand_in_order() {
        let Ok(Response::Tagged { text, .. }) =
            parse_response(b"m1 OK [APPENDUID 77 10:12] done\r\n")
        else {
            panic!("parse")
        };
        assert_eq!(
            appenduids(&text),
            Some(vec!["77:10".into(), "77:11".into(), "77:12".into()])
        );
        let Ok(Response::Tagged { text, .. }) = parse_response(b"m1 OK done\r\n") else {
            panic!("parse")
        };
        assert_eq!(appenduids(&text), None);
    }
}
