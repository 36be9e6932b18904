//! Simulated-time tests of who may place a call: agents authenticate their INVITEs (407) and
//! go out through a trunk their config allows (403 otherwise), bridged on the trunk's answer;
//! others may call numbers only from a known source (403 otherwise).

use super::*;

/// Alice's softphone.
fn phone() -> SocketAddr {
    addr("127.0.0.1:5095")
}

const TRUNKS: &str = r#"
[[trunk]]
name = "local"
address = "127.0.0.1:5070"
caller_id = "+15550100000"
allowed_prefixes = ["+1"]

[[trunk]]
name = "uk"
address = "127.0.0.1:5072"
allowed_prefixes = ["+44"]
"#;

const AGENTS: &str = r#"
[[agent]]
name = "alice"
password = "secret-a"
trunks = ["local"]

[[agent]]
name = "bob"
password = "secret-b"
caller_id = "+15550109999"
trunks = ["local", "uk"]
"#;

fn agent_sim(server: &str) -> Sim {
    let cfg =
        Config::from_texts_with_agents(server, TRUNKS, crate::config::embedded::NUMBERS, AGENTS)
            .expect("config");
    Sim::with(cfg, 100, 20).auto_stop()
}

/// An INVITE from `agent` at [`phone`] to `to`, with optional Proxy-Authorization.
fn agent_invite(agent: &str, to: &str, cseq: u32, auth: Option<&str>) -> String {
    let body = peer_sdp(6100, "sendrecv");
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    // Each INVITE is a new transaction (a reused branch would be absorbed as a retransmission).
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "INVITE sip:{to}@{us} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {p};branch=z9hG4bK-ag-{cseq}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{agent}@{us}>;tag=agtag\r\n\
         To: <sip:{to}@{us}>\r\n\
         Call-ID: agent-call-1@127.0.0.1\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:{agent}@{p}>\r\n\
         {auth}Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        us = us(),
        p = phone(),
        len = body.len(),
    )
}

/// The branch of the top Via of `r`.
fn branch_of(r: &Response) -> String {
    let via = r.header(&Name::VIA).unwrap_or_default();
    via.split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .unwrap_or_default()
        .to_string()
}

/// An ACK (or, edited, another request) from alice in the call of [`agent_invite`]; for a
/// non-2xx final response `branch` is the INVITE's.
fn agent_ack(to: &str, cseq: u32, to_tag: &str, branch: &str) -> String {
    format!(
        "ACK sip:{to}@{us} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {p};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{us}>;tag=agtag\r\n\
         To: <sip:{to}@{us}>;tag={to_tag}\r\n\
         Call-ID: agent-call-1@127.0.0.1\r\n\
         CSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n",
        us = us(),
        p = phone(),
    )
}

/// Sends the INVITE without credentials, answers the 407 with `password`, returns what the
/// engine sent for the second INVITE.
fn dial_as(sim: &mut Sim, agent: &str, password: &str, to: &str) -> Vec<Sent> {
    let sent = sim.deliver(phone(), &agent_invite(agent, to, 1, None));
    let r407 = find_resp(&sent, 407).expect("407 for an INVITE without credentials");
    let tag = r407.to_tag().unwrap_or_default();
    sim.deliver(phone(), &agent_ack(to, 1, &tag, &branch_of(r407)));
    let auth = answer_challenge(
        r407,
        &Name::PROXY_AUTHENTICATE,
        (agent, password),
        "INVITE",
        &format!("sip:{to}@{}", us()),
    );
    sim.deliver(phone(), &agent_invite(agent, to, 2, Some(&auth)))
}

fn invites_to(sent: &[Sent], to: SocketAddr) -> Vec<Request> {
    sent.iter()
        .filter(|s| s.to == to && s.method().as_deref() == Some("INVITE"))
        .filter_map(|s| s.req().cloned())
        .collect()
}

