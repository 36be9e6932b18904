//! Unit tests per state machine, in simulated time (STYLE.md sec. 9.1 and 9.2): time only moves
//! when a test says so, jumping to the layer's `poll_timeout`.

use super::*;
use crate::clock::test_origin;
use std::net::SocketAddr;

pub(crate) const UAC: &str = "10.0.0.1:5060";
pub(crate) const UAS: &str = "10.0.0.2:5060";

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(crate) fn layer(local: &str) -> TransactionLayer {
    TransactionLayer::new(TransactionConfig::new(addr(local)), 7)
}

pub(crate) fn parse(bytes: &Bytes) -> SipMessage {
    crate::sip::message::parse_lenient(bytes).expect("layer output parses")
}

pub(crate) fn request_of(bytes: &Bytes) -> Request {
    match parse(bytes) {
        SipMessage::Request(r) => r,
        SipMessage::Response(r) => panic!("expected a request, got {}", r.code()),
    }
}

pub(crate) fn response_of(bytes: &Bytes) -> Response {
    match parse(bytes) {
        SipMessage::Response(r) => r,
        SipMessage::Request(r) => panic!("expected a response, got {}", r.line.method),
    }
}

/// A request as the TU would hand it to `send_request` (no Via).
pub(crate) fn outgoing(method: &str, cseq: u32) -> Request {
    let text = format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
         From: <sip:alice@10.0.0.1>;tag=alice1\r\n\
         To: <sip:bob@10.0.0.2>\r\n\
         Call-ID: call-1@10.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@10.0.0.1:5060>\r\n\
         Max-Forwards: 70\r\n\r\n"
    );
    match crate::sip::message::parse_lenient(&Bytes::from(text)) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

/// A request as it arrives from the UAC at 10.0.0.1 (with its Via).
pub(crate) fn incoming(method: &str, branch: &str, cseq_method: &str) -> Request {
    let text = format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n\
         From: <sip:alice@10.0.0.1>;tag=alice1\r\n\
         To: <sip:bob@10.0.0.2>\r\n\
         Call-ID: call-1@10.0.0.1\r\n\
         CSeq: 1 {cseq_method}\r\n\
         Max-Forwards: 70\r\n\r\n"
    );
    match crate::sip::message::parse_lenient(&Bytes::from(text)) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

pub(crate) fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

pub(crate) fn events(l: &mut TransactionLayer) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

type Timed<T> = Vec<(Duration, T)>;

/// Runs timers with no input until nothing is pending; returns (time since `t0`, transmit)
/// pairs and the events, each with its time since `t0`.
fn run_timers(l: &mut TransactionLayer, t0: Instant) -> (Timed<Transmit>, Timed<TransactionEvent>) {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    let mut steps = 0;
    while let Some(at) = l.poll_timeout() {
        steps += 1;
        assert!(steps < 10_000, "timers never settle");
        l.handle_timeout(at);
        sent.extend(transmits(l).into_iter().map(|t| (at - t0, t)));
        evs.extend(events(l).into_iter().map(|e| (at - t0, e)));
    }
    (sent, evs)
}

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Gaps between consecutive transmit times.
fn gaps(times: &[(Duration, Transmit)], first: Duration) -> Vec<Duration> {
    let mut prev = first;
    times
        .iter()
        .map(|(t, _)| {
            let gap = *t - prev;
            prev = *t;
            gap
        })
        .collect()
}

fn respond(l: &mut TransactionLayer, now: Instant, request: &Request, code: u16, tag: &str) {
    let response = Response::for_request(StatusCode::from(code), request, Some(tag));
    l.handle_message(
        now,
        addr(UAS),
        Transport::Udp,
        SipMessage::Response(response),
    );
}

// ---- INVITE client (sec. 17.1.1) ----

