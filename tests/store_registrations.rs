//! The `registrations` table (agents' bindings kept across restarts), on SQLite and (with
//! `TRUNKLINE_TEST_PG`) PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use trunkline::store::testing::test_databases;
use trunkline::store::{
    NewRegistration, RegistrationFilter, RegistrationTransport, Store, StoreError, new_id,
};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456789Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `t` as stored (microseconds).
fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn reg(user: &str, contact: &str, at: DateTime<Utc>, expires_secs: i64) -> NewRegistration {
    NewRegistration {
        id: new_id(at),
        user: user.into(),
        contact: contact.into(),
        source: "127.0.0.1:5062".into(),
        transport: RegistrationTransport::Udp,
        expires_at: at + TimeDelta::seconds(expires_secs),
        call_id: format!("cid-{user}"),
        cseq: 2,
        user_agent: Some("baresip v1.0.0".into()),
        at,
    }
}

async fn lifecycle(store: &Store, label: &str) {
    let t = t0();
    let first = store
        .upsert_registration(&reg("alice", "sip:alice@10.0.0.5:5062", t, 3600))
        .await
        .unwrap();
    assert_eq!(first.user, "alice", "{label}");
    assert_eq!(
        first.expires_at,
        us(t + TimeDelta::seconds(3600)),
        "{label}"
    );
    assert_eq!(first.created_at, us(t), "{label}");
    // A refresh from a new source (NAT rebinding) keeps the id and created_at.
    let later = t + TimeDelta::seconds(1800);
    let mut refresh = reg("alice", "sip:alice@10.0.0.5:5062", later, 3600);
    refresh.source = "127.0.0.1:6000".into();
    refresh.transport = RegistrationTransport::Tcp;
    refresh.cseq = 9;
    let refreshed = store.upsert_registration(&refresh).await.unwrap();
    assert_eq!(refreshed.id, first.id, "{label}");
    assert_eq!(refreshed.created_at, us(t), "{label}");
    assert_eq!(refreshed.updated_at, us(later), "{label}");
    assert_eq!(refreshed.source, "127.0.0.1:6000", "{label}");
    assert_eq!(refreshed.transport, RegistrationTransport::Tcp, "{label}");
    assert_eq!(refreshed.cseq, 9, "{label}");
    // A second contact, and another user.
    store
        .upsert_registration(&reg(
            "alice",
            "sip:alice@10.0.0.6:5064",
            t + TimeDelta::seconds(1),
            60,
        ))
        .await
        .unwrap();
    store
        .upsert_registration(&reg(
            "bob",
            "sip:bob@10.0.0.7",
            t + TimeDelta::seconds(2),
            3600,
        ))
        .await
        .unwrap();
    assert_eq!(store.all_registrations().await.unwrap().len(), 3, "{label}");
    // The list hides expired ones and filters by user.
    let now = t + TimeDelta::seconds(120);
    let all = store
        .list_registrations(&RegistrationFilter::default(), now)
        .await
        .unwrap();
    let users: Vec<_> = all.registrations.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, vec!["alice", "bob"], "{label}");
    let bob = store
        .list_registrations(
            &RegistrationFilter {
                user: Some("bob".into()),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(bob.registrations.len(), 1, "{label}");
    assert_eq!(bob.registrations[0].contact, "sip:bob@10.0.0.7", "{label}");
    // Paging.
    let page1 = store
        .list_registrations(
            &RegistrationFilter {
                limit: Some(1),
                ..Default::default()
            },
            t,
        )
        .await
        .unwrap();
    assert_eq!(page1.registrations.len(), 1, "{label}");
    let page2 = store
        .list_registrations(
            &RegistrationFilter {
                limit: Some(5),
                cursor: page1.next_cursor.clone(),
                ..Default::default()
            },
            t,
        )
        .await
        .unwrap();
    assert_eq!(page2.registrations.len(), 2, "{label}");
    assert!(page2.next_cursor.is_none(), "{label}");
    assert!(
        !page2
            .registrations
            .iter()
            .any(|r| r.id == page1.registrations[0].id),
        "{label}"
    );
    let bad = store
        .list_registrations(
            &RegistrationFilter {
                cursor: Some("nope".into()),
                ..Default::default()
            },
            t,
        )
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidCursor)), "{label}");
    // Delete once.
    let gone = store
        .delete_registration("alice", "sip:alice@10.0.0.6:5064")
        .await
        .unwrap();
    assert!(gone.is_some(), "{label}");
    assert!(
        store
            .delete_registration("alice", "sip:alice@10.0.0.6:5064")
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    assert_eq!(store.all_registrations().await.unwrap().len(), 2, "{label}");
}

#[tokio::test]
async fn registrations_upsert_list_delete_and_survive_reconnect() {
    for db in test_databases().await {
        let store = db.store().await;
        lifecycle(&store, db.label).await;
        store.close().await;
        // A restart: a new connection sees the same rows.
        let store = db.store().await;
        assert_eq!(
            store.all_registrations().await.unwrap().len(),
            2,
            "{}",
            db.label
        );
        store.close().await;
        db.remove().await;
    }
}
