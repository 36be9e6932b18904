//! Simulated-time tests of inbound routes in the engine: ring groups (forking, first answer
//! wins, cancel the others), voicemail, business hours and the missed-call decision.

use super::*;
use crate::call::engine::inbound::InboundOp;
use crate::inbound::MissReason;
use chrono::TimeZone;

fn alice() -> SocketAddr {
    addr("127.0.0.1:5091")
}

fn bob() -> SocketAddr {
    addr("127.0.0.1:5093")
}

const NUMBERS: &str = r#"
[[number]]
number = "sales"
status_callback = "http://127.0.0.1:9/hook"
route = { action = "ring_group", members = ["sip:alice@127.0.0.1:5091", "sip:bob@127.0.0.1:5093"], timeout_secs = 30, record = true, on_no_answer = { action = "voicemail", max_secs = 60, silence_secs = 5 } }
followup = { url = "http://127.0.0.1:9/sms", body = "Sorry {caller}, we missed you ({reason})" }

[[number]]
number = "order"
route = { action = "ring_group", strategy = "in_order", members = ["sip:alice@127.0.0.1:5091", "carol", "sip:bob@127.0.0.1:5093"], member_timeout_secs = 10, timeout_secs = 25 }

[[number]]
number = "nobody"
route = { action = "ring_group", members = ["carol", "dave"], on_no_answer = { action = "number", number = "operator" } }

[[number]]
number = "echo"
route = { action = "echo" }

[[number]]
number = "operator"
route = { action = "play", prompt = "tone" }

[[number]]
number = "office"
route = { action = "echo" }
hours = { timezone = "Europe/Paris", open = ["mon-fri 09:00-17:00"], closed = { action = "voicemail", max_secs = 30 } }
"#;

/// Saturday 2026-11-21 09:30 UTC: the office is closed.
fn saturday() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 21, 9, 30, 0)
        .single()
        .expect("a valid date")
}

/// Monday 2026-11-23 10:00 UTC (11:00 in Paris): open.
fn monday() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("a valid date")
}

fn inbound_sim(wall: chrono::DateTime<chrono::Utc>) -> Sim {
    let cfg = Config::from_texts("", crate::config::embedded::TRUNKS, NUMBERS).expect("config");
    let mut sim = Sim::with(cfg, 100, 20).auto_stop();
    let t0 = sim.t0;
    sim.engine.set_wall_clock(t0, wall);
    sim
}

/// The caller dials `number`; returns it and what the engine sent.
fn dial(sim: &mut Sim, number: &str, n: u32) -> (Caller, Vec<Sent>) {
    let mut caller = Caller::new(number, n);
    let inv = caller.invite(&peer_sdp(6000, "sendrecv"));
    let sent = sim.deliver(caller.addr, &inv);
    caller.learn(&sent);
    (caller, sent)
}

fn invites_to(sent: &[Sent], to: SocketAddr) -> Vec<Request> {
    sent.iter()
        .filter(|s| s.to == to && s.method().as_deref() == Some("INVITE"))
        .filter_map(|s| s.req().cloned())
        .collect()
}

fn requests_to(sent: &[Sent], to: SocketAddr, method: &str) -> usize {
    sent.iter()
        .filter(|s| s.to == to && s.method().as_deref() == Some(method))
        .count()
}

fn inbound_ops(sim: &Sim) -> Vec<InboundOp> {
    sim.actions
        .iter()
        .filter_map(|a| match a {
            Action::Store(StoreOp::Inbound(op)) => Some(op.clone()),
            _ => None,
        })
        .collect()
}

fn missed(sim: &Sim) -> Vec<crate::inbound::followup::MissedCall> {
    inbound_ops(sim)
        .into_iter()
        .filter_map(|op| match op {
            InboundOp::Missed { missed, .. } => Some(*missed),
            _ => None,
        })
        .collect()
}

fn caller_id(sim: &Sim) -> Uuid {
    sim.inserted_ids()[0]
}