#[test]
fn invite_client_into_loss_retransmits_doubling_and_times_out_on_b_at_32s() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, outgoing("INVITE", 1))
        .expect("send");
    assert_eq!(transmits(&mut l).len(), 1);
    let (sent, evs) = run_timers(&mut l, t0);
    let expected: Vec<Duration> = [500, 1000, 2000, 4000, 8000, 16000].map(ms).to_vec();
    assert_eq!(gaps(&sent, Duration::ZERO), expected);
    // Every retransmission is byte-identical to the first send.
    let first = request_of(&sent[0].1.payload);
    assert_eq!(key::top_branch(&first.headers), Some(key.branch.clone()));
    assert!(key.branch.starts_with(MAGIC_COOKIE));
    assert!(sent.windows(2).all(|w| w[0].1.payload == w[1].1.payload));
    match &evs[..] {
        [
            (
                at,
                TransactionEvent::Timeout {
                    key: k,
                    timer: Timer::B,
                },
            ),
            (_, TransactionEvent::Terminated { key: k2 }),
        ] => {
            assert_eq!(*at, Duration::from_secs(32));
            assert_eq!(k, &key);
            assert_eq!(k2, &key);
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert!(l.is_empty());
    assert_eq!(l.stats().timeouts, 1);
}

#[test]
fn invite_client_over_tcp_never_retransmits() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    l.send_request(t0, addr(UAS), Transport::Tcp, outgoing("INVITE", 1))
        .expect("send");
    let first = transmits(&mut l);
    assert_eq!(first.len(), 1);
    assert!(
        request_of(&first[0].payload)
            .headers
            .get_raw(&Name::VIA)
            .next()
            .is_some_and(|v| v.contains("SIP/2.0/TCP"))
    );
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(sent.is_empty(), "tcp retransmitted: {}", sent.len());
    assert!(
        matches!(evs[0], (d, TransactionEvent::Timeout { timer: Timer::B, .. }) if d == Duration::from_secs(32))
    );
}

#[test]
fn invite_client_acks_non_2xx_with_same_branch_and_absorbs_retransmissions() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, outgoing("INVITE", 1))
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    respond(&mut l, t0 + ms(100), &sent, 180, "bob1");
    assert!(
        matches!(&events(&mut l)[..], [TransactionEvent::Response { response, .. }] if response.code() == 180)
    );
    // Proceeding: no more retransmissions of the INVITE.
    assert!(l.poll_timeout().is_none());
    respond(&mut l, t0 + ms(200), &sent, 486, "bob1");
    let ack = transmits(&mut l);
    assert_eq!(ack.len(), 1);
    let ack = request_of(&ack[0].payload);
    assert_eq!(ack.line.method, Method::ACK);
    assert_eq!(key::top_branch(&ack.headers), Some(key.branch.clone()));
    assert_eq!(key::to_tag(&ack.headers).as_deref(), Some("bob1"));
    assert_eq!(
        key::cseq(&ack.headers).map(|c| (c.cseq, c.method)),
        Some((1, Method::ACK))
    );
    assert!(
        matches!(&events(&mut l)[..], [TransactionEvent::Response { response, .. }] if response.code() == 486)
    );
    // A retransmitted 486 gets the ACK again, not the TU.
    respond(&mut l, t0 + ms(700), &sent, 486, "bob1");
    assert_eq!(transmits(&mut l).len(), 1);
    assert!(events(&mut l).is_empty());
    // Timer D: 32 s after the final.
    let (_, evs) = run_timers(&mut l, t0);
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(32_200)));
}

#[test]
fn invite_client_timer_d_is_zero_on_tcp() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    l.send_request(t0, addr(UAS), Transport::Tcp, outgoing("INVITE", 1))
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    respond(&mut l, t0 + ms(50), &sent, 603, "bob1");
    assert_eq!(events(&mut l).len(), 1);
    let (_, evs) = run_timers(&mut l, t0);
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(50)));
}

#[test]
fn invite_client_passes_every_2xx_up_while_accepted_then_ends_on_timer_m() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, outgoing("INVITE", 1))
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    respond(&mut l, t0 + ms(100), &sent, 200, "bob1");
    respond(&mut l, t0 + ms(600), &sent, 200, "bob1");
    let evs = events(&mut l);
    assert_eq!(evs.len(), 2);
    assert!(evs.iter().all(|e| matches!(e, TransactionEvent::Response { key: k, response } if *k == key && response.code() == 200)));
    // The layer never ACKs a 2xx.
    assert!(transmits(&mut l).is_empty());
    let (_, evs) = run_timers(&mut l, t0);
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(32_100)));
    // After Timer M, a 2xx is stray: the TU re-ACKs from its dialog.
    respond(&mut l, t0 + ms(40_000), &sent, 200, "bob1");
    assert!(matches!(
        &events(&mut l)[..],
        [TransactionEvent::StrayResponse { .. }]
    ));
}

