//! Registrar tests in simulated time: digest, nonces, replay, throttle, bindings.

use super::*;
use crate::clock::test_origin;
use crate::sip::digest::{Challenge, Credentials, DigestClient, RequestDigest, authorization};
use crate::sip::message::{SipMessage, parse};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SRC: &str = "192.0.2.10:40000";

fn agent(name: &str, password: &str, max_contacts: usize) -> AgentConfig {
    AgentConfig {
        name: name.into(),
        password: password.into(),
        display_name: None,
        trunks: Vec::new(),
        max_contacts,
        caller_id: None,
    }
}

fn registrar() -> Registrar {
    Registrar::new(
        RegistrarSettings::default(),
        &[agent("alice", "secret", 2), agent("bob", "pw", 5)],
        [7; 32],
    )
}

fn src() -> SocketAddr {
    SRC.parse().unwrap()
}

/// A REGISTER for `user` with extra header lines (each ending in CRLF).
fn register(user: &str, cseq: u32, extra: &str) -> Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}x;rport\r\n\
From: <sip:{user}@127.0.0.1>;tag=f1\r\n\
To: <sip:{user}@127.0.0.1>\r\n\
Call-ID: reg-{user}\r\n\
CSeq: {cseq} REGISTER\r\n\
Max-Forwards: 70\r\n\
User-Agent: test-phone\r\n\
{extra}Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn with_auth(mut req: Request, value: &str) -> Request {
    req.headers.insert(Name::AUTHORIZATION, value.to_string());
    req
}

fn challenges(r: &Response) -> Vec<Challenge> {
    r.headers
        .get_raw(&Name::WWW_AUTHENTICATE)
        .map(|v| Challenge::parse(v.as_str()).expect("challenge"))
        .collect()
}

/// Sends a REGISTER, answers the 401 with `password`, and returns the final response.
fn register_with(
    reg: &mut Registrar,
    now: Instant,
    user: &str,
    password: &str,
    cseq: u32,
    extra: &str,
) -> Response {
    let r = reg.handle_register(now, &register(user, cseq, extra), src(), Transport::Udp);
    assert_eq!(r.code(), 401);
    let best = Challenge::best(
        r.headers
            .get_raw(&Name::WWW_AUTHENTICATE)
            .map(|v| v.as_str()),
    )
    .expect("challenge");
    let mut client = DigestClient::new(Credentials {
        username: user.into(),
        password: password.into(),
    });
    client.set_challenge(best);
    let value = client
        .authorize("REGISTER", "sip:127.0.0.1", &mut StdRng::seed_from_u64(1))
        .expect("auth");
    reg.handle_register(
        now,
        &with_auth(register(user, cseq + 1, extra), &value),
        src(),
        Transport::Udp,
    )
}

/// alice's (password `secret`) `Authorization` for a REGISTER answering challenge `c` with
/// nonce count `nc` (cnonce `c`).
fn alice_answer(c: &Challenge, nc: u32) -> String {
    let creds = Credentials {
        username: "alice".into(),
        password: "secret".into(),
    };
    authorization(
        c,
        &creds,
        RequestDigest {
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            cnonce: "c",
            nc,
        },
    )
}

fn events(reg: &mut Registrar) -> Vec<RegistrarEvent> {
    std::iter::from_fn(|| reg.poll_event()).collect()
}

#[test]
fn challenge_offers_sha256_then_md5_with_qop_auth() {
    let mut reg = registrar();
    let now = test_origin();
    let r = reg.handle_register(now, &register("alice", 1, ""), src(), Transport::Udp);
    assert_eq!(r.code(), 401);
    let c = challenges(&r);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].algorithm, Algorithm::Sha256);
    assert_eq!(c[1].algorithm, Algorithm::Md5);
    assert!(
        c.iter()
            .all(|c| c.qop_auth && c.realm == "trunkline" && !c.stale)
    );
    // No credentials is not a failure.
    assert_eq!(reg.stats().auth_failures, 0);
}

