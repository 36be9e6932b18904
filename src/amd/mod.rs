//! Answering-machine detection: a pure streaming detector fed 20 ms frames (pure).
//!
//! The same [`AmdDetector`] serves live calls (the media tick pushes each far-end frame) and
//! `trunkline amd FILE...` ([`cli`]). It never reads a clock: stream time is counted from the
//! frames pushed (frame `i` covers `i * 20 ms .. (i + 1) * 20 ms`), so a verdict's times are
//! reproducible from the audio alone. Nothing allocates per frame (`tests/no_alloc.rs`).
//!
//! # How it decides
//!
//! Per frame ([`tones`], [`vad`]): band energy, an adaptive noise floor and voice activity; a
//! 256-point spectrum whose two strongest peaks tell a tone (sine, dual, square-ish, chime
//! note) from voiced speech by their *purity* and, over frames, by the stability of their
//! frequency and level. Active frames that are not tonal are speech; a tonal stretch that is
//! not steady (a high-pitched "Hi" can be tonal throughout) is speech too, unless all its
//! energy sits where ringback lives.
//!
//! Over frames, with the parameters of [`AmdParams`]:
//! - **human**: the first utterance (from the first speech to the last, gaps included) stays
//!   shorter than `speech_threshold` and is followed by silence of `speech_end_threshold`
//!   after up to 0.7 s of speech, growing to twice that after 1.5 s (the longer someone
//!   speaks, the more a pause looks like a sentence gap of a greeting). A pause that holds
//!   faint sound (two frames in a row a few dB over the noise floor: a soft syllable under
//!   line noise) does not count as that silence, for at most 1.2 s more, so that a greeting's
//!   "Hi! ... you've reached" in a noisy line is not a person, while a person in a noisy room
//!   is still decided. The talker is the loudest voice of the first utterance: sound more than
//!   12 dB under its loudest short-term level is the room behind them (other voices, a
//!   television) and neither extends the utterance nor breaks the silence (it is faint, so
//!   the person is decided 1.2 s later than on a quiet line; that limit counts from the last
//!   sound within 9 dB of the talker's loudest, so louder bursts of the room do not hold the
//!   decision back), and a voice 8 dB louder than everything before restarts the utterance
//!   (the room was heard before the person spoke);
//! - **machine**: the utterance reaches `speech_threshold`, or a beep follows speech;
//! - **beep**: a tone segment (300..2,600 Hz) with a stable run of at least 120 ms (200 ms
//!   below 400 Hz, where voices have strong harmonics) whose frequency and level hold steady,
//!   with high purity, followed by 200 ms of no speech (400 ms after a short tone, in case it
//!   was one of the message-count beeps that precede the long tone; the latest beep wins, and
//!   a tone that is not a beep cancels the candidate before it). The beep ends when the power
//!   at its frequency falls back to the noise, so that a fading tail is not talked over;
//! - **fax**: CNG (1,100 Hz) or CED/ANSam (2,100 Hz, after 0.7 s of it) before any speech
//!   ([`fax`]);
//! - **end of greeting**: a beep, or `greeting_end_silence` of silence after the greeting.
//!
//! Tones heard before any speech (ringback, hum, special information tones) are ignored, except
//! fax tones: a mailbox that beeps without any greeting ends as `unknown` or by timeout.
//!
//! # Verdicts and when they come (see [`AnsweredBy`])
//!
//! `push_frame` returns `Some` at most twice per call: in `detect_message_end` mode a machine
//! may first be reported as an *interim* `machine_start` ([`Verdict::is_final`] = false), and
//! later as a final `machine_end_*`. Every other verdict is final, and after a final verdict
//! `push_frame` returns `None` until [`AmdDetector::reset`]. [`AmdDetector::finish`] (the
//! stream ended, e.g. a hang-up) always returns the final verdict.
//!
//! # Known limits
//!
//! Timing cannot tell a person who speaks for longer than `speech_threshold` and then waits
//! from a short greeting that ends without a beep: both are machines here, as with Twilio.
//! A greeting whose first phrase is short and followed by a truly silent pause longer than the
//! human silence ("Hello. ... You have reached ...") is called human. Beeps quieter than the
//! noise around them are missed and the greeting then ends by silence. Other talkers less than
//! 12 dB under the person are taken for the person, whose utterance then seems not to end.