/// The caller's INVITE gets 183 with SDP and ringback; both members get an INVITE.
fn ring_both(sim: &mut Sim) -> (Caller, Request, Request) {
    let (caller, sent) = dial(sim, "sales", 1);
    assert!(codes(&sent).contains(&183), "{:?}", codes(&sent));
    assert!(!codes(&sent).contains(&200), "not answered before an agent");
    let p183 = find_resp(&sent, 183).expect("183");
    assert!(!p183.body.is_empty(), "183 carries the SDP (early media)");
    let starts = sim.media_starts();
    assert!(
        matches!(&starts[0].3, LegMode::Play { prompt, repeat: true } if prompt.name == "ringback"),
        "the caller hears ringback"
    );
    let a = invites_to(&sent, alice());
    let b = invites_to(&sent, bob());
    assert_eq!((a.len(), b.len()), (1, 1), "both members ring at once");
    (caller, a[0].clone(), b[0].clone())
}

#[test]
fn first_answer_wins_the_other_is_cancelled_and_the_call_is_recorded() {
    let mut sim = inbound_sim(monday());
    let (mut caller, inv_a, inv_b) = ring_both(&mut sim);
    let id = caller_id(&sim);
    sim.deliver(alice(), &reply(&inv_a, 180, Some("a1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 180, Some("b1"), "", ""));
    let sent = sim.deliver(bob(), &reply(&inv_b, 200, Some("b1"), "", &far_sdp()));
    // Bob's 2xx is ACKed, the caller answered with 200, Alice cancelled.
    assert_eq!(requests_to(&sent, bob(), "ACK"), 1);
    assert!(find_resp(&sent, 200).is_some(), "the caller gets its 200");
    assert_eq!(
        requests_to(&sent, alice(), "CANCEL"),
        1,
        "the other member is cancelled"
    );
    // Bridged and recorded (the room, left channel = the caller).
    assert!(sim.actions.iter().any(|a| matches!(
        a,
        Action::Media(MediaCommand::Room(RoomCommand::Join { call_id, .. })) if *call_id == id
    )));
    assert!(sim.actions.iter().any(|a| matches!(
        a,
        Action::Media(MediaCommand::Record(RecordCommand::Start {
            target: RecordTarget::Room { left, .. }, ..
        })) if *left == id
    )));
    assert!(inbound_ops(&sim).iter().any(|op| matches!(
        op, InboundOp::Connected { agent, .. } if agent == "sip:bob@127.0.0.1:5093"
    )));
    // Alice's INVITE ends 487; then a late 200 from her would be BYEd.
    let cancel_sent: Vec<Sent> = sim.wire.clone();
    let cancel = cancel_sent
        .iter()
        .filter(|s| s.to == alice())
        .filter_map(Sent::req)
        .find(|r| r.method().to_string() == "CANCEL")
        .expect("CANCEL")
        .clone();
    sim.deliver(alice(), &reply(&cancel, 200, Some("a1"), "", ""));
    let sent = sim.deliver(alice(), &reply(&inv_a, 487, Some("a1"), "", ""));
    assert_eq!(requests_to(&sent, alice(), "ACK"), 1);
    // The caller ACKs and later hangs up: Bob gets a BYE (bridge end_on_exit).
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    sim.advance(secs(5));
    let bye = caller.request("BYE");
    let sent = sim.deliver(caller.addr, &bye);
    assert_eq!(requests_to(&sent, bob(), "BYE"), 1);
    sim.advance(secs(40));
    assert!(missed(&sim).is_empty(), "an answered call is not missed");
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Completed);
}

#[test]
fn a_late_answer_from_a_cancelled_member_is_hung_up() {
    let mut sim = inbound_sim(monday());
    let (_caller, inv_a, inv_b) = ring_both(&mut sim);
    sim.deliver(alice(), &reply(&inv_a, 180, Some("a1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 180, Some("b1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 200, Some("b1"), "", &far_sdp()));
    // Alice answered as the CANCEL crossed: ACK and BYE her.
    let sent = sim.deliver(alice(), &reply(&inv_a, 200, Some("a1"), "", &far_sdp()));
    assert_eq!(
        requests_to(&sent, alice(), "ACK"),
        1,
        "{:?}",
        methods(&sent)
    );
    assert_eq!(
        requests_to(&sent, alice(), "BYE"),
        1,
        "{:?}",
        methods(&sent)
    );
}

#[test]
fn nobody_answers_voicemail_records_until_hash_and_the_call_is_missed_once() {
    let mut sim = inbound_sim(monday());
    let (mut caller, inv_a, inv_b) = ring_both(&mut sim);
    let id = caller_id(&sim);
    sim.deliver(alice(), &reply(&inv_a, 180, Some("a1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 180, Some("b1"), "", ""));
    // The group gives up at 30 s: both cancelled, the caller answered for voicemail.
    sim.advance(secs(30));
    let sent = sim.take_sent();
    assert_eq!(requests_to(&sent, alice(), "CANCEL"), 1);
    assert_eq!(requests_to(&sent, bob(), "CANCEL"), 1);
    assert!(
        find_resp(&sent, 200).is_some(),
        "voicemail answers the caller"
    );
    let greeting = sim.actions.iter().rev().find_map(|a| match a {
        Action::Media(MediaCommand::Play {
            call_id, prompt, ..
        }) if *call_id == id => Some(prompt.name.clone()),
        _ => None,
    });
    assert_eq!(greeting.as_deref(), Some("beep"));
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    // After the greeting and beep: recording and silence watch.
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    let rec = sim
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Media(MediaCommand::Record(RecordCommand::Start {
                recording_id,
                target: RecordTarget::Call(c),
                ..
            })) if *c == id => Some(*recording_id),
            _ => None,
        })
        .expect("the message is recorded");
    assert!(sim.actions.iter().any(|a| matches!(
        a,
        Action::Media(MediaCommand::WatchSilence { call_id, after }) if *call_id == id && *after == secs(5)
    )));
    // `#` ends the message: BYE to the caller.
    sim.media_event(MediaEvent::Dtmf {
        call_id: id,
        digit: '#',
        duration: ms(100),
    });
    assert_eq!(requests_to(&sim.take_sent(), caller.addr, "BYE"), 1);
    sim.media_event(MediaEvent::RecordingStopped {
        recording_id: rec,
        result: RecordingResult {
            path: "x.wav".into(),
            frames: 150,
            duration_ms: 3_000,
            size_bytes: 96_044,
            sha256: Some("00".into()),
            error: None,
        },
    });
    assert!(inbound_ops(&sim).iter().any(|op| matches!(
        op,
        InboundOp::Voicemail { payload, callback, .. }
            if payload["recording_id"] == rec.to_string() && payload["duration_ms"] == 3000
                && callback.as_deref() == Some("http://127.0.0.1:9/hook")
    )));
    sim.advance(secs(60));
    let m = missed(&sim);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].reason, MissReason::NoAnswer);
    assert_eq!(m[0].voicemail_id, Some(rec));
    assert_eq!(m[0].ring_ms, 30_000);
    assert_eq!(
        m[0].followup.as_ref().map(|f| f.text.as_str()),
        Some("Sorry sip:sipp@127.0.0.1:5080, we missed you (no-answer)")
    );
    // Missed before the final status.
    let pos_missed = sim
        .actions
        .iter()
        .position(|a| matches!(a, Action::Store(StoreOp::Inbound(InboundOp::Missed { .. }))));
    let pos_finish = sim.actions.iter().position(
        |a| matches!(a, Action::Store(StoreOp::Finish { call_id, .. }) if *call_id == id),
    );
    assert!(pos_missed < pos_finish);
    // Members that never answered the CANCEL end on the guard timer: nothing is left.
    sim.advance(secs(120));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn voicemail_ends_on_silence_or_at_the_longest_length() {
    let mut sim = inbound_sim(saturday());
    let (mut caller, sent) = dial(&mut sim, "office", 1);
    let id = caller_id(&sim);
    assert!(
        find_resp(&sent, 200).is_some(),
        "closed: voicemail answers at once"
    );
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    // Longest message 30 s.
    sim.advance(secs(30));
    assert_eq!(requests_to(&sim.take_sent(), caller.addr, "BYE"), 1);
    sim.advance(secs(40));
    let m = missed(&sim);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].reason, MissReason::Closed);
    assert!(m[0].voicemail_id.is_some());

    let mut sim = inbound_sim(saturday());
    let (mut caller, _) = dial(&mut sim, "office", 2);
    let id = caller_id(&sim);
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    sim.media_event(MediaEvent::Silence { call_id: id });
    assert_eq!(requests_to(&sim.take_sent(), caller.addr, "BYE"), 1);
}

#[test]
fn inside_business_hours_the_open_route_runs() {
    let mut sim = inbound_sim(monday());
    let (mut caller, sent) = dial(&mut sim, "office", 1);
    let id = caller_id(&sim);
    assert!(find_resp(&sent, 200).is_some());
    assert!(matches!(sim.media_starts()[0].3, LegMode::Echo));
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    let bye = caller.request("BYE");
    sim.deliver(caller.addr, &bye);
    sim.advance(secs(40));
    // A number with hours tracks its calls: echo answered by no agent counts as missed.
    assert_eq!(missed(&sim).len(), 1);
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Completed);
}

