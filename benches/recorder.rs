//! Recorder cost (criterion), judged per call against the 20 ms tick:
//!
//! - `recorder/push_tick/N`: the media side of one tick for N recording calls (one frame pair
//!   pushed per call, including the hand-off of a full 500 ms chunk every 25th tick, plus one
//!   `poll`). Only the media side is timed; between ticks the bench waits for the writer thread
//!   to hand buffers back, as the 20 ms of a real tick would, so no chunk is dropped.
//! - `recorder/writer/N`: the writer thread's throughput: N calls record 10 s each into a
//!   temporary directory (create, write + flush every 500 ms, finalize, sha256). Criterion's
//!   elements are frames; divide frames/s by 50 for "calls of audio written per second".

use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use std::time::Duration;
use trunkline::media::frame::{FRAME_SAMPLES, Frame};
use trunkline::media::recorder::{CHUNK_FRAMES, Recorder, RecorderThread};
use uuid::Uuid;

fn frames() -> (Frame, Frame) {
    let mut l = [0i16; FRAME_SAMPLES];
    let mut r = [0i16; FRAME_SAMPLES];
    for (n, (a, b)) in l.iter_mut().zip(r.iter_mut()).enumerate() {
        *a = (n as i16).wrapping_mul(97);
        *b = (n as i16).wrapping_mul(-61);
    }
    (l, r)
}

/// Blocks until every recording has a spare buffer (the writer has caught up).
fn settle(rec: &mut Recorder) {
    while rec.free_buffers() < rec.len() {
        rec.poll();
        std::thread::yield_now();
    }
}

// Timing a part of each iteration needs the clock; the rule keeps it out of `src/`.
#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn bench(c: &mut Criterion) {
    let (left, right) = frames();
    let dir = tempfile::tempdir().expect("tempdir");
    let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let handle = RecorderThread::spawn(reports_tx);

    let mut g = c.benchmark_group("recorder");
    for calls in [1usize, 100] {
        g.throughput(Throughput::Elements(calls as u64));
        let mut rec = handle.recorder();
        let ids: Vec<Uuid> = (0..calls).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            rec.start(*id, dir.path().join(format!("push/{id}.wav")));
        }
        g.bench_function(BenchmarkId::new("push_tick", calls), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for tick in 0..iters {
                    if tick % CHUNK_FRAMES as u64 == 0 {
                        settle(&mut rec);
                    }
                    let t0 = now();
                    for id in &ids {
                        rec.push(black_box(id), black_box(&left), black_box(&right));
                    }
                    rec.poll();
                    spent += t0.elapsed();
                }
                spent
            });
        });
        assert_eq!(rec.dropped_chunks(), 0);
        for id in &ids {
            rec.stop(id);
        }
        for _ in &ids {
            let r = reports.blocking_recv().expect("report");
            std::fs::remove_file(&r.path).expect("remove");
        }
    }

    let seconds = 10usize;
    let ticks = seconds * 50;
    for calls in [1usize, 20] {
        g.throughput(Throughput::Elements((calls * ticks) as u64));
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("writer", calls), &calls, |b, &calls| {
            b.iter(|| {
                let mut rec = handle.recorder();
                let ids: Vec<Uuid> = (0..calls).map(|_| Uuid::new_v4()).collect();
                for id in &ids {
                    rec.start(*id, dir.path().join(format!("writer/{id}.wav")));
                }
                for tick in 0..ticks {
                    if tick % CHUNK_FRAMES == 0 {
                        settle(&mut rec);
                    }
                    for id in &ids {
                        rec.push(id, &left, &right);
                    }
                }
                for id in &ids {
                    rec.stop(id);
                }
                for _ in &ids {
                    let r = reports.blocking_recv().expect("report");
                    assert_eq!(r.frames, ticks as u64);
                    std::fs::remove_file(&r.path).expect("remove");
                }
            });
        });
    }
    g.finish();
    drop(reports);
    handle.join();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    bench(&mut c);
    c.final_summary();
}
