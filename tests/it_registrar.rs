//! Agents register at trunkline (issue 6, part 1): real baresip phones and raw UDP over
//! loopback against the real binary.
//!
//! baresip registers with digest auth through its account line (`accounts` file):
//!
//! ```text
//! <sip:alice@127.0.0.1:5060>;auth_pass=alice-pw;regint=600;audio_codecs=PCMU,PCMA
//! ```
//!
//! The AOR's host:port is the registrar (REGISTER goes there), the digest username defaults to
//! the AOR user, `regint` is the Expires it asks for (it refreshes before then), and `/quit`
//! unregisters (`Expires: 0`). See `tests/common/baresip.rs` ([`BaresipOptions::register`]).

mod common;

use common::api::request;
use common::baresip::{Baresip, BaresipOptions};
use common::{Server, ServerOptions, exchange};
use std::time::Duration;
use trunkline::sip::digest::{Challenge, Credentials, RequestDigest, authorization};

/// `GET /v1/registrations` (with `query`) as JSON rows.
fn registrations(server: &Server, key: &str, query: &str) -> Vec<serde_json::Value> {
    let r = request(
        server.http,
        "GET",
        &format!("/v1/registrations{query}"),
        Some(key),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["registrations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `GET /v1/registrations` has `n` rows.
fn wait_registrations(
    server: &Server,
    key: &str,
    n: usize,
    within: Duration,
) -> Vec<serde_json::Value> {
    common::poll_until(within, Duration::from_millis(100), || {
        let rows = registrations(server, key, "");
        (rows.len() == n).then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "not {n} registrations within {within:?}: {:?}\n--- server ---\n{}",
            registrations(server, key, ""),
            server.log()
        )
    })
}

fn phone(user: &str, server: &Server, password: &str, regint: u32) -> Baresip {
    Baresip::start_with(BaresipOptions::new(user, None).register(server.sip, password, regint))
        .expect("baresip starts")
}

/// `[registrar]` for baresip 1.0: its libre refuses the whole 401 when any challenge is not
/// MD5 ("Register: Function not implemented"), so only MD5 is offered to it.
const BARESIP_REGISTRAR: &str = "[registrar]\nalgorithms = [\"MD5\"]\n";

fn agents() -> ServerOptions {
    ServerOptions::default()
        .agent("alice", "alice-pw")
        .agent("bob", "bob-pw")
}

fn agents_for_baresip(extra: &str) -> ServerOptions {
    let mut o = agents();
    o.server_extra = format!("{BARESIP_REGISTRAR}{extra}");
    o
}

#[test]
fn two_baresip_agents_register_with_digest_and_unregister() {
    let server = Server::start_with(agents_for_baresip(""));
    let key = server.api_key();
    let mut alice = phone("alice", &server, "alice-pw", 600);
    let bob = phone("bob", &server, "bob-pw", 600);
    let rows = wait_registrations(&server, &key, 2, Duration::from_secs(15));
    for (user, p) in [("alice", &alice), ("bob", &bob)] {
        let row = rows
            .iter()
            .find(|r| r["user"] == user)
            .unwrap_or_else(|| panic!("{user} not listed: {rows:?}"));
        // The source is where the REGISTER came from: the phone's SIP socket.
        assert_eq!(row["source"], format!("127.0.0.1:{}", p.sip_port), "{row}");
        assert_eq!(row["transport"], "udp");
        assert!(
            row["contact"]
                .as_str()
                .is_some_and(|c| c.starts_with(&format!("sip:{user}"))),
            "{row}"
        );
        assert!(
            row["user_agent"]
                .as_str()
                .is_some_and(|u| u.contains("baresip")),
            "{row}"
        );
        assert!(row["expires_at"].is_string());
    }
    // Both phones saw the 401 challenge and then 200.
    assert!(alice.output().contains("200 OK"), "{}", alice.output());
    let only_bob = registrations(&server, &key, "?user=bob");
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0]["user"], "bob");
    // alice quits: baresip unregisters, the row goes.
    alice.quit(Duration::from_secs(5));
    let rows = wait_registrations(&server, &key, 1, Duration::from_secs(10));
    assert_eq!(rows[0]["user"], "bob");
    let events = read_sse(&server, &key, "\"unregister\"", Duration::from_secs(10));
    assert_eq!(
        events.matches("event: registration.created").count(),
        2,
        "{events}"
    );
    assert!(events.contains("\"reason\":\"unregister\""), "{events}");
    // The list is in the OpenAPI document; bad queries get the API's errors.
    let doc = request(server.http, "GET", "/v1/openapi.json", None, &[], None);
    assert!(doc.body.contains("/v1/registrations"));
    for (query, status) in [
        ("?limit=0", 422),
        ("?cursor=not-ours", 422),
        ("?colour=blue", 400),
    ] {
        let r = request(
            server.http,
            "GET",
            &format!("/v1/registrations{query}"),
            Some(&key),
            &[],
            None,
        );
        assert_eq!(r.status, status, "{query}: {}", r.body);
        assert!(r.json()["error"]["code"].is_string(), "{}", r.body);
    }
    let r = request(server.http, "GET", "/v1/registrations", None, &[], None);
    assert_eq!(r.status, 401);
    drop(bob);
}

/// A REGISTER for alice from the test's socket, with an optional `Authorization`.
fn register_text(server: &Server, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKwrong{cseq};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=w{cseq}\r\n\
To: <sip:alice@127.0.0.1>\r\n\
Call-ID: wrong-password-{cseq}\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:alice@127.0.0.1:9>\r\n\
Expires: 600\r\n\
{auth}Content-Length: 0\r\n\r\n",
        port = server.sip.port()
    )
}

