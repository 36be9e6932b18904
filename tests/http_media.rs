//! The conference and recording routes through the real router (`oneshot`, no socket) against
//! a fresh SQLite store and a scripted stand-in for the engine; and the retention job.
//!
//! The stand-in answers engine commands the way the engine does for the cases tested here
//! (unknown ids, a full room, a live recording), so the HTTP layer's mapping to 404, 409, 416
//! and 422 is what is checked; the engine's own rules have their own tests.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;
use tower::ServiceExt;
use trunkline::call::{
    ConferenceInfo, ConferenceStatus, EngineCommand, EngineError, EngineHandle, ParticipantInfo,
    RecordingInfo, RecordingStatus as LiveStatus,
};
use trunkline::clock::{Clock, ManualClock};
use trunkline::config::Config;
use trunkline::events::{EventBus, kinds};
use trunkline::http::AppState;
use trunkline::media::player::PromptCache;
use trunkline::media::room::Role;
use trunkline::store::{NewRecording, RecordingStatus, RecordingSummaryRow, Store, new_id};
use uuid::Uuid;

/// A live room of one participant, `max_participants: 1`.
const FULL_ROOM: Uuid = Uuid::from_u128(0x0100);
/// Its participant.
const IN_ROOM: Uuid = Uuid::from_u128(0x0101);
/// A recording the engine reports in progress.
const LIVE_REC: Uuid = Uuid::from_u128(0x0200);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn room(now: DateTime<Utc>) -> ConferenceInfo {
    ConferenceInfo {
        id: FULL_ROOM,
        name: Some("sales".into()),
        status: ConferenceStatus::Active,
        bridge: false,
        max_participants: Some(1),
        beeps: false,
        wait_music: None,
        hold_music: None,
        record: false,
        status_callback: None,
        created_at: now,
        started_at: Some(now),
        ended_at: None,
        end_reason: None,
        playing: None,
        participants: vec![ParticipantInfo {
            call_id: IN_ROOM,
            muted: true,
            deaf: false,
            hold: false,
            role: Role::Normal,
            start_on_enter: true,
            end_on_exit: false,
            joined_at: now,
        }],
        recordings: vec![],
    }
}

