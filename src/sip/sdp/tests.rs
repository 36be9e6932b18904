use super::*;
use proptest::prelude::*;

/// The SDP of SIPp's built-in `uac` scenario (as sent on loopback).
const SIPP_OFFER: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// A softphone-style offer: several codecs, PCMA before PCMU, telephone-event on 101.
const PHONE_OFFER: &str = "v=0\r\n\
o=- 1911 1911 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10002 RTP/AVP 9 8 0 101\r\n\
b=AS:64\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

fn local() -> LocalMedia {
    LocalMedia::new("127.0.0.1".parse().expect("ip"), 20000, 4242)
}

fn sdp(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).expect("parse sdp")
}

#[test]
fn parses_and_prints_back() {
    for text in [SIPP_OFFER, PHONE_OFFER] {
        let parsed = sdp(text);
        let printed = parsed.to_bytes();
        assert_eq!(
            SessionDescription::parse(&printed).expect("reparse"),
            parsed
        );
    }
    let phone = sdp(PHONE_OFFER);
    assert_eq!(phone.origin.session_version, 1911);
    let m = &phone.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![9, 8, 0, 101]);
    assert_eq!(m.telephone_event_pt(), Some(101));
    assert_eq!(m.ptime, Some(20));
    assert_eq!(m.direction, Some(Direction::SendRecv));
    assert_eq!(m.attributes, vec!["rtcp-mux".to_owned()]);
}

#[test]
fn answer_picks_first_supported_codec_of_the_offer() {
    let a = answer(&sdp(PHONE_OFFER), &local()).expect("answer");
    assert_eq!(a.media.codec, Codec::Pcma);
    assert_eq!(a.media.payload_type, 8);
    assert_eq!(a.media.telephone_event, Some(101));
    assert_eq!(
        a.media.remote_rtp,
        Some("127.0.0.1:10002".parse().expect("addr"))
    );
    assert_eq!(a.media.direction, Direction::SendRecv);
    let text = a.sdp.to_string();
    assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:101 telephone-event/8000\r\n"),
        "{text}"
    );
    assert!(text.contains("a=fmtp:101 0-16\r\n"), "{text}");
    assert!(text.contains("c=IN IP4 127.0.0.1\r\n"), "{text}");
    // SIPp offers PCMU only and no DTMF.
    let a = answer(&sdp(SIPP_OFFER), &local()).expect("answer");
    assert_eq!(
        (a.media.codec, a.media.telephone_event),
        (Codec::Pcmu, None)
    );
    assert!(a.sdp.to_string().contains("m=audio 20000 RTP/AVP 0\r\n"));
}

#[test]
fn answer_echoes_a_dynamic_telephone_event_pt() {
    let offer = PHONE_OFFER.replace("101", "96");
    let a = answer(&sdp(&offer), &local()).expect("answer");
    assert_eq!(a.media.telephone_event, Some(96));
    assert!(a.sdp.to_string().contains("m=audio 20000 RTP/AVP 8 96\r\n"));
}

