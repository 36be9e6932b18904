//! The campaign, contact-list and do-not-call routes through the real router (`oneshot`, no
//! socket) against a fresh SQLite store: validation (422 naming the field), state moves (409),
//! CSV import with dry run and whole-file refusals, the template, the do-not-call list, the
//! attempts export, and the events every campaign change publishes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tower::ServiceExt;
use trunkline::call::EngineHandle;
use trunkline::clock::ManualClock;
use trunkline::config::Config;
use trunkline::events::EventBus;
use trunkline::http::AppState;
use trunkline::media::player::PromptCache;
use trunkline::store::{Store, WindowCheck};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    key: String,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn field(&self) -> String {
        self.json()["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn harness(max_rows: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&trunkline::store::testing::fresh_sqlite_url(dir.path()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::from(t0())));
    let (_, key) = store.create_api_key("test", t0()).await.unwrap();
    let mut cfg = Config::embedded();
    cfg.server.data.dir = dir.path().join("data");
    cfg.server.campaigns.import_max_rows = max_rows;
    let (tx, mut rx) = mpsc::channel(16);
    // No engine command is expected from these routes: drain and drop.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let state = AppState {
        store: store.clone(),
        engine: EngineHandle::new(tx),
        events: EventBus::new(store),
        clock,
        config: Arc::new(cfg),
        prompts: Arc::new(Mutex::new(PromptCache::new(None))),
        metrics: trunkline::telemetry::prometheus(),
        sessions: trunkline::dialer::runner::sessions::session_channel().0,
    };
    Harness {
        _dir: dir,
        state,
        key,
    }
}

