//! Bridges and dual-channel recordings, end to end with real peers on loopback.
//!
//! Issue 4, "Done when":
//! - Two baresip instances, one playing a 440 Hz tone and one a 1,000 Hz tone, are bridged:
//!   each one's recording of what it heard holds the other's tone and not its own; the
//!   server's dual-channel recording holds 440 Hz on one channel and 1,000 Hz on the other
//!   (`bridged_baresips_hear_each_other_and_the_recording_has_one_tone_per_channel`), aligned
//!   within 20 ms (`tones_started_together_on_two_legs_line_up_within_20_ms_in_the_recording`,
//!   where the test itself sends both legs' RTP from one loop, so "sent at the same time" is
//!   exact).
//! - kill -9 during a recording: after restart the file opens in `hound` and `sox`, holds all
//!   but at most the last second, and the row says it was interrupted
//!   (`kill_9_during_a_recording_leaves_a_playable_interrupted_file`).
//! - `GET …/audio` with a Range header returns 206 and exactly the bytes asked for
//!   (`audio_download_honours_range_and_refuses_past_the_end`).
//!
//! Also "Bad input": unknown call or conference ids get 404, a recording stopped twice 409
//! (`unknown_ids_are_404_and_a_second_stop_is_409`).
//!
//! The raw legs here are the test's own SIP over UDP (an INVITE to the `echo` number, then
//! ACK) and its own RTP sockets: G.711 µ-law, 20 ms per packet, paced on one loop for all legs.

mod common;

use common::api::request;
use common::audio;
use common::baresip::{Baresip, BaresipOptions};
use common::webhook::WebhookReceiver;
use common::{Server, ServerOptions, poll_until};
use serde_json::Value;
use sha2::Digest;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use trunkline::media::g711::Law;

// ---- HTTP helpers ------------------------------------------------------------------------------

/// A response with a binary body (the audio route), headers lower-cased.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with optional extra headers, body kept as bytes.
fn get_bytes(server: &Server, key: &str, path: &str, extra: &[(&str, &str)]) -> RawResponse {
    let mut s = TcpStream::connect_timeout(&server.http, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n",
        server.http
    );
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]).trim().to_string();
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

fn post(server: &Server, key: &str, path: &str, body: &str) -> common::api::HttpResponse {
    request(server.http, "POST", path, Some(key), &[], Some(body))
}

/// `POST` expecting `status`; returns the JSON body.
fn post_ok(server: &Server, key: &str, path: &str, body: &str, status: u16) -> Value {
    let r = post(server, key, path, body);
    assert_eq!(
        r.status,
        status,
        "POST {path} {body}: {}\n--- server ---\n{}",
        r.body,
        server.log()
    );
    r.json()
}

fn recording(server: &Server, key: &str, id: &str) -> Value {
    let r = request(
        server.http,
        "GET",
        &format!("/v1/recordings/{id}"),
        Some(key),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "GET recording {id}: {}", r.body);
    r.json()
}

