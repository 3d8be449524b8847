//! Received dates in Exchange by importMime. Exchange takes an imported message's received time
//! from its top `Received:` header (the emulator's model of the rule), else another header or
//! the import time. With `received_date = "prepend-received"` mailferry puts one `Received:` line
//! carrying the INTERNALDATE in front, so the received time is the source's; the DKIM-signed
//! corpus messages still verify (dkimpy). `verify --deep` compares Graph dates within a minute:
//! a discrepancy where the plan promises the date, a note where it does not.

use mailferry::emulator::{EmulatorConfig, EmulatorHandle};
use mailferry::model::Flags;

use super::Rig;
use crate::signatures::{DKIM, dkim_verifies, mimekit};
use crate::support::corpus::{date_for, generated_message, imap_ready};

/// The signed corpus messages and one without any `Received:` header.
fn messages() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = DKIM
        .iter()
        .map(|(m, _)| imap_ready(&std::fs::read(mimekit(m)).unwrap()))
        .collect();
    v.push(generated_message(7, 300));
    v
}

async fn rig(received_date: &str) -> Rig {
    let rig = Rig::new(
        "",
        EmulatorConfig::default(),
        &format!("received_date = \"{received_date}\""),
        "",
    )
    .await;
    rig.source.add_user("dee", "pw-dee");
    rig.rows("EmailAddress,UserName,Password,Destination\ndee@contoso.example,dee,,exo\n");
    let batch: Vec<_> = messages()
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m, Flags::default(), date_for(i)))
        .collect();
    rig.source.load("dee", &["INBOX"], &batch);
    rig
}

/// (stored MIME, receivedDateTime as UTC seconds) per item, in source order.
fn stored(emu: &EmulatorHandle) -> Vec<(Vec<u8>, i64)> {
    let insp = emu.inspect();
    let view = insp.mailbox("dee@contoso.example").unwrap();
    let originals = messages();
    originals
        .iter()
        .map(|o| {
            let item = view
                .items
                .iter()
                .find(|i| {
                    let raw = insp
                        .raw_mime("dee@contoso.example", &i.id)
                        .unwrap_or_default();
                    raw.ends_with(o)
                })
                .expect("every message is at the destination");
            let raw = insp.raw_mime("dee@contoso.example", &item.id).unwrap();
            let at =
                chrono::DateTime::parse_from_rfc3339(item.received_date_time.as_deref().unwrap())
                    .unwrap()
                    .timestamp();
            (raw, at)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepend_received_keeps_internaldate_and_dkim_still_verifies() {
    let rig = rig("prepend-received").await;
    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    let originals = messages();
    for (i, ((raw, at), original)) in stored(&rig.emulator).iter().zip(&originals).enumerate() {
        assert_eq!(
            *at,
            date_for(i).timestamp(),
            "message {i}: received time is INTERNALDATE"
        );
        // The byte difference is exactly one header line in front.
        let extra = &raw[..raw.len() - original.len()];
        assert!(extra.starts_with(b"Received: ") && extra.ends_with(b"\r\n"));
        assert_eq!(extra.iter().filter(|b| **b == b'\n').count(), 1);
        let line = String::from_utf8_lossy(extra);
        // Dovecot's Maildir keeps the instant, not the zone: INTERNALDATE comes back in UTC.
        let utc = date_for(i).with_timezone(&chrono::Utc).to_rfc2822();
        assert!(line.contains(&utc), "{line}");
        assert!(extra.len() < 120, "{} bytes added", extra.len());
    }
    let dir = tempfile::tempdir().unwrap();
    for ((_, key), (raw, _)) in DKIM.iter().zip(stored(&rig.emulator)) {
        assert!(
            dkim_verifies(&raw, &mimekit(key), dir.path()),
            "DKIM fails with the line"
        );
    }
    let report = rig.verify().await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
    // A second run finds every copy again (the line does not make it a different message).
    let again = rig.migrate().await;
    assert_eq!(again.total().copied, 0, "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_is_leaves_exchange_the_choice_and_verify_says_so() {
    let rig = rig("as-is").await;
    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    let originals = messages();
    let got = stored(&rig.emulator);
    for ((raw, _), original) in got.iter().zip(&originals) {
        assert_eq!(raw, original, "as-is copies are byte-identical");
    }
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (_, at))| *at != date_for(i).timestamp()),
        "Exchange's rule did not pick INTERNALDATE here"
    );
    // Nothing promised: verify notes the difference and stays perfect.
    let report = rig.verify().await;
    let dee = &report.mailboxes[0];
    assert_eq!(dee.verdict, "perfect", "{dee:#?}");
    assert!(
        dee.reasons.iter().any(|r| r.starts_with("dates: 4 items")),
        "{:?}",
        dee.reasons
    );
    // Promised (the plan now says prepend-received) but not held: a discrepancy per item.
    let text = std::fs::read_to_string(&rig.plan_path).unwrap();
    std::fs::write(
        &rig.plan_path,
        text.replace("\"as-is\"", "\"prepend-received\""),
    )
    .unwrap();
    let report = rig.verify().await;
    let dee = &report.mailboxes[0];
    assert_eq!(dee.verdict, "investigate");
    assert_eq!(dee.changed.len(), 4, "{:#?}", dee.changed);
    assert!(
        dee.changed[0].detail.starts_with("received "),
        "{:?}",
        dee.changed
    );
}