// ---- INVITE server (sec. 17.2.1, RFC 6026) ----

fn invite_in(l: &mut TransactionLayer, now: Instant) -> TransactionKey {
    l.handle_message(
        now,
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(incoming("INVITE", "z9hG4bKinv1", "INVITE")),
    );
    match &events(l)[..] {
        [TransactionEvent::IncomingRequest { key, .. }] => key.clone(),
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn invite_server_sends_100_at_once_and_absorbs_retransmitted_invites() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, addr(UAC));
    let trying = response_of(&out[0].payload);
    assert_eq!(trying.code(), 100);
    assert_eq!(key::to_tag(&trying.headers), None);
    // Retransmitted INVITE: 100 again, no event.
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    l.handle_message(
        t0 + ms(500),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(invite.clone()),
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 100);
    assert!(events(&mut l).is_empty());
    // After a 180, the retransmission gets the 180.
    let ringing = Response::for_request(StatusCode::RINGING, &invite, Some("bob1"));
    l.send_response(t0 + ms(600), &key, ringing).expect("180");
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 180);
    l.handle_message(
        t0 + ms(1500),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(invite),
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 180);
    assert!(events(&mut l).is_empty());
    assert_eq!(l.stats().absorbed_requests, 2);
}

#[test]
fn responses_carry_received_and_rport_of_the_real_source() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let mut invite = incoming("INVITE", "z9hG4bKnat", "INVITE");
    invite
        .headers
        .insert(Name::VIA, "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKproxy");
    let public = addr("192.0.2.7:40000");
    l.handle_message(t0, public, Transport::Udp, SipMessage::Request(invite));
    let trying = response_of(&transmits(&mut l)[0].payload);
    let vias: Vec<String> = trying
        .headers
        .get_raw(&Name::VIA)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnat;rport=40000;received=192.0.2.7",
            "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKproxy"
        ]
    );
    assert!(
        matches!(&events(&mut l)[..], [TransactionEvent::IncomingRequest { source, .. }] if *source == public)
    );
}

#[test]
fn invite_server_retransmits_non_2xx_on_g_until_ack_then_ends_on_i() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    transmits(&mut l);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    let busy = Response::for_request(StatusCode::BUSY_HERE, &invite, Some("bob1"));
    l.send_response(t0, &key, busy).expect("486");
    assert_eq!(transmits(&mut l).len(), 1);
    // Let G fire up to 7.5 s: 0.5, 1, 2, 4 s gaps.
    let mut times = Vec::new();
    while let Some(at) = l.poll_timeout().filter(|at| *at <= t0 + ms(7_500)) {
        l.handle_timeout(at);
        times.extend(transmits(&mut l).into_iter().map(|t| (at - t0, t)));
    }
    assert_eq!(
        gaps(&times, Duration::ZERO),
        [500, 1000, 2000, 4000].map(ms).to_vec()
    );
    // ACK (same branch): Confirmed, no more G, no event; a second ACK is absorbed.
    let ack = incoming("ACK", "z9hG4bKinv1", "ACK");
    l.handle_message(
        t0 + ms(8_000),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(ack.clone()),
    );
    l.handle_message(
        t0 + ms(8_100),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(ack),
    );
    assert!(events(&mut l).is_empty());
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(sent.is_empty());
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(13_000)));
}

#[test]
fn invite_server_times_out_on_h_without_ack() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    l.send_response(
        t0,
        &key,
        Response::for_request(StatusCode::from(480), &invite, Some("b")),
    )
    .expect("480");
    transmits(&mut l);
    let (sent, evs) = run_timers(&mut l, t0);
    // G: 0.5, 1, 2, 4, 4, ... capped at T2 until H at 32 s.
    let g = gaps(&sent, Duration::ZERO);
    assert_eq!(&g[..5], &[500, 1000, 2000, 4000, 4000].map(ms));
    assert!(g.iter().all(|d| *d <= timers::T2));
    assert!(
        matches!(&evs[0], (d, TransactionEvent::Timeout { timer: Timer::H, .. }) if *d == Duration::from_secs(32))
    );
}

