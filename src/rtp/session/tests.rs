//! Session tests in simulated time: two pure sessions exchange datagrams through a lossy,
//! seeded in-memory "network"; every tick is `t0 + i * 20 ms`.

use super::*;
use crate::media::frame::SILENCE;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const TICK: Duration = FRAME_DURATION;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn session(seed: u64, remote: &str, dtmf: Option<u8>) -> RtpSession {
    let mut rng = SmallRng::seed_from_u64(seed);
    let t0 = crate::clock::test_origin();
    let cfg = SessionConfig::new(Law::Ulaw, dtmf, Some(addr(remote)));
    RtpSession::new(
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        cfg,
        &mut rng,
    )
}

/// A tone-ish frame whose samples identify tick `i`.
fn frame(i: u32) -> Frame {
    let mut f = SILENCE;
    for (k, s) in f.iter_mut().enumerate() {
        *s = (((i as usize * 7 + k) % 64) as i16 - 32) * 500;
    }
    f
}

#[test]
fn our_stream_keeps_ssrc_and_continuous_seq_and_ts() {
    let t0 = crate::clock::test_origin();
    let mut a = session(1, "127.0.0.1:4000", None);
    let mut buf = [0u8; 256];
    let mut prev: Option<(u16, u32)> = None;
    for i in 0..100u32 {
        // A gap of 10 ticks after tick 49 (e.g. hold): the engine does not call write_frame.
        if (50..60).contains(&i) {
            continue;
        }
        let n = a.write_frame(t0 + TICK * i, &frame(i), &mut buf);
        assert_eq!(n, MIN_WRITE_BUFFER);
        let p = packet::parse(&buf[..n]).expect("valid");
        assert_eq!(p.ssrc, a.ssrc());
        assert_eq!(p.payload_type, 0);
        if let Some((seq, ts)) = prev {
            assert_eq!(p.sequence, seq.wrapping_add(1));
            let step = if i == 60 { 11 * 160 } else { 160 };
            assert_eq!(p.timestamp, ts.wrapping_add(step));
            assert_eq!(p.marker, i == 60, "marker at tick {i}");
        } else {
            assert!(p.marker, "first packet starts a talkspurt");
        }
        prev = Some((p.sequence, p.timestamp));
    }
    let s = a.stats();
    assert_eq!(s.packets_out, 90);
    assert_eq!(s.bytes_out, 90 * MIN_WRITE_BUFFER as u64);
    assert_eq!(a.write_frame(t0, &SILENCE, &mut [0u8; 100]), 0);
}

#[test]
fn two_sessions_carry_audio_with_loss_reorder_and_duplicates() {
    let t0 = crate::clock::test_origin();
    let a_addr = addr("127.0.0.1:4000");
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut b = session(2, "127.0.0.1:4000", None);
    let mut buf = [0u8; 256];
    let mut in_flight: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut rng = SmallRng::seed_from_u64(99);
    let mut got = Vec::new();
    let mut out = SILENCE;
    let mut kinds = [0u32; 3];
    for i in 0..500u32 {
        let now = t0 + TICK * i;
        let n = a.write_frame(now, &frame(i), &mut buf);
        let r = rng.next_u32();
        if r % 20 != 0 {
            // 5 % loss, 0..2 ticks of delay, 2 % duplicated
            in_flight.push((i + (r >> 8) % 3, buf[..n].to_vec()));
            if (r >> 16) % 50 == 0 {
                in_flight.push((i + 2, buf[..n].to_vec()));
            }
        }
        in_flight.sort_by_key(|(t, _)| *t);
        while in_flight.first().is_some_and(|(t, _)| *t <= i) {
            let (_, d) = in_flight.remove(0);
            b.handle_packet(now, a_addr, &d);
        }
        let k = b.poll_frame(now, &mut out);
        kinds[k as usize] += 1;
        if k == FrameKind::Audio {
            got.push(out);
        }
    }
    // Every frame played is one A sent, after a G.711 round trip, in order.
    let mut idx = 0u32;
    for f in &got {
        while idx < 500 {
            let mut expect = frame(idx);
            Law::Ulaw.round_trip_in_place(&mut expect);
            idx += 1;
            if *f == expect {
                break;
            }
        }
        assert!(idx <= 500, "a played frame was never sent, or out of order");
    }
    let s = b.stats();
    assert_eq!(s.late, 0);
    assert!(s.lost > 10 && s.lost < 50, "lost {}", s.lost);
    assert!(s.duplicates > 0);
    assert_eq!(s.frames_played as usize, got.len());
    assert!(s.frames_concealed > 0);
    assert_eq!(kinds[FrameKind::Audio as usize] as usize, got.len());
    assert_eq!(b.poll_event(), Some(RtpEvent::Latched { addr: a_addr }));
    assert!(b.last_received().is_some());
}

