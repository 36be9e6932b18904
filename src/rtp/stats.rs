//! Reception statistics for one RTP source (pure; RFC 3550 §A.1 sequence validation, §A.3
//! expected and lost packets, §A.8 interarrival jitter), and the per-leg counters snapshot
//! [`RtpStats`].
//!
//! Deliberate difference from §A.1: a new source is accepted on its first packet (no probation of
//! `MIN_SEQUENTIAL` packets), because on a negotiated, latched leg the first packet is already
//! from the peer we expect and every packet should count. The restart rule is kept: a jump of
//! more than `MAX_DROPOUT` is accepted as a new base only when the next packet follows it.

use std::time::{Duration, Instant};

use crate::media::frame::SAMPLE_RATE_HZ;

use super::sequence::{seq_forward, ts_forward};

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Arrival time in media timestamp units (8 kHz) since `epoch`, wrapping like an RTP timestamp.
pub fn arrival_ts(epoch: Instant, now: Instant) -> u32 {
    let ns = now.saturating_duration_since(epoch).as_nanos();
    (ns * u128::from(SAMPLE_RATE_HZ) / 1_000_000_000) as u32
}

/// What [`ReceiverStats::update`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In sequence or a small jump forward.
    Valid,
    /// Reordered or duplicate (counted as received, as §A.1 does).
    Old,
    /// A large jump: not counted until the next packet confirms it.
    Jump,
    /// The jump was confirmed: counters restarted at this packet.
    Restarted,
}

/// Per-source reception state of RFC 3550 §A.1/§A.3/§A.8.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiverStats {
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<u32>,
    /// Jitter scaled by 16 (§A.8, integer form).
    jitter_q4: u64,
    last_fraction: u8,
}

/// Loss figures for one report block (§A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossReport {
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, clamped to the 24-bit signed field.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

impl ReceiverStats {
    /// Nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn init(&mut self, seq: u16) {
        self.started = true;
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Records a packet: sequence validation, received count and jitter. `arrival` is
    /// [`arrival_ts`] of the packet, `ts` its RTP timestamp.
    pub fn update(&mut self, seq: u16, ts: u32, arrival: u32) -> SeqVerdict {
        let verdict = if !self.started {
            self.init(seq);
            SeqVerdict::Valid
        } else {
            let udelta = seq_forward(seq, self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
                }
                self.max_seq = seq;
                SeqVerdict::Valid
            } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
                if u32::from(seq) == self.bad_seq {
                    self.init(seq);
                    self.transit = None;
                    SeqVerdict::Restarted
                } else {
                    self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                    return SeqVerdict::Jump;
                }
            } else {
                SeqVerdict::Old
            }
        };
        self.received = self.received.wrapping_add(1);
        // §A.8: J += (|D| - J) / 16, kept in Q4.
        let transit = ts_forward(arrival, ts);
        if let Some(prev) = self.transit {
            // |D| < 2^31 and J stays below 16 * 2^31 in Q4: no overflow in u64.
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
        verdict
    }

    /// Packets received (including duplicates, as §A.3 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u32 {
        if !self.started {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative lost (negative with duplicates), clamped to the 24-bit RTCP field.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.jitter()) * 1_000_000 / u64::from(SAMPLE_RATE_HZ))
    }

    /// The fraction lost computed by the last [`ReceiverStats::report`].
    pub fn last_fraction_lost(&self) -> u8 {
        self.last_fraction
    }

    /// Whether any packet was received.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Figures for a report block; starts a new interval for the fraction lost (§A.3).
    pub fn report(&mut self) -> LossReport {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        self.last_fraction = fraction;
        LossReport {
            fraction_lost: fraction,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_seq: self.extended_max(),
            jitter: self.jitter(),
        }
    }
}

