//! The campaign runner against real far ends (issue 5): one SIPp behind the campaign's trunk
//! behaves by the last digit of the dialled number (`tests/sipp/uas_dialer.xml`): answer,
//! 486 busy, ring until cancelled, 503.
//!
//! - `agentless_campaign_outcomes_retries_max_attempts_and_rate_limit`: every contact ends with
//!   the right outcome; busy, no-answer and failed contacts are retried after their delay and
//!   not before (stored times), at most `max_attempts` times; no 60-second window of the stored
//!   attempt starts holds more than the campaign's 10/minute; the campaign completes by itself.
//! - `kill_9_mid_campaign_then_restart_finishes_with_every_attempt_accounted_for`: SIGKILL while
//!   calls are in flight, restart on the same data: the campaign completes, every attempt row
//!   has an outcome, attempt numbers have no gap, no attempt placed two calls, and the
//!   10/minute limit held across the restart.
//! - `two_nodes_on_one_postgresql_run_one_campaign_without_overlap`: two trunkline processes
//!   on one PostgreSQL database run the same campaign: both place calls, no contact's attempts
//!   overlap in time (never two calls to one contact at once), and the attempts per contact
//!   and in total are what one node makes (the single-node test's rule: one for a person, the
//!   full `max_attempts` for busy, no-answer and failed numbers).
//! - `a_contact_outside_its_calling_window_is_dialled_only_once_it_opens`: the window opens
//!   20 s after the start (in the numbers' own zone, New York, derived from +1 212): nothing
//!   is dialled before, every contact right after.
//! - `pause_stops_new_claims_calls_in_flight_finish_and_resume_completes`: no attempt starts
//!   after a pause, the calls in flight end by themselves, resume completes the campaign;
//!   every attempt's `attempt.started` and `attempt.finished` reach the campaign's webhook.
//! - `agentless_bridge_...` (`on_human: bridge`, far ends from `uas_customer.xml` that talk and
//!   hang up): the person is put through to `bridge_to`, both calls in one room, the leg ended
//!   when the person hangs up; a `bridge_to` that rings out hangs up the person.
//! - `agentless_webhook_...`: the signed question carries the attempt, call and contact; the
//!   answer (`hangup`) is carried out; a webhook answering 500 falls back to the campaign's
//!   message, played whole before the hang-up.

mod common;

use chrono::{DateTime, Utc};
use common::api::{ExportedAttempt as Attempt, request};
use common::sipp::{Scenario, Sipp, SippProcess};
use common::webhook::WebhookReceiver;
use common::{Server, ServerOptions, poll_until};
use std::collections::HashMap;
use std::time::Duration;
use trunkline::clock::{Clock, SystemClock};

/// Contacts `+1212555 01NN`, NN = 00..n: the last digit picks the far end's behaviour.
fn phones(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+121255501{i:02}")).collect()
}

fn expected_outcome(phone: &str) -> &'static str {
    match phone.as_bytes()[phone.len() - 1] {
        b'3' | b'4' => "busy",
        b'5' | b'6' => "no-answer",
        b'7' => "failed",
        _ => "human",
    }
}

fn far_end() -> SippProcess {
    Sipp::uas(Scenario::ours("uas_dialer"))
        .calls(None)
        .timeout(Duration::from_secs(400), Duration::from_secs(5))
        .start()
        .expect("SIPp far end")
}

fn server_for(far: &SippProcess) -> Server {
    let mut o = ServerOptions::default().trunk("far", far.sip_addr());
    o.server_extra = "[calls]\nring_timeout_secs = 3\n".into();
    Server::start_with(o)
}

