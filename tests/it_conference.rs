//! Conferences, mix-minus, roles, room flags and prompt playback, end to end with real
//! softphones.
//!
//! Issue 4, "Done when":
//! - Three parties in a conference each hear the other two and not themselves; a muted one is
//!   heard by nobody; a `coach` is heard by its target only; a `listen` participant hears
//!   everyone and is heard by nobody.
//! - A participant with `end_on_exit` hangs up: every other leg receives BYE within 1 s and the
//!   conference ends; until the `start_on_enter` participant joins, the first one hears wait
//!   music.
//! - Playback of one WAV, one MP3 and one FLAC prompt is heard by baresip at the right pitch and
//!   length (and a prompt played to a room is heard by every participant).
//!
//! Also the "Bad input" rules of the conference API (404, 409, 422).
//!
//! Each party is a baresip whose microphone plays its own tone (or silence); the server dials
//! every phone through a trunk of its own pointing at the phone's SIP address. Who hears whom
//! is judged from baresip's recording of what it heard, by the power of each party's tone over
//! the steady middle of a phase. A phase is placed in the recording from its end: every leg of
//! a room is hung up at once when the room ends, so the recording's last sample is (within a
//! jitter buffer) the moment the test ended the room; the margins around each phase are far
//! wider than that.

mod common;

use common::api::{HttpResponse, request};
use common::audio::{self, Audio};
use common::baresip::{Baresip, BaresipOptions};
use common::{Server, ServerOptions, poll_until};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Tones of the parties (far from each other and from their sums and differences).
const A_HZ: f64 = 440.0;
const B_HZ: f64 = 1000.0;
const C_HZ: f64 = 1700.0;
const D_HZ: f64 = 2300.0;
const E_HZ: f64 = 2900.0;
/// Amplitude of each microphone tone (of full scale): five together stay below full scale.
const MIC_GAIN: f64 = 0.2;
/// A party's tone heard at least this loud (dBFS) counts as heard (sent at about -17 dBFS).
const HEARD_DBFS: f64 = -30.0;
/// A party's tone quieter than this (dBFS) counts as not heard.
const NOT_HEARD_DBFS: f64 = -45.0;
/// Left out at each end of a phase before measuring it.
const MARGIN_SECS: f64 = 0.5;
/// How long each phase lasts.
const PHASE: Duration = Duration::from_millis(2_500);
/// Prompt fixtures (see `tests/fixtures/prompts/README.md`).
const WAV_PROMPT: &str = "tone440_16k_stereo.wav";
const MP3_PROMPT: &str = "tone1000_44k.mp3";
const FLAC_PROMPT: &str = "tone660_48k.flac";

// ---------------------------------------------------------------------------------------------
// Parties, server, API helpers

/// A phone answering by itself whose microphone plays `hz` (or silence) for 60 s.
fn phone(dir: &Path, user: &str, hz: Option<f64>) -> Baresip {
    let mic = hz.map(|hz| {
        let p = dir.join(format!("{user}.wav"));
        audio::make_tone(&p, hz, 60.0, MIC_GAIN).expect("microphone tone");
        p
    });
    let mut o = BaresipOptions::new(user, mic.as_deref());
    o.auto_answer = true;
    Baresip::start_with(o).expect("baresip starts")
}

/// A server with one trunk per phone, named after the phone's user, and the prompt fixtures.
fn server_for(phones: &[&Baresip]) -> Server {
    let mut o = ServerOptions::default();
    for p in phones {
        o = o.trunk(&p.user, SocketAddr::from(([127, 0, 0, 1], p.sip_port)));
    }
    let server = Server::start_with(o);
    for name in [WAV_PROMPT, MP3_PROMPT, FLAC_PROMPT] {
        std::fs::copy(
            common::tests_path(&format!("fixtures/prompts/{name}")),
            server.config_dir.join("prompts").join(name),
        )
        .expect("copy a prompt fixture");
    }
    server
}

fn api(server: &Server, key: &str, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    request(server.http, method, path, Some(key), &[], body)
}