#[test]
fn caller_hangup_while_ringing_cancels_members_and_is_missed_once() {
    let mut sim = inbound_sim(monday());
    let (caller, inv_a, inv_b) = ring_both(&mut sim);
    let id = caller_id(&sim);
    sim.deliver(alice(), &reply(&inv_a, 180, Some("a1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 180, Some("b1"), "", ""));
    sim.advance(secs(4));
    // CANCEL of the caller's INVITE.
    let cancel = caller.text("CANCEL", 1, &format!("z9hG4bK-{}-1", caller.from_tag), "");
    let cancel = cancel.replace(
        &format!(";tag={}", caller.to_tag.clone().unwrap_or_default()),
        "",
    );
    let sent = sim.deliver(caller.addr, &cancel);
    assert!(codes(&sent).contains(&487), "{:?}", codes(&sent));
    assert_eq!(requests_to(&sent, alice(), "CANCEL"), 1);
    assert_eq!(requests_to(&sent, bob(), "CANCEL"), 1);
    sim.advance(secs(40));
    let m = missed(&sim);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].reason, MissReason::CallerHangup);
    assert_eq!(m[0].ring_ms, 4_000);
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Canceled);
    // Members answer the CANCELs (200, then 487 for the INVITE): nothing is left.
    for (to, inv, tag) in [(alice(), &inv_a, "a1"), (bob(), &inv_b, "b1")] {
        let cancel = sim
            .wire
            .iter()
            .filter(|s| s.to == to)
            .filter_map(Sent::req)
            .find(|r| r.method().to_string() == "CANCEL")
            .expect("CANCEL")
            .clone();
        sim.deliver(to, &reply(&cancel, 200, Some(tag), "", ""));
        sim.deliver(to, &reply(inv, 487, Some(tag), "", ""));
    }
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn in_order_skips_unregistered_and_moves_on_after_the_member_timeout() {
    let mut sim = inbound_sim(monday());
    let (_caller, sent) = dial(&mut sim, "order", 1);
    let a = invites_to(&sent, alice());
    assert_eq!(a.len(), 1);
    assert!(invites_to(&sent, bob()).is_empty(), "one member at a time");
    sim.deliver(alice(), &reply(&a[0], 180, Some("a1"), "", ""));
    sim.advance(secs(10));
    let sent = sim.take_sent();
    assert_eq!(requests_to(&sent, alice(), "CANCEL"), 1);
    // carol has no contact: skipped; bob rings.
    let b = invites_to(&sent, bob());
    assert_eq!(b.len(), 1, "{:?}", methods(&sent));
    sim.deliver(bob(), &reply(&b[0], 486, Some("b1"), "", ""));
    // Everybody tried: no answer (alice rang, bob busy) -> 480 to the caller.
    let sent = sim.take_sent();
    let _ = sent;
    sim.advance(secs(40));
    let m = missed(&sim);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].reason, MissReason::NoAnswer);
    assert!(
        sim.wire.iter().any(|s| s.code() == Some(480)),
        "the caller gets 480"
    );
}