#[test]
fn invite_server_accepted_absorbs_invites_retransmits_2xx_until_ack_and_passes_ack_up() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    transmits(&mut l);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    let ok = Response::for_request(StatusCode::OK, &invite, Some("bob1"));
    l.send_response(t0, &key, ok).expect("200");
    assert_eq!(transmits(&mut l).len(), 1);
    // Retransmitted INVITE in Accepted: absorbed silently (RFC 6026).
    l.handle_message(
        t0 + ms(100),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(invite.clone()),
    );
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    // The layer resends the 2xx at 0.5 and 1.5 s.
    for expect in [500, 1500] {
        let at = l.poll_timeout().expect("2xx timer");
        assert_eq!(at - t0, ms(expect));
        l.handle_timeout(at);
        assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 200);
    }
    // The ACK for the 2xx has its own branch: passed up, and stops the 2xx retransmissions.
    let ack = incoming("ACK", "z9hG4bKack1", "ACK");
    l.handle_message(
        t0 + ms(2000),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(ack),
    );
    assert!(
        matches!(&events(&mut l)[..], [TransactionEvent::StrayAck { request, .. }] if request.line.method == Method::ACK)
    );
    // The TU may still resend the 2xx while Accepted.
    l.send_response(
        t0 + ms(2100),
        &key,
        Response::for_request(StatusCode::OK, &invite, Some("bob1")),
    )
    .expect("2xx again");
    assert_eq!(transmits(&mut l).len(), 1);
    // A final other than 2xx is refused now.
    assert_eq!(
        l.send_response(
            t0 + ms(2100),
            &key,
            Response::for_request(StatusCode::BUSY_HERE, &invite, Some("bob1"))
        ),
        Err(TransactionError::InvalidState)
    );
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(sent.is_empty());
    assert!(
        matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == Duration::from_secs(32))
    );
}

#[test]
fn invite_server_reports_ack_timeout_when_2xx_is_never_acked() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    l.send_response(
        t0,
        &key,
        Response::for_request(StatusCode::OK, &invite, Some("b")),
    )
    .expect("200");
    transmits(&mut l);
    let (sent, evs) = run_timers(&mut l, t0);
    let g = gaps(&sent, Duration::ZERO);
    assert_eq!(&g[..5], &[500, 1000, 2000, 4000, 4000].map(ms));
    assert!(
        matches!(&evs[..], [(_, TransactionEvent::AckTimeout { key: k }), (_, TransactionEvent::Terminated { .. })] if *k == key)
    );
}

// ---- non-INVITE client (sec. 17.1.2) ----

#[test]
fn non_invite_client_retransmits_capped_at_t2_and_times_out_on_f() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, outgoing("OPTIONS", 1))
        .expect("send");
    transmits(&mut l);
    let (sent, evs) = run_timers(&mut l, t0);
    let expected: Vec<Duration> = [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
        .map(ms)
        .to_vec();
    assert_eq!(gaps(&sent, Duration::ZERO), expected);
    match &evs[..] {
        [
            (
                at,
                TransactionEvent::Timeout {
                    key: k,
                    timer: Timer::F,
                },
            ),
            (_, TransactionEvent::Terminated { .. }),
        ] => {
            assert_eq!(*at, Duration::from_secs(32));
            assert_eq!(k, &key);
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn non_invite_client_proceeding_retransmits_at_t2_and_completes_with_timer_k() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    l.send_request(t0, addr(UAS), Transport::Udp, outgoing("BYE", 2))
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    respond(&mut l, t0 + ms(100), &sent, 100, "bob1");
    assert_eq!(events(&mut l).len(), 1);
    // Timer E still fires at 0.5 s, then every T2 in Proceeding.
    let at = l.poll_timeout().expect("E");
    assert_eq!(at - t0, ms(500));
    l.handle_timeout(at);
    assert_eq!(transmits(&mut l).len(), 1);
    assert_eq!(l.poll_timeout().map(|t| t - t0), Some(ms(4_500)));
    respond(&mut l, t0 + ms(1_000), &sent, 200, "bob1");
    assert!(
        matches!(&events(&mut l)[..], [TransactionEvent::Response { response, .. }] if response.code() == 200)
    );
    // A retransmitted final is absorbed.
    respond(&mut l, t0 + ms(1_200), &sent, 200, "bob1");
    assert!(events(&mut l).is_empty());
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(sent.is_empty());
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(6_000)));
}