#[test]
fn latching_modes() {
    let t0 = crate::clock::test_origin();
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut pkt = [0u8; 256];
    let n = a.write_frame(t0, &SILENCE, &mut pkt);
    let pkt = &pkt[..n];

    // PeerIp: the SDP said 10.0.0.1:4000; the NATed source 10.0.0.1:4444 latches.
    let mut b = session(2, "10.0.0.1:4000", None);
    assert_eq!(
        b.handle_packet(t0, addr("10.0.0.2:4000"), pkt),
        PacketOutcome::WrongSource
    );
    assert_eq!(b.remote(), Some(addr("10.0.0.1:4000")));
    assert_eq!(
        b.handle_packet(t0, addr("10.0.0.1:4444"), &[1, 2, 3]),
        PacketOutcome::Malformed(PacketError::TooShort(3))
    );
    assert_eq!(b.poll_event(), None, "garbage does not latch");
    assert_eq!(
        b.handle_packet(t0, addr("10.0.0.1:4444"), pkt),
        PacketOutcome::Audio
    );
    assert_eq!(
        b.poll_event(),
        Some(RtpEvent::Latched {
            addr: addr("10.0.0.1:4444")
        })
    );
    assert_eq!(b.remote(), Some(addr("10.0.0.1:4444")));
    assert_eq!(
        b.handle_packet(t0, addr("10.0.0.1:4000"), pkt),
        PacketOutcome::WrongSource
    );
    let s = b.stats();
    assert_eq!((s.packets_in, s.wrong_source, s.malformed), (4, 2, 1));
    // A re-INVITE to a new address drops the latch.
    b.set_remote(addr("10.0.0.9:6000"), Law::Alaw, None);
    assert_eq!(b.remote(), Some(addr("10.0.0.9:6000")));
    assert_eq!(b.law(), Law::Alaw);

    // AnySource latches whatever comes first.
    let mut cfg = SessionConfig::new(Law::Ulaw, None, Some(addr("10.0.0.1:4000")));
    cfg.latch = LatchMode::AnySource;
    let mut c = RtpSession::new(
        t0,
        SystemTime::UNIX_EPOCH,
        cfg.clone(),
        &mut SmallRng::seed_from_u64(3),
    );
    assert_eq!(
        c.handle_packet(t0, addr("192.0.2.7:9"), pkt),
        PacketOutcome::Audio
    );
    assert_eq!(c.remote(), Some(addr("192.0.2.7:9")));
    // Off accepts anything and keeps sending to the SDP address.
    cfg.latch = LatchMode::Off;
    let mut d = RtpSession::new(
        t0,
        SystemTime::UNIX_EPOCH,
        cfg,
        &mut SmallRng::seed_from_u64(4),
    );
    assert_eq!(
        d.handle_packet(t0, addr("192.0.2.7:9"), pkt),
        PacketOutcome::Audio
    );
    assert_eq!(
        d.handle_packet(t0, addr("192.0.2.8:9"), pkt),
        PacketOutcome::Duplicate
    );
    assert_eq!(d.remote(), Some(addr("10.0.0.1:4000")));
    assert_eq!(d.poll_event(), None);
}

#[test]
fn ssrc_change_and_unknown_payload_types() {
    let t0 = crate::clock::test_origin();
    let from = addr("127.0.0.1:4000");
    let mut b = session(2, "127.0.0.1:4000", Some(101));
    let mut buf = [0u8; 64];
    let h = |ssrc, seq, pt| RtpHeader {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc,
    };
    let n = packet::write(&h(1, 10, 8), &[0xd5; 20], &mut buf).expect("fits");
    assert_eq!(b.handle_packet(t0, from, &buf[..n]), PacketOutcome::Audio);
    let n = packet::write(&h(1, 11, 13), &[0x40], &mut buf).expect("fits");
    assert_eq!(
        b.handle_packet(t0, from, &buf[..n]),
        PacketOutcome::UnknownPayloadType(13)
    );
    let n = packet::write(&h(1, 12, 101), &[1], &mut buf).expect("fits");
    assert_eq!(
        b.handle_packet(t0, from, &buf[..n]),
        PacketOutcome::MalformedDtmf
    );
    let n = packet::write(&h(2, 500, 0), &[0xff; 160], &mut buf[..]).unwrap_or(0);
    assert_eq!(n, 0, "64-byte buffer is too small");
    let mut big = [0u8; 256];
    let n = packet::write(&h(2, 500, 0), &[0xff; 160], &mut big).expect("fits");
    assert_eq!(b.handle_packet(t0, from, &big[..n]), PacketOutcome::Audio);
    let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            RtpEvent::Latched { addr: from },
            RtpEvent::SsrcChanged { old: 1, new: 2 }
        ]
    );
    // Totals add the first SSRC (3 packets) to the new one (1).
    let s = b.stats();
    assert_eq!(
        (s.unknown_payload_type, s.malformed, s.received, s.expected),
        (1, 1, 4, 4)
    );
    assert_eq!(b.remote_ssrc(), Some(2));
}

