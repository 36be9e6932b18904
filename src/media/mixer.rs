//! The conference mixer (pure): one room's participants in, one frame per participant out,
//! every 20 ms media tick. Used for conferences and for two-party bridges (a room of two).
//!
//! # Use, per tick
//!
//! The media worker writes each participant's received frame with [`Mixer::input_mut`]
//! (silence when none arrived: a participant whose input was not written this tick counts as
//! silent, never as its previous frame repeated), calls [`Mixer::mix`], then reads each
//! participant's frame to send with [`Mixer::output`] and the recording taps
//! ([`Mixer::room_mix`], [`Mixer::room_mix_without`]). The engine changes the room with
//! [`Mixer::add`], [`Mixer::remove`], [`Mixer::set_state`], [`Mixer::set_started`], music,
//! [`Mixer::play`] and [`Mixer::beep`] between ticks.
//!
//! # Who hears whom
//!
//! A participant's [`ParticipantState`] (see `room.rs`) decides, first rule that applies:
//!
//! 1. **deaf**: hears silence (it is still heard, unless muted or on hold).
//! 2. **hold**: hears the room's hold music (silence if none), nothing else; heard by nobody.
//! 3. **room not started** ([`Mixer::set_started`]`(false)`, no `start_on_enter` participant
//!    yet): hears the wait music (silence if none) plus announcements and beeps, not the others.
//! 4. otherwise it hears every participant *heard by the room* (not muted, not on hold, role
//!    `normal`) except itself, plus the voice of every coach whispering to it (a coach that is
//!    not muted and not on hold, whose target is in the room), plus the announcement and beeps.
//!    So a `listen` or `coach` participant hears everyone and is heard by nobody in the room
//!    (a coach only by its target), and a muted participant hears the room.
//!
//! # Recording taps
//!
//! - [`Mixer::room_mix`]: every participant heard by the room + the announcement + beeps (what
//!   a `listen` participant hears once the room has started): the right channel of a
//!   conference recording.
//! - [`Mixer::room_mix_without`]`(x)`: the same without `x`'s own voice ("the rest of the room
//!   incl. announcements"), for a room recording whose left channel is `x`'s input. It is
//!   `x`'s own output when `x` is a plain started participant; unlike that output it ignores
//!   whether `x` is deaf, on hold or whispered to, because the recording is of the room.
//!
//! # Clipping
//!
//! Sums are taken in `i32` (no overflow below 65,536 full-scale participants), then brought back
//! to `i16` by [`soft_clip`]: the identity up to [`KNEE`] (-6 dBFS, so ordinary speech is never
//! touched), then `y = K + d·R / (d + R)` with `d = |x| - K` and `R = 32,767 - K`, which leaves
//! the knee with slope 1 and approaches full scale without reaching it. The curve is odd,
//! monotonic and bounded, so loud rooms compress instead of wrapping around.
//!
//! # Cost
//!
//! All buffers live in the participant slots, sized when a participant is added; `mix`
//! allocates nothing. Per tick it adds every heard input once into the room sum (`i32`), then
//! each output is `room sum - own input (if heard) + whispers to it`, clipped: O(n · 160) for n
//! participants, not O(n²). Waiting, held and room-wide outputs (listen, coach, muted) are
//! computed once and copied. Music and announcement players advance at most once per tick,
//! and only when someone hears the music. Participants are kept in a `Vec` of slots
//! (swap-remove) with a `Uuid -> slot` map used only by commands and the per-participant
//! accessors; whisper targets are resolved to slots when the room changes, not per tick.
//! Figures: `BENCHMARKS.md` ("Mixer").

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ, SILENCE};
use super::player::Player;
use super::room::{ParticipantState, Role};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use uuid::Uuid;

/// Below this absolute level (-6 dBFS) [`soft_clip`] is the identity.
pub const KNEE: i32 = 16_384;
/// The largest `i16` sample; [`soft_clip`] stays strictly below it.
const FULL_SCALE: i32 = i16::MAX as i32;
/// Frequency of the join/leave beep, in Hz (well below the 4 kHz Nyquist limit of 8 kHz audio).
pub const BEEP_FREQUENCY_HZ: u32 = 1_000;
/// Peak amplitude of the beep: -12 dBFS.
pub const BEEP_AMPLITUDE: i16 = 8_231;
/// Samples of tone in one beep (150 ms).
pub const BEEP_TONE_SAMPLES: usize = 1_200;
/// Samples of silence after a beep (50 ms), so that queued beeps stay distinct.
pub const BEEP_GAP_SAMPLES: usize = 400;
/// A whole beep with its gap: 200 ms, exactly 10 frames.
const BEEP_SAMPLES: usize = BEEP_TONE_SAMPLES + BEEP_GAP_SAMPLES;
/// Fade in and out of the beep (5 ms raised cosine), so that it does not click.
const BEEP_RAMP_SAMPLES: usize = 40;
/// Beeps queued behind the one playing; more are dropped (a burst of joins beeps a few times).
pub const MAX_QUEUED_BEEPS: u8 = 3;

/// A frame of `i32` partial sums.
type Sum = [i32; FRAME_SAMPLES];

/// What happened during one [`Mixer::mix`] tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixReport {
    /// The announcement started by [`Mixer::play`] played its last frame this tick (the
    /// engine emits `play.finished`). Not set when it was stopped or replaced by `play`.
    pub play_finished: bool,
}

