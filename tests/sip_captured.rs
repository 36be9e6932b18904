//! The SIP message layer against real traffic and torture messages.
//!
//! `tests/fixtures/sip/captured/` holds datagrams recorded over loopback from SIPp (built-in
//! `uac`, `uac_pcap`, `uas`, and a scenario written with compact header forms) and baresip
//! (its INVITE, and its 180/200/200-to-BYE when we call it); `capture.sh` next to them
//! records them again. `tests/fixtures/sip/torture/` holds RFC 4475-style messages written
//! for this suite: `valid-*` must parse, `answer-*` must be refused with an answer, `drop-*`
//! must be refused without one.

use std::fs;
use std::path::{Path, PathBuf};

use trunkline::sip::message::{
    Defect, Framing, HeaderKind, ParseError, SipMessage, frame_stream, parse, parse_with,
    response_to, write_message,
};
use trunkline::sip::sdp::{Codec, LocalMedia, SessionDescription, answer};

fn fixtures(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "sip",
        folder,
    ]
    .iter()
    .collect();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .map(|p| (file_name(&p), fs::read(&p).expect("read fixture")))
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 file name")
        .to_owned()
}

fn fixture(folder: &str, name: &str) -> SipMessage {
    let (_, bytes) = fixtures(folder)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("fixture {name} missing"));
    parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn printed(msg: &SipMessage) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(msg, &mut out);
    out
}

/// Every parsed message prints to something that parses to the same print, and a request
/// can be answered.
fn check_round_trip(name: &str, msg: &SipMessage) {
    let once = printed(msg);
    let again = parse(&once).unwrap_or_else(|e| panic!("{name}: reprint does not parse: {e}"));
    assert_eq!(printed(&again), once, "{name}: print is not stable");
    if let SipMessage::Request(req) = msg {
        let res = response_to(req, 200, None, Some("t1"));
        assert_eq!(res.call_id(), req.call_id(), "{name}");
        assert_eq!(res.branch(), req.branch(), "{name}");
        assert!(
            parse(&res.to_bytes()).is_ok(),
            "{name}: response does not parse"
        );
    }
}

#[test]
fn every_captured_message_parses_and_reprints() {
    let captured = fixtures("captured");
    assert!(captured.len() >= 10, "run tests/fixtures/sip/capture.sh");
    for (name, bytes) in &captured {
        let msg = parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_round_trip(name, &msg);
        // Every SDP body from a real peer parses, and offers get an answer.
        let (content_type, body, is_invite) = match &msg {
            SipMessage::Request(r) => (
                r.content_type(),
                r.body(),
                r.method().to_string() == "INVITE",
            ),
            SipMessage::Response(r) => (r.content_type(), r.body(), false),
        };
        if content_type == Some("application/sdp") {
            let sdp = SessionDescription::parse(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            if is_invite {
                let local = LocalMedia::new("127.0.0.1".parse().expect("ip"), 20000, 1);
                let a = answer(&sdp, &local).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(matches!(a.media.codec, Codec::Pcmu | Codec::Pcma), "{name}");
            }
        }
    }
}

#[test]
fn sipp_compact_forms_and_multi_value_via() {
    let SipMessage::Request(invite) = fixture("captured", "sipp-compact-1.sip") else {
        panic!("request expected");
    };
    // `v: a, b` on one line: two Vias, the top one SIPp's own.
    let vias = invite.vias();
    assert_eq!(vias.len(), 2);
    let top = invite.top_via().expect("top via");
    assert!(
        top.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK-"))
    );
    assert_eq!(top.rport, Some(None));
    assert!(invite.from_tag().is_some_and(|t| t.contains("SIPpTag")));
    assert!(invite.call_id().is_some_and(|c| c.contains("@127.0.0.1")));
    assert_eq!(invite.cseq().map(|c| c.cseq), Some(1)); // "CSeq:<TAB>1<TAB>INVITE"
    assert!(invite.contact_uri().is_some());
    assert_eq!(invite.content_type(), Some("application/sdp"));
    assert_eq!(invite.header(&trunkline_name("k")), Some("timer, replaces"));
    let sdp = SessionDescription::parse(invite.body()).expect("sdp");
    let local = LocalMedia::new("127.0.0.1".parse().expect("ip"), 20000, 1);
    // The offer lists PCMA first: the answer follows the offerer's order.
    assert_eq!(
        answer(&sdp, &local).expect("answer").media.codec,
        Codec::Pcma
    );

    let SipMessage::Request(options) = fixture("captured", "sipp-compact-2.sip") else {
        panic!("request expected");
    };
    // Two Via lines, the second holding two values: three in order.
    let vias = options.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2].transport.to_string(), "TCP");
    assert_eq!(options.body(), b"");
}

fn trunkline_name(name: &str) -> ezk_sip_types::Name {
    ezk_sip_types::Name::from(name)
}