fn expect_status(r: &HttpResponse, status: u16, what: &str, server: &Server) -> Value {
    assert_eq!(
        r.status,
        status,
        "{what}: {}\n--- server ---\n{}",
        r.body,
        server.log()
    );
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// `POST /v1/conferences` with `body`; returns the conference id.
fn create_conference(server: &Server, key: &str, body: &str) -> String {
    let r = api(server, key, "POST", "/v1/conferences", Some(body));
    let c = expect_status(&r, 201, "POST /v1/conferences", server);
    assert_eq!(c["status"], "waiting", "{c}");
    c["id"].as_str().expect("conference id").to_string()
}

/// Dials `phone` into the conference with extra participant options (`"muted": true, ...` or
/// empty); returns the new leg's call id.
fn dial_in(server: &Server, key: &str, conf: &str, phone: &Baresip, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    let body = format!(
        r#"{{"to": "{}", "trunk": "{}"{sep}{extra}}}"#,
        phone.uri(),
        phone.user
    );
    let r = api(
        server,
        key,
        "POST",
        &format!("/v1/conferences/{conf}/participants"),
        Some(&body),
    );
    let c = expect_status(&r, 201, "dial a participant", server);
    c["id"].as_str().expect("call id").to_string()
}

fn conference(server: &Server, key: &str, conf: &str) -> Value {
    let r = api(server, key, "GET", &format!("/v1/conferences/{conf}"), None);
    expect_status(&r, 200, "GET conference", server)
}

/// Waits until every call in `calls` is a participant; returns the moment it was seen.
fn wait_joined(server: &Server, key: &str, conf: &str, calls: &[&str]) -> Instant {
    poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let c = conference(server, key, conf);
        let ids: Vec<&str> = c["participants"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["call_id"].as_str()).collect())
            .unwrap_or_default();
        calls.iter().all(|id| ids.contains(id)).then(common::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "{calls:?} never all joined {conf}: {}\n--- server ---\n{}",
            conference(server, key, conf),
            server.log()
        )
    })
}

/// Ends the room through the API; returns the moment (the recordings' common end).
fn end_conference(server: &Server, key: &str, conf: &str) -> Instant {
    let r = api(
        server,
        key,
        "POST",
        &format!("/v1/conferences/{conf}/end"),
        None,
    );
    let at = common::now();
    let c = expect_status(&r, 200, "end conference", server);
    assert_eq!(c["status"], "ended", "{c}");
    at
}

/// What `phone` heard on its `n`-th (1-based) call, once that call has closed.
fn heard(phone: &Baresip, n: usize, server: &Server) -> Audio {
    phone
        .wait_closed(n, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{}: {e}\n--- server ---\n{}", phone.user, server.log()));
    let recs = phone.heard_recordings();
    let path = recs
        .get(n - 1)
        .unwrap_or_else(|| panic!("{}: no recording of call {n}: {recs:?}", phone.user));
    audio::read_wav(path).expect("read what baresip heard")
}

/// Seconds between two instants (`b` after `a`).
fn secs(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

/// The part of a recording that ended at `end` lying between `from` and `to` (test-side
/// instants), less [`MARGIN_SECS`] at each end.
fn phase(a: &Audio, end: Instant, from: Instant, to: Instant) -> &[i16] {
    let len = a.duration_secs();
    let start = len - secs(from, end) + MARGIN_SECS;
    let stop = len - secs(to, end) - MARGIN_SECS;
    assert!(
        start >= 0.0 && stop - start >= 0.8,
        "phase {start:.2}-{stop:.2} s does not fit a recording of {len:.2} s"
    );
    a.slice(start, stop)
}

/// Level of the `hz` component of `samples` in dBFS (a full-scale sine is -3 dBFS).
fn tone_dbfs(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let ratio = audio::tone_power_ratio(samples, rate, hz);
    let mean_sq = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len().max(1) as f64;
    10.0 * (ratio * mean_sq / (32768.0 * 32768.0)).max(1e-12).log10()
}

/// Asserts who is heard in `samples` (what `who` heard): each of `heard` loud enough, each of
/// `not_heard` (its own tone among them) below the floor. Returns a line for the report.
fn judge(who: &str, samples: &[i16], heard: &[(&str, f64)], not_heard: &[(&str, f64)]) -> String {
    let rate = 8_000;
    let mut line = format!("{who} heard:");
    for (name, hz) in heard.iter().chain(not_heard) {
        line.push_str(&format!(" {name}={:.1}", tone_dbfs(samples, rate, *hz)));
    }
    for (name, hz) in heard {
        let l = tone_dbfs(samples, rate, *hz);
        assert!(
            l > HEARD_DBFS,
            "{who} should hear {name} ({hz} Hz) but it is at {l:.1} dBFS ({line})"
        );
    }
    for (name, hz) in not_heard {
        let l = tone_dbfs(samples, rate, *hz);
        assert!(
            l < NOT_HEARD_DBFS,
            "{who} should not hear {name} ({hz} Hz) but it is at {l:.1} dBFS ({line})"
        );
    }
    eprintln!("{line} (dBFS)");
    line
}

/// Every event so far (read from the start of the log over SSE) once `done` holds for them;
/// panics after `timeout`.
fn events_until(
    server: &Server,
    key: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n",
        server.http
    );
    s.write_all(req.as_bytes()).expect("send");
    let deadline = common::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16_384];
    let mut events = Vec::new();
    loop {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            events = String::from_utf8_lossy(&raw)
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .collect();
            if done(&events) {
                return events;
            }
        }
        if common::now() >= deadline {
            break;
        }
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    panic!(
        "the awaited events did not arrive within {timeout:?}; got {kinds:?}\n--- server ---\n{}",
        server.log()
    );
}