#[test]
fn non_invite_client_over_tcp_has_no_e_and_zero_k() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    l.send_request(t0, addr(UAS), Transport::Tcp, outgoing("OPTIONS", 1))
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    assert_eq!(
        l.poll_timeout().map(|t| t - t0),
        Some(Duration::from_secs(32))
    );
    respond(&mut l, t0 + ms(30), &sent, 200, "x");
    assert_eq!(events(&mut l).len(), 1);
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(sent.is_empty());
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(30)));
}

#[test]
fn a_top_via_without_branch_gets_one_and_a_given_branch_is_kept() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let mut request = outgoing("OPTIONS", 1);
    request
        .headers
        .insert(Name::VIA, "SIP/2.0/UDP 192.0.2.1:5070;rport");
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, request)
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    let vias: Vec<String> = sent
        .headers
        .get_raw(&Name::VIA)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(vias.len(), 1);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 192.0.2.1:5070;rport;branch=z9hG4bK"),
        "{vias:?}"
    );
    assert_eq!(key::top_branch(&sent.headers), Some(key.branch.clone()));

    let mut request = outgoing("OPTIONS", 2);
    request
        .headers
        .insert(Name::VIA, "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKmine");
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, request)
        .expect("send");
    assert_eq!(key.branch, "z9hG4bKmine");
}

#[test]
fn ack_cannot_be_sent_in_a_transaction_and_cseq_must_match() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    assert_eq!(
        l.send_request(t0, addr(UAS), Transport::Udp, outgoing("ACK", 1)),
        Err(TransactionError::AckNotATransaction)
    );
    let mut bad = outgoing("BYE", 1);
    bad.line.method = Method::INFO;
    assert_eq!(
        l.send_request(t0, addr(UAS), Transport::Udp, bad),
        Err(TransactionError::MissingHeader("CSeq"))
    );
    assert!(transmits(&mut l).is_empty());
}

// ---- non-INVITE server (sec. 17.2.2) ----

#[test]
fn non_invite_server_absorbs_retransmissions_and_ends_on_timer_j() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let bye = incoming("BYE", "z9hG4bKbye1", "BYE");
    l.handle_message(
        t0,
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(bye.clone()),
    );
    let key = match &events(&mut l)[..] {
        [TransactionEvent::IncomingRequest { key, request, .. }] => {
            assert_eq!(request.line.method, Method::BYE);
            key.clone()
        }
        other => panic!("unexpected events {other:?}"),
    };
    // Non-INVITE: no automatic 100.
    assert!(transmits(&mut l).is_empty());
    // Trying: a retransmission is dropped silently.
    l.handle_message(
        t0 + ms(500),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(bye.clone()),
    );
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    l.send_response(
        t0 + ms(600),
        &key,
        Response::for_request(StatusCode::OK, &bye, Some("bob1")),
    )
    .expect("200");
    assert_eq!(transmits(&mut l).len(), 1);
    // Completed: a retransmission gets the final again.
    l.handle_message(
        t0 + ms(1_500),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(bye.clone()),
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 200);
    assert!(events(&mut l).is_empty());
    assert_eq!(
        l.send_response(
            t0 + ms(1_600),
            &key,
            Response::for_request(StatusCode::OK, &bye, None)
        ),
        Err(TransactionError::InvalidState)
    );
    let (sent, evs) = run_timers(&mut l, t0);
    assert!(
        sent.is_empty(),
        "the server never retransmits non-INVITE responses on its own"
    );
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(32_600)));
    assert!(matches!(
        l.send_response(
            t0 + ms(40_000),
            &key,
            Response::for_request(StatusCode::OK, &bye, None)
        ),
        Err(TransactionError::UnknownTransaction(_))
    ));
}

