//! Simulated-time tests of rooms (conferences, bridges) and recordings in the engine.

use super::*;
use crate::call::rooms::*;
use crate::events::kinds;
use crate::media::room::Role;
use chrono::TimeZone;

/// The wall clock the tests tell the engine at `t0`.
fn wall0() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 21, 9, 30, 0)
        .single()
        .expect("a valid date")
}

fn room_sim() -> Sim {
    let mut sim = Sim::new().auto_stop();
    let t0 = sim.t0;
    sim.engine.set_wall_clock(t0, wall0());
    sim
}

fn conf_id(n: u128) -> Uuid {
    Uuid::from_u128(0xc0_0000 + n)
}

/// Creates a room with `f` applied to its default spec.
fn create(sim: &mut Sim, n: u128, f: impl FnOnce(&mut ConferenceSpec)) -> Uuid {
    let mut spec = ConferenceSpec::new(conf_id(n));
    f(&mut spec);
    let info = sim
        .engine
        .create_conference(sim.now, spec)
        .expect("create conference");
    sim.drain();
    assert_eq!(info.status, ConferenceStatus::Waiting);
    info.id
}

fn join(sim: &mut Sim, conf: Uuid, call: Uuid, f: impl FnOnce(&mut ParticipantOptions)) {
    let mut o = ParticipantOptions::default();
    f(&mut o);
    sim.engine.join(sim.now, conf, call, o).expect("join");
    sim.drain();
}

/// `n` answered inbound echo calls.
fn calls(sim: &mut Sim, n: u32) -> Vec<(Caller, Uuid)> {
    (1..=n).map(|i| inbound_answered(sim, "echo", i)).collect()
}

