//! Ring groups, voicemail and missed calls, end to end with real peers on loopback (issue 6).
//!
//! Members are baresip phones, registered agents (digest REGISTER; MD5, which baresip 1.0
//! needs) or static `sip:` URIs; callers are baresip phones playing a WAV. Events are read from
//! the webhook receiver (`status_callback` of the number: `call.*`, `call.missed`,
//! `voicemail.created`) and the follow-up URL (`followup.text`). Counts are asserted, never
//! timings; the delay from the caller's hang-up to the webhooks is printed.
//!
//! "Done when" items shown here:
//! - two agents register, both ring, the first to answer gets the call, the other is
//!   cancelled, the call is recorded (the recording's channels hold the caller's 440 Hz and the
//!   agent's 1 kHz): `registered_agents_ring_the_first_to_answer_gets_the_call_the_other_is_cancelled_and_it_is_recorded`
//!   (and with static members: `static_members_ring_the_first_to_answer_gets_the_call`;
//!   with SIPp as the caller, as the issue words it:
//!   `sipp_calls_the_number_both_registered_agents_ring_the_first_to_answer_gets_it_recorded`);
//! - nobody answers: voicemail, the caller's message is in the recording, exactly one
//!   `call.missed` and one text-back (`nobody_answers_the_caller_leaves_a_voicemail_missed_once_one_text`);
//! - the caller hangs up while it rings: one `call.missed` `caller-hangup`, and the same caller
//!   twice within the cool-down: two `call.missed`, one text
//!   (`caller_hangs_up_while_ringing_twice_two_missed_one_text`);
//! - kill -9 while ringing, restart: one `call.missed` `restart`; a second restart adds none
//!   (`kill_9_while_ringing_then_restarts_give_exactly_one_missed_call`);
//! - outside business hours the closed route runs (`outside_business_hours_the_closed_route_runs`).

mod common;

use common::api::request;
use common::audio;
use common::baresip::{Baresip, BaresipOptions};
use common::sipp::{Scenario, Sipp};
use common::webhook::{RecordedRequest, WebhookReceiver};
use common::{Server, ServerOptions, poll_until};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn events(hook: &WebhookReceiver, path: &str) -> Vec<Value> {
    hook.requests()
        .iter()
        .filter(|r| r.path == path)
        .filter_map(|r: &RecordedRequest| r.json().ok())
        .collect()
}

