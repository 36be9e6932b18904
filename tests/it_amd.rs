//! Answering-machine detection on live calls, end to end with a real softphone.
//!
//! Issue 3, "Done when":
//! - trunkline calls a baresip whose microphone plays a voicemail greeting ending in a beep;
//!   the call gets `machine_end_beep` (webhook `amd.completed`), and the voicemail-drop prompt
//!   (a 440 Hz tone) is in baresip's recording of what it heard, starting after the beep ended
//!   and not before.
//! - A baresip that says "Hello?" and waits gets `human`, stays connected, and the webhook
//!   carries the verdict (asynchronous AMD with `on_machine: hangup`: a person is never hung
//!   up on).
//! - Asynchronous AMD on a call that is bridged at once still delivers its verdict.
//!
//! The trunk points at baresip's SIP address and the call is addressed to its account URI;
//! baresip answers by itself. Test audio is made here with espeak-ng and sox.

mod common;

use common::api::request;
use common::audio;
use common::baresip::{Baresip, BaresipOptions};
use common::webhook::{RecordedRequest, WebhookReceiver};
use common::{Server, ServerOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Silence between the end of the spoken greeting and the beep, seconds.
const GAP_SECS: f64 = 0.6;
/// Beep length, seconds.
const BEEP_SECS: f64 = 0.4;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} did not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speaks `text` into an 8 kHz 16-bit mono WAV; returns its length in seconds.
fn speak(dir: &Path, name: &str, text: &str) -> (std::path::PathBuf, f64) {
    let raw = dir.join(format!("{name}-raw.wav"));
    let out = dir.join(format!("{name}.wav"));
    run(
        "espeak-ng",
        &[
            "-v",
            "en-us",
            "-s",
            "170",
            "-w",
            &raw.display().to_string(),
            text,
        ],
    );
    run(
        "sox",
        &[
            &raw.display().to_string(),
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            &out.display().to_string(),
        ],
    );
    let secs = audio::read_wav(&out).expect("read speech").duration_secs();
    (out, secs)
}