fn api(
    server: &Server,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> serde_json::Value {
    let r = request(server.http, method, path, Some(key), &[], body);
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {}\n--- server ---\n{}",
        r.status,
        r.body,
        server.log()
    );
    if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// Creates a list with `phones`, an agentless campaign on it with `extra` settings, starts it;
/// returns the campaign id.
fn start_campaign(server: &Server, key: &str, phones: &[String], extra: &str) -> String {
    start_campaign_in_window(server, key, phones, ("00:00", "23:59"), extra)
}

/// [`start_campaign`] with the calling window `(start, end)` (contacts' local time).
fn start_campaign_in_window(
    server: &Server,
    key: &str,
    phones: &[String],
    (window_start, window_end): (&str, &str),
    extra: &str,
) -> String {
    let list = api(
        server,
        key,
        "POST",
        "/v1/contact-lists",
        Some(r#"{"name": "it", "default_region": "US"}"#),
    );
    let list = list["id"].as_str().expect("list id").to_string();
    let csv = format!("phone\n{}\n", phones.join("\n"));
    let r = request(
        server.http,
        "POST",
        &format!("/v1/contact-lists/{list}/import"),
        Some(key),
        &[],
        Some(&csv),
    );
    assert_eq!(r.status, 200, "import: {}", r.body);
    assert_eq!(r.json()["imported"], phones.len(), "import: {}", r.body);
    let body = format!(
        r#"{{"name": "it", "trunk": "far", "caller_id": "+15550100000", "list_id": "{list}",
            "dial_mode": "agentless", "on_machine": "hangup", "voicemail_prompt": "tone",
            "window_start": "{window_start}", "window_end": "{window_end}", "default_timezone": "UTC",
            "max_attempts": 2, "retry_delays": {{"busy": 3, "no-answer": 2, "failed": 2}}
            {extra}}}"#
    );
    let c = api(server, key, "POST", "/v1/campaigns", Some(&body));
    let id = c["id"].as_str().expect("campaign id").to_string();
    api(
        server,
        key,
        "POST",
        &format!("/v1/campaigns/{id}/start"),
        None,
    );
    id
}

/// The campaign's attempts (its `attempts.csv`).
fn attempts(server: &Server, key: &str, campaign: &str) -> Vec<Attempt> {
    server.attempts(key, campaign)
}

fn wait_completed(server: &Server, key: &str, campaign: &str, timeout: Duration) {
    let done = poll_until(timeout, Duration::from_millis(500), || {
        let c = api(
            server,
            key,
            "GET",
            &format!("/v1/campaigns/{campaign}"),
            None,
        );
        (c["state"] == "completed").then_some(())
    });
    assert!(
        done.is_some(),
        "campaign not completed within {timeout:?}; attempts: {:#?}\n--- server ---\n{}",
        attempts(server, key, campaign),
        server.log()
    );
}

fn by_contact(all: &[Attempt]) -> HashMap<String, Vec<Attempt>> {
    let mut m: HashMap<String, Vec<Attempt>> = HashMap::new();
    for a in all {
        m.entry(a.contact.clone()).or_default().push(a.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|a| a.no);
    }
    m
}

/// No 60-second window of the stored attempt starts holds more than `per_minute`.
fn assert_rate(all: &[Attempt], per_minute: usize) {
    let mut starts: Vec<DateTime<Utc>> = all.iter().map(|a| a.started).collect();
    starts.sort();
    for w in starts.windows(per_minute + 1) {
        assert!(
            w[per_minute] - w[0] >= chrono::Duration::seconds(60),
            "{} attempts within 60 s: {} .. {}",
            per_minute + 1,
            w[0],
            w[per_minute]
        );
    }
}