/// Waits until the recording row leaves `recording`/`paused` (and has its summary).
fn wait_recording_finished(server: &Server, key: &str, id: &str) -> Value {
    poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let r = recording(server, key, id);
        let s = r["status"].as_str().unwrap_or("");
        (s != "recording" && s != "paused" && r["sha256"].is_string()).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "recording {id} never finished: {}\n--- server ---\n{}",
            recording(server, key, id),
            server.log()
        )
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The whole audio of a recording, checked to be a 200 `audio/wav`.
fn download(server: &Server, key: &str, id: &str) -> Vec<u8> {
    let r = get_bytes(server, key, &format!("/v1/recordings/{id}/audio"), &[]);
    assert_eq!(
        r.status,
        200,
        "download {id}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    r.body
}

/// (spec, left, right) of a 2-channel 16-bit WAV held in memory.
fn stereo(bytes: &[u8]) -> (hound::WavSpec, audio::Audio, audio::Audio) {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("hound opens the WAV");
    let spec = r.spec();
    assert_eq!(spec.channels, 2, "{spec:?}");
    let samples: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples");
    let pick = |c: usize| audio::Audio {
        rate: spec.sample_rate,
        samples: samples.iter().skip(c).step_by(2).copied().collect(),
    };
    (spec, pick(0), pick(1))
}

/// The middle of the loud part of `a` (1/4 to 3/4 of it), at least 1 s of it.
fn loud_middle(a: &audio::Audio, what: &str) -> Vec<i16> {
    let (on, dur) = a
        .loud_span(-35.0)
        .unwrap_or_else(|| panic!("{what}: nothing louder than -35 dBFS"));
    assert!(
        dur >= 2.0,
        "{what}: loud for only {dur:.2} s from {on:.2} s"
    );
    a.slice(on + dur / 4.0, on + dur * 3.0 / 4.0).to_vec()
}

/// Asserts that `samples` hold a clean `want` Hz tone and (almost) nothing at `not` Hz.
fn assert_tone(samples: &[i16], want: f64, not: f64, what: &str) {
    let f = audio::dominant_frequency(samples, 8_000);
    let p_want = audio::tone_power_ratio(samples, 8_000, want);
    let p_not = audio::tone_power_ratio(samples, 8_000, not);
    eprintln!(
        "{what}: dominant {:.1} Hz, power share {p_want:.3} at {want} Hz, {p_not:.5} at {not} Hz",
        f.unwrap_or(0.0)
    );
    assert!(
        f.is_some_and(|f| (f - want).abs() < 10.0),
        "{what}: dominant {f:?} Hz, expected {want} Hz (power {p_want:.3} at {want}, {p_not:.3} at {not})"
    );
    assert!(
        p_want > 0.8,
        "{what}: only {p_want:.3} of the power at {want} Hz"
    );
    assert!(p_not < 0.01, "{what}: {p_not:.3} of the power at {not} Hz");
}

// ---- raw SIP + RTP legs ------------------------------------------------------------------------

/// A call the test placed itself to the `echo` number: its SIP socket (kept for the dialog) and
/// its RTP socket, with where the server wants our RTP.
struct RawLeg {
    _sip: UdpSocket,
    rtp: UdpSocket,
    remote_rtp: SocketAddr,
    /// The server's call id (UUID).
    id: String,
}

/// Sends an INVITE to `echo` with our RTP socket in the SDP, waits for 200, sends ACK, and finds
/// the call's id through the API.
fn raw_leg(server: &Server, key: &str, tag: &str) -> RawLeg {
    let sip = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
    let port = rtp.local_addr().expect("rtp addr").port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    let call_id = format!("itbridge-{tag}-{}", uuid::Uuid::new_v4().simple());
    sip.send_to(
        common::invite(server, "echo", &call_id, &sdp).as_bytes(),
        server.sip,
    )
    .expect("send INVITE");
    sip.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut buf = [0u8; 65_536];
    let ok = poll_until(Duration::from_secs(10), Duration::from_millis(1), || {
        let (n, _) = sip.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        text.starts_with("SIP/2.0 200").then_some(text)
    })
    .unwrap_or_else(|| panic!("no 200 OK to INVITE {call_id}\n{}", server.log()));
    let header = |name: &str| {
        ok.lines()
            .find(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("no {name} in {ok}"))
    };
    let to = header("To");
    let remote_port: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in {ok}"));
    let remote_ip = ok
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let sport = server.sip.port();
    let ack = format!(
        "ACK sip:echo@127.0.0.1:{sport} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id}ack;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:tester@127.0.0.1:9>;tag=t{call_id}\r\n\
{to}\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), server.sip).expect("send ACK");
    let remote_rtp: SocketAddr = format!("{remote_ip}:{remote_port}")
        .parse()
        .expect("remote rtp");
    let id = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .all_calls(key, "")
            .into_iter()
            .find(|c| c["sip_call_id"] == call_id.as_str())
            .and_then(|c| c["id"].as_str().map(str::to_string))
    })
    .unwrap_or_else(|| panic!("call {call_id} not in the API\n{}", server.log()));
    server.wait_status(key, &id, "in-progress");
    RawLeg {
        _sip: sip,
        rtp,
        remote_rtp,
        id,
    }
}