#[test]
fn an_agent_authenticates_goes_out_through_its_trunk_and_is_bridged_on_the_answer() {
    let mut sim = agent_sim("");
    let sent = dial_as(&mut sim, "alice", "secret-a", "+15551230000");
    assert!(
        codes(&sent).contains(&183),
        "the agent hears ringback: {:?}",
        codes(&sent)
    );
    let out = invites_to(&sent, trunk_addr());
    assert_eq!(out.len(), 1, "one INVITE to the trunk");
    let inv = &out[0];
    assert_eq!(inv.request_uri_user(), Some("+15551230000"));
    assert!(
        inv.header(&Name::FROM)
            .is_some_and(|f| f.contains("+15550100000")),
        "the trunk's caller id: {:?}",
        inv.header(&Name::FROM)
    );
    let ids = sim.inserted_ids();
    assert_eq!(ids.len(), 2, "the agent's call and the trunk leg");
    // The trunk answers: the agent gets its 200 and both legs are bridged.
    sim.deliver(trunk_addr(), &reply(inv, 180, Some("t1"), "", ""));
    let sent = sim.deliver(trunk_addr(), &reply(inv, 200, Some("t1"), "", &far_sdp()));
    assert!(find_resp(&sent, 200).is_some(), "the agent is answered");
    assert!(sim.actions.iter().any(|a| matches!(
        a,
        Action::Media(MediaCommand::Room(RoomCommand::Join { call_id, .. })) if *call_id == ids[0]
    )));
    // No missed-call bookkeeping for an agent's own call.
    assert!(
        !sim.actions
            .iter()
            .any(|a| matches!(a, Action::Store(StoreOp::Inbound(_)))),
        "not a call to a number"
    );
    // The agent hangs up: the trunk leg gets a BYE.
    let ok = find_resp(&sent, 200).expect("200").clone();
    let tag = ok.to_tag().unwrap_or_default();
    let ack = agent_ack("+15551230000", 2, &tag, "z9hG4bK-ag-ack");
    sim.deliver(phone(), &ack);
    sim.advance(secs(3));
    let bye = agent_ack("+15551230000", 3, &tag, "z9hG4bK-ag-bye")
        .replace("ACK sip:", "BYE sip:")
        .replace("CSeq: 3 ACK", "CSeq: 3 BYE");
    let sent = sim.deliver(phone(), &bye);
    assert!(
        sent.iter()
            .any(|s| s.to == trunk_addr() && s.method().as_deref() == Some("BYE")),
        "{:?}",
        methods(&sent)
    );
    sim.advance(secs(40));
    assert_eq!(sim.the_finish(ids[0]).end.status, FinalStatus::Completed);
    assert_eq!(sim.the_finish(ids[1]).end.status, FinalStatus::Completed);
}

#[test]
fn a_busy_destination_gives_the_agent_486() {
    let mut sim = agent_sim("");
    let sent = dial_as(&mut sim, "bob", "secret-b", "+15551230001");
    let inv = invites_to(&sent, trunk_addr()).remove(0);
    assert!(
        inv.header(&Name::FROM)
            .is_some_and(|f| f.contains("+15550109999")),
        "the agent's own caller id wins over the trunk's"
    );
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 486, Some("t2"), "", ""));
    assert!(
        find_resp(&sent, 486).is_some(),
        "the far end's busy reaches the agent: {:?}",
        codes(&sent)
    );
    sim.advance(secs(40));
    let ids = sim.inserted_ids();
    assert_eq!(sim.the_finish(ids[0]).end.status, FinalStatus::Busy);
}

#[test]
fn the_agents_cancel_cancels_the_trunk_leg() {
    let mut sim = agent_sim("");
    let sent = dial_as(&mut sim, "alice", "secret-a", "+15551230002");
    let p183 = find_resp(&sent, 183).expect("183").clone();
    let inv = invites_to(&sent, trunk_addr()).remove(0);
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("t3"), "", ""));
    // CANCEL: the INVITE's branch and CSeq number, no To tag.
    let cancel = agent_ack("+15551230002", 2, "", &branch_of(&p183))
        .replace("ACK sip:", "CANCEL sip:")
        .replace("CSeq: 2 ACK", "CSeq: 2 CANCEL")
        .replace(";tag=\r\n", "\r\n");
    let sent = sim.deliver(phone(), &cancel);
    assert!(find_resp(&sent, 487).is_some(), "{:?}", codes(&sent));
    let cancel_out = sent
        .iter()
        .filter(|s| s.to == trunk_addr())
        .filter_map(Sent::req)
        .find(|r| r.method().to_string() == "CANCEL")
        .expect("the trunk leg is cancelled")
        .clone();
    sim.deliver(trunk_addr(), &reply(&cancel_out, 200, Some("t3"), "", ""));
    sim.deliver(trunk_addr(), &reply(&inv, 487, Some("t3"), "", ""));
    sim.advance(secs(40));
    let ids = sim.inserted_ids();
    assert_eq!(sim.the_finish(ids[0]).end.status, FinalStatus::Canceled);
    assert_eq!(sim.the_finish(ids[1]).end.status, FinalStatus::Canceled);
}