fn concat(parts: &[&Path], out: &Path) {
    let mut args: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
    args.push(out.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run("sox", &refs);
}

/// The greeting: speech, a pause, a 1 kHz beep, then 30 s of silence (baresip ends the call
/// when its microphone file ends). Returns the path and the beep's end time in seconds.
fn voicemail_greeting(dir: &Path) -> (std::path::PathBuf, f64) {
    let (speech, speech_secs) = speak(
        dir,
        "greeting",
        "Hi, you have reached Alex. I can't take your call right now. Please leave a message after the tone.",
    );
    let gap = dir.join("gap.wav");
    let beep = dir.join("beep.wav");
    let tail = dir.join("tail.wav");
    audio::make_silence(&gap, GAP_SECS).expect("gap");
    audio::make_tone(&beep, 1000.0, BEEP_SECS, 0.5).expect("beep");
    audio::make_silence(&tail, 30.0).expect("tail");
    let out = dir.join("voicemail.wav");
    concat(&[&speech, &gap, &beep, &tail], &out);
    (out, speech_secs + GAP_SECS + BEEP_SECS)
}

fn server_calling(phone: &Baresip) -> Server {
    let o = ServerOptions::default().trunk(
        "phone",
        std::net::SocketAddr::from(([127, 0, 0, 1], phone.sip_port)),
    );
    Server::start_with(o)
}

fn phone_playing(mic: &Path) -> Baresip {
    let mut o = BaresipOptions::new("vm", Some(mic));
    o.auto_answer = true;
    Baresip::start_with(o).expect("baresip starts")
}

fn place_call(server: &Server, key: &str, body: &str) -> String {
    let r = request(server.http, "POST", "/v1/calls", Some(key), &[], Some(body));
    assert_eq!(
        r.status,
        201,
        "POST /v1/calls: {}\n--- server ---\n{}",
        r.body,
        server.log()
    );
    r.json()["id"].as_str().expect("id").to_string()
}

/// The first `amd.completed` webhook, waiting up to `timeout`.
fn amd_completed(hook: &WebhookReceiver, timeout: Duration) -> Option<serde_json::Value> {
    common::poll_until(timeout, Duration::from_millis(100), || {
        hook.requests()
            .iter()
            .filter_map(|r: &RecordedRequest| r.json().ok())
            .find(|j| j["type"] == "amd.completed")
    })
}

/// Start time (seconds) of the first 20 ms window, followed by four more, that holds a clean
/// tone at `freq_hz` above -40 dBFS.
fn tone_onset(a: &audio::Audio, freq_hz: f64) -> Option<f64> {
    let win = (a.rate / 50) as usize;
    let hits: Vec<bool> = a
        .samples
        .chunks(win)
        .map(|c| {
            c.len() == win
                && audio::rms_dbfs(c) > -40.0
                && audio::tone_power_ratio(c, a.rate, freq_hz) > 0.6
        })
        .collect();
    let first = hits.windows(5).position(|w| w.iter().all(|&h| h))?;
    Some(first as f64 * win as f64 / f64::from(a.rate))
}

#[test]
fn voicemail_greeting_with_beep_gets_machine_end_beep_and_the_drop_starts_after_the_beep() {
    let dir = tempfile::tempdir().expect("tmp");
    let (greeting, beep_end) = voicemail_greeting(dir.path());
    let mut phone = phone_playing(&greeting);
    let server = server_calling(&phone);
    audio::make_tone(
        &server.config_dir.join("prompts/vm440.wav"),
        440.0,
        2.0,
        0.5,
    )
    .expect("prompt");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let key = server.api_key();
    let body = format!(
        r#"{{"to": "{}", "trunk": "phone", "status_callback": "{}",
            "amd": {{"on_machine": "voicemail_drop", "voicemail_prompt": "vm440"}}}}"#,
        phone.uri(),
        hook.url("/hook")
    );
    let id = place_call(&server, &key, &body);

    let verdict = amd_completed(&hook, Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "no amd.completed webhook: {:#?}\n--- server ---\n{}",
            hook.requests().iter().map(|r| r.text()).collect::<Vec<_>>(),
            server.log()
        )
    });
    let p = &verdict["payload"];
    assert_eq!(p["answered_by"], "machine_end_beep", "{verdict}");
    assert_eq!(verdict["call_id"], id.as_str());
    let beep_ms = p["beep_ms"].as_f64().expect("beep_ms");
    assert!(
        (beep_ms / 1000.0 - (beep_end - BEEP_SECS)).abs() < 0.3,
        "beep heard at {beep_ms} ms, played at {:.3} s",
        beep_end - BEEP_SECS
    );

    // The drop plays (2 s) and trunkline hangs up.
    phone
        .wait_closed(1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("call not closed: {e}\n--- server ---\n{}", server.log()));
    let c = common::poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let c = server.call(&key, &id);
        c["final_status"].is_string().then_some(c)
    })
    .expect("call ended");
    assert_eq!(c["final_status"], "completed", "{c}");
    assert_eq!(c["end_reason"], "voicemail dropped", "{c}");
    // The verdict and its times are on the call row.
    assert_eq!(c["amd"]["result"], "machine_end_beep", "{c}");
    assert_eq!(c["amd"]["decision_ms"], p["decision_ms"], "{c}");
    assert_eq!(c["amd"]["beep_ms"], p["beep_ms"], "{c}");
    assert_eq!(c["amd"]["drop_ms"], p["message_start_ms"], "{c}");
    // Synchronous AMD: `call.answered` is published with the verdict, after `amd.completed`,
    // and its row already carries the verdict.
    let kinds: Vec<(String, serde_json::Value)> = hook
        .requests()
        .iter()
        .filter_map(|r| r.json().ok())
        .map(|j| (j["type"].as_str().unwrap_or_default().to_string(), j))
        .collect();
    let pos = |k: &str| kinds.iter().position(|(t, _)| t == k);
    let (amd_at, answered_at) = (pos("amd.completed"), pos("call.answered"));
    assert!(
        amd_at.is_some() && answered_at.is_some() && amd_at < answered_at,
        "amd.completed then call.answered: {:?}",
        kinds.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    let answered = &kinds[answered_at.unwrap_or_default()].1;
    assert_eq!(
        answered["payload"]["amd"]["result"], "machine_end_beep",
        "{answered}"
    );

    let heard = phone.heard_wav().expect("baresip recorded what it heard");
    let out = phone.quit(Duration::from_secs(5));
    let a = audio::read_wav(&heard).expect("read the recording");
    let onset = tone_onset(&a, 440.0)
        .unwrap_or_else(|| panic!("no 440 Hz prompt in what baresip heard\n{out}"));
    eprintln!(
        "greeting beep ends at {beep_end:.3} s; verdict {verdict}; 440 Hz heard from {onset:.3} s"
    );
    // Nothing of the prompt before the beep ended: its onset in what baresip heard is after the
    // beep's end in what it played (transit only delays it; 60 ms allows for the two
    // recordings starting a few packets apart).
    assert!(
        onset > beep_end - 0.06,
        "prompt heard from {onset:.3} s, beep ended at {beep_end:.3} s"
    );
    assert!(
        onset < beep_end + 3.0,
        "prompt heard from {onset:.3} s, long after the beep ({beep_end:.3} s)"
    );
    let before = a.slice(0.0, (beep_end - 0.06).max(0.0));
    assert!(
        before
            .chunks((a.rate / 50) as usize)
            .all(|c| audio::rms_dbfs(c) < -40.0 || audio::tone_power_ratio(c, a.rate, 440.0) < 0.3),
        "440 Hz heard before the beep ended"
    );
    let f = audio::dominant_frequency(a.slice(onset + 0.2, onset + 1.5), a.rate).expect("tone");
    assert!(
        (f - 440.0).abs() < 10.0,
        "heard {f} Hz after the beep, want 440 Hz"
    );
}

