//! RTP hot-path benchmarks at real size (STYLE.md sec. 10): RTP parse and write, G.711 on 160
//! samples, jitter buffer insert + pop, and the whole per-packet path of one leg
//! (receive -> jitter buffer -> frame -> encode -> write).
//!
//! Run: `cargo bench --bench rtp`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use trunkline::media::frame::{FRAME_DURATION, FRAME_SAMPLES, SILENCE};
use trunkline::media::g711::Law;
use trunkline::rtp::jitter::{JitterBuffer, JitterConfig};
use trunkline::rtp::packet::{self, HEADER_LEN, RtpHeader};
use trunkline::rtp::session::{RtpSession, SessionConfig};

fn tone() -> [i16; FRAME_SAMPLES] {
    let mut f = SILENCE;
    for (i, s) in f.iter_mut().enumerate() {
        *s = ((i as i32 * 2000) % 16_000 - 8000) as i16;
    }
    f
}

fn header(seq: u16, ts: u32) -> RtpHeader {
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x1234_5678,
    }
}

fn bench_packet(c: &mut Criterion) {
    let payload = [0x55u8; FRAME_SAMPLES];
    let mut buf = [0u8; 1500];
    let n = packet::write(&header(1, 160), &payload, &mut buf).expect("fits");
    let datagram = buf[..n].to_vec();
    c.bench_function("rtp_parse", |b| {
        b.iter(|| packet::parse(black_box(&datagram)).map(|p| p.payload.len()))
    });
    c.bench_function("rtp_write_into_buffer", |b| {
        b.iter(|| packet::write(black_box(&header(1, 160)), black_box(&payload), &mut buf))
    });
    c.bench_function("rtp_write_allocating_vec", |b| {
        b.iter(|| {
            rtp_rs::RtpPacketBuilder::new()
                .payload_type(0)
                .sequence(rtp_rs::Seq::from(1))
                .timestamp(160)
                .ssrc(0x1234_5678)
                .payload(black_box(&payload))
                .build()
        })
    });
}

fn bench_g711(c: &mut Criterion) {
    let frame = tone();
    let mut bytes = [0u8; FRAME_SAMPLES];
    let mut out = SILENCE;
    Law::Ulaw.encode_into(&frame, &mut bytes);
    c.bench_function("g711_ulaw_encode_160", |b| {
        b.iter(|| Law::Ulaw.encode_into(black_box(&frame), &mut bytes))
    });
    c.bench_function("g711_ulaw_decode_160", |b| {
        b.iter(|| Law::Ulaw.decode_into(black_box(&bytes), &mut out))
    });
    c.bench_function("g711_alaw_encode_160", |b| {
        b.iter(|| Law::Alaw.encode_into(black_box(&frame), &mut bytes))
    });
    c.bench_function("g711_alaw_decode_160", |b| {
        b.iter(|| Law::Alaw.decode_into(black_box(&bytes), &mut out))
    });
}

fn bench_jitter(c: &mut Criterion) {
    let t0 = trunkline::clock::test_origin();
    let payload = [0x55u8; FRAME_SAMPLES];
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut out = SILENCE;
    let mut i: u32 = 0;
    c.bench_function("jitter_insert_pop", |b| {
        b.iter(|| {
            let now = t0 + FRAME_DURATION * (i % 1_000_000);
            jb.insert(
                now,
                i as u16,
                i.wrapping_mul(160),
                black_box(&payload),
                Law::Ulaw,
            );
            let k = jb.pop(now, &mut out);
            i = i.wrapping_add(1);
            k
        })
    });
}

fn bench_session(c: &mut Criterion) {
    let t0 = trunkline::clock::test_origin();
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let mut s = RtpSession::new(
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        SessionConfig::new(Law::Ulaw, Some(101), Some(peer)),
        &mut SmallRng::seed_from_u64(1),
    );
    let mut incoming = [0u8; 1500];
    let mut n_in = 0;
    Law::Ulaw.encode_into(&tone(), &mut incoming[HEADER_LEN..]);
    let mut outgoing = [0u8; 1500];
    let mut frame = SILENCE;
    let mut i: u32 = 0;
    // One iteration = one packet in and one out: what a leg does every 20 ms.
    c.bench_function("per_packet_receive_jitter_frame_encode_write", |b| {
        b.iter(|| {
            let now = t0 + FRAME_DURATION * i;
            // Stamp the far end's next packet (12 bytes) in place.
            if let Ok(h) =
                packet::write_header(&header(i as u16, i.wrapping_mul(160)), &mut incoming)
            {
                n_in = h + FRAME_SAMPLES;
            }
            s.handle_packet(now, peer, black_box(&incoming[..n_in]));
            s.poll_frame(now, &mut frame);
            let n = s.write_frame(now, &frame, &mut outgoing);
            i = i.wrapping_add(1);
            black_box(n)
        })
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_packet(&mut c);
    bench_g711(&mut c);
    bench_jitter(&mut c);
    bench_session(&mut c);
    c.final_summary();
}
