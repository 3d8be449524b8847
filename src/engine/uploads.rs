//! Upload progress for the operator: the Graph apps count the bytes of upload sessions in flight
//! ([`GraphApp::uploads_in_flight`]); this turns them into [`Event::Uploading`] whenever they
//! moved, so the periodic progress line shows a large message advancing ("uploading 1 message,
//! 37.5 of 140.0 MB sent") instead of standing still for minutes.

use std::collections::HashMap;

use crate::report::{Event, Events};
use crate::sink::graph::{GraphApp, UploadProgress};

/// What was last announced, per mailbox (the Graph user, lower-case, as throttling events name it).
#[derive(Default)]
pub(crate) struct UploadWatch {
    seen: HashMap<String, UploadProgress>,
}

impl UploadWatch {
    /// Announces each mailbox whose uploads changed since the last call (an end as `messages: 0`).
    pub(crate) fn tick(&mut self, apps: &[GraphApp], events: &Events) {
        let mut now: HashMap<String, UploadProgress> = HashMap::new();
        for app in apps {
            for (user, p) in app.uploads_in_flight() {
                let e = now.entry(user.to_lowercase()).or_default();
                e.messages += p.messages;
                e.sent += p.sent;
                e.total += p.total;
            }
        }
        for (user, p) in &now {
            if self.seen.get(user) != Some(p) {
                send(events, user, *p);
            }
        }
        for user in self.seen.keys().filter(|u| !now.contains_key(*u)) {
            send(events, user, UploadProgress::default());
        }
        self.seen = now;
    }
}

fn send(events: &Events, mailbox: &str, p: UploadProgress) {
    events.send(Event::Uploading {
        mailbox: mailbox.to_owned(),
        messages: p.messages,
        sent: p.sent,
        total: p.total,
    });
}
