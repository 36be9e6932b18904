//! Preview-mode agent sessions through the real router and the real dialer runner (its task,
//! on a fresh SQLite store) with a stand-in engine that answers every call to an agent at
//! once and accepts every customer call (recording what it was asked to dial).
//!
//! - `next_and_dial_on_a_power_campaign_are_409_naming_its_mode`: the two preview commands on
//!   a power session are conflicts whose message names the campaign's mode; both routes are in
//!   the OpenAPI document.
//! - `preview_next_leases_skip_releases_and_dial_places_the_shown_contact`: `dial` and `skip`
//!   with nothing shown are 409 ("ask for the next contact first"); `next` shows the contact
//!   first in the queue (priority) with its name, zone, priority, custom field, history and
//!   attempt; asking again while shown is 409; `GET` shows it; a second session gets the other
//!   contact (the lease); `skip` puts the first back with its attempt count unchanged and no
//!   attempt row; `dial` naming another contact is 409, a bad body 422; `dial` places the call
//!   to the shown number with the campaign's caller id under the claimed attempt; `pause` while
//!   shown releases too; `session.previewing` and `session.preview_released` are published.
//! - `next_with_nothing_due_is_404_saying_when_the_next_one_is_due`: 404 "no contact is due
//!   now" with `next_due_at` (the retry's due time, or null when nothing waits: the one contact
//!   is shown to another session); a paused
//!   campaign hands out nothing (409).
//! - `a_shown_contact_stays_leased_while_shown`: the runner's sweep renews the lease of a shown
//!   contact from the (simulated) time, past the end of the first lease.
//! - `a_restart_releases_a_shown_contact_without_using_an_attempt`: the runner stops while a
//!   contact is shown; the next runner on the same store puts it back in the queue (`pending`,
//!   no attempt) and the session comes back paused.
//! - `next_is_held_to_the_rate_limit_and_cap_and_a_dialled_through_list_completes`: 429 for
//!   `next` past `rate_per_minute` or `max_concurrent` (a skip frees the place); a preview
//!   campaign whose list is done completes by itself and its session ends `campaign-ended`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use trunkline::call::{ConferenceInfo, ConferenceStatus, EngineCommand, EngineHandle};
use trunkline::campaign::{AttemptOutcome, ContactStatus};
use trunkline::clock::ManualClock;
use trunkline::config::Config;
use trunkline::dialer::runner::sessions::session_channel;
use trunkline::dialer::runner::{DialerConfig, DialerDeps, run_dialer};
use trunkline::events::{EventBus, kinds};
use trunkline::http::AppState;
use trunkline::media::player::PromptCache;
use trunkline::store::{Store, WindowCheck};
use uuid::Uuid;

const NODE: &str = "node-a";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A customer call the stand-in engine was asked to place: (from, to, call id).
type Dialled = Arc<Mutex<Vec<(String, String, Uuid)>>>;

/// Answers like the engine: rooms are created, agents answer at once (`call.answered` on the
/// bus), customer calls are accepted and recorded, hang-ups succeed.
async fn fake_engine(mut rx: mpsc::Receiver<EngineCommand>, bus: EventBus, dialled: Dialled) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            EngineCommand::CreateConference(spec, r) => {
                let _ = r.send(Ok(ConferenceInfo {
                    id: spec.id,
                    name: spec.name.clone(),
                    status: ConferenceStatus::Waiting,
                    bridge: false,
                    max_participants: None,
                    beeps: false,
                    wait_music: None,
                    hold_music: None,
                    record: false,
                    status_callback: None,
                    created_at: t0(),
                    started_at: None,
                    ended_at: None,
                    end_reason: None,
                    playing: None,
                    participants: vec![],
                    recordings: vec![],
                }));
            }
            EngineCommand::OriginateAgent(a, r) => {
                let _ = r.send(Ok(()));
                bus.publish(t0(), kinds::CALL_ANSWERED, Some(a.call.id), json!({}), None)
                    .await
                    .unwrap();
            }
            EngineCommand::Originate(o, r) => {
                dialled
                    .lock()
                    .unwrap()
                    .push((o.call.from.clone(), o.call.to.clone(), o.call.id));
                let _ = r.send(Ok(()));
            }
            EngineCommand::Hangup(_, r) => {
                let _ = r.send(Ok(()));
            }
            _ => {}
        }
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    key: String,
    dialled: Dialled,
    clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    runner: Option<tokio::task::JoinHandle<()>>,
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&trunkline::store::testing::fresh_sqlite_url(dir.path()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::from(t0())));
    let (_, key) = store.create_api_key("test", t0()).await.unwrap();
    let mut cfg = Config::embedded();
    cfg.server.data.dir = dir.path().join("data");
    let bus = EventBus::new(store.clone());
    let (tx, rx) = mpsc::channel(64);
    let dialled = Dialled::default();
    tokio::spawn(fake_engine(rx, bus.clone(), dialled.clone()));
    let state = AppState {
        store: store.clone(),
        engine: EngineHandle::new(tx),
        events: bus,
        clock: clock.clone(),
        config: Arc::new(cfg),
        prompts: Arc::new(Mutex::new(PromptCache::new(None))),
        metrics: trunkline::telemetry::prometheus(),
        sessions: session_channel().0,
    };
    let mut h = Harness {
        _dir: dir,
        state,
        key,
        dialled,
        clock,
        stop: None,
        runner: None,
    };
    h.start_runner();
    h
}

