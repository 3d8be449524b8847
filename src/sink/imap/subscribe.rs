//! Folder subscriptions at the destination, made equal to the source's: `SUBSCRIBE` or
//! `UNSUBSCRIBE` per folder (INBOX included).

use super::ImapSink;
use crate::imap::wire::Command;
use crate::imap::{ErrorKind, ImapError};

impl ImapSink {
    /// Subscribes or unsubscribes the folder with this raw name. Unsubscribing a folder that is
    /// not subscribed is fine (servers answer OK or NO; a NO there is not an error).
    pub async fn set_subscribed(&self, folder: &str, subscribed: bool) -> Result<(), ImapError> {
        let verb = if subscribed {
            "SUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        let result = with_lease!(self, |c| {
            let mut cmd = Command::new(&format!("{verb} "));
            cmd.astring(folder);
            async move { c.run(&cmd, verb).await.map(|_| ()) }
        });
        match result {
            Err(e) if !subscribed && matches!(e.kind(), ErrorKind::No { .. }) => Ok(()),
            other => other.map_err(|e| e.in_folder(folder)),
        }
    }
}
