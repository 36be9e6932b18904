//! Inbound calls against the real binary with real peers (SIPp) over loopback.
//!
//! Issue 2, "Done when": SIPp's built-in `uac` places 200 calls at 20 calls/s to a number routed
//! to `answer+echo`: 200 successful, 0 failed; with RTP from SIPp's pcap the echoed packets
//! come back. Also the "Bad input" rules for SIP: 404, 488, 400, never a panic, calls in
//! progress undisturbed.

mod common;

use common::api::request;
use common::sipp::{Scenario, Sipp, udp_truesize};
use common::{Server, exchange, invite};
use std::time::Duration;

#[test]
fn sipp_uac_200_calls_at_20_cps_to_echo_all_succeed_and_are_stored() {
    let server = Server::start();
    let report = Sipp::uac(Scenario::built_in("uac"), server.sip)
        .service("echo")
        .calls(Some(200))
        .rate(20.0)
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .run()
        .expect("sipp runs");
    assert_eq!(
        report.successful,
        200,
        "{report:#?}\n--- server ---\n{}",
        server.log()
    );
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.exit_code, Some(0), "{report:#?}");

    let key = server.api_key();
    // Rows are written right after each call ends; allow the writer a moment.
    let calls = common::poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let c = server.all_calls(&key, "&direction=inbound");
        (c.len() >= 200).then_some(c)
    })
    .expect("200 call rows");
    assert_eq!(calls.len(), 200);
    for c in &calls {
        assert_eq!(c["status"], "completed", "{c}");
        assert_eq!(c["final_status"], "completed", "{c}");
        assert_eq!(c["ended_by"], "caller", "{c}");
        assert_eq!(c["to"], "echo", "{c}");
        for t in ["created_at", "ringing_at", "answered_at", "ended_at"] {
            assert!(c[t].is_string(), "{t} missing in {c}");
        }
    }
}

#[test]
fn rtp_from_sipp_pcap_is_echoed_back() {
    let server = Server::start();
    // uac_echo.xml plays SIPp's g711a.pcap (A-law, 7 s) from its media port for 4 s per call.
    let report = Sipp::uac(Scenario::ours("uac_echo"), server.sip)
        .service("echo")
        .calls(Some(2))
        .rate(2.0)
        .pause(Duration::from_millis(4_000))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .run()
        .expect("sipp runs");
    assert_eq!(
        report.successful,
        2,
        "{report:#?}\n--- server ---\n{}",
        server.log()
    );
    assert!(
        report.media.received_any(),
        "no echoed RTP reached SIPp: {report:#?}"
    );
    // 4 s of audio per call at 20 ms packets is ~200 echoed packets per call; ask for most.
    let echoed = report.media.estimated_packets(udp_truesize(172));
    assert!(
        echoed >= 250,
        "only ~{echoed} echoed packets came back: {:?}",
        report.media
    );

    let key = server.api_key();
    let calls = common::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let c = server.all_calls(&key, "");
        (c.len() >= 2 && c.iter().all(|c| c["final_status"].is_string())).then_some(c)
    })
    .expect("2 finished call rows");
    for c in &calls {
        let rtp = &c["rtp"];
        assert!(rtp["packets_in"].as_u64().unwrap_or(0) > 100, "{c}");
        assert!(rtp["packets_out"].as_u64().unwrap_or(0) > 100, "{c}");
    }
}

const G729_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";