pub mod cli;
pub mod fax;
pub mod params;
pub mod tones;
pub mod vad;

pub use params::{AmdMode, AmdParamError, AmdParams};

use crate::media::frame::{FRAME_DURATION, Frame};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tones::{SpectralFrontEnd, ToneEvent, ToneSegment, ToneTracker};
use vad::Vad;

/// Who (or what) answered, with Twilio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// A person. Final; emitted once the first utterance is followed by enough silence, in
    /// both modes.
    Human,
    /// A machine greeting. In `enable` mode: final, emitted as soon as the greeting is long
    /// enough or a beep is heard. In `detect_message_end` mode: interim (not final), emitted
    /// when the greeting is long enough; a `machine_end_*` verdict follows.
    MachineStart,
    /// `detect_message_end` only, final: the greeting ended with a beep; `beep_onset`,
    /// `beep_end` and `message_start` are set.
    MachineEndBeep,
    /// `detect_message_end` only, final: the greeting ended in silence without a beep;
    /// `message_start` is set.
    MachineEndSilence,
    /// `detect_message_end` only, final: a machine whose greeting had not ended when the
    /// analysis timed out or the stream ended.
    MachineEndOther,
    /// A fax machine (CNG or CED/ANSam before any speech). Final, in both modes.
    Fax,
    /// Undecided: no speech within `silence_timeout`, the `timeout` ran out, or the stream
    /// ended first. Final.
    Unknown,
}

impl AnsweredBy {
    /// The snake_case name (as in JSON and webhooks).
    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::MachineStart => "machine_start",
            AnsweredBy::MachineEndBeep => "machine_end_beep",
            AnsweredBy::MachineEndSilence => "machine_end_silence",
            AnsweredBy::MachineEndOther => "machine_end_other",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Unknown => "unknown",
        }
    }

    /// Whether this is one of the machine verdicts.
    pub fn is_machine(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineStart
                | AnsweredBy::MachineEndBeep
                | AnsweredBy::MachineEndSilence
                | AnsweredBy::MachineEndOther
        )
    }
}

/// A verdict and the stream times that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Who answered.
    pub answered_by: AnsweredBy,
    /// Confidence in 0..=1.
    pub confidence: f32,
    /// Stream time at which the verdict was reached (end of the last frame used).
    pub at: Duration,
    /// Stream time at which the beep started, when there was one.
    pub beep_onset: Option<Duration>,
    /// Stream time by which the beep had ended, when there was one.
    pub beep_end: Option<Duration>,
    /// Earliest stream time at which a voicemail drop may start (`machine_end_beep` and
    /// `machine_end_silence`); never before `beep_end` plus the guard, never before `at`.
    pub message_start: Option<Duration>,
    /// Total speech heard up to the verdict (zero means the line was silent or only toned).
    pub speech: Duration,
    /// False only for the interim `machine_start` of `detect_message_end` mode.
    pub is_final: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Listening,
    MachineGreeting,
    Done,
}

/// A tone segment waiting for the silence after it that makes it a beep.
#[derive(Debug, Clone, Copy)]
struct PendingBeep {
    seg: ToneSegment,
    deadline: u32,
    speech_frames: u32,
    /// Frames added to the beep after the tracker lost it (its fading tail).
    tail_frames: u32,
    /// Another tone started before the deadline: if it is not a beep itself, neither was
    /// this one (hum broken up by lost frames, music).
    interrupted: bool,
}