fn has_event(events: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) -> bool {
    events.iter().any(|e| e["type"] == kind && pred(e))
}

// ---------------------------------------------------------------------------------------------
// 1. Mix-minus

#[test]
fn three_parties_each_hear_the_other_two_and_not_themselves() {
    let dir = tempfile::tempdir().expect("tmp");
    let pa = phone(dir.path(), "a", Some(A_HZ));
    let pb = phone(dir.path(), "b", Some(B_HZ));
    let pc = phone(dir.path(), "c", Some(C_HZ));
    let server = server_for(&[&pa, &pb, &pc]);
    let key = server.api_key();
    let conf = create_conference(&server, &key, r#"{"name": "mix-minus"}"#);
    let a = dial_in(&server, &key, &conf, &pa, "");
    let b = dial_in(&server, &key, &conf, &pb, "");
    let c = dial_in(&server, &key, &conf, &pc, "");
    let joined = wait_joined(&server, &key, &conf, &[&a, &b, &c]);
    let room = conference(&server, &key, &conf);
    assert_eq!(room["status"], "active", "{room}");
    // The call rows learn their room through the store writer (eventually, not at once).
    for id in [&a, &b, &c] {
        poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            (server.call(&key, id)["conference_id"] == conf.as_str()).then_some(())
        })
        .unwrap_or_else(|| panic!("call {id} row never got conference_id {conf}"));
    }
    std::thread::sleep(PHASE);
    let end = end_conference(&server, &key, &conf);

    let (ha, hb, hc) = (
        heard(&pa, 1, &server),
        heard(&pb, 1, &server),
        heard(&pc, 1, &server),
    );
    let (ta, tb, tc) = (("A", A_HZ), ("B", B_HZ), ("C", C_HZ));
    judge("A", phase(&ha, end, joined, end), &[tb, tc], &[ta]);
    judge("B", phase(&hb, end, joined, end), &[ta, tc], &[tb]);
    judge("C", phase(&hc, end, joined, end), &[ta, tb], &[tc]);
}

// ---------------------------------------------------------------------------------------------
// 2. Mute, coach, listen

