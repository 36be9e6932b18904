//! Conference mixer cost per 20 ms tick (criterion): for 2 (a bridge), 3, 10 and 50
//! participants who all speak at once (speech-like harmonic sound over noise, each its own),
//! one tick = write every participant's input, `mix()`, read every output. Divide by the
//! number of participants for the per-leg cost, and judge against the 20 ms budget.

use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use trunkline::media::frame::{FRAME_SAMPLES, Frame};
use trunkline::media::mixer::Mixer;
use trunkline::media::room::ParticipantState;
use uuid::Uuid;

/// Frames of one speaker's speech-like audio (its own pitch, envelope and noise).
fn speech_like(seed: u32, frames: usize) -> Vec<Frame> {
    let mut rng = seed | 1;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng % 2_001) as f32 - 1_000.0
    };
    let pitch = 100.0 + (seed % 7) as f32 * 20.0;
    (0..frames)
        .map(|i| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let t = (i * FRAME_SAMPLES + n) as f32 / 8_000.0;
                let f0 = pitch + 25.0 * (t * 2.3).sin();
                let env = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0).sin();
                let mut v = 0.3 * noise();
                for h in 1..6 {
                    v += env * 1_500.0 / h as f32
                        * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin();
                }
                *s = v.clamp(-32_768.0, 32_767.0) as i16;
            }
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const FRAMES: usize = 50;
    let mut g = c.benchmark_group("mixer");
    for n in [2usize, 3, 10, 50] {
        let ids: Vec<Uuid> = (0..n as u128).map(|i| Uuid::from_u128(i + 1)).collect();
        let audio: Vec<Vec<Frame>> = (0..n)
            .map(|i| speech_like(i as u32 * 7_919, FRAMES))
            .collect();
        let mut m = Mixer::with_capacity(n);
        for &id in &ids {
            m.add(id, ParticipantState::default());
        }
        m.set_started(true);
        let mut t = 0usize;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tick", n), &n, |b, _| {
            b.iter(|| {
                for (id, frames) in ids.iter().zip(&audio) {
                    if let Some(f) = m.input_mut(*id) {
                        *f = frames[t];
                    }
                }
                black_box(m.mix());
                for id in &ids {
                    black_box(m.output(*id));
                }
                t = (t + 1) % FRAMES;
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