#[test]
fn only_the_configured_algorithms_are_offered_and_accepted() {
    let settings = RegistrarSettings {
        algorithms: vec![Algorithm::Md5],
        ..RegistrarSettings::default()
    };
    let mut reg = Registrar::new(settings, &[agent("alice", "secret", 2)], [7; 32]);
    let now = test_origin();
    let r = reg.handle_register(now, &register("alice", 1, ""), src(), Transport::Udp);
    let c = challenges(&r);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].algorithm, Algorithm::Md5);
    // A SHA-256 answer (not offered) is refused, without counting as a wrong password.
    let mut sha = c[0].clone();
    sha.algorithm = Algorithm::Sha256;
    let value = authorization(
        &sha,
        &Credentials {
            username: "alice".into(),
            password: "secret".into(),
        },
        RequestDigest {
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            cnonce: "c",
            nc: 1,
        },
    );
    let req = with_auth(register("alice", 2, "Contact: <sip:a@1.1.1.1>\r\n"), &value);
    assert_eq!(
        reg.handle_register(now, &req, src(), Transport::Udp).code(),
        401
    );
    assert_eq!(reg.stats().auth_failures, 0);
    // MD5 works.
    let ok = register_with(
        &mut reg,
        now,
        "alice",
        "secret",
        10,
        "Contact: <sip:a@1.1.1.1>\r\n",
    );
    assert_eq!(ok.code(), 200);
}

#[test]
fn register_with_sha256_and_md5() {
    let now = test_origin();
    // SHA-256 (the client picks the strongest).
    let mut reg = registrar();
    let ok = register_with(
        &mut reg,
        now,
        "alice",
        "secret",
        1,
        "Contact: <sip:alice@10.0.0.5:5062>\r\n",
    );
    assert_eq!(ok.code(), 200, "{ok:?}");
    // MD5: answer only the MD5 challenge.
    let r = reg.handle_register(now, &register("bob", 1, ""), src(), Transport::Udp);
    let md5 = challenges(&r)
        .into_iter()
        .find(|c| c.algorithm == Algorithm::Md5)
        .unwrap();
    let value = authorization(
        &md5,
        &Credentials {
            username: "bob".into(),
            password: "pw".into(),
        },
        RequestDigest {
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            cnonce: "abc",
            nc: 1,
        },
    );
    assert!(value.contains("algorithm=MD5"));
    let req = with_auth(
        register("bob", 2, "Contact: <sip:bob@10.0.0.6:5064>\r\n"),
        &value,
    );
    let ok = reg.handle_register(now, &req, src(), Transport::Udp);
    assert_eq!(ok.code(), 200);
    let all: Vec<_> = reg.all_bindings(now).map(|b| b.user.as_str()).collect();
    assert_eq!(all.len(), 2);
}