/// Answers engine commands like the engine for the ids above; everything else is unknown.
async fn fake_engine(mut rx: mpsc::Receiver<EngineCommand>, now: DateTime<Utc>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            EngineCommand::Conference(id, r) => {
                let _ = r.send(if id == FULL_ROOM {
                    Ok(room(now))
                } else {
                    Err(EngineError::ConferenceNotFound(id))
                });
            }
            EngineCommand::Join {
                conference_id,
                reply,
                ..
            } => {
                let _ = reply.send(Err(if conference_id == FULL_ROOM {
                    EngineError::Full(conference_id)
                } else {
                    EngineError::ConferenceNotFound(conference_id)
                }));
            }
            EngineCommand::CreateConference(spec, r) => {
                let mut info = room(now);
                info.id = spec.id;
                info.status = ConferenceStatus::Waiting;
                info.participants.clear();
                info.wait_music = spec.wait_music.map(|p| p.name);
                let _ = r.send(Ok(info));
            }
            EngineCommand::Recording(id, r) => {
                let _ = r.send(if id == LIVE_REC {
                    Ok(RecordingInfo {
                        id,
                        call_id: Some(IN_ROOM),
                        conference_id: None,
                        left: None,
                        path: PathBuf::from("2026/03/01/live.wav"),
                        status: LiveStatus::Recording,
                        stopping: false,
                        channels: 2,
                        sample_rate: 8000,
                        started_at: now,
                    })
                } else {
                    Err(EngineError::RecordingNotFound(id))
                });
            }
            EngineCommand::StopRecording(id, r)
            | EngineCommand::PauseRecording(id, r)
            | EngineCommand::ResumeRecording(id, r) => {
                let _ = r.send(Err(EngineError::RecordingNotFound(id)));
            }
            EngineCommand::StartRecording(spec, r) => {
                let _ = r.send(Err(match spec.target {
                    trunkline::call::RecordingTarget::Call(c) => EngineError::NotFound(c),
                    trunkline::call::RecordingTarget::Conference { conference_id, .. } => {
                        EngineError::ConferenceNotFound(conference_id)
                    }
                }));
            }
            EngineCommand::RemoveParticipant {
                conference_id,
                reply,
                ..
            }
            | EngineCommand::PlayRoom {
                conference_id,
                reply,
                ..
            } => {
                let _ = reply.send(Err(EngineError::ConferenceNotFound(conference_id)));
            }
            EngineCommand::Bridge { a, reply, .. } => {
                let _ = reply.send(Err(EngineError::NotFound(a)));
            }
            _ => {}
        }
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    key: String,
    recordings_dir: PathBuf,
    prompts_dir: PathBuf,
    clock: Arc<ManualClock>,
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
    let prompts_dir = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts_dir).unwrap();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(fake_engine(rx, t0()));
    let recordings_dir = cfg.recordings_dir();
    let state = AppState {
        store: store.clone(),
        engine: EngineHandle::new(tx),
        events: EventBus::new(store),
        clock: clock.clone(),
        config: Arc::new(cfg),
        prompts: Arc::new(Mutex::new(PromptCache::new(Some(prompts_dir.clone())))),
        metrics: trunkline::telemetry::prometheus(),
        sessions: trunkline::dialer::runner::sessions::session_channel().0,
    };
    Harness {
        _dir: dir,
        state,
        key,
        recordings_dir,
        prompts_dir,
        clock,
    }
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
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `details.field` of an error body.
    fn field(&self) -> String {
        self.json()["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        range: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
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

    /// A stored recording ended at `ended` (or live if `None`) with a file of `bytes` on disk.
    async fn recording(
        &self,
        created: DateTime<Utc>,
        ended: Option<DateTime<Utc>>,
        bytes: Option<&[u8]>,
    ) -> (Uuid, PathBuf) {
        let id = new_id(created);
        let rel = format!("{}/{id}.wav", created.format("%Y/%m/%d"));
        let store = &self.state.store;
        store
            .insert_recording(&NewRecording {
                id,
                call_id: None,
                conference_id: None,
                path: rel.clone(),
                channels: 2,
                sample_rate: 8000,
                started_at: created,
                created_at: created,
                node: None,
            })
            .await
            .unwrap();
        if let Some(at) = ended {
            assert!(
                store
                    .finish_recording(
                        id,
                        &RecordingSummaryRow {
                            status: RecordingStatus::Completed,
                            ended_at: at,
                            duration_ms: Some(1000),
                            size_bytes: bytes.map(|b| b.len() as u64),
                            sha256: None,
                            error: None,
                        },
                    )
                    .await
                    .unwrap()
            );
        }
        let file = self.recordings_dir.join(&rel);
        if let Some(b) = bytes {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b).unwrap();
        }
        (id, file)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let h = harness().await;
    let id = Uuid::from_u128(0xdead);
    for (method, uri, body) in [
        ("GET", format!("/v1/conferences/{id}"), None),
        ("POST", format!("/v1/conferences/{id}/end"), None),
        (
            "POST",
            format!("/v1/conferences/{id}/participants"),
            Some(json!({"call_id": IN_ROOM})),
        ),
        (
            "DELETE",
            format!("/v1/conferences/{id}/participants/{IN_ROOM}"),
            None,
        ),
        (
            "POST",
            format!("/v1/conferences/{id}/recordings"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/calls/{id}/recordings"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/calls/{id}/bridge"),
            Some(json!({"call_id": IN_ROOM})),
        ),
        ("GET", format!("/v1/recordings/{id}"), None),
        ("GET", format!("/v1/recordings/{id}/audio"), None),
        ("POST", format!("/v1/recordings/{id}/stop"), None),
        ("POST", format!("/v1/recordings/{id}/pause"), None),
        ("DELETE", format!("/v1/recordings/{id}"), None),
    ] {
        let a = h.call(method, &uri, body, None).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {:?}",
            a.json()
        );
        assert_eq!(a.json()["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn live_room_shows_participants_and_refuses_a_join_when_full() {
    let h = harness().await;
    let a = h
        .call("GET", &format!("/v1/conferences/{FULL_ROOM}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let j = a.json();
    assert_eq!(j["status"], "active");
    assert_eq!(j["options"]["max_participants"], 1);
    assert_eq!(j["participants"][0]["call_id"], IN_ROOM.to_string());
    assert_eq!(j["participants"][0]["muted"], true);
    assert_eq!(j["participants"][0]["role"], "normal");

    let other = Uuid::from_u128(0x0102);
    let a = h
        .call(
            "POST",
            &format!("/v1/conferences/{FULL_ROOM}/participants"),
            Some(json!({"call_id": other})),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{:?}", a.json());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("full")
    );
    // A dialled leg is refused before it is dialled.
    let a = h
        .call(
            "POST",
            &format!("/v1/conferences/{FULL_ROOM}/participants"),
            Some(json!({"to": "+15551234567"})),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{:?}", a.json());
}

#[tokio::test]
async fn invalid_values_are_422_naming_the_field() {
    let h = harness().await;
    let room = format!("/v1/conferences/{FULL_ROOM}/participants");
    let cases = [
        (
            room.clone(),
            json!({"call_id": IN_ROOM, "role": "barge"}),
            "role",
        ),
        (
            room.clone(),
            json!({"call_id": IN_ROOM, "role": "coach"}),
            "coach_target",
        ),
        (
            room.clone(),
            json!({"call_id": IN_ROOM, "role": "listen", "coach_target": IN_ROOM}),
            "coach_target",
        ),
        (room.clone(), json!({}), "call_id"),
        (
            room.clone(),
            json!({"call_id": IN_ROOM, "to": "+15551234567"}),
            "to",
        ),
        // A coach whose target is not in the room, before dialling.
        (
            room.clone(),
            json!({"to": "+15551234567", "role": "coach", "coach_target": Uuid::from_u128(9)}),
            "coach_target",
        ),
        (
            "/v1/conferences".into(),
            json!({"max_participants": 0}),
            "max_participants",
        ),
        (
            "/v1/conferences".into(),
            json!({"status_callback": "ftp://x"}),
            "status_callback",
        ),
        (
            "/v1/conferences".into(),
            json!({"wait_music": "no-such-prompt"}),
            "wait_music",
        ),
        (
            "/v1/conferences".into(),
            json!({"hold_music": "../secret"}),
            "hold_music",
        ),
        (
            format!("/v1/calls/{IN_ROOM}/bridge"),
            json!({"call_id": IN_ROOM}),
            "call_id",
        ),
    ];
    for (uri, body, field) in cases {
        let a = h.call("POST", &uri, Some(body.clone()), None).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri} {body}: {:?}",
            a.json()
        );
        assert_eq!(a.field(), field, "{uri} {body}");
    }
    let a = h
        .call(
            "PATCH",
            &format!("/v1/conferences/{FULL_ROOM}/participants/{IN_ROOM}"),
            Some(json!({"role": "boss"})),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), "role");
    let a = h
        .call("GET", "/v1/recordings?status=stopped", None, None)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), "status");
}

#[tokio::test]
async fn a_bad_prompt_is_named_without_the_server_path() {
    let h = harness().await;
    std::fs::write(
        h.prompts_dir.join("broken.wav"),
        b"RIFF\x00\x00not a wav at all",
    )
    .unwrap();
    for (field, name) in [("wait_music", "broken"), ("hold_music", "missing")] {
        let a = h
            .call("POST", "/v1/conferences", Some(json!({field: name})), None)
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.json());
        assert_eq!(a.field(), field);
        let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(!msg.contains(h.prompts_dir.to_str().unwrap()), "{msg}");
    }
    // A good one is decoded and named in the room.
    let tone = h.prompts_dir.join("tone.wav");
    std::fs::write(&tone, trunkline::config::embedded::TONE_WAV).unwrap();
    let a = h
        .call(
            "POST",
            "/v1/conferences",
            Some(json!({"wait_music": "tone", "beeps": true})),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    assert_eq!(a.json()["status"], "waiting");
}

#[tokio::test]
async fn stopping_a_stopped_recording_is_409_and_a_live_one_cannot_be_deleted() {
    let h = harness().await;
    let (done, _) = h.recording(t0(), Some(t0()), Some(b"RIFF")).await;
    for action in ["stop", "pause", "resume"] {
        let a = h
            .call(
                "POST",
                &format!("/v1/recordings/{done}/{action}"),
                None,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{action}: {:?}", a.json());
    }
    // Live in the engine.
    let a = h
        .call("DELETE", &format!("/v1/recordings/{LIVE_REC}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    // Live in the store.
    let (live, file) = h.recording(t0(), None, Some(b"RIFF")).await;
    let a = h
        .call("DELETE", &format!("/v1/recordings/{live}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(file.exists());
    // The resource never shows the path.
    let a = h
        .call("GET", &format!("/v1/recordings/{live}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["status"], "recording");
    assert!(a.json().get("path").is_none());
}

#[tokio::test]
async fn audio_honours_one_range_and_refuses_past_the_end() {
    let h = harness().await;
    let bytes = pattern(1000);
    let (id, _) = h.recording(t0(), Some(t0()), Some(&bytes)).await;
    let uri = format!("/v1/recordings/{id}/audio");

    let a = h.call("GET", &uri, None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, bytes);
    assert_eq!(a.header(header::CONTENT_TYPE), Some("audio/wav"));
    assert_eq!(a.header(header::ACCEPT_RANGES), Some("bytes"));
    assert_eq!(a.header(header::CONTENT_LENGTH), Some("1000"));

    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=0-5000", 0, 999),
    ] {
        let a = h.call("GET", &uri, None, Some(range)).await;
        assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(a.body, &bytes[start..=end], "{range}");
        assert_eq!(
            a.header(header::CONTENT_RANGE),
            Some(format!("bytes {start}-{end}/1000").as_str())
        );
        assert_eq!(
            a.header(header::CONTENT_LENGTH),
            Some((end - start + 1).to_string().as_str())
        );
    }

    let a = h.call("GET", &uri, None, Some("bytes=1000-")).await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.header(header::CONTENT_RANGE), Some("bytes */1000"));
    assert_eq!(a.json()["error"]["code"], "range_not_satisfiable");

    // Several ranges, or a malformed one: the whole file.
    for range in ["bytes=0-1,5-6", "bytes=9-2", "pages=1-2"] {
        let a = h.call("GET", &uri, None, Some(range)).await;
        assert_eq!(a.status, StatusCode::OK, "{range}");
        assert_eq!(a.body, bytes);
    }
}

#[tokio::test]
async fn delete_removes_file_and_row_and_publishes_the_event() {
    let h = harness().await;
    let mut events = h.state.events.subscribe();
    let (id, file) = h.recording(t0(), Some(t0()), Some(b"RIFF....")).await;
    let a = h
        .call("DELETE", &format!("/v1/recordings/{id}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.json());
    assert!(!file.exists());
    assert!(h.state.store.get_recording(id).await.unwrap().is_none());
    let e = events.recv().await.unwrap();
    assert_eq!(e.kind, kinds::RECORDING_DELETED);
    assert_eq!(e.payload["recording_id"], id.to_string());
    assert_eq!(e.payload["reason"], "api");
    let a = h
        .call("DELETE", &format!("/v1/recordings/{id}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // A row whose file is already gone is deleted all the same.
    let (id, file) = h.recording(t0(), Some(t0()), None).await;
    assert!(!file.exists());
    let a = h
        .call("DELETE", &format!("/v1/recordings/{id}"), None, None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn retention_deletes_only_recordings_ended_before_the_cutoff() {
    let h = harness().await;
    let now = t0() + TimeDelta::days(40);
    h.clock.advance(std::time::Duration::from_secs(40 * 86_400));
    assert_eq!(h.clock.utc(), now);
    let old = t0();
    let (gone, gone_file) = h
        .recording(old, Some(old + TimeDelta::minutes(5)), Some(b"old"))
        .await;
    let (gone_no_file, _) = h.recording(old, Some(old), None).await;
    let (live, live_file) = h.recording(old, None, Some(b"live")).await;
    let recent = now - TimeDelta::days(1);
    let (kept, kept_file) = h.recording(recent, Some(recent), Some(b"new")).await;
    let mut events = h.state.events.subscribe();
    let dir = h.recordings_dir.clone();

    // 0 keeps everything.
    let n = trunkline::retention::retention_pass(&h.state.events, h.clock.as_ref(), &dir, 0)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = trunkline::retention::retention_pass(&h.state.events, h.clock.as_ref(), &dir, 30)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(!gone_file.exists());
    assert!(live_file.exists() && kept_file.exists());
    let store = &h.state.store;
    assert!(store.get_recording(gone).await.unwrap().is_none());
    assert!(store.get_recording(gone_no_file).await.unwrap().is_none());
    assert!(store.get_recording(live).await.unwrap().is_some());
    assert!(store.get_recording(kept).await.unwrap().is_some());
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let e = events.recv().await.unwrap();
        assert_eq!(e.kind, kinds::RECORDING_DELETED);
        assert_eq!(e.payload["reason"], "retention");
        deleted.push(e.payload["recording_id"].as_str().unwrap().to_string());
    }
    deleted.sort();
    let mut want = vec![gone.to_string(), gone_no_file.to_string()];
    want.sort();
    assert_eq!(deleted, want);
    // A second pass finds nothing more.
    let n = trunkline::retention::retention_pass(&h.state.events, h.clock.as_ref(), &dir, 30)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_retention_job_runs_at_start_and_every_interval() {
    let h = harness().await;
    h.clock.advance(std::time::Duration::from_secs(40 * 86_400));
    let (first, _) = h.recording(t0(), Some(t0()), None).await;
    let mut events = h.state.events.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Short, so the test does not wait; nothing here depends on how long a pass takes.
    let interval = std::time::Duration::from_millis(20);
    let job = tokio::spawn(trunkline::retention::run_retention(
        h.state.events.clone(),
        h.state.clock.clone(),
        h.recordings_dir.clone(),
        30,
        interval,
        async {
            let _ = stop_rx.await;
        },
    ));
    let e = events.recv().await.unwrap();
    assert_eq!(e.payload["recording_id"], first.to_string());
    // One made old after the first pass goes at the next one.
    let (second, _) = h.recording(t0(), Some(t0()), None).await;
    let e = events.recv().await.unwrap();
    assert_eq!(e.payload["recording_id"], second.to_string());
    stop_tx.send(()).unwrap();
    job.await.unwrap();
}

#[tokio::test]
async fn openapi_lists_the_new_routes_and_tags() {
    let h = harness().await;
    let a = h.call("GET", "/v1/openapi.json", None, None).await;
    let doc = a.json();
    for p in [
        "/v1/conferences",
        "/v1/conferences/{id}",
        "/v1/conferences/{id}/participants",
        "/v1/conferences/{id}/participants/{call_id}",
        "/v1/conferences/{id}/end",
        "/v1/conferences/{id}/play",
        "/v1/conferences/{id}/recordings",
        "/v1/calls/{id}/bridge",
        "/v1/calls/{id}/recordings",
        "/v1/calls/{id}/play",
        "/v1/recordings",
        "/v1/recordings/{id}",
        "/v1/recordings/{id}/audio",
        "/v1/recordings/{id}/pause",
        "/v1/recordings/{id}/resume",
        "/v1/recordings/{id}/stop",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tags.contains(&"conferences") && tags.contains(&"recordings"),
        "{tags:?}"
    );
}