/// Sends RTP on several legs from one loop, one 20 ms packet per leg per iteration: silence
/// until [`Pump::start_tones`], then from that iteration on each leg's own tone.
struct Pump {
    tones: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pump {
    /// `legs`: (socket, where to, tone frequency in Hz).
    fn start(legs: Vec<(UdpSocket, SocketAddr, f64)>) -> Pump {
        let tones = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tones, stop) = (tones.clone(), stop.clone());
            std::thread::spawn(move || {
                let start = common::now();
                let mut pkt = [0u8; 12 + 160];
                let mut tone_samples: u64 = 0;
                let mut k: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    // One decision per iteration, for every leg.
                    let on = tones.load(Ordering::Relaxed);
                    for (i, (sock, to, freq)) in legs.iter().enumerate() {
                        pkt[0] = 0x80;
                        pkt[1] = if k == 0 { 0x80 } else { 0 };
                        pkt[2..4].copy_from_slice(&(k as u16).to_be_bytes());
                        pkt[4..8].copy_from_slice(&(k.wrapping_mul(160)).to_be_bytes());
                        pkt[8..12].copy_from_slice(&(0x1000_0000u32 + i as u32).to_be_bytes());
                        for (j, b) in pkt[12..].iter_mut().enumerate() {
                            let s = if on {
                                let t = (tone_samples + j as u64) as f64 / 8_000.0;
                                (0.3 * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin())
                                    as i16
                            } else {
                                0
                            };
                            *b = Law::Ulaw.encode(s);
                        }
                        let _ = sock.send_to(&pkt, to);
                    }
                    if on {
                        tone_samples += 160;
                    }
                    k = k.wrapping_add(1);
                    let next = start + Duration::from_millis(20) * k;
                    let now = common::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                }
            })
        };
        Pump {
            tones,
            stop,
            thread: Some(thread),
        }
    }

    fn start_tones(&self) {
        self.tones.store(true, Ordering::Relaxed);
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump_for(legs: &[(&RawLeg, f64)]) -> Pump {
    Pump::start(
        legs.iter()
            .map(|(l, f)| (l.rtp.try_clone().expect("clone rtp"), l.remote_rtp, *f))
            .collect(),
    )
}

/// Onset (seconds) of the first 5 ms window louder than `threshold_dbfs`.
fn onset_5ms(a: &audio::Audio, threshold_dbfs: f64) -> Option<f64> {
    let win = (a.rate / 200) as usize;
    a.samples
        .chunks(win)
        .position(|c| audio::rms_dbfs(c) > threshold_dbfs)
        .map(|i| (i * win) as f64 / f64::from(a.rate))
}

/// A short completed call recording (about 1 s of a 1 kHz tone) on a raw echo leg.
fn short_recording(server: &Server, key: &str) -> (RawLeg, String) {
    let leg = raw_leg(server, key, "short");
    let pump = pump_for(&[(&leg, 1000.0)]);
    pump.start_tones();
    let rec = post_ok(
        server,
        key,
        &format!("/v1/calls/{}/recordings", leg.id),
        "{}",
        201,
    );
    let id = rec["id"].as_str().expect("recording id").to_string();
    // Enough audio for the ranges below (1 s is 32 kB).
    poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let r = get_bytes(server, key, &format!("/v1/recordings/{id}/audio"), &[]);
        (r.body.len() > 8_000).then_some(())
    })
    .expect("the live recording grows");
    post_ok(server, key, &format!("/v1/recordings/{id}/stop"), "", 200);
    wait_recording_finished(server, key, &id);
    drop(pump);
    (leg, id)
}

// ---- tests ---------------------------------------------------------------------------------------

