//! The media tables of the store (recordings, conferences) and the AMD verdict and conference
//! of a call row, on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use trunkline::store::testing::test_databases;
use trunkline::store::{
    AmdRow, Call, CallChange, CallFilter, CallStatus, CallWrite, ConferenceFilter,
    ConferenceStatus, Direction, EndedBy, FinalStatus, NewCall, NewConference, NewEvent,
    NewRecording, RecordingFilter, RecordingStatus, RecordingSummaryRow, RtpStats, Store,
    StoreError, new_id,
};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456789Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `t` as stored (microseconds).
fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn new_recording(at: DateTime<Utc>, call_id: Option<Uuid>, conf: Option<Uuid>) -> NewRecording {
    let id = new_id(at);
    NewRecording {
        id,
        call_id,
        conference_id: conf,
        path: format!("2026/03/01/{id}.wav"),
        channels: 2,
        sample_rate: 8_000,
        started_at: at,
        created_at: at,
        node: Some("n1".into()),
    }
}

fn summary(status: RecordingStatus, at: DateTime<Utc>) -> RecordingSummaryRow {
    RecordingSummaryRow {
        status,
        ended_at: at,
        duration_ms: Some(61_240),
        size_bytes: Some(1_959_724),
        sha256: Some("ab".repeat(32)),
        error: None,
    }
}

fn new_call(at: DateTime<Utc>) -> NewCall {
    NewCall {
        id: new_id(at),
        direction: Direction::Outbound,
        from: "+15550001111".into(),
        to: "sip:echo@127.0.0.1".into(),
        trunk: Some("local".into()),
        sip_call_id: None,
        status: CallStatus::Initiated,
        status_callback: None,
        metadata: json!({"n": 1}),
        idempotency_key: None,
        api_key_id: None,
        created_at: at,
    }
}

fn new_conference(at: DateTime<Utc>, name: &str) -> NewConference {
    NewConference {
        id: new_id(at),
        name: Some(name.to_owned()),
        max_participants: Some(10),
        options: json!({"beeps": true, "wait_music": "wait.mp3", "record": false}),
        status_callback: Some("http://127.0.0.1:9/conf".into()),
        created_at: at,
        node: Some("n1".into()),
    }
}

fn machine() -> AmdRow {
    AmdRow {
        result: "machine_end_beep".into(),
        confidence: 0.875,
        decision_ms: Some(4_320),
        beep_ms: Some(4_100),
        drop_ms: Some(4_600),
    }
}

fn write(change: CallChange, kind: &str, call_id: Uuid, at: DateTime<Utc>) -> CallWrite {
    CallWrite {
        change,
        event: NewEvent {
            id: new_id(at),
            kind: kind.to_owned(),
            call_id: Some(call_id),
            payload: json!({"kind": kind}),
            created_at: at,
            webhook_urls: Vec::new(),
        },
    }
}