/// Consecutive speech frames that confirm an onset (shorter bursts are clicks).
const ONSET_FRAMES: u32 = 3;
/// Quiet after a tone segment that confirms a beep, in frames.
const BEEP_POST_FRAMES: u32 = 10;
/// The same after a short tone (less than [`SHORT_TONE_FRAMES`]).
const SHORT_BEEP_POST_FRAMES: u32 = 20;
const SHORT_TONE_FRAMES: u32 = 15;
/// Shortest stable run of a beep, in frames (120 ms).
const BEEP_MIN_RUN: u32 = 6;
/// Shortest stable run of a low beep (below [`LOW_BEEP_HZ`]), where voices have strong
/// harmonics and nasal murmurs, in frames (200 ms).
const LOW_BEEP_MIN_RUN: u32 = 10;
const LOW_BEEP_HZ: f32 = 400.0;
/// Longest stable run of a beep, in frames (3 s); anything longer is background (hum).
const BEEP_MAX_RUN: u32 = 150;
/// A steady run this long (300 ms) is a tone even if its two frequencies happen to sit in a
/// harmonic ratio (a dual-tone beep at 4:3); voices do not hold a pitch that steadily.
const LONG_STEADY_RUN: u32 = 15;
/// Runs shorter than this (200 ms) need [`SHORT_RUN_PURITY`] and [`SHORT_RUN_STEADY`].
const SHORT_RUN: u32 = 10;
const SHORT_RUN_PURITY: f32 = 0.93;
const SHORT_RUN_STEADY: f32 = 0.85;
/// A beep's tail counts while the power at its frequency is this many times the noise (6 dB).
const TAIL_PRESENCE: f32 = 4.0;
/// At most this many tail frames (500 ms) are added to a beep.
const MAX_TAIL_FRAMES: u32 = 25;
/// Mean purity of a beep.
const BEEP_MIN_PURITY: f32 = 0.8;
/// Speech frames inside the post-tone window that cancel a beep candidate.
const BEEP_CANCEL_SPEECH: u32 = 3;
/// Smoothing of the short-term level: each frame keeps this share of the last level.
const LEVEL_KEEP: f32 = 0.6;
/// Sound this far (dB) under the loudest level of the first utterance is the room behind the
/// talker (other voices, a television), not the talker.
const BACKGROUND_DB: f32 = 12.0;
/// Sound within this many dB of the loudest level of the first utterance is surely the talker.
const TALKER_DB: f32 = 9.0;
/// A frame this much louder (dB) than the loudest short-term level heard so far restarts the
/// first utterance: what came before was the room. (The frame's own energy, as the smoothed
/// level would climb in steps and raise the reference with it.)
const LOUDER_TALKER_DB: f32 = 8.0;
/// ... once the utterance so far is at least this long (200 ms).
const LOUDER_TALKER_MIN_FRAMES: u32 = 10;
/// Consecutive faint frames that keep a pause after the first speech from being silence.
const FAINT_FRAMES: u32 = 2;
/// How much longer than the human silence a pause with faint sound in it may last before the
/// person is decided anyway (1.2 s: noisy rooms are faint all the time).
const FAINT_EXTRA_FRAMES: u32 = 60;

/// The streaming answering-machine detector. One per call; [`AmdDetector::reset`] reuses it.
#[derive(Debug)]
pub struct AmdDetector {
    params: AmdParams,
    front: SpectralFrontEnd,
    vad: Vad,
    tones: ToneTracker,
    frame: u32,
    phase: Phase,
    first_speech: Option<u32>,
    last_speech: u32,
    speech_frames: u32,
    speech_run: u32,
    quiet_run: u32,
    pending: Option<PendingBeep>,
    final_verdict: Option<Verdict>,
    /// Consecutive faint frames (see [`vad::FAINT_DB`]).
    faint_run: u32,
    /// Frames since the talker was last heard (a sounding frame within [`TALKER_DB`] of the
    /// loudest level): faint sound and the room's louder bursts do not restart it.
    pause_run: u32,
    /// Short-term power of the line (linear, smoothed over ~3 frames).
    level_pow: f32,
    /// The loudest short-term level of the first utterance (dBFS): the near talker.
    fg_db: f32,
}

fn frames_of(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / FRAME_DURATION.as_millis()).unwrap_or(u32::MAX)
}

fn time_of(frames: u32) -> Duration {
    FRAME_DURATION * frames
}