#[test]
fn an_agent_may_not_call_where_its_trunks_do_not_go() {
    let mut sim = agent_sim("");
    // alice's only trunk allows +1; bob may use "uk" too.
    let sent = dial_as(&mut sim, "alice", "secret-a", "+442071234567");
    let r = find_resp(&sent, 403).expect("403");
    assert!(r.reason().contains("Not Allowed"), "{}", r.reason());
    assert!(sim.inserted_ids().is_empty(), "no call placed");
    assert!(invites_to(&sent, trunk_addr()).is_empty());
    let mut sim = agent_sim("");
    let sent = dial_as(&mut sim, "bob", "secret-b", "+442071234567");
    assert_eq!(invites_to(&sent, addr("127.0.0.1:5072")).len(), 1);
}

#[test]
fn a_wrong_password_is_challenged_again_and_repeated_failures_are_throttled() {
    let mut sim = agent_sim("");
    let sent = dial_as(&mut sim, "alice", "wrong", "+15551230000");
    assert!(find_resp(&sent, 407).is_some(), "{:?}", codes(&sent));
    assert!(sim.inserted_ids().is_empty());
    let mut throttled = false;
    for _ in 0..20 {
        let sent = dial_as_once(&mut sim, "alice", "wrong", "+15551230000");
        if find_resp(&sent, 429).is_some() {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "repeated failures from one address get 429");
}

/// One authenticated attempt (the 407 of the first INVITE may already be a 429).
fn dial_as_once(sim: &mut Sim, agent: &str, password: &str, to: &str) -> Vec<Sent> {
    let sent = sim.deliver(phone(), &agent_invite(agent, to, 1, None));
    if find_resp(&sent, 407).is_none() {
        return sent;
    }
    sim.advance(ms(10));
    dial_as(sim, agent, password, to)
}

#[test]
fn strangers_get_403_and_known_sources_reach_numbers() {
    // Loopback is not trusted here: only the trunks' addresses are known.
    let mut sim = agent_sim("[sip]\ntrusted_sources = []\n");
    let mut stranger = Caller::new("echo", 1);
    stranger.addr = addr("127.0.0.9:5080");
    let sent = sim.deliver(stranger.addr, &stranger.invite(&peer_sdp(6000, "sendrecv")));
    let r = find_resp(&sent, 403).expect("403 for an unknown source");
    assert_eq!(r.reason(), "Unknown Source");
    // Also for a number we do not have (no probing of which numbers exist).
    let mut stranger = Caller::new("nope", 2);
    stranger.addr = addr("127.0.0.9:5080");
    let sent = sim.deliver(stranger.addr, &stranger.invite(&peer_sdp(6000, "sendrecv")));
    assert!(find_resp(&sent, 403).is_some());
    assert!(sim.inserted_ids().is_empty());
    // From a trunk's address (any port): the number's route runs; an unknown number is 404.
    let mut carrier = Caller::new("echo", 3);
    carrier.addr = addr("127.0.0.1:5999");
    let sent = sim.deliver(carrier.addr, &carrier.invite(&peer_sdp(6000, "sendrecv")));
    assert!(find_resp(&sent, 200).is_some(), "{:?}", codes(&sent));
    let mut carrier = Caller::new("nope", 4);
    carrier.addr = addr("127.0.0.1:5999");
    let sent = sim.deliver(carrier.addr, &carrier.invite(&peer_sdp(6000, "sendrecv")));
    assert!(find_resp(&sent, 404).is_some());
    assert_eq!(sim.engine.stats().forbidden, 2);
}

#[test]
fn trusted_sources_must_be_addresses_or_blocks() {
    let bad = Config::from_texts("[sip]\ntrusted_sources = [\"10.0.0.0/33\"]\n", "", "");
    assert!(
        bad.is_err_and(|e| e.to_string().contains("trusted_sources")),
        "a bad block is refused at load"
    );
    let ok = Config::from_texts(
        "[sip]\ntrusted_sources = [\"10.1.2.3\", \"fd00::/8\"]\n",
        "",
        "",
    )
    .expect("config");
    let t = ok.trusted_sources();
    assert!(ok.is_known_source("10.1.2.3".parse().unwrap(), &t));
    assert!(ok.is_known_source("fd00::1".parse().unwrap(), &t));
    assert!(!ok.is_known_source("10.1.2.4".parse().unwrap(), &t));
}
