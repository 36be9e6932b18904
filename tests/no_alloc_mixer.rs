//! The conference mixer allocates nothing per tick (STYLE.md sec. 4.2): a room of 12 with
//! every kind of participant (mute, deaf, hold, coach, listen), wait and hold music, beeps and
//! announcements, runs 30 s of ticks under a counting global allocator after its set-up.
//! Players are built before the measured region (cloning a `Prompt` clones its name);
//! handing one to the mixer, playing it to its end and dropping it does not allocate.
//!
//! One test in this file only: the counter is process-wide.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use trunkline::media::frame::FRAME_SAMPLES;
use trunkline::media::mixer::Mixer;
use trunkline::media::player::{Player, Prompt};
use trunkline::media::room::{ParticipantState, Role};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One measured run of 1,500 ticks over a fresh room: (allocations, reallocations,
/// announcements finished).
fn measured_run() -> (usize, usize, usize) {
    let prompt = |name: &str, len: usize| Prompt {
        name: name.into(),
        samples: (0..len)
            .map(|i| (i % 2_000) as i16)
            .collect::<Vec<_>>()
            .into(),
    };
    let music = prompt("music", 16_000);
    let announcement = prompt("hello", 4_000);
    let ids: Vec<Uuid> = (1..=12u128).map(Uuid::from_u128).collect();
    let mut m = Mixer::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        let mut s = ParticipantState::default();
        match i {
            1 => s.muted = true,
            2 => s.deaf = true,
            3 => s.hold = true,
            4 => s.role = Role::Coach { target: ids[0] },
            5 => s.role = Role::Listen,
            _ => {}
        }
        m.add(id, s);
    }
    m.set_wait_music(Some(Player::new(music.clone(), true)));
    m.set_hold_music(Some(Player::new(music.clone(), true)));
    let mut tap = [0i16; FRAME_SAMPLES];
    let mut finished = 0;
    let mut announcements: Vec<Player> = (0..8)
        .map(|_| Player::new(announcement.clone(), false))
        .collect();

    let region = Region::new(GLOBAL);
    for t in 0..1_500usize {
        if t == 100 {
            m.set_started(true);
        }
        if t % 200 == 150 {
            m.beep();
            m.play(announcements.pop());
        }
        for (k, &id) in ids.iter().enumerate() {
            if let Some(f) = m.input_mut(id) {
                f.fill(((t * 31 + k * 17) % 4_000) as i16 - 2_000);
            }
        }
        finished += usize::from(m.mix().play_finished);
        for &id in &ids {
            std::hint::black_box(m.output(id));
        }
        std::hint::black_box(m.room_mix());
        m.room_mix_without(ids[0], &mut tap);
    }
    let stats = region.change();
    (stats.allocations, stats.reallocations, finished)
}

/// The allocator counts every thread of the test process, and the test harness's own threads
/// allocate now and then; an allocation in `mix` would show in every one of 1,500 ticks of
/// every run, so the best of three runs must be exactly zero.
#[test]
fn mixer_ticks_do_not_allocate() {
    let runs: Vec<(usize, usize, usize)> = (0..3).map(|_| measured_run()).collect();
    let best = runs
        .iter()
        .min_by_key(|(a, r, _)| a + r)
        .copied()
        .unwrap_or_default();
    assert_eq!(
        (best.0, best.1),
        (0, 0),
        "allocations, reallocations per run: {runs:?}"
    );
    assert!(
        runs.iter().all(|r| r.2 >= 6),
        "announcements finished per run: {runs:?}"
    );
}
