//! The inbound-call tables of the store on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL:
//! a call is missed once whatever retries (unique constraint), the follow-up cool-down and
//! opt-out are decided inside the transaction (racing misses give one text), the sweeper's
//! list, the follow-up state from the outbox, and pruning.

use chrono::{DateTime, TimeDelta, Utc};
use trunkline::events::EventBus;
use trunkline::inbound::MissReason;
use trunkline::inbound::followup::{FollowupPlan, MissedCall};
use trunkline::store::testing::test_databases;
use trunkline::store::{FollowupState, MissedFilter, Store};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn missed(n: u128, caller: &str, reason: MissReason, followup: bool) -> MissedCall {
    MissedCall {
        call_id: Uuid::from_u128(0xca11_0000 + n),
        number: "+15550000000".into(),
        caller: caller.into(),
        reason,
        ring_ms: 12_000,
        voicemail_id: None,
        followup: followup.then(|| FollowupPlan {
            url: "http://127.0.0.1:9/sms".into(),
            text: format!("missed {caller}"),
            cooldown_secs: 3_600,
        }),
        status_callback: Some("http://127.0.0.1:9/hook".into()),
    }
}

async fn count(store: &Store, kind: &str) -> usize {
    store
        .events_since(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

async fn once_and_cooldown(store: &Store, label: &str) {
    let bus = EventBus::new(store.clone());
    let t = t0();
    let m = missed(1, "+15551112222", MissReason::NoAnswer, true);
    store
        .insert_inbound_call(m.call_id, &m.number, &m.caller, t, "n1")
        .await
        .unwrap();
    let stale = t - chrono::TimeDelta::hours(6);
    assert_eq!(
        store
            .undecided_inbound_calls("n1", stale)
            .await
            .unwrap()
            .len(),
        1,
        "{label}"
    );
    // Another node starting leaves n1's ringing call alone, unless it is hours old.
    assert!(
        store
            .undecided_inbound_calls("n2", stale)
            .await
            .unwrap()
            .is_empty(),
        "{label}"
    );
    assert_eq!(
        store
            .undecided_inbound_calls("n2", t + chrono::TimeDelta::seconds(1))
            .await
            .unwrap()
            .len(),
        1,
        "{label}: a stale call of a node presumed gone"
    );
    let first = bus.publish_missed(&m, t).await.unwrap().expect("recorded");
    assert_eq!(first.event.kind, "call.missed");
    assert_eq!(first.event.payload["reason"], "no-answer", "{label}");
    assert_eq!(
        first.event.payload["followup"]["state"], "pending",
        "{label}"
    );
    assert!(first.followup.is_some(), "{label}");
    // A retry (or the sweeper) for the same call writes nothing.
    assert!(
        bus.publish_missed(&m, t).await.unwrap().is_none(),
        "{label}"
    );
    let mut restart = m.clone();
    restart.reason = MissReason::Restart;
    assert!(
        bus.publish_missed(&restart, t).await.unwrap().is_none(),
        "{label}"
    );
    assert!(
        store
            .undecided_inbound_calls("n1", stale)
            .await
            .unwrap()
            .is_empty(),
        "{label}"
    );
    assert_eq!(count(store, "call.missed").await, 1, "{label}");
    assert_eq!(count(store, "followup.text").await, 1, "{label}");
    // The same caller again within the cool-down: missed again, no second text.
    let again = missed(2, "+15551112222", MissReason::CallerHangup, true);
    let r = bus
        .publish_missed(&again, t + TimeDelta::minutes(10))
        .await
        .unwrap()
        .expect("a second call is missed too");
    assert!(r.followup.is_none(), "{label}");
    assert_eq!(
        r.event.payload["followup"]["state"], "suppressed",
        "{label}"
    );
    assert_eq!(r.event.payload["followup"]["reason"], "cooldown", "{label}");
    // After the cool-down: a text again.
    let later = missed(3, "+15551112222", MissReason::Busy, true);
    let r = bus
        .publish_missed(&later, t + TimeDelta::hours(2))
        .await
        .unwrap()
        .unwrap();
    assert!(r.followup.is_some(), "{label}");
    assert_eq!(count(store, "call.missed").await, 3, "{label}");
    assert_eq!(count(store, "followup.text").await, 2, "{label}");
    // Opt-out: suppressed, and the list and API rows say why.
    store
        .add_opt_out("+15553334444", Some("replied STOP"), t)
        .await
        .unwrap();
    let opted = missed(4, "+15553334444", MissReason::Closed, true);
    let r = bus.publish_missed(&opted, t).await.unwrap().unwrap();
    assert_eq!(r.event.payload["followup"]["reason"], "opt-out", "{label}");
    let row = store.get_missed_call(opted.call_id).await.unwrap().unwrap();
    assert_eq!(row.followup_state, FollowupState::Suppressed, "{label}");
    assert_eq!(row.followup_reason.as_deref(), Some("opt-out"), "{label}");
    assert!(store.remove_opt_out("+15553334444").await.unwrap());
    assert!(!store.remove_opt_out("+15553334444").await.unwrap());
    // Follow-up state follows the outbox: delivered -> sent.
    let row = store.get_missed_call(m.call_id).await.unwrap().unwrap();
    assert_eq!(row.followup_state, FollowupState::Pending, "{label}");
    let f = first.followup.unwrap();
    let outbox = store.outbox_entries(f.id).await.unwrap();
    assert_eq!(outbox.len(), 1, "{label}");
    assert_eq!(outbox[0].url, "http://127.0.0.1:9/sms");
    assert!(store.mark_delivered(outbox[0].id, t).await.unwrap());
    let row = store.get_missed_call(m.call_id).await.unwrap().unwrap();
    assert_eq!(row.followup_state, FollowupState::Sent, "{label}");
    // Given up -> failed with the reason.
    let f3 = r_followup_event(store, later.call_id).await;
    let o3 = store.outbox_entries(f3).await.unwrap();
    store
        .mark_delivery_given_up(o3[0].id, "HTTP 500", t)
        .await
        .unwrap();
    let row = store.get_missed_call(later.call_id).await.unwrap().unwrap();
    assert_eq!(row.followup_state, FollowupState::Failed, "{label}");
    assert_eq!(row.followup_reason.as_deref(), Some("HTTP 500"), "{label}");
    // Listing, newest first, by caller.
    let page = store
        .list_missed_calls(&MissedFilter {
            caller: Some("+15551112222".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.missed_calls.len(), 3, "{label}");
    // No follow-up configured: state none.
    let plain = missed(5, "+15556667777", MissReason::NoAgents, false);
    bus.publish_missed(&plain, t).await.unwrap().unwrap();
    let row = store.get_missed_call(plain.call_id).await.unwrap().unwrap();
    assert_eq!(row.followup_state, FollowupState::None, "{label}");
    // Pruning: everything older than the cut whose follow-up is no longer pending (call 2's
    // is suppressed, 4's suppressed, 1 sent, 3 failed, 5 none) goes.
    let n = store
        .prune_missed_calls(t + TimeDelta::days(1), t + TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(n, 5, "{label}");
}

async fn r_followup_event(store: &Store, call_id: Uuid) -> Uuid {
    store
        .get_missed_call(call_id)
        .await
        .unwrap()
        .unwrap()
        .followup_event_id
        .expect("a follow-up event")
}

#[tokio::test]
async fn missed_once_with_cooldown_and_opt_out_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        once_and_cooldown(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

/// Twenty misses of one caller at once (different calls), and twenty attempts for one call,
/// straight to the store on separate connections (as several nodes would): one text per
/// caller, one `call.missed` for the single call.
async fn racing(store: &Store, label: &str) {
    let t = t0();
    let mut tasks = Vec::new();
    for i in 0..20u128 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = missed(100 + i, "+15559990000", MissReason::NoAnswer, true);
            s.record_missed(&m, t).await.unwrap()
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = missed(999, "+15558880000", MissReason::CallerHangup, true);
            s.record_missed(&m, t).await.unwrap()
        }));
    }
    let mut texts = 0;
    let mut recorded = 0;
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            recorded += 1;
            texts += usize::from(r.followup.is_some());
        }
    }
    assert_eq!(
        recorded, 21,
        "{label}: 20 calls of one caller + one call once"
    );
    assert_eq!(texts, 2, "{label}: one text per caller");
}

#[tokio::test]
async fn racing_misses_give_one_text_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        racing(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}