#[test]
fn hello_then_silence_gets_human_and_the_call_stays_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let (hello, _) = speak(dir.path(), "hello", "Hello?");
    let tail = dir.path().join("tail.wav");
    audio::make_silence(&tail, 30.0).expect("tail");
    let lead = dir.path().join("lead.wav");
    audio::make_silence(&lead, 0.3).expect("lead");
    let mic = dir.path().join("human.wav");
    concat(&[&lead, &hello, &tail], &mic);
    let mut phone = phone_playing(&mic);
    let server = server_calling(&phone);
    audio::make_tone(
        &server.config_dir.join("prompts/vm440.wav"),
        440.0,
        2.0,
        0.5,
    )
    .expect("prompt");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let key = server.api_key();
    let body = format!(
        r#"{{"to": "{}", "trunk": "phone", "status_callback": "{}",
            "amd": {{"on_machine": "hangup", "async": true}}}}"#,
        phone.uri(),
        hook.url("/hook")
    );
    let id = place_call(&server, &key, &body);
    let verdict = amd_completed(&hook, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no amd.completed webhook\n--- server ---\n{}", server.log()));
    let p = &verdict["payload"];
    assert_eq!(p["answered_by"], "human", "{verdict}");
    assert_eq!(p["final"], true);
    assert!(p["decision_ms"].as_u64().is_some() && p["confidence"].as_f64().is_some());

    eprintln!("verdict {verdict}");
    // Connected: still up a while after the verdict, then hung up by the API.
    std::thread::sleep(Duration::from_secs(2));
    let c = server.call(&key, &id);
    assert_eq!(c["status"], "in-progress", "{c}");
    assert_eq!(
        c["amd"]["result"], "human",
        "the verdict is on the row: {c}"
    );
    assert_eq!(c["amd"]["decision_ms"], p["decision_ms"], "{c}");
    assert!(c["final_status"].is_null(), "{c}");
    assert_eq!(phone.count(" terminated (duration"), 0);
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/hangup"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    phone
        .wait_closed(1, Duration::from_secs(10))
        .expect("closed by the API hang-up");
    phone.quit(Duration::from_secs(5));
}