/// One participant: its state, its buffers and its resolved whisper links.
#[derive(Clone)]
struct Slot {
    id: Uuid,
    state: ParticipantState,
    /// Received frame; what was mixed at the last tick once `mix` has run.
    input: Frame,
    /// `input` was written since the last tick.
    fresh: bool,
    /// `input` went into the room sum at the last tick.
    heard: bool,
    /// Slot of the participant this one whispers to (an audible coach whose target is here).
    coach_target: Option<usize>,
    /// At least one audible coach whispers to this participant.
    coached: bool,
    /// Sum of the whispers to this participant at the last tick.
    whispers: Sum,
    /// Frame to send.
    output: Frame,
}

/// One room's mixer. See the module documentation for the rules.
pub struct Mixer {
    slots: Vec<Slot>,
    index: HashMap<Uuid, usize>,
    started: bool,
    wait_music: Option<Player>,
    hold_music: Option<Player>,
    announcement: Option<Player>,
    /// Beep samples (shared, computed once per process).
    beep_tone: &'static [i16; BEEP_SAMPLES],
    /// Position in the beep playing, if one is.
    beep_pos: Option<usize>,
    /// Beeps waiting behind the one playing.
    beeps_queued: u8,
    /// Room sum + announcement + beep at the last tick.
    base: Sum,
    /// `base` clipped: the room mix tap and what room-wide listeners hear.
    room_out: Frame,
    /// What waiting participants hear at the last tick.
    wait_out: Frame,
    /// Hold music at the last tick.
    hold_out: Frame,
    /// Scratch for a player's frame.
    scratch: Frame,
    /// Scratch for one output's sum.
    acc: Sum,
}

