//! The agent sessions of the store (migration 0006) on SQLite and (with `TRUNKLINE_TEST_PG`)
//! PostgreSQL: create, read, list by campaign, update state and totals, the start-up pause of
//! a node's live sessions, dispositions (and handle times) on attempts, and the history a
//! predictive pacer is rebuilt from.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::time::Duration;
use trunkline::campaign::import::{self, ImportOptions};
use trunkline::campaign::phone::Region;
use trunkline::campaign::{
    AttemptOutcome, CallerIds, CampaignSettings, CampaignState, ContactStatus, DialMode,
};
use trunkline::dialer::SessionEndReason;
use trunkline::dialer::session::{SessionCounts, SessionState};
use trunkline::store::testing::test_databases;
use trunkline::store::{
    CallStatus, Direction, HandleTime, NewCall, NewCampaign, NewContactList, NewSession,
    PacerAttempt, SessionUpdate, Store, WindowCheck, new_id,
};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A running power campaign over a list of two contacts.
async fn power_campaign(store: &Store) -> Uuid {
    let now = t0();
    let list = store
        .insert_contact_list(&NewContactList {
            id: new_id(now),
            name: "agents".into(),
            default_region: "US".into(),
            created_at: now,
        })
        .await
        .unwrap();
    let opts = ImportOptions {
        default_region: Region::parse("US").unwrap(),
        max_rows: import::DEFAULT_MAX_ROWS,
        mapping: HashMap::new(),
    };
    let v =
        import::validate_contacts("phone\n+12125550101\n+12125550102\n".as_bytes(), &opts).unwrap();
    store
        .import_contacts(list.id, v, now - TimeDelta::minutes(1), false)
        .await
        .unwrap();
    let mut s = CampaignSettings::new("power", "America/New_York");
    s.dial_mode = DialMode::Power;
    s.list_id = Some(list.id);
    s.trunk = Some("local".into());
    s.caller_ids = CallerIds {
        default: vec!["+15550100000".into()],
        by_prefix: vec![],
    };
    let c = store
        .insert_campaign(&NewCampaign {
            id: new_id(now),
            settings: s,
            created_at: now,
        })
        .await
        .unwrap();
    store
        .set_campaign_state(c.id, CampaignState::Draft, CampaignState::Running, now)
        .await
        .unwrap()
        .unwrap();
    c.id
}