fn of_type(hook: &WebhookReceiver, path: &str, kind: &str) -> Vec<Value> {
    events(hook, path)
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// Waits until `n` events of `kind` arrived at `path`, then a little more to catch extras.
/// Returns them and when the `n`-th arrived.
fn wait_events(
    server: &Server,
    hook: &WebhookReceiver,
    path: &str,
    kind: &str,
    n: usize,
) -> (Vec<Value>, Instant) {
    let reached = poll_until(T, Duration::from_millis(5), || {
        (of_type(hook, path, kind).len() >= n).then(common::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "{n} {kind} never arrived at {path}: {:?}\n--- server ---\n{}",
            events(hook, path),
            server.log()
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    (of_type(hook, path, kind), reached)
}

/// A number table: route plus extra keys of the `[[number]]` (written after `route = `).
fn number(route: &str, hook: &WebhookReceiver, extra: &str) -> String {
    format!(
        "{route}\nstatus_callback = \"{}\"\nfollowup = {{ url = \"{}\", body = \"Sorry {{caller}}, we missed your call to {{number}} ({{reason}})\", cooldown_secs = 3600 }}\n{extra}",
        hook.url("/events"),
        hook.url("/sms")
    )
}

fn server_with(numbers: &[(&str, String)]) -> Server {
    let mut o = ServerOptions::default();
    for (n, r) in numbers {
        o = o.route(n, r);
    }
    Server::start_with(o)
}

fn tone_wav(dir: &Path, name: &str, hz: f64, secs: f64) -> std::path::PathBuf {
    let p = dir.join(name);
    audio::make_tone(&p, hz, secs, 0.5).expect("make tone");
    p
}

/// A server whose number `sales` rings the agents `alice` and `bob` (recorded), and the two
/// agents as baresip phones registered with digest auth (alice's microphone plays 1 kHz);
/// returns once `GET /v1/registrations` lists both. baresip 1.0 gives up on a 401 that offers
/// SHA-256, so the registrar offers MD5 only here.
fn registered_sales_group(tmp: &Path, hook: &WebhookReceiver) -> (Server, Baresip, Baresip) {
    let route = r#"{ action = "ring_group", members = ["alice", "bob"], timeout_secs = 30, record = true }"#;
    let mut o = ServerOptions::default()
        .agent("alice", "alice-pw")
        .agent("bob", "bob-pw")
        .route("sales", &number(route, hook, ""));
    o.server_extra = "[registrar]\nalgorithms = [\"MD5\"]\n".into();
    let server = Server::start_with(o);
    let key = server.api_key();
    let mic = tone_wav(tmp, "a.wav", 1000.0, 60.0);
    let alice = Baresip::start_with(
        BaresipOptions::new("alice", Some(&mic)).register(server.sip, "alice-pw", 600),
    )
    .expect("alice");
    let bob =
        Baresip::start_with(BaresipOptions::new("bob", None).register(server.sip, "bob-pw", 600))
            .expect("bob");
    assert!(
        server.wait_registrations(&key, 2, T),
        "agents did not register\n{}\n{}",
        server.log(),
        bob.output()
    );
    (server, alice, bob)
}

#[test]
fn registered_agents_ring_the_first_to_answer_gets_the_call_the_other_is_cancelled_and_it_is_recorded()
 {
    let tmp = tempfile::tempdir().expect("tmp");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let (server, mut alice, bob) = registered_sales_group(tmp.path(), &hook);
    let key = server.api_key();
    first_answer_wins(&server, &key, &hook, tmp.path(), &mut alice, &bob);
}

#[test]
fn static_members_ring_the_first_to_answer_gets_the_call() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let mut alice =
        Baresip::start("alice", Some(&tone_wav(tmp.path(), "a.wav", 1000.0, 60.0))).expect("alice");
    let bob = Baresip::start("bob", None).expect("bob");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\", \"{}\"], timeout_secs = 30, record = true }}",
        alice.uri(),
        bob.uri()
    );
    let server = server_with(&[("sales", number(&route, &hook, ""))]);
    let key = server.api_key();
    first_answer_wins(&server, &key, &hook, tmp.path(), &mut alice, &bob);
}

/// The issue's first item with SIPp as the caller: SIPp (`uac_echo.xml`: SIPp's A-law pcap as
/// its voice) calls `sales`; two registered baresip agents ring; alice (1 kHz) answers, bob is
/// cancelled; SIPp's call completes; the recording holds SIPp's audio on the left and alice's
/// 1 kHz on the right.
#[test]
fn sipp_calls_the_number_both_registered_agents_ring_the_first_to_answer_gets_it_recorded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let (server, mut alice, bob) = registered_sales_group(tmp.path(), &hook);
    let key = server.api_key();
    // The call lasts 5 s after the answer (the pause of uac_echo.xml), SIPp's pcap playing.
    let caller = Sipp::uac(Scenario::ours("uac_echo"), server.sip)
        .service("sales")
        .calls(Some(1))
        .pause(Duration::from_secs(5))
        .continue_on_unexpected()
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("sipp starts");
    alice.wait_incoming(1, T).expect("alice rings");
    bob.wait_incoming(1, T).expect("bob rings");
    alice.answer().expect("answer");
    alice.wait_established(1, T).expect("alice connected");
    bob.wait_for("session closed", 1, T)
        .expect("bob's ringing ends");
    assert_eq!(bob.count("Call established"), 0, "bob never got the call");
    let report = caller.wait();
    assert_eq!(
        report.successful,
        1,
        "SIPp's call completes: {report:?}\n{}",
        server.log()
    );
    alice.wait_closed(1, T).expect("alice gets the BYE");
    let rec = poll_until(T, Duration::from_millis(200), || {
        let r = request(server.http, "GET", "/v1/recordings", Some(&key), &[], None);
        r.json()["recordings"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["status"] == "completed").cloned())
    })
    .unwrap_or_else(|| panic!("no completed recording\n{}", server.log()));
    let audio = server.recording_wav(&key, rec["id"].as_str().unwrap());
    let left = audio::read_wav_channel(&audio, 0).expect("left");
    let right = audio::read_wav_channel(&audio, 1).expect("right");
    let mid = |a: &audio::Audio| {
        a.slice(a.duration_secs() * 0.3, a.duration_secs() * 0.7)
            .to_vec()
    };
    let left_db = audio::rms_dbfs(&mid(&left));
    let fr = audio::dominant_frequency(&mid(&right), 8_000);
    eprintln!(
        "recording {} ms: left (SIPp's pcap) {left_db:.1} dBFS, right {fr:?} Hz",
        rec["duration_ms"]
    );
    assert!(
        left_db > -45.0,
        "SIPp's audio is on the left: {left_db} dBFS"
    );
    assert!(
        fr.is_some_and(|f| (f - 1000.0).abs() < 15.0),
        "right {fr:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(of_type(&hook, "/events", "call.missed").is_empty());
}

/// A caller playing 440 Hz dials `sales`; both phones ring; alice (playing 1 kHz) answers;
/// bob is cancelled; the recording holds both sides; nothing is missed.
fn first_answer_wins(
    server: &Server,
    key: &str,
    hook: &WebhookReceiver,
    tmp: &Path,
    alice: &mut Baresip,
    bob: &Baresip,
) {
    let key = key.to_string();
    let mut caller =
        Baresip::start("caller", Some(&tone_wav(tmp, "c.wav", 440.0, 60.0))).expect("caller");
    caller
        .dial(&format!("sip:sales@{}", server.sip))
        .expect("dial");
    alice.wait_incoming(1, T).expect("alice rings");
    bob.wait_incoming(1, T).expect("bob rings");
    alice.answer().expect("answer");
    alice.wait_established(1, T).expect("alice connected");
    caller.wait_established(1, T).expect("caller connected");
    // Bob was cancelled (baresip reports a cancelled incoming call as "session closed").
    bob.wait_for("session closed", 1, T)
        .expect("bob's ringing ends");
    assert_eq!(bob.count("Call established"), 0, "bob never got the call");
    std::thread::sleep(Duration::from_secs(3));
    caller.hangup().expect("hang up");
    alice.wait_closed(1, T).expect("alice gets the BYE");
    // The call is recorded: a completed recording with the caller's 440 Hz on the left and
    // alice's 1 kHz on the right.
    let rec = poll_until(T, Duration::from_millis(200), || {
        let r = request(server.http, "GET", "/v1/recordings", Some(&key), &[], None);
        let list = r.json();
        list["recordings"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["status"] == "completed").cloned())
    })
    .unwrap_or_else(|| panic!("no completed recording\n{}", server.log()));
    assert!(rec["duration_ms"].as_u64().unwrap_or(0) >= 2_000, "{rec}");
    let audio = server.recording_wav(&key, rec["id"].as_str().unwrap());
    let left = audio::read_wav_channel(&audio, 0).expect("left");
    let right = audio::read_wav_channel(&audio, 1).expect("right");
    let mid = |a: &audio::Audio| {
        a.slice(a.duration_secs() * 0.3, a.duration_secs() * 0.7)
            .to_vec()
    };
    let fl = audio::dominant_frequency(&mid(&left), 8_000);
    let fr = audio::dominant_frequency(&mid(&right), 8_000);
    eprintln!("recording: left {fl:?} Hz, right {fr:?} Hz");
    assert!(fl.is_some_and(|f| (f - 440.0).abs() < 15.0), "left {fl:?}");
    assert!(
        fr.is_some_and(|f| (f - 1000.0).abs() < 15.0),
        "right {fr:?}"
    );
    // Not missed.
    std::thread::sleep(Duration::from_secs(1));
    assert!(of_type(hook, "/events", "call.missed").is_empty());
    assert!(events(hook, "/sms").is_empty());
}