#[test]
fn agentless_campaign_outcomes_retries_max_attempts_and_rate_limit() {
    let far = far_end();
    let server = server_for(&far);
    let key = server.api_key();
    let phones = phones(12);
    let id = start_campaign(
        &server,
        &key,
        &phones,
        r#", "rate_per_minute": 10, "max_concurrent": 5"#,
    );
    wait_completed(&server, &key, &id, Duration::from_secs(240));
    let all = attempts(&server, &key, &id);
    let per = by_contact(&all);
    assert_eq!(per.len(), phones.len(), "every contact dialled: {all:#?}");
    for (contact, tries) in &per {
        let phone = &tries[0].phone;
        let want = expected_outcome(phone);
        let want_tries = if want == "human" { 1 } else { 2 };
        assert_eq!(
            tries.len(),
            want_tries,
            "contact {contact} ({phone}): attempts {tries:#?}"
        );
        for (i, a) in tries.iter().enumerate() {
            assert_eq!(
                a.no as usize,
                i + 1,
                "attempt numbers of {phone}: {tries:#?}"
            );
            assert_eq!(
                a.outcome, want,
                "outcome of {phone} attempt {}: {a:?}",
                a.no
            );
            assert!(a.ended.is_some(), "attempt without an end: {a:?}");
            assert!(!a.call_id.is_empty(), "attempt without a call: {a:?}");
        }
        if let [first, second] = &tries[..] {
            let delay = match want {
                "busy" => 3,
                _ => 2,
            };
            let due = first.ended.expect("ended") + chrono::Duration::seconds(delay);
            assert!(
                second.started >= due,
                "{phone} ({want}) retried at {} before its due time {due}",
                second.started
            );
        }
    }
    assert_eq!(all.len(), 17);
    assert_rate(&all, 10);
    // One call per attempt, none outside a claim.
    let calls = server.all_calls(&key, "");
    assert_eq!(calls.len(), all.len(), "one call per attempt");
}

#[test]
fn kill_9_mid_campaign_then_restart_finishes_with_every_attempt_accounted_for() {
    let far = far_end();
    let mut server = server_for(&far);
    let key = server.api_key();
    let phones = phones(12);
    let id = start_campaign(
        &server,
        &key,
        &phones,
        r#", "max_concurrent": 4, "rate_per_minute": 10"#,
    );
    let started = poll_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let a = attempts(&server, &key, &id);
        let open = a.iter().filter(|a| a.ended.is_none()).count();
        (a.len() >= 6 && open >= 1).then_some(a.len())
    });
    assert!(
        started.is_some(),
        "campaign did not get going\n{}",
        server.log()
    );
    server.kill();
    let before = {
        // Read the store through a restarted server only: the API is down now.
        server.restart();
        attempts(&server, &key, &id)
    };
    wait_completed(&server, &key, &id, Duration::from_secs(240));
    let all = attempts(&server, &key, &id);
    assert!(all.len() >= before.len(), "no attempt row lost");
    for a in &all {
        assert!(
            a.ended.is_some() && !a.outcome.is_empty(),
            "attempt left without an outcome: {a:?}"
        );
    }
    let restarted: Vec<&Attempt> = all
        .iter()
        .filter(|a| a.outcome == "failed" && expected_outcome(&a.phone) != "failed")
        .collect();
    for (contact, tries) in by_contact(&all) {
        let phone = &tries[0].phone;
        for (i, a) in tries.iter().enumerate() {
            assert_eq!(
                a.no as usize,
                i + 1,
                "attempt numbers of {contact}: {tries:#?}"
            );
        }
        assert!(tries.len() <= 2, "max attempts of {phone}: {tries:#?}");
        let last = tries.last().expect("one attempt");
        let want = expected_outcome(phone);
        // Either the contact's own outcome, or every attempt lost to the crash.
        assert!(
            last.outcome == want || tries.len() == 2,
            "{phone}: {tries:#?}"
        );
    }
    // The rate limit held across the restart: it is rebuilt from the stored attempt starts.
    assert_rate(&all, 10);
    // One call per attempt at most: an attempt never dialled twice.
    let calls = server.all_calls(&key, "");
    let mut per_attempt: HashMap<String, usize> = HashMap::new();
    for c in &calls {
        if let Some(a) = c["metadata"]["attempt_id"].as_str() {
            *per_attempt.entry(a.to_string()).or_default() += 1;
        }
    }
    for a in &all {
        assert!(
            per_attempt.get(&a.id).copied().unwrap_or(0) <= 1,
            "attempt {} placed several calls",
            a.id
        );
    }
    assert!(
        calls.len() <= all.len(),
        "{} calls for {} attempts",
        calls.len(),
        all.len()
    );
    eprintln!(
        "kill -9 test: {} attempts before the restart, {} in all, {} failed by the restart",
        before.len(),
        all.len(),
        restarted.len()
    );
}

