//! The media hot path allocates nothing in steady state (STYLE.md sec. 4.2).
//!
//! A counting global allocator (`stats_alloc`, so that this crate keeps `unsafe_code = "forbid"`)
//! watches two RTP sessions talk for 60 s of simulated time after a warm-up: receive -> jitter
//! buffer -> frame -> encode -> write, both directions, with loss, DTMF and RTCP reports.
//! One test in this file only: the counter is global, and a second test running in parallel
//! would be counted too.

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use trunkline::media::frame::{FRAME_DURATION, SILENCE};
use trunkline::media::g711::Law;
use trunkline::rtp::session::{MAX_RTCP_LEN, RtpSession, SessionConfig};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn steady_state_media_path_does_not_allocate() {
    let t0 = trunkline::clock::test_origin();
    let a_addr: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let b_addr: SocketAddr = "127.0.0.1:40002".parse().expect("address");
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut a = RtpSession::new(
        t0,
        wall,
        SessionConfig::new(Law::Ulaw, Some(101), Some(b_addr)),
        &mut SmallRng::seed_from_u64(1),
    );
    let mut b = RtpSession::new(
        t0,
        wall,
        SessionConfig::new(Law::Ulaw, Some(101), Some(a_addr)),
        &mut SmallRng::seed_from_u64(2),
    );
    let mut tone = SILENCE;
    for (i, s) in tone.iter_mut().enumerate() {
        *s = ((i as i32 * 2000) % 16_000 - 8000) as i16;
    }
    let mut pkt = [0u8; 1500];
    let mut rtcp = [0u8; MAX_RTCP_LEN];
    let mut heard = SILENCE;

    let mut tick = |i: u32, a: &mut RtpSession, b: &mut RtpSession| {
        let now = t0 + FRAME_DURATION * i;
        if i % 250 == 0 {
            a.send_dtmf("5#", Duration::from_millis(100))
                .expect("queued");
        }
        // A -> B, losing one packet in 17.
        let n = a.write_frame(now, &tone, &mut pkt);
        if n > 0 && i % 17 != 0 {
            b.handle_packet(now, a_addr, &pkt[..n]);
        }
        b.poll_frame(now, &mut heard);
        // B echoes what it heard -> A.
        let n = b.write_frame(now, &heard, &mut pkt);
        if n > 0 {
            a.handle_packet(now, b_addr, &pkt[..n]);
        }
        a.poll_frame(now, &mut heard);
        if let Some(n) = a.poll_rtcp(now, &mut rtcp) {
            b.handle_rtcp(now, a_addr, &rtcp[..n]);
        }
        if let Some(n) = b.poll_rtcp(now, &mut rtcp) {
            a.handle_rtcp(now, b_addr, &rtcp[..n]);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
    };

    for i in 0..500 {
        tick(i, &mut a, &mut b);
    }
    let region = Region::new(GLOBAL);
    for i in 500..3500 {
        tick(i, &mut a, &mut b);
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "allocations on the media path: {change:?}"
    );
    // The loop really did the work.
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sb.frames_played > 3000 && sa.frames_played > 3000);
    assert!(sb.lost > 100 && sb.rtcp_in >= 5 && sa.rtcp_in >= 5);
}