fn phone(user: &str, mic: &Path) -> Baresip {
    let mut o = BaresipOptions::new(user, Some(mic));
    o.auto_answer = true;
    Baresip::start_with(o).expect("baresip starts")
}

#[test]
fn bridged_baresips_hear_each_other_and_the_recording_has_one_tone_per_channel() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mic_a, mic_b) = (dir.path().join("a440.wav"), dir.path().join("b1000.wav"));
    // Longer than the test: baresip ends its call when the microphone file ends.
    audio::make_tone(&mic_a, 440.0, 40.0, 0.3).expect("tone a");
    audio::make_tone(&mic_b, 1000.0, 40.0, 0.3).expect("tone b");
    let phone_a = phone("alice", &mic_a);
    let phone_b = phone("bob", &mic_b);
    let o = ServerOptions::default()
        .trunk("a", SocketAddr::from(([127, 0, 0, 1], phone_a.sip_port)))
        .trunk("b", SocketAddr::from(([127, 0, 0, 1], phone_b.sip_port)));
    let server = Server::start_with(o);
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let key = server.api_key();

    let a = post_ok(
        &server,
        &key,
        "/v1/calls",
        &format!(
            r#"{{"to": "{}", "trunk": "a", "status_callback": "{}"}}"#,
            phone_a.uri(),
            hook.url("/hook")
        ),
        201,
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b = post_ok(
        &server,
        &key,
        "/v1/calls",
        &format!(r#"{{"to": "{}", "trunk": "b"}}"#, phone_b.uri()),
        201,
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    server.wait_status(&key, &a, "in-progress");
    server.wait_status(&key, &b, "in-progress");

    let conf = post_ok(
        &server,
        &key,
        &format!("/v1/calls/{a}/bridge"),
        &format!(r#"{{"call_id": "{b}"}}"#),
        201,
    );
    let conf_id = conf["id"].as_str().expect("conference id").to_string();
    let rec = post_ok(
        &server,
        &key,
        &format!("/v1/conferences/{conf_id}/recordings"),
        "{}",
        201,
    );
    let rec_id = rec["id"].as_str().expect("recording id").to_string();
    assert_eq!(rec["status"], "recording", "{rec}");
    // The call rows learn their room through the store writer (eventually, not at once).
    for id in [&a, &b] {
        poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            (server.call(&key, id)["conference_id"] == conf_id.as_str()).then_some(())
        })
        .unwrap_or_else(|| panic!("call {id} row never got conference_id {conf_id}"));
    }

    // The bridge carries both tones for a while.
    std::thread::sleep(Duration::from_secs(4));
    server.hangup(&key, &a);
    // end_on_exit of a bridge: B gets a BYE.
    phone_b
        .wait_closed(1, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("B was not hung up: {e}\n--- server ---\n{}", server.log()));
    phone_a
        .wait_closed(1, Duration::from_secs(5))
        .expect("A's call closed");
    let cb = server.wait_final(&key, &b);
    assert_eq!(cb["final_status"], "completed", "{cb}");

    // What each phone heard: the other's tone, not its own.
    let heard_a = audio::read_wav(&phone_a.heard_wav().expect("A's recording")).expect("read");
    let heard_b = audio::read_wav(&phone_b.heard_wav().expect("B's recording")).expect("read");
    assert_tone(&loud_middle(&heard_a, "A heard"), 1000.0, 440.0, "A heard");
    assert_tone(&loud_middle(&heard_b, "B heard"), 440.0, 1000.0, "B heard");

    // The server's recording: finished with the room, one tone per channel.
    let row = wait_recording_finished(&server, &key, &rec_id);
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["conference_id"], conf_id.as_str(), "{row}");
    assert_eq!(row["channels"], 2, "{row}");
    assert_eq!(row["sample_rate"], 8000, "{row}");
    assert!(
        row.get("path").is_none(),
        "the API shows no server path: {row}"
    );
    let wav = download(&server, &key, &rec_id);
    assert_eq!(row["sha256"], sha256_hex(&wav).as_str(), "{row}");
    assert_eq!(row["size_bytes"], wav.len() as u64, "{row}");
    let (spec, left, right) = stereo(&wav);
    assert_eq!(spec.sample_rate, 8000, "{spec:?}");
    assert_eq!(spec.bits_per_sample, 16, "{spec:?}");
    assert_eq!(spec.sample_format, hound::SampleFormat::Int, "{spec:?}");
    let secs = left.duration_secs();
    assert!(secs > 3.0, "recording holds {secs:.2} s");
    let ms = row["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (ms / 1000.0 - secs).abs() < 0.05,
        "row says {ms} ms, file {secs:.3} s"
    );
    // Left: the first participant (A, 440 Hz); right: the rest of the room (B, 1 kHz).
    assert_tone(&loud_middle(&left, "left"), 440.0, 1000.0, "recording left");
    assert_tone(
        &loud_middle(&right, "right"),
        1000.0,
        440.0,
        "recording right",
    );

    // The recording.completed event went to A's status callback (the bridge's).
    let ev = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        hook.requests()
            .iter()
            .filter_map(|r| r.json().ok())
            .find(|j| j["type"] == "recording.completed")
    })
    .unwrap_or_else(|| {
        panic!(
            "no recording.completed webhook: {:#?}",
            hook.requests().iter().map(|r| r.text()).collect::<Vec<_>>()
        )
    });
    assert_eq!(ev["payload"]["id"], rec_id.as_str(), "{ev}");
    assert_eq!(ev["payload"]["sha256"], row["sha256"], "{ev}");
    assert_eq!(ev["payload"]["status"], "completed", "{ev}");
}

