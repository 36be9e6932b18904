//! Per-leg jitter buffer: reorders G.711 packets onto the 20 ms frame grid and hands one frame
//! per media tick to the engine (pure; RFC 3550 §5.1 timestamps, §A.1 sequence validation ideas).
//!
//! # Layout
//! A fixed ring of [`JITTER_CAPACITY_FRAMES`] decoded frames, allocated once when the leg is set
//! up. Payloads are placed by **timestamp**, not by sequence number: the grid is anchored on the
//! first packet's timestamp, each payload is decoded into the slots it covers at its sample
//! offset. This is what makes other packet sizes work: 10 ms and 30 ms packets (or any size up to
//! [`MAX_PAYLOAD_SAMPLES`]) are accepted and re-framed into 20 ms frames; larger or empty
//! payloads are counted and dropped ([`Inserted::BadSize`]).
//!
//! # Play-out
//! [`JitterBuffer::pop`] is called once per 20 ms tick and always advances the play cursor by one
//! frame, so play-out follows our media clock, never arrival times. The cursor starts
//! `target` frames before the first packet (the prefetch), so the target delay is the time a
//! frame waits in the buffer.
//!
//! - **Late** packets (entirely before the cursor) and **duplicates** (a sequence number seen in
//!   the last 64) are rejected with a value ([`Inserted::Late`], [`Inserted::Duplicate`]) and
//!   counted; they never disturb what is buffered.
//! - **Adaptive target delay** (default on, see [`JitterConfig`]): starts at 3 frames (60 ms);
//!   each late packet raises it by one frame up to `max_delay_frames` and holds the cursor back
//!   one frame (one extra concealed frame now, fewer late packets after); after
//!   [`SHRINK_AFTER`] without a late packet it drops one frame, down to `min_delay_frames`. When
//!   more than `target + 2` frames have been buffered for [`SKIP_AFTER_TICKS`] ticks in a row (a
//!   sender clock faster than ours, or a burst), one frame is skipped. With `adaptive: false` the
//!   target stays at `initial_delay_frames` and only the skip rule applies.
//! - **Concealment** (packet loss or underrun): repeat the last played frame with a linear fade,
//!   1.0 -> 0.75 -> 0.375 -> 0 over [`CONCEALMENT_FRAMES`] frames, then silence. These frames are
//!   [`Popped::Missing`]; once the fade is over and nothing is buffered the result is
//!   [`Popped::Empty`] (silence).
//! - **Resync**: a sequence jump of more than 3000 (RFC 3550 `MAX_DROPOUT`), a timestamp more than
//!   the capacity ahead of the cursor, or more than one second behind it is a stray packet,
//!   dropped ([`Inserted::Stray`]); if the next packet follows it in sequence, the stream really
//!   restarted and a new grid starts there, dropping what was buffered ([`Inserted::Resynced`]).
//!   A new SSRC is a [`JitterBuffer::reset`] by the session.
//!
//! Deliberate differences from `webrtc-rs/rtc`'s jitter buffer: we decode at insert and store
//! frames, not packets, because the only consumer is the 20 ms media tick; and placement is by
//! timestamp so that any ptime lands on the 20 ms grid.

use std::time::{Duration, Instant};

use crate::media::frame::{FRAME_SAMPLES, Frame, SILENCE};
use crate::media::g711::Law;

use super::sequence::{SeqExtender, TsExtender};

