//! API keys, idempotency keys and settings, on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use trunkline::store::testing::test_databases;
use trunkline::store::{API_KEY_PREFIX, Claimed, Store};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn api_keys(store: &Store, label: &str) {
    let t = t0();
    let (a, plain_a) = store.create_api_key("crm", t).await.unwrap();
    let (b, plain_b) = store
        .create_api_key("dialer", t + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert!(plain_a.starts_with(API_KEY_PREFIX), "{label}");
    assert_ne!(plain_a, plain_b);
    assert!(plain_a.starts_with(&a.prefix));
    assert_eq!(a.name, "crm");
    assert_eq!(a.last_used_at, None);

    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()], "{label}");

    // Verify: right key, then last_used_at set and throttled to once a minute.
    let v = store
        .verify_api_key(&plain_a, t + TimeDelta::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.id, a.id);
    assert_eq!(v.last_used_at, Some(t + TimeDelta::seconds(5)));
    let v = store
        .verify_api_key(&plain_a, t + TimeDelta::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        v.last_used_at,
        Some(t + TimeDelta::seconds(5)),
        "{label}: throttled"
    );
    let v = store
        .verify_api_key(&plain_a, t + TimeDelta::seconds(70))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.last_used_at, Some(t + TimeDelta::seconds(70)));

    // Wrong, truncated, foreign keys.
    for bad in [
        "",
        "tl_",
        "Bearer x",
        &plain_a[..plain_a.len() - 1],
        &format!("{plain_a}x"),
    ] {
        assert_eq!(
            store.verify_api_key(bad, t).await.unwrap(),
            None,
            "{label}: {bad:?}"
        );
    }

    // Revoke: verification fails, listing shows the time, revoking again is a no-op.
    assert!(
        store
            .revoke_api_key(a.id, t + TimeDelta::seconds(80))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_api_key(a.id, t + TimeDelta::seconds(90))
            .await
            .unwrap()
    );
    assert!(!store.revoke_api_key(Uuid::new_v4(), t).await.unwrap());
    assert_eq!(
        store
            .verify_api_key(&plain_a, t + TimeDelta::seconds(85))
            .await
            .unwrap(),
        None
    );
    assert!(store.verify_api_key(&plain_b, t).await.unwrap().is_some());
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(t + TimeDelta::seconds(80)));
    assert_eq!(listed[1].revoked_at, None);
}

#[tokio::test]
async fn api_keys_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        api_keys(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

async fn idempotency(store: &Store, label: &str) {
    let t = t0();
    let (k1, _) = store.create_api_key("one", t).await.unwrap();
    let (k2, _) = store.create_api_key("two", t).await.unwrap();
    let call_a = Uuid::new_v4();
    let call_b = Uuid::new_v4();
    let claim = |k: Uuid, key: &'static str, hash: &'static str, call: Uuid| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(k, key, hash, call, t)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        claim(k1.id, "order-1", "h1", call_a).await,
        Claimed::New,
        "{label}"
    );
    assert_eq!(
        claim(k1.id, "order-1", "h1", call_b).await,
        Claimed::Existing {
            call_id: call_a,
            same_request: true
        }
    );
    assert_eq!(
        claim(k1.id, "order-1", "h2", call_b).await,
        Claimed::Existing {
            call_id: call_a,
            same_request: false
        }
    );
    // The same key string under another API key is independent.
    assert_eq!(claim(k2.id, "order-1", "h1", call_b).await, Claimed::New);

    // Purge frees keys older than the cut-off.
    assert_eq!(store.purge_idempotency_keys(t).await.unwrap(), 0);
    assert_eq!(
        store
            .purge_idempotency_keys(t + TimeDelta::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(claim(k1.id, "order-1", "h3", call_b).await, Claimed::New);
}

#[tokio::test]
async fn idempotency_keys_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        idempotency(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn concurrent_claims_have_one_winner_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let (k, _) = store.create_api_key("k", t0()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let call = Uuid::new_v4();
                (
                    call,
                    store
                        .claim_idempotency_key(k.id, "same", "h", call, t0())
                        .await
                        .unwrap(),
                )
            }));
        }
        let mut winners = Vec::new();
        let mut seen_ids = Vec::new();
        for t in tasks {
            let (call, c) = t.await.unwrap();
            match c {
                Claimed::New => winners.push(call),
                Claimed::Existing {
                    call_id,
                    same_request,
                } => {
                    assert!(same_request);
                    seen_ids.push(call_id);
                }
            }
        }
        assert_eq!(winners.len(), 1, "{}", db.label);
        assert!(seen_ids.iter().all(|id| *id == winners[0]));
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn webhook_secret_is_made_once_and_settings_round_trip_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let s1 = store.webhook_secret().await.unwrap();
        assert_eq!(s1.len(), 64, "{}", db.label);
        assert_eq!(store.webhook_secret().await.unwrap(), s1);
        store.close().await;
        // Survives a restart.
        let store = db.store().await;
        assert_eq!(store.webhook_secret().await.unwrap(), s1);

        assert_eq!(store.get_setting("x").await.unwrap(), None);
        store.set_setting("x", "1").await.unwrap();
        store.set_setting("x", "2").await.unwrap();
        assert_eq!(store.get_setting("x").await.unwrap().as_deref(), Some("2"));
        store.close().await;
        db.remove().await;
    }
}