#[test]
fn tones_started_together_on_two_legs_line_up_within_20_ms_in_the_recording() {
    let server = Server::start();
    let key = server.api_key();
    let a = raw_leg(&server, &key, "a");
    let b = raw_leg(&server, &key, "b");
    let pump = pump_for(&[(&a, 1000.0), (&b, 440.0)]);
    let conf = post_ok(
        &server,
        &key,
        &format!("/v1/calls/{}/bridge", a.id),
        &format!(r#"{{"call_id": "{}"}}"#, b.id),
        201,
    );
    let conf_id = conf["id"].as_str().expect("conference id").to_string();
    let rec = post_ok(
        &server,
        &key,
        &format!("/v1/conferences/{conf_id}/recordings"),
        &format!(r#"{{"left_call_id": "{}"}}"#, a.id),
        201,
    );
    let rec_id = rec["id"].as_str().expect("recording id").to_string();
    // About 1 s of silence in the recording (what is on disk so far tells), then both tones
    // start in the same iteration of the sending loop.
    poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let r = get_bytes(
            &server,
            &key,
            &format!("/v1/recordings/{rec_id}/audio"),
            &[],
        );
        (r.body.len() >= 44 + 32_000).then_some(())
    })
    .expect("the recording reaches 1 s");
    pump.start_tones();
    // About 1.5 s of tones, then stop.
    let tone_start = common::now();
    poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (common::now() - tone_start >= Duration::from_millis(1_500)).then_some(())
    });
    post_ok(
        &server,
        &key,
        &format!("/v1/recordings/{rec_id}/stop"),
        "",
        200,
    );
    let row = wait_recording_finished(&server, &key, &rec_id);
    assert_eq!(row["status"], "completed", "{row}");
    drop(pump);
    let wav = download(&server, &key, &rec_id);
    let (_, left, right) = stereo(&wav);
    let on_l = onset_5ms(&left, -30.0).expect("a tone on the left");
    let on_r = onset_5ms(&right, -30.0).expect("a tone on the right");
    let diff_ms = (on_l - on_r).abs() * 1000.0;
    eprintln!(
        "alignment: left onset {:.1} ms, right onset {:.1} ms, difference {diff_ms:.1} ms",
        on_l * 1000.0,
        on_r * 1000.0
    );
    assert!(
        on_l > 0.5 && on_r > 0.5,
        "tones started too early: {on_l} / {on_r}"
    );
    assert!(
        diff_ms <= 20.0,
        "left onset {on_l:.3} s, right {on_r:.3} s: {diff_ms:.1} ms apart"
    );
    // And the tones are the right ones: left = leg A's (1 kHz), right = the rest (B, 440 Hz).
    assert_tone(
        left.slice(on_l + 0.2, on_l + 1.2),
        1000.0,
        440.0,
        "recording left",
    );
    assert_tone(
        right.slice(on_r + 0.2, on_r + 1.2),
        440.0,
        1000.0,
        "recording right",
    );
}