impl fmt::Debug for Mixer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mixer")
            .field("participants", &self.slots.len())
            .field("started", &self.started)
            .field("wait_music", &self.wait_music.as_ref().map(|p| p.name()))
            .field("hold_music", &self.hold_music.as_ref().map(|p| p.name()))
            .field(
                "announcement",
                &self.announcement.as_ref().map(|p| p.name()),
            )
            .field("beeping", &self.beep_pos.is_some())
            .finish()
    }
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    /// An empty room, not started, without music.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty room with space for `participants` without reallocating.
    pub fn with_capacity(participants: usize) -> Self {
        Self {
            slots: Vec::with_capacity(participants),
            index: HashMap::with_capacity(participants),
            started: false,
            wait_music: None,
            hold_music: None,
            announcement: None,
            beep_tone: beep_tone(),
            beep_pos: None,
            beeps_queued: 0,
            base: [0; FRAME_SAMPLES],
            room_out: SILENCE,
            wait_out: SILENCE,
            hold_out: SILENCE,
            scratch: SILENCE,
            acc: [0; FRAME_SAMPLES],
        }
    }

    /// Adds a participant (its output is silence until the next tick). Returns `false` if it
    /// was already in the room, in which case only its state is updated.
    pub fn add(&mut self, id: Uuid, state: ParticipantState) -> bool {
        if let Some(&i) = self.index.get(&id) {
            self.slots[i].state = state;
            self.relink();
            return false;
        }
        self.index.insert(id, self.slots.len());
        self.slots.push(Slot {
            id,
            state,
            input: SILENCE,
            fresh: false,
            heard: false,
            coach_target: None,
            coached: false,
            whispers: [0; FRAME_SAMPLES],
            output: SILENCE,
        });
        self.relink();
        true
    }

    /// Removes a participant; returns whether it was in the room.
    pub fn remove(&mut self, id: Uuid) -> bool {
        let Some(i) = self.index.remove(&id) else {
            return false;
        };
        self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.id, i);
        }
        self.relink();
        true
    }

    /// Changes a participant's state; returns whether it is in the room.
    pub fn set_state(&mut self, id: Uuid, state: ParticipantState) -> bool {
        let Some(&i) = self.index.get(&id) else {
            return false;
        };
        self.slots[i].state = state;
        self.relink();
        true
    }

    /// A participant's state.
    pub fn state(&self, id: Uuid) -> Option<ParticipantState> {
        self.index.get(&id).map(|&i| self.slots[i].state)
    }

    /// Whether a participant is in the room.
    pub fn contains(&self, id: Uuid) -> bool {
        self.index.contains_key(&id)
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the room has no participant.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The participants, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.slots.iter().map(|s| s.id)
    }

    /// The frame to fill with what the participant sent this tick. Writing it marks it fresh;
    /// a participant not written before [`Mixer::mix`] is mixed as silence.
    pub fn input_mut(&mut self, id: Uuid) -> Option<&mut Frame> {
        let &i = self.index.get(&id)?;
        let slot = &mut self.slots[i];
        slot.fresh = true;
        Some(&mut slot.input)
    }

    /// The participant's input as mixed at the last tick (silence if it was not written), e.g.
    /// the left channel of a room recording.
    pub fn input(&self, id: Uuid) -> Option<&Frame> {
        self.index.get(&id).map(|&i| &self.slots[i].input)
    }

    /// What to send to the participant, as computed by the last [`Mixer::mix`].
    pub fn output(&self, id: Uuid) -> Option<&Frame> {
        self.index.get(&id).map(|&i| &self.slots[i].output)
    }

    /// Starts the room (participants hear each other) or puts it back to waiting (everyone
    /// hears the wait music).
    pub fn set_started(&mut self, started: bool) {
        self.started = started;
    }

    /// Whether the room has started.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Music heard by everyone while the room has not started (a looping player), or none
    /// (silence).
    pub fn set_wait_music(&mut self, music: Option<Player>) {
        self.wait_music = music;
    }

    /// Music heard by participants on hold (a looping player), or none (silence).
    pub fn set_hold_music(&mut self, music: Option<Player>) {
        self.hold_music = music;
    }

    /// Plays an announcement to everyone who hears the room or waits (not deaf or held
    /// participants), replacing the one playing; `None` stops it. Its end is reported by
    /// [`MixReport::play_finished`].
    pub fn play(&mut self, announcement: Option<Player>) {
        self.announcement = announcement;
    }

    /// Whether an announcement is playing.
    pub fn playing(&self) -> bool {
        self.announcement.is_some()
    }

    /// Queues a join/leave beep (150 ms of 1 kHz at -12 dBFS, then 50 ms of silence) for
    /// everyone who hears the room or waits. At most [`MAX_QUEUED_BEEPS`] wait behind the one
    /// playing.
    pub fn beep(&mut self) {
        if self.beep_pos.is_none() {
            self.beep_pos = Some(0);
        } else if self.beeps_queued < MAX_QUEUED_BEEPS {
            self.beeps_queued += 1;
        }
    }

    /// Whether a beep is playing or queued.
    pub fn beeping(&self) -> bool {
        self.beep_pos.is_some()
    }

    /// Mixes one tick: every participant's output, and the recording taps. Allocation-free.
    pub fn mix(&mut self) -> MixReport {
        let mut report = MixReport::default();

        // 1. The room sum of every heard input, and who needs which music.
        let mut room = [0i32; FRAME_SAMPLES];
        let mut wait_heard = false;
        let mut hold_heard = false;
        for s in &mut self.slots {
            if !s.fresh {
                s.input = SILENCE;
            }
            s.fresh = false;
            s.heard = s.state.heard_by_room();
            if s.heard {
                add(&mut room, &s.input);
            }
            if !s.state.deaf {
                if s.state.hold {
                    hold_heard = true;
                } else if !self.started {
                    wait_heard = true;
                }
            }
        }

        // 2. Announcement and beep (`extras`), heard by everyone in the room or waiting.
        let mut extras = [0i32; FRAME_SAMPLES];
        if let Some(p) = &mut self.announcement {
            let more = p.next_frame(&mut self.scratch);
            if more {
                add(&mut extras, &self.scratch);
            }
            if !more || p.finished() {
                self.announcement = None;
                report.play_finished = true;
            }
        }
        if let Some(pos) = self.beep_pos {
            add(&mut extras, chunk(self.beep_tone, pos));
            let next = pos + FRAME_SAMPLES;
            self.beep_pos = if next < BEEP_SAMPLES {
                Some(next)
            } else if self.beeps_queued > 0 {
                self.beeps_queued -= 1;
                Some(0)
            } else {
                None
            };
        }
        self.base = room;
        add_sum(&mut self.base, &extras);
        clip_frame(&self.base, &mut self.room_out);

        // 3. Music, each player advanced at most once, and only if someone hears it.
        if wait_heard {
            match &mut self.wait_music {
                Some(p) => {
                    p.next_frame(&mut self.scratch);
                }
                None => self.scratch = SILENCE,
            }
            let mut acc = extras;
            add(&mut acc, &self.scratch);
            clip_frame(&acc, &mut self.wait_out);
        }
        if hold_heard {
            match &mut self.hold_music {
                Some(p) => {
                    p.next_frame(&mut self.hold_out);
                }
                None => self.hold_out = SILENCE,
            }
        }

        // 4. Whispers: each audible coach's input into its target's sum.
        for s in &mut self.slots {
            if s.coached {
                s.whispers = [0; FRAME_SAMPLES];
            }
        }
        for i in 0..self.slots.len() {
            if let Some(t) = self.slots[i].coach_target {
                let input = self.slots[i].input;
                add(&mut self.slots[t].whispers, &input);
            }
        }

        // 5. Outputs.
        for s in &mut self.slots {
            if s.state.deaf {
                s.output = SILENCE;
            } else if s.state.hold {
                s.output = self.hold_out;
            } else if !self.started {
                s.output = self.wait_out;
            } else if !s.heard && !s.coached {
                s.output = self.room_out;
            } else {
                let acc = &mut self.acc;
                *acc = self.base;
                if s.heard {
                    sub(acc, &s.input);
                }
                if s.coached {
                    add_sum(acc, &s.whispers);
                }
                clip_frame(acc, &mut s.output);
            }
        }
        report
    }

    /// The room mix at the last tick: every participant heard by the room, plus the
    /// announcement and beeps (right channel of a conference recording).
    pub fn room_mix(&self) -> &Frame {
        &self.room_out
    }

    /// The room mix at the last tick without `id`'s own voice (everyone else heard by the
    /// room, plus the announcement and beeps), written into `out`; `false` (and `out`
    /// untouched) if `id` is not in the room. See the module documentation.
    pub fn room_mix_without(&self, id: Uuid, out: &mut Frame) -> bool {
        let Some(&i) = self.index.get(&id) else {
            return false;
        };
        let s = &self.slots[i];
        if !s.heard {
            *out = self.room_out;
            return true;
        }
        let mut acc = self.base;
        sub(&mut acc, &s.input);
        clip_frame(&acc, out);
        true
    }

    /// Resolves whisper links to slots (after any change of membership or state).
    fn relink(&mut self) {
        for s in &mut self.slots {
            s.coached = false;
            s.coach_target = None;
        }
        for i in 0..self.slots.len() {
            let st = self.slots[i].state;
            let Role::Coach { target } = st.role else {
                continue;
            };
            if st.muted || st.hold {
                continue;
            }
            match self.index.get(&target) {
                Some(&t) if t != i => {
                    self.slots[i].coach_target = Some(t);
                    self.slots[t].coached = true;
                }
                _ => {}
            }
        }
    }
}