#[test]
fn pause_stops_new_claims_calls_in_flight_finish_and_resume_completes() {
    let far = far_end();
    let server = server_for(&far);
    let key = server.api_key();
    // Numbers ending 0, 1, 2, 8, 9: all answer.
    let phones: Vec<String> = ["00", "01", "02", "08", "09", "10", "11", "12"]
        .iter()
        .map(|s| format!("+121255501{s}"))
        .collect();
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let id = start_campaign(
        &server,
        &key,
        &phones,
        &format!(
            r#", "max_concurrent": 2, "status_callback": "{}""#,
            hook.url("/hook")
        ),
    );
    let going = poll_until(Duration::from_secs(60), Duration::from_millis(100), || {
        (attempts(&server, &key, &id).len() >= 2).then_some(())
    });
    assert!(
        going.is_some(),
        "campaign did not get going\n{}",
        server.log()
    );
    let paused = api(
        &server,
        &key,
        "POST",
        &format!("/v1/campaigns/{id}/pause"),
        None,
    );
    assert_eq!(paused["state"], "paused");
    let paused_at =
        DateTime::parse_from_rfc3339(paused["updated_at"].as_str().expect("updated_at"))
            .expect("time")
            .with_timezone(&Utc);
    // Calls in flight finish by themselves.
    let settled = poll_until(Duration::from_secs(60), Duration::from_millis(200), || {
        let a = attempts(&server, &key, &id);
        a.iter().all(|a| a.ended.is_some()).then_some(a)
    })
    .expect("calls in flight finished");
    assert!(
        settled.len() < phones.len(),
        "the pause came too late to test anything: {settled:#?}"
    );
    for a in &settled {
        assert_eq!(a.outcome, "human", "{a:?}");
        // A claim that read the state just before the pause committed may carry a time up to
        // the pause's own; none may start after it (1 s margin for the two clocks' reads).
        assert!(
            a.started <= paused_at + chrono::Duration::seconds(1),
            "attempt started after the pause at {paused_at}: {a:?}"
        );
    }
    // Still paused a few ticks later: nothing new.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(attempts(&server, &key, &id).len(), settled.len());
    api(
        &server,
        &key,
        "POST",
        &format!("/v1/campaigns/{id}/resume"),
        None,
    );
    wait_completed(&server, &key, &id, Duration::from_secs(120));
    let all = attempts(&server, &key, &id);
    assert_eq!(all.len(), phones.len(), "one attempt per contact: {all:#?}");
    assert!(all.iter().all(|a| a.outcome == "human"), "{all:#?}");
    // Each attempt's events reached the campaign's webhook: attempt.started, attempt.finished.
    let kinds_of = |kind: &str| -> Vec<serde_json::Value> {
        hook.requests()
            .iter()
            .filter_map(|r| r.json().ok())
            .filter(|e| e["type"] == kind)
            .collect()
    };
    let delivered = poll_until(Duration::from_secs(30), Duration::from_millis(200), || {
        (kinds_of("attempt.finished").len() >= all.len()).then_some(())
    });
    assert!(delivered.is_some(), "attempt.finished webhooks missing");
    let started = kinds_of("attempt.started");
    let finished = kinds_of("attempt.finished");
    assert_eq!(started.len(), all.len(), "attempt.started: {started:#?}");
    assert_eq!(finished.len(), all.len(), "attempt.finished: {finished:#?}");
    for a in &all {
        let f = finished
            .iter()
            .find(|e| e["payload"]["attempt_id"] == a.id.as_str())
            .unwrap_or_else(|| panic!("no attempt.finished for {a:?}"));
        assert_eq!(f["payload"]["outcome"], "human");
        assert_eq!(f["payload"]["contact_status"], "done");
        assert_eq!(f["call_id"], a.call_id.as_str());
    }
}