#[test]
fn amd_request_validation_names_the_field() {
    let server = Server::start_with(
        ServerOptions::default().trunk("far", "127.0.0.1:9".parse().expect("addr")),
    );
    let key = server.api_key();
    for (amd, field) in [
        (
            r#"{"params": {"timeout_ms": 100}}"#,
            "amd.params.timeout_ms",
        ),
        (
            r#"{"on_machine": "voicemail_drop"}"#,
            "amd.voicemail_prompt",
        ),
        (
            r#"{"on_machine": "voicemail_drop", "voicemail_prompt": "nope"}"#,
            "amd.voicemail_prompt",
        ),
        (
            r#"{"mode": "enable", "on_machine": "voicemail_drop", "voicemail_prompt": "tone"}"#,
            "amd.mode",
        ),
    ] {
        let body = format!(r#"{{"to": "+15551230000", "trunk": "far", "amd": {amd}}}"#);
        let r = request(
            server.http,
            "POST",
            "/v1/calls",
            Some(&key),
            &[],
            Some(&body),
        );
        assert_eq!(r.status, 422, "{amd}: {}", r.body);
        assert!(r.body.contains(field), "{amd}: {}", r.body);
    }
}

/// Issue 3: asynchronous AMD on a call that is bridged at once still delivers its verdict.
///
/// Two phones: one says "Hello?" and waits (the call under analysis, asynchronous AMD), the
/// other plays a tone. As soon as the first is answered it is bridged to the second; the
/// detector keeps listening to what the first phone sends while its leg hears the bridge, so
/// `amd.completed` (human) still arrives, and the bridge carries the hello to the other phone.
#[test]
fn async_amd_on_a_call_bridged_at_once_still_delivers_its_verdict() {
    let dir = tempfile::tempdir().expect("tmp");
    let (hello, _) = speak(dir.path(), "hello", "Hello?");
    let tail = dir.path().join("tail.wav");
    audio::make_silence(&tail, 30.0).expect("tail");
    let lead = dir.path().join("lead.wav");
    audio::make_silence(&lead, 0.3).expect("lead");
    let mic = dir.path().join("human.wav");
    concat(&[&lead, &hello, &tail], &mic);
    let tone = dir.path().join("tone.wav");
    audio::make_tone(&tone, 440.0, 30.0, 0.3).expect("tone");

    let mut human = phone_playing(&mic);
    let mut other = {
        let mut o = BaresipOptions::new("agent", Some(&tone));
        o.auto_answer = true;
        Baresip::start_with(o).expect("baresip starts")
    };
    let server = Server::start_with(
        ServerOptions::default()
            .trunk(
                "phone",
                std::net::SocketAddr::from(([127, 0, 0, 1], human.sip_port)),
            )
            .trunk(
                "agent",
                std::net::SocketAddr::from(([127, 0, 0, 1], other.sip_port)),
            ),
    );
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let key = server.api_key();
    // The other party first, so the bridge can be made the moment the first is answered.
    let b = place_call(
        &server,
        &key,
        &format!(r#"{{"to": "{}", "trunk": "agent"}}"#, other.uri()),
    );
    server.wait_status(&key, &b, "in-progress");
    let a = place_call(
        &server,
        &key,
        &format!(
            r#"{{"to": "{}", "trunk": "phone", "status_callback": "{}",
                "amd": {{"on_machine": "continue", "async": true}}}}"#,
            human.uri(),
            hook.url("/hook")
        ),
    );
    server.wait_status(&key, &a, "in-progress");
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{a}/bridge"),
        Some(&key),
        &[],
        Some(&format!(r#"{{"call_id": "{b}"}}"#)),
    );
    assert_eq!(r.status, 201, "bridge: {}\n{}", r.body, server.log());
    // The verdict has not come yet when the bridge is made (the hello is still being said).
    let early = hook
        .requests()
        .iter()
        .filter_map(|r| r.json().ok())
        .any(|j| j["type"] == "amd.completed");
    assert!(
        !early,
        "the verdict must come after the bridge for this test to show anything"
    );

    let verdict = amd_completed(&hook, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no amd.completed webhook\n--- server ---\n{}", server.log()));
    assert_eq!(verdict["payload"]["answered_by"], "human", "{verdict}");
    assert_eq!(verdict["call_id"], a.as_str());
    let c = server.call(&key, &a);
    assert!(c["conference_id"].is_string(), "still bridged: {c}");
    assert_eq!(c["amd"]["result"], "human", "{c}");
    assert_eq!(c["status"], "in-progress", "{c}");

    server.hangup(&key, &a);
    human
        .wait_closed(1, Duration::from_secs(10))
        .expect("human leg closed");
    // A bridge ends with either side: the other leg gets BYE too.
    other
        .wait_closed(1, Duration::from_secs(10))
        .expect("other leg closed with the bridge");
    human.quit(Duration::from_secs(5));
    other.quit(Duration::from_secs(5));
}