impl Harness {
    /// Starts the dialer runner (as the server does), wired to the API's session handle.
    fn start_runner(&mut self) {
        let (handle, inbox) = session_channel();
        self.state.sessions = handle;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let deps = DialerDeps {
            store: self.state.store.clone(),
            bus: self.state.events.clone(),
            engine: self.state.engine.clone(),
            clock: self.state.clock.clone(),
            prompts: self.state.prompts.clone(),
        };
        let cfg = DialerConfig {
            node: NODE.into(),
            tick: Duration::from_millis(100),
            lease: Duration::from_secs(120),
            ring_timeout: Duration::from_secs(30),
            sweep: Duration::from_millis(100),
            webhook_secret: None,
        };
        self.runner = Some(tokio::spawn(run_dialer(deps, cfg, inbox, async {
            let _ = stop_rx.await;
        })));
        self.stop = Some(stop_tx);
    }

    /// Stops the runner and waits for its task to end (what a dead process leaves behind:
    /// the stored rows).
    async fn stop_runner(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.runner.take() {
            task.await.unwrap();
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<&str>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let resp = trunkline::http::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer { status, body }
    }

    async fn ok(&self, method: &str, uri: &str, body: Option<&str>) -> Value {
        let a = self.send(method, uri, body).await;
        assert!(
            a.status.is_success(),
            "{method} {uri}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }

    /// A campaign in `mode` over a list imported from `csv`, window open all day; started if
    /// `start`. Returns (campaign id, list id).
    async fn campaign(&self, mode: &str, csv: &str, start: bool) -> (Uuid, Uuid) {
        self.campaign_with(mode, csv, start, json!({})).await
    }

    /// [`Self::campaign`] with more settings (`extra`, a JSON object).
    async fn campaign_with(
        &self,
        mode: &str,
        csv: &str,
        start: bool,
        extra: Value,
    ) -> (Uuid, Uuid) {
        let l = self
            .ok("POST", "/v1/contact-lists", Some(r#"{"name": "l"}"#))
            .await;
        let list: Uuid = l["id"].as_str().unwrap().parse().unwrap();
        let req = Request::builder()
            .method("POST")
            .uri(format!("/v1/contact-lists/{list}/import"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(csv.to_owned()))
            .unwrap();
        let resp = trunkline::http::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "import");
        let mut body = json!({
            "name": "c", "trunk": "local", "caller_id": "+15550100000", "list_id": list,
            "dial_mode": mode, "window_start": "00:00", "window_end": "23:59",
            "default_timezone": "UTC", "max_attempts": 3,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let body = body.to_string();
        let c = self.ok("POST", "/v1/campaigns", Some(&body)).await;
        let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
        if start {
            self.ok("POST", &format!("/v1/campaigns/{id}/start"), None)
                .await;
        }
        (id, list)
    }

    /// Starts a session of a `sip:` agent (the stand-in answers it) and waits until it is
    /// `available`.
    async fn available_session(&self, campaign: Uuid, user: &str) -> Uuid {
        let body = json!({"campaign_id": campaign, "agent": format!("sip:{user}@127.0.0.1:5999")})
            .to_string();
        let s = self.ok("POST", "/v1/sessions", Some(&body)).await;
        let id: Uuid = s["id"].as_str().unwrap().parse().unwrap();
        self.wait_state(id, "available").await;
        id
    }

    async fn wait_state(&self, id: Uuid, state: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            last = self.ok("GET", &format!("/v1/sessions/{id}"), None).await;
            if last["state"] == state {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("session {id} never became {state}: {last:#}");
    }

    async fn contact(&self, phone: &str, list: Uuid) -> trunkline::store::Contact {
        let page = self
            .state
            .store
            .list_contacts(list, &Default::default())
            .await
            .unwrap();
        page.contacts
            .into_iter()
            .find(|c| c.phone == phone)
            .unwrap_or_else(|| panic!("no contact {phone}"))
    }

    /// Claims the campaign's next contact as a dial would and finishes its attempt at t0 with
    /// `outcome`, the contact then `status` (due again at `due`).
    async fn claim_and_finish(
        &self,
        campaign: Uuid,
        outcome: AttemptOutcome,
        due: Option<DateTime<Utc>>,
        status: ContactStatus,
    ) {
        let store = &self.state.store;
        let claim = store
            .claim_next(campaign, NODE, t0(), Duration::from_secs(60), |_| {
                WindowCheck::Open
            })
            .await
            .unwrap()
            .expect("a contact to claim");
        let done = store
            .finish_attempt(claim.attempt_id, t0(), outcome, None, None, due, status)
            .await
            .unwrap();
        assert!(done);
    }

    /// On a started preview campaign of two contacts with `settings`, a first session's `next`
    /// shows a contact and a second's is refused with 429 saying `why` (the second session
    /// stays available). Returns the two sessions.
    async fn second_next_is_throttled(
        &self,
        settings: Value,
        agents: [&str; 2],
        why: &str,
    ) -> (Uuid, Uuid) {
        let csv = "phone\n+12125550301\n+12125550302\n";
        let (campaign, _) = self.campaign_with("preview", csv, true, settings).await;
        let first = self.available_session(campaign, agents[0]).await;
        let second = self.available_session(campaign, agents[1]).await;
        self.ok("POST", &format!("/v1/sessions/{first}/next"), None)
            .await;
        let r = self
            .send("POST", &format!("/v1/sessions/{second}/next"), None)
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.message().contains(why), "{}", r.message());
        assert_eq!(
            self.ok("GET", &format!("/v1/sessions/{second}"), None)
                .await["state"],
            "available"
        );
        (first, second)
    }

    async fn kinds(&self) -> Vec<Value> {
        self.state
            .events
            .events_since(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| json!({"type": e.kind, "payload": e.payload}))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_and_dial_on_a_power_campaign_are_409_naming_its_mode() {
    let mut h = harness().await;
    let (campaign, _) = h.campaign("power", "phone\n+12125550001\n", false).await;
    let s = h.available_session(campaign, "alice").await;
    for (path, body) in [("next", None), ("dial", Some(r#"{}"#))] {
        let a = h
            .send("POST", &format!("/v1/sessions/{s}/{path}"), body)
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{path}");
        assert_eq!(
            a.message(),
            format!(
                "{path} is only for preview sessions; this session's campaign dials in power mode"
            )
        );
    }
    // Nothing was dialled or changed.
    assert!(h.dialled.lock().unwrap().is_empty());
    let got = h.ok("GET", &format!("/v1/sessions/{s}"), None).await;
    assert_eq!(got["state"], "available");
    assert!(got.get("preview").is_none(), "{got}");
    // Both routes are documented, with the preview's schema.
    let doc = h.ok("GET", "/v1/openapi.json", None).await;
    for p in ["/v1/sessions/{id}/next", "/v1/sessions/{id}/dial"] {
        assert!(doc["paths"][p]["post"].is_object(), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["PreviewResource"].is_object());
    h.stop_runner().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_next_leases_skip_releases_and_dial_places_the_shown_contact() {
    let mut h = harness().await;
    let (campaign, list) = h
        .campaign(
            "preview",
            "phone,name,timezone,priority,account_id\n\
             +12125550101,Ann Smith,America/New_York,5,AC-1\n\
             +12125550102,Bob Jones,,1,AC-2\n",
            true,
        )
        .await;
    let s1 = h.available_session(campaign, "alice").await;
    let s2 = h.available_session(campaign, "bob").await;

    // Nothing shown yet: nothing to dial or skip.
    let a = h
        .send("POST", &format!("/v1/sessions/{s1}/dial"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(
        a.message().contains("ask for the next contact first"),
        "{}",
        a.message()
    );
    let a = h
        .send("POST", &format!("/v1/sessions/{s1}/skip"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(
        a.message().contains("no contact is shown"),
        "{}",
        a.message()
    );

    // next: Ann first (higher priority), with her fields, no history, attempt 1.
    let p = h.ok("POST", &format!("/v1/sessions/{s1}/next"), None).await;
    let ann = h.contact("+12125550101", list).await;
    assert_eq!(p["session_id"], s1.to_string());
    assert_eq!(p["contact"]["id"], ann.id.to_string(), "{p}");
    assert_eq!(p["contact"]["phone"], "+12125550101");
    assert_eq!(p["contact"]["name"], "Ann Smith");
    assert_eq!(p["contact"]["timezone"], "America/New_York");
    assert_eq!(p["contact"]["priority"], 5);
    assert_eq!(p["contact"]["custom"]["account_id"], "AC-1");
    assert_eq!(p["attempt_no"], 1);
    assert_eq!(p["attempts"], json!([]));
    let ann_attempt: Uuid = p["attempt_id"].as_str().unwrap().parse().unwrap();
    // Claimed and leased to this node while shown.
    assert_eq!(ann.status, ContactStatus::Dialing);
    assert_eq!(ann.lease_owner.as_deref(), Some(NODE));
    assert_eq!(ann.attempts, 1);
    // Asking again while shown: 409.
    let a = h
        .send("POST", &format!("/v1/sessions/{s1}/next"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(
        a.message(),
        format!(
            "cannot next: contact {} is shown; dial it or skip it first",
            ann.id
        )
    );
    // GET shows the preview.
    let got = h.ok("GET", &format!("/v1/sessions/{s1}"), None).await;
    assert_eq!(got["state"], "available");
    assert_eq!(got["preview"]["contact"]["name"], "Ann Smith", "{got}");
    assert_eq!(got["preview"]["attempt_id"], ann_attempt.to_string());
    assert_eq!(got["current_contact_id"], ann.id.to_string());

    // The second session gets the other contact: Ann is leased.
    let p2 = h.ok("POST", &format!("/v1/sessions/{s2}/next"), None).await;
    assert_eq!(p2["contact"]["phone"], "+12125550102", "{p2}");
    assert_eq!(p2["contact"]["name"], "Bob Jones");

    // skip: Ann goes back to the queue at once, no attempt used, no attempt row left.
    let skipped = h.ok("POST", &format!("/v1/sessions/{s1}/skip"), None).await;
    assert_eq!(skipped["state"], "available");
    assert!(skipped.get("preview").is_none(), "{skipped}");
    assert_eq!(skipped["counts"]["skipped"], 1);
    let ann = h.contact("+12125550101", list).await;
    assert_eq!(ann.status, ContactStatus::Pending);
    assert_eq!(ann.attempts, 0);
    assert_eq!(ann.lease_owner, None);
    assert!(
        h.state
            .store
            .contact_attempts(ann.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Ann is first again; dialling another contact than the one shown is refused.
    let p = h.ok("POST", &format!("/v1/sessions/{s1}/next"), None).await;
    assert_eq!(p["contact"]["id"], ann.id.to_string());
    assert_eq!(p["attempt_no"], 1, "the skip used no attempt");
    let attempt: Uuid = p["attempt_id"].as_str().unwrap().parse().unwrap();
    let bob = h.contact("+12125550102", list).await;
    let a = h
        .send(
            "POST",
            &format!("/v1/sessions/{s1}/dial"),
            Some(&json!({ "contact_id": bob.id }).to_string()),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(
        a.message(),
        format!(
            "cannot dial contact {}: the contact shown is {}",
            bob.id, ann.id
        )
    );
    let a = h
        .send(
            "POST",
            &format!("/v1/sessions/{s1}/dial"),
            Some(r#"{"contact_id": "nope"}"#),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(h.dialled.lock().unwrap().is_empty(), "nothing dialled yet");

    // dial: the shown number is called with the campaign's caller id, under the attempt.
    let d = h
        .ok(
            "POST",
            &format!("/v1/sessions/{s1}/dial"),
            Some(&json!({ "contact_id": ann.id }).to_string()),
        )
        .await;
    assert_eq!(d["state"], "dialing", "{d}");
    let dialled = h.dialled.lock().unwrap().clone();
    assert_eq!(dialled.len(), 1);
    assert_eq!(dialled[0].0, "+15550100000");
    assert_eq!(dialled[0].1, "+12125550101");
    let rows = h.state.store.contact_attempts(ann.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, attempt);
    assert_eq!(rows[0].call_id, Some(dialled[0].2));
    assert_eq!(rows[0].session_id, Some(s1));
    assert_eq!(rows[0].ended_at, None);
    // A dial is not asked twice.
    let a = h
        .send("POST", &format!("/v1/sessions/{s1}/dial"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);

    // pause while Bob is shown releases him the same way.
    let paused = h
        .ok("POST", &format!("/v1/sessions/{s2}/pause"), None)
        .await;
    assert_eq!(paused["state"], "paused");
    let bob = h.contact("+12125550102", list).await;
    assert_eq!(bob.status, ContactStatus::Pending);
    assert_eq!(bob.attempts, 0);

    let events = h.kinds().await;
    let of = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .map(|e| e["payload"].clone())
            .collect()
    };
    let shown = of("session.previewing");
    assert_eq!(shown.len(), 3, "{shown:#?}");
    assert_eq!(shown[0]["contact_id"], ann.id.to_string());
    assert_eq!(shown[0]["contact"]["name"], "Ann Smith");
    let released = of("session.preview_released");
    let reasons: Vec<&str> = released
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons, ["skipped", "paused"], "{released:#?}");
    h.stop_runner().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_with_nothing_due_is_404_saying_when_the_next_one_is_due() {
    let mut h = harness().await;
    // One contact, retried an hour from now.
    let (later, _) = h.campaign("preview", "phone\n+12125550201\n", true).await;
    let due = t0() + TimeDelta::hours(1);
    h.claim_and_finish(later, AttemptOutcome::Busy, Some(due), ContactStatus::Retry)
        .await;
    let s = h.available_session(later, "alice").await;
    let a = h
        .send("POST", &format!("/v1/sessions/{s}/next"), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.message(),
        "no contact is due now; the next one is due at 2026-03-02T16:00:00Z"
    );
    let j = a.json();
    assert_eq!(j["error"]["code"], "not_found");
    let next: DateTime<Utc> = j["error"]["details"]["next_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next, due);
    // Nothing was claimed by the refusal.
    let got = h.ok("GET", &format!("/v1/sessions/{s}"), None).await;
    assert_eq!(got["state"], "available");
    assert!(got.get("preview").is_none());

    // Nobody left waiting (the one contact is shown to another session): null.
    let (busy, _) = h.campaign("preview", "phone\n+12125550202\n", true).await;
    let shows = h.available_session(busy, "bob").await;
    h.ok("POST", &format!("/v1/sessions/{shows}/next"), None)
        .await;
    let s = h.available_session(busy, "dave").await;
    let a = h
        .send("POST", &format!("/v1/sessions/{s}/next"), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.message(),
        "no contact is due now: none is waiting in the campaign's list"
    );
    assert_eq!(a.json()["error"]["details"]["next_due_at"], Value::Null);

    // A paused campaign hands out nothing.
    let (paused, _) = h.campaign("preview", "phone\n+12125550203\n", true).await;
    let s = h.available_session(paused, "carol").await;
    h.ok("POST", &format!("/v1/campaigns/{paused}/pause"), None)
        .await;
    let a = h
        .send("POST", &format!("/v1/sessions/{s}/next"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.message().contains("is paused"), "{}", a.message());
    h.stop_runner().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_releases_a_shown_contact_without_using_an_attempt() {
    let mut h = harness().await;
    let (campaign, list) = h.campaign("preview", "phone\n+12125550301\n", true).await;
    let s = h.available_session(campaign, "alice").await;
    let p = h.ok("POST", &format!("/v1/sessions/{s}/next"), None).await;
    assert_eq!(p["contact"]["phone"], "+12125550301");
    assert_eq!(
        h.contact("+12125550301", list).await.status,
        ContactStatus::Dialing
    );

    // The process goes away with the contact shown; the next one reconciles at start.
    h.stop_runner().await;
    h.start_runner();
    let got = h.wait_state(s, "paused").await;
    assert!(got.get("preview").is_none(), "{got}");
    let c = h.contact("+12125550301", list).await;
    assert_eq!(c.status, ContactStatus::Pending, "{c:?}");
    assert_eq!(c.attempts, 0);
    assert_eq!(c.lease_owner, None);
    assert!(
        h.state
            .store
            .contact_attempts(c.id)
            .await
            .unwrap()
            .is_empty()
    );
    // Resumed, the agent can take it again as a first attempt.
    h.ok("POST", &format!("/v1/sessions/{s}/resume"), None)
        .await;
    h.wait_state(s, "available").await;
    let p = h.ok("POST", &format!("/v1/sessions/{s}/next"), None).await;
    assert_eq!(p["contact"]["id"], c.id.to_string());
    assert_eq!(p["attempt_no"], 1);
    h.stop_runner().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shown_contact_stays_leased_while_shown() {
    let mut h = harness().await;
    let (campaign, list) = h.campaign("preview", "phone\n+12125550401\n", true).await;
    let s = h.available_session(campaign, "alice").await;
    h.ok("POST", &format!("/v1/sessions/{s}/next"), None).await;
    let lease = |c: &trunkline::store::Contact| c.lease_expires_at;
    let c = h.contact("+12125550401", list).await;
    assert_eq!(lease(&c), Some(t0() + TimeDelta::seconds(120)), "{c:?}");
    // Each step moves past most of the lease; the sweep renews it from the new time.
    for step in 1..=2 {
        h.clock.advance(Duration::from_secs(100));
        let want = Some(t0() + TimeDelta::seconds(100 * step + 120));
        let mut last = None;
        for _ in 0..500 {
            let c = h.contact("+12125550401", list).await;
            last = lease(&c);
            if last == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(last, want, "lease not renewed at step {step}");
    }
    let c = h.contact("+12125550401", list).await;
    assert_eq!(c.status, ContactStatus::Dialing);
    assert_eq!(c.lease_owner.as_deref(), Some(NODE));
    let got = h.ok("GET", &format!("/v1/sessions/{s}"), None).await;
    assert_eq!(got["preview"]["contact"]["id"], c.id.to_string(), "{got}");
    h.stop_runner().await;
}

/// A shown contact counts as a call started: `next` is held to the campaign's rate limit and
/// cap on calls at once (429 saying which); a preview campaign whose list is dialled through
/// completes by itself and ends its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_is_held_to_the_rate_limit_and_cap_and_a_dialled_through_list_completes() {
    let mut h = harness().await;
    h.second_next_is_throttled(
        json!({"rate_per_minute": 1}),
        ["alice", "bob"],
        "rate limit",
    )
    .await;
    let (c, d) = h
        .second_next_is_throttled(
            json!({"max_concurrent": 1}),
            ["carol", "dave"],
            "max_concurrent 1",
        )
        .await;
    // Skipping the shown contact frees the place.
    h.ok("POST", &format!("/v1/sessions/{c}/skip"), None).await;
    h.ok("POST", &format!("/v1/sessions/{d}/next"), None).await;

    // A list whose one contact is done: the campaign completes and its session ends.
    let (done, _) = h.campaign("preview", "phone\n+12125550303\n", true).await;
    let s = h.available_session(done, "erin").await;
    h.claim_and_finish(done, AttemptOutcome::Human, None, ContactStatus::Done)
        .await;
    let ended = h.wait_state(s, "ended").await;
    assert_eq!(ended["ended_reason"], "campaign-ended", "{ended:#}");
    let c = h.ok("GET", &format!("/v1/campaigns/{done}"), None).await;
    assert_eq!(c["state"], "completed", "{c:#}");
    h.stop_runner().await;
}