async fn sessions_round_trip(store: &Store, label: &str) {
    let now = t0();
    let campaign = power_campaign(store).await;
    let new = |agent: &str, node: &str, at| NewSession {
        id: new_id(at),
        campaign_id: campaign,
        agent: agent.into(),
        node: node.into(),
        created_at: at,
    };
    let a = store
        .insert_session(&new("alice", "n1", now))
        .await
        .unwrap();
    assert_eq!(a.state, SessionState::Connecting, "{label}");
    assert_eq!(a.agent, "alice");
    assert_eq!(a.counts, SessionCounts::default());
    assert_eq!(a.created_at, a.updated_at);
    assert_eq!(a.ended_at, None);
    let b = store
        .insert_session(&new(
            "sip:bob@127.0.0.1:5099",
            "n2",
            now + TimeDelta::seconds(1),
        ))
        .await
        .unwrap();
    assert_eq!(store.get_session(a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.get_session(Uuid::nil()).await.unwrap(), None);

    // A claimed contact on a call with alice, then wrap-up with totals.
    let claim = store
        .claim_next(campaign, "n1", now, Duration::from_secs(60), |_| {
            WindowCheck::Open
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .set_attempt_session(claim.attempt_id, a.id)
            .await
            .unwrap()
    );
    let agent_call = new_id(now);
    let later = now + TimeDelta::seconds(30);
    let counts = SessionCounts {
        calls: 1,
        dispositions: 0,
        skipped: 2,
        talk: Duration::from_millis(12_345),
        wrap_up: Duration::ZERO,
    };
    let u = SessionUpdate {
        state: SessionState::WrapUp,
        current_attempt_id: Some(claim.attempt_id),
        current_contact_id: Some(claim.contact.id),
        agent_call_id: Some(agent_call),
        counts,
    };
    let w = store
        .update_session(a.id, &u, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.state, SessionState::WrapUp, "{label}");
    assert_eq!(w.current_attempt_id, Some(claim.attempt_id));
    assert_eq!(w.current_contact_id, Some(claim.contact.id));
    assert_eq!(w.agent_call_id, Some(agent_call));
    assert_eq!(w.counts, counts);
    assert_eq!(w.updated_at, later);
    assert_eq!(store.get_session(a.id).await.unwrap(), Some(w.clone()));

    assert!(
        store
            .set_attempt_disposition(claim.attempt_id, "sale", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.attempt_disposition(claim.attempt_id).await.unwrap(),
        Some((Some(a.id), Some("sale".into()))),
        "{label}"
    );
    assert_eq!(store.attempt_disposition(Uuid::nil()).await.unwrap(), None);
    let (rows, _) = store.list_attempts(campaign, None, 10).await.unwrap();
    let row = rows.iter().find(|r| r.id == claim.attempt_id).unwrap();
    assert_eq!(row.session_id, Some(a.id), "{label}");
    assert_eq!(row.disposition.as_deref(), Some("sale"));
    assert!(
        !store
            .set_attempt_disposition(Uuid::nil(), "x", None)
            .await
            .unwrap()
    );

    // Listed by campaign, oldest first.
    let list = store.list_sessions(campaign).await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert!(store.list_sessions(Uuid::nil()).await.unwrap().is_empty());

    // Start-up of node n1: alice (wrap-up) comes back paused, without her call; bob (n2) not.
    let restart = now + TimeDelta::minutes(5);
    let paused = store.pause_live_sessions("n1", restart).await.unwrap();
    assert_eq!(paused.len(), 1, "{label}");
    let (p, was) = &paused[0];
    assert_eq!(*was, SessionState::WrapUp);
    assert_eq!(p.id, a.id);
    assert_eq!(p.state, SessionState::Paused);
    assert_eq!(p.current_attempt_id, None);
    assert_eq!(p.agent_call_id, None);
    assert_eq!(p.counts, counts, "totals survive the restart");
    assert_eq!(
        store.get_session(b.id).await.unwrap().unwrap().state,
        SessionState::Connecting
    );
    assert_eq!(store.live_sessions("n1").await.unwrap().len(), 1);

    // Ended is final: it records the reason and time, and is never changed again.
    let end = SessionUpdate {
        state: SessionState::Ended(SessionEndReason::AgentUnreachable),
        current_attempt_id: None,
        current_contact_id: None,
        agent_call_id: None,
        counts: SessionCounts::default(),
    };
    let e = store
        .update_session(b.id, &end, restart)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.state,
        SessionState::Ended(SessionEndReason::AgentUnreachable),
        "{label}"
    );
    assert_eq!(e.ended_at, Some(restart));
    assert_eq!(store.update_session(b.id, &u, restart).await.unwrap(), None);
    assert_eq!(
        store
            .update_session(Uuid::nil(), &u, restart)
            .await
            .unwrap(),
        None
    );
    assert!(store.live_sessions("n2").await.unwrap().is_empty());
    assert!(
        store
            .pause_live_sessions("n2", restart)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        sessions_round_trip(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

/// The predictive pacer's history: finished attempts in the order they ended (a person's
/// delay is start to answer, the rest's start to end; unfinished and older ones left out),
/// and the latest handle times stored with dispositions, oldest first.
async fn pacer_history_round_trip(store: &Store, label: &str) {
    let now = t0();
    let campaign = power_campaign(store).await;
    let claim = || async {
        store
            .claim_next(campaign, "n1", now, Duration::from_secs(60), |_| {
                WindowCheck::Open
            })
            .await
            .unwrap()
            .unwrap()
    };
    let person = claim().await;
    let busy = claim().await;
    // The person's call was answered 7 s after the attempt started; it ended after 40 s.
    let call = new_id(now);
    store
        .insert_call(&NewCall {
            id: call,
            direction: Direction::Outbound,
            from: "+15550100000".into(),
            to: person.contact.phone.clone(),
            trunk: Some("local".into()),
            sip_call_id: None,
            status: CallStatus::Initiated,
            status_callback: None,
            metadata: serde_json::json!({}),
            idempotency_key: None,
            api_key_id: None,
            created_at: now,
        })
        .await
        .unwrap();
    assert!(
        store
            .set_attempt_call(person.attempt_id, call)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_answered(call, now + TimeDelta::seconds(7))
            .await
            .unwrap()
    );
    let finish = |id, secs, outcome| async move {
        assert!(
            store
                .finish_attempt(
                    id,
                    now + TimeDelta::seconds(secs),
                    outcome,
                    None,
                    None,
                    None,
                    ContactStatus::Done,
                )
                .await
                .unwrap()
        );
    };
    // The busy one ends first (after 3 s), the person after 40 s.
    finish(busy.attempt_id, 3, AttemptOutcome::Busy).await;
    finish(person.attempt_id, 40, AttemptOutcome::Human).await;
    let handle = HandleTime {
        talk: Duration::from_millis(33_000),
        wrap_up: Duration::from_millis(4_500),
    };
    assert!(
        store
            .set_attempt_disposition(person.attempt_id, "sale", Some(handle))
            .await
            .unwrap()
    );

    let h = store
        .pacer_history(campaign, now - TimeDelta::days(30), 10)
        .await
        .unwrap();
    assert_eq!(
        h.attempts,
        vec![
            PacerAttempt {
                ended_at: now + TimeDelta::seconds(3),
                outcome: AttemptOutcome::Busy,
                resolved_after: Duration::from_secs(3),
            },
            PacerAttempt {
                ended_at: now + TimeDelta::seconds(40),
                outcome: AttemptOutcome::Human,
                resolved_after: Duration::from_secs(7),
            },
        ],
        "{label}"
    );
    assert_eq!(h.handles, vec![handle], "{label}");
    // Attempts that ended before `since` are not part of it; the handle times are the latest
    // dispositions whatever their age, at most the number asked for.
    let later = store
        .pacer_history(campaign, now + TimeDelta::seconds(10), 0)
        .await
        .unwrap();
    assert_eq!(later.attempts.len(), 1, "{label}");
    assert_eq!(later.attempts[0].outcome, AttemptOutcome::Human);
    assert!(later.handles.is_empty(), "{label}");
    let none = store
        .pacer_history(Uuid::nil(), now - TimeDelta::days(30), 10)
        .await
        .unwrap();
    assert!(none.attempts.is_empty() && none.handles.is_empty());
}

#[tokio::test]
async fn pacer_history_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        pacer_history_round_trip(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}
