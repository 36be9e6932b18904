//! `Store::write_batch` on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL: row changes with
//! the single functions' conditions, events only for changes that applied, in order, with their
//! outbox rows, and all or nothing.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use trunkline::store::testing::test_databases;
use trunkline::store::{
    Call, CallChange, CallStatus, CallWrite, Direction, EndedBy, FinalStatus, NewCall, NewEvent,
    RtpStats, Store, StoreError, new_id,
};
use uuid::Uuid;

const HOOK: &str = "http://127.0.0.1:9/hook";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456789Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn new_call(at: DateTime<Utc>, hook: bool) -> NewCall {
    NewCall {
        id: new_id(at),
        direction: Direction::Outbound,
        from: "+15550001111".into(),
        to: "sip:echo@127.0.0.1".into(),
        trunk: Some("local".into()),
        sip_call_id: Some(format!("{}@host", Uuid::new_v4().simple())),
        status: CallStatus::Initiated,
        status_callback: hook.then(|| HOOK.to_owned()),
        metadata: json!({"campaign": "spring", "n": 3}),
        idempotency_key: None,
        api_key_id: None,
        created_at: at,
    }
}

/// A write whose event carries `kind` and the call's URL.
fn write(
    change: CallChange,
    kind: &str,
    call_id: Uuid,
    at: DateTime<Utc>,
    hook: bool,
) -> CallWrite {
    CallWrite {
        change,
        event: NewEvent {
            id: new_id(at),
            kind: kind.to_owned(),
            call_id: Some(call_id),
            payload: json!({"kind": kind}),
            created_at: at,
            webhook_urls: if hook {
                vec![HOOK.to_owned()]
            } else {
                Vec::new()
            },
        },
    }
}

fn finish(call_id: Uuid, status: FinalStatus, at: DateTime<Utc>) -> CallChange {
    CallChange::Finish {
        call_id,
        status,
        sip_code: Some(200),
        reason: Some("bye".into()),
        ended_by: EndedBy::Callee,
        stats: RtpStats {
            packets_in: 100,
            packets_out: 99,
            packets_lost: 1,
            packets_late: 0,
            jitter_ms: 2.5,
        },
        at,
    }
}

async fn lifecycle_in_one_batch(store: &Store, label: &str) {
    let t = t0();
    let a = new_call(t, true);
    let b = new_call(t + TimeDelta::milliseconds(1), false);
    let ms = |n| t + TimeDelta::milliseconds(n);
    let writes = vec![
        write(
            CallChange::Insert(a.clone()),
            "call.initiated",
            a.id,
            ms(0),
            true,
        ),
        write(
            CallChange::Insert(b.clone()),
            "call.initiated",
            b.id,
            ms(1),
            false,
        ),
        write(
            CallChange::Ringing {
                call_id: a.id,
                at: ms(10),
            },
            "call.ringing",
            a.id,
            ms(10),
            true,
        ),
        write(
            CallChange::Answered {
                call_id: a.id,
                at: ms(20),
            },
            "call.answered",
            a.id,
            ms(20),
            true,
        ),
        // Rings after the answer: not applied, no event.
        write(
            CallChange::Ringing {
                call_id: a.id,
                at: ms(25),
            },
            "call.ringing",
            a.id,
            ms(25),
            true,
        ),
        write(CallChange::None, "call.dtmf", a.id, ms(30), true),
        write(
            finish(a.id, FinalStatus::Completed, ms(1520)),
            "call.completed",
            a.id,
            ms(1520),
            true,
        ),
        // A second end: not applied.
        write(
            finish(a.id, FinalStatus::Failed, ms(1600)),
            "call.completed",
            a.id,
            ms(1600),
            true,
        ),
        write(
            finish(b.id, FinalStatus::NoAnswer, ms(1700)),
            "call.completed",
            b.id,
            ms(1700),
            false,
        ),
    ];
    let events = store.write_batch(&writes).await.unwrap();
    let applied: Vec<bool> = events.iter().map(Option::is_some).collect();
    assert_eq!(
        applied,
        [true, true, true, true, false, true, true, false, true],
        "{label}"
    );
    let seqs: Vec<i64> = events.iter().flatten().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{label}: seq in write order: {seqs:?}"
    );

    // The rows equal the in-memory model of the same changes.
    for (nc, id) in [(&a, a.id), (&b, b.id)] {
        let mut model = Call::from_new(nc);
        for w in &writes {
            if w.change.call_id() == Some(id) && !matches!(w.change, CallChange::Insert(_)) {
                w.change.apply_to(&mut model);
            }
        }
        let stored = store.get_call(id).await.unwrap().unwrap();
        assert_eq!(stored, model, "{label}");
    }
    let row_a = store.get_call(a.id).await.unwrap().unwrap();
    assert_eq!(row_a.status, CallStatus::Completed, "{label}");
    assert_eq!(row_a.duration_ms, Some(1500), "{label}");
    assert_eq!(row_a.rtp.jitter_ms, 2.5, "{label}");
    let row_b = store.get_call(b.id).await.unwrap().unwrap();
    assert_eq!(row_b.final_status, Some(FinalStatus::NoAnswer), "{label}");
    assert_eq!(row_b.duration_ms, Some(0), "{label}");

    // Stored events: the applied ones, as returned, in order.
    let stored_a = store.events_for_call(a.id).await.unwrap();
    let kinds: Vec<&str> = stored_a.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "call.initiated",
            "call.ringing",
            "call.answered",
            "call.dtmf",
            "call.completed"
        ],
        "{label}"
    );
    let returned_a: Vec<_> = events
        .iter()
        .flatten()
        .filter(|e| e.call_id == Some(a.id))
        .cloned()
        .collect();
    assert_eq!(stored_a, returned_a, "{label}");
    assert_eq!(
        store.events_for_call(b.id).await.unwrap().len(),
        2,
        "{label}"
    );

    // One outbox row per event with a URL (call a's five), none for b.
    for e in &stored_a {
        let rows = store.outbox_entries(e.id).await.unwrap();
        assert_eq!(rows.len(), 1, "{label}: {}", e.kind);
        assert_eq!(rows[0].url, HOOK);
    }
    assert_eq!(store.pending_deliveries().await.unwrap(), 5, "{label}");
}