#[test]
fn non_invite_server_provisional_is_resent_on_retransmission() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let info = incoming("INFO", "z9hG4bKinfo", "INFO");
    l.handle_message(
        t0,
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(info.clone()),
    );
    let key = match &events(&mut l)[..] {
        [TransactionEvent::IncomingRequest { key, .. }] => key.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    l.send_response(
        t0,
        &key,
        Response::for_request(StatusCode::TRYING, &info, None),
    )
    .expect("100");
    transmits(&mut l);
    l.handle_message(
        t0 + ms(500),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(info),
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 100);
}

#[test]
fn non_invite_server_timer_j_is_zero_on_tcp() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let options = incoming("OPTIONS", "z9hG4bKopt", "OPTIONS");
    l.handle_message(
        t0,
        addr(UAC),
        Transport::Tcp,
        SipMessage::Request(options.clone()),
    );
    let key = match &events(&mut l)[..] {
        [
            TransactionEvent::IncomingRequest {
                key,
                transport: Transport::Tcp,
                ..
            },
        ] => key.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    l.send_response(
        t0 + ms(5),
        &key,
        Response::for_request(StatusCode::OK, &options, Some("t")),
    )
    .expect("200");
    assert_eq!(transmits(&mut l)[0].transport, Transport::Tcp);
    let (_, evs) = run_timers(&mut l, t0);
    assert!(matches!(&evs[..], [(d, TransactionEvent::Terminated { .. })] if *d == ms(5)));
}

// ---- CANCEL (sec. 9) ----

#[test]
fn cancel_of_pending_invite_gets_200_and_the_invite_487() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let key = invite_in(&mut l, t0);
    transmits(&mut l);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    l.send_response(
        t0,
        &key,
        Response::for_request(StatusCode::RINGING, &invite, Some("bob1")),
    )
    .expect("180");
    transmits(&mut l);
    let cancel = incoming("CANCEL", "z9hG4bKinv1", "CANCEL");
    l.handle_message(
        t0 + ms(300),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(cancel.clone()),
    );
    let out: Vec<Response> = transmits(&mut l)
        .iter()
        .map(|t| response_of(&t.payload))
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].code(), 200);
    assert_eq!(
        key::cseq(&out[0].headers).map(|c| c.method),
        Some(Method::CANCEL)
    );
    assert_eq!(out[1].code(), 487);
    assert_eq!(
        key::cseq(&out[1].headers).map(|c| c.method),
        Some(Method::INVITE)
    );
    // The 487 carries the To tag of the earlier 180.
    assert_eq!(key::to_tag(&out[1].headers).as_deref(), Some("bob1"));
    assert!(matches!(&events(&mut l)[..], [TransactionEvent::Cancelled { key: k }] if *k == key));
    // The TU can no longer answer the INVITE.
    assert_eq!(
        l.send_response(
            t0 + ms(400),
            &key,
            Response::for_request(StatusCode::OK, &invite, Some("bob1"))
        ),
        Err(TransactionError::InvalidState)
    );
    // A retransmitted CANCEL gets its 200 again.
    l.handle_message(
        t0 + ms(800),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(cancel),
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 200);
    // The ACK for the 487 confirms the INVITE transaction.
    let ack = incoming("ACK", "z9hG4bKinv1", "ACK");
    l.handle_message(
        t0 + ms(900),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(ack),
    );
    assert!(events(&mut l).is_empty());
    let (sent, _) = run_timers(&mut l, t0);
    assert!(
        sent.iter().all(|(at, _)| *at < ms(900)),
        "no 487 after the ack"
    );
    assert!(l.is_empty());
}