#[test]
fn dtmf_round_trip_between_sessions() {
    let t0 = crate::clock::test_origin();
    let a_addr = addr("127.0.0.1:4000");
    let mut a = session(1, "127.0.0.1:5000", Some(101));
    let mut b = session(2, "127.0.0.1:4000", Some(101));
    assert_eq!(
        session(3, "127.0.0.1:5000", None).send_dtmf("1", Duration::from_millis(100)),
        Err(DtmfError::NotNegotiated)
    );
    a.send_dtmf("19#", Duration::from_millis(100))
        .expect("valid");
    assert_eq!(
        a.send_dtmf("x", Duration::from_millis(100)),
        Err(DtmfError::InvalidDigit('x'))
    );
    let mut buf = [0u8; 256];
    let mut out = SILENCE;
    let mut digits = String::new();
    let mut event_packets = 0;
    let mut prev_seq: Option<u16> = None;
    for i in 0..80u32 {
        let now = t0 + TICK * i;
        let n = a.write_frame(now, &frame(i), &mut buf);
        if n > 0 {
            let p = packet::parse(&buf[..n]).expect("valid");
            if let Some(s) = prev_seq {
                assert_eq!(p.sequence, s.wrapping_add(1));
            }
            prev_seq = Some(p.sequence);
            if p.payload_type == 101 {
                event_packets += 1;
            }
            // Lose one end packet of each digit: the retransmissions cover it.
            let ev = dtmf_end(&p);
            if !(ev && event_packets % 5 == 0) {
                b.handle_packet(now, a_addr, &buf[..n]);
            }
        }
        b.poll_frame(now, &mut out);
        while let Some(e) = b.poll_event() {
            if let RtpEvent::DtmfReceived { digit, duration } = e {
                assert_eq!(duration, Duration::from_millis(100));
                digits.push(digit);
            }
        }
    }
    assert_eq!(digits, "19#");
    assert!(!a.dtmf_sending());
    // Per digit: start, one update, three end packets.
    assert_eq!(event_packets, 3 * 5);
}

fn dtmf_end(p: &packet::RtpPacket<'_>) -> bool {
    p.payload_type == 101 && p.payload.get(1).is_some_and(|f| f & 0x80 != 0)
}

#[test]
fn rtcp_reports_round_trip_with_loss_and_rtt() {
    let t0 = crate::clock::test_origin();
    let a_addr = addr("127.0.0.1:4000");
    let b_addr = addr("127.0.0.1:5000");
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut b = session(2, "127.0.0.1:4000", None);
    let mut buf = [0u8; 256];
    let mut rtcp = [0u8; MAX_RTCP_LEN];
    let mut out = SILENCE;
    let mut reports = (0, 0);
    for i in 0..1000u32 {
        let now = t0 + TICK * i;
        let n = a.write_frame(now, &frame(i), &mut buf);
        if i % 10 != 3 {
            b.handle_packet(now, a_addr, &buf[..n]); // 10 % loss A -> B
        }
        let n = b.write_frame(now, &frame(i), &mut buf);
        a.handle_packet(now, b_addr, &buf[..n]);
        a.poll_frame(now, &mut out);
        b.poll_frame(now, &mut out);
        if a.poll_timeout().is_some_and(|t| t <= now) {
            let n = a.poll_rtcp(now, &mut rtcp).expect("due");
            assert_eq!(rtcp::validate(&rtcp[..n]), Ok(()));
            b.handle_rtcp(now, a_addr, &rtcp[..n]);
            reports.0 += 1;
        }
        // B's reports reach A 30 ms later (one-way delay), RTT shows up at A.
        if b.poll_timeout().is_some_and(|t| t <= now) {
            let n = b.poll_rtcp(now, &mut rtcp).expect("due");
            a.handle_rtcp(now + Duration::from_millis(30), b_addr, &rtcp[..n]);
            reports.1 += 1;
        }
        assert_eq!(a.poll_rtcp(now, &mut rtcp), None, "not due twice");
    }
    // 20 s at 2.5..7.5 s intervals.
    assert!(reports.0 >= 3 && reports.0 <= 8, "{reports:?}");
    let sa = a.stats();
    assert!(
        (sa.remote_fraction_lost - 0.1).abs() < 0.03,
        "{}",
        sa.remote_fraction_lost
    );
    assert!(sa.remote_lost > 50);
    let rtt = sa.rtt_ms.expect("rtt from LSR/DLSR");
    assert!((rtt - 30.0).abs() < 1.0, "rtt {rtt}");
    let sb = b.stats();
    assert_eq!(sb.rtcp_in, reports.0);
    assert_eq!(sb.remote_lost, 0);
    assert!((sb.fraction_lost - 0.1).abs() < 0.03);
    // Malformed RTCP and BYE.
    b.handle_rtcp(t0, a_addr, &[0x80, 200, 0, 9]);
    assert_eq!(b.stats().rtcp_malformed, 1);
    let n = a.write_bye(t0, &mut rtcp).expect("fits");
    while b.poll_event().is_some() {}
    b.handle_rtcp(t0, a_addr, &rtcp[..n]);
    assert_eq!(b.poll_event(), Some(RtpEvent::Bye { ssrc: a.ssrc() }));
}

