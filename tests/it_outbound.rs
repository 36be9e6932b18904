//! Outbound calls placed through the HTTP API toward SIPp far ends, with a real webhook receiver.
//!
//! Issue 2, "Done when":
//! - `POST /v1/calls` to a SIPp far end: rings, is answered, carries RTP both ways, is hung up
//!   through the API; the row holds every time, the final status and the RTP counters; the
//!   receiver gets `initiated`, `ringing`, `answered`, `completed` in order, each signed, and
//!   exactly one final status.
//! - A far end that challenges with 401, and one with 407, receives correctly authenticated
//!   INVITEs (SIPp's `verifyauth` answers 200 only then).
//! - A far end that never answers: CANCEL at the ring timeout, `no-answer`; 486: `busy`;
//!   503: `failed`.
//!
//! Also the API's "Bad input" rules (400, 401, 422).

mod common;

use common::api::request;
use common::sipp::{Scenario, Sipp, SippProcess};
use common::webhook::WebhookReceiver;
use common::{Server, ServerOptions};
use std::time::Duration;

const SECRET: &str = "it-webhook-secret";

fn server_for(far: &SippProcess, extra: &str) -> Server {
    let mut o = ServerOptions::default().trunk("far", far.sip_addr());
    o.server_extra = format!("[webhooks]\nsecret = \"{SECRET}\"\n{extra}");
    Server::start_with(o)
}

fn place_call(server: &Server, key: &str, body: &str) -> serde_json::Value {
    let r = request(server.http, "POST", "/v1/calls", Some(key), &[], Some(body));
    assert_eq!(
        r.status,
        201,
        "POST /v1/calls: {}\n--- server ---\n{}",
        r.body,
        server.log()
    );
    r.json()
}

#[test]
fn api_call_to_sipp_rings_answers_carries_rtp_hangs_up_and_signed_webhooks_arrive_in_order() {
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .calls(Some(1))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("far end");
    let server = server_for(&far, "");
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let key = server.api_key();
    let body = format!(
        r#"{{"to": "+15551230001", "trunk": "far", "status_callback": "{}", "metadata": {{"ticket": 42}}}}"#,
        hook.url("/hook")
    );
    let created = place_call(&server, &key, &body);
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["direction"], "outbound");

    // Answered, then RTP flows for a while (SIPp plays its pcap to us; we send to it).
    server.wait_status(&key, &id, "in-progress");
    assert!(
        far.wait_media(8_000, Duration::from_secs(10)),
        "no RTP from trunkline reached SIPp"
    );
    std::thread::sleep(Duration::from_secs(2));
    server.hangup(&key, &id);

    let c = server.wait_final(&key, &id);
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["ended_by"], "api", "{c}");
    for t in ["created_at", "ringing_at", "answered_at", "ended_at"] {
        assert!(c[t].is_string(), "{t} missing: {c}");
    }
    assert!(c["duration_ms"].as_i64().unwrap_or(0) >= 1_500, "{c}");
    assert!(c["rtp"]["packets_in"].as_u64().unwrap_or(0) > 50, "{c}");
    assert!(c["rtp"]["packets_out"].as_u64().unwrap_or(0) > 50, "{c}");
    assert_eq!(c["metadata"]["ticket"], 42);
    let report = far.wait();
    assert_eq!(report.successful, 1, "{report:#?}");

    hook.wait_for(4, Duration::from_secs(20))
        .unwrap_or_else(|got| {
            panic!(
                "only {} webhooks arrived: {got:#?}\n--- server ---\n{}",
                got.len(),
                server.log()
            )
        });
    // Give a duplicate final status a chance to show up before counting.
    std::thread::sleep(Duration::from_millis(500));
    let got = hook.requests();
    let kinds: Vec<String> = got
        .iter()
        .map(|r| {
            r.json().expect("json")["type"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "call.initiated",
            "call.ringing",
            "call.answered",
            "call.completed"
        ],
        "{kinds:?}"
    );
    for r in &got {
        let ts = r.header("x-trunkline-timestamp").expect("timestamp header");
        let sig = r.header("x-trunkline-signature").expect("signature header");
        assert!(
            trunkline::events::signature::verify_signature(SECRET, ts, &r.body, sig),
            "bad signature on {}",
            r.text()
        );
        assert!(r.header("x-trunkline-event-id").is_some());
        assert_eq!(r.json().expect("json")["call_id"], id.as_str());
    }
    let last = got.last().expect("final").json().expect("json");
    assert_eq!(last["payload"]["final_status"], "completed");
}

