//! The folders a user subscribed to, from `LSUB "" "*"` (IMAP4rev1; every server has it), so the
//! destination's subscriptions can be made equal to the source's.

use std::collections::HashSet;

use super::ImapError;
use super::conn::Conn;
use super::wire::{Command, Response};

impl Conn {
    /// Raw names of the subscribed folders matching `pattern`.
    pub(crate) async fn lsub(&mut self, pattern: &str) -> Result<HashSet<String>, ImapError> {
        let mut cmd = Command::new("LSUB \"\" ");
        cmd.astring(pattern);
        let reply = self.run(&cmd, "LSUB").await?;
        let mut out = HashSet::new();
        for r in reply.untagged {
            let Response::Data { name, args, .. } = r else {
                continue;
            };
            if name != "LSUB" {
                continue;
            }
            // (attributes) delimiter name
            if let Some(name) = args.get(2).and_then(|v| v.text()) {
                // LSUB answers INBOX in any case; it is always INBOX.
                let name = if name.eq_ignore_ascii_case("INBOX") {
                    "INBOX".to_owned()
                } else {
                    name.into_owned()
                };
                out.insert(name);
            }
        }
        Ok(out)
    }
}
