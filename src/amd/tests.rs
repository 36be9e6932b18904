//! Unit tests of the detector on synthetic signals, in simulated time (frames at
//! `t0 + i * 20 ms`, no sleeping).

use super::*;
use crate::media::frame::{FRAME_SAMPLES, SAMPLE_RATE_HZ};
use std::f32::consts::PI;

const SR: f32 = SAMPLE_RATE_HZ as f32;

/// A deterministic speech-like signal: a glottal-ish harmonic series with a wandering pitch,
/// two moving formant bumps and syllables of 120..260 ms separated by short dips.
fn speech(ms: u32, seed: u32, amp: f32) -> Vec<f32> {
    let n = (ms as f32 * SR / 1000.0) as usize;
    let mut out = vec![0.0f32; n];
    let mut rng = seed.wrapping_mul(2_654_435_761).max(1);
    let mut rnd = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng % 10_000) as f32 / 10_000.0
    };
    let mut pos = 0usize;
    let mut phase = 0.0f32;
    while pos < n {
        let syl = ((0.12 + 0.14 * rnd()) * SR) as usize;
        let gap = ((0.03 + 0.05 * rnd()) * SR) as usize;
        let f0a = 100.0 + 120.0 * rnd();
        let f0b = f0a * (0.8 + 0.4 * rnd());
        let f1 = 400.0 + 500.0 * rnd();
        let f2 = 1_000.0 + 1_200.0 * rnd();
        for j in 0..syl.min(n - pos) {
            let x = j as f32 / syl as f32;
            let f0 = f0a + (f0b - f0a) * x;
            phase += 2.0 * PI * f0 / SR;
            let env = (PI * x).sin();
            let mut v = 0.0;
            for h in 1..=(3_400.0 / f0) as usize {
                let fh = f0 * h as f32;
                let g = 1.0 / (1.0 + ((fh - f1) / 150.0).powi(2))
                    + 0.5 / (1.0 + ((fh - f2) / 200.0).powi(2))
                    + 0.02;
                v += g * (phase * h as f32).sin();
            }
            out[pos + j] = amp * env * v / 3.0;
        }
        pos += syl + gap;
    }
    out
}

fn tone(ms: u32, parts: &[(f32, f32)]) -> Vec<f32> {
    let n = (ms as f32 * SR / 1000.0) as usize;
    (0..n)
        .map(|i| {
            parts
                .iter()
                .map(|(f, a)| a * (2.0 * PI * f * i as f32 / SR).sin())
                .sum()
        })
        .collect()
}

/// Uniform noise of amplitude `amp` (on top of the noise `run` adds): at 1.4 times that noise
/// it is about 5 dB over the floor, faint but not active.
fn faint(ms: u32, amp: f32) -> Vec<f32> {
    let mut rng = 987_654_321u32;
    (0..(ms as f32 * SR / 1000.0) as usize)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            amp * ((rng % 2_001) as f32 / 1_000.0 - 1.0)
        })
        .collect()
}

fn silence(ms: u32) -> Vec<f32> {
    vec![0.0; (ms as f32 * SR / 1000.0) as usize]
}

struct Run {
    verdicts: Vec<Verdict>,
    last: Verdict,
}

fn run(params: AmdParams, parts: &[Vec<f32>], noise: f32) -> Run {
    let samples: Vec<f32> = parts.concat();
    let mut det = AmdDetector::new(params);
    let t0 = crate::clock::test_origin();
    let mut verdicts = Vec::new();
    let mut rng = 12_345u32;
    for (i, chunk) in samples.chunks(FRAME_SAMPLES).enumerate() {
        let mut f = [0i16; FRAME_SAMPLES];
        for (o, s) in f.iter_mut().zip(chunk) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let n = noise * ((rng % 2_001) as f32 / 1_000.0 - 1.0);
            *o = (s + n).clamp(-32_768.0, 32_767.0) as i16;
        }
        if let Some(v) = det.push_frame(t0 + FRAME_DURATION * i as u32, &f) {
            verdicts.push(v);
        }
    }
    let last = det.finish(t0);
    Run { verdicts, last }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

#[test]
fn silence_is_unknown_after_silence_timeout() {
    let r = run(AmdParams::default(), &[silence(8_000)], 0.0);
    assert_eq!(r.last.answered_by, AnsweredBy::Unknown);
    assert_eq!(r.last.at, Duration::from_millis(5_000));
    assert_eq!(r.last.speech, Duration::ZERO);
}

#[test]
fn short_hello_then_silence_is_human_quickly() {
    let r = run(
        AmdParams::default(),
        &[silence(400), speech(600, 1, 6_000.0), silence(3_000)],
        30.0,
    );
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.verdicts);
    let after_end = ms(r.last.at) - 1_000;
    assert!(
        (400..=800).contains(&after_end),
        "decided {after_end} ms after speech"
    );
}