#[test]
fn cancel_without_match_gets_481_and_cancel_after_final_only_200() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    let cancel = incoming("CANCEL", "z9hG4bKnothing", "CANCEL");
    l.handle_message(t0, addr(UAC), Transport::Udp, SipMessage::Request(cancel));
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 481);
    assert!(events(&mut l).is_empty());

    let key = invite_in(&mut l, t0);
    let invite = incoming("INVITE", "z9hG4bKinv1", "INVITE");
    l.send_response(
        t0,
        &key,
        Response::for_request(StatusCode::OK, &invite, Some("bob1")),
    )
    .expect("200");
    transmits(&mut l);
    let cancel = incoming("CANCEL", "z9hG4bKinv1", "CANCEL");
    l.handle_message(
        t0 + ms(10),
        addr(UAC),
        Transport::Udp,
        SipMessage::Request(cancel),
    );
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(response_of(&out[0].payload).code(), 200);
    assert!(events(&mut l).is_empty());
}

#[test]
fn client_cancel_copies_the_invite_and_is_refused_before_a_provisional() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let mut invite = outgoing("INVITE", 5);
    invite.headers.insert(Name::ROUTE, "<sip:proxy.example;lr>");
    let key = l
        .send_request(t0, addr(UAS), Transport::Udp, invite)
        .expect("send");
    let sent = request_of(&transmits(&mut l)[0].payload);
    assert_eq!(
        l.create_cancel(&key).err(),
        Some(TransactionError::InvalidState)
    );
    respond(&mut l, t0 + ms(100), &sent, 180, "bob1");
    events(&mut l);
    let cancel_key = l.send_cancel(t0 + ms(200), &key).expect("cancel");
    assert_eq!(cancel_key.branch, key.branch);
    assert_eq!(cancel_key.method, Method::CANCEL);
    let cancel = request_of(&transmits(&mut l)[0].payload);
    assert_eq!(cancel.line.method, Method::CANCEL);
    assert_eq!(
        format!("{:?}", cancel.line.uri),
        format!("{:?}", sent.line.uri)
    );
    assert_eq!(key::call_id(&cancel.headers), key::call_id(&sent.headers));
    assert_eq!(key::from_tag(&cancel.headers), key::from_tag(&sent.headers));
    assert_eq!(
        key::to_tag(&cancel.headers),
        None,
        "the To of the INVITE, not of the 180"
    );
    assert_eq!(
        key::cseq(&cancel.headers).map(|c| (c.cseq, c.method)),
        Some((5, Method::CANCEL))
    );
    assert_eq!(cancel.headers.get_raw(&Name::ROUTE).count(), 1);
    // The CANCEL's 200 and the INVITE's 487 go to their own transactions.
    let cancel_ok = Response::for_request(StatusCode::OK, &cancel, Some("bob1"));
    l.handle_message(
        t0 + ms(300),
        addr(UAS),
        Transport::Udp,
        SipMessage::Response(cancel_ok),
    );
    respond(&mut l, t0 + ms(310), &sent, 487, "bob1");
    let evs = events(&mut l);
    assert!(
        matches!(&evs[0], TransactionEvent::Response { key: k, response } if *k == cancel_key && response.code() == 200)
    );
    assert!(
        matches!(&evs[1], TransactionEvent::Response { key: k, response } if *k == key && response.code() == 487)
    );
    // The 487 was ACKed by the layer.
    assert_eq!(
        request_of(&transmits(&mut l)[0].payload).line.method,
        Method::ACK
    );
}

// ---- robustness and bounds ----

