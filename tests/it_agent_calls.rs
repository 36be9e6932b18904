//! Who may place calls (issue 6): a registered baresip agent calls out through the trunk its
//! config allows (the server challenges its INVITE with 407, baresip answers with its
//! account's credentials) to a SIPp far end and the two talk; a destination its trunk does not
//! allow gets 403; an INVITE from an unknown source (SIPp on 127.0.0.2, loopback not trusted)
//! gets 403 while the trunk's address still reaches the numbers.

mod common;

use common::audio;
use common::baresip::{Baresip, BaresipOptions};
use common::sipp::{Scenario, Sipp};
use common::{Server, ServerOptions, poll_until};
use std::net::SocketAddr;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A server with trunk `far` (toward `far`, destinations `+1…` only) and agent `alice` who may
/// use it. baresip 1.0 gives up on challenges that offer SHA-256: MD5 only.
fn server_with_agent(far: SocketAddr, sip_extra: &str) -> Server {
    let mut o = ServerOptions::default().trunk("far", far);
    if let Some(t) = o.trunks.last_mut() {
        *t = t.replace("allowed_prefixes = [\"*\"]", "allowed_prefixes = [\"+1\"]");
    }
    o.agents.push(
        "name = \"alice\"\npassword = \"alice-pw\"\ntrunks = [\"far\"]\ncaller_id = \"+15550107777\"\n"
            .into(),
    );
    o.server_extra = "[registrar]\nalgorithms = [\"MD5\"]\n".into();
    o.sip_extra = sip_extra.into();
    Server::start_with(o)
}

/// alice's softphone, registered (its microphone plays `mic`).
fn registered_alice(server: &Server, mic: Option<&std::path::Path>) -> Baresip {
    let alice = Baresip::start_with(
        BaresipOptions::new("alice", mic).register(server.sip, "alice-pw", 600),
    )
    .expect("baresip starts");
    assert!(
        server.wait_registrations(&server.api_key(), 1, T),
        "alice did not register\n{}",
        alice.output()
    );
    alice
}

#[test]
fn a_registered_agent_calls_out_through_its_trunk_to_sipp_and_they_talk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mic = tmp.path().join("mic.wav");
    audio::make_tone(&mic, 1000.0, 30.0, 0.5).expect("tone");
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .timeout(Duration::from_secs(40), Duration::from_secs(5))
        .start()
        .expect("sipp far end");
    let server = server_with_agent(far.sip_addr(), "");
    let key = server.api_key();
    let mut alice = registered_alice(&server, Some(&mic));
    alice
        .dial(&format!("sip:+15551230000@{}", server.sip))
        .expect("dial");
    alice.wait_established(1, T).unwrap_or_else(|e| {
        panic!("{e}\n--- server ---\n{}", server.log());
    });
    // alice's audio crosses the bridge to the far end (SIPp's media socket fills).
    assert!(
        far.wait_media(8_000, Duration::from_secs(10)),
        "no RTP reached the far end: {:?}\n--- server ---\n{}",
        far.media_stats(),
        server.log()
    );
    alice.hangup().expect("hangup");
    let report = far.wait();
    assert_eq!(report.successful, 1, "{report:#?}\n{}", server.log());
    // Two rows: alice's leg (inbound, marked with the agent and trunk) and the trunk leg with
    // the agent's caller id.
    let calls = poll_until(T, Duration::from_millis(200), || {
        let c = server.all_calls(&key, "");
        (c.len() == 2 && c.iter().all(|c| c["status"] == "completed")).then_some(c)
    })
    .unwrap_or_else(|| panic!("{:#?}", server.all_calls(&key, "")));
    let agent_leg = calls
        .iter()
        .find(|c| c["direction"] == "inbound")
        .expect("agent leg");
    assert_eq!(agent_leg["metadata"]["agent"], "alice", "{agent_leg}");
    assert_eq!(agent_leg["metadata"]["trunk"], "far");
    assert_eq!(agent_leg["to"], "+15551230000");
    let out = calls
        .iter()
        .find(|c| c["direction"] == "outbound")
        .expect("trunk leg");
    assert_eq!(out["trunk"], "far", "{out}");
    assert_eq!(out["from"], "+15550107777");
    assert_eq!(out["to"], "+15551230000");
}

#[test]
fn an_agent_dialling_where_its_trunk_does_not_go_gets_403() {
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .start()
        .expect("sipp far end");
    let server = server_with_agent(far.sip_addr(), "");
    let key = server.api_key();
    let mut alice = registered_alice(&server, None);
    alice
        .dial(&format!("sip:+442071234567@{}", server.sip))
        .expect("dial");
    alice
        .wait_for("403", 1, T)
        .unwrap_or_else(|e| panic!("{e}\n--- server ---\n{}", server.log()));
    assert!(
        alice.output().contains("Destination Not Allowed"),
        "{}",
        alice.output()
    );
    assert!(server.all_calls(&key, "").is_empty(), "no call was placed");
}

#[test]
fn an_unknown_source_gets_403_and_the_trunks_address_reaches_the_numbers() {
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .start()
        .expect("sipp far end");
    // Loopback is not trusted: only the trunk's address (127.0.0.1) is a known source.
    let server = server_with_agent(far.sip_addr(), "trusted_sources = []");
    let key = server.api_key();
    let stranger = Sipp::uac(Scenario::ours("uac_forbidden"), server.sip)
        .local_ip("127.0.0.2".parse().expect("ip"))
        .service("echo")
        .run()
        .expect("sipp runs");
    assert_eq!(
        stranger.successful,
        1,
        "the stranger's INVITE gets 403: {stranger:#?}\n--- server ---\n{}",
        server.log()
    );
    let carrier = Sipp::uac(Scenario::built_in("uac"), server.sip)
        .service("echo")
        .run()
        .expect("sipp runs");
    assert_eq!(carrier.successful, 1, "{carrier:#?}\n{}", server.log());
    let calls = server.all_calls(&key, "");
    assert_eq!(calls.len(), 1, "only the known source's call: {calls:#?}");
    assert_eq!(calls[0]["to"], "echo");
}