fn auth_test(scenario: &str) {
    let far = Sipp::uas(Scenario::ours(scenario))
        .credentials("alice", "s3cret")
        .calls(Some(1))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("far end");
    let mut o = ServerOptions::default().trunk_with_auth("far", far.sip_addr(), "alice", "s3cret");
    o.server_extra = String::new();
    let server = Server::start_with(o);
    let key = server.api_key();
    let created = place_call(&server, &key, r#"{"to": "+15551230002", "trunk": "far"}"#);
    let id = created["id"].as_str().expect("id").to_string();
    // The far end answers only a correctly authenticated INVITE (else 403 -> failed).
    common::poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let c = server.call(&key, &id);
        (c["status"] == "in-progress" || c["final_status"].is_string()).then_some(())
    })
    .expect("call progressed");
    let c = server.call(&key, &id);
    assert_eq!(
        c["status"],
        "in-progress",
        "{scenario}: {c}\n--- server ---\n{}",
        server.log()
    );
    server.hangup(&key, &id);
    let c = server.wait_final(&key, &id);
    assert_eq!(c["final_status"], "completed", "{c}");
    let report = far.wait();
    assert_eq!(
        report.successful, 1,
        "{scenario}: far end did not accept the credentials: {report:#?}"
    );
    // The digest itself was checked against the password (SIPp's verifyauth for 401; the
    // harness's own check of the logged Proxy-Authorization for 407).
    assert!(
        report.auth_checked >= 1,
        "{scenario}: no credential was checked: {report:#?}"
    );
    assert!(
        report.auth_failures.is_empty(),
        "{scenario}: {:?}",
        report.auth_failures
    );
}

#[test]
fn far_end_challenging_with_401_gets_an_authenticated_invite() {
    auth_test("uas_auth_401");
}

#[test]
fn far_end_challenging_with_407_gets_an_authenticated_invite() {
    auth_test("uas_auth_407");
}

fn outcome_of(
    scenario: &str,
    ring_timeout_secs: u64,
) -> (serde_json::Value, common::sipp::SippReport) {
    let far = Sipp::uas(Scenario::ours(scenario))
        .calls(Some(1))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("far end");
    let server = server_for(&far, "");
    let key = server.api_key();
    let body = format!(
        r#"{{"to": "+15551230003", "trunk": "far", "ring_timeout_secs": {ring_timeout_secs}}}"#
    );
    let created = place_call(&server, &key, &body);
    let id = created["id"].as_str().expect("id").to_string();
    let c = server.wait_final(&key, &id);
    (c, far.wait())
}

#[test]
fn far_end_that_never_answers_is_cancelled_at_the_ring_timeout_as_no_answer() {
    let (c, far) = outcome_of("uas_noanswer", 3);
    assert_eq!(c["final_status"], "no-answer", "{c}");
    assert_eq!(c["ended_by"], "system", "{c}");
    assert!(c["ringing_at"].is_string(), "{c}");
    // Ended about 3 s after it was created (not asserted tightly: shared machine).
    let created = chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap_or(""))
        .expect("created");
    let ended =
        chrono::DateTime::parse_from_rfc3339(c["ended_at"].as_str().unwrap_or("")).expect("ended");
    let secs = (ended - created).num_milliseconds() as f64 / 1000.0;
    assert!((2.5..15.0).contains(&secs), "ended after {secs} s: {c}");
    // The far end saw our CANCEL (its scenario completes only with CANCEL, 487, ACK).
    assert_eq!(far.successful, 1, "{far:#?}");
}