#[test]
fn nobody_answers_the_caller_leaves_a_voicemail_missed_once_one_text() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let bob = Baresip::start("bob", None).expect("bob");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\"], timeout_secs = 3, on_no_answer = {{ action = \"voicemail\", max_secs = 60, silence_secs = 30 }} }}",
        bob.uri()
    );
    let server = server_with(&[("sales", number(&route, &hook, ""))]);
    let key = server.api_key();
    // The caller speaks (a 700 Hz "message") from the start; the beep comes after ~3 s of
    // ringing, so what is recorded is the message.
    let mut caller = Baresip::start("caller", Some(&tone_wav(tmp.path(), "m.wav", 700.0, 60.0)))
        .expect("caller");
    caller
        .dial(&format!("sip:sales@{}", server.sip))
        .expect("dial");
    bob.wait_incoming(1, T).expect("bob rings");
    bob.wait_for("session closed", 1, T)
        .expect("bob is cancelled at the group timeout");
    caller.wait_established(1, T).expect("voicemail answers");
    std::thread::sleep(Duration::from_secs(4));
    caller.hangup().expect("hang up");
    let hung_up = common::now();
    // When each first arrived (both watched in one loop), then the counts after a pause.
    let (mut missed_at, mut text_at) = (None, None);
    poll_until(T, Duration::from_millis(2), || {
        if missed_at.is_none() && !of_type(&hook, "/events", "call.missed").is_empty() {
            missed_at = Some(hung_up.elapsed());
        }
        if text_at.is_none() && !of_type(&hook, "/sms", "followup.text").is_empty() {
            text_at = Some(hung_up.elapsed());
        }
        (missed_at.is_some() && text_at.is_some()).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "call.missed or followup.text never arrived\n{}",
            server.log()
        )
    });
    eprintln!("after the caller's hang-up: call.missed {missed_at:?}, followup.text {text_at:?}");
    let (missed, _) = wait_events(&server, &hook, "/events", "call.missed", 1);
    let (texts, _) = wait_events(&server, &hook, "/sms", "followup.text", 1);
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(texts.len(), 1, "{texts:?}");
    let m = &missed[0]["payload"];
    assert_eq!(m["reason"], "no-answer", "{m}");
    assert_eq!(m["number"], "sales");
    let vm = m["voicemail_id"]
        .as_str()
        .expect("voicemail id")
        .to_string();
    assert!(
        texts[0]["payload"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("(no-answer)") && t.contains("sales")),
        "{}",
        texts[0]
    );
    let created = wait_events(&server, &hook, "/events", "voicemail.created", 1).0;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["payload"]["recording_id"], vm.as_str());
    // The recording holds the caller's message (700 Hz on the caller's channel).
    let wav = server.recording_wav(&key, &vm);
    let left = audio::read_wav_channel(&wav, 0).expect("left");
    eprintln!("voicemail: {:.2} s", left.duration_secs());
    assert!(left.duration_secs() >= 2.0, "{:.2} s", left.duration_secs());
    let f = audio::dominant_frequency(left.slice(0.5, left.duration_secs() - 0.5), 8_000);
    assert!(
        f.is_some_and(|f| (f - 700.0).abs() < 15.0),
        "message at {f:?} Hz"
    );
    // While it rang the caller heard ringback (early media): 440 + 480 Hz.
    caller
        .wait_for("terminate call", 1, T)
        .expect("the caller's call ends");
    let heard = poll_until(T, Duration::from_millis(100), || {
        caller
            .heard_wav()
            .and_then(|p| audio::read_wav_channel(&p, 0).ok())
            .filter(|a| a.duration_secs() > 2.0)
    })
    .expect("the caller's recording of what it heard");
    let ring = heard.slice(0.2, 1.6);
    let (p440, p480) = (
        audio::tone_power_ratio(ring, heard.rate, 440.0),
        audio::tone_power_ratio(ring, heard.rate, 480.0),
    );
    eprintln!("ringback heard: power share {p440:.2} at 440 Hz, {p480:.2} at 480 Hz");
    assert!(
        p440 + p480 > 0.6,
        "ringback: {p440:.2} at 440 Hz, {p480:.2} at 480 Hz"
    );
    // The API: missed call with a follow-up sent.
    let row = poll_until(T, Duration::from_millis(200), || {
        let r = request(
            server.http,
            "GET",
            "/v1/missed-calls",
            Some(&key),
            &[],
            None,
        );
        let j = r.json();
        let row = j["missed_calls"][0].clone();
        (row["followup_state"] == "sent").then_some(row)
    })
    .unwrap_or_else(|| panic!("follow-up never sent\n{}", server.log()));
    assert_eq!(row["voicemail_id"], vm.as_str());
    let r = request(
        server.http,
        "GET",
        "/v1/calls?direction=inbound&status=missed",
        Some(&key),
        &[],
        None,
    );
    assert_eq!(
        r.json()["calls"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
}

#[test]
fn caller_hangs_up_while_ringing_twice_two_missed_one_text() {
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let bob = Baresip::start("bob", None).expect("bob");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\"], timeout_secs = 60 }}",
        bob.uri()
    );
    let server = server_with(&[("sales", number(&route, &hook, ""))]);
    let mut caller = Baresip::start("caller", None).expect("caller");
    for n in 1..=2 {
        caller
            .dial(&format!("sip:sales@{}", server.sip))
            .expect("dial");
        bob.wait_incoming(n, T).expect("bob rings");
        std::thread::sleep(Duration::from_millis(500));
        caller.hangup().expect("hang up while ringing");
        bob.wait_for("session closed", n, T)
            .expect("bob is cancelled");
        caller
            .wait_for("terminate call", n, T)
            .expect("the caller's call ends");
    }
    let missed = wait_events(&server, &hook, "/events", "call.missed", 2).0;
    assert_eq!(missed.len(), 2, "{missed:?}");
    for m in &missed {
        assert_eq!(m["payload"]["reason"], "caller-hangup", "{m}");
    }
    let texts = wait_events(&server, &hook, "/sms", "followup.text", 1).0;
    assert_eq!(texts.len(), 1, "one text within the cool-down: {texts:?}");
    assert_eq!(missed[1]["payload"]["followup"]["reason"], "cooldown");
}