/// A snapshot of one leg's RTP counters, for metrics, call rows and the API.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtpStats {
    /// Datagrams received on the RTP port (all of them, before any check).
    pub packets_in: u64,
    /// Bytes of those datagrams.
    pub bytes_in: u64,
    /// RTP packets we wrote.
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Packets expected (§A.3), summed over the far end's SSRCs in this leg.
    pub expected: u64,
    /// Packets counted as received (§A.3), summed over the far end's SSRCs.
    pub received: u64,
    /// Cumulative lost packets (§A.3; negative when duplicates outnumber losses), summed over the
    /// far end's SSRCs.
    pub lost: i64,
    /// Fraction lost in the last RTCP report interval of the current source, 0..=1.
    pub fraction_lost: f32,
    /// Interarrival jitter in timestamp units (§A.8).
    pub jitter_ts: u32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Audio packets that arrived after their frame was played.
    pub late: u64,
    /// Duplicate audio packets.
    pub duplicates: u64,
    /// Audio packets far from the stream, dropped (a jump not confirmed by the next packet).
    pub stray: u64,
    /// Datagrams that were not valid RTP.
    pub malformed: u64,
    /// Packets from a source other than the latched one.
    pub wrong_source: u64,
    /// Packets with a payload type we did not negotiate.
    pub unknown_payload_type: u64,
    /// Frames played from received audio.
    pub frames_played: u64,
    /// Frames concealed (loss or underrun).
    pub frames_concealed: u64,
    /// RTCP datagrams received.
    pub rtcp_in: u64,
    /// Malformed RTCP datagrams.
    pub rtcp_malformed: u64,
    /// RTCP compound packets we wrote.
    pub rtcp_out: u64,
    /// The far end's view of our stream, from its last report block about us.
    pub remote_fraction_lost: f32,
    /// The far end's cumulative lost count for our stream.
    pub remote_lost: i32,
    /// The far end's jitter for our stream, in milliseconds.
    pub remote_jitter_ms: f64,
    /// Round-trip time from the last report block with LSR/DLSR (§6.4.1), if any.
    pub rtt_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_across_wrap() {
        let mut s = ReceiverStats::new();
        let mut seq = 65_530u16;
        for i in 0..20u32 {
            if i != 7 && i != 8 {
                assert_eq!(s.update(seq, i * 160, i * 160), SeqVerdict::Valid);
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.received(), 18);
        assert_eq!(s.cumulative_lost(), 2);
        assert_eq!(s.extended_max(), 65_536 + 13);
        let r = s.report();
        assert_eq!(r.fraction_lost, (2 * 256 / 20) as u8);
        assert_eq!(r.cumulative_lost, 2);
        // next interval without loss
        for i in 20..30u32 {
            s.update(seq, i * 160, i * 160);
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.report().fraction_lost, 0);
    }

    #[test]
    fn duplicates_make_loss_negative_and_old_packets_count() {
        let mut s = ReceiverStats::new();
        s.update(10, 0, 0);
        s.update(11, 160, 160);
        // A duplicate of the highest is "in order" for §A.1; an earlier one is old.
        assert_eq!(s.update(11, 160, 160), SeqVerdict::Valid);
        assert_eq!(s.update(10, 0, 0), SeqVerdict::Old);
        assert_eq!(s.cumulative_lost(), -2);
    }

    #[test]
    fn jump_needs_confirmation() {
        let mut s = ReceiverStats::new();
        s.update(100, 0, 0);
        assert_eq!(s.update(20_000, 160, 160), SeqVerdict::Jump);
        assert_eq!(s.update(20_001, 320, 320), SeqVerdict::Restarted);
        assert_eq!((s.expected(), s.received()), (1, 1));
    }

    #[test]
    fn jitter_follows_a8() {
        let mut s = ReceiverStats::new();
        // Packets every 160 ts units, arrivals alternating 0 and 80 units late: |D| = 80.
        for i in 0..200u32 {
            let arrival = i * 160 + if i % 2 == 1 { 80 } else { 0 };
            s.update(i as u16, i * 160, arrival);
        }
        // The estimate converges to |D| = 80.
        assert!((75..=80).contains(&s.jitter()), "jitter {}", s.jitter());
        assert_eq!(
            s.jitter_duration(),
            Duration::from_micros(u64::from(s.jitter()) * 125)
        );
        // A perfectly regular stream has no jitter.
        let mut r = ReceiverStats::new();
        for i in 0..50u32 {
            r.update(i as u16, 1000 + i * 160, i * 160);
        }
        assert_eq!(r.jitter(), 0);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_overflows(packets in proptest::collection::vec(
            (proptest::prelude::any::<u16>(), proptest::prelude::any::<u32>(), proptest::prelude::any::<u32>()), 1..300)) {
            let mut s = ReceiverStats::new();
            for (seq, ts, arrival) in packets {
                s.update(seq, ts, arrival);
                let _ = (s.expected(), s.cumulative_lost(), s.jitter_duration());
            }
            let r = s.report();
            proptest::prop_assert!((-0x80_0000..=0x7f_ffff).contains(&r.cumulative_lost));
        }
    }

    #[test]
    fn arrival_is_in_8khz_units() {
        let t0 = crate::clock::test_origin();
        assert_eq!(arrival_ts(t0, t0 + Duration::from_millis(20)), 160);
        assert_eq!(arrival_ts(t0 + Duration::from_secs(1), t0), 0);
    }
}