#[test]
fn two_nodes_on_one_postgresql_run_one_campaign_without_overlap() {
    let Some(base) = trunkline::store::testing::pg_base_url() else {
        eprintln!("skipped: TRUNKLINE_TEST_PG is not set");
        return;
    };
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(trunkline::store::testing::fresh_postgres_url(&base))
        .expect("a fresh PostgreSQL database");
    let far = far_end();
    let mut o = ServerOptions::default()
        .trunk("far", far.sip_addr())
        .database_url(&url);
    o.server_extra = "[calls]\nring_timeout_secs = 3\n".into();
    // Two nodes (names differ by SIP port), one database.
    let a = Server::start_with(o.clone());
    let b = Server::start_with(o);
    let key = a.api_key();
    let phones = phones(20);
    let id = start_campaign(
        &a,
        &key,
        &phones,
        r#", "max_concurrent": 6, "rate_per_minute": 600"#,
    );
    wait_completed(&b, &key, &id, Duration::from_secs(240));
    let all = attempts(&b, &key, &id);
    let nodes: std::collections::HashSet<&str> = all.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "both nodes dialled: {nodes:?}");
    let mut expected_total = 0;
    for phone in &phones {
        expected_total += if expected_outcome(phone) == "human" {
            1
        } else {
            2
        };
    }
    assert_eq!(
        all.len(),
        expected_total,
        "attempts as one node makes them: {all:#?}"
    );
    let per_contact = by_contact(&all);
    assert_eq!(per_contact.len(), phones.len());
    for tries in per_contact.values() {
        let phone = &tries[0].phone;
        let want = expected_outcome(phone);
        let n = if want == "human" { 1 } else { 2 };
        assert_eq!(tries.len(), n, "{phone}: {tries:#?}");
        for (i, t) in tries.iter().enumerate() {
            assert_eq!(t.no as usize, i + 1, "{phone}: {tries:#?}");
            assert_eq!(t.outcome, want, "{phone}: {tries:#?}");
        }
        // Never two calls to one contact at once: each attempt ends before the next starts.
        for w in tries.windows(2) {
            let ended = w[0].ended.expect("ended");
            assert!(
                ended <= w[1].started,
                "{phone}: overlapping attempts {tries:#?}"
            );
        }
    }
    // Every attempt placed its own call, once.
    let calls: std::collections::HashSet<&str> = all.iter().map(|a| a.call_id.as_str()).collect();
    assert_eq!(calls.len(), all.len(), "one call per attempt");
    eprintln!(
        "two nodes: {} attempts, {} by {:?}",
        all.len(),
        all.iter()
            .filter(|t| Some(&t.node.as_str()) == nodes.iter().next())
            .count(),
        nodes.iter().next()
    );
}

#[test]
fn a_contact_outside_its_calling_window_is_dialled_only_once_it_opens() {
    let far = far_end();
    let server = server_for(&far);
    let key = server.api_key();
    // The numbers are New York's (+1 212): their window is in New York time.
    let zone: chrono_tz::Tz = "America/New_York".parse().expect("zone");
    let mut local = SystemClock.utc().with_timezone(&zone);
    if local.time() >= chrono::NaiveTime::from_hms_opt(23, 58, 0).expect("time") {
        // Too close to local midnight for a window that opens later today: wait for tomorrow.
        std::thread::sleep(Duration::from_secs(150));
        local = SystemClock.utc().with_timezone(&zone);
    }
    let opens = (local + chrono::Duration::seconds(20)).time();
    let start = opens.format("%H:%M:%S").to_string();
    let open_at = SystemClock.utc() + chrono::Duration::seconds(20);
    let phones: Vec<String> = phones(3);
    let id = start_campaign_in_window(&server, &key, &phones, (&start, "23:59:59"), "");
    // Closed for the first 20 s: no attempt while it is.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        attempts(&server, &key, &id).is_empty(),
        "dialled before the window opened at {start} New York time"
    );
    wait_completed(&server, &key, &id, Duration::from_secs(90));
    let all = attempts(&server, &key, &id);
    assert_eq!(all.len(), phones.len(), "{all:#?}");
    for a in &all {
        // One second of slack for the second the window string was cut to.
        assert!(
            a.started >= open_at - chrono::Duration::seconds(1),
            "attempt at {} before the window opened at {open_at}: {a:?}",
            a.started
        );
        assert_eq!(a.outcome, "human", "{a:?}");
    }
}