/// Two nodes on one PostgreSQL database: a node starting while the other's call rings leaves
/// that call alone (its sweeper decides only its own node's calls); the call then ends as the
/// caller hangs up and gets its one `call.missed`, reason `caller-hangup`.
#[test]
fn a_node_starting_leaves_another_nodes_ringing_call_and_room_alone() {
    let Some(base) = trunkline::store::testing::pg_base_url() else {
        eprintln!("skipped: TRUNKLINE_TEST_PG is not set");
        return;
    };
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(trunkline::store::testing::fresh_postgres_url(&base))
        .expect("a fresh PostgreSQL database");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let bob = Baresip::start("bob", None).expect("bob");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\"], timeout_secs = 60 }}",
        bob.uri()
    );
    let o = ServerOptions::default()
        .route("sales", &number(&route, &hook, ""))
        .database_url(&url);
    let a = Server::start_with(o.clone());
    let key = a.api_key();
    // A room open on node A (its start-up recovery must not end it either).
    let r = request(
        a.http,
        "POST",
        "/v1/conferences",
        Some(&key),
        &[],
        Some(r#"{"name": "standup"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let room = r.json()["id"].as_str().expect("room id").to_string();
    let mut caller = Baresip::start("caller", None).expect("caller");
    caller.dial(&format!("sip:sales@{}", a.sip)).expect("dial");
    bob.wait_incoming(1, T).expect("bob rings");
    // Node B starts on the same database while A's call rings.
    let b = Server::start_with(o);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        of_type(&hook, "/events", "call.missed").is_empty(),
        "node B decided node A's ringing call\n--- B ---\n{}",
        b.log()
    );
    // Asked of node B, which holds no such room: the answer is the stored row.
    let r = request(
        b.http,
        "GET",
        &format!("/v1/conferences/{room}"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(
        r.json()["status"],
        "ended",
        "node B ended node A's room: {}\n--- B ---\n{}",
        r.body,
        b.log()
    );
    caller.hangup().expect("hang up while ringing");
    let missed = wait_events(&a, &hook, "/events", "call.missed", 1).0;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0]["payload"]["reason"], "caller-hangup");
}

