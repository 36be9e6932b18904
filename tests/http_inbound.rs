//! `/v1/missed-calls`, `/v1/opt-outs` and `GET /v1/calls?status=missed` through the real router
//! (`oneshot`, no socket) on SQLite: listing with follow-up state, opt-out add/list/remove,
//! bad input (422, 404, 400), and the OpenAPI document naming the routes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;
use tower::ServiceExt;
use trunkline::call::EngineHandle;
use trunkline::clock::ManualClock;
use trunkline::config::Config;
use trunkline::events::EventBus;
use trunkline::http::AppState;
use trunkline::inbound::MissReason;
use trunkline::inbound::followup::{FollowupPlan, MissedCall};
use trunkline::media::player::PromptCache;
use trunkline::store::{CallStatus, Direction, NewCall, Store};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn state(dir: &std::path::Path) -> (AppState, String) {
    let store = Store::connect(&trunkline::store::testing::fresh_sqlite_url(dir))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (_, key) = store.create_api_key("test", t0()).await.unwrap();
    // No engine behind these routes: the channel's receiver is simply dropped.
    let (tx, _rx) = mpsc::channel(1);
    let state = AppState {
        store: store.clone(),
        engine: EngineHandle::new(tx),
        events: EventBus::new(store),
        clock: Arc::new(ManualClock::new(SystemTime::from(t0()))),
        config: Arc::new(Config::embedded()),
        prompts: Arc::new(Mutex::new(PromptCache::new(None))),
        metrics: trunkline::telemetry::prometheus(),
        sessions: trunkline::dialer::runner::sessions::session_channel().0,
    };
    (state, key)
}

async fn call(
    state: &AppState,
    key: &str,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"));
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = trunkline::http::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn inbound_call(n: u128, caller: &str) -> NewCall {
    NewCall {
        id: Uuid::from_u128(0xca11_0000 + n),
        direction: Direction::Inbound,
        from: caller.into(),
        to: "sales".into(),
        trunk: None,
        sip_call_id: None,
        status: CallStatus::Initiated,
        status_callback: None,
        metadata: serde_json::json!({}),
        idempotency_key: None,
        api_key_id: None,
        created_at: t0(),
    }
}

fn missed(n: u128, caller: &str) -> MissedCall {
    MissedCall {
        call_id: Uuid::from_u128(0xca11_0000 + n),
        number: "sales".into(),
        caller: caller.into(),
        reason: MissReason::CallerHangup,
        ring_ms: 4_000,
        voicemail_id: None,
        followup: Some(FollowupPlan {
            url: "http://127.0.0.1:9/sms".into(),
            text: "sorry".into(),
            cooldown_secs: 3_600,
        }),
        status_callback: None,
    }
}

#[tokio::test]
async fn missed_calls_and_opt_outs_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let (st, key) = state(dir.path()).await;
    // An opt-out, then two missed calls of that caller and one of another; one answered call.
    let (s, v) = call(
        &st,
        &key,
        "POST",
        "/v1/opt-outs",
        Some(r#"{"caller": "+15551112222", "reason": "replied STOP"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["caller"], "+15551112222");
    for (n, caller) in [
        (1, "+15551112222"),
        (2, "+15553334444"),
        (3, "+15553334444"),
    ] {
        st.store
            .insert_call(&inbound_call(n, caller))
            .await
            .unwrap();
        st.events
            .publish_missed(&missed(n, caller), t0())
            .await
            .unwrap();
    }
    st.store
        .insert_call(&inbound_call(4, "+15559999999"))
        .await
        .unwrap();
    let (s, v) = call(&st, &key, "GET", "/v1/missed-calls", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rows = v["missed_calls"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let state_of = |n: u128| {
        rows.iter()
            .find(|r| r["call_id"] == Uuid::from_u128(0xca11_0000 + n).to_string())
            .map(|r| (r["followup_state"].clone(), r["followup_reason"].clone()))
            .unwrap()
    };
    assert_eq!(state_of(1), ("suppressed".into(), "opt-out".into()));
    assert_eq!(state_of(2), ("pending".into(), Value::Null));
    assert_eq!(state_of(3), ("suppressed".into(), "cooldown".into()));
    let (_, v) = call(
        &st,
        &key,
        "GET",
        "/v1/missed-calls?caller=%2B15553334444&limit=1",
        None,
    )
    .await;
    assert_eq!(v["missed_calls"].as_array().unwrap().len(), 1);
    assert!(v["next_cursor"].is_string());
    // Calls filter: three missed inbound calls, not the fourth.
    let (s, v) = call(
        &st,
        &key,
        "GET",
        "/v1/calls?direction=inbound&status=missed",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["calls"].as_array().unwrap().len(), 3);
    // Opt-outs: listed, removed once, then 404.
    let (_, v) = call(&st, &key, "GET", "/v1/opt-outs", None).await;
    assert_eq!(v["opt_outs"].as_array().unwrap().len(), 1);
    let (s, _) = call(&st, &key, "DELETE", "/v1/opt-outs/%2B15551112222", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = call(&st, &key, "DELETE", "/v1/opt-outs/%2B15551112222", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // Bad input.
    for (body, want) in [
        (r#"{"caller": ""}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"caller": "a\u0007b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"{"caller": 5}"#, StatusCode::BAD_REQUEST),
        (r#"{"caller": "x", "other": 1}"#, StatusCode::BAD_REQUEST),
        ("{", StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = call(&st, &key, "POST", "/v1/opt-outs", Some(body)).await;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["error"]["message"].is_string(), "{body}: {v}");
    }
    let (s, _) = call(&st, &key, "GET", "/v1/missed-calls?limit=0", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call(&st, &key, "GET", "/v1/missed-calls?cursor=nope", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let no_key = Request::builder()
        .uri("/v1/missed-calls")
        .body(Body::empty())
        .unwrap();
    let s = trunkline::http::router(st.clone())
        .oneshot(no_key)
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The OpenAPI document names the routes.
    let (_, doc) = call(&st, &key, "GET", "/v1/openapi.json", None).await;
    for p in ["/v1/missed-calls", "/v1/opt-outs", "/v1/opt-outs/{caller}"] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}