#[test]
fn sipp_and_baresip_dialogs() {
    let SipMessage::Request(invite) = fixture("captured", "sipp-uac-1.sip") else {
        panic!("request expected");
    };
    assert_eq!(invite.request_uri_user(), Some("service"));
    assert!(invite.top_via().is_some_and(|v| v.is_rfc3261_branch()));

    let SipMessage::Request(baresip) = fixture("captured", "baresip-uac-1.sip") else {
        panic!("request expected");
    };
    assert_eq!(baresip.request_uri_user(), Some("listener"));
    let sdp = SessionDescription::parse(baresip.body()).expect("sdp");
    assert_eq!(sdp.media[0].telephone_event_pt(), Some(101));

    for (name, code) in [
        ("sipp-uas-1.sip", 180),
        ("sipp-uas-2.sip", 200),
        ("baresip-uas-1.sip", 180),
        ("baresip-uas-2.sip", 200),
    ] {
        let SipMessage::Response(res) = fixture("captured", name) else {
            panic!("{name}: response expected");
        };
        assert_eq!(res.code(), code, "{name}");
        assert!(res.to_tag().is_some(), "{name}");
        assert!(res.contact_uri().is_some(), "{name}");
        assert_eq!(
            res.cseq().map(|c| c.method.to_string()).as_deref(),
            Some("INVITE")
        );
    }
    // baresip filled in rport/received on our Via (RFC 3581).
    let SipMessage::Response(ok) = fixture("captured", "baresip-uas-2.sip") else {
        panic!("response expected");
    };
    let via = ok.top_via().expect("via");
    assert_eq!(via.received, Some("127.0.0.1".parse().expect("ip")));
    assert!(matches!(via.rport, Some(Some(_))));
    assert!(via.response_address().is_some());
}

#[test]
fn captured_messages_frame_on_a_stream() {
    // Concatenate every captured message as a TCP peer would send them, with keep-alives
    // between, and frame them back one by one.
    let captured: Vec<_> = fixtures("captured")
        .into_iter()
        .map(|(_, bytes)| {
            // Reprint so each has an exact Content-Length, as stream transports require.
            printed(&parse(&bytes).expect("parse"))
        })
        .collect();
    let mut stream = Vec::new();
    for bytes in &captured {
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(bytes);
    }
    let mut offset = 0;
    let mut messages = 0;
    while offset < stream.len() {
        let n = frame_stream(&stream[offset..])
            .expect("frame")
            .expect("complete");
        let frame = &stream[offset..offset + n];
        if !trunkline::sip::message::is_keepalive(frame) {
            assert_eq!(frame, &captured[messages][..]);
            parse_with(frame, Framing::Stream).expect("stream parse");
            messages += 1;
        }
        offset += n;
    }
    assert_eq!(messages, captured.len());
}

#[test]
fn torture_valid_messages_parse() {
    for (name, bytes) in fixtures("torture") {
        if !name.starts_with("valid-") {
            continue;
        }
        let msg = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_round_trip(&name, &msg);
    }
}

#[test]
fn torture_valid_details() {
    let SipMessage::Request(ws) = fixture("torture", "valid-whitespace-folding.sip") else {
        panic!("request expected");
    };
    assert_eq!(ws.to_tag().as_deref(), Some("77aa01"));
    assert_eq!(ws.from_tag().as_deref(), Some("q-19"));
    assert_eq!(ws.cseq().map(|c| c.cseq), Some(31));
    assert_eq!(ws.call_id(), Some("folded.whitespace.7@198.51.100.4"));
    let vias = ws.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        ws.branch().as_deref(),
        Some("z9hG4bK-fold-1"),
        "the first Via line is the top one"
    );
    assert!(ws.contact_uri().is_some());
    assert!(SessionDescription::parse(ws.body()).is_ok());

    let SipMessage::Request(compact) = fixture("torture", "valid-all-compact-forms.sip") else {
        panic!("request expected");
    };
    assert_eq!(compact.call_id(), Some("compact-all@192.0.2.1"));
    assert_eq!(compact.content_type(), Some("text/plain"));
    assert_eq!(compact.body(), b"hello");
    for long in [
        "Event",
        "Allow-Events",
        "Supported",
        "Subject",
        "Session-Expires",
        "Refer-To",
        "Content-Encoding",
    ] {
        assert!(compact.header(&trunkline_name(long)).is_some(), "{long}");
    }

    let SipMessage::Request(multi) = fixture("torture", "valid-multi-via-one-line.sip") else {
        panic!("request expected");
    };
    let vias = multi.vias();
    assert_eq!(vias.len(), 4);
    let top = multi.top_via().expect("via");
    assert_eq!(top.sent_by.port, Some(5070));
    assert_eq!(top.branch.as_deref(), Some("z9hG4bK-v6"));

    let SipMessage::Response(rr) = fixture("torture", "valid-183-record-route.sip") else {
        panic!("response expected");
    };
    assert_eq!(rr.record_route().len(), 3);

    let SipMessage::Request(extra) = fixture("torture", "valid-extra-datagram-bytes.sip") else {
        panic!("request expected");
    };
    assert_eq!(extra.body(), b"hello");

    let SipMessage::Request(escaped) = fixture("torture", "valid-escaped-uri-and-params.sip")
    else {
        panic!("request expected");
    };
    assert_eq!(escaped.request_uri_user(), Some("alice;ext=1"));
    assert_eq!(escaped.from_tag().as_deref(), Some("e1"));

    let SipMessage::Request(unknown) = fixture("torture", "valid-unknown-method.sip") else {
        panic!("request expected");
    };
    assert_eq!(unknown.method().to_string(), "NEWMETHOD");
}

