//! `verify --deep` finds extra items (issue 13.2): an unstamped copy of a source message (what a
//! lost importMime response followed by a second write used to leave) and a folder holding more
//! items than its source are differences, reported as "extra (possible duplicate)" with the ids.

use base64::Engine;
use mailferry::emulator::EmulatorConfig;
use mailferry::engine::{self, MigrateOptions};
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;

use crate::emulator::token_for;
use crate::migrate::{Rig, generated, write_maildir};

/// Imports `raw` into the mailbox's Inbox behind mailferry's back (no stamp): a second copy.
async fn import_behind_the_back(rig: &Rig, address: &str, raw: &[u8]) -> String {
    let http = reqwest::Client::new();
    let t = token_for(&http, &rig.emulator, "mailferry-demo", "demo-secret").await;
    let token = t.json["access_token"].as_str().unwrap().to_owned();
    let r = http
        .post(format!(
            "{}/beta/users/{address}/mailFolders/inbox/importMime",
            rig.emulator.base_url()
        ))
        .bearer_auth(token)
        .header("Content-Type", "text/plain")
        .body(base64::engine::general_purpose::STANDARD.encode(raw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstamped_copy_of_a_source_message_is_an_extra_item() {
    let rig = Rig::new(&["kim"], EmulatorConfig::default()).await;
    let msgs: Vec<Vec<u8>> = (0..4).map(|i| generated(i, 500)).collect();
    write_maildir(
        &rig.tree("kim"),
        &[("", msgs.iter().map(|m| (m.clone(), "S")).collect())],
    );
    let s = rig.migrate(MigrateOptions::default()).await;
    assert!(!s.has_failures());
    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let clean = engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    assert!(clean.perfect, "{:#?}", clean.mailboxes);

    let extra = import_behind_the_back(&rig, "kim@contoso.example", &msgs[2]).await;
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    assert!(!report.perfect, "an extra copy must not be perfect");
    let m = &report.mailboxes[0];
    assert_eq!(m.verdict, "investigate");
    let found: Vec<_> = m
        .doubled
        .iter()
        .filter(|d| d.detail.contains("extra (possible duplicate)") && d.detail.contains(&extra))
        .collect();
    assert_eq!(found.len(), 1, "{m:#?}");
    assert_eq!(found[0].message_id.as_deref(), Some("<gen2@example.org>"));
    assert!(
        m.reasons.iter().any(
            |r| r.contains("5 items at the destination, 4 at the source") && r.contains(&extra)
        ),
        "{:?}",
        m.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_items_than_the_source_is_a_difference_even_when_unrelated() {
    let rig = Rig::new(&["lou"], EmulatorConfig::default()).await;
    write_maildir(
        &rig.tree("lou"),
        &[("", (0..3).map(|i| (generated(i, 300), "")).collect())],
    );
    rig.migrate(MigrateOptions::default()).await;
    // Not a copy of anything at the source: still more than the source holds.
    let extra = import_behind_the_back(&rig, "lou@contoso.example", &generated(99, 300)).await;
    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    assert!(!report.perfect);
    let m = &report.mailboxes[0];
    assert!(
        m.doubled
            .iter()
            .any(|d| d.kind == "extra" && d.detail.contains(&extra)),
        "{m:#?}"
    );
}