async fn update_before_its_insert_does_not_apply(store: &Store, label: &str) {
    let t = t0() + TimeDelta::seconds(10);
    let c = new_call(t, false);
    let writes = vec![
        write(
            CallChange::Ringing {
                call_id: c.id,
                at: t,
            },
            "call.ringing",
            c.id,
            t,
            false,
        ),
        write(
            CallChange::Insert(c.clone()),
            "call.initiated",
            c.id,
            t,
            false,
        ),
    ];
    let events = store.write_batch(&writes).await.unwrap();
    assert!(events[0].is_none(), "{label}");
    assert!(events[1].is_some(), "{label}");
    let row = store.get_call(c.id).await.unwrap().unwrap();
    assert_eq!(row.ringing_at, None, "{label}");
    assert!(store.write_batch(&[]).await.unwrap().is_empty());
}

async fn a_failed_batch_writes_nothing(store: &Store, label: &str) {
    let t = t0() + TimeDelta::seconds(20);
    let existing = new_call(t, true);
    store.insert_call(&existing).await.unwrap();
    let fresh = new_call(t + TimeDelta::milliseconds(1), true);
    let writes = vec![
        write(
            CallChange::Insert(fresh.clone()),
            "call.initiated",
            fresh.id,
            t,
            true,
        ),
        write(
            CallChange::Answered {
                call_id: existing.id,
                at: t,
            },
            "call.answered",
            existing.id,
            t,
            true,
        ),
        write(
            CallChange::Insert(existing.clone()),
            "call.initiated",
            existing.id,
            t,
            true,
        ),
    ];
    let e = store.write_batch(&writes).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{label}: {e}");
    assert_eq!(store.get_call(fresh.id).await.unwrap(), None, "{label}");
    let row = store.get_call(existing.id).await.unwrap().unwrap();
    assert_eq!(row.answered_at, None, "{label}: rolled back");
    assert!(store.events_for_call(fresh.id).await.unwrap().is_empty());
    assert!(store.events_for_call(existing.id).await.unwrap().is_empty());

    // The same writes without the bad one go through.
    let events = store.write_batch(&writes[..2]).await.unwrap();
    assert!(events.iter().all(Option::is_some), "{label}");
}

async fn large_batches_span_several_statements(store: &Store, label: &str) {
    let t = t0() + TimeDelta::seconds(30);
    let n = trunkline::store::MAX_ROWS_PER_INSERT * 2 + 7;
    let calls: Vec<NewCall> = (0..n)
        .map(|i| new_call(t + TimeDelta::microseconds(i as i64), true))
        .collect();
    let writes: Vec<CallWrite> = calls
        .iter()
        .map(|c| {
            write(
                CallChange::Insert(c.clone()),
                "call.initiated",
                c.id,
                c.created_at,
                true,
            )
        })
        .collect();
    let events = store.write_batch(&writes).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.as_ref().unwrap().seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{label}");
    let last = events.last().unwrap().as_ref().unwrap();
    let rows = store.outbox_entries(last.id).await.unwrap();
    assert_eq!(rows.len(), 1, "{label}");
    let since = store.events_since(seqs[0] - 1, 10_000).await.unwrap();
    assert_eq!(since.len(), n, "{label}");
}

#[tokio::test]
async fn write_batch_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        lifecycle_in_one_batch(&store, db.label).await;
        update_before_its_insert_does_not_apply(&store, db.label).await;
        a_failed_batch_writes_nothing(&store, db.label).await;
        large_batches_span_several_statements(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}
