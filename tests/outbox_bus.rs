//! The event bus: stored before broadcast, subscribers in `seq` order, lagging subscribers told
//! so and able to catch up from the store; on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use trunkline::events::{EVENT_BROADCAST_CAPACITY, EventBus, kinds};
use trunkline::store::testing::test_databases;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn subscribers_get_stored_events_in_order_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let bus = EventBus::new(store.clone());
        let mut rx = bus.subscribe();
        let call = Uuid::new_v4();
        let mut published = Vec::new();
        for (i, kind) in [
            kinds::CALL_INITIATED,
            kinds::CALL_RINGING,
            kinds::CALL_ANSWERED,
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0() + TimeDelta::milliseconds(i as i64 * 10);
            let e = bus
                .publish(at, kind, Some(call), json!({"i": i}), None)
                .await
                .unwrap();
            // Stored before it is broadcast.
            assert_eq!(store.events_for_call(call).await.unwrap().last(), Some(&*e));
            published.push(e);
        }
        for e in &published {
            assert_eq!(&rx.recv().await.unwrap(), e, "{}", db.label);
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        // No outbox rows without a webhook URL.
        assert_eq!(store.pending_deliveries().await.unwrap(), 0);

        // Resume after the first (as with Last-Event-ID).
        let since = bus.events_since(published[0].seq, 100).await.unwrap();
        let want: Vec<_> = published[1..].iter().map(|e| (**e).clone()).collect();
        assert_eq!(since, want, "{}", db.label);

        // JSON shape of the webhook body / SSE data.
        let v = serde_json::to_value(&*published[0]).unwrap();
        assert_eq!(v["type"], "call.initiated");
        assert_eq!(v["call_id"], json!(call));
        assert_eq!(v["created_at"], "2026-03-01T12:00:00Z");
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_and_catches_up_from_the_store_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let bus = EventBus::new(store.clone());
        let mut slow = bus.subscribe();
        let extra = 5;
        let mut first = None;
        for i in 0..EVENT_BROADCAST_CAPACITY + extra {
            // The publisher never waits for the slow subscriber.
            let e = bus
                .publish(t0(), "test.tick", None, json!({"i": i}), None)
                .await
                .unwrap();
            first.get_or_insert(e.seq);
        }
        match slow.recv().await {
            Err(RecvError::Lagged(n)) => assert_eq!(n, extra as u64, "{}", db.label),
            other => panic!("{}: expected a lag notice, got {other:?}", db.label),
        }
        // What it still gets starts after the missed ones; the store has those.
        let next = slow.recv().await.unwrap();
        let first = first.unwrap();
        let missed = bus.events_since(first - 1, extra as u32).await.unwrap();
        assert_eq!(missed.len(), extra);
        assert_eq!(missed.last().unwrap().seq + 1, next.seq, "{}", db.label);
        store.close().await;
        db.remove().await;
    }
}
