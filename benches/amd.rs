//! AMD cost per 20 ms frame (criterion): the detector's `push_frame` on speech-like audio with
//! noise (the expensive path: FFT, tone tracking, voice activity, decisions), and on digital
//! silence. Judge against the 20 ms budget times the number of live streams per core.

use criterion::{Criterion, Throughput, black_box};
use std::time::Duration;
use trunkline::amd::{AmdDetector, AmdParams};
use trunkline::media::frame::{FRAME_DURATION, FRAME_SAMPLES, Frame};

/// 50 s of a harmonic voice in syllables over noise (a greeting that never ends). A decided
/// call returns early, so the benches reset the detector whenever a final verdict is reached.
fn speech_like() -> Vec<Frame> {
    let mut rng = 0x9e37_79b9_u32;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng % 2_001) as f32 - 1_000.0
    };
    (0..2_500usize)
        .map(|i| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let t = (i * FRAME_SAMPLES + n) as f32 / 8_000.0;
                let f0 = 120.0 + 25.0 * (t * 2.3).sin();
                let env = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0).sin();
                let mut v = 0.05 * noise();
                for h in 1..10 {
                    v += env * 1_200.0 / h as f32
                        * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin();
                }
                *s = v.clamp(-32_768.0, 32_767.0) as i16;
            }
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let params = AmdParams {
        timeout: Duration::from_secs(60),
        ..AmdParams::default()
    };
    let t0 = trunkline::clock::test_origin();
    let mut g = c.benchmark_group("amd");
    g.throughput(Throughput::Elements(1));

    let frames = speech_like();
    let mut det = AmdDetector::new(params);
    let mut i = 0usize;
    g.bench_function("push_frame/speech", |b| {
        b.iter(|| {
            // A decided call returns early: start a new one so that every frame is analysed.
            if i == frames.len() || det.final_verdict().is_some() {
                i = 0;
                det.reset();
            }
            let v = det.push_frame(t0 + FRAME_DURATION * i as u32, black_box(&frames[i]));
            i += 1;
            black_box(v)
        })
    });

    let silence = [0i16; FRAME_SAMPLES];
    let mut det = AmdDetector::new(AmdParams {
        silence_timeout: Duration::from_secs(10),
        ..params
    });
    let mut i = 0u32;
    g.bench_function("push_frame/silence", |b| {
        b.iter(|| {
            if i == 400 || det.final_verdict().is_some() {
                i = 0;
                det.reset();
            }
            let v = det.push_frame(t0 + FRAME_DURATION * i, black_box(&silence));
            i += 1;
            black_box(v)
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