#[test]
fn busy_far_end_gives_busy_and_503_gives_failed() {
    let (c, _) = outcome_of("uas_busy", 30);
    assert_eq!(c["final_status"], "busy", "{c}");
    assert_eq!(c["end_sip_code"], 486, "{c}");
    assert_eq!(c["ended_by"], "callee", "{c}");
    let (c, _) = outcome_of("uas_503", 30);
    assert_eq!(c["final_status"], "failed", "{c}");
    assert_eq!(c["end_sip_code"], 503, "{c}");
}

#[test]
fn api_rejects_bad_requests_with_clear_errors() {
    let server = Server::start();
    let key = server.api_key();
    // No key, wrong key.
    let r = request(server.http, "GET", "/v1/calls", None, &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = request(server.http, "GET", "/v1/calls", Some("tl_wrong"), &[], None);
    assert_eq!(r.status, 401);
    // Malformed JSON.
    let r = request(
        server.http,
        "POST",
        "/v1/calls",
        Some(&key),
        &[],
        Some("{not json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "bad_request");
    // `to` neither E.164 nor a SIP URI.
    let r = request(
        server.http,
        "POST",
        "/v1/calls",
        Some(&key),
        &[],
        Some(r#"{"to": "5551234"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["details"]["field"], "to");
    // Unknown call; unknown route.
    let r = request(
        server.http,
        "GET",
        "/v1/calls/01890000-0000-7000-8000-000000000000",
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 404);
    let r = request(server.http, "GET", "/v1/nope", Some(&key), &[], None);
    assert_eq!(r.status, 404);
    // The OpenAPI document and metrics are served.
    let r = request(server.http, "GET", "/v1/openapi.json", None, &[], None);
    assert_eq!(r.status, 200);
    assert!(r.json()["paths"]["/v1/calls"].is_object());
    let r = request(server.http, "GET", "/metrics", None, &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("trunkline_active_calls"), "{}", r.body);
}

/// Reads a Server-Sent Events stream until `until` appears in it or `timeout` passes.
fn read_sse(
    server: &Server,
    key: &str,
    last_event_id: Option<&str>,
    until: &str,
    timeout: Duration,
) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n",
        server.http
    );
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let deadline = common::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while common::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains(until) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

#[test]
fn idempotency_play_dtmf_list_filters_and_sse_resume() {
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .calls(Some(1))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("far end");
    let server = server_for(&far, "");
    let key = server.api_key();
    let body = r#"{"to": "+15551230009", "trunk": "far"}"#;
    let idem = [("Idempotency-Key", "order-77")];
    // The same key and body: the same call, 201 then 200.
    let r1 = request(
        server.http,
        "POST",
        "/v1/calls",
        Some(&key),
        &idem,
        Some(body),
    );
    assert_eq!(r1.status, 201, "{}", r1.body);
    let id = r1.json()["id"].as_str().expect("id").to_string();
    let r2 = request(
        server.http,
        "POST",
        "/v1/calls",
        Some(&key),
        &idem,
        Some(body),
    );
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.json()["id"], id.as_str());
    // The same key with another body: 409.
    let r3 = request(
        server.http,
        "POST",
        "/v1/calls",
        Some(&key),
        &idem,
        Some(r#"{"to": "+15551230010", "trunk": "far"}"#),
    );
    assert_eq!(r3.status, 409, "{}", r3.body);

    server.wait_status(&key, &id, "in-progress");
    // Play a prompt and send DTMF on the live call; a missing prompt and bad digits: 422.
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/play"),
        Some(&key),
        &[],
        Some(r#"{"prompt": "tone"}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/play"),
        Some(&key),
        &[],
        Some(r#"{"prompt": "nope"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["details"]["field"], "prompt");
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/dtmf"),
        Some(&key),
        &[],
        Some(r#"{"digits": "12#"}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/dtmf"),
        Some(&key),
        &[],
        Some(r#"{"digits": "12x"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // The far end received our RTP (prompt, then DTMF events).
    assert!(
        far.wait_media(16_000, Duration::from_secs(10)),
        "far end got no RTP"
    );
    std::thread::sleep(Duration::from_millis(800));
    server.hangup(&key, &id);
    let c = server.wait_final(&key, &id);
    assert_eq!(c["final_status"], "completed");
    // Hanging up again: 409 (already ended).
    let r = request(
        server.http,
        "POST",
        &format!("/v1/calls/{id}/hangup"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);

    // List filters.
    assert_eq!(
        server
            .all_calls(&key, "&direction=outbound&status=completed")
            .len(),
        1
    );
    assert!(server.all_calls(&key, "&direction=inbound").is_empty());
    let r = request(
        server.http,
        "GET",
        "/v1/calls?status=bogus",
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = request(
        server.http,
        "GET",
        "/v1/calls?limit=501",
        Some(&key),
        &[],
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // SSE from the start of the log (Last-Event-ID 0): the call's events in order.
    let sse = read_sse(
        &server,
        &key,
        Some("0"),
        "call.completed",
        Duration::from_secs(10),
    );
    let order: Vec<usize> = [
        "event: call.initiated",
        "event: call.ringing",
        "event: call.answered",
        "event: call.completed",
    ]
    .iter()
    .map(|k| {
        sse.find(k)
            .unwrap_or_else(|| panic!("{k} missing from the stream:\n{sse}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "events out of order:\n{sse}"
    );
    // Resuming after the third event gives only the fourth.
    let third = sse
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .nth(2)
        .expect("an id for the third event")
        .to_string();
    let resumed = read_sse(
        &server,
        &key,
        Some(&third),
        "call.completed",
        Duration::from_secs(10),
    );
    assert!(resumed.contains("event: call.completed"), "{resumed}");
    assert!(!resumed.contains("event: call.answered"), "{resumed}");
    let _ = far.wait();
}

fn tcp_trunk(o: ServerOptions, address: std::net::SocketAddr) -> ServerOptions {
    let mut o = o;
    o.trunks.push(format!(
        "name = \"tcp\"\naddress = \"{address}\"\ntransport = \"tcp\"\ncaller_id = \"+15550100000\"\nallowed_prefixes = [\"*\"]\n"
    ));
    o
}

#[test]
fn outbound_call_over_a_tcp_trunk_is_answered_and_hung_up() {
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .arg("-t")
        .arg("t1")
        .calls(Some(1))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("far end over TCP");
    let server = Server::start_with(tcp_trunk(ServerOptions::default(), far.sip_addr()));
    let key = server.api_key();
    let created = place_call(&server, &key, r#"{"to": "+15551230020", "trunk": "tcp"}"#);
    let id = created["id"].as_str().expect("id").to_string();
    server.wait_status(&key, &id, "in-progress");
    server.hangup(&key, &id);
    let c = server.wait_final(&key, &id);
    assert_eq!(c["final_status"], "completed", "{c}");
    let report = far.wait();
    assert_eq!(report.successful, 1, "{report:#?}");
}

#[test]
fn a_tcp_trunk_nobody_listens_on_fails_the_call_with_503() {
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let server = Server::start_with(tcp_trunk(ServerOptions::default(), closed));
    let key = server.api_key();
    let created = place_call(&server, &key, r#"{"to": "+15551230021", "trunk": "tcp"}"#);
    let id = created["id"].as_str().expect("id").to_string();
    let c = server.wait_final(&key, &id);
    assert_eq!(c["final_status"], "failed", "{c}");
    assert_eq!(c["end_sip_code"], 503, "{c}");
}
