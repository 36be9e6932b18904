//! No allocation per frame in steady state (STYLE.md sec. 4): the AMD detector runs a minute
//! of varied audio (speech-like sound, beeps, noise, silence, lost frames) under a counting
//! global allocator, and must not allocate once constructed. `reset` (a new call on the same
//! detector) must not allocate either.
//!
//! One test in this file on purpose: the allocator's counters are process-wide, so no other
//! test may run beside it.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::time::Duration;
use trunkline::amd::{AmdDetector, AmdMode, AmdParams};
use trunkline::media::frame::{FRAME_DURATION, FRAME_SAMPLES, Frame};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A minute of deterministic audio: syllables of a harmonic voice, pauses, a beep after
/// 20 s, noise throughout and every 37th frame lost.
fn audio() -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut rng = 0x2545_f491_u32;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng % 2_001) as f32 - 1_000.0
    };
    for i in 0..3_000usize {
        let mut f = [0i16; FRAME_SAMPLES];
        let t_frame = i % 500;
        for (n, s) in f.iter_mut().enumerate() {
            let t = (i * FRAME_SAMPLES + n) as f32 / 8_000.0;
            let mut v = 0.02 * noise();
            if (1_000..1_025).contains(&i) {
                v += 3_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * t).sin();
            } else if t_frame % 12 < 9 {
                let f0 = 110.0 + 30.0 * (t * 3.0).sin();
                let env = (std::f32::consts::PI * (t_frame % 12) as f32 / 9.0).sin();
                for h in 1..12 {
                    v += env * 1_500.0 / h as f32
                        * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin();
                }
            }
            *s = v.clamp(-32_768.0, 32_767.0) as i16;
        }
        if i % 37 == 0 {
            f = [0; FRAME_SAMPLES];
        }
        frames.push(f);
    }
    frames
}

#[test]
fn amd_push_frame_and_reset_do_not_allocate() {
    let frames = audio();
    let t0 = trunkline::clock::test_origin();
    let mut detectors = [
        AmdDetector::new(AmdParams {
            timeout: Duration::from_secs(60),
            ..AmdParams::default()
        }),
        AmdDetector::new(AmdParams {
            mode: AmdMode::Enable,
            ..AmdParams::default()
        }),
    ];
    let mut verdicts = 0usize;
    let region = Region::new(GLOBAL);
    for det in detectors.iter_mut() {
        for round in 0..2 {
            det.reset();
            for (i, f) in frames.iter().enumerate() {
                let now = t0 + FRAME_DURATION * i as u32;
                if det.push_frame(now, f).is_some() {
                    verdicts += 1;
                }
                if det.final_verdict().is_some() {
                    // Start another call on the same detector: keeps the analysis busy.
                    det.reset();
                }
            }
            let _ = det.finish(t0);
            let _ = round;
        }
    }
    let stats = region.change();
    assert!(verdicts > 0, "the audio must reach verdicts");
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "AMD allocated in steady state: {stats:?}"
    );
}