#[test]
fn a_pause_with_faint_sound_in_it_does_not_make_a_greeting_a_person() {
    // "Hi! ... you've reached": the pause after "Hi!" is longer than the human silence, but a
    // soft syllable under the line noise keeps it from being silence.
    let greeting = [
        silence(300),
        speech(400, 8, 6_000.0),
        faint(700, 42.0),
        speech(3_800, 9, 6_000.0),
        silence(3_000),
    ];
    let r = run(AmdParams::default(), &greeting, 30.0);
    assert_eq!(
        r.last.answered_by,
        AnsweredBy::MachineEndSilence,
        "{:?}",
        r.verdicts
    );
    // The same pause in silence is a person who said "Hi!" and waits.
    let r = run(
        AmdParams::default(),
        &[
            silence(300),
            speech(400, 8, 6_000.0),
            silence(700),
            speech(3_800, 9, 6_000.0),
        ],
        30.0,
    );
    assert_eq!(r.verdicts[0].answered_by, AnsweredBy::Human);
}

#[test]
fn a_person_in_a_noisy_room_is_still_decided_soon() {
    // Faint sound never stops: the person is decided 1.2 s later than on a quiet line.
    let r = run(
        AmdParams::default(),
        &[silence(400), speech(600, 1, 6_000.0), faint(4_000, 42.0)],
        30.0,
    );
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.verdicts);
    let after_end = ms(r.last.at) - 1_000;
    assert!(
        (1_500..=2_100).contains(&after_end),
        "decided {after_end} ms after speech"
    );
}

#[test]
fn louder_bursts_of_the_room_do_not_hold_a_person_back() {
    // After the hello the room is faint, with a burst every 400 ms about 9 dB under the person
    // (by amplitude): loud enough to be sound, not loud enough to be the talker. The person is
    // still decided, at most 1.2 s after the human silence (which grows with the bursts'
    // span); if the bursts counted as the talker the utterance would grow into a machine.
    let mut audio = [silence(400), speech(700, 1, 6_000.0)].concat();
    for k in 0..20 {
        audio.extend(speech(100, 40 + k, 2_100.0));
        audio.extend(faint(300, 42.0));
    }
    let r = run(AmdParams::default(), &[audio], 30.0);
    assert_eq!(r.verdicts.len(), 1, "{:?}", r.verdicts);
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.last);
    assert!(ms(r.last.at) <= 4_500, "{:?}", r.last);
}

#[test]
fn a_hang_up_in_a_pause_after_a_hello_is_a_person_even_with_faint_sound() {
    // The stream ends 800 ms into a pause (at least half the human silence) that held faint
    // sound: as in a silent pause, the person said hello and hung up.
    let r = run(
        AmdParams::default(),
        &[silence(400), speech(600, 1, 6_000.0), faint(800, 42.0)],
        30.0,
    );
    assert!(r.verdicts.is_empty(), "{:?}", r.verdicts);
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.last);
}

fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
    (0..a.len().max(b.len()))
        .map(|i| a.get(i).unwrap_or(&0.0) + b.get(i).unwrap_or(&0.0))
        .collect()
}

#[test]
fn a_person_in_a_busy_room_is_a_person() {
    // Other voices 16 dB under the person, from the answer on; the person says hello late.
    let room: Vec<f32> = (0..4).flat_map(|k| speech(2_000, 20 + k, 950.0)).collect();
    let person = [silence(1_500), speech(700, 1, 6_000.0), silence(5_800)].concat();
    let r = run(AmdParams::default(), &[mix(&person, &room)], 30.0);
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.verdicts);
    let after_end = ms(r.last.at) - 2_200;
    assert!(after_end <= 2_100, "decided {after_end} ms after speech");
    // A greeting in the same room is still a machine.
    let greeting = [silence(1_500), speech(4_500, 2, 6_000.0), silence(2_000)].concat();
    let r = run(AmdParams::default(), &[mix(&greeting, &room)], 30.0);
    assert!(r.last.answered_by.is_machine(), "{:?}", r.verdicts);
}

#[test]
fn long_greeting_with_beep_is_machine_end_beep_and_drop_waits_for_the_beep() {
    let r = run(
        AmdParams::default(),
        &[
            silence(300),
            speech(4_000, 2, 6_000.0),
            silence(300),
            tone(500, &[(1_000.0, 3_000.0)]),
            silence(3_000),
        ],
        30.0,
    );
    assert_eq!(r.verdicts.len(), 2, "{:?}", r.verdicts);
    assert_eq!(r.verdicts[0].answered_by, AnsweredBy::MachineStart);
    assert!(!r.verdicts[0].is_final);
    let v = r.verdicts[1];
    assert_eq!(v.answered_by, AnsweredBy::MachineEndBeep);
    assert!(v.is_final);
    let onset = ms(v.beep_onset.unwrap());
    assert!((onset - 4_600).abs() <= 100, "onset {onset}");
    assert!(ms(v.message_start.unwrap()) >= 5_100);
    assert_eq!(r.last, v);
}