#[test]
fn nobody_registered_goes_to_another_numbers_route() {
    let mut sim = inbound_sim(monday());
    let (_caller, sent) = dial(&mut sim, "nobody", 1);
    let id = caller_id(&sim);
    // No member has a contact: at once the operator's prompt, answered.
    assert!(find_resp(&sent, 200).is_some(), "{:?}", codes(&sent));
    assert!(sim.actions.iter().any(|a| matches!(
        a,
        Action::Media(MediaCommand::Play { call_id, prompt, .. }) if *call_id == id && prompt.name == "tone"
    )));
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    sim.advance(secs(40));
    let m = missed(&sim);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].reason, MissReason::NoAgents);
}

#[test]
fn untracked_numbers_have_no_missed_calls() {
    let mut sim = inbound_sim(monday());
    let (mut caller, _) = dial(&mut sim, "echo", 1);
    let ack = caller.ack();
    sim.deliver(caller.addr, &ack);
    let bye = caller.request("BYE");
    sim.deliver(caller.addr, &bye);
    sim.advance(secs(40));
    assert!(inbound_ops(&sim).is_empty());
}

#[test]
fn a_call_ringing_at_shutdown_is_missed_with_reason_restart() {
    let mut sim = inbound_sim(monday());
    let (_caller, inv_a, inv_b) = ring_both(&mut sim);
    sim.deliver(alice(), &reply(&inv_a, 180, Some("a1"), "", ""));
    sim.deliver(bob(), &reply(&inv_b, 180, Some("b1"), "", ""));
    sim.engine.hangup_all(sim.now);
    sim.drain();
    let sent = sim.take_sent();
    assert!(codes(&sent).contains(&480), "{:?}", codes(&sent));
    assert_eq!(requests_to(&sent, alice(), "CANCEL"), 1);
    sim.advance(secs(40));
    let m = missed(&sim);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].reason, MissReason::Restart);
}