/// SIPp far ends that behave by the same digits, whose people talk for `talk` and then hang up
/// (`tests/sipp/uas_customer.xml`).
fn talking_far_end(talk: Duration) -> SippProcess {
    Sipp::uas(Scenario::ours("uas_customer"))
        .calls(None)
        .pause(talk)
        .timeout(Duration::from_secs(300), Duration::from_secs(5))
        .start()
        .expect("SIPp far end")
}

/// The campaign's `attempt.human_action` events (its webhook), once `n` have arrived.
fn human_actions(hook: &WebhookReceiver, n: usize) -> Vec<serde_json::Value> {
    poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let found: Vec<serde_json::Value> = hook
            .requests()
            .iter()
            .filter(|r| r.path == "/events")
            .filter_map(|r| r.json().ok())
            .filter(|e| e["type"] == "attempt.human_action")
            .collect();
        (found.len() >= n).then_some(found)
    })
    .unwrap_or_else(|| panic!("fewer than {n} attempt.human_action events"))
}

/// The call a transfer leg was placed for, and the leg, among all the server's calls.
fn person_and_leg(server: &Server, key: &str) -> (serde_json::Value, serde_json::Value) {
    let calls = server.all_calls(key, "");
    let leg = calls
        .iter()
        .find(|c| c["metadata"]["bridged_from"].is_string())
        .unwrap_or_else(|| panic!("no transfer leg among {calls:#?}"))
        .clone();
    let person = calls
        .iter()
        .find(|c| c["id"] == leg["metadata"]["bridged_from"])
        .unwrap_or_else(|| panic!("no person's call for {leg:#}"))
        .clone();
    (person, leg)
}

#[test]
fn agentless_bridge_puts_the_person_through_to_bridge_to_and_a_failed_leg_hangs_up() {
    let far = talking_far_end(Duration::from_secs(3));
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let server = server_for(&far);
    let key = server.api_key();

    // +...00 answers (a person) and is put through to +...90, who answers too.
    let extra = format!(
        r#", "on_human": "bridge", "bridge_to": "+12125550190", "status_callback": "{}""#,
        hook.url("/events")
    );
    let campaign = start_campaign(&server, &key, &["+12125550100".to_string()], &extra);
    wait_completed(&server, &key, &campaign, Duration::from_secs(60));
    let all = attempts(&server, &key, &campaign);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].outcome, "human", "{all:#?}");
    let (person, leg) = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let (p, l) = person_and_leg(&server, &key);
        (p["ended_at"].is_string() && l["ended_at"].is_string()).then_some((p, l))
    })
    .expect("both calls end");
    assert_eq!(person["id"], all[0].call_id.as_str(), "{person:#}");
    assert_eq!(leg["to"], "+12125550190", "{leg:#}");
    assert_eq!(leg["metadata"]["attempt_id"], all[0].id.as_str(), "{leg:#}");
    assert!(leg["answered_at"].is_string(), "the leg answered: {leg:#}");
    assert!(person["conference_id"].is_string(), "{person:#}");
    assert_eq!(
        person["conference_id"], leg["conference_id"],
        "the two share a room: {person:#} {leg:#}"
    );
    // The person hung up after talking; the room then ended the leg.
    assert_eq!(person["ended_by"], "callee", "{person:#}");
    assert_eq!(leg["ended_by"], "system", "{leg:#}");
    let actions = human_actions(&hook, 1);
    assert_eq!(actions[0]["payload"]["action"], "bridge", "{actions:#?}");
    assert_eq!(actions[0]["payload"]["source"], "campaign", "{actions:#?}");
    assert_eq!(actions[0]["payload"]["to"], "+12125550190", "{actions:#?}");
    drop(far);
}