/// Room commands emitted since action `from`.
fn room_cmds(sim: &Sim, from: usize) -> Vec<RoomCommand> {
    sim.actions[from..]
        .iter()
        .filter_map(|a| match a {
            Action::Media(MediaCommand::Room(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn room_cmd_names(sim: &Sim, from: usize) -> Vec<&'static str> {
    room_cmds(sim, from)
        .iter()
        .map(|c| match c {
            RoomCommand::Create { .. } => "Create",
            RoomCommand::Join { .. } => "Join",
            RoomCommand::Update { .. } => "Update",
            RoomCommand::Leave { .. } => "Leave",
            RoomCommand::Started { .. } => "Started",
            RoomCommand::Beep { .. } => "Beep",
            RoomCommand::Play { .. } => "Play",
            RoomCommand::End { .. } => "End",
        })
        .collect()
}

/// Event kinds of room and recording ops since action `from` (`insert` for row inserts).
fn room_events(sim: &Sim, from: usize) -> Vec<&'static str> {
    sim.actions[from..]
        .iter()
        .filter_map(|a| match a {
            Action::Store(StoreOp::Conference(op)) => Some(match op {
                ConferenceOp::Insert { .. } => "insert",
                ConferenceOp::Started { .. } => kinds::CONFERENCE_STARTED,
                ConferenceOp::Ended { .. } => kinds::CONFERENCE_ENDED,
                ConferenceOp::Joined { .. } => kinds::PARTICIPANT_JOINED,
                ConferenceOp::Event { kind, .. } => *kind,
            }),
            Action::Store(StoreOp::Recording(op)) => Some(match op {
                RecordingOp::Insert { .. } => kinds::RECORDING_STARTED,
                RecordingOp::Status { .. } => "recording.status",
                RecordingOp::Finish { .. } => kinds::RECORDING_COMPLETED,
            }),
            Action::Store(StoreOp::Event { kind, .. })
                if kind.starts_with("play.") || kind.starts_with("recording.") =>
            {
                Some(*kind)
            }
            _ => None,
        })
        .collect()
}

fn ended_reason(sim: &Sim, conf: Uuid) -> Option<String> {
    sim.actions.iter().find_map(|a| match a {
        Action::Store(StoreOp::Conference(ConferenceOp::Ended {
            conference_id,
            reason,
            ..
        })) if *conference_id == conf => Some(reason.clone()),
        _ => None,
    })
}

/// Position of the first action matching `f` since `from`.
fn pos(sim: &Sim, from: usize, f: impl Fn(&Action) -> bool) -> Option<usize> {
    sim.actions[from..].iter().position(f).map(|i| i + from)
}

fn is_stop(a: &Action, id: Uuid) -> bool {
    matches!(a, Action::Media(MediaCommand::Stop { call_id }) if *call_id == id)
}

fn record_cmds(sim: &Sim, from: usize) -> Vec<RecordCommand> {
    sim.actions[from..]
        .iter()
        .filter_map(|a| match a {
            Action::Media(MediaCommand::Record(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// BYEs we sent, by SIP Call-ID.
fn byes_to(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .filter_map(Sent::req)
        .filter(|r| r.method().to_string() == "BYE")
        .filter_map(|r| r.call_id().map(str::to_string))
        .collect()
}

/// The far end answers every BYE we sent with 200, so no transaction is left.
fn answer_byes(sim: &mut Sim, sent: &[Sent]) {
    for r in sent.iter().filter_map(Sent::req) {
        if r.method().to_string() == "BYE" {
            sim.deliver(caller_addr(), &reply(r, 200, None, "", ""));
        }
    }
}

fn result(path: &str) -> RecordingResult {
    RecordingResult {
        path: path.into(),
        frames: 50,
        duration_ms: 1_000,
        size_bytes: 32_044,
        sha256: Some("ab".repeat(32)),
        error: None,
    }
}

// ---- rooms ---------------------------------------------------------------------------------

#[test]
fn three_party_room_starts_on_the_first_join_beeps_and_snapshots() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 3);
    let mark = sim.actions.len();
    let conf = create(&mut sim, 1, |s| {
        s.beeps = true;
        s.name = Some("sales".into());
    });
    for (_, id) in &legs {
        sim.advance(ms(500));
        join(&mut sim, conf, *id, |_| {});
    }
    assert_eq!(
        room_cmd_names(&sim, mark),
        vec![
            "Create", "Join", "Beep", "Started", "Join", "Beep", "Join", "Beep"
        ]
    );
    assert_eq!(
        room_events(&sim, mark),
        vec![
            "insert",
            kinds::PARTICIPANT_JOINED,
            kinds::CONFERENCE_STARTED,
            kinds::PARTICIPANT_JOINED,
            kinds::PARTICIPANT_JOINED,
        ]
    );
    let info = sim.engine.conference(conf).expect("snapshot");
    assert_eq!(info.status, ConferenceStatus::Active);
    assert_eq!(info.name.as_deref(), Some("sales"));
    let ids: Vec<Uuid> = info.participants.iter().map(|p| p.call_id).collect();
    assert_eq!(ids, legs.iter().map(|l| l.1).collect::<Vec<_>>());
    assert_eq!(info.created_at, wall0());
    assert_eq!(
        info.started_at,
        Some(wall0() + chrono::TimeDelta::milliseconds(500))
    );
    assert_eq!(
        info.participants[2].joined_at,
        wall0() + chrono::TimeDelta::milliseconds(1_500)
    );
    assert!(
        info.participants
            .iter()
            .all(|p| p.start_on_enter && !p.end_on_exit)
    );
    assert_eq!(sim.engine.conferences().len(), 1);
    assert_eq!(sim.engine.room_of(legs[0].1), Some(conf));
    // The snapshot serializes as the API returns it.
    let v = serde_json::to_value(&info).expect("json");
    assert_eq!(v["status"], "active");
    assert_eq!(v["participants"][0]["role"], "normal");
}

#[test]
fn participant_updates_produce_room_updates_and_events() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let (a, b) = (legs[0].1, legs[1].1);
    let conf = create(&mut sim, 1, |_| {});
    join(&mut sim, conf, a, |_| {});
    join(&mut sim, conf, b, |_| {});
    let patch = |sim: &mut Sim, p: ParticipantPatch| {
        let mark = sim.actions.len();
        let r = sim.engine.update_participant(sim.now, conf, a, p);
        sim.drain();
        (r, room_cmds(sim, mark), room_events(sim, mark))
    };
    let (r, cmds, ev) = patch(
        &mut sim,
        ParticipantPatch {
            muted: Some(true),
            ..Default::default()
        },
    );
    assert!(r.expect("mute").muted);
    assert!(matches!(cmds.as_slice(), [RoomCommand::Update { state, .. }] if state.muted));
    assert_eq!(ev, vec![kinds::PARTICIPANT_MUTED]);
    // The same state again: nothing to tell anyone.
    let (_, cmds, ev) = patch(
        &mut sim,
        ParticipantPatch {
            muted: Some(true),
            ..Default::default()
        },
    );
    assert!(cmds.is_empty() && ev.is_empty());
    let (_, _, ev) = patch(
        &mut sim,
        ParticipantPatch {
            muted: Some(false),
            deaf: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(
        ev,
        vec![kinds::PARTICIPANT_UNMUTED, kinds::PARTICIPANT_UPDATED]
    );
    let (r, cmds, ev) = patch(
        &mut sim,
        ParticipantPatch {
            hold: Some(true),
            ..Default::default()
        },
    );
    assert!(r.expect("hold").hold);
    assert_eq!(cmds.len(), 1);
    assert_eq!(ev, vec![kinds::PARTICIPANT_UPDATED]);
    let (r, cmds, _) = patch(
        &mut sim,
        ParticipantPatch {
            role: Some(Role::Listen),
            ..Default::default()
        },
    );
    assert_eq!(r.expect("listen").role, Role::Listen);
    assert!(
        matches!(cmds.as_slice(), [RoomCommand::Update { state, .. }] if state.role == Role::Listen && state.deaf && state.hold)
    );
    let (r, cmds, _) = patch(
        &mut sim,
        ParticipantPatch {
            role: Some(Role::Coach { target: b }),
            ..Default::default()
        },
    );
    assert_eq!(r.expect("coach").role, Role::Coach { target: b });
    assert_eq!(cmds.len(), 1);
    // Coach targets must be another participant of the same room.
    let stranger = Uuid::from_u128(999);
    for target in [stranger, a] {
        let (r, cmds, ev) = patch(
            &mut sim,
            ParticipantPatch {
                role: Some(Role::Coach { target }),
                ..Default::default()
            },
        );
        assert!(matches!(r, Err(EngineError::Invalid(_))), "{r:?}");
        assert!(cmds.is_empty() && ev.is_empty());
    }
    // Unknown room or participant.
    assert_eq!(
        sim.engine
            .update_participant(sim.now, conf_id(9), a, ParticipantPatch::default()),
        Err(EngineError::ConferenceNotFound(conf_id(9)))
    );
    assert_eq!(
        sim.engine
            .update_participant(sim.now, conf, stranger, ParticipantPatch::default()),
        Err(EngineError::NotFound(stranger))
    );
    // Joining as a coach of someone not in the room is refused too.
    let c = inbound_answered(&mut sim, "echo", 3).1;
    let opts = ParticipantOptions {
        state: ParticipantState {
            role: Role::Coach { target: stranger },
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        sim.engine.join(sim.now, conf, c, opts),
        Err(EngineError::Invalid(_))
    ));
}

#[test]
fn a_full_room_refuses_a_join_and_an_unanswered_or_unknown_call_cannot_join() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 3);
    let conf = create(&mut sim, 1, |s| s.max_participants = Some(2));
    join(&mut sim, conf, legs[0].1, |_| {});
    join(&mut sim, conf, legs[1].1, |_| {});
    let mark = sim.actions.len();
    let r = sim
        .engine
        .join(sim.now, conf, legs[2].1, ParticipantOptions::default());
    assert_eq!(r, Err(EngineError::Full(conf)));
    assert!(matches!(
        sim.engine
            .join(sim.now, conf, legs[0].1, ParticipantOptions::default()),
        Err(EngineError::Conflict(_))
    ));
    let ghost = Uuid::from_u128(77);
    assert_eq!(
        sim.engine
            .join(sim.now, conf, ghost, ParticipantOptions::default()),
        Err(EngineError::NotFound(ghost))
    );
    assert_eq!(
        sim.engine.join(
            sim.now,
            conf_id(5),
            legs[2].1,
            ParticipantOptions::default()
        ),
        Err(EngineError::ConferenceNotFound(conf_id(5)))
    );
    sim.drain();
    assert_eq!(sim.actions.len(), mark, "a refused join changes nothing");
    assert!(matches!(
        sim.engine
            .create_conference(sim.now, ConferenceSpec::new(conf)),
        Err(EngineError::Conflict(_))
    ));
}

#[test]
fn the_room_waits_for_a_start_on_enter_participant() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let conf = create(&mut sim, 1, |s| {
        s.wait_music = Some(tone_prompt());
    });
    assert!(matches!(
        room_cmds(&sim, 0).as_slice(),
        [RoomCommand::Create { wait_music: Some(p), .. }] if p.name == "tone"
    ));
    join(&mut sim, conf, legs[0].1, |o| o.start_on_enter = false);
    assert!(!room_cmd_names(&sim, 0).contains(&"Started"));
    let info = sim.engine.conference(conf).expect("snapshot");
    assert_eq!(info.status, ConferenceStatus::Waiting);
    assert_eq!(info.wait_music.as_deref(), Some("tone"));
    let mark = sim.actions.len();
    join(&mut sim, conf, legs[1].1, |_| {});
    assert_eq!(room_cmd_names(&sim, mark), vec!["Join", "Started"]);
    assert!(matches!(
        room_cmds(&sim, mark)[1],
        RoomCommand::Started { started: true, .. }
    ));
    assert_eq!(
        sim.engine.conference(conf).expect("snapshot").status,
        ConferenceStatus::Active
    );
}

#[test]
fn end_on_exit_hangs_up_every_other_leg_in_the_same_input() {
    let mut sim = room_sim();
    let mut legs = calls(&mut sim, 3);
    let conf = create(&mut sim, 1, |_| {});
    let (a, b, c) = (legs[0].1, legs[1].1, legs[2].1);
    join(&mut sim, conf, a, |o| o.end_on_exit = true);
    join(&mut sim, conf, b, |_| {});
    join(&mut sim, conf, c, |_| {});
    let mark = sim.actions.len();
    let bye = legs[0].0.request("BYE");
    let sent = sim.deliver(caller_addr(), &bye);
    assert_eq!(codes(&sent), vec![200]);
    let mut byes = byes_to(&sent);
    byes.sort();
    assert_eq!(
        byes,
        vec![legs[1].0.call_id.clone(), legs[2].0.call_id.clone()]
    );
    assert_eq!(ended_reason(&sim, conf).as_deref(), Some("end_on_exit"));
    assert_eq!(room_cmd_names(&sim, mark), vec!["Leave", "End"]);
    // The room's end comes before the others' legs stop, all in this input.
    let end = pos(&sim, mark, |a| {
        matches!(
            a,
            Action::Media(MediaCommand::Room(RoomCommand::End { .. }))
        )
    })
    .expect("End");
    for id in [a, b, c] {
        assert!(
            pos(&sim, mark, |x| is_stop(x, id)).is_some_and(|p| p > end),
            "{id} stops after the room ends"
        );
        assert_eq!(sim.the_finish(id).end.status, FinalStatus::Completed);
    }
    assert_eq!(sim.the_finish(a).end.ended_by, EndedBy::Caller);
    assert_eq!(sim.the_finish(b).end.ended_by, EndedBy::System);
    assert!(sim.engine.conference(conf).is_err());
    answer_byes(&mut sim, &sent);
    legs.clear();
    sim.advance(secs(40));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn the_last_participant_leaving_ends_the_room_without_hanging_anyone_up() {
    let mut sim = room_sim();
    let mut legs = calls(&mut sim, 2);
    let conf = create(&mut sim, 1, |s| s.beeps = true);
    join(&mut sim, conf, legs[0].1, |_| {});
    join(&mut sim, conf, legs[1].1, |_| {});
    let mark = sim.actions.len();
    let bye = legs[0].0.request("BYE");
    let sent = sim.deliver(caller_addr(), &bye);
    assert!(byes_to(&sent).is_empty());
    assert_eq!(room_cmd_names(&sim, mark), vec!["Leave", "Beep"]);
    assert_eq!(ended_reason(&sim, conf), None);
    let bye = legs[1].0.request("BYE");
    let sent = sim.deliver(caller_addr(), &bye);
    assert!(byes_to(&sent).is_empty());
    assert_eq!(
        ended_reason(&sim, conf).as_deref(),
        Some("last_participant_left")
    );
    assert_eq!(
        room_events(&sim, mark),
        vec![
            kinds::PARTICIPANT_LEFT,
            kinds::PARTICIPANT_LEFT,
            kinds::CONFERENCE_ENDED
        ]
    );
    sim.advance(secs(40));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn ending_a_room_by_api_hangs_up_every_leg() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let conf = create(&mut sim, 1, |_| {});
    join(&mut sim, conf, legs[0].1, |_| {});
    join(&mut sim, conf, legs[1].1, |_| {});
    sim.engine
        .end_conference(sim.now, conf, "api")
        .expect("end");
    sim.drain();
    let sent = sim.take_sent();
    assert_eq!(byes_to(&sent).len(), 2);
    assert_eq!(ended_reason(&sim, conf).as_deref(), Some("api"));
    for (_, id) in &legs {
        assert_eq!(sim.the_finish(*id).end.ended_by, EndedBy::Api);
    }
    assert_eq!(
        sim.engine.end_conference(sim.now, conf, "api"),
        Err(EngineError::ConferenceNotFound(conf))
    );
    answer_byes(&mut sim, &sent);
    sim.advance(secs(40));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn removing_a_participant_keeps_or_hangs_up_its_call() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 3);
    let conf = create(&mut sim, 1, |_| {});
    for (_, id) in &legs {
        join(&mut sim, conf, *id, |_| {});
    }
    sim.engine
        .remove_participant(sim.now, conf, legs[0].1, false)
        .expect("remove");
    sim.drain();
    assert!(byes_to(&sim.take_sent()).is_empty());
    assert!(
        sim.finish_of(legs[0].1).is_empty(),
        "still up, out of the room"
    );
    assert_eq!(sim.engine.room_of(legs[0].1), None);
    assert_eq!(
        sim.engine
            .remove_participant(sim.now, conf, legs[0].1, false),
        Err(EngineError::NotFound(legs[0].1))
    );
    sim.engine
        .remove_participant(sim.now, conf, legs[1].1, true)
        .expect("remove");
    sim.drain();
    assert_eq!(byes_to(&sim.take_sent()), vec![legs[1].0.call_id.clone()]);
    assert_eq!(sim.the_finish(legs[1].1).end.ended_by, EndedBy::Api);
    let info = sim.engine.conference(conf).expect("still there");
    assert_eq!(info.participants.len(), 1);
}

#[test]
fn joining_another_room_moves_the_call() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let x = create(&mut sim, 1, |_| {});
    let y = create(&mut sim, 2, |_| {});
    join(&mut sim, x, legs[0].1, |_| {});
    join(&mut sim, x, legs[1].1, |_| {});
    let mark = sim.actions.len();
    join(&mut sim, y, legs[0].1, |_| {});
    assert!(matches!(
        room_cmds(&sim, mark).as_slice(),
        [RoomCommand::Leave { room_id, .. }, RoomCommand::Join { room_id: to, .. }, RoomCommand::Started { .. }]
            if *room_id == x && *to == y
    ));
    assert_eq!(sim.engine.room_of(legs[0].1), Some(y));
    assert_eq!(sim.engine.conference(x).expect("x").participants.len(), 1);
    // The last one moves too: x ends (nobody hung up).
    join(&mut sim, y, legs[1].1, |_| {});
    assert_eq!(
        ended_reason(&sim, x).as_deref(),
        Some("last_participant_left")
    );
    assert!(sim.finishes().is_empty());
}

#[test]
fn a_bridge_is_a_room_of_two_that_ends_with_either_side() {
    let mut sim = room_sim();
    let mut legs = calls(&mut sim, 2);
    let (a, b) = (legs[0].1, legs[1].1);
    assert!(matches!(
        sim.engine.bridge(sim.now, a, a),
        Err(EngineError::Invalid(_))
    ));
    let info = sim.engine.bridge(sim.now, a, b).expect("bridge");
    sim.drain();
    assert!(info.bridge);
    assert_eq!(info.status, ConferenceStatus::Active);
    assert_eq!(info.id.get_version_num(), 7, "an engine-made v7 id");
    assert_eq!(info.created_at, wall0());
    assert!(info.participants.iter().all(|p| p.end_on_exit));
    let bye = legs[1].0.request("BYE");
    let sent = sim.deliver(caller_addr(), &bye);
    assert_eq!(byes_to(&sent), vec![legs[0].0.call_id.clone()]);
    assert_eq!(ended_reason(&sim, info.id).as_deref(), Some("end_on_exit"));
    answer_byes(&mut sim, &sent);
    sim.advance(secs(40));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn room_playback_and_call_stop_play_report_play_events() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 1);
    let conf = create(&mut sim, 1, |_| {});
    join(&mut sim, conf, legs[0].1, |_| {});
    let mark = sim.actions.len();
    sim.engine
        .play_room(sim.now, conf, Some(tone_prompt()), false)
        .expect("play");
    sim.drain();
    assert_eq!(room_cmd_names(&sim, mark), vec!["Play"]);
    assert_eq!(
        sim.engine.conference(conf).expect("s").playing.as_deref(),
        Some("tone")
    );
    sim.media_event(MediaEvent::RoomPlayFinished { room_id: conf });
    sim.engine
        .play_room(sim.now, conf, Some(tone_prompt()), true)
        .expect("loop");
    sim.engine
        .play_room(sim.now, conf, None, false)
        .expect("stop");
    sim.drain();
    assert_eq!(
        room_events(&sim, mark),
        vec![
            kinds::PLAY_STARTED,
            kinds::PLAY_FINISHED,
            kinds::PLAY_STARTED,
            kinds::PLAY_FINISHED
        ]
    );
    // A prompt on one call, stopped by API.
    let id = legs[0].1;
    let mark = sim.actions.len();
    sim.engine
        .play(sim.now, id, tone_prompt(), true)
        .expect("play");
    sim.engine.stop_play(sim.now, id).expect("stop");
    sim.drain();
    assert_eq!(
        room_events(&sim, mark),
        vec![kinds::PLAY_STARTED, kinds::PLAY_FINISHED]
    );
    assert!(
        sim.actions[mark..].iter().any(
            |a| matches!(a, Action::Media(MediaCommand::StopPlay { call_id }) if *call_id == id)
        )
    );
    assert!(
        sim.finish_of(id).is_empty(),
        "a stopped API prompt does not end the call"
    );
}

// ---- recordings ------------------------------------------------------------------------------

fn rec_id(n: u128) -> Uuid {
    Uuid::from_u128(0x5ec_0000 + n)
}

#[test]
fn a_call_recording_starts_pauses_resumes_stops_and_completes() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 1);
    let call = legs[0].1;
    // A v7 id: the file's folder is its date.
    let id = crate::store::new_id(wall0() - chrono::TimeDelta::days(1));
    let info = sim
        .engine
        .start_recording(
            sim.now,
            RecordingSpec {
                id,
                target: RecordingTarget::Call(call),
            },
        )
        .expect("start");
    sim.drain();
    let rel = format!("2026/11/20/{id}.wav");
    assert_eq!(info.path, std::path::PathBuf::from(&rel));
    assert_eq!(info.status, RecordingStatus::Recording);
    assert!(matches!(
        record_cmds(&sim, 0).as_slice(),
        [RecordCommand::Start { recording_id, target: RecordTarget::Call(c), path }]
            if *recording_id == id && *c == call && *path == std::path::Path::new("rec").join(&rel)
    ));
    let again = RecordingSpec {
        id,
        target: RecordingTarget::Call(call),
    };
    assert!(matches!(
        sim.engine.start_recording(sim.now, again),
        Err(EngineError::Conflict(_))
    ));
    let r = sim.engine.pause_recording(sim.now, id).expect("pause");
    assert_eq!(r.status, RecordingStatus::Paused);
    assert!(matches!(
        sim.engine.pause_recording(sim.now, id),
        Err(EngineError::Conflict(_))
    ));
    sim.engine.resume_recording(sim.now, id).expect("resume");
    assert!(matches!(
        sim.engine.resume_recording(sim.now, id),
        Err(EngineError::Conflict(_))
    ));
    let r = sim.engine.stop_recording(id).expect("stop");
    assert!(r.stopping);
    assert!(matches!(
        sim.engine.stop_recording(id),
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        sim.engine.pause_recording(sim.now, id),
        Err(EngineError::Conflict(_))
    ));
    sim.drain();
    let names: Vec<&str> = record_cmds(&sim, 0)
        .iter()
        .map(|c| match c {
            RecordCommand::Start { .. } => "Start",
            RecordCommand::Pause { .. } => "Pause",
            RecordCommand::Resume { .. } => "Resume",
            RecordCommand::Stop { .. } => "Stop",
        })
        .collect();
    assert_eq!(names, vec!["Start", "Pause", "Resume", "Stop"]);
    sim.media_event(MediaEvent::RecordingStopped {
        recording_id: id,
        result: result(&rel),
    });
    assert_eq!(
        room_events(&sim, 0),
        vec![
            kinds::RECORDING_STARTED,
            "recording.status",
            "recording.status",
            kinds::RECORDING_COMPLETED
        ]
    );
    let fin = sim.actions.iter().find_map(|a| match a {
        Action::Store(StoreOp::Recording(RecordingOp::Finish {
            status,
            payload,
            call_id,
            ..
        })) => Some((*status, payload.clone(), *call_id)),
        _ => None,
    });
    let (status, payload, call_id) = fin.expect("Finish");
    assert_eq!(status, RecordingStatus::Completed);
    assert_eq!(call_id, Some(call));
    assert_eq!(payload["duration_ms"], 1_000);
    assert_eq!(payload["sha256"], "ab".repeat(32));
    // Stopped and finished: a second stop is still a conflict; an unknown id is not found.
    assert!(matches!(
        sim.engine.stop_recording(id),
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(
        sim.engine.stop_recording(rec_id(1)),
        Err(EngineError::RecordingNotFound(rec_id(1)))
    );
    assert_eq!(
        sim.engine.recording(id),
        Err(EngineError::RecordingNotFound(id))
    );
}

#[test]
fn a_calls_hangup_stops_its_recording_before_its_leg() {
    let mut sim = room_sim();
    let mut legs = calls(&mut sim, 1);
    let call = legs[0].1;
    let id = rec_id(1);
    let info = sim
        .engine
        .start_recording(
            sim.now,
            RecordingSpec {
                id,
                target: RecordingTarget::Call(call),
            },
        )
        .expect("start");
    // A v4 id takes its date from the wall clock.
    assert_eq!(
        info.path,
        std::path::PathBuf::from(format!("2026/11/21/{id}.wav"))
    );
    sim.drain();
    let mark = sim.actions.len();
    let bye = legs[0].0.request("BYE");
    sim.deliver(caller_addr(), &bye);
    let rec_stop = pos(&sim, mark, |a| matches!(a, Action::Media(MediaCommand::Record(RecordCommand::Stop { recording_id })) if *recording_id == id)).expect("recording stopped");
    let leg_stop = pos(&sim, mark, |a| is_stop(a, call)).expect("leg stopped");
    assert!(rec_stop < leg_stop);
    // The worker's report comes after the call is gone: still completed.
    sim.media_event(MediaEvent::RecordingStopped {
        recording_id: id,
        result: result("x"),
    });
    assert_eq!(room_events(&sim, mark), vec![kinds::RECORDING_COMPLETED]);
    sim.advance(secs(40));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn a_recorded_room_records_from_its_start_and_its_end_stops_the_recording() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let conf = create(&mut sim, 1, |s| s.record = true);
    join(&mut sim, conf, legs[0].1, |o| o.start_on_enter = false);
    assert!(record_cmds(&sim, 0).is_empty(), "not started, not recorded");
    join(&mut sim, conf, legs[1].1, |_| {});
    let rec = match record_cmds(&sim, 0).as_slice() {
        [
            RecordCommand::Start {
                recording_id,
                target: RecordTarget::Room { room_id, left },
                ..
            },
        ] => {
            assert_eq!(*room_id, conf);
            assert_eq!(*left, legs[0].1, "left = the first joined");
            *recording_id
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sim.engine.conference(conf).expect("s").recordings,
        vec![rec]
    );
    // An API recording of the room with a left channel that is not a participant.
    let bad = RecordingSpec {
        id: rec_id(2),
        target: RecordingTarget::Conference {
            conference_id: conf,
            left: Some(Uuid::from_u128(5)),
        },
    };
    assert!(matches!(
        sim.engine.start_recording(sim.now, bad),
        Err(EngineError::Invalid(_))
    ));
    let mark = sim.actions.len();
    sim.engine
        .end_conference(sim.now, conf, "api")
        .expect("end");
    sim.drain();
    let stop = pos(&sim, mark, |a| matches!(a, Action::Media(MediaCommand::Record(RecordCommand::Stop { recording_id })) if *recording_id == rec)).expect("stop");
    let end = pos(&sim, mark, |a| {
        matches!(
            a,
            Action::Media(MediaCommand::Room(RoomCommand::End { .. }))
        )
    })
    .expect("end");
    assert!(stop < end);
    sim.media_event(MediaEvent::RecordingStopped {
        recording_id: rec,
        result: result("r"),
    });
    let completed = sim.actions.iter().any(|a| matches!(a, Action::Store(StoreOp::Recording(RecordingOp::Finish { payload, .. })) if payload["conference_id"] == serde_json::json!(conf)));
    assert!(completed);
}

// ---- originate into a room -------------------------------------------------------------------

#[test]
fn an_originate_with_join_and_record_joins_and_records_on_answer() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 1);
    let conf = create(&mut sim, 1, |_| {});
    join(&mut sim, conf, legs[0].1, |_| {});
    let mut o = outbound(1, "+15551230000", "local", secs(30));
    o.join = Some((
        conf,
        ParticipantOptions {
            end_on_exit: true,
            ..Default::default()
        },
    ));
    o.record = true;
    let mut bad = o.clone();
    bad.join = Some((conf_id(7), ParticipantOptions::default()));
    assert_eq!(
        sim.originate(bad),
        Err(EngineError::ConferenceNotFound(conf_id(7)))
    );
    let mark = sim.actions.len();
    sim.originate(o).expect("originate");
    let inv = sim.take_sent()[0].req().expect("INVITE").clone();
    assert!(room_cmds(&sim, mark).is_empty(), "not before the answer");
    answer_call(&mut sim, &inv);
    let id = Uuid::from_u128(1);
    assert!(
        matches!(room_cmds(&sim, mark).as_slice(), [RoomCommand::Join { call_id, .. }] if *call_id == id)
    );
    assert!(
        matches!(record_cmds(&sim, mark).as_slice(), [RecordCommand::Start { target: RecordTarget::Call(c), .. }] if *c == id)
    );
    // Its end_on_exit: the far end hangs up, the inbound leg gets a BYE.
    let sent = sim.deliver(trunk_addr(), &far_request(&inv, "BYE", 1, ""));
    assert_eq!(byes_to(&sent), vec![legs[0].0.call_id.clone()]);
}

#[test]
fn with_synchronous_amd_the_room_is_joined_after_a_human_verdict_only() {
    for (answered_by, joins) in [
        (crate::amd::AnsweredBy::Human, true),
        (crate::amd::AnsweredBy::MachineEndBeep, false),
    ] {
        let mut sim = room_sim();
        let conf = create(&mut sim, 1, |_| {});
        let mut o = amd_call(1, OnMachine::Hangup, false);
        o.join = Some((conf, ParticipantOptions::default()));
        let (id, _) = amd_answered(&mut sim, o);
        assert!(
            room_cmds(&sim, 0)
                .iter()
                .all(|c| !matches!(c, RoomCommand::Join { .. }))
        );
        sim.media_event(MediaEvent::Amd {
            call_id: id,
            verdict: verdict(answered_by, true),
        });
        let joined = room_cmds(&sim, 0)
            .iter()
            .any(|c| matches!(c, RoomCommand::Join { .. }));
        assert_eq!(joined, joins, "{answered_by:?}");
        assert_eq!(sim.finish_of(id).is_empty(), joins, "a machine is hung up");
    }
    // Asynchronous AMD joins at once.
    let mut sim = room_sim();
    let conf = create(&mut sim, 1, |_| {});
    let mut o = amd_call(1, OnMachine::Hangup, true);
    o.join = Some((conf, ParticipantOptions::default()));
    amd_answered(&mut sim, o);
    assert!(
        room_cmds(&sim, 0)
            .iter()
            .any(|c| matches!(c, RoomCommand::Join { .. }))
    );
}

#[test]
fn shutdown_ends_every_room_and_call() {
    let mut sim = room_sim();
    let legs = calls(&mut sim, 2);
    let conf = create(&mut sim, 1, |_| {});
    let empty = create(&mut sim, 2, |_| {});
    join(&mut sim, conf, legs[0].1, |_| {});
    join(&mut sim, conf, legs[1].1, |_| {});
    sim.engine.hangup_all(sim.now);
    sim.drain();
    assert_eq!(ended_reason(&sim, conf).as_deref(), Some("shutdown"));
    assert_eq!(ended_reason(&sim, empty).as_deref(), Some("shutdown"));
    assert!(sim.engine.conferences().is_empty());
    assert_eq!(sim.finishes().len(), 2);
}
