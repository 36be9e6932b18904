//! SIP message layer cost per message: parse of a real INVITE with SDP (baresip's) and of a
//! real 200 OK with SDP, stream framing, building and printing a response, SDP answer.
//!
//! `cargo bench --bench sip_parse`

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use trunkline::sip::message::{SipMessage, frame_stream, parse, response_to};
use trunkline::sip::sdp::{LocalMedia, SessionDescription, answer};

const INVITE: &[u8] = include_bytes!("../tests/fixtures/sip/captured/baresip-uac-1.sip");
const OK_200: &[u8] = include_bytes!("../tests/fixtures/sip/captured/baresip-uas-2.sip");
const COMPACT: &[u8] = include_bytes!("../tests/fixtures/sip/captured/sipp-compact-1.sip");

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip");
    group.bench_function("parse_invite_with_sdp", |b| {
        b.iter(|| parse(black_box(INVITE)).expect("parse"))
    });
    group.bench_function("parse_compact_invite", |b| {
        b.iter(|| parse(black_box(COMPACT)).expect("parse"))
    });
    group.bench_function("parse_200_ok_with_sdp", |b| {
        b.iter(|| parse(black_box(OK_200)).expect("parse"))
    });
    group.bench_function("frame_stream_invite", |b| {
        b.iter(|| frame_stream(black_box(INVITE)).expect("frame"))
    });

    let Ok(SipMessage::Request(invite)) = parse(INVITE) else {
        panic!("fixture is an INVITE");
    };
    let ok = response_to(&invite, 200, None, Some("tl-4f2a"));
    let mut out = Vec::with_capacity(1024);
    group.bench_function("print_response", |b| {
        b.iter(|| {
            out.clear();
            black_box(&ok).write_to(&mut out);
            out.len()
        })
    });
    group.bench_function("build_and_print_response", |b| {
        b.iter(|| {
            out.clear();
            response_to(black_box(&invite), 180, None, Some("tl-4f2a")).write_to(&mut out);
            out.len()
        })
    });
    group.bench_function("top_via_and_cseq", |b| {
        b.iter(|| (black_box(&invite).top_via(), invite.cseq()))
    });

    let local = LocalMedia::new("127.0.0.1".parse().expect("ip"), 20000, 1);
    group.bench_function("sdp_parse_and_answer", |b| {
        b.iter(|| {
            let offer = SessionDescription::parse(black_box(invite.body())).expect("sdp");
            answer(&offer, &local).expect("answer").sdp.to_bytes()
        })
    });
    group.finish();
}

criterion_group!(sip_parse, benches);
criterion_main!(sip_parse);