async fn recording_lifecycle(store: &Store, label: &str) {
    let t = t0();
    let call = Uuid::new_v4();
    let nr = new_recording(t, Some(call), None);
    let r = store.insert_recording(&nr).await.unwrap();
    assert_eq!(r.id, nr.id, "{label}");
    assert_eq!(r.status, RecordingStatus::Recording);
    assert_eq!(r.call_id, Some(call));
    assert_eq!(r.conference_id, None);
    assert_eq!(r.path, nr.path);
    assert_eq!((r.channels, r.sample_rate), (2, 8_000));
    assert_eq!(r.started_at, us(t), "{label}: microseconds");
    assert_eq!(r.created_at, us(t));
    assert_eq!(
        (r.ended_at, r.duration_ms, r.size_bytes, &r.sha256, &r.error),
        (None, None, None, &None, &None)
    );
    assert_eq!(store.get_recording(nr.id).await.unwrap().as_ref(), Some(&r));
    let e = store.insert_recording(&nr).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{label}: {e}");

    // Pause and resume; a final status is not set this way.
    assert!(
        store
            .set_recording_status(nr.id, RecordingStatus::Paused)
            .await
            .unwrap()
    );
    let paused = store.get_recording(nr.id).await.unwrap().unwrap();
    assert_eq!(paused.status, RecordingStatus::Paused, "{label}");
    assert!(
        !store
            .set_recording_status(nr.id, RecordingStatus::Completed)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_recording_status(nr.id, RecordingStatus::Recording)
            .await
            .unwrap()
    );

    // Finish once only: the first summary stays.
    let end = t + TimeDelta::milliseconds(61_300);
    let s = summary(RecordingStatus::Completed, end);
    assert!(store.finish_recording(nr.id, &s).await.unwrap());
    let mut failed = summary(RecordingStatus::Failed, end + TimeDelta::seconds(1));
    failed.error = Some("disk full".into());
    assert!(!store.finish_recording(nr.id, &failed).await.unwrap());
    // Ended: no more pause/resume.
    assert!(
        !store
            .set_recording_status(nr.id, RecordingStatus::Paused)
            .await
            .unwrap()
    );
    let done = store.get_recording(nr.id).await.unwrap().unwrap();
    assert_eq!(done.status, RecordingStatus::Completed, "{label}");
    assert_eq!(done.ended_at, Some(us(end)));
    assert_eq!(done.duration_ms, Some(61_240));
    assert_eq!(done.size_bytes, Some(1_959_724));
    assert_eq!(done.sha256.as_deref(), Some("ab".repeat(32).as_str()));
    assert_eq!(done.error, None);

    // A live summary status does not finish a recording.
    let nr2 = new_recording(t + TimeDelta::seconds(1), None, Some(Uuid::new_v4()));
    store.insert_recording(&nr2).await.unwrap();
    assert!(
        !store
            .finish_recording(nr2.id, &summary(RecordingStatus::Paused, end))
            .await
            .unwrap()
    );
    // A failure without a file.
    let f = RecordingSummaryRow {
        status: RecordingStatus::Failed,
        ended_at: end,
        duration_ms: None,
        size_bytes: None,
        sha256: None,
        error: Some("cannot create file".into()),
    };
    assert!(store.finish_recording(nr2.id, &f).await.unwrap());
    let r2 = store.get_recording(nr2.id).await.unwrap().unwrap();
    assert_eq!(r2.status, RecordingStatus::Failed);
    assert_eq!(r2.error.as_deref(), Some("cannot create file"));
    assert_eq!(r2.size_bytes, None);

    // Delete returns the row, once.
    assert_eq!(store.delete_recording(nr.id).await.unwrap(), Some(done));
    assert_eq!(store.delete_recording(nr.id).await.unwrap(), None);
    assert_eq!(store.get_recording(nr.id).await.unwrap(), None);

    // Unknown ids.
    let unknown = Uuid::new_v4();
    assert_eq!(store.get_recording(unknown).await.unwrap(), None);
    assert!(
        !store
            .set_recording_status(unknown, RecordingStatus::Paused)
            .await
            .unwrap()
    );
    assert!(!store.finish_recording(unknown, &s).await.unwrap());

    // Serialized with RFC 3339 times and the status spelling.
    let v = serde_json::to_value(&r2).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["started_at"], json!(us(t + TimeDelta::seconds(1))));
    assert!(
        v["ended_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01T12:01:01")
    );
}

