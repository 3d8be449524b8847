//! Bytes of upload sessions in flight, per mailbox, for progress output: one large message can
//! take minutes to upload (150 MB in 4 MB ranges, paced by the byte budget), and a log that shows
//! nothing moving for that long looks like a hang. Each message with an upload session holds a
//! [`MessageUpload`]; every range the server accepted adds its bytes, and dropping the guard (the
//! message done, failed, or its future dropped by an abort) takes the message off again.

use std::collections::HashMap;
use std::sync::Mutex;

/// Upload sessions of one mailbox in flight right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadProgress {
    /// Messages with an upload session in flight.
    pub messages: u64,
    /// Bytes of their attachments the server has taken so far.
    pub sent: u64,
    /// Bytes of their attachments that go through sessions started so far.
    pub total: u64,
}

/// The app's upload sessions in flight, by mailbox.
#[derive(Debug, Default)]
pub(crate) struct Uploads(Mutex<HashMap<String, UploadProgress>>);

impl Uploads {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, UploadProgress>) -> T) -> T {
        // Counters only: a panic elsewhere cannot leave them worse than slightly off.
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A guard for one message of `mailbox`; counts nothing until a session starts.
    pub(crate) fn message<'a>(&'a self, mailbox: &str) -> MessageUpload<'a> {
        MessageUpload {
            uploads: self,
            mailbox: mailbox.to_owned(),
            started: false,
            sent: 0,
            total: 0,
        }
    }

    /// Mailboxes with uploads in flight, sorted.
    pub(crate) fn snapshot(&self) -> Vec<(String, UploadProgress)> {
        let mut v: Vec<_> = self.with(|m| m.iter().map(|(k, p)| (k.clone(), *p)).collect());
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// One message's upload sessions, counted while it lives.
pub(crate) struct MessageUpload<'a> {
    uploads: &'a Uploads,
    mailbox: String,
    started: bool,
    sent: u64,
    total: u64,
}

impl MessageUpload<'_> {
    /// A session of `size` bytes starts.
    pub(crate) fn session(&mut self, size: u64) {
        let first = !self.started;
        self.started = true;
        self.total += size;
        self.uploads.with(|m| {
            let p = m.entry(self.mailbox.clone()).or_default();
            p.messages += u64::from(first);
            p.total += size;
        });
    }

    /// The server took `n` more bytes.
    pub(crate) fn sent(&mut self, n: u64) {
        self.sent += n;
        self.uploads.with(|m| {
            if let Some(p) = m.get_mut(&self.mailbox) {
                p.sent += n;
            }
        });
    }
}

impl Drop for MessageUpload<'_> {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        self.uploads.with(|m| {
            if let Some(p) = m.get_mut(&self.mailbox) {
                p.messages = p.messages.saturating_sub(1);
                p.sent = p.sent.saturating_sub(self.sent);
                p.total = p.total.saturating_sub(self.total);
                if p.messages == 0 {
                    m.remove(&self.mailbox);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_counts_while_it_lives() {
        let u = Uploads::default();
        let mut a = u.message("a@x");
        assert!(u.snapshot().is_empty(), "nothing until a session starts");
        a.session(10_000_000);
        a.sent(4_000_000);
        let mut b = u.message("a@x");
        b.session(2_000_000);
        a.session(1_000_000);
        assert_eq!(
            u.snapshot(),
            vec![(
                "a@x".to_owned(),
                UploadProgress {
                    messages: 2,
                    sent: 4_000_000,
                    total: 13_000_000
                }
            )]
        );
        drop(a);
        assert_eq!(
            u.snapshot()[0].1,
            UploadProgress {
                messages: 1,
                sent: 0,
                total: 2_000_000
            }
        );
        drop(b);
        assert!(u.snapshot().is_empty());
    }
}
