//! Transaction-layer work of one whole UAS call, per call: INVITE in -> 100, 180, 200 out ->
//! ACK in -> BYE in -> 200 out, plus the ending of the three transactions on their timers.
//! Two variants: messages handed over already parsed, and raw bytes parsed by the layer.
//!
//! Run: `cargo bench --bench sip_transaction`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ezk_sip_types::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use trunkline::sip::transaction::{
    Response, SipMessage, TransactionConfig, TransactionEvent, TransactionLayer, Transport,
};

const INVITE: &str = "INVITE sip:echo@10.0.0.2:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-bench-1;rport\r\n\
From: sipp <sip:sipp@10.0.0.1:5061>;tag=1SIPpTag001\r\n\
To: <sip:echo@10.0.0.2:5060>\r\n\
Call-ID: 1-bench@10.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@10.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 127\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 10.0.0.1\r\n\
s=-\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const ACK: &str = "ACK sip:echo@10.0.0.2:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-bench-2;rport\r\n\
From: sipp <sip:sipp@10.0.0.1:5061>;tag=1SIPpTag001\r\n\
To: <sip:echo@10.0.0.2:5060>;tag=uas1\r\n\
Call-ID: 1-bench@10.0.0.1\r\n\
CSeq: 1 ACK\r\n\
Contact: sip:sipp@10.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

const BYE: &str = "BYE sip:echo@10.0.0.2:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-bench-3;rport\r\n\
From: sipp <sip:sipp@10.0.0.1:5061>;tag=1SIPpTag001\r\n\
To: <sip:echo@10.0.0.2:5060>;tag=uas1\r\n\
Call-ID: 1-bench@10.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Contact: sip:sipp@10.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

/// Either pre-parsed messages or raw bytes.
enum Input {
    Parsed(Box<[SipMessage; 3]>),
    Raw([Bytes; 3]),
}

struct Uas {
    layer: TransactionLayer,
    now: Instant,
    peer: SocketAddr,
    sent_bytes: usize,
}

impl Uas {
    fn new() -> Self {
        let local: SocketAddr = "10.0.0.2:5060".parse().expect("addr");
        Uas {
            layer: TransactionLayer::new(TransactionConfig::new(local), 1),
            now: trunkline::clock::test_origin(),
            peer: "10.0.0.1:5061".parse().expect("addr"),
            sent_bytes: 0,
        }
    }

    fn feed(&mut self, input: &Input, i: usize) {
        match input {
            Input::Parsed(msgs) => {
                self.layer
                    .handle_message(self.now, self.peer, Transport::Udp, msgs[i].clone())
            }
            Input::Raw(raw) => self
                .layer
                .handle_datagram(self.now, self.peer, Transport::Udp, &raw[i])
                .expect("bench messages parse"),
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.sent_bytes += t.payload.len();
        }
    }

    /// Answers the request of an IncomingRequest with `codes`.
    fn answer(&mut self, codes: &[StatusCode]) {
        while let Some(event) = self.layer.poll_event() {
            if let TransactionEvent::IncomingRequest { key, request, .. } = event {
                for &code in codes {
                    let response = Response::for_request(code, &request, Some("uas1"));
                    self.layer
                        .send_response(self.now, &key, response)
                        .expect("bench response");
                }
            }
        }
    }

    /// One whole call; the previous call's transactions end on their timers first (the clock
    /// jumps 40 s per call, past Timers J and L).
    fn call(&mut self, input: &Input) {
        self.now += Duration::from_secs(40);
        self.layer.handle_timeout(self.now);
        while self.layer.poll_event().is_some() {}
        self.feed(input, 0);
        self.answer(&[StatusCode::RINGING, StatusCode::OK]);
        self.drain();
        self.feed(input, 1);
        while self.layer.poll_event().is_some() {}
        self.feed(input, 2);
        self.answer(&[StatusCode::OK]);
        self.drain();
    }
}

fn parse(text: &str) -> SipMessage {
    SipMessage::parse(&Bytes::copy_from_slice(text.as_bytes())).expect("bench message")
}

fn bench(c: &mut Criterion) {
    let raw = [INVITE, ACK, BYE].map(|t| Bytes::copy_from_slice(t.as_bytes()));
    let inputs = [
        (
            "uas_call_pre_parsed",
            Input::Parsed(Box::new([INVITE, ACK, BYE].map(parse))),
        ),
        ("uas_call_with_parse", Input::Raw(raw)),
    ];
    let mut group = c.benchmark_group("sip_transaction");
    for (name, input) in &inputs {
        let mut uas = Uas::new();
        group.bench_function(*name, |b| b.iter(|| uas.call(black_box(input))));
        // Every call ended cleanly: nothing leaks across calls.
        assert!(
            uas.layer.len() <= 3,
            "transactions leak: {}",
            uas.layer.len()
        );
        assert!(uas.sent_bytes > 0);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
