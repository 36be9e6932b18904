//! Restarts and shutdown of the real binary.
//!
//! Issue 2, "Done when": the webhook receiver is down for a while, and trunkline is restarted
//! meanwhile: every event still arrives once the receiver is back. Also item 1: graceful
//! shutdown hangs up live calls after the grace period and takes no new calls meanwhile.

mod common;

use common::api::request;
use common::sipp::{Scenario, Sipp};
use common::webhook::WebhookReceiver;
use common::{Server, ServerOptions};
use std::collections::HashMap;
use std::time::Duration;

#[test]
fn webhooks_queued_while_the_receiver_is_down_all_arrive_after_a_trunkline_restart() {
    // Two short calls to a SIPp far end that answers; our API hangs each up.
    let far = Sipp::uas(Scenario::ours("uas_answer"))
        .calls(Some(2))
        .timeout(Duration::from_secs(90), Duration::from_secs(5))
        .start()
        .expect("far end");
    let mut hook = WebhookReceiver::start().expect("receiver");
    let hook_addr = hook.addr();
    hook.stop();
    assert!(!hook.is_running());

    let mut o = ServerOptions::default().trunk("far", far.sip_addr());
    o.server_extra =
        "[webhooks]\nsecret = \"restart-secret\"\nretry_base_ms = 200\nretry_max_secs = 2\n".into();
    let mut server = Server::start_with(o);
    let key = server.api_key();
    let url = format!("http://{hook_addr}/hook");
    let mut ids = Vec::new();
    for n in 0..2 {
        let body =
            format!(r#"{{"to": "+1555123000{n}", "trunk": "far", "status_callback": "{url}"}}"#);
        let r = request(
            server.http,
            "POST",
            "/v1/calls",
            Some(&key),
            &[],
            Some(&body),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_str().expect("id").to_string();
        server.wait_status(&key, &id, "in-progress");
        server.hangup(&key, &id);
        common::poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            server.call(&key, &id)["final_status"]
                .is_string()
                .then_some(())
        })
        .expect("ended");
        ids.push(id);
    }
    // Deliveries are failing now (nothing listens). Restart trunkline: a crash (SIGKILL).
    std::thread::sleep(Duration::from_secs(1));
    server.kill();
    server.restart();
    // The receiver comes back on the same port.
    hook.restart().expect("receiver restarts on its port");
    hook.wait_for(8, Duration::from_secs(60))
        .unwrap_or_else(|got| {
            panic!(
                "{} of 8 webhooks arrived: {got:#?}\n--- server ---\n{}",
                got.len(),
                server.log()
            )
        });
    std::thread::sleep(Duration::from_secs(1));
    let got = hook.requests();
    // Every event exactly once (at-least-once delivery de-duplicated by id), in order per call.
    let mut by_call: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen_ids = std::collections::HashSet::new();
    for r in &got {
        let j = r.json().expect("json");
        let ev = j["id"].as_str().unwrap_or("").to_string();
        assert!(seen_ids.insert(ev.clone()), "event {ev} delivered twice");
        by_call
            .entry(j["call_id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(j["type"].as_str().unwrap_or("").to_string());
        let ts = r.header("x-trunkline-timestamp").expect("ts");
        let sig = r.header("x-trunkline-signature").expect("sig");
        assert!(trunkline::events::signature::verify_signature(
            "restart-secret",
            ts,
            &r.body,
            sig
        ));
    }
    for id in &ids {
        assert_eq!(
            by_call.get(id).cloned().unwrap_or_default(),
            [
                "call.initiated",
                "call.ringing",
                "call.answered",
                "call.completed"
            ],
            "events of call {id}"
        );
    }
    let _ = far.wait();
}

#[test]
fn sigterm_refuses_new_calls_then_hangs_up_live_ones_after_the_grace_period() {
    let o = ServerOptions {
        server_extra: "[calls]\nshutdown_grace_secs = 2\n".into(),
        ..Default::default()
    };
    let mut server = Server::start_with(o);
    // A caller that would stay 20 s; the server must hang it up (BYE) after ~2 s of grace.
    let call = Sipp::uac(Scenario::ours("uac_wait_bye"), server.sip)
        .service("echo")
        .calls(Some(1))
        .timeout(Duration::from_secs(40), Duration::from_secs(5))
        .start()
        .expect("caller");
    std::thread::sleep(Duration::from_secs(2));
    common::signal(server.pid().expect("pid"), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    // During the grace period a new call is refused with 503.
    let r = common::exchange(
        &server,
        common::invite(&server, "echo", "during-grace", "").as_bytes(),
        Duration::from_secs(3),
    )
    .expect("an answer during the grace period");
    assert!(r.contains("SIP/2.0 503"), "{r}");
    let status = server.stop(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "server did not exit cleanly: {status:?}\n{}",
        server.log()
    );
    let report = call.wait();
    // uac_wait_bye succeeds only when the server's BYE ends the call.
    assert_eq!(
        report.successful,
        1,
        "{report:#?}\n--- server ---\n{}",
        server.log()
    );
    // The row says the system ended it, and was written before exit.
    server.restart();
    let key = server.api_key();
    let calls = server.all_calls(&key, "");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["final_status"], "completed");
    assert_eq!(calls[0]["ended_by"], "system");
    assert_eq!(calls[0]["end_reason"], "server shutdown");
}
