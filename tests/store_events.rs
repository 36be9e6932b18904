//! The event log and outbox functions of the store, on SQLite and (with `TRUNKLINE_TEST_PG`)
//! PostgreSQL: claim order per call, leases, retries, give-up.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use trunkline::store::testing::test_databases;
use trunkline::store::{Store, new_id};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const URL: &str = "http://127.0.0.1:9/hook";

async fn event(
    store: &Store,
    at: DateTime<Utc>,
    kind: &str,
    call: Option<Uuid>,
    urls: &[&str],
) -> trunkline::events::Event {
    store
        .insert_event(new_id(at), kind, call, &json!({"k": kind}), at, urls)
        .await
        .unwrap()
}

async fn log_and_queries(store: &Store, label: &str) {
    let t = t0();
    let call = Uuid::new_v4();
    let e1 = event(store, t, "call.initiated", Some(call), &[URL]).await;
    let e2 = event(
        store,
        t + TimeDelta::seconds(1),
        "call.ringing",
        Some(call),
        &[URL],
    )
    .await;
    let other = event(
        store,
        t + TimeDelta::seconds(2),
        "system.started",
        None,
        &[],
    )
    .await;
    assert!(e1.seq < e2.seq && e2.seq < other.seq, "{label}");
    assert_eq!(e1.payload, json!({"k": "call.initiated"}));

    let all = store.events_since(0, 100).await.unwrap();
    assert_eq!(all, vec![e1.clone(), e2.clone(), other.clone()], "{label}");
    assert_eq!(
        store.events_since(e1.seq, 1).await.unwrap(),
        vec![e2.clone()]
    );
    assert_eq!(store.events_since(other.seq, 100).await.unwrap(), vec![]);
    assert_eq!(
        store.events_for_call(call).await.unwrap(),
        vec![e1.clone(), e2.clone()]
    );

    // Outbox rows exist only for events with URLs.
    assert_eq!(store.pending_deliveries().await.unwrap(), 2);
    assert_eq!(store.outbox_entries(other.id).await.unwrap(), vec![]);
    let entry = &store.outbox_entries(e1.id).await.unwrap()[0];
    assert_eq!(entry.url, URL);
    assert_eq!(entry.attempts, 0);
    assert_eq!(entry.next_attempt_at, t);
}

#[tokio::test]
async fn event_log_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        log_and_queries(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

async fn claims(store: &Store, label: &str) {
    let t = t0();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let a1 = event(store, t, "call.initiated", Some(a), &[URL]).await;
    let b1 = event(store, t, "call.initiated", Some(b), &[URL]).await;
    let a2 = event(store, t, "call.ringing", Some(a), &[URL]).await;
    let a3 = event(
        store,
        t,
        "call.answered",
        Some(a),
        &[URL, "http://127.0.0.1:9/other"],
    )
    .await;
    let free = event(store, t, "system", None, &[URL]).await;

    let now = t + TimeDelta::seconds(1);
    let lease = now + TimeDelta::seconds(30);
    assert_eq!(store.next_delivery_due().await.unwrap(), Some(t), "{label}");

    // Only chain heads: a1, b1, a3 to the other URL, and the call-less event.
    let got = store.claim_deliveries(now, lease, 10).await.unwrap();
    let ids: Vec<_> = got.iter().map(|d| (d.event.id, d.url.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (a1.id, URL),
            (b1.id, URL),
            (a3.id, "http://127.0.0.1:9/other"),
            (free.id, URL)
        ],
        "{label}"
    );
    assert_eq!(got[0].event, a1);
    assert_eq!(got[0].attempts, 0);
    assert_eq!(got[0].queued_at, t);
    // Leased rows are not claimed again; a2 still waits for a1.
    assert!(
        store
            .claim_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Next due: the end of the leases (a2/a3 wait behind a1, so they do not count).
    assert_eq!(store.next_delivery_due().await.unwrap(), Some(lease));

    let by_event = |id: Uuid| got.iter().find(|d| d.event.id == id).unwrap().outbox_id;
    // a1 fails: retried later; its chain stays blocked meanwhile.
    let retry = now + TimeDelta::seconds(5);
    assert!(
        store
            .mark_delivery_failed(by_event(a1.id), "http status 500", retry)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let e = &store.outbox_entries(a1.id).await.unwrap()[0];
    assert_eq!(
        (e.attempts, e.last_error.as_deref()),
        (1, Some("http status 500"))
    );
    assert_eq!(e.next_attempt_at, retry);

    // b1 delivered, free given up.
    assert!(store.mark_delivered(by_event(b1.id), now).await.unwrap());
    assert!(
        !store.mark_delivered(by_event(b1.id), now).await.unwrap(),
        "{label}: once"
    );
    assert!(
        store
            .mark_delivery_given_up(by_event(free.id), "gone", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_delivery_failed(by_event(free.id), "x", now)
            .await
            .unwrap()
    );
    let e = &store.outbox_entries(free.id).await.unwrap()[0];
    assert_eq!((e.attempts, e.given_up_at), (1, Some(now)));

    // After the retry time a1 comes back with its attempt count; then a2 after a1, a3 after a2.
    let later = retry + TimeDelta::seconds(1);
    let got = store
        .claim_deliveries(later, later + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{label}");
    assert_eq!((got[0].event.id, got[0].attempts), (a1.id, 1));
    assert!(store.mark_delivered(got[0].outbox_id, later).await.unwrap());
    let got = store
        .claim_deliveries(later, later + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        vec![a2.id]
    );
    // A given-up row does not block its successors.
    assert!(
        store
            .mark_delivery_given_up(got[0].outbox_id, "gone", later)
            .await
            .unwrap()
    );
    let got = store
        .claim_deliveries(later, later + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|d| (d.event.id, d.url.as_str()))
            .collect::<Vec<_>>(),
        vec![(a3.id, URL)]
    );
    assert!(store.mark_delivered(got[0].outbox_id, later).await.unwrap());

    // An expired lease makes a row claimable again (its sender died): a3 to the other URL.
    let after_lease = lease + TimeDelta::seconds(1);
    let got = store
        .claim_deliveries(after_lease, after_lease + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        vec![a3.id],
        "{label}"
    );
    assert!(
        store
            .mark_delivered(got[0].outbox_id, after_lease)
            .await
            .unwrap()
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert_eq!(store.next_delivery_due().await.unwrap(), None);

    // The limit is honoured.
    for i in 0..5 {
        event(store, after_lease, "x", None, &[URL]).await;
        let _ = i;
    }
    let got = store
        .claim_deliveries(after_lease, after_lease + TimeDelta::seconds(30), 3)
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn outbox_claims_in_order_with_leases_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        claims(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_row_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let t = t0();
        for _ in 0..40 {
            event(&store, t, "x", None, &[URL]).await;
        }
        let now = t + TimeDelta::seconds(1);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_deliveries(now, now + TimeDelta::seconds(60), 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break mine;
                    }
                    mine.extend(got.into_iter().map(|d| d.outbox_id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!((n, all.len()), (40, 40), "{}", db.label);
        store.close().await;
        db.remove().await;
    }
}
