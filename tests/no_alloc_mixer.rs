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

#[test]
fn mixer_ticks_do_not_allocate() {
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
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert!(finished >= 6, "{finished} announcements finished");
}