#[test]
fn bad_sip_gets_the_right_answers_and_never_disturbs_a_call_in_progress() {
    let server = Server::start();
    // A long call in progress the whole time (uac_echo with a 12 s pause).
    let call = Sipp::uac(Scenario::ours("uac_echo"), server.sip)
        .service("echo")
        .calls(Some(1))
        .pause(Duration::from_secs(12))
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .start()
        .expect("sipp starts");

    // Unknown number: 404.
    let r = exchange(
        &server,
        invite(&server, "nobody", "c404", "").as_bytes(),
        Duration::from_secs(3),
    )
    .expect("an answer to an INVITE for an unknown number");
    assert!(r.contains("SIP/2.0 404"), "{r}");
    // No common codec: 488.
    let r = exchange(
        &server,
        invite(&server, "echo", "c488", G729_ONLY).as_bytes(),
        Duration::from_secs(3),
    )
    .expect("an answer to a G.729-only offer");
    assert!(r.contains("SIP/2.0 488"), "{r}");
    // Missing Max-Forwards but answerable: 400 naming the reason.
    let no_mf = invite(&server, "echo", "c400", "").replace("Max-Forwards: 70\r\n", "");
    let r = exchange(&server, no_mf.as_bytes(), Duration::from_secs(3)).expect("a 400");
    assert!(r.contains("SIP/2.0 400"), "{r}");
    // Wrong Content-Length (longer than the body): 400 or dropped, never a crash.
    let bad_len = invite(&server, "echo", "clen", "v=0\r\n")
        .replace("Content-Length: 5", "Content-Length: 500");
    if let Some(r) = exchange(&server, bad_len.as_bytes(), Duration::from_secs(2)) {
        assert!(r.contains("SIP/2.0 400"), "{r}");
    }
    // Garbage, truncated, binary: dropped (no answer possible), server stays up.
    for junk in [
        &b"hello"[..],
        b"INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP",
        b"\x00\xff\x10\x80garbage\r\n\r\n",
    ] {
        assert!(exchange(&server, junk, Duration::from_millis(500)).is_none());
    }
    // Unknown and unsupported methods.
    let foo = invite(&server, "echo", "cfoo", "")
        .replace("INVITE sip:", "FOO sip:")
        .replace("1 INVITE", "1 FOO");
    let r = exchange(&server, foo.as_bytes(), Duration::from_secs(3)).expect("an answer to FOO");
    assert!(r.contains("SIP/2.0 501"), "{r}");
    let sub = invite(&server, "echo", "csub", "")
        .replace("INVITE sip:", "SUBSCRIBE sip:")
        .replace("1 INVITE", "1 SUBSCRIBE");
    let r =
        exchange(&server, sub.as_bytes(), Duration::from_secs(3)).expect("an answer to SUBSCRIBE");
    assert!(r.contains("SIP/2.0 405") && r.contains("Allow:"), "{r}");
    let opt = invite(&server, "echo", "copt", "")
        .replace("INVITE sip:", "OPTIONS sip:")
        .replace("1 INVITE", "1 OPTIONS");
    let r =
        exchange(&server, opt.as_bytes(), Duration::from_secs(3)).expect("an answer to OPTIONS");
    assert!(r.contains("SIP/2.0 200") && r.contains("Allow:"), "{r}");

    // The call in progress was not disturbed: it completes normally with its RTP echoed.
    let report = call.wait();
    assert_eq!(
        report.successful,
        1,
        "{report:#?}\n--- server ---\n{}",
        server.log()
    );
    assert!(report.media.received_any(), "{report:#?}");
    // And the server is still serving.
    let (code, _) =
        common::http_get(server.http, "/healthz", Duration::from_secs(2)).expect("healthz");
    assert_eq!(code, 200);
}

#[test]
fn reject_route_answers_its_code_and_records_a_busy_call() {
    let server = Server::start();
    let report = Sipp::uac(Scenario::ours("uac_reject"), server.sip)
        .service("busy")
        .calls(Some(1))
        .timeout(Duration::from_secs(30), Duration::from_secs(5))
        .run()
        .expect("sipp runs");
    assert_eq!(report.successful, 1, "{report:#?}");
    let key = server.api_key();
    let calls = common::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let c = server.all_calls(&key, "&status=busy");
        (!c.is_empty()).then_some(c)
    })
    .expect("a busy call row");
    assert_eq!(calls[0]["end_sip_code"], 486);
    let _ = request(server.http, "GET", "/healthz", None, &[], None);
}

#[test]
fn sipp_over_tcp_calls_echo_and_all_succeed() {
    let server = Server::start();
    // `-t t1`: one TCP connection for all calls; messages framed by Content-Length.
    let report = Sipp::uac(Scenario::built_in("uac"), server.sip)
        .service("echo")
        .arg("-t")
        .arg("t1")
        .calls(Some(50))
        .rate(10.0)
        .timeout(Duration::from_secs(60), Duration::from_secs(5))
        .run()
        .expect("sipp runs");
    assert_eq!(
        report.successful,
        50,
        "{report:#?}\n--- server ---\n{}",
        server.log()
    );
    assert_eq!(report.failed, 0, "{report:#?}");
    // Over TCP nothing is retransmitted.
    assert_eq!(report.retransmissions, 0, "{report:#?}");
}
