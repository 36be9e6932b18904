use super::*;
use proptest::prelude::*;

const INVITE: &str = "INVITE sip:echo@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=abc\r\n\
To: <sip:echo@127.0.0.1:5060>\r\n\
Call-ID: 1-42@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:sipp@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn request(text: &str) -> Request {
    match parse(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn response(text: &str) -> Response {
    match parse(text.as_bytes()) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn printed(msg: &SipMessage) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(msg, &mut out);
    out
}

#[test]
fn invite_accessors() {
    let req = request(INVITE);
    assert_eq!(*req.method(), Method::INVITE);
    assert_eq!(req.request_uri_user(), Some("echo"));
    let via = req.top_via().expect("top via");
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.branch.as_deref(), Some("z9hG4bK-1-0"));
    assert!(via.is_rfc3261_branch());
    assert_eq!(via.rport, Some(None));
    assert_eq!(via.sent_by.port, Some(5061));
    let cseq = req.cseq().expect("cseq");
    assert_eq!((cseq.cseq, cseq.method), (1, Method::INVITE));
    assert_eq!(req.call_id(), Some("1-42@127.0.0.1"));
    assert_eq!(req.from_tag().as_deref(), Some("abc"));
    assert_eq!(req.to_tag(), None);
    assert_eq!(
        req.contact_uri().map(|u| uri_user(&u).map(str::to_owned)),
        Some(Some("sipp".to_owned()))
    );
    assert_eq!(req.record_route().len(), 2);
    assert_eq!(req.content_type(), Some("application/sdp"));
    assert_eq!(req.body(), b"v=0\n");
}

#[test]
fn compact_forms_multi_value_via_and_folding() {
    let text = "OPTIONS sip:user@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/TCP b.example.com:5070;branch=z9hG4bKb\r\n\
v : SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n\
f: \"Caller\" <sip:caller@example.com>;tag=1\r\n\
t:sip:user@example.com\r\n\
i: compact-1\r\n\
Max-Forwards:\r\n  70\r\n\
CSeq: 7\r\n\t OPTIONS\r\n\
m: <sip:caller@a.example.com>\r\n\
k: timer, 100rel\r\n\
s: folded\r\n subject\r\n\
c: text/plain\r\n\
l: 2\r\n\
\r\n\
hi";
    let req = request(text);
    let vias = req.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].sent_by.port, Some(5070));
    assert_eq!(req.branch().as_deref(), Some("z9hG4bKa"));
    assert_eq!(req.call_id(), Some("compact-1"));
    assert_eq!(req.from_tag().as_deref(), Some("1"));
    assert_eq!(req.cseq().map(|c| c.cseq), Some(7));
    assert_eq!(req.header(&Name::SUBJECT), Some("folded subject"));
    assert_eq!(req.header(&Name::SUPPORTED), Some("timer, 100rel"));
    assert_eq!(req.content_type(), Some("text/plain"));
    assert!(req.contact_uri().is_some());
    assert_eq!(req.body(), b"hi");
}

