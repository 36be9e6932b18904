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
    SipMessage::parse(bytes).expect("layer output parses")
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
    match SipMessage::parse(&Bytes::from(text)) {
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
    match SipMessage::parse(&Bytes::from(text)) {
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
fn run_timers(
    l: &mut TransactionLayer,
    t0: Instant,
) -> (Timed<Transmit>, Timed<TransactionEvent>) {
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

fn ms(v: u64) -> Duration {
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