/// Frames the ring holds (640 ms at 20 ms).
pub const JITTER_CAPACITY_FRAMES: usize = 32;
/// Largest payload accepted, in samples (80 ms of G.711); larger ones are counted and dropped.
pub const MAX_PAYLOAD_SAMPLES: usize = 4 * FRAME_SAMPLES;
/// Frames of faded repetition after a loss before silence.
pub const CONCEALMENT_FRAMES: u32 = 3;
/// Time without a late packet after which the adaptive target shrinks by one frame.
pub const SHRINK_AFTER: Duration = Duration::from_secs(10);
/// Consecutive ticks with more than `target + 2` frames buffered before one frame is skipped.
pub const SKIP_AFTER_TICKS: u32 = 25;
/// Sequence jump that means a restarted stream (RFC 3550 §A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: i64 = 3000;
/// A packet further behind the cursor than this (1 s) means the stream restarted.
const MAX_LATE_FRAMES: i64 = 50;
/// Width of the duplicate-detection window, in sequence numbers.
const SEEN_WINDOW: i64 = 64;
const FRAME: i64 = FRAME_SAMPLES as i64;
const CAP: i64 = JITTER_CAPACITY_FRAMES as i64;
const EMPTY_SLOT: i64 = i64::MIN;
/// Fade gains in Q15 at the frame boundaries of a concealment run.
const FADE_Q15: [i32; CONCEALMENT_FRAMES as usize + 1] = [32_768, 24_576, 12_288, 0];

/// Target-delay policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Target delay at start and after a resync, in frames.
    pub initial_delay_frames: u8,
    /// Lowest adaptive target, in frames.
    pub min_delay_frames: u8,
    /// Highest adaptive target, in frames (at most `JITTER_CAPACITY_FRAMES - 2`).
    pub max_delay_frames: u8,
    /// Adapt the target to late packets (see the module docs); fixed when false.
    pub adaptive: bool,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            initial_delay_frames: 3,
            min_delay_frames: 2,
            max_delay_frames: 10,
            adaptive: true,
        }
    }
}

/// What happened to an inserted packet. Rejections are expected outcomes, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored for play-out.
    Accepted,
    /// Stored as the first packet of a new grid (confirmed stream restart); earlier frames were
    /// dropped.
    Resynced,
    /// Far from the stream (sequence or timestamp jump): dropped, unless the next packet follows
    /// it, which confirms a restart.
    Stray,
    /// Same sequence number seen recently: dropped.
    Duplicate,
    /// Its frames were already played: dropped.
    Late,
    /// Empty payload or more than [`MAX_PAYLOAD_SAMPLES`]: dropped.
    BadSize,
}

/// What [`JitterBuffer::pop`] wrote into the caller's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// Received audio (possibly with samples missing inside it, left silent).
    Frame,
    /// The frame was lost or late: concealment (faded repetition, then silence).
    Missing,
    /// Nothing to play (not started, or run dry after the fade): silence.
    Empty,
}

/// Counters kept by the jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets stored.
    pub accepted: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late packets dropped.
    pub late: u64,
    /// Empty or oversized payloads dropped.
    pub bad_size: u64,
    /// Grid restarts.
    pub resyncs: u64,
    /// Packets dropped as far from the stream (jumps awaiting confirmation).
    pub strays: u64,
    /// Frames of received audio played.
    pub frames_played: u64,
    /// Concealed frames played.
    pub frames_concealed: u64,
    /// Frames skipped to cut excess delay.
    pub frames_skipped: u64,
    /// Current target delay, in frames.
    pub target_delay_frames: u8,
}

#[derive(Clone)]
struct Slot {
    number: i64,
    filled: u16,
    frame: Frame,
}