#[test]
fn agentless_bridge_to_a_number_that_rings_out_hangs_up_the_person() {
    let far = talking_far_end(Duration::from_secs(20));
    let server = server_for(&far);
    let key = server.api_key();
    // +...95 rings until cancelled: the leg rings out (3 s) and the person is hung up.
    let campaign = start_campaign(
        &server,
        &key,
        &["+12125550100".to_string()],
        r#", "on_human": "bridge", "bridge_to": "+12125550195""#,
    );
    wait_completed(&server, &key, &campaign, Duration::from_secs(60));
    let (person, leg) = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let (p, l) = person_and_leg(&server, &key);
        (p["ended_at"].is_string() && l["ended_at"].is_string()).then_some((p, l))
    })
    .expect("both calls end");
    assert!(leg["answered_at"].is_null(), "{leg:#}");
    assert_eq!(leg["final_status"], "no-answer", "{leg:#}");
    // (The dialer hangs up through the engine's hang-up command, as the API does.)
    assert_eq!(
        person["ended_by"], "api",
        "trunkline hung up the person when the leg rang out: {person:#}"
    );
    drop(far);
}

#[test]
fn agentless_webhook_chooses_per_person_and_a_failing_webhook_falls_back_to_the_prompt() {
    const SECRET: &str = "it-dialer-secret";
    let far = talking_far_end(Duration::from_secs(20));
    // The campaign's events, and (apart, so that it can fail alone) the deciding webhook.
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let decider = WebhookReceiver::start().expect("deciding webhook");
    let mut o = ServerOptions::default().trunk("far", far.sip_addr());
    o.server_extra =
        format!("[calls]\nring_timeout_secs = 3\n\n[webhooks]\nsecret = \"{SECRET}\"\n");
    let server = Server::start_with(o);
    let key = server.api_key();

    // The webhook says: hang up.
    decider.set_reply(r#"{"action": "hangup"}"#);
    let extra = format!(
        r#", "on_human": "webhook", "on_human_url": "{}", "status_callback": "{}""#,
        decider.url("/decide"),
        hook.url("/events")
    );
    let campaign = start_campaign(&server, &key, &["+12125550100".to_string()], &extra);
    wait_completed(&server, &key, &campaign, Duration::from_secs(60));
    let asked: Vec<_> = decider
        .requests()
        .into_iter()
        .filter(|r| r.path == "/decide")
        .collect();
    assert_eq!(asked.len(), 1, "one question per person");
    let q = asked[0].json().expect("JSON question");
    let all = attempts(&server, &key, &campaign);
    assert_eq!(q["attempt_id"], all[0].id.as_str(), "{q:#}");
    assert_eq!(q["call_id"], all[0].call_id.as_str(), "{q:#}");
    assert_eq!(q["contact"]["phone"], "+12125550100", "{q:#}");
    let ts = asked[0].header("x-trunkline-timestamp").expect("timestamp");
    let sig = asked[0].header("x-trunkline-signature").expect("signature");
    assert!(
        trunkline::events::signature::verify_signature(SECRET, ts, &asked[0].body, sig),
        "the question is signed with the webhook secret"
    );
    let actions = human_actions(&hook, 1);
    assert_eq!(actions[0]["payload"]["action"], "hangup", "{actions:#?}");
    assert_eq!(actions[0]["payload"]["source"], "webhook", "{actions:#?}");
    let person = server.call(&key, &all[0].call_id);
    assert_eq!(person["ended_by"], "api", "the dialer hung up: {person:#}");

    // A webhook that fails (500): the campaign's message is played instead (the 2 s tone),
    // then the call is hung up.
    decider.set_status(500);
    let campaign = start_campaign(&server, &key, &["+12125550101".to_string()], &extra);
    wait_completed(&server, &key, &campaign, Duration::from_secs(60));
    let actions = human_actions(&hook, 2);
    let fallback = &actions[1]["payload"];
    assert_eq!(fallback["action"], "prompt", "{actions:#?}");
    assert_eq!(fallback["source"], "fallback", "{actions:#?}");
    assert!(
        fallback["error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{fallback:#}"
    );
    let all = attempts(&server, &key, &campaign);
    let person = server.call(&key, &all[0].call_id);
    assert_eq!(person["ended_by"], "api", "{person:#}");
    assert!(
        person["duration_ms"].as_i64().unwrap_or(0) >= 1_900,
        "the 2 s message was played before the hang-up: {person:#}"
    );
    drop(far);
}