#[test]
fn response_accessors() {
    let res = response(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;received=192.0.2.7;rport=6000\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(res.code(), 180);
    assert_eq!(res.reason(), "Ringing");
    assert_eq!(res.to_tag().as_deref(), Some("2"));
    let via = res.top_via().expect("via");
    assert_eq!(
        via.response_address(),
        Some("192.0.2.7:6000".parse().expect("addr"))
    );
}

#[test]
fn status_line_without_reason() {
    let res = response(
        "SIP/2.0 200\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
Call-ID: x\r\nCSeq: 1 BYE\r\n\r\n",
    );
    assert_eq!(res.code(), 200);
    assert_eq!(res.reason(), "");
}

#[test]
fn print_then_parse_is_identity() {
    let msg = parse(INVITE.as_bytes()).expect("parse");
    let once = printed(&msg);
    let again = parse(&once).expect("reparse");
    assert_eq!(printed(&again), once);
}

#[test]
fn response_to_copies_and_tags() {
    let req = request(INVITE);
    let res = response_to(&req, 200, None, Some("srv1"));
    assert_eq!(res.code(), 200);
    assert_eq!(res.reason(), "OK");
    assert_eq!(res.to_tag().as_deref(), Some("srv1"));
    assert_eq!(res.from_tag().as_deref(), Some("abc"));
    assert_eq!(res.call_id(), Some("1-42@127.0.0.1"));
    assert_eq!(res.branch().as_deref(), Some("z9hG4bK-1-0"));
    // A dialog-creating response carries the Record-Route set; a final error does not.
    assert_eq!(res.record_route().len(), 2);
    assert!(
        response_to(&req, 486, None, Some("srv1"))
            .record_route()
            .is_empty()
    );
    // A To tag that exists is kept, not replaced.
    let mut tagged = req.clone();
    add_to_tag(&mut tagged.headers, "first");
    let res = response_to(&tagged, 486, Some("Busy Here"), Some("second"));
    assert_eq!(res.to_tag().as_deref(), Some("first"));
    let bytes = res.to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    // And the printed response parses back.
    assert!(matches!(
        parse(text.as_bytes()),
        Ok(SipMessage::Response(_))
    ));
}

#[test]
fn stamp_received_rport_and_multi_value_via() {
    let mut req = request(
        "BYE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP last;branch=z9hG4bKz\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n",
    );
    let source: SocketAddr = "203.0.113.5:40000".parse().expect("addr");
    stamp_received(&mut req, source);
    let via = req.top_via().expect("via");
    assert_eq!(via.received, Some(source.ip()));
    assert_eq!(via.rport, Some(Some(40000)));
    assert_eq!(via.response_address(), Some(source));
    let vias = req.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(top_via_of(&vias[1]).branch.as_deref(), Some("z9hG4bK0"));
    assert_eq!(top_via_of(&vias[2]).branch.as_deref(), Some("z9hG4bKz"));
}

#[test]
fn stamp_received_only_when_needed() {
    let text = "BYE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n";
    let mut same = request(text);
    stamp_received(&mut same, "10.0.0.1:5060".parse().expect("addr"));
    assert_eq!(same.top_via().and_then(|v| v.received), None);
    let mut other = request(text);
    stamp_received(&mut other, "10.0.0.9:5060".parse().expect("addr"));
    let via = other.top_via().expect("via");
    assert_eq!(via.received, Some("10.0.0.9".parse().expect("ip")));
    assert_eq!(via.rport, None);
}

fn defect_of(text: &str) -> (Defect, bool) {
    match parse(text.as_bytes()) {
        Err(e) => (e.defect(), e.is_answerable()),
        Ok(m) => panic!("expected an error, parsed {m:?}"),
    }
}

const GOOD_HEADERS: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>\r\nCall-ID: x\r\n";

#[test]
fn missing_max_forwards_is_answered_with_400_and_warning() {
    let text = format!("INVITE sip:a@b SIP/2.0\r\n{GOOD_HEADERS}CSeq: 1 INVITE\r\n\r\n");
    let err = parse(text.as_bytes()).expect_err("must fail");
    assert_eq!(err.defect(), Defect::Missing(HeaderKind::MaxForwards));
    let res = err.response().expect("answerable");
    assert_eq!(res.code(), 400);
    assert_eq!(res.call_id(), Some("x"));
    assert_eq!(
        res.header(&Name::WARNING),
        Some("399 trunkline \"missing Max-Forwards header\"")
    );
}

#[test]
fn defects_and_answerability() {
    let req = |line: &str, extra: &str| format!("{line}\r\n{GOOD_HEADERS}{extra}\r\n");
    let cases: Vec<(String, Defect, bool)> = vec![
        (
            req("INVITE sip:a@b SIP/2.0", "CSeq: 1 BYE\r\nMax-Forwards: 70\r\n"),
            Defect::CSeqMethodMismatch,
            true,
        ),
        (
            req("INVITE sip:a@b SIP/3.0", "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"),
            Defect::Version,
            true,
        ),
        (
            req("INVITE tel:+15551234 SIP/2.0", "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"),
            Defect::UriScheme,
            true,
        ),
        (
            req("invite sip:a@b SIP/2.0", "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"),
            Defect::UnsupportedMethod,
            true,
        ),
        (
            req("INVITE sip:a@b SIP/2.0", "CSeq: 1 INVITE\r\nMax-Forwards: 300\r\n"),
            Defect::Malformed(HeaderKind::MaxForwards),
            true,
        ),
        (
            req(
                "INVITE sip:a@b SIP/2.0",
                "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 10\r\n\r\nshort",
            ),
            Defect::BodyTruncated {
                declared: 10,
                received: 7,
            },
            true,
        ),
        (
            req(
                "INVITE sip:a@b SIP/2.0",
                "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: x\r\n",
            ),
            Defect::Malformed(HeaderKind::ContentLength),
            true,
        ),
        (
            req("INVITE sip:a@b SIP/2.0", "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nno colon here\r\n"),
            Defect::HeaderLine,
            true,
        ),
        (
            req("INVITE sip:a@b SIP/2.0", "CSeq: 2147483648 INVITE\r\nMax-Forwards: 70\r\n"),
            Defect::Malformed(HeaderKind::CSeq),
            false,
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
                .to_owned(),
            Defect::Missing(HeaderKind::Via),
            false,
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
                .to_owned(),
            Defect::Missing(HeaderKind::From),
            false,
        ),
        ("garbage\r\n\r\n".to_owned(), Defect::StartLine, false),
        ("\r\n\r\n".to_owned(), Defect::Empty, false),
        (
            "INVITE sip:a@b SIP/2.0\r\nVia: x".to_owned(),
            Defect::Incomplete,
            false,
        ),
        (
            format!("SIP/2.0 99 Odd\r\n{GOOD_HEADERS}CSeq: 1 INVITE\r\n\r\n"),
            Defect::StatusCode,
            false,
        ),
        (
            format!("SIP/2.0 200 OK\r\n{GOOD_HEADERS}CSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\n"),
            Defect::BodyTruncated {
                declared: 5,
                received: 0,
            },
            false,
        ),
    ];
    for (text, defect, answerable) in cases {
        assert_eq!(defect_of(&text), (defect, answerable), "{text}");
    }
}

#[test]
fn status_codes_of_defects() {
    let text = "INVITE tel:+1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n";
    let res = parse(text.as_bytes())
        .expect_err("416")
        .response()
        .expect("answer");
    assert_eq!(res.code(), 416);
    // An ACK is never answered, even when it is readable.
    let ack = text.replace("INVITE", "ACK");
    let err = parse(ack.as_bytes()).expect_err("416");
    assert!(err.is_answerable());
    assert!(err.response().is_none());
}

#[test]
fn datagram_body_rules() {
    // No Content-Length on UDP: the body is the rest of the datagram.
    let text = format!(
        "MESSAGE sip:a@b SIP/2.0\r\n{GOOD_HEADERS}CSeq: 1 MESSAGE\r\nMax-Forwards: 1\r\n\r\nhello"
    );
    assert_eq!(request(&text).body(), b"hello");
    // Extra bytes beyond Content-Length are discarded.
    let text = format!(
        "MESSAGE sip:a@b SIP/2.0\r\n{GOOD_HEADERS}CSeq: 1 MESSAGE\r\nMax-Forwards: 1\r\nl: 3\r\n\r\nhello"
    );
    assert_eq!(request(&text).body(), b"hel");
    // On a stream the header is mandatory.
    let text = format!(
        "MESSAGE sip:a@b SIP/2.0\r\n{GOOD_HEADERS}CSeq: 1 MESSAGE\r\nMax-Forwards: 1\r\n\r\n"
    );
    let err = parse_with(text.as_bytes(), Framing::Stream).expect_err("stream");
    assert_eq!(err.defect(), Defect::MissingContentLength);
    assert!(err.is_answerable());
}

#[test]
fn leading_crlf_and_bare_lf() {
    let text = format!("\r\n\r\n{}", INVITE.replace("\r\n", "\n"));
    let req = request(&text);
    assert_eq!(req.body(), b"v=0\n");
}

#[test]
fn stream_framing() {
    let one = INVITE.as_bytes();
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend_from_slice(one);
    buf.extend_from_slice(one);
    // The keep-alive is a frame of its own.
    assert_eq!(frame_stream(&buf).expect("frame"), Some(4));
    assert!(is_keepalive(&buf[..4]));
    let rest = &buf[4..];
    assert_eq!(frame_stream(rest).expect("frame"), Some(one.len()));
    assert!(parse_with(&rest[..one.len()], Framing::Stream).is_ok());
    // Every strict prefix of a message needs more bytes.
    for cut in 1..one.len() {
        assert_eq!(
            frame_stream(&one[..cut]).expect("prefix"),
            None,
            "cut {cut}"
        );
    }
    // Compact Content-Length frames too.
    let compact = INVITE.replace("Content-Length: 4", "l:4");
    assert_eq!(
        frame_stream(compact.as_bytes()).expect("frame"),
        Some(compact.len())
    );
    // A head that never ends is cut off.
    let endless = vec![b'a'; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        frame_stream(&endless).expect_err("too large").defect(),
        Defect::TooLarge
    );
    let bad = INVITE.replace("Content-Length: 4", "Content-Length: four");
    assert!(frame_stream(bad.as_bytes()).is_err());
}

fn mutate(base: &[u8], ops: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(pos, kind, value) in ops {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let pos = pos % bytes.len();
        match kind % 4 {
            0 => bytes[pos] = value,
            1 => {
                bytes.remove(pos);
            }
            2 => bytes.insert(pos, value),
            _ => bytes.truncate(pos),
        }
    }
    bytes
}

const INTERESTING: &[u8] = b"\r\n :;,<>\"@=\t\\%[]0123456789SIP/.vftilmcks";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
        let _ = parse_with(&bytes, Framing::Stream);
        let _ = frame_stream(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        ops in proptest::collection::vec(
            (any::<usize>(), any::<u8>(), proptest::sample::select(INTERESTING)), 1..12)
    ) {
        for base in [INVITE.as_bytes(), super::tests::RESPONSE.as_bytes()] {
            let bytes = mutate(base, &ops);
            if let Ok(msg) = parse(&bytes) {
                // Whatever parses prints, and the print parses to the same print.
                let once = printed(&msg);
                let again = parse(&once).map(|m| printed(&m));
                prop_assert_eq!(again.ok(), Some(once));
            } else if let Err(err) = parse(&bytes) {
                let _ = err.response();
            }
            let _ = frame_stream(&bytes);
        }
    }

    #[test]
    fn generated_requests_round_trip(
        user in "[a-z0-9]{1,12}",
        tag in "[a-zA-Z0-9]{1,16}",
        call_id in "[a-zA-Z0-9@.-]{1,32}",
        cseq in 0u32..(1 << 31),
        branch in "z9hG4bK[a-zA-Z0-9]{1,16}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut req = Request::new(Method::INVITE, format!("sip:{user}@example.com").parse().expect("uri"));
        req.headers.insert(Name::VIA, format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"));
        req.headers.insert(Name::FROM, format!("<sip:caller@example.com>;tag={tag}"));
        req.headers.insert(Name::TO, format!("<sip:{user}@example.com>"));
        req.headers.insert(Name::CALL_ID, call_id.clone());
        req.headers.insert(Name::CSEQ, format!("{cseq} INVITE"));
        req.headers.insert(Name::MAX_FORWARDS, "70");
        req.body = Bytes::from(body.clone());
        let bytes = req.to_bytes();
        let parsed = match parse(&bytes) {
            Ok(SipMessage::Request(r)) => r,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(parsed.request_uri_user(), Some(user.as_str()));
        prop_assert_eq!(parsed.from_tag(), Some(tag));
        prop_assert_eq!(parsed.call_id(), Some(call_id.as_str()));
        prop_assert_eq!(parsed.cseq().map(|c| c.cseq), Some(cseq));
        prop_assert_eq!(parsed.branch(), Some(branch));
        prop_assert_eq!(parsed.body(), &body[..]);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }
}

const RESPONSE: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;received=127.0.0.1;rport=5061\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=abc\r\n\
To: <sip:echo@127.0.0.1:5060>;tag=xyz\r\n\
Call-ID: 1-42@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:echo@127.0.0.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

#[test]
fn control_bytes_in_header_values_are_refused_not_echoed() {
    let base = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcb\r\nMax-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: cb1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    // A NUL in a non-essential header: answerable, 400, and the 400 carries no control byte.
    let bad = base.replace("Max-Forwards: 70", "Max-Forwards: 7\u{0}0");
    let e = parse(bad.as_bytes()).expect_err("a control byte is refused");
    let r = e.response().expect("answerable");
    assert_eq!(r.code(), 400);
    assert!(!r.to_bytes().contains(&0), "the 400 must not echo the NUL");
    // A control byte in the Via: nothing can be answered safely; dropped.
    let bad = base.replace("branch=z9hG4bKcb", "branch=z9hG4bKcb\u{1}");
    let e = parse(bad.as_bytes()).expect_err("refused");
    assert!(e.response().is_none());
    // Tabs are fine.
    assert!(
        parse(
            base.replace("Max-Forwards: 70", "Max-Forwards:\t70")
                .as_bytes()
        )
        .is_ok()
    );
}