#[test]
fn kill_9_during_a_recording_leaves_a_playable_interrupted_file() {
    let mut server = Server::start();
    let key = server.api_key();
    let leg = raw_leg(&server, &key, "crash");
    let pump = pump_for(&[(&leg, 1000.0)]);
    pump.start_tones();
    let rec = post_ok(
        &server,
        &key,
        &format!("/v1/calls/{}/recordings", leg.id),
        "{}",
        201,
    );
    let rec_id = rec["id"].as_str().expect("recording id").to_string();
    // The recording runs at least from here to the kill.
    let started = common::now();
    poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (common::now() - started >= Duration::from_secs(3)).then_some(())
    });
    common::signal(server.pid().expect("pid"), "KILL");
    let elapsed = (common::now() - started).as_secs_f64();
    server.kill(); // reaps the child
    drop(pump);
    server.restart();

    let row = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let r = recording(&server, &key, &rec_id);
        (r["status"] != "recording" && r["status"] != "paused").then_some(r)
    })
    .unwrap_or_else(|| panic!("recording still live after restart\n{}", server.log()));
    assert_eq!(row["status"], "interrupted", "{row}\n{}", server.log());
    let wav = download(&server, &key, &rec_id);
    if let Some(sha) = row["sha256"].as_str() {
        assert_eq!(sha, sha256_hex(&wav), "{row}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("interrupted.wav");
    std::fs::write(&file, &wav).expect("write wav");
    // hound
    let r = hound::WavReader::open(&file).expect("hound opens the repaired file");
    let spec = r.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000), "{spec:?}");
    let hound_secs = f64::from(r.duration()) / 8000.0;
    let samples: Vec<i16> = r
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("every sample reads");
    assert_eq!(samples.len() as f64 / 2.0 / 8000.0, hound_secs);
    // sox
    let soxi = std::process::Command::new("soxi")
        .arg("-D")
        .arg(&file)
        .output()
        .expect("soxi runs");
    assert!(
        soxi.status.success(),
        "soxi: {}",
        String::from_utf8_lossy(&soxi.stderr)
    );
    let sox_secs: f64 = String::from_utf8_lossy(&soxi.stdout)
        .trim()
        .parse()
        .expect("soxi -D prints seconds");
    let stat = std::process::Command::new("sox")
        .arg(&file)
        .args(["-n", "stat"])
        .output()
        .expect("sox runs");
    let stat_text = String::from_utf8_lossy(&stat.stderr);
    assert!(
        stat.status.success() && stat_text.contains("Length (seconds)"),
        "sox stat: {stat_text}"
    );
    eprintln!(
        "kill -9 after {elapsed:.2} s of recording: file holds {hound_secs:.3} s (sox {sox_secs:.3} s), row {row}"
    );
    assert!(
        (sox_secs - hound_secs).abs() < 0.01,
        "{sox_secs} vs {hound_secs}"
    );
    assert!(
        hound_secs >= elapsed - 1.0,
        "file holds {hound_secs:.3} s of {elapsed:.3} s recorded"
    );
    // The audio is the leg's tone on the left (what it sent us).
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let tail = &left[left.len().saturating_sub(8_000)..];
    assert!(audio::tone_power_ratio(tail, 8000, 1000.0) > 0.8);
    let ms = row["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (ms / 1000.0 - hound_secs).abs() < 0.05,
        "row {ms} ms, file {hound_secs} s"
    );
}