#[test]
fn transport_error_ends_the_transactions_toward_that_peer() {
    let t0 = test_origin();
    let mut l = layer(UAC);
    let lost = l
        .send_request(t0, addr(UAS), Transport::Tcp, outgoing("INVITE", 1))
        .expect("invite");
    let other = l
        .send_request(
            t0,
            addr("10.0.0.3:5060"),
            Transport::Tcp,
            outgoing("OPTIONS", 2),
        )
        .expect("options");
    transmits(&mut l);
    l.handle_transport_error(t0 + ms(10), addr(UAS), Transport::Tcp);
    match &events(&mut l)[..] {
        [
            TransactionEvent::TransportError { key },
            TransactionEvent::Terminated { key: k2 },
        ] => {
            assert_eq!(key, &lost);
            assert_eq!(k2, &lost);
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert_eq!(l.len(), 1);
    assert!(l.create_cancel(&other).is_err());
}

#[test]
fn requests_missing_headers_get_400_and_garbage_never_panics() {
    let t0 = test_origin();
    let mut l = layer(UAS);
    // Answerable (Via, From, To, Call-ID, CSeq readable) but no Max-Forwards: 400.
    let text = "OPTIONS sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert!(
        l.handle_datagram(t0, addr(UAC), Transport::Udp, text.as_bytes())
            .is_err()
    );
    assert_eq!(response_of(&transmits(&mut l)[0].payload).code(), 400);
    assert!(events(&mut l).is_empty());
    // Without a Via nothing can be answered.
    let text = "OPTIONS sip:bob@10.0.0.2 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert!(
        l.handle_datagram(t0, addr(UAC), Transport::Udp, text.as_bytes())
            .is_err()
    );
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.stats().malformed_requests, 1);
    assert_eq!(l.stats().unparseable, 1);
    // Seeded random mutations of a valid INVITE: never a panic.
    let valid = incoming("INVITE", "z9hG4bKfuzz", "INVITE").to_bytes();
    let mut rng = SmallRng::seed_from_u64(1);
    for i in 0..3_000u32 {
        let mut bytes = valid.to_vec();
        for _ in 0..rng.gen_range(1..8) {
            let pos = rng.gen_range(0..bytes.len());
            match rng.gen_range(0..3) {
                0 => bytes[pos] = rng.r#gen(),
                1 => bytes.truncate(pos.max(1)),
                _ => bytes.insert(pos, b"\r\n:;,<>@ \"\x00"[rng.gen_range(0..11)]),
            }
        }
        let now = t0 + ms(u64::from(i));
        let _ = l.handle_datagram(now, addr(UAC), Transport::Udp, &Bytes::from(bytes));
        l.handle_timeout(now);
        transmits(&mut l);
        events(&mut l);
    }
    let stray = Response::with_status(StatusCode::OK);
    l.handle_message(t0, addr(UAC), Transport::Udp, SipMessage::Response(stray));
    assert!(matches!(
        &events(&mut l)[..],
        [TransactionEvent::StrayResponse { .. }]
    ));
}

#[test]
fn live_transactions_are_capped() {
    let t0 = test_origin();
    let mut config = TransactionConfig::new(addr(UAS));
    config.max_transactions = 2;
    let mut l = TransactionLayer::new(config, 1);
    for (i, branch) in ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"].iter().enumerate() {
        l.handle_message(
            t0,
            addr(UAC),
            Transport::Udp,
            SipMessage::Request(incoming("OPTIONS", branch, "OPTIONS")),
        );
        let out = transmits(&mut l);
        if i < 2 {
            assert!(out.is_empty());
        } else {
            let refused = response_of(&out[0].payload);
            assert_eq!(refused.code(), 503);
            assert!(refused.headers.contains(&Name::RETRY_AFTER));
        }
    }
    assert_eq!(events(&mut l).len(), 2);
    assert_eq!(l.len(), 2);
    assert_eq!(
        l.send_request(t0, addr(UAC), Transport::Udp, outgoing("OPTIONS", 1)),
        Err(TransactionError::Capacity(2))
    );
    assert_eq!(l.stats().rejected_capacity, 2);
}

mod sim;

proptest::proptest! {
    /// Arbitrary bytes after a plausible start line never panic the layer.
    #[test]
    fn arbitrary_datagrams_never_panic(
        start in proptest::sample::select(vec!["INVITE sip:a@b SIP/2.0\r\n", "ACK sip:a@b SIP/2.0\r\n", "CANCEL sip:a@b SIP/2.0\r\n", "SIP/2.0 200 OK\r\n", ""]),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        millis in 0u64..100_000,
    ) {
        let t0 = test_origin();
        let mut l = layer(UAS);
        let mut bytes = start.as_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        let now = t0 + ms(millis);
        let _ = l.handle_datagram(now, addr(UAC), Transport::Udp, &Bytes::from(bytes));
        l.handle_timeout(now + Duration::from_secs(64));
        transmits(&mut l);
        events(&mut l);
    }
}