#[test]
fn muted_is_heard_by_nobody_coach_only_by_its_target_listen_hears_all_and_is_heard_by_none() {
    let dir = tempfile::tempdir().expect("tmp");
    let pa = phone(dir.path(), "a", Some(A_HZ));
    let pb = phone(dir.path(), "b", Some(B_HZ));
    let pm = phone(dir.path(), "m", Some(C_HZ));
    let pk = phone(dir.path(), "k", Some(D_HZ));
    let pl = phone(dir.path(), "l", Some(E_HZ));
    let server = server_for(&[&pa, &pb, &pm, &pk, &pl]);
    let key = server.api_key();
    let conf = create_conference(&server, &key, r#"{"name": "roles"}"#);
    let a = dial_in(&server, &key, &conf, &pa, "");
    let b = dial_in(&server, &key, &conf, &pb, "");
    // The coach's target must be in the room when the coach is dialled.
    wait_joined(&server, &key, &conf, &[&a]);
    let m = dial_in(&server, &key, &conf, &pm, r#""muted": true"#);
    let k = dial_in(
        &server,
        &key,
        &conf,
        &pk,
        &format!(r#""role": "coach", "coach_target": "{a}""#),
    );
    let l = dial_in(&server, &key, &conf, &pl, r#""role": "listen""#);
    let joined = wait_joined(&server, &key, &conf, &[&a, &b, &m, &k, &l]);
    let room = conference(&server, &key, &conf);
    let state = |id: &str| {
        room["participants"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["call_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(state(&m)["muted"], true, "{room}");
    assert_eq!(state(&k)["role"], "coach", "{room}");
    assert_eq!(state(&k)["coach_target"], a.as_str(), "{room}");
    assert_eq!(state(&l)["role"], "listen", "{room}");
    std::thread::sleep(PHASE);

    // The API changes a participant live: M is unmuted.
    let r = api(
        &server,
        &key,
        "PATCH",
        &format!("/v1/conferences/{conf}/participants/{m}"),
        Some(r#"{"muted": false}"#),
    );
    let patched = common::now();
    let p = expect_status(&r, 200, "PATCH participant", &server);
    assert_eq!(p["muted"], false, "{p}");
    std::thread::sleep(PHASE);
    let end = end_conference(&server, &key, &conf);

    let h: Vec<Audio> = [&pa, &pb, &pm, &pk, &pl]
        .iter()
        .map(|p| heard(p, 1, &server))
        .collect();
    let (ta, tb, tm, tk, tl) = (
        ("A", A_HZ),
        ("B", B_HZ),
        ("M", C_HZ),
        ("K", D_HZ),
        ("L", E_HZ),
    );
    // M muted: heard by nobody, hears A and B. K coaches A: heard by A only, hears A and B.
    // L listens: hears A and B, heard by nobody.
    let p1 = |i: usize| phase(&h[i], end, joined, patched);
    judge("A (muted M)", p1(0), &[tb, tk], &[ta, tm, tl]);
    judge("B (muted M)", p1(1), &[ta], &[tb, tm, tk, tl]);
    judge("M (muted M)", p1(2), &[ta, tb], &[tm, tk, tl]);
    judge("K (muted M)", p1(3), &[ta, tb], &[tk, tm, tl]);
    judge("L (muted M)", p1(4), &[ta, tb], &[tl, tm, tk]);
    // After the PATCH, M is heard by everyone but itself (the coach and listener included).
    let p2 = |i: usize| phase(&h[i], end, patched, end);
    judge("A (M unmuted)", p2(0), &[tb, tk, tm], &[ta, tl]);
    judge("B (M unmuted)", p2(1), &[ta, tm], &[tb, tk, tl]);
    judge("M (M unmuted)", p2(2), &[ta, tb], &[tm, tk, tl]);
    judge("K (M unmuted)", p2(3), &[ta, tb, tm], &[tk, tl]);
    judge("L (M unmuted)", p2(4), &[ta, tb, tm], &[tl, tk]);

    let events = events_until(&server, &key, Duration::from_secs(10), |ev| {
        has_event(ev, "conference.participant.unmuted", |_| true)
            && has_event(ev, "conference.ended", |_| true)
    });
    let joins = events
        .iter()
        .filter(|e| e["type"] == "conference.participant.joined")
        .count();
    assert_eq!(joins, 5, "{events:#?}");
}

// ---------------------------------------------------------------------------------------------
// 3. end_on_exit

fn utc(v: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{field} is not RFC 3339 ({e}): {v}"))
}

#[test]
fn end_on_exit_participant_hanging_up_ends_the_room_and_every_leg() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut pa = phone(dir.path(), "a", Some(A_HZ));
    let pb = phone(dir.path(), "b", Some(B_HZ));
    let pc = phone(dir.path(), "c", Some(C_HZ));
    let server = server_for(&[&pa, &pb, &pc]);
    let key = server.api_key();
    let conf = create_conference(&server, &key, r#"{"name": "end-on-exit"}"#);
    let a = dial_in(&server, &key, &conf, &pa, r#""end_on_exit": true"#);
    let b = dial_in(&server, &key, &conf, &pb, "");
    let c = dial_in(&server, &key, &conf, &pc, "");
    wait_joined(&server, &key, &conf, &[&a, &b, &c]);

    // A hangs up (baresip sends BYE): B and C receive BYE.
    // A short conversation first: baresip 1.0 does not tear down (nor report) a call ended
    // within about a second of its start.
    std::thread::sleep(Duration::from_millis(1_500));
    pa.hangup().expect("hang up A");
    pa.wait_closed(1, Duration::from_secs(10))
        .expect("A hung up");
    for p in [&pb, &pc] {
        p.wait_closed(1, Duration::from_secs(10))
            .unwrap_or_else(|e| {
                panic!(
                    "{} was not hung up: {e}\n--- server ---\n{}",
                    p.user,
                    server.log()
                )
            });
    }
    let ca = server.wait_final(&key, &a);
    let cb = server.wait_final(&key, &b);
    let cc = server.wait_final(&key, &c);
    assert_eq!(ca["ended_by"], "callee", "{ca}");
    let a_end = utc(&ca, "ended_at");
    for row in [&cb, &cc] {
        let ms = (utc(row, "ended_at") - a_end).num_milliseconds();
        eprintln!("{} ended {ms} ms after A", row["id"]);
        assert!(
            (0..=1_000).contains(&ms),
            "leg ended {ms} ms after A: {row}\nA: {ca}"
        );
        assert_eq!(row["final_status"], "completed", "{row}");
    }

    let room = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let r = conference(&server, &key, &conf);
        (r["status"] == "ended").then_some(r)
    })
    .unwrap_or_else(|| panic!("{conf} did not end\n--- server ---\n{}", server.log()));
    assert_eq!(room["end_reason"], "end_on_exit", "{room}");
    assert_eq!(room["participants"], serde_json::json!([]), "{room}");
    let events = events_until(&server, &key, Duration::from_secs(10), |ev| {
        has_event(ev, "conference.ended", |e| {
            e["payload"]["conference_id"] == conf.as_str()
        })
    });
    let ended = events
        .iter()
        .find(|e| e["type"] == "conference.ended")
        .expect("conference.ended");
    eprintln!("{ended}");
}

// ---------------------------------------------------------------------------------------------
// 4. start_on_enter and wait music

#[test]
fn first_participant_hears_wait_music_until_a_start_on_enter_participant_joins() {
    let dir = tempfile::tempdir().expect("tmp");
    let pa = phone(dir.path(), "a", Some(A_HZ));
    let pb = phone(dir.path(), "b", Some(B_HZ));
    let server = server_for(&[&pa, &pb]);
    let key = server.api_key();
    let conf = create_conference(
        &server,
        &key,
        &format!(r#"{{"name": "waiting", "wait_music": "{FLAC_PROMPT}"}}"#),
    );
    let a = dial_in(&server, &key, &conf, &pa, r#""start_on_enter": false"#);
    let a_joined = wait_joined(&server, &key, &conf, &[&a]);
    assert_eq!(conference(&server, &key, &conf)["status"], "waiting");
    std::thread::sleep(PHASE);
    let b = dial_in(&server, &key, &conf, &pb, "");
    let b_joined = wait_joined(&server, &key, &conf, &[&b]);
    let room = conference(&server, &key, &conf);
    assert_eq!(room["status"], "active", "{room}");
    assert!(room["started_at"].is_string(), "{room}");
    std::thread::sleep(PHASE);
    let end = end_conference(&server, &key, &conf);

    let ha = heard(&pa, 1, &server);
    let music = ("wait music", 660.0);
    let (ta, tb) = (("A", A_HZ), ("B", B_HZ));
    judge(
        "A (waiting)",
        phase(&ha, end, a_joined, b_joined),
        &[music],
        &[ta],
    );
    judge(
        "A (started)",
        phase(&ha, end, b_joined, end),
        &[tb],
        &[ta, music],
    );
    let hb = heard(&pb, 1, &server);
    judge(
        "B (started)",
        phase(&hb, end, b_joined, end),
        &[ta],
        &[tb, music],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Playback of WAV, MP3 and FLAC prompts

/// Where each of `tones` is heard in `a`: for each, (onset, duration, pitch) of the span of
/// 10 ms windows louder than -30 dBFS whose strongest of `tones` is that one.
fn tone_spans(a: &Audio, tones: &[f64]) -> Vec<Option<(f64, f64, f64)>> {
    let win = (a.rate / 100) as usize;
    let class: Vec<Option<usize>> = a
        .samples
        .chunks(win)
        .map(|c| {
            if c.len() < win || audio::rms_dbfs(c) < -30.0 {
                return None;
            }
            let ratios: Vec<f64> = tones
                .iter()
                .map(|&hz| audio::tone_power_ratio(c, a.rate, hz))
                .collect();
            let (i, r) = ratios
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))?;
            (*r > 0.3).then_some(i)
        })
        .collect();
    let w = win as f64 / f64::from(a.rate);
    (0..tones.len())
        .map(|i| {
            let first = class.iter().position(|c| *c == Some(i))?;
            let last = class.iter().rposition(|c| *c == Some(i))?;
            let (onset, dur) = (first as f64 * w, (last + 1 - first) as f64 * w);
            let pitch = audio::dominant_frequency(a.slice(onset + 0.1, onset + dur - 0.1), a.rate)?;
            Some((onset, dur, pitch))
        })
        .collect()
}

fn play_finished(events: &[Value], prompt: &str) -> bool {
    has_event(events, "play.finished", |e| {
        e["payload"]["prompt"]
            .as_str()
            .is_some_and(|p| p.starts_with(prompt.split('.').next().unwrap_or(prompt)))
    })
}

#[test]
fn wav_mp3_and_flac_prompts_are_heard_at_their_pitch_and_length() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = phone(dir.path(), "p", None);
    let server = server_for(&[&p]);
    let key = server.api_key();
    let r = api(
        &server,
        &key,
        "POST",
        "/v1/calls",
        Some(&format!(r#"{{"to": "{}", "trunk": "p"}}"#, p.uri())),
    );
    let id = expect_status(&r, 201, "POST /v1/calls", &server)["id"]
        .as_str()
        .expect("id")
        .to_string();
    server.wait_status(&key, &id, "in-progress");
    // One after the other: each played to its end (play.finished) before the next.
    for prompt in [WAV_PROMPT, MP3_PROMPT, FLAC_PROMPT] {
        let r = api(
            &server,
            &key,
            "POST",
            &format!("/v1/calls/{id}/play"),
            Some(&format!(r#"{{"prompt": "{prompt}"}}"#)),
        );
        expect_status(&r, 202, "play", &server);
        events_until(&server, &key, Duration::from_secs(10), |ev| {
            play_finished(ev, prompt)
        });
    }
    server.hangup(&key, &id);
    let h = heard(&p, 1, &server);
    let events = events_until(&server, &key, Duration::from_secs(10), |ev| {
        play_finished(ev, FLAC_PROMPT)
    });
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["call_id"] == id.as_str()
                && e["type"].as_str().is_some_and(|t| t.starts_with("play."))
        })
        .collect();
    assert_eq!(ours.len(), 6, "{ours:#?}");
    for (i, e) in ours.iter().enumerate() {
        let want = if i % 2 == 0 {
            "play.started"
        } else {
            "play.finished"
        };
        assert_eq!(e["type"], want, "{ours:#?}");
    }

    let spans = tone_spans(&h, &[440.0, 1000.0, 660.0]);
    let mut last_onset = -1.0;
    for ((name, hz, extra), span) in [
        (WAV_PROMPT, 440.0, 0.0),
        // MP3 without gapless information decodes up to ~70 ms longer (see the fixtures README).
        (MP3_PROMPT, 1000.0, 0.07),
        (FLAC_PROMPT, 660.0, 0.0),
    ]
    .into_iter()
    .zip(spans)
    {
        let (onset, dur, pitch) = span.unwrap_or_else(|| {
            panic!(
                "{name} ({hz} Hz) not heard; spans {:?}",
                tone_spans(&h, &[440.0, 1000.0, 660.0])
            )
        });
        eprintln!("{name}: heard from {onset:.3} s for {dur:.3} s at {pitch:.1} Hz");
        assert!(
            (pitch - hz).abs() <= 10.0,
            "{name}: {pitch:.1} Hz, want {hz}"
        );
        assert!(
            dur >= 1.0 - 0.06 && dur <= 1.0 + 0.06 + extra,
            "{name}: heard for {dur:.3} s, want 1 s"
        );
        assert!(onset > last_onset, "{name} heard out of order");
        last_onset = onset;
    }
}

#[test]
fn prompt_played_to_a_conference_is_heard_by_every_participant() {
    let dir = tempfile::tempdir().expect("tmp");
    let pa = phone(dir.path(), "a", None);
    let pb = phone(dir.path(), "b", None);
    let server = server_for(&[&pa, &pb]);
    let key = server.api_key();
    let conf = create_conference(&server, &key, r#"{"name": "announce"}"#);
    let a = dial_in(&server, &key, &conf, &pa, "");
    let b = dial_in(&server, &key, &conf, &pb, "");
    wait_joined(&server, &key, &conf, &[&a, &b]);
    let r = api(
        &server,
        &key,
        "POST",
        &format!("/v1/conferences/{conf}/play"),
        Some(&format!(r#"{{"prompt": "{FLAC_PROMPT}"}}"#)),
    );
    expect_status(&r, 202, "room play", &server);
    let events = events_until(&server, &key, Duration::from_secs(10), |ev| {
        play_finished(ev, FLAC_PROMPT)
    });
    let started = events
        .iter()
        .find(|e| e["type"] == "play.started")
        .expect("play.started");
    assert_eq!(
        started["payload"]["conference_id"],
        conf.as_str(),
        "{started}"
    );
    end_conference(&server, &key, &conf);
    for p in [&pa, &pb] {
        let h = heard(p, 1, &server);
        let (onset, dur, pitch) = tone_spans(&h, &[660.0])[0]
            .unwrap_or_else(|| panic!("{} did not hear the room prompt", p.user));
        eprintln!(
            "{}: room prompt from {onset:.3} s for {dur:.3} s at {pitch:.1} Hz",
            p.user
        );
        assert!((pitch - 660.0).abs() <= 10.0, "{}: {pitch:.1} Hz", p.user);
        assert!((dur - 1.0).abs() <= 0.06, "{}: {dur:.3} s", p.user);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input

fn assert_error(r: &HttpResponse, status: u16, what: &str, needle: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(
        r.body.contains(needle),
        "{what}: the error should name {needle:?}: {}",
        r.body
    );
}

#[test]
fn conference_api_rejects_full_rooms_bad_roles_missing_prompts_and_unknown_ids() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = phone(dir.path(), "p", None);
    let server = server_for(&[&p]);
    let key = server.api_key();
    let unknown = "01890000-0000-7000-8000-000000000000";
    let full = create_conference(&server, &key, r#"{"max_participants": 1}"#);
    let pc = dial_in(&server, &key, &full, &p, "");
    wait_joined(&server, &key, &full, &[&pc]);
    let open = create_conference(&server, &key, "{}");
    let dial = |conf: &str, extra: &str| {
        api(
            &server,
            &key,
            "POST",
            &format!("/v1/conferences/{conf}/participants"),
            Some(&format!(r#"{{"to": "+15550001111", "trunk": "p"{extra}}}"#)),
        )
    };

    // Full: 409 (dialling, and moving a live call in).
    assert_error(&dial(&full, ""), 409, "join a full room", "");
    // Invalid role; coach target not in the room (at the join and by PATCH): 422.
    assert_error(&dial(&open, r#", "role": "boss""#), 422, "bad role", "role");
    let r = dial(
        &open,
        &format!(r#", "role": "coach", "coach_target": "{pc}""#),
    );
    assert_error(&r, 422, "coach target elsewhere", "coach_target");
    let r = dial(&open, r#", "role": "coach""#);
    assert_error(&r, 422, "coach without target", "coach_target");
    let r = api(
        &server,
        &key,
        "PATCH",
        &format!("/v1/conferences/{full}/participants/{pc}"),
        Some(&format!(
            r#"{{"role": "coach", "coach_target": "{unknown}"}}"#
        )),
    );
    assert_error(&r, 422, "PATCH coach target not in the room", "");
    let r = api(
        &server,
        &key,
        "PATCH",
        &format!("/v1/conferences/{full}/participants/{pc}"),
        Some(r#"{"role": "chief"}"#),
    );
    assert_error(&r, 422, "PATCH bad role", "role");
    // A missing prompt: 422 naming it.
    let r = api(
        &server,
        &key,
        "POST",
        "/v1/conferences",
        Some(r#"{"wait_music": "no-such-music"}"#),
    );
    assert_error(&r, 422, "missing wait music", "no-such-music");
    let r = api(
        &server,
        &key,
        "POST",
        "/v1/conferences",
        Some(r#"{"hold_music": "no-such-hold.mp3"}"#),
    );
    assert_error(&r, 422, "missing hold music", "no-such-hold.mp3");
    let r = api(
        &server,
        &key,
        "POST",
        &format!("/v1/conferences/{full}/play"),
        Some(r#"{"prompt": "no-such-prompt.flac"}"#),
    );
    assert_error(&r, 422, "missing room prompt", "no-such-prompt.flac");
    let r = api(
        &server,
        &key,
        "POST",
        &format!("/v1/calls/{pc}/play"),
        Some(r#"{"prompt": "no-such-prompt.wav"}"#),
    );
    assert_error(&r, 422, "missing call prompt", "no-such-prompt.wav");
    // Unknown ids: 404.
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("GET", format!("/v1/conferences/{unknown}"), None),
        (
            "POST",
            format!("/v1/conferences/{unknown}/participants"),
            Some(r#"{"to": "+15550001111", "trunk": "p"}"#.into()),
        ),
        (
            "POST",
            format!("/v1/conferences/{open}/participants"),
            Some(format!(r#"{{"call_id": "{unknown}"}}"#)),
        ),
        (
            "PATCH",
            format!("/v1/conferences/{full}/participants/{unknown}"),
            Some(r#"{"muted": true}"#.into()),
        ),
        (
            "PATCH",
            format!("/v1/conferences/{unknown}/participants/{pc}"),
            Some(r#"{"muted": true}"#.into()),
        ),
        (
            "DELETE",
            format!("/v1/conferences/{full}/participants/{unknown}"),
            None,
        ),
        ("POST", format!("/v1/conferences/{unknown}/end"), None),
        (
            "POST",
            format!("/v1/conferences/{unknown}/play"),
            Some(r#"{"prompt": "tone"}"#.into()),
        ),
        ("DELETE", format!("/v1/conferences/{unknown}/play"), None),
        (
            "POST",
            format!("/v1/calls/{unknown}/bridge"),
            Some(format!(r#"{{"call_id": "{pc}"}}"#)),
        ),
    ];
    for (method, path, body) in &cases {
        let r = api(&server, &key, method, path, body.as_deref());
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "not_found", "{method} {path}");
    }
    // The room is unharmed: still one participant, still live.
    let room = conference(&server, &key, &full);
    assert_eq!(
        room["participants"].as_array().map(Vec::len),
        Some(1),
        "{room}"
    );
    end_conference(&server, &key, &full);
    // The phone received BYE (baresip 1.0 prints "session closed" for it; it may not tear down
    // and report a call this short as "terminated").
    p.wait_for("session closed", 1, Duration::from_secs(10))
        .expect("hung up");
    // An ended room: 409 to join or end it again.
    assert_error(&dial(&full, ""), 409, "join an ended room", "");
    let r = api(
        &server,
        &key,
        "POST",
        &format!("/v1/conferences/{full}/end"),
        None,
    );
    assert_error(&r, 409, "end an ended room", "");
}