/// The per-leg jitter buffer; see the module docs.
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Box<[Slot]>,
    seqs: SeqExtender,
    seen: u64,
    tss: TsExtender,
    pending_jump: Option<u16>,
    started: bool,
    /// Extended timestamp of the start of frame 0.
    origin: i64,
    /// Next frame number to play.
    play: i64,
    highest_frame: i64,
    last: Frame,
    played_any: bool,
    missing_run: u32,
    target: u8,
    over_ticks: u32,
    last_adapt: Option<Instant>,
    stats: JitterStats,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("play", &self.play)
            .field("target", &self.target)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl JitterBuffer {
    /// Allocates the ring (the only allocation of its life).
    pub fn new(config: JitterConfig) -> Self {
        let max = config
            .max_delay_frames
            .min(JITTER_CAPACITY_FRAMES as u8 - 2);
        let min = config.min_delay_frames.min(max);
        let initial = config.initial_delay_frames.clamp(min, max);
        let config = JitterConfig {
            initial_delay_frames: initial,
            min_delay_frames: min,
            max_delay_frames: max,
            ..config
        };
        let slot = Slot {
            number: EMPTY_SLOT,
            filled: 0,
            frame: SILENCE,
        };
        JitterBuffer {
            config,
            slots: vec![slot; JITTER_CAPACITY_FRAMES].into_boxed_slice(),
            seqs: SeqExtender::new(),
            seen: 0,
            tss: TsExtender::new(),
            pending_jump: None,
            started: false,
            origin: 0,
            play: 0,
            highest_frame: EMPTY_SLOT,
            last: SILENCE,
            played_any: false,
            missing_run: 0,
            target: initial,
            over_ticks: 0,
            last_adapt: None,
            stats: JitterStats {
                target_delay_frames: initial,
                ..JitterStats::default()
            },
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            target_delay_frames: self.target,
            ..self.stats
        }
    }

    /// Frames buffered from the play cursor to the newest stored frame.
    pub fn depth_frames(&self) -> u32 {
        if !self.started || self.highest_frame < self.play {
            0
        } else {
            (self.highest_frame + 1 - self.play) as u32
        }
    }

    /// Forgets the stream (new SSRC): the next packet starts a new grid. Counters are kept.
    pub fn reset(&mut self) {
        self.started = false;
        self.seqs.reset();
        self.tss.reset();
        self.seen = 0;
        self.pending_jump = None;
        self.target = self.config.initial_delay_frames;
        self.over_ticks = 0;
        for s in self.slots.iter_mut() {
            s.number = EMPTY_SLOT;
        }
        self.highest_frame = EMPTY_SLOT;
    }

    fn start(&mut self, now: Instant, seq: u16, ts: u32) {
        for s in self.slots.iter_mut() {
            s.number = EMPTY_SLOT;
        }
        self.seqs.reset();
        self.tss.reset();
        self.seqs.observe(seq);
        self.seen = 1;
        let ets = self.tss.observe(ts) as i64;
        // Frame numbers keep counting across resyncs; the new grid puts this packet `target`
        // frames after the cursor.
        self.origin = ets - (self.play + i64::from(self.target)) * FRAME;
        self.highest_frame = EMPTY_SLOT;
        self.over_ticks = 0;
        self.started = true;
        self.last_adapt.get_or_insert(now);
    }

    /// Inserts one audio packet: `payload` is G.711 in `law`, decoded here into the frame ring.
    pub fn insert(
        &mut self,
        now: Instant,
        seq: u16,
        ts: u32,
        payload: &[u8],
        law: Law,
    ) -> Inserted {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD_SAMPLES {
            self.stats.bad_size += 1;
            return Inserted::BadSize;
        }
        if !self.started {
            self.start(now, seq, ts);
        } else {
            let highest = self.seqs.highest().unwrap_or(0) as i64;
            let d = self.seqs.extend(seq) as i64 - highest;
            if d.abs() > MAX_DROPOUT {
                return self.jump(now, seq, ts, payload, law);
            } else if d > 0 {
                self.seen = if d >= SEEN_WINDOW {
                    1
                } else {
                    (self.seen << d) | 1
                };
                self.seqs.observe(seq);
            } else if -d < SEEN_WINDOW {
                let bit = 1u64 << (-d);
                if self.seen & bit != 0 {
                    self.stats.duplicates += 1;
                    return Inserted::Duplicate;
                }
                self.seen |= bit;
            }
        }
        let n = payload.len() as i64;
        let rel = self.tss.extend(ts) as i64 - self.origin;
        let first = rel.div_euclid(FRAME);
        let last = (rel + n - 1).div_euclid(FRAME);
        if last < self.play {
            if self.play - last > MAX_LATE_FRAMES {
                return self.jump(now, seq, ts, payload, law);
            }
            self.stats.late += 1;
            if self.config.adaptive && self.target < self.config.max_delay_frames {
                self.target += 1;
                self.play -= 1;
                self.last_adapt = Some(now);
            }
            return Inserted::Late;
        }
        if first >= self.play + CAP {
            return self.jump(now, seq, ts, payload, law);
        }
        self.tss.observe(ts);
        self.place(rel, payload, law);
        self.stats.accepted += 1;
        Inserted::Accepted
    }

    /// A packet far from the stream: a restart only if the next packet follows it (as RFC 3550
    /// §A.1 confirms a sequence jump), so one stray packet never wipes the buffer.
    fn jump(&mut self, now: Instant, seq: u16, ts: u32, payload: &[u8], law: Law) -> Inserted {
        if self.pending_jump != Some(seq) {
            self.pending_jump = Some(seq.wrapping_add(1));
            self.stats.strays += 1;
            return Inserted::Stray;
        }
        self.pending_jump = None;
        self.start(now, seq, ts);
        let rel = self.tss.extend(ts) as i64 - self.origin;
        self.place(rel, payload, law);
        self.stats.resyncs += 1;
        Inserted::Resynced
    }

    /// Decodes `payload` into the slots covering samples `rel .. rel + len` (relative to the
    /// grid origin), skipping samples before the cursor or beyond the ring.
    fn place(&mut self, rel: i64, payload: &[u8], law: Law) {
        let mut pos = rel.max(self.play * FRAME);
        let end = (rel + payload.len() as i64).min((self.play + CAP) * FRAME);
        while pos < end {
            let number = pos.div_euclid(FRAME);
            let offset = pos.rem_euclid(FRAME) as usize;
            let take = ((FRAME - offset as i64).min(end - pos)) as usize;
            let slot = &mut self.slots[number.rem_euclid(CAP) as usize];
            if slot.number != number {
                slot.number = number;
                slot.filled = 0;
                slot.frame = SILENCE;
            }
            let src = (pos - rel) as usize;
            law.decode_into(
                &payload[src..src + take],
                &mut slot.frame[offset..offset + take],
            );
            slot.filled = slot.filled.saturating_add(take as u16);
            self.highest_frame = self.highest_frame.max(number);
            pos += take as i64;
        }
    }

    /// Plays one frame into `out`; call exactly once per 20 ms media tick.
    pub fn pop(&mut self, now: Instant, out: &mut Frame) -> Popped {
        if !self.started {
            *out = SILENCE;
            return Popped::Empty;
        }
        if self.config.adaptive
            && self.target > self.config.min_delay_frames
            && self
                .last_adapt
                .is_some_and(|t| now.saturating_duration_since(t) >= SHRINK_AFTER)
        {
            self.target -= 1;
            self.last_adapt = Some(now);
        }
        if self.depth_frames() > u32::from(self.target) + 2 {
            self.over_ticks += 1;
            if self.over_ticks >= SKIP_AFTER_TICKS {
                self.over_ticks = 0;
                let idx = self.play.rem_euclid(CAP) as usize;
                if self.slots[idx].number == self.play {
                    self.slots[idx].number = EMPTY_SLOT;
                }
                self.play += 1;
                self.stats.frames_skipped += 1;
            }
        } else {
            self.over_ticks = 0;
        }
        let idx = self.play.rem_euclid(CAP) as usize;
        let slot = &mut self.slots[idx];
        let here = slot.number == self.play && slot.filled > 0;
        self.play += 1;
        if here {
            slot.number = EMPTY_SLOT;
            *out = slot.frame;
            self.last = slot.frame;
            self.played_any = true;
            self.missing_run = 0;
            self.stats.frames_played += 1;
            return Popped::Frame;
        }
        if !self.played_any {
            *out = SILENCE;
            return Popped::Empty;
        }
        self.missing_run = self.missing_run.saturating_add(1);
        if self.missing_run <= CONCEALMENT_FRAMES {
            let k = self.missing_run as usize;
            conceal(&self.last, FADE_Q15[k - 1], FADE_Q15[k], out);
            self.stats.frames_concealed += 1;
            Popped::Missing
        } else if self.depth_frames() > 0 {
            *out = SILENCE;
            self.stats.frames_concealed += 1;
            Popped::Missing
        } else {
            *out = SILENCE;
            Popped::Empty
        }
    }
}