/// Soft clipping of a sum to a sample: the identity for `|x| <= KNEE`, then
/// `K + d·R / (d + R)` (`d = |x| - K`, `R = 32,767 - K`), odd, monotonic and always within
/// `-32,766..=32,766`, for any `i32` (no wrap-around however loud the room).
#[inline]
pub fn soft_clip(x: i32) -> i16 {
    let a = i64::from(x.unsigned_abs());
    let knee = i64::from(KNEE);
    if a <= knee {
        return x as i16;
    }
    const RANGE: i64 = (FULL_SCALE - KNEE) as i64;
    let d = a - knee;
    // d < 2^31 and RANGE < 2^14: the product fits in i64; the quotient is below RANGE.
    let y = (knee + d * RANGE / (d + RANGE)) as i16;
    if x < 0 { -y } else { y }
}

/// Clips a frame of sums: a plain narrowing when every sample is below the knee (the common
/// case, vectorised), else [`soft_clip`] per sample.
#[inline]
fn clip_frame(x: &Sum, out: &mut Frame) {
    let peak = x.iter().fold(0u32, |m, &v| m.max(v.unsigned_abs()));
    if peak <= KNEE as u32 {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v as i16;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = soft_clip(v);
        }
    }
}

#[inline]
fn add(acc: &mut Sum, frame: &Frame) {
    for (a, &s) in acc.iter_mut().zip(frame) {
        *a += i32::from(s);
    }
}

#[inline]
fn sub(acc: &mut Sum, frame: &Frame) {
    for (a, &s) in acc.iter_mut().zip(frame) {
        *a -= i32::from(s);
    }
}

#[inline]
fn add_sum(acc: &mut Sum, other: &Sum) {
    for (a, &s) in acc.iter_mut().zip(other) {
        *a += s;
    }
}

/// The frame of the beep starting at sample `pos` (a multiple of the frame size).
fn chunk(tone: &[i16; BEEP_SAMPLES], pos: usize) -> &Frame {
    tone[pos..pos + FRAME_SAMPLES]
        .try_into()
        .expect("beep length is a whole number of frames")
}