#[tokio::test]
async fn recording_lifecycle_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        recording_lifecycle(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

async fn recording_listing(store: &Store, label: &str) {
    let t = t0();
    let call = Uuid::from_u128(0xca11);
    let conf = Uuid::from_u128(0xc0f);
    let mut all = Vec::new();
    // 23 recordings one second apart; three share a timestamp (ties broken by id). Every third
    // is of the call, every fourth of the conference; the 6th is completed.
    for i in 0..23i64 {
        let at = if (10..13).contains(&i) {
            t + TimeDelta::seconds(10)
        } else {
            t + TimeDelta::seconds(i)
        };
        let mut nr = new_recording(
            at,
            (i % 3 == 0).then_some(call),
            (i % 4 == 0).then_some(conf),
        );
        nr.id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + i as u128);
        store.insert_recording(&nr).await.unwrap();
        all.push((us(at), nr.id, i));
    }
    store
        .finish_recording(all[5].1, &summary(RecordingStatus::Completed, t))
        .await
        .unwrap();
    let mut newest_first = all.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    let ids = |v: &[(DateTime<Utc>, Uuid, i64)]| v.iter().map(|x| x.1).collect::<Vec<_>>();

    let mut seen = Vec::new();
    let mut f = RecordingFilter {
        limit: Some(5),
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list_recordings(&f).await.unwrap();
        pages += 1;
        assert!(page.recordings.len() <= 5);
        seen.extend(page.recordings.iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "{label}: pagination does not end");
    }
    assert_eq!(seen, ids(&newest_first), "{label}");
    assert_eq!(pages, 5);

    // By call, paged by 3 across pages.
    let want: Vec<_> = newest_first
        .iter()
        .filter(|x| x.2 % 3 == 0)
        .cloned()
        .collect();
    let mut f = RecordingFilter {
        call_id: Some(call),
        limit: Some(3),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_recordings(&f).await.unwrap();
        assert!(page.recordings.iter().all(|r| r.call_id == Some(call)));
        seen.extend(page.recordings.iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids(&want), "{label}: by call");

    let f = RecordingFilter {
        conference_id: Some(conf),
        ..Default::default()
    };
    let got = store.list_recordings(&f).await.unwrap();
    let want: Vec<_> = newest_first
        .iter()
        .filter(|x| x.2 % 4 == 0)
        .cloned()
        .collect();
    assert_eq!(
        got.recordings.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids(&want),
        "{label}: by conference"
    );
    assert_eq!(got.next_cursor, None);

    let f = RecordingFilter {
        status: Some(RecordingStatus::Completed),
        ..Default::default()
    };
    let got = store.list_recordings(&f).await.unwrap();
    assert_eq!(
        got.recordings.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![all[5].1],
        "{label}: by status"
    );
    // Filters combine: the call's completed recordings (none; the 6th is not the call's).
    let f = RecordingFilter {
        call_id: Some(call),
        status: Some(RecordingStatus::Completed),
        ..Default::default()
    };
    assert!(
        store
            .list_recordings(&f)
            .await
            .unwrap()
            .recordings
            .is_empty()
    );

    let f = RecordingFilter {
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(store.list_recordings(&f).await.unwrap().recordings.len(), 1);
    let f = RecordingFilter {
        cursor: Some("not-a-cursor".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list_recordings(&f).await,
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn list_recordings_pages_and_filters_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        recording_listing(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn unfinished_recordings_after_a_crash_and_retention_on_every_backend() {
    for db in test_databases().await {
        let label = db.label;
        let t = t0();
        let store = db.store().await;
        let a = new_recording(t, Some(Uuid::new_v4()), None);
        let b = new_recording(t + TimeDelta::seconds(1), None, Some(Uuid::new_v4()));
        let c = new_recording(t + TimeDelta::seconds(2), Some(Uuid::new_v4()), None);
        let d = new_recording(t + TimeDelta::seconds(3), Some(Uuid::new_v4()), None);
        // Another node's, still being written there.
        let e = NewRecording {
            node: Some("n2".into()),
            ..new_recording(t + TimeDelta::seconds(4), Some(Uuid::new_v4()), None)
        };
        for r in [&a, &b, &c, &d, &e] {
            store.insert_recording(r).await.unwrap();
        }
        store
            .set_recording_status(b.id, RecordingStatus::Paused)
            .await
            .unwrap();
        store
            .finish_recording(c.id, &summary(RecordingStatus::Completed, t))
            .await
            .unwrap();
        // The process dies: nothing finishes a and b (d is still recording too).
        drop(store);

        let store = db.store().await;
        let fresh = t - TimeDelta::hours(6);
        let left = store.unfinished_recordings("n1", fresh).await.unwrap();
        assert_eq!(
            left.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
            vec![
                (a.id, RecordingStatus::Recording),
                (b.id, RecordingStatus::Paused),
                (d.id, RecordingStatus::Recording),
            ],
            "{label}: this node's, oldest first, paused included"
        );
        // Hours later, the other node is presumed gone and its recording is taken too.
        let stale = store
            .unfinished_recordings("n1", t + TimeDelta::hours(1))
            .await
            .unwrap();
        assert_eq!(stale.len(), 4, "{label}");
        assert_eq!(stale[3].id, e.id, "{label}");
        // Start-up repairs them and finishes them as interrupted.
        for r in &left {
            let mut s = summary(RecordingStatus::Interrupted, t + TimeDelta::minutes(5));
            s.error = Some("process stopped; file repaired".into());
            assert!(store.finish_recording(r.id, &s).await.unwrap(), "{label}");
        }
        assert!(
            store
                .unfinished_recordings("n1", fresh)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.unfinished_recordings("n2", fresh).await.unwrap()[0].id,
            e.id,
            "{label}: the other node finds its own"
        );
        let b_row = store.get_recording(b.id).await.unwrap().unwrap();
        assert_eq!(b_row.status, RecordingStatus::Interrupted);

        // Retention: ended rows created before the cutoff, oldest first, at most `limit`; a
        // live one is never returned.
        let e = new_recording(t - TimeDelta::days(1), None, None);
        store.insert_recording(&e).await.unwrap();
        let cutoff = t + TimeDelta::seconds(2);
        let old = store.recordings_older_than(cutoff, 10).await.unwrap();
        assert_eq!(
            old.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![a.id, b.id],
            "{label}: before the cutoff (exclusive), live e left out"
        );
        let old = store.recordings_older_than(cutoff, 1).await.unwrap();
        assert_eq!(old.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a.id]);
        let all = store
            .recordings_older_than(t + TimeDelta::days(1), 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 4, "{label}");
        store.close().await;
        db.remove().await;
    }
}

async fn conference_lifecycle(store: &Store, label: &str) {
    let t = t0();
    let nc = new_conference(t, "sales-standup");
    let c = store.insert_conference(&nc).await.unwrap();
    assert_eq!(c.id, nc.id, "{label}");
    assert_eq!(c.name.as_deref(), Some("sales-standup"));
    assert_eq!(c.status, ConferenceStatus::Waiting);
    assert_eq!(c.created_at, us(t));
    assert_eq!(
        (c.started_at, c.ended_at, &c.end_reason),
        (None, None, &None)
    );
    assert_eq!(c.max_participants, Some(10));
    assert_eq!(c.options, nc.options, "{label}: options JSON round-trips");
    assert_eq!(c.status_callback, nc.status_callback);
    assert_eq!(
        store.get_conference(nc.id).await.unwrap().as_ref(),
        Some(&c)
    );
    let e = store.insert_conference(&nc).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{label}: {e}");

    let start = t + TimeDelta::seconds(3);
    assert!(store.mark_conference_started(nc.id, start).await.unwrap());
    assert!(
        !store
            .mark_conference_started(nc.id, start + TimeDelta::seconds(1))
            .await
            .unwrap()
    );
    let end = t + TimeDelta::minutes(15);
    assert!(
        store
            .end_conference(nc.id, end, "end_on_exit")
            .await
            .unwrap()
    );
    assert!(!store.end_conference(nc.id, end, "api").await.unwrap());
    assert!(!store.mark_conference_started(nc.id, end).await.unwrap());
    let c = store.get_conference(nc.id).await.unwrap().unwrap();
    assert_eq!(c.status, ConferenceStatus::Ended, "{label}");
    assert_eq!(c.started_at, Some(us(start)));
    assert_eq!(c.ended_at, Some(us(end)));
    assert_eq!(c.end_reason.as_deref(), Some("end_on_exit"));

    // Ended while still waiting (never started); no name, no limit.
    let mut nc2 = new_conference(t + TimeDelta::seconds(1), "x");
    nc2.name = None;
    nc2.max_participants = None;
    nc2.options = json!({});
    store.insert_conference(&nc2).await.unwrap();
    assert!(store.end_conference(nc2.id, end, "api").await.unwrap());
    let c2 = store.get_conference(nc2.id).await.unwrap().unwrap();
    assert_eq!((c2.status, c2.started_at), (ConferenceStatus::Ended, None));
    assert_eq!((c2.name, c2.max_participants), (None, None));

    let unknown = Uuid::new_v4();
    assert_eq!(store.get_conference(unknown).await.unwrap(), None);
    assert!(!store.mark_conference_started(unknown, t).await.unwrap());
    assert!(!store.end_conference(unknown, t, "api").await.unwrap());

    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["status"], "ended");
    assert_eq!(v["options"]["wait_music"], "wait.mp3");
    assert_eq!(v["ended_at"], json!(us(end)));
}

#[tokio::test]
async fn conference_lifecycle_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        conference_lifecycle(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn list_and_unfinished_conferences_on_every_backend() {
    for db in test_databases().await {
        let label = db.label;
        let t = t0();
        let store = db.store().await;
        let mut all = Vec::new();
        for i in 0..12i64 {
            let name = if i % 2 == 0 { "even" } else { "odd" };
            let nc = new_conference(t + TimeDelta::seconds(i), name);
            store.insert_conference(&nc).await.unwrap();
            all.push(nc.id);
        }
        // 0..4 ended, 4..8 active, 8..12 waiting.
        for (i, id) in all.iter().enumerate() {
            if i < 8 {
                store.mark_conference_started(*id, t).await.unwrap();
            }
            if i < 4 {
                store.end_conference(*id, t, "empty").await.unwrap();
            }
        }
        let newest_first: Vec<Uuid> = all.iter().rev().copied().collect();

        let mut f = ConferenceFilter {
            limit: Some(5),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = store.list_conferences(&f).await.unwrap();
            pages += 1;
            seen.extend(page.conferences.iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => f.cursor = Some(c),
                None => break,
            }
            assert!(pages < 10, "{label}: pagination does not end");
        }
        assert_eq!(seen, newest_first, "{label}");
        assert_eq!(pages, 3);

        let f = ConferenceFilter {
            status: Some(ConferenceStatus::Active),
            ..Default::default()
        };
        let got = store.list_conferences(&f).await.unwrap().conferences;
        assert_eq!(
            got.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![all[7], all[6], all[5], all[4]],
            "{label}: by status"
        );
        let f = ConferenceFilter {
            name: Some("odd".into()),
            status: Some(ConferenceStatus::Waiting),
            ..Default::default()
        };
        let got = store.list_conferences(&f).await.unwrap().conferences;
        assert_eq!(
            got.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![all[11], all[9]],
            "{label}: by name and status"
        );
        let f = ConferenceFilter {
            cursor: Some("bogus".into()),
            ..Default::default()
        };
        assert!(matches!(
            store.list_conferences(&f).await,
            Err(StoreError::InvalidCursor)
        ));

        // After a restart, the rooms left open are found (oldest first) and ended.
        drop(store);
        let store = db.store().await;
        let fresh = t - TimeDelta::hours(6);
        assert!(
            store
                .unfinished_conferences("n2", fresh)
                .await
                .unwrap()
                .is_empty(),
            "{label}: another node leaves n1's rooms alone"
        );
        let open = store.unfinished_conferences("n1", fresh).await.unwrap();
        assert_eq!(
            open.iter().map(|c| c.id).collect::<Vec<_>>(),
            all[4..].to_vec(),
            "{label}"
        );
        for c in &open {
            assert!(store.end_conference(c.id, t, "restart").await.unwrap());
        }
        assert!(
            store
                .unfinished_conferences("n1", fresh)
                .await
                .unwrap()
                .is_empty()
        );
        store.close().await;
        db.remove().await;
    }
}

async fn call_amd_and_conference(store: &Store, label: &str) {
    let t = t0();
    let nc = new_call(t);
    let c = store.insert_call(&nc).await.unwrap();
    assert_eq!((&c.amd, c.conference_id), (&None, None), "{label}");
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["amd"], json!(null));
    assert_eq!(v["conference_id"], json!(null));

    // An interim verdict, then the final one replaces it.
    let interim = AmdRow {
        result: "machine_start".into(),
        confidence: 0.6,
        decision_ms: Some(2_500),
        beep_ms: None,
        drop_ms: None,
    };
    assert!(store.set_call_amd(nc.id, &interim).await.unwrap());
    let got = store.get_call(nc.id).await.unwrap().unwrap();
    assert_eq!(got.amd.as_ref(), Some(&interim), "{label}");
    assert!(store.set_call_amd(nc.id, &machine()).await.unwrap());
    let conf = Uuid::new_v4();
    assert!(store.set_call_conference(nc.id, Some(conf)).await.unwrap());
    let got = store.get_call(nc.id).await.unwrap().unwrap();
    assert_eq!(got.amd, Some(machine()), "{label}: AMD round-trips");
    assert_eq!(got.conference_id, Some(conf));
    let v = serde_json::to_value(&got).unwrap();
    assert_eq!(
        v["amd"],
        json!({"result": "machine_end_beep", "confidence": 0.875, "decision_ms": 4320,
               "beep_ms": 4100, "drop_ms": 4600}),
        "{label}: in the call's JSON"
    );
    assert_eq!(v["conference_id"], json!(conf.to_string()));

    // Every read path carries them, and the end of the call keeps them.
    let page = store
        .list_calls(&CallFilter::default())
        .await
        .unwrap()
        .calls;
    assert_eq!(page[0].amd, Some(machine()));
    assert_eq!(page[0].conference_id, Some(conf));
    assert!(store.set_call_conference(nc.id, None).await.unwrap());
    store
        .finish_call(
            nc.id,
            FinalStatus::Completed,
            Some(200),
            None,
            EndedBy::Callee,
            &RtpStats::default(),
            t + TimeDelta::seconds(30),
        )
        .await
        .unwrap();
    let got = store.get_call(nc.id).await.unwrap().unwrap();
    assert_eq!(got.amd, Some(machine()), "{label}");
    assert_eq!(got.conference_id, None);
    // A verdict after the hang-up still lands on the row.
    assert!(store.set_call_amd(nc.id, &interim).await.unwrap());

    let unknown = Uuid::new_v4();
    assert!(!store.set_call_amd(unknown, &machine()).await.unwrap());
    assert!(
        !store
            .set_call_conference(unknown, Some(conf))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn call_amd_and_conference_round_trip_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        call_amd_and_conference(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn batched_amd_change_applies_in_order_on_every_backend() {
    for db in test_databases().await {
        let label = db.label;
        let t = t0();
        let store = db.store().await;
        let nc = new_call(t);
        let answer = t + TimeDelta::seconds(2);
        let verdict = t + TimeDelta::seconds(6);
        let end = t + TimeDelta::seconds(9);
        let finish = CallChange::Finish {
            call_id: nc.id,
            status: FinalStatus::Completed,
            sip_code: Some(200),
            reason: Some("bye".into()),
            ended_by: EndedBy::Callee,
            stats: RtpStats::default(),
            at: end,
        };
        let unknown = Uuid::new_v4();
        let writes = vec![
            write(CallChange::Insert(nc.clone()), "call.initiated", nc.id, t),
            write(
                CallChange::Answered {
                    call_id: nc.id,
                    at: answer,
                },
                "call.answered",
                nc.id,
                answer,
            ),
            write(
                CallChange::Amd {
                    call_id: nc.id,
                    amd: machine(),
                },
                "amd.completed",
                nc.id,
                verdict,
            ),
            write(finish, "call.completed", nc.id, end),
            write(
                CallChange::Amd {
                    call_id: unknown,
                    amd: machine(),
                },
                "amd.completed",
                unknown,
                end,
            ),
        ];
        let events = store.write_batch(&writes).await.unwrap();
        let applied: Vec<bool> = events.iter().map(Option::is_some).collect();
        assert_eq!(
            applied,
            vec![true, true, true, true, false],
            "{label}: an unknown call's verdict does not apply"
        );
        assert_eq!(events[2].as_ref().unwrap().kind, "amd.completed");

        // The in-memory mirror agrees with the stored row.
        let mut row = Call::from_new(&nc);
        for w in &writes[..4] {
            assert!(w.change.apply_to(&mut row), "{label}");
        }
        let stored = store.get_call(nc.id).await.unwrap().unwrap();
        assert_eq!(stored, row, "{label}");
        assert_eq!(stored.amd, Some(machine()));
        assert_eq!(
            writes[4].change.call_id(),
            Some(unknown),
            "{label}: the verdict names its call"
        );

        // A verdict after the end still applies, in a later batch too.
        let late = AmdRow {
            result: "human".into(),
            confidence: 0.5,
            decision_ms: None,
            beep_ms: None,
            drop_ms: None,
        };
        let w = write(
            CallChange::Amd {
                call_id: nc.id,
                amd: late.clone(),
            },
            "amd.completed",
            nc.id,
            end,
        );
        assert!(w.change.apply_to(&mut row));
        let events = store.write_batch(std::slice::from_ref(&w)).await.unwrap();
        assert!(events[0].is_some(), "{label}");
        assert_eq!(store.get_call(nc.id).await.unwrap().unwrap(), row);
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn migration_from_0001_to_0002_keeps_rows_on_every_backend() {
    for db in test_databases().await {
        let label = db.label;
        let t = t0();
        // A database as the previous release left it: only 0001, with a call and its event.
        let old = db.store_at_version(1).await;
        let nc = new_call(t);
        let events = old
            .write_batch(&[write(
                CallChange::Insert(nc.clone()),
                "call.initiated",
                nc.id,
                t,
            )])
            .await
            .unwrap();
        let event_id = events[0].as_ref().unwrap().id;
        old.set_setting("k", "v").await.unwrap();
        old.close().await;

        // This release migrates it at start.
        let store = db.store().await;
        let c = store.get_call(nc.id).await.unwrap().unwrap();
        assert_eq!(
            c,
            Call::from_new(&nc),
            "{label}: the call survives, new columns empty"
        );
        assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
        let replay = store.events_since(0, 10).await.unwrap();
        assert_eq!(
            replay.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![event_id]
        );
        // The new columns and tables work on the migrated database.
        assert!(store.set_call_amd(nc.id, &machine()).await.unwrap());
        assert_eq!(
            store.get_call(nc.id).await.unwrap().unwrap().amd,
            Some(machine())
        );
        let r = new_recording(t, Some(nc.id), None);
        store.insert_recording(&r).await.unwrap();
        store
            .insert_conference(&new_conference(t, "after-upgrade"))
            .await
            .unwrap();
        store.close().await;
        db.remove().await;
    }
}