#[test]
fn echo_restamps_with_our_stream() {
    let t0 = crate::clock::test_origin();
    let caller = addr("127.0.0.1:4000");
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut echo = session(2, "127.0.0.1:4000", None);
    let mut buf = [0u8; 256];
    let mut back = [0u8; 256];
    let mut scratch = SILENCE;
    let mut played = 0;
    let mut prev: Option<(u16, u32)> = None;
    for i in 0..100u32 {
        let now = t0 + TICK * i;
        let n = a.write_frame(now, &frame(i), &mut buf);
        echo.handle_packet(now, caller, &buf[..n]);
        let m = echo.echo_tick(now, &mut scratch, &mut back);
        let p = packet::parse(&back[..m]).expect("valid");
        assert_eq!(p.ssrc, echo.ssrc());
        if let Some((s, t)) = prev {
            assert_eq!(
                (p.sequence, p.timestamp),
                (s.wrapping_add(1), t.wrapping_add(160))
            );
        }
        prev = Some((p.sequence, p.timestamp));
        let outcome = a.handle_packet(now, addr("127.0.0.1:5000"), &back[..m]);
        assert_eq!(outcome, PacketOutcome::Audio);
        if a.poll_frame(now, &mut scratch) == FrameKind::Audio {
            played += 1;
        }
    }
    // Three frames of jitter-buffer delay at each end.
    assert_eq!(echo.stats().frames_played, 97);
    assert_eq!(played, 97);
}

#[test]
fn rtcp_goes_to_rtp_port_plus_one_until_the_peer_sends_some() {
    let t0 = crate::clock::test_origin();
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut b = session(2, "127.0.0.1:4000", None);
    assert_eq!(b.rtcp_remote(), Some(addr("127.0.0.1:4001")));
    let mut rtcp = [0u8; MAX_RTCP_LEN];
    let n = a.write_bye(t0, &mut rtcp).expect("fits");
    b.handle_rtcp(t0, addr("127.0.0.1:4321"), &rtcp[..n]);
    assert_eq!(b.rtcp_remote(), Some(addr("127.0.0.1:4321")));
    b.handle_rtcp(t0, addr("10.9.9.9:4001"), &rtcp[..n]);
    assert_eq!(b.stats().wrong_source, 1);
}

#[test]
fn tick_jitter_is_not_a_gap() {
    let t0 = crate::clock::test_origin();
    let mut a = session(1, "127.0.0.1:5000", None);
    let mut buf = [0u8; 256];
    let mut ts = Vec::new();
    for (i, jitter_ms) in [0u64, 9, 0, 12, 3].iter().enumerate() {
        let now = t0 + TICK * i as u32 + Duration::from_millis(*jitter_ms);
        let n = a.write_frame(now, &SILENCE, &mut buf);
        let p = packet::parse(&buf[..n]).expect("valid");
        ts.push((p.timestamp, p.marker));
    }
    for w in ts.windows(2) {
        assert_eq!(w[1], (w[0].0.wrapping_add(160), false));
    }
}

proptest::proptest! {
    #[test]
    fn random_datagrams_never_panic_and_are_all_counted(
        datagrams in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..50)
    ) {
        let t0 = crate::clock::test_origin();
        let mut b = session(2, "127.0.0.1:4000", Some(101));
        let mut out = SILENCE;
        let mut buf = [0u8; 256];
        for (i, d) in datagrams.iter().enumerate() {
            let now = t0 + TICK * i as u32;
            b.handle_packet(now, addr("127.0.0.1:4000"), d);
            b.handle_rtcp(now, addr("127.0.0.1:4001"), d);
            b.poll_frame(now, &mut out);
            b.write_frame(now, &out, &mut buf);
            while b.poll_event().is_some() {}
        }
        let s = b.stats();
        proptest::prop_assert_eq!(s.packets_in, datagrams.len() as u64);
        proptest::prop_assert_eq!(s.rtcp_in, datagrams.len() as u64);
    }
}
