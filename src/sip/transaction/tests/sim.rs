//! Simulated-time harness (STYLE.md sec. 9.2): two [`TransactionLayer`]s, a UAC and a UAS TU
//! using dialogs, and a seeded in-memory network with loss, delay and duplication. Time jumps
//! to the earliest deadline (a layer's `poll_timeout`, a packet's arrival or a TU timer), so
//! 32 s of SIP timers run in milliseconds.

use super::*;
use crate::sip::dialog::{Dialog, DialogId, DialogSet};
use ezk_sip_types::header::typed::Contact;
use ezk_sip_types::uri::NameAddr;

/// Network conditions for one direction-agnostic link.
#[derive(Debug, Clone, Copy)]
struct Conditions {
    /// Probability a UDP datagram is lost.
    loss: f64,
    /// Probability a delivered UDP datagram arrives twice.
    duplicate: f64,
    /// Delay range of UDP datagrams (TCP uses the minimum, in order, never lost).
    delay: (Duration, Duration),
}

impl Conditions {
    fn clean() -> Self {
        Conditions {
            loss: 0.0,
            duplicate: 0.0,
            delay: (ms(20), ms(20)),
        }
    }
}

struct Packet {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    transmit: Transmit,
}

/// Seeded in-memory network.
struct Net {
    rng: SmallRng,
    conditions: Conditions,
    in_flight: Vec<Packet>,
    seq: u64,
    sent: u64,
}

impl Net {
    fn new(seed: u64, conditions: Conditions) -> Self {
        Net {
            rng: SmallRng::seed_from_u64(seed),
            conditions,
            in_flight: Vec::new(),
            seq: 0,
            sent: 0,
        }
    }

    fn send(&mut self, now: Instant, from: SocketAddr, transmit: Transmit) {
        self.sent += 1;
        let c = self.conditions;
        let copies = if transmit.transport.is_reliable() {
            1
        } else if self.rng.gen_bool(c.loss) {
            0
        } else if self.rng.gen_bool(c.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if transmit.transport.is_reliable() || c.delay.0 == c.delay.1 {
                c.delay.0
            } else {
                self.rng.gen_range(c.delay.0..c.delay.1)
            };
            self.seq += 1;
            self.in_flight.push(Packet {
                at: now + delay,
                seq: self.seq,
                from,
                transmit: transmit.clone(),
            });
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.at).min()
    }

    /// The earliest due packet (ties in sending order).
    fn pop_due(&mut self, now: Instant) -> Option<Packet> {
        let idx = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at <= now)
            .min_by_key(|(_, p)| (p.at, p.seq))
            .map(|(i, _)| i)?;
        Some(self.in_flight.swap_remove(idx))
    }
}

/// Both layers and the network; TUs live in the tests.
struct Sim {
    now: Instant,
    t0: Instant,
    uac: TransactionLayer,
    uas: TransactionLayer,
    net: Net,
    steps: u32,
}

#[derive(Debug)]
enum Side {
    Uac,
    Uas,
}