#[test]
fn torture_refusals_say_why_and_whether_to_answer() {
    let expected: &[(&str, Defect, Option<u16>)] = &[
        ("answer-bad-request-uri.sip", Defect::RequestUri, Some(400)),
        (
            "answer-content-length-too-large.sip",
            Defect::BodyTruncated {
                declared: 9999,
                received: 5,
            },
            Some(400),
        ),
        (
            "answer-cseq-method-mismatch.sip",
            Defect::CSeqMethodMismatch,
            Some(400),
        ),
        (
            "answer-header-without-colon.sip",
            Defect::HeaderLine,
            Some(400),
        ),
        (
            "answer-lowercase-method.sip",
            Defect::UnsupportedMethod,
            Some(501),
        ),
        (
            "answer-max-forwards-word.sip",
            Defect::Malformed(HeaderKind::MaxForwards),
            Some(400),
        ),
        (
            "answer-missing-max-forwards.sip",
            Defect::Missing(HeaderKind::MaxForwards),
            Some(400),
        ),
        (
            "answer-negative-content-length.sip",
            Defect::Malformed(HeaderKind::ContentLength),
            Some(400),
        ),
        ("answer-tel-uri.sip", Defect::UriScheme, Some(416)),
        ("answer-version-7.sip", Defect::Version, Some(505)),
        ("drop-binary-junk.sip", Defect::Incomplete, None),
        (
            "drop-cseq-not-a-number.sip",
            Defect::Malformed(HeaderKind::CSeq),
            None,
        ),
        (
            "drop-garbage-via.sip",
            Defect::Malformed(HeaderKind::Via),
            None,
        ),
        (
            "drop-missing-call-id.sip",
            Defect::Missing(HeaderKind::CallId),
            None,
        ),
        ("drop-response-bad-code.sip", Defect::StatusCode, None),
        (
            "drop-response-missing-via.sip",
            Defect::Missing(HeaderKind::Via),
            None,
        ),
        ("drop-truncated-head.sip", Defect::Incomplete, None),
    ];
    let files = fixtures("torture");
    let refused: Vec<_> = files
        .iter()
        .filter(|(n, _)| !n.starts_with("valid-"))
        .collect();
    assert_eq!(
        refused.len(),
        expected.len(),
        "every refusal fixture has an expectation"
    );
    for (name, defect, code) in expected {
        let (_, bytes) = files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let err: ParseError = match parse(bytes) {
            Err(e) => e,
            Ok(m) => panic!("{name}: parsed {m:?}"),
        };
        assert_eq!(err.defect(), *defect, "{name}");
        let response = err.response();
        assert_eq!(response.as_ref().map(|r| r.code()), *code, "{name}");
        if let Some(response) = response {
            // The answer carries the request's identifiers and a Warning saying why.
            let printed = String::from_utf8(response.to_bytes().to_vec()).expect("utf-8");
            assert!(
                printed.contains("Warning: 399 trunkline \""),
                "{name}: {printed}"
            );
            assert!(
                parse(printed.as_bytes()).is_ok(),
                "{name}: answer does not parse"
            );
        }
    }
}

#[test]
fn tcp_streams_from_sipp_frame_and_parse() {
    let dir: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "sip",
        "captured",
    ]
    .iter()
    .collect();
    for (name, expected) in [("sipp-uac-tcp.stream", 1), ("sipp-compact-tcp.stream", 2)] {
        let stream = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut offset = 0;
        let mut messages = Vec::new();
        while offset < stream.len() {
            let n = frame_stream(&stream[offset..])
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: incomplete message at {offset}"));
            let frame = &stream[offset..offset + n];
            if !trunkline::sip::message::is_keepalive(frame) {
                messages.push(
                    parse_with(frame, Framing::Stream).unwrap_or_else(|e| panic!("{name}: {e}")),
                );
            }
            offset += n;
        }
        assert_eq!(messages.len(), expected, "{name}");
        for msg in &messages {
            let SipMessage::Request(req) = msg else {
                panic!("{name}: requests expected");
            };
            assert_eq!(
                req.top_via().map(|v| v.transport).as_deref(),
                Some("TCP"),
                "{name}"
            );
        }
    }
}
