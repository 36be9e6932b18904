//! The `calls` functions of the store, on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use trunkline::store::testing::test_databases;
use trunkline::store::{
    CallFilter, CallStatus, Direction, EndedBy, FinalStatus, NewCall, RtpStats, Store, StoreError,
    new_id,
};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn new_call(at: DateTime<Utc>, direction: Direction) -> NewCall {
    NewCall {
        id: new_id(at),
        direction,
        from: "+15550001111".into(),
        to: "sip:echo@127.0.0.1".into(),
        trunk: Some("local".into()),
        sip_call_id: None,
        status: CallStatus::Queued,
        status_callback: Some("http://127.0.0.1:9/hook".into()),
        metadata: json!({"campaign": "spring", "n": 3}),
        idempotency_key: None,
        api_key_id: None,
        created_at: at,
    }
}

async fn lifecycle(store: &Store, label: &str) {
    let t = t0();
    let nc = new_call(t, Direction::Outbound);
    let c = store.insert_call(&nc).await.unwrap();
    assert_eq!(c.id, nc.id, "{label}");
    assert_eq!(c.status, CallStatus::Queued);
    assert_eq!(
        c.created_at, t,
        "{label}: timestamps round-trip to the microsecond"
    );
    assert_eq!(c.metadata, json!({"campaign": "spring", "n": 3}));
    assert_eq!(c.final_status, None);
    assert_eq!(store.get_call(nc.id).await.unwrap().as_ref(), Some(&c));

    // Same id again: a conflict, not a generic error.
    let e = store.insert_call(&nc).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{label}: {e}");

    assert!(store.mark_initiated(nc.id, Some("abc@host")).await.unwrap());
    assert!(!store.mark_initiated(nc.id, Some("other")).await.unwrap());
    let by_sip = store
        .get_call_by_sip_call_id("abc@host")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_sip.id, nc.id);
    assert_eq!(by_sip.status, CallStatus::Initiated);

    let ring = t + TimeDelta::milliseconds(800);
    assert!(store.mark_ringing(nc.id, ring).await.unwrap());
    assert!(
        !store
            .mark_ringing(nc.id, ring + TimeDelta::seconds(1))
            .await
            .unwrap()
    );
    let answer = t + TimeDelta::milliseconds(3_000);
    assert!(store.mark_answered(nc.id, answer).await.unwrap());
    assert!(!store.mark_answered(nc.id, answer).await.unwrap());
    // Ringing after the answer (a late 180) changes nothing.
    assert!(!store.mark_ringing(nc.id, answer).await.unwrap());
    let c = store.get_call(nc.id).await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::InProgress);
    assert_eq!(c.ringing_at, Some(ring));
    assert_eq!(c.answered_at, Some(answer));

    let stats = RtpStats {
        packets_in: 1500,
        packets_out: 1499,
        packets_lost: 3,
        packets_late: 1,
        jitter_ms: 2.5,
    };
    let end = answer + TimeDelta::milliseconds(30_250);
    assert!(
        store
            .finish_call(
                nc.id,
                FinalStatus::Completed,
                Some(200),
                Some("bye"),
                EndedBy::Api,
                &stats,
                end
            )
            .await
            .unwrap()
    );
    // A second finish is a no-op: the first final status stays.
    assert!(
        !store
            .finish_call(
                nc.id,
                FinalStatus::Failed,
                Some(500),
                None,
                EndedBy::System,
                &RtpStats::default(),
                end
            )
            .await
            .unwrap()
    );
    assert!(!store.mark_answered(nc.id, end).await.unwrap());
    let c = store.get_call(nc.id).await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::Completed, "{label}");
    assert_eq!(c.final_status, Some(FinalStatus::Completed));
    assert_eq!(c.ended_at, Some(end));
    assert_eq!(c.duration_ms, Some(30_250));
    assert_eq!(c.end_sip_code, Some(200));
    assert_eq!(c.end_reason.as_deref(), Some("bye"));
    assert_eq!(c.ended_by, Some(EndedBy::Api));
    assert_eq!(c.rtp, stats);

    // Never answered: duration 0, status equals the final status.
    let nc2 = new_call(t + TimeDelta::seconds(1), Direction::Outbound);
    store.insert_call(&nc2).await.unwrap();
    assert!(
        store
            .finish_call(
                nc2.id,
                FinalStatus::Busy,
                Some(486),
                Some("Busy Here"),
                EndedBy::Callee,
                &RtpStats::default(),
                t + TimeDelta::seconds(2)
            )
            .await
            .unwrap()
    );
    let c2 = store.get_call(nc2.id).await.unwrap().unwrap();
    assert_eq!(c2.status, CallStatus::Busy);
    assert_eq!(c2.duration_ms, Some(0));
    assert_eq!(c2.answered_at, None);

    // Unknown ids.
    let unknown = Uuid::new_v4();
    assert_eq!(store.get_call(unknown).await.unwrap(), None);
    assert!(!store.mark_ringing(unknown, t).await.unwrap());
    assert!(
        !store
            .finish_call(
                unknown,
                FinalStatus::Failed,
                None,
                None,
                EndedBy::System,
                &RtpStats::default(),
                t
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn call_lifecycle_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        lifecycle(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

async fn listing(store: &Store, label: &str) {
    let t = t0();
    let mut ids = Vec::new();
    // 23 calls, one second apart, alternating direction; 3 share one timestamp (ties on
    // created_at are broken by id).
    for i in 0..23i64 {
        let at = if (10..13).contains(&i) {
            t + TimeDelta::seconds(10)
        } else {
            t + TimeDelta::seconds(i)
        };
        let dir = if i % 2 == 0 {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let mut nc = new_call(at, dir);
        nc.id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + i as u128);
        store.insert_call(&nc).await.unwrap();
        ids.push((at, nc.id));
    }
    store
        .finish_call(
            ids[5].1,
            FinalStatus::NoAnswer,
            None,
            None,
            EndedBy::System,
            &RtpStats::default(),
            t + TimeDelta::minutes(5),
        )
        .await
        .unwrap();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));

    // Walk every page of 5: each call exactly once, newest first.
    let mut seen = Vec::new();
    let mut f = CallFilter {
        limit: Some(5),
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list_calls(&f).await.unwrap();
        pages += 1;
        assert!(page.calls.len() <= 5);
        seen.extend(page.calls.iter().map(|c| (c.created_at, c.id)));
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "{label}: pagination does not end");
    }
    assert_eq!(seen, newest_first, "{label}");
    assert_eq!(pages, 5);

    // Filters.
    let f = CallFilter {
        direction: Some(Direction::Inbound),
        limit: Some(500),
        ..Default::default()
    };
    let page = store.list_calls(&f).await.unwrap();
    assert_eq!(page.calls.len(), 11, "{label}");
    assert!(page.calls.iter().all(|c| c.direction == Direction::Inbound));
    assert_eq!(page.next_cursor, None);

    let f = CallFilter {
        status: Some(CallStatus::NoAnswer),
        ..Default::default()
    };
    let page = store.list_calls(&f).await.unwrap();
    assert_eq!(
        page.calls.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ids[5].1]
    );

    let f = CallFilter {
        since: Some(t + TimeDelta::seconds(3)),
        until: Some(t + TimeDelta::seconds(6)),
        ..Default::default()
    };
    let page = store.list_calls(&f).await.unwrap();
    let got: Vec<_> = page.calls.iter().map(|c| c.id).collect();
    assert_eq!(
        got,
        vec![ids[5].1, ids[4].1, ids[3].1],
        "{label}: since inclusive, until exclusive"
    );

    // Limits are clamped; a forged cursor is refused.
    let f = CallFilter {
        limit: Some(100_000),
        ..Default::default()
    };
    assert_eq!(store.list_calls(&f).await.unwrap().calls.len(), 23);
    let f = CallFilter {
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(store.list_calls(&f).await.unwrap().calls.len(), 1);
    let f = CallFilter {
        cursor: Some("not-a-cursor".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list_calls(&f).await,
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn list_calls_pages_and_filters_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        listing(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn migrate_twice_is_harmless_and_data_survives_reconnect() {
    for db in test_databases().await {
        let store = db.store().await;
        let nc = new_call(t0(), Direction::Inbound);
        store.insert_call(&nc).await.unwrap();
        store.close().await;
        let again = db.store().await;
        again.migrate().await.unwrap();
        assert!(
            again.get_call(nc.id).await.unwrap().is_some(),
            "{}",
            db.label
        );
        again.close().await;
        db.remove().await;
    }
}