/// Writes `last` faded linearly from gain `g0` to `g1` (Q15) into `out`.
fn conceal(last: &Frame, g0: i32, g1: i32, out: &mut Frame) {
    let n = FRAME_SAMPLES as i32;
    for (i, (o, &s)) in out.iter_mut().zip(last.iter()).enumerate() {
        let g = g0 + (g1 - g0) * i as i32 / n;
        *o = ((i32::from(s) * g) >> 15) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TICK: Duration = Duration::from_millis(20);

    /// A payload whose decoded samples identify the packet (µ-law byte of value `tag`).
    fn payload(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    fn fixed() -> JitterConfig {
        JitterConfig {
            initial_delay_frames: 2,
            min_delay_frames: 2,
            max_delay_frames: 2,
            adaptive: false,
        }
    }

    #[test]
    fn in_order_stream_plays_after_the_target_delay() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        let mut out = SILENCE;
        let mut kinds = Vec::new();
        for i in 0..10u16 {
            let now = t0 + TICK * u32::from(i);
            let tag = 0x10 + i as u8;
            assert_eq!(
                jb.insert(now, i, u32::from(i) * 160, &payload(tag, 160), Law::Ulaw),
                Inserted::Accepted
            );
            let k = jb.pop(now, &mut out);
            if k == Popped::Frame {
                assert_eq!(out[0], Law::Ulaw.decode(0x10 + i as u8 - 2));
            }
            kinds.push(k);
        }
        assert_eq!(&kinds[..3], &[Popped::Empty, Popped::Empty, Popped::Frame]);
        assert!(kinds[2..].iter().all(|k| *k == Popped::Frame));
    }

    #[test]
    fn reorders_rejects_duplicates_and_late() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        let p = payload(0x20, 160);
        assert_eq!(jb.insert(t0, 10, 1600, &p, Law::Ulaw), Inserted::Accepted);
        assert_eq!(jb.insert(t0, 12, 1920, &p, Law::Ulaw), Inserted::Accepted);
        assert_eq!(jb.insert(t0, 11, 1760, &p, Law::Ulaw), Inserted::Accepted);
        assert_eq!(jb.insert(t0, 11, 1760, &p, Law::Ulaw), Inserted::Duplicate);
        let mut out = SILENCE;
        for _ in 0..6 {
            jb.pop(t0, &mut out);
        }
        // Frame of seq 13 was due at the sixth pop; it is now late.
        assert_eq!(jb.insert(t0, 13, 2080, &p, Law::Ulaw), Inserted::Late);
        let s = jb.stats();
        assert_eq!(
            (s.accepted, s.duplicates, s.late, s.frames_played),
            (3, 1, 1, 3)
        );
    }

    #[test]
    fn loss_is_concealed_with_a_fade_then_silence() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        let mut out = SILENCE;
        jb.insert(t0, 0, 0, &payload(0x00, 160), Law::Ulaw); // loud µ-law byte
        let kinds: Vec<_> = (0..8).map(|_| (jb.pop(t0, &mut out), out[80])).collect();
        assert_eq!(kinds[2].0, Popped::Frame);
        let loud = kinds[2].1;
        assert!(loud.abs() > 30_000);
        assert_eq!(kinds[3].0, Popped::Missing);
        assert!(kinds[3].1.abs() < loud.abs() && kinds[3].1.abs() > loud.abs() / 2);
        assert_eq!(kinds[5].0, Popped::Missing);
        assert!(kinds[5].1.abs() < loud.abs() / 4);
        assert_eq!(kinds[6], (Popped::Empty, 0));
    }

    #[test]
    fn ten_and_thirty_ms_packets_are_reframed() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        // 30 ms packets: 240 samples each, four of them make six frames.
        for i in 0..4u16 {
            let r = jb.insert(
                t0,
                i,
                u32::from(i) * 240,
                &payload(0x30 + i as u8, 240),
                Law::Alaw,
            );
            assert_eq!(r, Inserted::Accepted);
        }
        let mut out = SILENCE;
        jb.pop(t0, &mut out);
        jb.pop(t0, &mut out);
        assert_eq!(jb.pop(t0, &mut out), Popped::Frame);
        assert_eq!(out[0], Law::Alaw.decode(0x30));
        assert_eq!(jb.pop(t0, &mut out), Popped::Frame);
        // second frame: samples 160..240 from packet 0, 240..320 from packet 1
        assert_eq!(out[79], Law::Alaw.decode(0x30));
        assert_eq!(out[80], Law::Alaw.decode(0x31));
        // 10 ms packets
        let mut jb = JitterBuffer::new(fixed());
        for i in 0..4u16 {
            jb.insert(
                t0,
                i,
                u32::from(i) * 80,
                &payload(0x40 + i as u8, 80),
                Law::Ulaw,
            );
        }
        jb.pop(t0, &mut out);
        jb.pop(t0, &mut out);
        assert_eq!(jb.pop(t0, &mut out), Popped::Frame);
        assert_eq!(
            (out[0], out[80]),
            (Law::Ulaw.decode(0x40), Law::Ulaw.decode(0x41))
        );
        assert_eq!(jb.insert(t0, 9, 9999, &[], Law::Ulaw), Inserted::BadSize);
        assert_eq!(
            jb.insert(t0, 9, 9999, &[0; 1000], Law::Ulaw),
            Inserted::BadSize
        );
    }

    #[test]
    fn jumps_resync() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        let p = payload(0x50, 160);
        let mut out = SILENCE;
        let mut ins = |seq: u16, ts: u32| jb.insert(t0, seq, ts, &p, Law::Ulaw);
        ins(100, 16_000);
        // One stray packet (an old duplicate from far back) changes nothing.
        assert_eq!(ins(101, 1), Inserted::Stray);
        assert_eq!(ins(102, 16_320), Inserted::Accepted);
        // A timestamp jump far ahead, confirmed by the next packet.
        assert_eq!(ins(103, 900_000), Inserted::Stray);
        assert_eq!(ins(104, 900_160), Inserted::Resynced);
        assert_eq!(ins(105, 900_320), Inserted::Accepted);
        // A sequence jump.
        assert_eq!(ins(30_000, 900_480), Inserted::Stray);
        assert_eq!(ins(30_001, 900_640), Inserted::Resynced);
        // A timestamp far behind (a restarted sender).
        assert_eq!(ins(30_002, 10), Inserted::Stray);
        assert_eq!(ins(30_003, 170), Inserted::Resynced);
        jb.pop(t0, &mut out);
        jb.pop(t0, &mut out);
        assert_eq!(jb.pop(t0, &mut out), Popped::Frame);
        assert_eq!(out[0], Law::Ulaw.decode(0x50));
        assert_eq!((jb.stats().resyncs, jb.stats().strays), (3, 4));
    }

    #[test]
    fn adaptive_target_grows_on_late_and_shrinks_later() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut out = SILENCE;
        let p = payload(0x60, 160);
        jb.insert(t0, 0, 0, &p, Law::Ulaw);
        for i in 0..6 {
            jb.pop(t0 + TICK * i, &mut out);
        }
        assert_eq!(jb.insert(t0, 1, 160, &p, Law::Ulaw), Inserted::Late);
        assert_eq!(jb.stats().target_delay_frames, 4);
        jb.pop(t0 + Duration::from_secs(11), &mut out);
        assert_eq!(jb.stats().target_delay_frames, 3);
    }

    #[test]
    fn excess_delay_is_cut_by_skipping() {
        let t0 = crate::clock::test_origin();
        let mut jb = JitterBuffer::new(fixed());
        let mut out = SILENCE;
        // A burst of 12 frames, then one packet per tick.
        for i in 0..12u16 {
            jb.insert(t0, i, u32::from(i) * 160, &payload(1, 160), Law::Ulaw);
        }
        let before = jb.depth_frames();
        for i in 12..80u16 {
            jb.insert(t0, i, u32::from(i) * 160, &payload(1, 160), Law::Ulaw);
            jb.pop(t0, &mut out);
        }
        assert_eq!(jb.stats().frames_skipped, 2);
        assert_eq!(jb.depth_frames(), before - 2);
    }

    proptest! {
        /// Arbitrary packets and ticks never panic and the buffer stays bounded.
        #[test]
        fn arbitrary_input_is_safe(ops in proptest::collection::vec(
            (any::<u16>(), any::<u32>(), 0usize..800, any::<bool>()), 1..400), adaptive: bool) {
            let t0 = crate::clock::test_origin();
            let mut jb = JitterBuffer::new(JitterConfig { adaptive, ..JitterConfig::default() });
            let mut out = SILENCE;
            let payload = [0x33u8; 800];
            for (i, (seq, ts, len, pop)) in ops.into_iter().enumerate() {
                let now = t0 + TICK * i as u32;
                jb.insert(now, seq, ts, &payload[..len], Law::Alaw);
                if pop {
                    jb.pop(now, &mut out);
                }
                prop_assert!(jb.depth_frames() <= JITTER_CAPACITY_FRAMES as u32 + 1);
            }
        }

        /// Seeded reordering, loss and duplication across sequence and timestamp wrap: every
        /// received frame is played exactly once and in order, lost ones are concealed, and the
        /// counters add up.
        #[test]
        fn network_impairments(seq_back in 0u16..300, ts_back in 0u32..48_000, seed: u64, n in 50u32..300) {
            // Start just before the wrap of both sequence number and timestamp.
            let seq0 = u16::MAX - seq_back;
            let ts0 = u32::MAX - ts_back;
            let t0 = crate::clock::test_origin();
            let mut jb = JitterBuffer::new(JitterConfig { adaptive: false, initial_delay_frames: 4,
                                                          min_delay_frames: 4, max_delay_frames: 4 });
            let mut rng = seed | 1;
            let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
            // Arrival schedule: packet i is sent at tick i, dropped with p=1/10, delayed by 0..2
            // ticks, duplicated with p=1/20.
            let mut arrivals: Vec<(u32, u32)> = Vec::new(); // (tick, index)
            let mut sent = std::collections::BTreeSet::new();
            for i in 0..n {
                let r = if i == 0 { 1 } else { next() };
                if r % 10 == 0 { continue; }
                sent.insert(i);
                let delay = if i == 0 { 0 } else { (r >> 8) as u32 % 3 };
                arrivals.push((i + delay, i));
                if (r >> 16) % 20 == 0 { arrivals.push((i + 2, i)); }
            }
            arrivals.sort();
            let mut played = Vec::new();
            let mut out = SILENCE;
            let mut a = 0;
            for tick in 0..n + 10 {
                let now = t0 + TICK * tick;
                while a < arrivals.len() && arrivals[a].0 == tick {
                    let i = arrivals[a].1;
                    // The frame content is the packet index in µ-law bytes 0..=127 (distinct).
                    let tag = (i % 120) as u8;
                    jb.insert(now, seq0.wrapping_add(i as u16), ts0.wrapping_add(i * 160),
                              &payload(tag, 160), Law::Ulaw);
                    a += 1;
                }
                if jb.pop(now, &mut out) == Popped::Frame {
                    played.push(out[0]);
                }
            }
            let s = jb.stats();
            prop_assert_eq!(s.late, 0);
            prop_assert_eq!(s.frames_played as usize, sent.len());
            let expect: Vec<i16> = sent.iter().map(|i| Law::Ulaw.decode((i % 120) as u8)).collect();
            prop_assert_eq!(played, expect);
            prop_assert_eq!(s.accepted + s.duplicates, arrivals.len() as u64);
        }
    }
}