/// Where the registered phone's packets come from (its Contact names a private address).
fn alice_phone() -> SocketAddr {
    addr("127.0.0.1:5090")
}

fn register_text(cseq: u32, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.2.3:5062;branch=z9hG4bKreg{cseq};rport\r\n\
From: <sip:alice@127.0.0.1>;tag=ph1\r\n\
To: <sip:alice@127.0.0.1>\r\n\
Call-ID: phone-reg-1\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:alice@10.1.2.3:5062>;expires=600\r\n\
Max-Forwards: 70\r\n\
{auth}Content-Length: 0\r\n\r\n"
    )
}

/// Registers the example agent alice with digest auth.
fn register_alice(sim: &mut Sim) {
    use crate::sip::digest::{Challenge, Credentials, DigestClient};
    use rand::SeedableRng;
    let sent = sim.deliver(alice_phone(), &register_text(1, None));
    let r401 = find_resp(&sent, 401).expect("401").clone();
    let challenge = Challenge::best(
        r401.headers
            .get_raw(&Name::WWW_AUTHENTICATE)
            .map(|v| v.as_str()),
    )
    .expect("challenge");
    let mut client = DigestClient::new(Credentials {
        username: "alice".into(),
        password: "example-alice-secret".into(),
    });
    client.set_challenge(challenge);
    let auth = client
        .authorize(
            "REGISTER",
            "sip:127.0.0.1:5060",
            &mut rand::rngs::StdRng::seed_from_u64(3),
        )
        .expect("auth");
    let sent = sim.deliver(alice_phone(), &register_text(2, Some(&auth)));
    assert!(find_resp(&sent, 200).is_some(), "{:?}", codes(&sent));
}

#[test]
fn an_agent_member_rings_at_its_registered_contact_and_not_before_it_registers() {
    let numbers = r#"
[[number]]
number = "desk"
route = { action = "ring_group", members = ["alice"], timeout_secs = 20 }
"#;
    let cfg = Config::from_texts_with_agents(
        "",
        crate::config::embedded::TRUNKS,
        numbers,
        crate::config::embedded::AGENTS,
    )
    .expect("config");
    let mut sim = Sim::with(cfg, 100, 20).auto_stop();
    // Not registered: nobody to ring, the caller gets 480 and the call is missed (no-agents).
    let (_c, sent) = dial(&mut sim, "desk", 1);
    assert!(codes(&sent).contains(&480), "{:?}", codes(&sent));
    sim.advance(secs(40));
    assert_eq!(missed(&sim)[0].reason, MissReason::NoAgents);
    // Registered: the INVITE goes to the REGISTER's source with the Contact as Request-URI.
    register_alice(&mut sim);
    let (_c, sent) = dial(&mut sim, "desk", 2);
    let inv = invites_to(&sent, alice_phone());
    assert_eq!(inv.len(), 1, "{:?}", methods(&sent));
    assert_eq!(uri_string(&inv[0].line.uri), "sip:alice@10.1.2.3:5062");
}