impl Sim {
    fn new(seed: u64, conditions: Conditions) -> Self {
        let t0 = test_origin();
        Sim {
            now: t0,
            t0,
            uac: TransactionLayer::new(TransactionConfig::new(addr(UAC)), seed),
            uas: TransactionLayer::new(TransactionConfig::new(addr(UAS)), seed + 1),
            net: Net::new(seed + 2, conditions),
            steps: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Puts both layers' transmits on the network.
    fn flush(&mut self) {
        while let Some(t) = self.uac.poll_transmit() {
            self.net.send(self.now, addr(UAC), t);
        }
        while let Some(t) = self.uas.poll_transmit() {
            self.net.send(self.now, addr(UAS), t);
        }
    }

    /// Advances to the earliest of the layers' deadlines, the next arrival and `tu_deadline`,
    /// runs everything due then, and returns the events produced. `None` when nothing is left
    /// to happen.
    fn step(&mut self, tu_deadline: Option<Instant>) -> Option<Vec<(Side, TransactionEvent)>> {
        self.flush();
        self.steps += 1;
        assert!(self.steps < 100_000, "simulation does not settle");
        let next = [
            self.uac.poll_timeout(),
            self.uas.poll_timeout(),
            self.net.next_at(),
            tu_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        self.now = self.now.max(next);
        let now = self.now;
        while let Some(packet) = self.net.pop_due(now) {
            let layer = if packet.transmit.destination == addr(UAS) {
                &mut self.uas
            } else {
                &mut self.uac
            };
            layer
                .handle_datagram(
                    now,
                    packet.from,
                    packet.transmit.transport,
                    &packet.transmit.payload,
                )
                .expect("layers only send parseable messages");
        }
        self.uac.handle_timeout(now);
        self.uas.handle_timeout(now);
        let mut out: Vec<(Side, TransactionEvent)> = Vec::new();
        out.extend(events(&mut self.uac).into_iter().map(|e| (Side::Uac, e)));
        out.extend(events(&mut self.uas).into_iter().map(|e| (Side::Uas, e)));
        Some(out)
    }
}

fn contact(host: &str) -> Contact {
    Contact::new(NameAddr::uri(
        format!("sip:{host}").parse().expect("contact uri"),
    ))
}

/// What happened in one simulated call.
#[derive(Debug, Default)]
struct CallOutcome {
    uac_got_180: bool,
    uac_acks_sent: u32,
    uas_acked: bool,
    bye_answered_at: Option<Duration>,
    uas_invites_seen: u32,
    uas_byes_seen: u32,
    failures: Vec<String>,
}

/// A UAC calls, the UAS rings for 1 s and answers, the UAC hangs up 2 s after the answer.
fn run_call(seed: u64, conditions: Conditions, transport: Transport) -> (CallOutcome, Sim) {
    let mut sim = Sim::new(seed, conditions);
    let mut outcome = CallOutcome::default();
    let mut invite = outgoing("INVITE", 1);
    invite.headers.insert_named(&contact("alice@10.0.0.1:5060"));
    let invite_key = sim
        .uac
        .send_request(sim.now, addr(UAS), transport, invite)
        .expect("invite");
    let sent_invite = request_of(&sim.uac.poll_transmit().expect("invite out").payload);
    sim.net.send(
        sim.now,
        addr(UAC),
        Transmit {
            destination: addr(UAS),
            transport,
            payload: sent_invite.to_bytes(),
        },
    );

    // UAC TU state.
    let mut uac_dialogs = DialogSet::default();
    let mut uac_ack: Option<Request> = None;
    let mut bye_at: Option<Instant> = None;
    let mut bye_key: Option<TransactionKey> = None;
    // UAS TU state.
    let mut uas_dialogs = DialogSet::default();
    let mut answer_at: Option<Instant> = None;
    let mut uas_invite: Option<(TransactionKey, Request)> = None;

    while let Some(evs) = sim.step([bye_at, answer_at].into_iter().flatten().min()) {
        let now = sim.now;
        for (side, event) in evs {
            match (side, event) {
                (Side::Uac, TransactionEvent::Response { key, response }) if key == invite_key => {
                    match response.code() {
                        180 => outcome.uac_got_180 = true,
                        200..=299 => {
                            // ACK every 2xx; the first one creates the dialog.
                            if uac_ack.is_none() {
                                let mut dialog = Dialog::new_uac(&sent_invite, &response, None)
                                    .expect("uac dialog");
                                uac_ack = Some(dialog.create_ack());
                                uac_dialogs.insert(dialog).expect("insert");
                                bye_at = Some(now + Duration::from_secs(2));
                            }
                            if let Some(ack) = uac_ack.as_mut() {
                                sim.uac.send_stateless_request(addr(UAS), transport, ack);
                                outcome.uac_acks_sent += 1;
                            }
                        }
                        _ => {}
                    }
                }
                (Side::Uac, TransactionEvent::StrayResponse { response, .. })
                    if response.code() == 200 =>
                {
                    if let Some(ack) = uac_ack.as_mut() {
                        sim.uac.send_stateless_request(addr(UAS), transport, ack);
                        outcome.uac_acks_sent += 1;
                    }
                }
                (Side::Uac, TransactionEvent::Response { key, response })
                    if Some(&key) == bye_key.as_ref() && response.code() >= 200 =>
                {
                    outcome.bye_answered_at = Some(now - sim.t0);
                    if let Some(id) = DialogId::for_incoming_response(&response) {
                        uac_dialogs.remove(&id);
                    }
                }
                (Side::Uas, TransactionEvent::IncomingRequest { key, request, .. }) => {
                    if request.line.method == Method::INVITE {
                        outcome.uas_invites_seen += 1;
                        let ringing =
                            Response::for_request(StatusCode::RINGING, &request, Some("bob1"));
                        sim.uas.send_response(now, &key, ringing).expect("180");
                        answer_at = Some(now + Duration::from_secs(1));
                        uas_invite = Some((key, request));
                    } else if request.line.method == Method::BYE {
                        outcome.uas_byes_seen += 1;
                        let code = match uas_dialogs.handle_request(&request) {
                            Ok(_) => StatusCode::OK,
                            Err(_) => StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
                        };
                        if let Some(id) = DialogId::for_incoming_request(&request) {
                            uas_dialogs.remove(&id);
                        }
                        let ok = Response::for_request(code, &request, None);
                        sim.uas.send_response(now, &key, ok).expect("bye 200");
                    }
                }
                (Side::Uas, TransactionEvent::StrayAck { request, .. }) => {
                    // The ACK may come after the BYE (the first ACK lost), when the dialog
                    // is already gone; the layer stopped its 2xx retransmissions either way.
                    let _ = uas_dialogs.handle_request(&request);
                    outcome.uas_acked = true;
                }
                (side, TransactionEvent::Timeout { key, timer }) => {
                    outcome
                        .failures
                        .push(format!("{side:?} timeout {timer:?} on {:?}", key.method));
                }
                (side, TransactionEvent::AckTimeout { .. }) => {
                    outcome.failures.push(format!("{side:?} ack timeout"));
                }
                _ => {}
            }
        }
        if answer_at.is_some_and(|at| at <= now) {
            answer_at = None;
            if let Some((key, request)) = uas_invite.take() {
                let mut ok = Response::for_request(StatusCode::OK, &request, Some("bob1"));
                ok.headers.insert_named(&contact("bob@10.0.0.2:5060"));
                let dialog = Dialog::new_uas(&request, "bob1", None).expect("uas dialog");
                uas_dialogs.insert(dialog).expect("insert");
                sim.uas.send_response(now, &key, ok).expect("200");
            }
        }
        if bye_at.is_some_and(|at| at <= now) {
            bye_at = None;
            let id = uac_dialogs
                .get_mut(&DialogId {
                    call_id: "call-1@10.0.0.1".into(),
                    local_tag: "alice1".into(),
                    remote_tag: "bob1".into(),
                })
                .expect("uac dialog");
            let bye = id.create_request(Method::BYE);
            bye_key = Some(
                sim.uac
                    .send_request(now, addr(UAS), transport, bye)
                    .expect("bye"),
            );
        }
    }
    (outcome, sim)
}

#[test]
fn invite_into_total_loss_ends_on_timer_b_at_exactly_32s_simulated() {
    let mut sim = Sim::new(
        1,
        Conditions {
            loss: 1.0,
            ..Conditions::clean()
        },
    );
    let key = sim
        .uac
        .send_request(sim.now, addr(UAS), Transport::Udp, outgoing("INVITE", 1))
        .expect("invite");
    let mut timed_out_at = None;
    while let Some(evs) = sim.step(None) {
        for (_, event) in evs {
            if let TransactionEvent::Timeout {
                key: k,
                timer: Timer::B,
            } = event
            {
                assert_eq!(k, key);
                timed_out_at = Some(sim.elapsed());
            }
        }
    }
    assert_eq!(timed_out_at, Some(Duration::from_secs(32)));
    // The INVITE and its six retransmissions (0.5, 1, 2, 4, 8, 16 s gaps).
    assert_eq!(sim.net.sent, 7);
    assert_eq!(sim.uac.stats().retransmissions, 6);
    assert!(sim.uac.is_empty());
}

#[test]
fn full_call_completes_on_a_clean_network() {
    let (outcome, sim) = run_call(3, Conditions::clean(), Transport::Udp);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(outcome.uac_got_180);
    assert!(outcome.uas_acked);
    assert_eq!(outcome.uac_acks_sent, 1);
    assert_eq!(outcome.uas_invites_seen, 1);
    assert_eq!(outcome.uas_byes_seen, 1);
    // 180 at 20 ms, 200 at 1.02 s, ACK at 1.04 s, BYE at 3.04 s, its 200 at 3.08 s.
    assert_eq!(outcome.bye_answered_at, Some(ms(3_080)));
    // INVITE, 100, 180, 200, ACK, BYE, 200: nothing retransmitted.
    assert_eq!(sim.net.sent, 7);
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}

#[test]
fn full_call_completes_through_30_percent_loss_for_many_seeds() {
    let conditions = Conditions {
        loss: 0.3,
        duplicate: 0.05,
        delay: (ms(5), ms(150)),
    };
    let mut retransmissions = 0;
    for seed in 0..40 {
        let (outcome, sim) = run_call(seed * 10, conditions, Transport::Udp);
        assert!(
            outcome.failures.is_empty(),
            "seed {seed}: {:?}",
            outcome.failures
        );
        assert!(outcome.uas_acked, "seed {seed}: no ack reached the uas");
        assert!(
            outcome.bye_answered_at.is_some(),
            "seed {seed}: bye unanswered"
        );
        // Retransmitted or duplicated requests never reach the TU twice.
        assert_eq!(outcome.uas_invites_seen, 1, "seed {seed}");
        assert_eq!(outcome.uas_byes_seen, 1, "seed {seed}");
        retransmissions += sim.uac.stats().retransmissions + sim.uas.stats().retransmissions;
        assert!(
            sim.uac.is_empty() && sim.uas.is_empty(),
            "seed {seed}: leftover transactions"
        );
    }
    assert!(retransmissions > 0, "loss must have caused retransmissions");
}

#[test]
fn duplicated_invites_are_absorbed_by_the_server_transaction() {
    let conditions = Conditions {
        duplicate: 1.0,
        ..Conditions::clean()
    };
    let (outcome, sim) = run_call(5, conditions, Transport::Udp);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.uas_invites_seen, 1);
    assert_eq!(outcome.uas_byes_seen, 1);
    assert!(
        sim.uas.stats().absorbed_requests >= 2,
        "{:?}",
        sim.uas.stats()
    );
}

#[test]
fn full_call_over_tcp_has_no_retransmissions() {
    let conditions = Conditions {
        delay: (ms(400), ms(400)),
        ..Conditions::clean()
    };
    // With 400 ms one way, UDP would retransmit the INVITE at 500 ms; TCP must not.
    let (outcome, sim) = run_call(9, conditions, Transport::Tcp);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(outcome.uas_acked);
    assert_eq!(sim.net.sent, 7);
    assert_eq!(sim.uac.stats().retransmissions, 0);
    assert_eq!(sim.uas.stats().retransmissions, 0);
}

#[test]
fn cancel_ends_the_call_with_487_and_200() {
    let mut sim = Sim::new(11, Conditions::clean());
    let invite_key = sim
        .uac
        .send_request(sim.now, addr(UAS), Transport::Udp, outgoing("INVITE", 1))
        .expect("invite");
    let mut cancel_key = None;
    let mut codes = Vec::new();
    let mut cancelled = false;
    while let Some(evs) = sim.step(None) {
        let now = sim.now;
        for (side, event) in evs {
            match (side, event) {
                (Side::Uas, TransactionEvent::IncomingRequest { key, request, .. }) => {
                    // Ring forever.
                    let ringing =
                        Response::for_request(StatusCode::RINGING, &request, Some("bob1"));
                    sim.uas.send_response(now, &key, ringing).expect("180");
                }
                (Side::Uac, TransactionEvent::Response { key, response }) => {
                    codes.push((key.method.to_string(), response.code()));
                    if key == invite_key && response.code() == 180 {
                        cancel_key = Some(sim.uac.send_cancel(now, &invite_key).expect("cancel"));
                    }
                }
                (Side::Uas, TransactionEvent::Cancelled { key }) => {
                    assert_eq!(key.branch, invite_key.branch);
                    cancelled = true;
                }
                (side, TransactionEvent::Timeout { timer, .. }) => {
                    panic!("{side:?} timed out on {timer:?}")
                }
                _ => {}
            }
        }
    }
    assert!(cancelled);
    assert!(cancel_key.is_some());
    assert_eq!(
        codes,
        [
            ("INVITE".to_string(), 100),
            ("INVITE".to_string(), 180),
            ("CANCEL".to_string(), 200),
            ("INVITE".to_string(), 487)
        ]
    );
    // The 487 was ACKed, so the UAS never retransmitted it.
    assert_eq!(sim.uas.stats().retransmissions, 0);
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}