/// The beep, computed once per process: [`BEEP_TONE_SAMPLES`] of a [`BEEP_FREQUENCY_HZ`] sine
/// at [`BEEP_AMPLITUDE`] with raised-cosine ramps, then [`BEEP_GAP_SAMPLES`] of silence.
fn beep_tone() -> &'static [i16; BEEP_SAMPLES] {
    static TONE: OnceLock<[i16; BEEP_SAMPLES]> = OnceLock::new();
    TONE.get_or_init(|| {
        let mut t = [0i16; BEEP_SAMPLES];
        let w =
            2.0 * std::f64::consts::PI * f64::from(BEEP_FREQUENCY_HZ) / f64::from(SAMPLE_RATE_HZ);
        for (n, s) in t.iter_mut().take(BEEP_TONE_SAMPLES).enumerate() {
            let edge = n.min(BEEP_TONE_SAMPLES - 1 - n);
            let gain = if edge < BEEP_RAMP_SAMPLES {
                0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / BEEP_RAMP_SAMPLES as f64).cos()
            } else {
                1.0
            };
            *s = (f64::from(BEEP_AMPLITUDE) * gain * (w * n as f64).sin()).round() as i16;
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::player::Prompt;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn normal() -> ParticipantState {
        ParticipantState::default()
    }

    fn with(f: impl FnOnce(&mut ParticipantState)) -> ParticipantState {
        let mut s = normal();
        f(&mut s);
        s
    }

    fn constant(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    fn tone(hz: f64, amplitude: f64) -> Frame {
        let mut f = SILENCE;
        for (n, s) in f.iter_mut().enumerate() {
            *s = (amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / 8_000.0).sin()).round()
                as i16;
        }
        f
    }

    fn sum(frames: &[&Frame]) -> Frame {
        let mut acc = [0i32; FRAME_SAMPLES];
        for f in frames {
            add(&mut acc, f);
        }
        let mut out = SILENCE;
        clip_frame(&acc, &mut out);
        out
    }

    fn player(samples: Vec<i16>, repeat: bool) -> Player {
        Player::new(
            Prompt {
                name: "test".into(),
                samples: samples.into(),
            },
            repeat,
        )
    }

    /// A looping ramp 0, 1, 2 ... 1599: which frame of it was heard is visible in sample 0.
    fn ramp() -> Player {
        player((0..1_600).collect(), true)
    }

    /// Writes a constant input for each participant and mixes.
    fn tick(m: &mut Mixer, inputs: &[(Uuid, i16)]) -> MixReport {
        for &(p, v) in inputs {
            *m.input_mut(p).expect("participant") = constant(v);
        }
        m.mix()
    }

    fn out(m: &Mixer, p: Uuid) -> Frame {
        *m.output(p).expect("participant")
    }

    fn started_room(states: &[(Uuid, ParticipantState)]) -> Mixer {
        let mut m = Mixer::new();
        for &(p, s) in states {
            assert!(m.add(p, s));
        }
        m.set_started(true);
        m
    }

    #[test]
    fn mix_minus_three_parties_each_hear_the_other_two() {
        let (a, b, c) = (id(1), id(2), id(3));
        let mut m = started_room(&[(a, normal()), (b, normal()), (c, normal())]);
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(out(&m, a), constant(600));
        assert_eq!(out(&m, b), constant(500));
        assert_eq!(out(&m, c), constant(300));

        // Tones: each hears exactly the sum of the two others, never itself.
        let (ta, tb, tc) = (
            tone(440.0, 3_000.0),
            tone(1_000.0, 4_000.0),
            tone(250.0, 5_000.0),
        );
        *m.input_mut(a).unwrap() = ta;
        *m.input_mut(b).unwrap() = tb;
        *m.input_mut(c).unwrap() = tc;
        m.mix();
        assert_eq!(out(&m, a), sum(&[&tb, &tc]));
        assert_eq!(out(&m, b), sum(&[&ta, &tc]));
        assert_eq!(out(&m, c), sum(&[&ta, &tb]));
    }

    #[test]
    fn two_party_bridge_is_a_plain_exchange() {
        let (a, b) = (id(1), id(2));
        let mut m = started_room(&[(a, normal()), (b, normal())]);
        let (ta, tb) = (tone(440.0, 9_000.0), tone(1_000.0, 12_000.0));
        *m.input_mut(a).unwrap() = ta;
        *m.input_mut(b).unwrap() = tb;
        m.mix();
        assert_eq!(out(&m, a), tb);
        assert_eq!(out(&m, b), ta);
    }

    #[test]
    fn muted_participant_is_heard_by_nobody_and_hears_the_room() {
        let (a, b, c) = (id(1), id(2), id(3));
        let muted = with(|s| s.muted = true);
        let mut m = started_room(&[(a, muted), (b, normal()), (c, normal())]);
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(out(&m, a), constant(600));
        assert_eq!(out(&m, b), constant(400));
        assert_eq!(out(&m, c), constant(200));
        // Unmuted: heard again.
        assert!(m.set_state(a, normal()));
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(out(&m, b), constant(500));
    }

    #[test]
    fn deaf_participant_hears_silence_and_is_heard() {
        let (a, b, c) = (id(1), id(2), id(3));
        let deaf = with(|s| s.deaf = true);
        let mut m = started_room(&[(a, deaf), (b, normal()), (c, normal())]);
        m.beep();
        m.play(Some(player(vec![1_000; 480], false)));
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(out(&m, a), SILENCE);
        // The others hear a (and the beep and announcement, which a does not).
        let beep = *chunk(beep_tone(), 0);
        let mut expect = [0i32; FRAME_SAMPLES];
        add(&mut expect, &constant(100 + 400 + 1_000));
        add(&mut expect, &beep);
        let mut f = SILENCE;
        clip_frame(&expect, &mut f);
        assert_eq!(out(&m, b), f);
    }

    #[test]
    fn hold_participant_hears_hold_music_only_and_is_heard_by_nobody() {
        let (a, b, c) = (id(1), id(2), id(3));
        let hold = with(|s| s.hold = true);
        let mut m = started_room(&[(a, hold), (b, normal()), (c, normal())]);
        m.set_hold_music(Some(ramp()));
        m.beep();
        m.play(Some(player(vec![1_000; 480], false)));
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        let first: Frame = std::array::from_fn(|k| k as i16);
        assert_eq!(
            out(&m, a),
            first,
            "music only: no room, beep or announcement"
        );
        assert_eq!(m.output(b).unwrap()[0], 400 + 1_000);
        assert_eq!(m.output(c).unwrap()[0], 200 + 1_000);
        // Deaf and on hold: silence, and the music does not advance for nobody.
        m.play(None);
        assert!(m.set_state(a, with(|s| (s.hold, s.deaf) = (true, true))));
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(out(&m, a), SILENCE);
        assert!(m.set_state(a, hold));
        tick(&mut m, &[(a, 100), (b, 200), (c, 400)]);
        assert_eq!(m.output(a).unwrap()[0], 160, "second frame of the music");
    }

    #[test]
    fn hold_without_music_is_silence() {
        let (a, b) = (id(1), id(2));
        let mut m = started_room(&[(a, with(|s| s.hold = true)), (b, normal())]);
        tick(&mut m, &[(a, 100), (b, 200)]);
        assert_eq!(out(&m, a), SILENCE);
        assert_eq!(out(&m, b), SILENCE);
    }

    #[test]
    fn coach_is_heard_only_by_its_target_and_hears_everyone() {
        let (agent, customer, coach, other) = (id(1), id(2), id(3), id(4));
        let coaching = with(|s| s.role = Role::Coach { target: agent });
        let mut m = started_room(&[
            (agent, normal()),
            (customer, normal()),
            (coach, coaching),
            (other, normal()),
        ]);
        let inputs = [(agent, 100), (customer, 200), (coach, 400), (other, 800)];
        tick(&mut m, &inputs);
        assert_eq!(out(&m, agent), constant(200 + 800 + 400));
        assert_eq!(out(&m, customer), constant(100 + 800));
        assert_eq!(out(&m, other), constant(100 + 200));
        assert_eq!(out(&m, coach), constant(100 + 200 + 800));

        // A muted (or held) coach is heard by nobody, its target included.
        assert!(m.set_state(coach, with(|s| (s.muted, s.role) = (true, coaching.role))));
        tick(&mut m, &inputs);
        assert_eq!(out(&m, agent), constant(200 + 800));

        // The coach's target leaves: the coach is heard by nobody; it comes back: whispered to.
        assert!(m.set_state(coach, coaching));
        assert!(m.remove(agent));
        tick(&mut m, &inputs[1..]);
        assert_eq!(out(&m, customer), constant(800));
        assert_eq!(out(&m, other), constant(200));
        assert!(m.add(agent, normal()));
        tick(&mut m, &inputs);
        assert_eq!(out(&m, agent), constant(200 + 800 + 400));
        assert_eq!(out(&m, customer), constant(100 + 800));
    }

    #[test]
    fn two_coaches_whisper_to_one_target_and_not_to_each_other() {
        let (agent, customer, c1, c2) = (id(1), id(2), id(3), id(4));
        let coaching = with(|s| s.role = Role::Coach { target: agent });
        let mut m = started_room(&[
            (agent, normal()),
            (customer, normal()),
            (c1, coaching),
            (c2, coaching),
        ]);
        tick(
            &mut m,
            &[(agent, 100), (customer, 200), (c1, 400), (c2, 800)],
        );
        assert_eq!(out(&m, agent), constant(200 + 400 + 800));
        assert_eq!(out(&m, c1), constant(300));
        assert_eq!(out(&m, c2), constant(300));
        assert_eq!(out(&m, customer), constant(100));
    }

    #[test]
    fn coaching_oneself_is_ignored() {
        let a = id(1);
        let b = id(2);
        let own = with(|s| s.role = Role::Coach { target: a });
        let mut m = started_room(&[(a, own), (b, normal())]);
        tick(&mut m, &[(a, 100), (b, 200)]);
        assert_eq!(out(&m, a), constant(200));
        assert_eq!(out(&m, b), SILENCE);
    }

    #[test]
    fn listen_hears_everyone_and_is_heard_by_nobody() {
        let (a, b, l) = (id(1), id(2), id(3));
        let listen = with(|s| s.role = Role::Listen);
        let mut m = started_room(&[(a, normal()), (b, normal()), (l, listen)]);
        tick(&mut m, &[(a, 100), (b, 200), (l, 400)]);
        assert_eq!(out(&m, l), constant(300));
        assert_eq!(out(&m, a), constant(200));
        assert_eq!(out(&m, b), constant(100));
    }

    #[test]
    fn before_start_everyone_hears_the_wait_music_and_not_each_other() {
        let (a, b) = (id(1), id(2));
        let mut m = Mixer::new();
        m.add(a, normal());
        m.add(b, normal());
        assert!(!m.started());
        tick(&mut m, &[(a, 100), (b, 200)]);
        assert_eq!(out(&m, a), SILENCE, "no music: silence");
        assert_eq!(out(&m, b), SILENCE);

        m.set_wait_music(Some(ramp()));
        tick(&mut m, &[(a, 100), (b, 200)]);
        let first: Frame = std::array::from_fn(|k| k as i16);
        assert_eq!(out(&m, a), first);
        assert_eq!(out(&m, b), first);

        m.set_started(true);
        tick(&mut m, &[(a, 100), (b, 200)]);
        assert_eq!(out(&m, a), constant(200));
        assert_eq!(out(&m, b), constant(100));
    }

    #[test]
    fn wait_music_advances_once_per_tick_whoever_hears_it() {
        let mut m = Mixer::new();
        for n in 1..=5 {
            m.add(id(n), normal());
        }
        m.set_wait_music(Some(ramp()));
        for t in 0..12i16 {
            m.mix();
            let expect = (t * 160) % 1_600;
            for n in 1..=5 {
                assert_eq!(m.output(id(n)).unwrap()[0], expect, "tick {t}");
                assert_eq!(m.output(id(n)).unwrap()[159], expect + 159);
            }
        }
    }

    #[test]
    fn hold_music_advances_once_per_tick_and_only_when_heard() {
        let (a, b, c) = (id(1), id(2), id(3));
        let mut m = started_room(&[(a, normal()), (b, normal()), (c, normal())]);
        m.set_hold_music(Some(ramp()));
        for _ in 0..5 {
            m.mix();
        }
        let hold = with(|s| s.hold = true);
        m.set_state(a, hold);
        m.set_state(b, hold);
        m.mix();
        assert_eq!(m.output(a).unwrap()[0], 0, "not advanced while nobody held");
        assert_eq!(m.output(b).unwrap()[0], 0);
        m.mix();
        assert_eq!(
            m.output(a).unwrap()[0],
            160,
            "advanced once for two listeners"
        );
        assert_eq!(m.output(b).unwrap()[0], 160);
    }

    #[test]
    fn beep_is_150_ms_of_1_khz_at_minus_12_dbfs_for_everyone_listening() {
        let (a, b, deaf, held) = (id(1), id(2), id(3), id(4));
        let mut m = started_room(&[
            (a, normal()),
            (b, with(|s| s.role = Role::Listen)),
            (deaf, with(|s| s.deaf = true)),
            (held, with(|s| s.hold = true)),
        ]);
        m.beep();
        let mut heard = Vec::new();
        for _ in 0..11 {
            m.mix();
            assert_eq!(out(&m, a), out(&m, b));
            assert_eq!(out(&m, deaf), SILENCE);
            assert_eq!(out(&m, held), SILENCE);
            heard.extend_from_slice(&out(&m, a));
        }
        assert!(!m.beeping());
        let peak = heard.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((8_150..=8_240).contains(&peak), "-12 dBFS: {peak}");
        let last = heard.iter().rposition(|&s| s != 0).unwrap();
        assert!((1_150..1_200).contains(&last), "150 ms: {last}");
        let crossings = heard[..1_200]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((290..=310).contains(&crossings), "1 kHz: {crossings}");
        assert!(
            heard[1_200..].iter().all(|&s| s == 0),
            "gap and end are silent"
        );

        // Waiting participants hear beeps too (over the wait music).
        m.set_started(false);
        m.beep();
        m.mix();
        assert_eq!(out(&m, a), *chunk(beep_tone(), 0));
    }

    #[test]
    fn queued_beeps_play_one_after_another_and_are_capped() {
        let a = id(1);
        let mut m = started_room(&[(a, with(|s| s.role = Role::Listen))]);
        for _ in 0..10 {
            m.beep();
        }
        let beeps = 1 + MAX_QUEUED_BEEPS as usize;
        let frames_per_beep = BEEP_SAMPLES / FRAME_SAMPLES;
        for t in 0..beeps * frames_per_beep {
            assert!(m.beeping(), "tick {t}");
            m.mix();
            let expect = *chunk(beep_tone(), (t % frames_per_beep) * FRAME_SAMPLES);
            assert_eq!(out(&m, a), expect, "tick {t}");
        }
        assert!(!m.beeping());
        m.mix();
        assert_eq!(out(&m, a), SILENCE);
    }

    #[test]
    fn play_mixes_the_announcement_and_reports_finished_once() {
        let (a, b, deaf) = (id(1), id(2), id(3));
        let mut m = started_room(&[
            (a, normal()),
            (b, normal()),
            (deaf, with(|s| s.deaf = true)),
        ]);
        // 400 samples: two whole frames and a partial third.
        m.play(Some(player(vec![1_000; 400], false)));
        assert!(m.playing());
        let mut reports = Vec::new();
        for _ in 0..4 {
            reports.push(tick(&mut m, &[(a, 100), (b, 200), (deaf, 400)]).play_finished);
            if reports.len() <= 2 {
                assert_eq!(out(&m, a), constant(200 + 400 + 1_000));
                assert_eq!(out(&m, deaf), SILENCE);
            }
        }
        assert_eq!(reports, [false, false, true, false]);
        assert!(!m.playing());
        assert_eq!(out(&m, a), constant(600), "announcement over");
    }

    #[test]
    fn announcement_is_heard_over_the_wait_music() {
        let a = id(1);
        let mut m = Mixer::new();
        m.add(a, normal());
        m.set_wait_music(Some(player(vec![10; 1_600], true)));
        m.play(Some(player(vec![1_000; 320], false)));
        tick(&mut m, &[(a, 100)]);
        assert_eq!(out(&m, a), constant(1_010));
    }

    #[test]
    fn stopped_announcement_is_not_reported_and_empty_one_finishes_at_once() {
        let a = id(1);
        let mut m = started_room(&[(a, normal())]);
        m.play(Some(player(vec![1_000; 4_000], false)));
        assert!(!m.mix().play_finished);
        m.play(None);
        assert!(!m.mix().play_finished);
        m.play(Some(player(Vec::new(), false)));
        assert!(m.mix().play_finished);
        assert!(!m.playing());
    }

    #[test]
    fn room_mix_taps() {
        let (a, b, muted, listen) = (id(1), id(2), id(3), id(4));
        let mut m = started_room(&[
            (a, normal()),
            (b, with(|s| s.deaf = true)),
            (muted, with(|s| s.muted = true)),
            (listen, with(|s| s.role = Role::Listen)),
        ]);
        m.play(Some(player(vec![1_000; 1_600], false)));
        tick(&mut m, &[(a, 100), (b, 200), (muted, 400), (listen, 800)]);
        assert_eq!(*m.room_mix(), constant(100 + 200 + 1_000));
        let mut f = SILENCE;
        assert!(m.room_mix_without(a, &mut f));
        assert_eq!(f, constant(200 + 1_000));
        // b is deaf, but the rest of the room is still everyone else.
        assert!(m.room_mix_without(b, &mut f));
        assert_eq!(f, constant(100 + 1_000));
        assert!(m.room_mix_without(muted, &mut f));
        assert_eq!(f, constant(100 + 200 + 1_000));
        assert_eq!(m.input(a), Some(&constant(100)));
        let mut untouched = constant(7);
        assert!(!m.room_mix_without(id(99), &mut untouched));
        assert_eq!(untouched, constant(7));
    }

    #[test]
    fn remove_and_re_add_keep_every_participant_in_its_slot() {
        let ps: Vec<Uuid> = (1..=4).map(id).collect();
        let mut m = started_room(&ps.iter().map(|&p| (p, normal())).collect::<Vec<_>>());
        let value = |p: Uuid| 10 * (p.as_u128() as i16);
        let all = |ps: &[Uuid]| ps.iter().map(|&p| (p, value(p))).collect::<Vec<_>>();
        let total = |ps: &[Uuid]| ps.iter().map(|&p| value(p)).sum::<i16>();

        // Removing the first swaps the last into its slot.
        assert!(m.remove(ps[0]));
        assert!(!m.remove(ps[0]));
        assert_eq!(m.len(), 3);
        assert!(m.output(ps[0]).is_none() && m.input_mut(ps[0]).is_none());
        let rest = &ps[1..];
        tick(&mut m, &all(rest));
        for &p in rest {
            assert_eq!(out(&m, p), constant(total(rest) - value(p)), "{p}");
        }

        // Re-added: silent until the next tick, then mixed like the others.
        assert!(m.add(ps[0], normal()));
        assert_eq!(out(&m, ps[0]), SILENCE);
        tick(&mut m, &all(&ps));
        for &p in &ps {
            assert_eq!(out(&m, p), constant(total(&ps) - value(p)), "{p}");
        }

        // Adding twice updates the state only.
        assert!(!m.add(ps[0], with(|s| s.muted = true)));
        assert_eq!(m.len(), 4);
        assert!(m.state(ps[0]).unwrap().muted);
        let mut ids: Vec<Uuid> = m.ids().collect();
        ids.sort();
        assert_eq!(ids, ps);

        for p in ids {
            assert!(m.remove(p));
        }
        assert!(m.is_empty());
        m.mix();
        assert!(!m.set_state(ps[0], normal()));
    }

    #[test]
    fn unwritten_input_counts_as_silence() {
        let (a, b) = (id(1), id(2));
        let mut m = started_room(&[(a, normal()), (b, normal())]);
        tick(&mut m, &[(a, 100), (b, 200)]);
        assert_eq!(out(&m, b), constant(100));
        tick(&mut m, &[(b, 200)]);
        assert_eq!(out(&m, b), SILENCE, "a's last frame is not repeated");
        assert_eq!(m.input(a), Some(&SILENCE));
    }

    #[test]
    fn soft_clip_is_the_identity_below_the_knee() {
        for x in -KNEE..=KNEE {
            assert_eq!(i32::from(soft_clip(x)), x);
        }
    }

    #[test]
    fn soft_clip_is_monotonic_odd_and_bounded() {
        let mut prev = soft_clip(i32::MIN);
        assert!(prev <= -32_000);
        // Dense near the knee and up to a few full scales, then sparse to the i32 limits.
        let dense = -200_000..=200_000;
        let sparse = (i32::MIN..=i32::MAX).step_by(65_537);
        let mut xs: Vec<i32> = dense.chain(sparse).chain([i32::MAX]).collect();
        xs.sort_unstable();
        for x in xs {
            let y = soft_clip(x);
            assert!(y >= prev, "not monotonic at {x}");
            assert!(y.unsigned_abs() < 32_767);
            if x > i32::MIN {
                assert_eq!(soft_clip(-x), -y, "not odd at {x}");
            }
            prev = y;
        }
        assert!(soft_clip(i32::MAX) >= 32_766);
        // Above the knee it compresses: strictly below the input, and still rising.
        assert!(soft_clip(20_000) < 20_000 && soft_clip(20_000) > soft_clip(18_000));
    }

    #[test]
    fn fifty_full_scale_participants_do_not_wrap_around() {
        let ps: Vec<Uuid> = (1..=50).map(id).collect();
        let mut states: Vec<(Uuid, ParticipantState)> = ps.iter().map(|&p| (p, normal())).collect();
        let listener = id(100);
        states.push((listener, with(|s| s.role = Role::Listen)));
        let mut m = started_room(&states);
        m.beep();
        m.play(Some(player(vec![i16::MAX; 1_600], false)));
        for (v, sign) in [(i16::MAX, 1), (i16::MIN, -1)] {
            for &p in &ps {
                *m.input_mut(p).unwrap() = constant(v);
            }
            m.mix();
            for &p in ps.iter().chain([&listener]) {
                for &s in m.output(p).unwrap() {
                    assert!(i32::from(s) * sign > 30_000, "{p}: {s}");
                }
            }
            assert!(m.room_mix().iter().all(|&s| i32::from(s) * sign > 30_000));
        }
    }

    #[test]
    fn loud_sums_are_compressed_not_clipped_hard() {
        let (a, b, l) = (id(1), id(2), id(3));
        let mut m = started_room(&[
            (a, normal()),
            (b, normal()),
            (l, with(|s| s.role = Role::Listen)),
        ]);
        tick(&mut m, &[(a, 20_000), (b, 20_000)]);
        let y = m.output(l).unwrap()[0];
        assert_eq!(y, soft_clip(40_000));
        assert!(y > KNEE as i16 && y < i16::MAX);
        // A single loud speaker is compressed too, by less.
        assert_eq!(out(&m, a), constant(soft_clip(20_000)));
        assert!(soft_clip(20_000) > 19_000);
    }
}