impl AmdDetector {
    /// A detector for one call. `params` should have passed [`AmdParams::validate`]; values out
    /// of range still work, they are just not sensible.
    pub fn new(params: AmdParams) -> Self {
        AmdDetector {
            params,
            front: SpectralFrontEnd::new(),
            vad: Vad::default(),
            tones: ToneTracker::default(),
            frame: 0,
            phase: Phase::Listening,
            first_speech: None,
            last_speech: 0,
            speech_frames: 0,
            speech_run: 0,
            quiet_run: 0,
            pending: None,
            final_verdict: None,
            faint_run: 0,
            pause_run: 0,
            level_pow: 0.0,
            fg_db: f32::NEG_INFINITY,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &AmdParams {
        &self.params
    }

    /// Forgets the call (stream time restarts at zero); keeps the buffers.
    pub fn reset(&mut self) {
        self.front.reset();
        self.vad.reset();
        self.tones.reset();
        self.frame = 0;
        self.phase = Phase::Listening;
        self.first_speech = None;
        self.last_speech = 0;
        self.speech_frames = 0;
        self.speech_run = 0;
        self.quiet_run = 0;
        self.pending = None;
        self.final_verdict = None;
        self.faint_run = 0;
        self.pause_run = 0;
        self.level_pow = 0.0;
        self.fg_db = f32::NEG_INFINITY;
    }

    /// Stream time consumed so far.
    pub fn stream_time(&self) -> Duration {
        time_of(self.frame)
    }

    /// The final verdict, once reached.
    pub fn final_verdict(&self) -> Option<&Verdict> {
        self.final_verdict.as_ref()
    }

    /// Feeds the next 20 ms frame of the far end. `now` is accepted for the sans-IO shape but
    /// not used: stream time comes from the frame count. Returns a verdict when one is reached
    /// (see the module docs for which and when).
    pub fn push_frame(&mut self, _now: Instant, frame: &Frame) -> Option<Verdict> {
        if self.phase == Phase::Done {
            return None;
        }
        let i = self.frame;
        self.frame += 1;
        let absorb = self
            .tones
            .current_run()
            .is_some_and(|(_, len)| len > BEEP_MAX_RUN);
        let learn =
            absorb || (!self.vad.active() && !self.tones.active() && self.pending.is_none());
        let feat = self.front.analyze(frame, learn);
        let active = self.vad.push(feat.energy_db, feat.digital_silence);
        self.faint_run = if self.vad.faint() {
            self.faint_run + 1
        } else {
            0
        };
        self.level_pow =
            LEVEL_KEEP * self.level_pow + (1.0 - LEVEL_KEEP) * 10f32.powf(feat.energy_db / 10.0);
        let level_db = 10.0 * self.level_pow.max(1e-12).log10();
        let event = self.tones.push(i, feat.tone.as_ref());
        tracing::trace!(i, feat.energy_db, floor = self.vad.floor_db(), active, tone = ?feat.tone, "amd frame");
        // Active sound that is not part of a tone is speech (or music, noise bursts...).
        let is_speech = active && feat.tone.is_none() && !self.tones.active();
        // The near talker is the loudest one: a much louder voice after a while restarts the
        // first utterance, and sound well under it is the room behind them.
        let listening_to_someone = self.first_speech.is_some() && self.phase == Phase::Listening;
        if listening_to_someone
            && active
            && feat.energy_db >= self.fg_db + LOUDER_TALKER_DB
            && self.span_frames() >= LOUDER_TALKER_MIN_FRAMES
        {
            tracing::trace!(
                i,
                level_db,
                fg = self.fg_db,
                "amd louder talker: utterance restarts"
            );
            self.first_speech = Some(i);
            self.speech_frames = 0;
            self.fg_db = level_db;
        }
        let background = listening_to_someone && active && level_db < self.fg_db - BACKGROUND_DB;

        // Speech timing. Onsets need non-tonal speech (so ringback is not a word); once
        // someone is speaking, tonal frames (sustained vowels, a beep) are sound too.
        if is_speech {
            self.speech_run += 1;
            if self.speech_run >= ONSET_FRAMES && self.first_speech.is_none() {
                self.first_speech = Some(i + 1 - ONSET_FRAMES);
                self.speech_frames += ONSET_FRAMES - 1;
            }
            if let Some(p) = self.pending.as_mut() {
                p.speech_frames += 1;
                if p.speech_frames >= BEEP_CANCEL_SPEECH {
                    self.pending = None;
                }
            }
        } else {
            self.speech_run = 0;
        }
        let sounding = self.first_speech.is_some()
            && !background
            && ((is_speech && (self.speech_run >= 2 || self.quiet_run < 10))
                || (active && !is_speech));
        if sounding && self.phase == Phase::Listening {
            self.fg_db = self.fg_db.max(level_db);
        }
        if sounding {
            self.last_speech = i;
            self.speech_frames += u32::from(is_speech);
            self.quiet_run = 0;
            // Only the talker's own loud sound restarts the pause count that caps the wait:
            // louder bursts of a busy room are sounding, but not the talker.
            if level_db >= self.fg_db - TALKER_DB {
                self.pause_run = 0;
            } else {
                self.pause_run += 1;
            }
        } else {
            self.pause_run += 1;
            let faint_pause = self.first_speech.is_some()
                && self.phase == Phase::Listening
                && self.faint_run >= FAINT_FRAMES;
            self.quiet_run = if faint_pause { 0 } else { self.quiet_run + 1 };
        }

        // Tones.
        if let (ToneEvent::Started, Some(p)) = (event, self.pending.as_mut()) {
            p.interrupted = true;
        }
        if let ToneEvent::Ended(seg) = event {
            if let Some(v) = self.on_tone_ended(&seg) {
                return Some(v);
            }
        }
        if self.first_speech.is_none() {
            if let Some((hz, len)) = self.tones.current_run() {
                if fax::ced_in_progress(hz, len) {
                    return Some(self.conclude(AnsweredBy::Fax, 0.95, None));
                }
            }
        }
        // A beep's fading tail: the beep has not ended while its frequency still stands out.
        if let Some(p) = self.pending.as_mut() {
            if !self.tones.active()
                && p.tail_frames < MAX_TAIL_FRAMES
                && p.seg.last_frame + 1 == i
                && self.front.presence(p.seg.run_freq_hz) >= TAIL_PRESENCE
            {
                p.seg.last_frame = i;
                p.deadline += 1;
                p.tail_frames += 1;
            }
        }
        if let Some(p) = self.pending {
            if i >= p.deadline && !self.tones.active() {
                return Some(self.beep_verdict(&p.seg));
            }
        }
        self.decide(i)
    }

    fn on_tone_ended(&mut self, seg: &ToneSegment) -> Option<Verdict> {
        tracing::trace!(?seg, "amd tone segment");
        if self.first_speech.is_none() {
            if let Some(kind) = fax::classify(seg) {
                let conf = match kind {
                    fax::FaxTone::Ced => 0.95,
                    fax::FaxTone::Cng => 0.9,
                };
                return Some(self.conclude(AnsweredBy::Fax, conf, None));
            }
            // A tonal stretch that is not steady was a voice (a high-pitched "Hi" can be tonal
            // from start to end): it starts the first utterance after the fact.
            let ringback = seg.ringback_frames * 10 >= seg.tonal_frames * 7;
            if seg.tonal_frames >= ONSET_FRAMES && !is_steady(seg) && !ringback {
                self.first_speech = Some(seg.start_frame);
                self.last_speech = seg.last_frame;
                self.speech_frames += seg.tonal_frames;
                self.quiet_run = (self.frame - 1).saturating_sub(seg.last_frame);
                self.pause_run = self.quiet_run;
            }
            // Ringback, hum and other tones before anyone spoke are not beeps.
            return None;
        }
        if is_beep(seg) && self.first_speech.is_some() {
            let post = if seg.span_frames() < SHORT_TONE_FRAMES {
                SHORT_BEEP_POST_FRAMES
            } else {
                BEEP_POST_FRAMES
            };
            // The latest tone wins: message-count beeps come before the long tone.
            self.pending = Some(PendingBeep {
                seg: *seg,
                deadline: seg.last_frame + post,
                speech_frames: 0,
                tail_frames: 0,
                interrupted: false,
            });
        } else if seg.tonal_frames >= 4 && self.pending.is_some_and(|p| p.interrupted) {
            self.pending = None;
        }
        None
    }

    fn span_frames(&self) -> u32 {
        match self.first_speech {
            Some(f) => self.last_speech.saturating_sub(f) + 1,
            None => 0,
        }
    }

    /// Silence (frames) that makes the first utterance a person's: `speech_end_threshold`
    /// after an utterance of up to 0.7 s ("Hello?"), growing linearly to twice that after 1.5 s
    /// and longer ("Hi, this is Sam." followed by a sentence gap is how greetings go on).
    fn human_silence_frames(&self) -> u32 {
        let base = frames_of(self.params.speech_end_threshold) as f32;
        let span = self.span_frames() as f32 * FRAME_DURATION.as_secs_f32();
        let x = ((span - 0.7) / 0.8).clamp(0.0, 1.0);
        (base * (1.0 + x)).round() as u32
    }

    fn decide(&mut self, i: u32) -> Option<Verdict> {
        let now_frames = i + 1;
        let tone_busy = self.tones.active() || self.pending.is_some();
        match self.phase {
            Phase::Listening => {
                if self.first_speech.is_some() {
                    let thr = frames_of(self.params.speech_threshold);
                    let span = self.span_frames();
                    if span >= thr {
                        return Some(self.machine_by_length());
                    }
                    let silence = self.human_silence_frames();
                    let silent =
                        self.quiet_run >= silence || self.pause_run >= silence + FAINT_EXTRA_FRAMES;
                    if silent && !tone_busy {
                        let short = 1.0 - span as f32 / thr.max(1) as f32;
                        return Some(self.conclude(AnsweredBy::Human, 0.6 + 0.35 * short, None));
                    }
                } else if now_frames >= frames_of(self.params.silence_timeout) && !tone_busy {
                    return Some(self.conclude(AnsweredBy::Unknown, 0.8, None));
                }
                if now_frames >= frames_of(self.params.timeout) {
                    return Some(self.conclude(AnsweredBy::Unknown, 0.5, None));
                }
                None
            }
            Phase::MachineGreeting => {
                if self.quiet_run >= frames_of(self.params.greeting_end_silence) && !tone_busy {
                    return Some(self.conclude(
                        AnsweredBy::MachineEndSilence,
                        0.75,
                        Some(Duration::ZERO),
                    ));
                }
                if now_frames >= frames_of(self.params.timeout) {
                    return Some(self.conclude(AnsweredBy::MachineEndOther, 0.6, None));
                }
                None
            }
            Phase::Done => None,
        }
    }

    fn machine_by_length(&mut self) -> Verdict {
        let conf = 0.8;
        match self.params.mode {
            AmdMode::Enable => self.conclude(AnsweredBy::MachineStart, conf, None),
            AmdMode::DetectMessageEnd => {
                self.phase = Phase::MachineGreeting;
                let mut v = self.verdict(AnsweredBy::MachineStart, conf);
                v.is_final = false;
                v
            }
        }
    }

    fn beep_verdict(&mut self, seg: &ToneSegment) -> Verdict {
        let conf = (0.8 + (seg.mean_purity - BEEP_MIN_PURITY).max(0.0)).min(0.99);
        let answered = match self.params.mode {
            AmdMode::Enable => AnsweredBy::MachineStart,
            AmdMode::DetectMessageEnd => AnsweredBy::MachineEndBeep,
        };
        self.pending = None;
        let mut v = self.verdict(answered, conf);
        // The analysis window reaches 12 ms back and a fading tail may go unseen: one frame
        // more than the last tonal frame.
        let end = time_of(seg.last_frame + 2);
        // Speech that ran straight into the beep may have joined its segment: the beep starts
        // with the first steady run.
        v.beep_onset = Some(time_of(seg.steady_start_frame.unwrap_or(seg.start_frame)));
        v.beep_end = Some(end);
        v.message_start = Some((end + self.params.beep_guard).max(v.at));
        self.phase = Phase::Done;
        self.final_verdict = Some(v);
        v
    }

    fn verdict(&self, answered_by: AnsweredBy, confidence: f32) -> Verdict {
        Verdict {
            answered_by,
            confidence: confidence.clamp(0.0, 1.0),
            at: time_of(self.frame),
            beep_onset: None,
            beep_end: None,
            message_start: None,
            speech: time_of(self.speech_frames),
            is_final: true,
        }
    }

    /// A final verdict; `message_after` = `Some(d)` sets `message_start` to `at + d`.
    fn conclude(
        &mut self,
        answered_by: AnsweredBy,
        confidence: f32,
        message_after: Option<Duration>,
    ) -> Verdict {
        let mut v = self.verdict(answered_by, confidence);
        v.message_start = message_after.map(|d| v.at + d);
        self.phase = Phase::Done;
        self.pending = None;
        self.final_verdict = Some(v);
        v
    }

    /// The stream ended (hang-up, end of file): returns the final verdict, reaching one from
    /// what was heard if none was reached yet: a short first utterance followed by a pause of
    /// at least half the human silence (faint sound in it or not) is a person.
    pub fn finish(&mut self, _now: Instant) -> Verdict {
        if let Some(v) = self.final_verdict {
            return v;
        }
        if self.tones.active() {
            let seg = self.tones.finish();
            if self.first_speech.is_none() && fax::classify(&seg).is_some() {
                return self.conclude(AnsweredBy::Fax, 0.8, None);
            }
            if is_beep(&seg) && self.first_speech.is_some() {
                self.pending = Some(PendingBeep {
                    seg,
                    deadline: 0,
                    speech_frames: 0,
                    tail_frames: 0,
                    interrupted: false,
                });
            }
        }
        if let Some(p) = self.pending {
            return self.beep_verdict(&p.seg);
        }
        match self.phase {
            Phase::MachineGreeting => self.conclude(AnsweredBy::MachineEndOther, 0.6, None),
            _ if self.first_speech.is_some()
                && self.span_frames() < frames_of(self.params.speech_threshold)
                && self.pause_run * 2 >= self.human_silence_frames() =>
            {
                self.conclude(AnsweredBy::Human, 0.55, None)
            }
            _ => self.conclude(AnsweredBy::Unknown, 0.5, None),
        }
    }
}

/// Whether a tone segment held its frequency and level like a generated tone.
fn is_steady(seg: &ToneSegment) -> bool {
    seg.run_freq_steady >= tones::STEADY_SHARE && seg.run_level_steady >= tones::STEADY_SHARE
}

/// Whether a finished tone segment has the shape of a beep.
fn is_beep(seg: &ToneSegment) -> bool {
    let min_run = if seg.run_freq_hz < LOW_BEEP_HZ {
        LOW_BEEP_MIN_RUN
    } else {
        BEEP_MIN_RUN
    };
    // A short run must be cleaner: vowels of steady synthetic voices reach 7 or 8 frames.
    let clean = seg.longest_run >= SHORT_RUN
        || (seg.mean_purity >= SHORT_RUN_PURITY
            && seg.run_freq_steady >= SHORT_RUN_STEADY
            && seg.run_level_steady >= SHORT_RUN_STEADY);
    clean
        && (min_run..=BEEP_MAX_RUN).contains(&seg.longest_run)
        && seg.mean_purity >= BEEP_MIN_PURITY
        && is_steady(seg)
        && (seg.harmonic_frames * 2 < seg.tonal_frames
            || seg.longest_run >= LONG_STEADY_RUN
            || (seg.longest_run >= SHORT_RUN
                && seg.mean_purity >= SHORT_RUN_PURITY
                && seg.run_freq_steady >= 0.9
                && seg.run_level_steady >= 0.9))
}

#[cfg(test)]
mod tests;