#[test]
fn rfc7616_vectors_verify_on_the_server_side() {
    // RFC 7616 sec. 3.9.1, checked by the same `verify` the registrar uses.
    let base = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    for (algorithm, response) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let value = format!(r#"{base}, algorithm={algorithm}, response="{response}""#);
        let d = DigestResponse::parse(&value).expect("parse");
        assert!(digest::verify(
            &d,
            "GET",
            "http-auth@example.org",
            Secret::Password("Circle of Life")
        ));
        assert!(!digest::verify(
            &d,
            "GET",
            "http-auth@example.org",
            Secret::Password("Circle of life")
        ));
    }
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_fresh_401() {
    let now = test_origin();
    let mut reg = registrar();
    let wrong = register_with(
        &mut reg,
        now,
        "alice",
        "nope",
        1,
        "Contact: <sip:a@10.0.0.5>\r\n",
    );
    let unknown = register_with(
        &mut reg,
        now,
        "mallory",
        "x",
        1,
        "Contact: <sip:m@10.0.0.5>\r\n",
    );
    for r in [&wrong, &unknown] {
        assert_eq!(r.code(), 401);
        assert_eq!(r.reason(), "Unauthorized");
        let c = challenges(r);
        assert_eq!(c.len(), 2);
        assert!(!c[0].stale);
    }
    assert_eq!(reg.stats().auth_failures, 2);
    assert_eq!(reg.all_bindings(now).count(), 0);
}

#[test]
fn expired_nonce_is_stale_and_a_fresh_one_works() {
    let t0 = test_origin();
    let mut reg = registrar();
    let r = reg.handle_register(t0, &register("alice", 1, ""), src(), Transport::Udp);
    let c = challenges(&r).remove(0);
    let answer = |nc| alice_answer(&c, nc);
    let late = t0 + reg.settings().nonce_ttl + Duration::from_secs(1);
    let req = with_auth(
        register("alice", 2, "Contact: <sip:a@10.0.0.5>\r\n"),
        &answer(1),
    );
    let r = reg.handle_register(late, &req, src(), Transport::Udp);
    assert_eq!(r.code(), 401);
    let fresh = challenges(&r);
    assert!(fresh.iter().all(|f| f.stale), "{fresh:?}");
    assert_ne!(fresh[0].nonce, c.nonce);
    // A right digest on a stale nonce is not a failure.
    assert_eq!(reg.stats().auth_failures, 0);
    // Within the lifetime it works.
    let r = reg.handle_register(t0 + Duration::from_secs(10), &req, src(), Transport::Udp);
    assert_eq!(r.code(), 200);
    // A nonce from another source IP, or forged, is not ours: stale challenge, no binding.
    let other: SocketAddr = "192.0.2.99:5060".parse().unwrap();
    let req = with_auth(
        register("alice", 3, "Contact: <sip:a@10.0.0.5>\r\n"),
        &answer(2),
    );
    let r = reg.handle_register(t0 + Duration::from_secs(11), &req, other, Transport::Udp);
    assert_eq!(r.code(), 401);
    assert!(challenges(&r)[0].stale);
}

#[test]
fn reused_nonce_count_is_refused() {
    let t0 = test_origin();
    let mut reg = registrar();
    let r = reg.handle_register(t0, &register("alice", 1, ""), src(), Transport::Udp);
    let c = challenges(&r).remove(0);
    let answer = |nc| alice_answer(&c, nc);
    let contact = "Contact: <sip:a@10.0.0.5>\r\n";
    let first = with_auth(register("alice", 2, contact), &answer(1));
    assert_eq!(
        reg.handle_register(t0, &first, src(), Transport::Udp)
            .code(),
        200
    );
    // The same request captured and replayed (a new CSeq does not help: nc is signed).
    let replay = with_auth(register("alice", 3, contact), &answer(1));
    let r = reg.handle_register(t0, &replay, src(), Transport::Udp);
    assert_eq!(r.code(), 401);
    assert_eq!(reg.stats().auth_failures, 1);
    // The next count is fine.
    let next = with_auth(register("alice", 4, contact), &answer(2));
    assert_eq!(
        reg.handle_register(t0, &next, src(), Transport::Udp).code(),
        200
    );
}

#[test]
fn response_without_qop_or_for_another_uri_is_refused() {
    let t0 = test_origin();
    let mut reg = registrar();
    let r = reg.handle_register(t0, &register("alice", 1, ""), src(), Transport::Udp);
    let mut c = challenges(&r).remove(0);
    c.qop_auth = false;
    let creds = Credentials {
        username: "alice".into(),
        password: "secret".into(),
    };
    let legacy = authorization(
        &c,
        &creds,
        RequestDigest {
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            cnonce: "",
            nc: 0,
        },
    );
    let req = with_auth(register("alice", 2, ""), &legacy);
    assert_eq!(
        reg.handle_register(t0, &req, src(), Transport::Udp).code(),
        401
    );
    c.qop_auth = true;
    let other_uri = authorization(
        &c,
        &creds,
        RequestDigest {
            method: "REGISTER",
            uri: "sip:elsewhere.example",
            cnonce: "c",
            nc: 1,
        },
    );
    let req = with_auth(register("alice", 3, ""), &other_uri);
    assert_eq!(
        reg.handle_register(t0, &req, src(), Transport::Udp).code(),
        400
    );
    // Garbage credentials: 400, never a panic.
    let req = with_auth(
        register("alice", 4, ""),
        "Digest realm=\"trunkline\", nonce=",
    );
    assert_eq!(
        reg.handle_register(t0, &req, src(), Transport::Udp).code(),
        400
    );
}

#[test]
fn failures_are_throttled_per_source_ip_for_a_minute() {
    let t0 = test_origin();
    let mut reg = registrar();
    let max = reg.settings().max_auth_failures_per_minute;
    for i in 0..max {
        let r = register_with(&mut reg, t0, "alice", "bad", i * 2, "");
        assert_eq!(r.code(), 401, "attempt {i}");
    }
    // Over budget: 429 with Retry-After, even with the right password.
    let r = reg.handle_register(t0, &register("alice", 100, ""), src(), Transport::Udp);
    assert_eq!(r.code(), 429);
    assert_eq!(r.header(&Name::RETRY_AFTER), Some("60"));
    let r = reg.handle_register(
        t0 + Duration::from_secs(30),
        &register("alice", 101, ""),
        src(),
        Transport::Udp,
    );
    assert_eq!(r.header(&Name::RETRY_AFTER), Some("30"));
    // Another IP is not affected.
    let other: SocketAddr = "192.0.2.11:5060".parse().unwrap();
    let r = reg.handle_register(t0, &register("alice", 102, ""), other, Transport::Udp);
    assert_eq!(r.code(), 401);
    // After the minute the source may try again.
    let later = t0 + FAILURE_WINDOW;
    let ok = register_with(
        &mut reg,
        later,
        "alice",
        "secret",
        200,
        "Contact: <sip:a@1.2.3.4>\r\n",
    );
    assert_eq!(ok.code(), 200);
    assert_eq!(reg.stats().throttled, 2);
}

#[test]
fn bindings_lifecycle_refresh_expiry_and_unregister() {
    let t0 = test_origin();
    let mut reg = registrar();
    let c1 = "Contact: <sip:alice@10.0.0.5:5062;transport=udp>;expires=120\r\n";
    let ok = register_with(&mut reg, t0, "alice", "secret", 1, c1);
    assert_eq!(ok.code(), 200);
    let listed: Vec<_> = ok
        .headers
        .get_raw(&Name::CONTACT)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        listed,
        vec!["<sip:alice@10.0.0.5:5062;transport=udp>;expires=120"]
    );
    let ev = events(&mut reg);
    let [RegistrarEvent::Created(b)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    // NAT: the target is the source, not the Contact's address.
    assert_eq!(b.target, src());
    assert_eq!(b.contact, "sip:alice@10.0.0.5:5062;transport=udp");
    assert_eq!(b.user_agent.as_deref(), Some("test-phone"));
    assert_eq!(reg.bindings("alice", t0).count(), 1);
    assert_eq!(reg.bindings("bob", t0).count(), 0);

    // A second device with the Expires header; the 200 lists both.
    let c2 = "Contact: <sip:alice@10.0.0.7:5080>\r\nExpires: 300\r\n";
    let t1 = t0 + Duration::from_secs(20);
    let ok = register_with(&mut reg, t1, "alice", "secret", 10, c2);
    assert_eq!(ok.headers.get_raw(&Name::CONTACT).count(), 2);
    assert!(
        ok.headers
            .get_raw(&Name::CONTACT)
            .any(|v| v.as_str().ends_with("expires=100"))
    );
    // Refresh the first one: Refreshed, new expiry.
    let t2 = t0 + Duration::from_secs(100);
    events(&mut reg);
    let c1_longer = "Contact: <sip:alice@10.0.0.5:5062;transport=udp>;expires=600\r\n";
    let ok = register_with(&mut reg, t2, "alice", "secret", 20, c1_longer);
    assert_eq!(ok.code(), 200);
    assert!(
        matches!(events(&mut reg).as_slice(), [RegistrarEvent::Refreshed(b)] if b.expires_at == t2 + Duration::from_secs(600))
    );
    // The timer expires the second device at t1 + 300.
    assert!(
        reg.poll_timeout()
            .is_some_and(|t| t <= t1 + Duration::from_secs(300))
    );
    let mut now = t2;
    while let Some(t) = reg.poll_timeout() {
        if t > t1 + Duration::from_secs(300) {
            break;
        }
        now = t;
        reg.handle_timeout(now);
    }
    let removed: Vec<_> = events(&mut reg)
        .into_iter()
        .filter_map(|e| match e {
            RegistrarEvent::Removed { binding, reason } => Some((binding.contact, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        vec![(
            "sip:alice@10.0.0.7:5080".to_string(),
            RemovedReason::Expired
        )]
    );
    // Unregister the first one with expires=0.
    let bye = "Contact: <sip:alice@10.0.0.5:5062;transport=udp>;expires=0\r\n";
    let ok = register_with(&mut reg, now, "alice", "secret", 30, bye);
    assert_eq!(ok.code(), 200);
    assert_eq!(ok.headers.get_raw(&Name::CONTACT).count(), 0);
    assert!(matches!(
        events(&mut reg).as_slice(),
        [RegistrarEvent::Removed {
            reason: RemovedReason::Unregister,
            ..
        }]
    ));
    assert_eq!(reg.all_bindings(now).count(), 0);
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn star_removes_all_and_needs_expires_zero() {
    let t0 = test_origin();
    let mut reg = registrar();
    register_with(
        &mut reg,
        t0,
        "bob",
        "pw",
        1,
        "Contact: <sip:bob@10.0.0.1>, <sip:bob@10.0.0.2>\r\n",
    );
    assert_eq!(reg.bindings("bob", t0).count(), 2);
    let bad = register_with(&mut reg, t0, "bob", "pw", 10, "Contact: *\r\n");
    assert_eq!(bad.code(), 400);
    let ok = register_with(
        &mut reg,
        t0,
        "bob",
        "pw",
        20,
        "Contact: *\r\nExpires: 0\r\n",
    );
    assert_eq!(ok.code(), 200);
    assert_eq!(reg.bindings("bob", t0).count(), 0);
    let removed = events(&mut reg)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                RegistrarEvent::Removed {
                    reason: RemovedReason::Unregister,
                    ..
                }
            )
        })
        .count();
    assert_eq!(removed, 2);
}

#[test]
fn too_brief_too_long_too_many_and_out_of_order() {
    let t0 = test_origin();
    let mut reg = registrar();
    let r = register_with(
        &mut reg,
        t0,
        "alice",
        "secret",
        1,
        "Contact: <sip:a@1.1.1.1>;expires=30\r\n",
    );
    assert_eq!(r.code(), 423);
    assert_eq!(r.header(&Name::MIN_EXPIRES), Some("60"));
    assert_eq!(reg.all_bindings(t0).count(), 0);
    // Longer than max_expires is shortened.
    let r = register_with(
        &mut reg,
        t0,
        "alice",
        "secret",
        10,
        "Contact: <sip:a@1.1.1.1>;expires=99999\r\n",
    );
    assert_eq!(r.code(), 200);
    assert_eq!(
        reg.bindings("alice", t0).next().unwrap().expires_in(t0),
        7200
    );
    // alice has max_contacts = 2.
    let r = register_with(
        &mut reg,
        t0,
        "alice",
        "secret",
        20,
        "Contact: <sip:a@2.2.2.2>, <sip:a@3.3.3.3>\r\n",
    );
    assert_eq!(r.code(), 403);
    assert_eq!(reg.bindings("alice", t0).count(), 1);
    // Same Call-ID, lower CSeq than stored: 500.
    let r = register_with(
        &mut reg,
        t0,
        "alice",
        "secret",
        2,
        "Contact: <sip:a@1.1.1.1>\r\n",
    );
    assert_eq!(r.code(), 500);
    // To naming another user than the credentials: 403.
    let r = reg.handle_register(t0, &register("bob", 40, ""), src(), Transport::Udp);
    let c = challenges(&r).remove(0);
    let v = authorization(
        &c,
        &Credentials {
            username: "alice".into(),
            password: "secret".into(),
        },
        RequestDigest {
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            cnonce: "c",
            nc: 1,
        },
    );
    let r = reg.handle_register(
        t0,
        &with_auth(register("bob", 41, ""), &v),
        src(),
        Transport::Udp,
    );
    assert_eq!(r.code(), 403);
}

#[test]
fn query_without_contact_lists_bindings() {
    let t0 = test_origin();
    let mut reg = registrar();
    register_with(
        &mut reg,
        t0,
        "bob",
        "pw",
        1,
        "Contact: <sip:bob@10.0.0.1>\r\n",
    );
    let r = register_with(&mut reg, t0 + Duration::from_secs(5), "bob", "pw", 10, "");
    assert_eq!(r.code(), 200);
    let listed: Vec<_> = r
        .headers
        .get_raw(&Name::CONTACT)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(listed, vec!["<sip:bob@10.0.0.1>;expires=3595"]);
}

#[test]
fn invite_is_authenticated_by_proxy_authorization_with_407() {
    let t0 = test_origin();
    let mut reg = registrar();
    let invite = |cseq: u32, auth: Option<&str>| {
        let text = format!(
            "INVITE sip:+15551230000@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKinv{cseq};rport\r\n\
From: <sip:bob@127.0.0.1>;tag=f2\r\n\
To: <sip:+15551230000@127.0.0.1>\r\n\
Call-ID: out-1\r\n\
CSeq: {cseq} INVITE\r\n\
Max-Forwards: 70\r\n\
{}Content-Length: 0\r\n\r\n",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n"))
                .unwrap_or_default()
        );
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    let r = reg
        .authenticate_request(t0, &invite(1, None), src())
        .unwrap_err();
    assert_eq!(r.code(), 407);
    let c: Vec<_> = r
        .headers
        .get_raw(&Name::PROXY_AUTHENTICATE)
        .map(|v| Challenge::parse(v.as_str()).unwrap())
        .collect();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].algorithm, Algorithm::Sha256);
    let answer = |password: &str, nc| {
        authorization(
            &c[0],
            &Credentials {
                username: "bob".into(),
                password: password.into(),
            },
            RequestDigest {
                method: "INVITE",
                uri: "sip:+15551230000@127.0.0.1",
                cnonce: "c",
                nc,
            },
        )
    };
    let ok = reg.authenticate_request(t0, &invite(2, Some(&answer("pw", 1))), src());
    assert_eq!(ok.ok().as_deref(), Some("bob"));
    // Replayed: refused with a fresh stale challenge.
    let r = reg
        .authenticate_request(t0, &invite(3, Some(&answer("pw", 1))), src())
        .unwrap_err();
    assert_eq!(r.code(), 407);
    // Wrong password: 407 again, counted.
    let r = reg
        .authenticate_request(t0, &invite(4, Some(&answer("bad", 2))), src())
        .unwrap_err();
    assert_eq!(r.code(), 407);
    assert_eq!(reg.stats().auth_failures, 2);
    // A REGISTER's Authorization does not authenticate an INVITE: the header is the proxy one.
    let mut wrong_header = invite(5, None);
    wrong_header
        .headers
        .insert(Name::AUTHORIZATION, answer("pw", 3));
    assert_eq!(
        reg.authenticate_request(t0, &wrong_header, src())
            .unwrap_err()
            .code(),
        407
    );
}

#[test]
fn keepalive_pings_and_removes_after_three_misses() {
    let t0 = test_origin();
    let mut reg = registrar();
    register_with(
        &mut reg,
        t0,
        "bob",
        "pw",
        1,
        "Contact: <sip:bob@10.0.0.1>\r\n",
    );
    events(&mut reg);
    let k = reg.settings().keepalive.unwrap();
    assert_eq!(reg.poll_timeout(), Some(t0 + k));
    let mut now = t0;
    let mut pings = 0;
    // One answered ping resets the count; then three misses remove it.
    for answered in [false, true, false, false, false] {
        now = reg.poll_timeout().unwrap();
        reg.handle_timeout(now);
        let ev = events(&mut reg);
        let [
            RegistrarEvent::Ping {
                user,
                contact,
                target,
                ..
            },
        ] = ev.as_slice()
        else {
            panic!("{ev:?}")
        };
        assert_eq!(*target, src());
        pings += 1;
        reg.handle_ping_result(now, user, contact, answered);
    }
    assert_eq!(pings, 5);
    let ev = events(&mut reg);
    assert!(
        matches!(
            ev.as_slice(),
            [RegistrarEvent::Removed {
                reason: RemovedReason::Keepalive,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(reg.all_bindings(now).count(), 0);
}

#[test]
fn restore_keeps_live_and_reports_expired_rows() {
    let t0 = test_origin();
    let mut reg = registrar();
    let live = Binding {
        user: "bob".into(),
        contact: "sip:bob@10.0.0.1".into(),
        target: src(),
        transport: Transport::Udp,
        expires_at: t0 + Duration::from_secs(100),
        call_id: "c".into(),
        cseq: 5,
        user_agent: None,
        missed_pings: 0,
        next_ping: None,
    };
    let dead = Binding {
        contact: "sip:bob@10.0.0.2".into(),
        expires_at: t0,
        ..live.clone()
    };
    let gone_user = Binding {
        user: "carol".into(),
        ..live.clone()
    };
    reg.restore(t0, live);
    reg.restore(t0, dead);
    reg.restore(t0, gone_user);
    assert_eq!(reg.bindings("bob", t0).count(), 1);
    let removed = events(&mut reg)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                RegistrarEvent::Removed {
                    reason: RemovedReason::Expired,
                    ..
                }
            )
        })
        .count();
    assert_eq!(removed, 2);
    // Old nonces from before the restart: right digest -> stale, not a failure.
    let r = reg.handle_register(
        t0,
        &with_auth(
            register("bob", 9, ""),
            r#"Digest username="bob", realm="trunkline", nonce="1.00", uri="sip:127.0.0.1", response="00", qop=auth, nc=00000001, cnonce="x""#,
        ),
        src(),
        Transport::Udp,
    );
    assert_eq!(r.code(), 401);
}

proptest::proptest! {
    #[test]
    fn arbitrary_authorization_and_contact_never_panic(auth in "\\PC{0,120}", contact in "\\PC{0,80}") {
        let mut reg = registrar();
        let now = test_origin();
        let mut req = register("alice", 1, "");
        req.headers.insert(Name::AUTHORIZATION, format!("Digest {auth}"));
        req.headers.insert(Name::CONTACT, contact);
        let _ = reg.handle_register(now, &req, src(), Transport::Udp);
    }
}