#[test]
fn kill_9_while_ringing_then_restarts_give_exactly_one_missed_call() {
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let bob = Baresip::start("bob", None).expect("bob");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\"], timeout_secs = 60 }}",
        bob.uri()
    );
    let mut server = server_with(&[("sales", number(&route, &hook, ""))]);
    let mut caller = Baresip::start("caller", None).expect("caller");
    caller
        .dial(&format!("sip:sales@{}", server.sip))
        .expect("dial");
    bob.wait_incoming(1, T).expect("bob rings");
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    server.restart();
    let missed = wait_events(&server, &hook, "/events", "call.missed", 1).0;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0]["payload"]["reason"], "restart");
    let texts = wait_events(&server, &hook, "/sms", "followup.text", 1).0;
    assert_eq!(texts.len(), 1);
    server.kill();
    server.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        of_type(&hook, "/events", "call.missed").len(),
        1,
        "nothing more"
    );
    assert_eq!(of_type(&hook, "/sms", "followup.text").len(), 1);
    let _ = caller.hangup();
}

#[test]
fn outside_business_hours_the_closed_route_runs() {
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let bob = Baresip::start("bob", None).expect("bob");
    // Open every day, but today is a holiday (in UTC): closed now, whatever the time.
    let today = trunkline::clock::Clock::utc(&trunkline::clock::SystemClock).format("%Y-%m-%d");
    let route = format!(
        "{{ action = \"ring_group\", members = [\"{}\"] }}",
        bob.uri()
    );
    let hours = format!(
        "hours = {{ timezone = \"UTC\", open = [\"mon-sun 00:00-24:00\"], holidays = [\"{today}\"], closed = {{ action = \"play\", prompt = \"tone\" }} }}"
    );
    let server = server_with(&[("sales", number(&route, &hook, &hours))]);
    let caller = {
        let mut c = Baresip::start("caller", None).expect("caller");
        c.dial(&format!("sip:sales@{}", server.sip)).expect("dial");
        c
    };
    caller
        .wait_established(1, T)
        .expect("the closed route answers");
    caller.wait_closed(1, T).expect("the tone ends the call");
    assert_eq!(
        bob.count("Incoming call from"),
        0,
        "the group does not ring"
    );
    let missed = wait_events(&server, &hook, "/events", "call.missed", 1).0;
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["payload"]["reason"], "closed");
}
