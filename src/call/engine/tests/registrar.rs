//! Simulated-time tests of the registrar inside the engine: REGISTER through the transaction
//! layer, store operations, keep-alive OPTIONS to the binding's source, removal after three
//! unanswered pings.

use super::*;
use crate::sip::registrar::RemovedReason;

/// The phone: behind NAT its Contact names a private address, its packets come from here.
fn phone() -> SocketAddr {
    addr("127.0.0.1:5090")
}

fn register_text(cseq: u32, auth: Option<&str>, expires: u32) -> String {
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
Contact: <sip:alice@10.1.2.3:5062>;expires={expires}\r\n\
Max-Forwards: 70\r\n\
{auth}Content-Length: 0\r\n\r\n"
    )
}

/// Registers alice (password of the embedded example) and returns the 200.
fn register_alice(sim: &mut Sim, cseq: u32, expires: u32) -> Response {
    let sent = sim.deliver(phone(), &register_text(cseq, None, expires));
    let r401 = find_resp(&sent, 401).expect("401").clone();
    let auth = answer_challenge(
        &r401,
        &Name::WWW_AUTHENTICATE,
        ("alice", "example-alice-secret"),
        "REGISTER",
        "sip:127.0.0.1:5060",
    );
    let sent = sim.deliver(phone(), &register_text(cseq + 1, Some(&auth), expires));
    sent.iter()
        .filter_map(Sent::resp)
        .find(|r| r.code() >= 200)
        .expect("final response")
        .clone()
}

fn registration_ops(sim: &Sim) -> Vec<&RegistrationOp> {
    sim.actions
        .iter()
        .filter_map(|a| match a {
            Action::Store(StoreOp::Registration(op)) => Some(op),
            _ => None,
        })
        .collect()
}

#[test]
fn register_is_challenged_then_bound_to_the_source_and_stored() {
    let mut sim = Sim::new();
    let ok = register_alice(&mut sim, 1, 600);
    assert_eq!(ok.code(), 200);
    assert_eq!(
        ok.header(&Name::CONTACT),
        Some("<sip:alice@10.1.2.3:5062>;expires=600")
    );
    let b: Vec<_> = sim.engine.registrar().bindings("alice", sim.now).collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].target, phone(), "NAT: requests go to the source");
    assert_eq!(b[0].contact, "sip:alice@10.1.2.3:5062");
    let ops = registration_ops(&sim);
    assert!(
        matches!(
            ops.as_slice(),
            [RegistrationOp::Upsert { created: true, .. }]
        ),
        "{ops:?}"
    );
    // Unregister.
    let ok = register_alice(&mut sim, 10, 0);
    assert_eq!(ok.code(), 200);
    assert_eq!(sim.engine.registrar().all_bindings(sim.now).count(), 0);
    let ops = registration_ops(&sim);
    assert!(matches!(
        ops.last(),
        Some(RegistrationOp::Remove {
            reason: RemovedReason::Unregister,
            ..
        })
    ));
    // No transaction, timer or binding left once the layer's timers ran out.
    sim.advance(secs(60));
    sim.assert_no_state_left();
    assert!(sim.engine.pings.is_empty());
}

#[test]
fn keepalive_options_go_to_the_source_and_three_misses_remove_the_binding() {
    let mut sim = Sim::new();
    register_alice(&mut sim, 1, 3600);
    let keepalive = sim.engine.registrar().settings().keepalive.expect("on");
    // First ping: answered.
    sim.advance(keepalive);
    let sent = sim.take_sent();
    let ping = sent
        .iter()
        .find(|s| s.method().as_deref() == Some("OPTIONS"))
        .expect("OPTIONS ping");
    assert_eq!(ping.to, phone());
    let opt = ping.req().expect("request").clone();
    let ok = response_to(&opt, 200, None, Some("phone"));
    sim.deliver(phone(), &String::from_utf8_lossy(&ok.to_bytes()));
    assert!(sim.engine.pings.is_empty());
    // Then the phone goes silent: three pings time out (Timer F) and the binding goes.
    sim.advance_until(|s| s.engine.registrar().all_bindings(s.now).count() == 0);
    let pings = sim
        .wire
        .iter()
        .filter(|s| s.method().as_deref() == Some("OPTIONS"))
        .map(|s| s.req().and_then(|r| r.call_id().map(str::to_string)))
        .collect::<std::collections::HashSet<_>>()
        .len();
    // One answered, then pings every 30 s; the third miss (Timer F, 32 s after its ping) comes
    // after a fifth ping went out.
    assert_eq!(pings, 5);
    assert_eq!(
        sim.now - sim.t0,
        keepalive * 4 + secs(32),
        "removed at the third unanswered ping's Timer F"
    );
    let ops = registration_ops(&sim);
    assert!(matches!(
        ops.last(),
        Some(RegistrationOp::Remove {
            reason: RemovedReason::Keepalive,
            ..
        })
    ));
}

#[test]
fn expiry_removes_and_restore_brings_bindings_back() {
    let mut sim = Sim::new();
    register_alice(&mut sim, 1, 120);
    let kept: Vec<Binding> = sim
        .engine
        .registrar()
        .all_bindings(sim.now)
        .cloned()
        .collect();
    // 120 s: it expires before three pings (at 30, 60, 90 s) can time out (Timer F, 32 s).
    sim.advance_until(|s| s.engine.registrar().all_bindings(s.now).count() == 0);
    let ops = registration_ops(&sim);
    assert!(matches!(
        ops.last(),
        Some(RegistrationOp::Remove {
            reason: RemovedReason::Expired,
            ..
        })
    ));
    // A new engine (restart) given the stored binding keeps it; an expired one is removed.
    let mut sim2 = Sim::new();
    let now = sim2.now;
    let mut live = kept[0].clone();
    live.expires_at = now + secs(100);
    let mut dead = kept[0].clone();
    dead.contact = "sip:alice@10.9.9.9".into();
    dead.expires_at = now;
    sim2.engine.restore_registrations(now, vec![live, dead]);
    sim2.drain();
    assert_eq!(sim2.engine.registrar().bindings("alice", now).count(), 1);
    assert_eq!(registration_ops(&sim2).len(), 1);
}

#[test]
fn throttled_source_gets_429() {
    let mut sim = Sim::new();
    let bad = r#"Digest username="alice", realm="trunkline", nonce="1.00", uri="sip:127.0.0.1:5060", response="0000", qop=auth, nc=00000001, cnonce="x", algorithm=MD5"#;
    let max = sim
        .engine
        .registrar()
        .settings()
        .max_auth_failures_per_minute;
    for i in 0..max {
        let sent = sim.deliver(phone(), &register_text(100 + i, Some(bad), 600));
        assert_eq!(codes(&sent), vec![401]);
    }
    let sent = sim.deliver(phone(), &register_text(200, Some(bad), 600));
    assert_eq!(codes(&sent), vec![429]);
}