#[test]
fn enable_mode_decides_machine_start_once() {
    let params = AmdParams {
        mode: AmdMode::Enable,
        ..AmdParams::default()
    };
    let r = run(
        params,
        &[silence(300), speech(4_000, 3, 6_000.0), silence(2_000)],
        30.0,
    );
    assert_eq!(r.verdicts.len(), 1);
    assert_eq!(r.last.answered_by, AnsweredBy::MachineStart);
    assert!(r.last.is_final);
    assert!(ms(r.last.at) <= 4_100, "{:?}", r.last);
}

#[test]
fn quiet_dual_tone_beep_after_speech() {
    let r = run(
        AmdParams::default(),
        &[
            speech(3_000, 4, 8_000.0),
            tone(300, &[(1_400.0, 700.0), (2_060.0, 700.0)]),
            silence(2_000),
        ],
        20.0,
    );
    assert_eq!(
        r.last.answered_by,
        AnsweredBy::MachineEndBeep,
        "{:?}",
        r.verdicts
    );
    assert!((ms(r.last.beep_onset.unwrap()) - 3_000).abs() <= 100);
}

#[test]
fn greeting_without_beep_ends_in_silence() {
    let r = run(
        AmdParams::default(),
        &[speech(4_500, 5, 6_000.0), silence(4_000)],
        30.0,
    );
    assert_eq!(r.last.answered_by, AnsweredBy::MachineEndSilence);
    let drop = ms(r.last.message_start.unwrap());
    assert!((5_900..=6_300).contains(&drop), "{drop}");
    assert_eq!(r.last.beep_onset, None);
}

#[test]
fn fax_tones_are_fax() {
    let cng = run(
        AmdParams::default(),
        &[
            tone(500, &[(1_100.0, 5_000.0)]),
            silence(3_000),
            tone(500, &[(1_100.0, 5_000.0)]),
        ],
        10.0,
    );
    assert_eq!(cng.last.answered_by, AnsweredBy::Fax);
    assert!(ms(cng.last.at) < 1_000);
    let ced = run(
        AmdParams::default(),
        &[silence(200), tone(3_000, &[(2_100.0, 5_000.0)])],
        10.0,
    );
    assert_eq!(ced.last.answered_by, AnsweredBy::Fax);
    assert!(ms(ced.last.at) < 1_100);
}

#[test]
fn ringback_before_hello_is_human() {
    let r = run(
        AmdParams::default(),
        &[
            tone(2_000, &[(440.0, 3_000.0), (480.0, 3_000.0)]),
            silence(800),
            speech(500, 6, 6_000.0),
            silence(3_000),
        ],
        20.0,
    );
    assert_eq!(r.last.answered_by, AnsweredBy::Human, "{:?}", r.verdicts);
    assert_eq!(r.last.beep_onset, None);
}

#[test]
fn hang_up_mid_greeting_and_bad_signals_do_not_panic() {
    let r = run(AmdParams::default(), &[speech(1_500, 7, 6_000.0)], 0.0);
    assert!(matches!(
        r.last.answered_by,
        AnsweredBy::Unknown | AnsweredBy::Human
    ));
    // Clipping and a DC offset.
    let clipped: Vec<f32> = speech(4_000, 8, 90_000.0)
        .into_iter()
        .map(|s| s + 9_000.0)
        .collect();
    let r = run(AmdParams::default(), &[clipped, silence(3_000)], 0.0);
    assert!(r.last.answered_by.is_machine(), "{:?}", r.last);
    // Nothing at all.
    let mut det = AmdDetector::new(AmdParams::default());
    assert_eq!(
        det.finish(crate::clock::test_origin()).answered_by,
        AnsweredBy::Unknown
    );
}

#[test]
fn reset_gives_the_same_answer_again() {
    let audio = [speech(700, 9, 6_000.0), silence(2_000)].concat();
    let mut det = AmdDetector::new(AmdParams::default());
    let t0 = crate::clock::test_origin();
    let mut answers = Vec::new();
    for _ in 0..2 {
        det.reset();
        let mut got = None;
        for chunk in audio.chunks_exact(FRAME_SAMPLES) {
            let mut f = [0i16; FRAME_SAMPLES];
            for (o, s) in f.iter_mut().zip(chunk) {
                *o = *s as i16;
            }
            if let Some(v) = det.push_frame(t0, &f) {
                got = Some(v);
            }
        }
        answers.push(got.expect("a verdict"));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].answered_by, AnsweredBy::Human);
}

#[test]
fn verdict_names_are_twilio_snake_case() {
    assert_eq!(AnsweredBy::MachineEndBeep.as_str(), "machine_end_beep");
    assert_eq!(
        serde_json::to_string(&AnsweredBy::MachineEndOther).unwrap(),
        "\"machine_end_other\""
    );
    assert_eq!(AmdMode::DetectMessageEnd.as_str(), "detect_message_end");
}