impl Harness {
    async fn send(&self, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let resp = trunkline::http::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }
    async fn json(&self, method: &str, uri: &str, body: Option<Value>) -> Answer {
        let b = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(method, uri, "application/json", b).await
    }
    async fn csv(&self, uri: &str, body: &[u8]) -> Answer {
        self.send("POST", uri, "text/csv", body.to_vec()).await
    }
    async fn kinds(&self) -> Vec<String> {
        self.state
            .events
            .events_since(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

#[tokio::test]
async fn campaign_life_validation_and_events() {
    let h = harness(100_000).await;
    // Validation names the field.
    let a = h.json("POST", "/v1/campaigns", Some(json!({}))).await;
    assert_eq!(
        (a.status, a.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "name".into())
    );
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "trunk": "nope"})),
        )
        .await;
    assert_eq!(a.field(), "trunk", "{}", a.text());
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "dial_mode": "turbo"})),
        )
        .await;
    assert_eq!(a.field(), "dial_mode");
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "window_start": "9am"})),
        )
        .await;
    assert_eq!(a.field(), "window_start");
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "default_timezone": "Mars/Base"})),
        )
        .await;
    assert_eq!(a.field(), "default_timezone");
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "caller_id": "555"})),
        )
        .await;
    assert_eq!(a.field(), "caller_ids");
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "amd": {"params": {"timeout_ms": 1}}})),
        )
        .await;
    assert_eq!(a.field(), "amd", "{}", a.text());
    // on_human: only for agentless campaigns, each action with what it needs.
    for (body, field) in [
        (
            json!({"name": "x", "on_human": "bridge", "bridge_to": "+12125550190"}),
            "on_human",
        ),
        (
            json!({"name": "x", "dial_mode": "agentless", "on_human": "bridge"}),
            "bridge_to",
        ),
        (
            json!({"name": "x", "dial_mode": "agentless", "on_human": "bridge", "bridge_to": "+1 212"}),
            "bridge_to",
        ),
        (
            json!({"name": "x", "dial_mode": "agentless", "on_human": "webhook"}),
            "on_human_url",
        ),
        (
            json!({"name": "x", "dial_mode": "agentless", "on_human": "webhook", "on_human_url": "ftp://x"}),
            "on_human_url",
        ),
        (
            json!({"name": "x", "dial_mode": "agentless", "on_human": "dance"}),
            "on_human",
        ),
    ] {
        let a = h.json("POST", "/v1/campaigns", Some(body.clone())).await;
        assert_eq!(
            (a.status, a.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field.into()),
            "{body}: {}",
            a.text()
        );
    }
    // The identification message must be a prompt the server has.
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "abandon_prompt": "nope"})),
        )
        .await;
    assert_eq!(
        (a.status, a.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "abandon_prompt".into()),
        "{}",
        a.text()
    );
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "surprise": 1})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // A draft with nothing: start names everything missing.
    let a = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "spring", "retry_delays": {"busy": 60}, "rate_per_minute": 10})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let c = a.json();
    assert_eq!(c["state"], "draft");
    assert_eq!(c["dial_mode"], "power");
    assert_eq!(c["abandon_prompt"], serde_json::Value::Null);
    assert_eq!(c["on_human"], "prompt");
    assert_eq!(c["window_start"], "08:00");
    assert_eq!(c["retry_delays"]["busy"], 60);
    assert_eq!(c["retry_delays"]["no-answer"], 3600);
    let id = c["id"].as_str().unwrap().to_owned();
    let a = h
        .json("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), "trunk,caller_ids,list_id");
    assert!(a.message().contains("no trunk"), "{}", a.message());
    let a = h
        .json("POST", &format!("/v1/campaigns/{id}/pause"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "pause a draft");

    // An empty list is refused too.
    let l = h
        .json("POST", "/v1/contact-lists", Some(json!({"name": "l"})))
        .await
        .json();
    let list = l["id"].as_str().unwrap().to_owned();
    let a = h
        .json(
            "PATCH",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"trunk": "local", "caller_id": "+15550100000", "list_id": list})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = h
        .json("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    assert_eq!(
        (a.status, a.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "contacts".into())
    );
    assert!(a.message().contains("empty"), "{}", a.message());
    h.csv(
        &format!("/v1/contact-lists/{list}/import"),
        b"phone\n+12125550001\n",
    )
    .await;

    // Through the states; illegal moves are 409.
    let a = h
        .json("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["state"], "running");
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/resume"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/archive"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.json("DELETE", &format!("/v1/campaigns/{id}"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    let a = h
        .json("POST", &format!("/v1/campaigns/{id}/pause"), None)
        .await;
    assert_eq!(a.json()["state"], "paused");
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/pause"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/resume"), None)
            .await
            .json()["state"],
        "running"
    );
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/complete"), None)
            .await
            .json()["state"],
        "completed"
    );
    assert_eq!(
        h.json("POST", &format!("/v1/campaigns/{id}/archive"), None)
            .await
            .json()["state"],
        "archived"
    );
    let a = h
        .json(
            "PATCH",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"name": "y"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    // A list in use cannot be deleted.
    assert_eq!(
        h.json("DELETE", &format!("/v1/contact-lists/{list}"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.kinds().await,
        vec![
            "campaign.created",
            "campaign.updated",
            "campaign.started",
            "campaign.paused",
            "campaign.started",
            "campaign.completed",
            "campaign.updated",
        ]
    );
    // Listing and filters.
    let a = h.json("GET", "/v1/campaigns?state=archived", None).await;
    assert_eq!(a.json()["campaigns"].as_array().unwrap().len(), 1);
    let a = h.json("GET", "/v1/campaigns?state=nope", None).await;
    assert_eq!(a.field(), "state");
    let a = h.json("GET", "/v1/campaigns?limit=0", None).await;
    assert_eq!(a.field(), "limit");
    // A draft that never dialled can be deleted.
    let d = h
        .json("POST", "/v1/campaigns", Some(json!({"name": "gone"})))
        .await
        .json();
    let did = d["id"].as_str().unwrap();
    assert_eq!(
        h.json("DELETE", &format!("/v1/campaigns/{did}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.json("GET", &format!("/v1/campaigns/{did}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn csv_import_dry_run_refusals_and_template() {
    let h = harness(3).await;
    let a = h.json("GET", "/v1/contact-lists/template.csv", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(a.text().starts_with("phone,name,timezone,priority"));
    let l = h
        .json(
            "POST",
            "/v1/contact-lists",
            Some(json!({"name": "l", "default_region": "gb"})),
        )
        .await;
    assert_eq!(l.status, StatusCode::CREATED);
    assert_eq!(l.json()["default_region"], "GB");
    let list = l.json()["id"].as_str().unwrap().to_owned();
    let bad_region = h
        .json(
            "POST",
            "/v1/contact-lists",
            Some(json!({"name": "l", "default_region": "XX"})),
        )
        .await;
    assert_eq!(bad_region.field(), "default_region");
    let uri = format!("/v1/contact-lists/{list}/import");
    h.json("POST", "/v1/dnc", Some(json!({"phone": "+442079460003"})))
        .await;

    // Dry run: every bad row with line and reason, nothing imported.
    let file = "Mobile,name,priority\n020 7946 0001,A,1\nnope,B,\n+442079460003,C,x\n";
    let a = h
        .csv(
            &format!("{uri}?dry_run=true&mapping=Mobile:phone"),
            file.as_bytes(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let r = a.json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        (
            r["rows"].as_u64(),
            r["valid"].as_u64(),
            r["imported"].as_u64()
        ),
        (Some(3), Some(1), Some(0))
    );
    let bad: Vec<(u64, String)> = r["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        vec![(3, "invalid number".into()), (4, "bad priority".into())]
    );
    let file = "Mobile,name\n020 7946 0001,A\n+442079460003,C\n";
    let a = h
        .csv(
            &format!("{uri}?dry_run=true&mapping=Mobile:phone"),
            file.as_bytes(),
        )
        .await;
    assert_eq!(a.json()["bad"][0]["reason"], "on the do-not-call list");
    let g = h
        .json("GET", &format!("/v1/contact-lists/{list}"), None)
        .await
        .json();
    assert_eq!(g["contacts"], 0);

    // Real import; the same file again reports duplicates in the list.
    let a = h
        .csv(&format!("{uri}?mapping=Mobile:phone"), file.as_bytes())
        .await;
    assert_eq!(a.json()["imported"], 1, "{}", a.text());
    let a = h
        .csv(&format!("{uri}?mapping=Mobile:phone"), file.as_bytes())
        .await;
    assert_eq!(a.json()["bad"][0]["reason"], "duplicate in list");
    let g = h
        .json("GET", &format!("/v1/contact-lists/{list}"), None)
        .await
        .json();
    assert_eq!(g["contacts"], 1);
    assert_eq!(g["by_status"]["pending"], 1);
    let c = h
        .json("GET", &format!("/v1/contact-lists/{list}/contacts"), None)
        .await
        .json();
    assert_eq!(c["contacts"][0]["phone"], "+442079460001");
    assert_eq!(c["contacts"][0]["timezone"], "Europe/London");
    assert_eq!(c["contacts"][0]["status"], "pending");

    // Whole-file refusals: 422, nothing imported.
    for (body, words) in [
        (&b"phone,name\n+442079460005,Ren\xe9\n"[..], "not UTF-8"),
        (&b"name,number\nA,+442079460005\n"[..], "no phone column"),
        (
            &b"phone\n+442079460005\n+442079460006\n+442079460007\n+442079460008\n"[..],
            "more than 3 rows",
        ),
        (&b""[..], "empty"),
    ] {
        let a = h.csv(&uri, body).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{words}: {}",
            a.text()
        );
        assert!(a.message().contains(words), "{words}: {}", a.message());
    }
    let a = h
        .csv(
            &format!("{uri}?mapping=Cell:phone"),
            b"phone\n+442079460005\n",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = h.csv(&format!("{uri}?mapping=oops"), b"phone\n").await;
    assert_eq!(a.field(), "mapping");
    let g = h
        .json("GET", &format!("/v1/contact-lists/{list}"), None)
        .await
        .json();
    assert_eq!(g["contacts"], 1, "nothing imported by refused files");
    let a = h
        .csv(
            &format!("/v1/contact-lists/{}/import", Uuid::nil()),
            b"phone\n",
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Rename, then delete (no campaign uses it).
    let a = h
        .json(
            "PATCH",
            &format!("/v1/contact-lists/{list}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(a.json()["name"], "renamed");
    assert_eq!(
        h.json("GET", "/v1/contact-lists", None).await.json()["lists"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.json("DELETE", &format!("/v1/contact-lists/{list}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn dnc_routes() {
    let h = harness(100).await;
    let a = h
        .json(
            "POST",
            "/v1/dnc",
            Some(json!({"phone": "(212) 555-0100", "reason": "asked"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json()["phone"], "+12125550100");
    let a = h
        .json("POST", "/v1/dnc", Some(json!({"phone": "+12125550100"})))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["reason"], "asked", "the first entry is kept");
    let a = h
        .json("POST", "/v1/dnc", Some(json!({"phone": "12"})))
        .await;
    assert_eq!(a.field(), "phone");
    let a = h.json("GET", "/v1/dnc/+12125550100", None).await;
    assert_eq!(a.json()["listed"], true);
    let a = h.json("GET", "/v1/dnc/2125550199", None).await;
    assert_eq!(
        (a.json()["listed"].as_bool(), a.json()["phone"].as_str()),
        (Some(false), Some("+12125550199"))
    );
    let a = h
        .csv(
            "/v1/dnc/import",
            b"phone,reason\n+12125550100,\n+12125550101,x\nbad,\n+12125550101,\n",
        )
        .await;
    let r = a.json();
    assert_eq!(
        (
            r["rows"].as_u64(),
            r["added"].as_u64(),
            r["already_listed"].as_u64()
        ),
        (Some(4), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["bad"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.json("GET", "/v1/dnc?limit=1", None).await.json()["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.json("DELETE", "/v1/dnc/+12125550100", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.json("DELETE", "/v1/dnc/+12125550100", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn attempts_export_and_openapi() {
    let h = harness(100).await;
    let l = h
        .json("POST", "/v1/contact-lists", Some(json!({"name": "l"})))
        .await
        .json();
    let list = l["id"].as_str().unwrap().to_owned();
    h.csv(
        &format!("/v1/contact-lists/{list}/import"),
        b"phone\n+12125550001\n",
    )
    .await;
    let c = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "c", "trunk": "local", "caller_id": "+15550100000", "list_id": list})),
        )
        .await
        .json();
    let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
    h.json("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    let claimed = h
        .state
        .store
        .claim_next(id, "n1", t0(), Duration::from_secs(60), |_| {
            WindowCheck::Open
        })
        .await
        .unwrap()
        .unwrap();
    h.state
        .store
        .finish_attempt(
            claimed.attempt_id,
            t0(),
            trunkline::campaign::AttemptOutcome::Busy,
            None,
            Some(Duration::from_millis(250)),
            None,
            trunkline::campaign::ContactStatus::Retry,
        )
        .await
        .unwrap();
    let a = h
        .json("GET", &format!("/v1/campaigns/{id}/attempts.csv"), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let text = a.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("attempt_id,contact_id,attempt_no,phone"));
    assert!(lines[1].contains(",1,+12125550001,"), "{}", lines[1]);
    assert!(lines[1].contains(",busy,,250"), "{}", lines[1]);
    let a = h
        .json(
            "GET",
            &format!("/v1/campaigns/{}/attempts.csv", Uuid::nil()),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let doc = h.json("GET", "/v1/openapi.json", None).await.json();
    for p in [
        "/v1/campaigns",
        "/v1/campaigns/{id}/start",
        "/v1/campaigns/{id}/attempts.csv",
        "/v1/contact-lists/{id}/import",
        "/v1/contact-lists/template.csv",
        "/v1/dnc/{phone}",
        "/v1/dnc/import",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn stats_are_computed_from_the_stored_attempts() {
    use trunkline::campaign::{AttemptOutcome, ContactStatus};
    let h = harness(100).await;
    let l = h
        .json("POST", "/v1/contact-lists", Some(json!({"name": "l"})))
        .await
        .json();
    let list = l["id"].as_str().unwrap().to_owned();
    h.csv(
        &format!("/v1/contact-lists/{list}/import"),
        b"phone\n+12125550001\n+12125550002\n+12125550003\n+12125550004\n",
    )
    .await;
    let c = h
        .json(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "c", "trunk": "local", "caller_id": "+15550100000", "list_id": list})),
        )
        .await
        .json();
    let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
    h.json("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    // Three finished attempts (a person for 30 s, an abandoned person, a machine) and one in
    // flight.
    let finished = [
        (AttemptOutcome::Human, Some("human"), 30_000),
        (AttemptOutcome::Abandoned, Some("human"), 2_000),
        (AttemptOutcome::Machine, Some("machine_end_beep"), 9_000),
    ];
    for (outcome, verdict, ms) in finished {
        let a = h
            .state
            .store
            .claim_next(id, "n1", t0(), Duration::from_secs(60), |_| {
                WindowCheck::Open
            })
            .await
            .unwrap()
            .unwrap();
        h.state
            .store
            .finish_attempt(
                a.attempt_id,
                t0(),
                outcome,
                verdict,
                Some(Duration::from_millis(ms)),
                None,
                ContactStatus::Done,
            )
            .await
            .unwrap();
    }
    h.state
        .store
        .claim_next(id, "n1", t0(), Duration::from_secs(60), |_| {
            WindowCheck::Open
        })
        .await
        .unwrap()
        .unwrap();
    let s = h
        .json("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let s = s.json();
    assert_eq!(s["contacts"], json!({"done": 3, "dialing": 1}), "{s}");
    assert_eq!(
        s["attempts"],
        json!({"human": 1, "abandoned": 1, "machine": 1, "in-flight": 1}),
        "{s}"
    );
    assert_eq!(s["amd"], json!({"human": 2, "machine_end_beep": 1}), "{s}");
    assert_eq!(s["calls_last_minute"], 4);
    assert_eq!(s["answer_rate"], 1.0);
    assert_eq!(s["abandon_rate_today"], 0.5);
    assert_eq!(s["abandon_rate_30d"], 0.5);
    assert_eq!(s["average_talk_ms"], 30_000.0);
    assert_eq!(s["agents"], json!({}), "no agent session");
    assert_eq!(s["average_wrap_up_ms"], Value::Null);
    let missing = h
        .json("GET", &format!("/v1/campaigns/{}/stats", Uuid::nil()), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let doc = h.json("GET", "/v1/openapi.json", None).await.json();
    assert!(doc["paths"]["/v1/campaigns/{id}/stats"].is_object());
}