#[test]
fn audio_download_honours_range_and_refuses_past_the_end() {
    let server = Server::start();
    let key = server.api_key();
    let (_leg, id) = short_recording(&server, &key);
    let full = download(&server, &key, &id);
    let len = full.len();
    assert!(len > 1_100, "{len} bytes");

    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{id}/audio"),
        &[("Range", "bytes=100-1099")],
    );
    assert_eq!(r.status, 206, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-1099/{len}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.body.len(), 1000);
    assert_eq!(r.body, full[100..1100]);

    // The last bytes, and an open range.
    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{id}/audio"),
        &[("Range", "bytes=-10")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full[len - 10..]);
    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{id}/audio"),
        &[("Range", &format!("bytes={}-", len - 5))],
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{len}", len - 5, len - 1).as_str())
    );
    assert_eq!(r.body, full[len - 5..]);

    // Past the end: 416 with the length.
    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{id}/audio"),
        &[("Range", &format!("bytes={len}-"))],
    );
    assert_eq!(r.status, 416, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );

    // Unknown recording.
    let unknown = uuid::Uuid::new_v4();
    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{unknown}/audio"),
        &[],
    );
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let r = get_bytes(
        &server,
        &key,
        &format!("/v1/recordings/{unknown}/audio"),
        &[("Range", "bytes=0-10")],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn unknown_ids_are_404_and_a_second_stop_is_409() {
    let server = Server::start();
    let key = server.api_key();
    let unknown = uuid::Uuid::new_v4();

    // Unknown call: bridge (either side), record.
    let leg = raw_leg(&server, &key, "bad");
    for (path, body) in [
        (
            format!("/v1/calls/{unknown}/bridge"),
            format!(r#"{{"call_id": "{}"}}"#, leg.id),
        ),
        (
            format!("/v1/calls/{}/bridge", leg.id),
            format!(r#"{{"call_id": "{unknown}"}}"#),
        ),
        (format!("/v1/calls/{unknown}/recordings"), "{}".into()),
        (format!("/v1/conferences/{unknown}/recordings"), "{}".into()),
        (format!("/v1/conferences/{unknown}/end"), String::new()),
        (
            format!("/v1/conferences/{unknown}/participants"),
            format!(r#"{{"call_id": "{}"}}"#, leg.id),
        ),
        (format!("/v1/recordings/{unknown}/stop"), String::new()),
        (format!("/v1/recordings/{unknown}/pause"), String::new()),
    ] {
        let r = post(&server, &key, &path, &body);
        assert_eq!(r.status, 404, "POST {path} {body}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "not_found", "{}", r.body);
    }
    for path in [
        format!("/v1/conferences/{unknown}"),
        format!("/v1/recordings/{unknown}"),
    ] {
        let r = request(server.http, "GET", &path, Some(&key), &[], None);
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
    }
    let r = request(
        server.http,
        "DELETE",
        &format!("/v1/recordings/{unknown}"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);

    // A recording stopped twice: the second stop is a conflict, at once and once finished.
    let pump = pump_for(&[(&leg, 1000.0)]);
    let rec = post_ok(
        &server,
        &key,
        &format!("/v1/calls/{}/recordings", leg.id),
        "{}",
        201,
    );
    let id = rec["id"].as_str().expect("id").to_string();
    post_ok(&server, &key, &format!("/v1/recordings/{id}/stop"), "", 200);
    let r = post(&server, &key, &format!("/v1/recordings/{id}/stop"), "");
    assert_eq!(r.status, 409, "second stop: {}", r.body);
    let row = wait_recording_finished(&server, &key, &id);
    assert_eq!(row["status"], "completed", "{row}");
    for action in ["stop", "pause", "resume"] {
        let r = post(&server, &key, &format!("/v1/recordings/{id}/{action}"), "");
        assert_eq!(r.status, 409, "{action} after the end: {}", r.body);
    }
    drop(pump);
}