#[test]
fn wrong_password_gets_401_again_and_repeated_failures_get_429() {
    let mut o = agents();
    o.server_extra = "[registrar]\nmax_auth_failures_per_minute = 3\n".into();
    let server = Server::start_with(o);
    let key = server.api_key();
    let wait = Duration::from_secs(3);
    for attempt in 0..3u32 {
        let r = exchange(
            &server,
            register_text(&server, attempt * 2 + 1, None).as_bytes(),
            wait,
        )
        .expect("an answer to REGISTER");
        assert!(r.starts_with("SIP/2.0 401"), "{r}");
        // SHA-256 is offered first, then MD5.
        let sha = r.find("algorithm=SHA-256").expect("SHA-256 challenge");
        let md5 = r.find("algorithm=MD5").expect("MD5 challenge");
        assert!(sha < md5, "{r}");
        let challenges: Vec<&str> = r
            .lines()
            .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .collect();
        let challenge = Challenge::best(challenges).expect("challenge");
        let auth = authorization(
            &challenge,
            &Credentials {
                username: "alice".into(),
                password: "not-the-password".into(),
            },
            RequestDigest {
                method: "REGISTER",
                uri: &format!("sip:127.0.0.1:{}", server.sip.port()),
                cnonce: "c0ffee",
                nc: 1,
            },
        );
        let r = exchange(
            &server,
            register_text(&server, attempt * 2 + 2, Some(&auth)).as_bytes(),
            wait,
        )
        .expect("an answer to the wrong password");
        assert!(r.starts_with("SIP/2.0 401"), "attempt {attempt}: {r}");
        assert!(r.contains("WWW-Authenticate"), "{r}");
    }
    // Over the budget: every REGISTER from this address is refused for the minute.
    let r = exchange(&server, register_text(&server, 100, None).as_bytes(), wait)
        .expect("an answer when throttled");
    assert!(r.starts_with("SIP/2.0 429"), "{r}");
    assert!(r.contains("Retry-After:"), "{r}");
    assert!(registrations(&server, &key, "").is_empty());
}

#[test]
fn a_registration_survives_a_restart_and_unregisters_after_it() {
    let mut server = Server::start_with(agents_for_baresip(""));
    let key = server.api_key();
    let mut alice = phone("alice", &server, "alice-pw", 600);
    let before = wait_registrations(&server, &key, 1, Duration::from_secs(15));
    server.restart();
    let after = registrations(&server, &key, "");
    assert_eq!(after.len(), 1, "{}", server.log());
    assert_eq!(after[0]["contact"], before[0]["contact"]);
    assert_eq!(after[0]["source"], before[0]["source"]);
    // The restarted registrar holds the binding (not only the row): the unregister finds it
    // and removes the row.
    alice.quit(Duration::from_secs(5));
    wait_registrations(&server, &key, 0, Duration::from_secs(10));
}

#[test]
fn a_registration_not_refreshed_expires_and_is_removed() {
    let server = Server::start_with(agents_for_baresip(
        "min_expires = 2\ndefault_expires = 3\nmax_expires = 3\n",
    ));
    let key = server.api_key();
    let alice = phone("alice", &server, "alice-pw", 3);
    wait_registrations(&server, &key, 1, Duration::from_secs(15));
    // The phone dies without unregistering (SIGKILL on drop): nothing refreshes the binding.
    drop(alice);
    wait_registrations(&server, &key, 0, Duration::from_secs(15));
    // Not only hidden from the list: the registrar's timer removed it, with its event.
    let events = read_sse(&server, &key, "\"expired\"", Duration::from_secs(10));
    assert!(events.contains("event: registration.created"), "{events}");
    assert!(events.contains("event: registration.removed"), "{events}");
    assert!(events.contains("\"reason\":\"expired\""), "{events}");
}

/// The stored events from the start (`Last-Event-ID: 0`), read until `until` appears or
/// `timeout` passes.
fn read_sse(server: &Server, key: &str, until: &str, timeout: Duration) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n",
        server.http
    );
    s.write_all(req.as_bytes()).expect("send");
    let deadline = common::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while common::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains(until) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

#[test]
fn keepalive_keeps_a_live_phone_and_removes_a_dead_one() {
    // OPTIONS every second; a dead phone's pings each time out on Timer F (32 s over UDP), so
    // the third miss comes about 35 s after it died.
    let server = Server::start_with(agents_for_baresip("keepalive_secs = 1\n"));
    let key = server.api_key();
    let alice = phone("alice", &server, "alice-pw", 600);
    let bob = phone("bob", &server, "bob-pw", 600);
    wait_registrations(&server, &key, 2, Duration::from_secs(15));
    drop(bob);
    let rows = wait_registrations(&server, &key, 1, Duration::from_secs(60));
    // alice answered every ping (some 35 of them) and is still there.
    assert_eq!(rows[0]["user"], "alice");
    let events = read_sse(&server, &key, "\"keepalive\"", Duration::from_secs(10));
    assert!(events.contains("\"reason\":\"keepalive\""), "{events}");
    assert!(!events.contains("\"reason\":\"expired\""), "{events}");
    // Had alice's pings gone unanswered she would have gone first (she registered first).
    std::thread::sleep(Duration::from_secs(2));
    let rows = registrations(&server, &key, "");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user"], "alice");
    drop(alice);
}