#[test]
fn no_common_codec_and_no_audio() {
    let g729 = SIPP_OFFER
        .replace("RTP/AVP 0", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    assert_eq!(answer(&sdp(&g729), &local()), Err(SdpError::NoCommonCodec));
    let video = SIPP_OFFER.replace("m=audio", "m=video");
    assert_eq!(answer(&sdp(&video), &local()), Err(SdpError::NoAudio));
    // A PT 0 remapped by rtpmap to something else is not PCMU.
    let remapped = SIPP_OFFER.replace("PCMU/8000", "opus/48000/2");
    assert_eq!(
        answer(&sdp(&remapped), &local()),
        Err(SdpError::NoCommonCodec)
    );
}

#[test]
fn other_streams_are_rejected_with_port_zero() {
    let offer = format!("{PHONE_OFFER}m=video 10004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    let a = answer(&sdp(&offer), &local()).expect("answer");
    assert_eq!(a.sdp.media.len(), 2);
    assert_eq!(a.sdp.media[1].port, 0);
    assert_eq!(a.sdp.media[1].media, "video");
}

#[test]
fn direction_handling() {
    let with = |attr: &str| PHONE_OFFER.replace("a=sendrecv", attr);
    let cases = [
        ("a=sendonly", Direction::RecvOnly),
        ("a=recvonly", Direction::SendOnly),
        ("a=inactive", Direction::Inactive),
        ("a=sendrecv", Direction::SendRecv),
    ];
    for (attr, expected) in cases {
        let a = answer(&sdp(&with(attr)), &local()).expect("answer");
        assert_eq!(a.media.direction, expected, "{attr}");
        assert!(a.sdp.to_string().contains(&format!("a={expected}\r\n")));
    }
    // Session-level direction applies when the media has none.
    let session_level = PHONE_OFFER
        .replace("a=sendrecv\r\n", "")
        .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let a = answer(&sdp(&session_level), &local()).expect("answer");
    assert_eq!(a.media.direction, Direction::RecvOnly);
    // c=0.0.0.0: RFC 2543 hold.
    let held = PHONE_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let a = answer(&sdp(&held), &local()).expect("answer");
    assert!(a.media.remote_hold);
    assert_eq!(a.media.remote_rtp, None);
    assert_eq!(a.media.direction, Direction::RecvOnly);
    // We ask for sendonly ourselves (we hold): the answer is limited by our wish.
    let mut holding = local();
    holding.direction = Direction::SendOnly;
    let a = answer(&sdp(PHONE_OFFER), &holding).expect("answer");
    assert_eq!(a.media.direction, Direction::SendOnly);
}

#[test]
fn offer_and_process_answer() {
    let ours = offer(&local());
    let text = ours.to_string();
    assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{text}");
    assert!(text.contains("a=ptime:20\r\n"), "{text}");
    assert!(text.contains("a=sendrecv\r\n"), "{text}");
    // The far end answers with what our own answer() would say.
    let mut far = LocalMedia::new("127.0.0.2".parse().expect("ip"), 30000, 1);
    far.codecs = vec![Codec::Pcma];
    let their = answer(&ours, &far).expect("answer");
    let got = process_answer(&ours, &their.sdp).expect("process");
    assert_eq!(got.codec, Codec::Pcma);
    assert_eq!(got.payload_type, 8);
    assert_eq!(got.telephone_event, Some(101));
    assert_eq!(
        got.remote_rtp,
        Some("127.0.0.2:30000".parse().expect("addr"))
    );
    assert_eq!(got.direction, Direction::SendRecv);
    // Rejected stream and unknown codec.
    let mut rejected_answer = their.sdp.clone();
    rejected_answer.media[0].port = 0;
    assert_eq!(
        process_answer(&ours, &rejected_answer),
        Err(SdpError::Rejected)
    );
    let mut odd = their.sdp.clone();
    odd.media[0].formats = vec!["18".to_owned()];
    odd.media[0].rtpmaps.clear();
    assert_eq!(process_answer(&ours, &odd), Err(SdpError::NoCommonCodec));
}

#[test]
fn hold_resume_reoffers_bump_the_version() {
    let mut session = SdpSession::new(local());
    let first = session.make_offer();
    let again = session.make_offer();
    assert_eq!(first.origin.session_version, again.origin.session_version);
    session.local.direction = Direction::SendOnly;
    let hold = session.make_offer();
    assert_eq!(
        hold.origin.session_version,
        first.origin.session_version + 1
    );
    assert_eq!(hold.media[0].direction, Some(Direction::SendOnly));
    session.local.direction = Direction::SendRecv;
    let resume = session.make_offer();
    assert_eq!(
        resume.origin.session_version,
        first.origin.session_version + 2
    );
    assert_eq!(resume.origin.session_id, first.origin.session_id);
    // The far end answers our hold with recvonly: we may only send.
    let far = LocalMedia::new("127.0.0.2".parse().expect("ip"), 30000, 1);
    let their = answer(&hold, &far).expect("answer");
    assert_eq!(their.media.direction, Direction::RecvOnly);
    let ours = process_answer(&hold, &their.sdp).expect("process");
    assert_eq!(ours.direction, Direction::SendOnly);
}

#[test]
fn answers_to_reoffers_keep_or_bump_the_version() {
    let mut session = SdpSession::new(local());
    let a1 = session.make_answer(&sdp(PHONE_OFFER)).expect("answer");
    let a2 = session.make_answer(&sdp(PHONE_OFFER)).expect("answer");
    assert_eq!(a1.sdp.origin.session_version, a2.sdp.origin.session_version);
    let held = sdp(&PHONE_OFFER.replace("a=sendrecv", "a=sendonly"));
    let a3 = session.make_answer(&held).expect("answer");
    assert_eq!(
        a3.sdp.origin.session_version,
        a1.sdp.origin.session_version + 1
    );
}

#[test]
fn malformed_sdp() {
    assert_eq!(
        SessionDescription::parse(b"o=- 1 1 IN IP4 1.2.3.4\r\n"),
        Err(SdpError::MissingLine('v'))
    );
    assert_eq!(
        SessionDescription::parse(b"v=1\r\n"),
        Err(SdpError::Version)
    );
    assert_eq!(
        SessionDescription::parse(b"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n"),
        Err(SdpError::Malformed { line: 2 })
    );
    assert_eq!(
        SessionDescription::parse(b"v=0\r\ns=-\r\n"),
        Err(SdpError::MissingLine('o'))
    );
    assert_eq!(
        SessionDescription::parse(&[0xff, 0xfe]),
        Err(SdpError::NotUtf8)
    );
    let bad_c = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 host.example.com");
    assert_eq!(
        SessionDescription::parse(bad_c.as_bytes()),
        Err(SdpError::Malformed { line: 4 })
    );
}

proptest! {
    #[test]
    fn random_sdp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(parsed) = SessionDescription::parse(&bytes) {
            let _ = answer(&parsed, &local());
        }
    }

    #[test]
    fn mutated_sdp_never_panics(cut in 0usize..400, pos in 0usize..400, byte in proptest::sample::select(b"=: /\r\n0123456789aIm".to_vec())) {
        let mut bytes = PHONE_OFFER.as_bytes().to_vec();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        bytes.truncate(cut.max(1));
        if let Ok(parsed) = SessionDescription::parse(&bytes) {
            let again = SessionDescription::parse(&parsed.to_bytes());
            prop_assert_eq!(again.as_ref().ok(), Some(&parsed));
            let _ = answer(&parsed, &local());
            let _ = process_answer(&offer(&local()), &parsed);
        }
    }
}
