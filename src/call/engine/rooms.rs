//! Rooms (conferences and two-party bridges) and recordings in the call engine (pure).
//!
//! The engine is the one owner of every room: it decides who is in which room with what
//! state, tells the media worker ([`RoomCommand`], [`RecordCommand`]) and the store writer
//! ([`ConferenceOp`], [`RecordingOp`]), in order with the calls' own actions.
//!
//! # Rooms
//!
//! - A room is created `waiting`: its wait music plays to whoever is in it. It starts
//!   (`conference.started`, [`RoomCommand::Started`]) when the first participant with
//!   `start_on_enter` joins; a room with `record` starts a recording then (left channel: the
//!   first participant still present).
//! - A call joins only when live and answered; joining moves it out of its current room first.
//!   `max_participants` refuses more ([`EngineError::Full`]). A coach's target must be another
//!   participant of the same room ([`EngineError::Invalid`]).
//! - A participant leaves when removed, moved, or when its call ends (before the leg stops).
//!   If it had `end_on_exit`, the room ends and every other leg gets a BYE in the same input;
//!   the room also ends when its last participant leaves, and by API (every leg hung up).
//!   A room that ends stops its recordings.
//! - A bridge is a room made for two calls, both `end_on_exit`.
//!
//! # Recordings
//!
//! A recording of a call or a room writes `<recordings_dir>/<yyyy>/<mm>/<dd>/<id>.wav`, the
//! date being the v7 id's timestamp (UTC). Pause, resume and stop by API; a recording stops
//! when its call or room ends (a call's recordings are stopped before its leg). The worker
//! reports the finished file ([`MediaEvent::RecordingStopped`]): `recording.completed`.
//! A stop of a recording already stopped is a conflict; the engine remembers the last
//! [`STOPPED_MEMORY`] stopped ids to say so.
//!
//! # Wall clock
//!
//! Snapshots carry UTC times and engine-made ids (bridges, automatic recordings) are v7
//! UUIDs, so the engine is told the wall clock ([`CallEngine::set_wall_clock`]) by its
//! driver; it never reads a clock.

use super::*;
use crate::call::rooms::{
    ConferenceInfo, ConferenceSpec, ConferenceStatus, ParticipantInfo, ParticipantOptions,
    ParticipantPatch, RecordingInfo, RecordingSpec, RecordingStatus, RecordingTarget,
};
use crate::events::kinds;
use crate::media::room::Role;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use std::path::PathBuf;

/// How many stopped recording ids the engine remembers, to answer a second stop with a
/// conflict rather than "not found".
pub const STOPPED_MEMORY: usize = 4096;
/// Channels of a recording file (left: far end or one participant; right: the rest).
pub const RECORDING_CHANNELS: u16 = 2;
/// Sample rate of a recording file in Hz.
pub const RECORDING_SAMPLE_RATE: u32 = 8_000;

/// A conference row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct ConferenceRow {
    /// The room.
    pub id: Uuid,
    /// Name, if any.
    pub name: Option<String>,
    /// Most participants.
    pub max_participants: Option<u32>,
    /// Options as JSON: `beeps`, `wait_music`, `hold_music`, `record`, `bridge`.
    pub options: serde_json::Value,
    /// Where its events go.
    pub status_callback: Option<String>,
}

/// A store operation about a room; each publishes its event (except `Insert`) to the room's
/// status callback.
#[derive(Debug, Clone)]
pub enum ConferenceOp {
    /// Insert the row (status `waiting`); no event.
    Insert {
        /// The row.
        row: Box<ConferenceRow>,
        /// When.
        at: Instant,
    },
    /// The room started (`conference.started`).
    Started {
        /// The room.
        conference_id: Uuid,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// The room ended (`conference.ended`, only if this op ended the row).
    Ended {
        /// The room.
        conference_id: Uuid,
        /// Why.
        reason: String,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// A call joined: its row's `conference_id` is set (`conference.participant.joined`).
    Joined {
        /// The room.
        conference_id: Uuid,
        /// The call.
        call_id: Uuid,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// Any other event about the room (participant left/muted/unmuted/updated, play.*);
    /// no row change.
    Event {
        /// The room.
        conference_id: Uuid,
        /// The participant concerned, if any.
        call_id: Option<Uuid>,
        /// Event type.
        kind: &'static str,
        /// Event payload (carries `conference_id`).
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
}

/// A recording row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    /// The recording.
    pub id: Uuid,
    /// The recorded call, if a call recording.
    pub call_id: Option<Uuid>,
    /// The recorded room, if a room recording.
    pub conference_id: Option<Uuid>,
    /// The file, relative to the recordings directory.
    pub path: PathBuf,
    /// Channels.
    pub channels: u16,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

/// A store operation about a recording; each publishes its event to the call's or room's
/// status callback.
#[derive(Debug, Clone)]
pub enum RecordingOp {
    /// Insert the row, status `recording` (`recording.started`).
    Insert {
        /// The row.
        row: Box<RecordingRow>,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// Paused or resumed (`recording.paused` / `recording.resumed`).
    Status {
        /// The recording.
        recording_id: Uuid,
        /// The recorded call, if any (the event's call).
        call_id: Option<Uuid>,
        /// `Paused` or `Recording`.
        status: RecordingStatus,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// The file is finished (`recording.completed`, only on the row's first finish).
    Finish {
        /// The recording.
        recording_id: Uuid,
        /// The recorded call, if any (the event's call).
        call_id: Option<Uuid>,
        /// `Completed` or `Failed`.
        status: RecordingStatus,
        /// What the worker reported.
        result: RecordingResult,
        /// Event payload.
        payload: serde_json::Value,
        /// Webhook.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
}

/// One participant of a room.
#[derive(Debug, Clone)]
pub(super) struct Participant {
    call_id: Uuid,
    state: ParticipantState,
    start_on_enter: bool,
    end_on_exit: bool,
    joined: Instant,
}

/// A live room.
#[derive(Debug)]
pub(super) struct Room {
    spec: ConferenceSpec,
    bridge: bool,
    created: Instant,
    started: Option<Instant>,
    /// In joining order.
    participants: Vec<Participant>,
    /// The prompt playing to the whole room (name).
    playing: Option<String>,
    /// Recordings of the room not yet reported stopped.
    recordings: Vec<Uuid>,
}

/// A recording not yet reported stopped by the worker.
#[derive(Debug)]
pub(super) struct Recording {
    target: RecordTarget,
    path: PathBuf,
    paused: bool,
    stopping: bool,
    callback: Option<String>,
    started: Instant,
}

impl Recording {
    fn call_id(&self) -> Option<Uuid> {
        match self.target {
            RecordTarget::Call(c) => Some(c),
            RecordTarget::Room { .. } => None,
        }
    }

    fn conference_id(&self) -> Option<Uuid> {
        match self.target {
            RecordTarget::Call(_) => None,
            RecordTarget::Room { room_id, .. } => Some(room_id),
        }
    }
}

/// Rooms and recordings kept by the engine.
#[derive(Debug, Default)]
pub(super) struct RoomState {
    pub(super) rooms: HashMap<Uuid, Room>,
    pub(super) recordings: HashMap<Uuid, Recording>,
    /// Recently stopped recordings, oldest first (at most [`STOPPED_MEMORY`]).
    stopped: VecDeque<Uuid>,
    /// The wall clock as last told: (monotonic, UTC) at the same moment.
    wall: Option<(Instant, DateTime<Utc>)>,
}

fn participant_json(conference_id: Uuid, p: &Participant) -> serde_json::Value {
    json!({
        "conference_id": conference_id,
        "call_id": p.call_id,
        "muted": p.state.muted,
        "deaf": p.state.deaf,
        "hold": p.state.hold,
        "role": p.state.role,
        "start_on_enter": p.start_on_enter,
        "end_on_exit": p.end_on_exit,
    })
}

/// Whether `call_id` may join `room` with `options`: not in it already, room not full, and
/// a coach's target is another participant of it.
pub(super) fn check_join(
    room: &Room,
    call_id: Uuid,
    options: &ParticipantOptions,
) -> Result<(), EngineError> {
    let conference_id = room.spec.id;
    if room.participants.iter().any(|p| p.call_id == call_id) {
        return Err(EngineError::Conflict(format!(
            "call {call_id} is already in conference {conference_id}"
        )));
    }
    if let Some(max) = room.spec.max_participants
        && room.participants.len() >= max as usize
    {
        return Err(EngineError::Full(conference_id));
    }
    check_role(room, call_id, &options.state.role)
}

/// Checks that `role` is possible for `call_id` in `room`: a coach's target is another
/// participant of it.
fn check_role(room: &Room, call_id: Uuid, role: &Role) -> Result<(), EngineError> {
    if let Role::Coach { target } = role {
        if *target == call_id {
            return Err(EngineError::Invalid(format!(
                "call {call_id} cannot coach itself"
            )));
        }
        if !room.participants.iter().any(|p| p.call_id == *target) {
            return Err(EngineError::Invalid(format!(
                "coach target {target} is not a participant of conference {}",
                room.spec.id
            )));
        }
    }
    Ok(())
}

/// The file of recording `id` relative to the recordings directory: `yyyy/mm/dd/<id>.wav`.
pub fn recording_rel_path(id: Uuid, date: DateTime<Utc>) -> PathBuf {
    PathBuf::from(format!("{}/{id}.wav", date.format("%Y/%m/%d")))
}

/// The UTC time in a v7 UUID, if it is one.
fn v7_time(id: Uuid) -> Option<DateTime<Utc>> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

impl CallEngine {
    /// Tells the engine the wall clock (`utc` is the time at the monotonic `now`); the driver
    /// does so before each input. Used for snapshot times, file dates and the ids the engine
    /// makes.
    pub fn set_wall_clock(&mut self, now: Instant, utc: DateTime<Utc>) {
        self.rooms.wall = Some((now, utc));
    }

    pub(super) fn utc_at(&self, at: Instant) -> DateTime<Utc> {
        let Some((n0, u0)) = self.rooms.wall else {
            return DateTime::<Utc>::UNIX_EPOCH;
        };
        if at >= n0 {
            u0 + TimeDelta::from_std(at - n0).unwrap_or_default()
        } else {
            u0 - TimeDelta::from_std(n0 - at).unwrap_or_default()
        }
    }

    /// A new v7 id for something the engine creates (a bridge, an automatic recording).
    pub(super) fn mint_id(&mut self, now: Instant) -> Uuid {
        let millis = u64::try_from(self.utc_at(now).timestamp_millis()).unwrap_or(0);
        let random: [u8; 10] = self.rng.r#gen();
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    // ---- snapshots ---------------------------------------------------------------------------

    fn participant_info(&self, p: &Participant) -> ParticipantInfo {
        ParticipantInfo {
            call_id: p.call_id,
            muted: p.state.muted,
            deaf: p.state.deaf,
            hold: p.state.hold,
            role: p.state.role,
            start_on_enter: p.start_on_enter,
            end_on_exit: p.end_on_exit,
            joined_at: self.utc_at(p.joined),
        }
    }

    fn room_info(&self, room: &Room) -> ConferenceInfo {
        ConferenceInfo {
            id: room.spec.id,
            name: room.spec.name.clone(),
            status: if room.started.is_some() {
                ConferenceStatus::Active
            } else {
                ConferenceStatus::Waiting
            },
            bridge: room.bridge,
            max_participants: room.spec.max_participants,
            beeps: room.spec.beeps,
            wait_music: room.spec.wait_music.as_ref().map(|p| p.name.clone()),
            hold_music: room.spec.hold_music.as_ref().map(|p| p.name.clone()),
            record: room.spec.record,
            status_callback: room.spec.status_callback.clone(),
            created_at: self.utc_at(room.created),
            started_at: room.started.map(|t| self.utc_at(t)),
            ended_at: None,
            end_reason: None,
            playing: room.playing.clone(),
            participants: room
                .participants
                .iter()
                .map(|p| self.participant_info(p))
                .collect(),
            recordings: room.recordings.clone(),
        }
    }

    fn recording_info(&self, id: Uuid, r: &Recording) -> RecordingInfo {
        RecordingInfo {
            id,
            call_id: r.call_id(),
            conference_id: r.conference_id(),
            left: match r.target {
                RecordTarget::Room { left, .. } => Some(left),
                RecordTarget::Call(_) => None,
            },
            path: r.path.clone(),
            status: if r.paused {
                RecordingStatus::Paused
            } else {
                RecordingStatus::Recording
            },
            stopping: r.stopping,
            channels: RECORDING_CHANNELS,
            sample_rate: RECORDING_SAMPLE_RATE,
            started_at: self.utc_at(r.started),
        }
    }

    /// A snapshot of a live room.
    pub fn conference(&self, id: Uuid) -> Result<ConferenceInfo, EngineError> {
        self.rooms
            .rooms
            .get(&id)
            .map(|r| self.room_info(r))
            .ok_or(EngineError::ConferenceNotFound(id))
    }

    /// Snapshots of every live room, oldest first.
    pub fn conferences(&self) -> Vec<ConferenceInfo> {
        let mut rooms: Vec<&Room> = self.rooms.rooms.values().collect();
        rooms.sort_by_key(|r| (r.created, r.spec.id));
        rooms.into_iter().map(|r| self.room_info(r)).collect()
    }

    /// A snapshot of a recording not yet finished.
    pub fn recording(&self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.rooms
            .recordings
            .get(&id)
            .map(|r| self.recording_info(id, r))
            .ok_or(EngineError::RecordingNotFound(id))
    }

    /// The room a call is in, if any.
    pub fn room_of(&self, call_id: Uuid) -> Option<Uuid> {
        self.calls.get(&call_id).and_then(|c| c.room)
    }

    // ---- rooms -------------------------------------------------------------------------------

    /// Creates a room (`waiting`; its wait music plays until it starts).
    pub fn create_conference(
        &mut self,
        now: Instant,
        spec: ConferenceSpec,
    ) -> Result<ConferenceInfo, EngineError> {
        if self.rooms.rooms.contains_key(&spec.id) {
            return Err(EngineError::Conflict(format!(
                "conference {} exists already",
                spec.id
            )));
        }
        if spec.max_participants == Some(0) {
            return Err(EngineError::Invalid(
                "max_participants must be at least 1".into(),
            ));
        }
        if !self.accepting {
            return Err(EngineError::ShuttingDown);
        }
        let id = spec.id;
        self.create_room(now, spec, false);
        self.conference(id)
    }

    fn create_room(&mut self, now: Instant, spec: ConferenceSpec, bridge: bool) {
        let id = spec.id;
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Create {
                room_id: id,
                wait_music: spec.wait_music.clone(),
                hold_music: spec.hold_music.clone(),
            })));
        let row = ConferenceRow {
            id,
            name: spec.name.clone(),
            max_participants: spec.max_participants,
            options: json!({
                "beeps": spec.beeps,
                "wait_music": spec.wait_music.as_ref().map(|p| p.name.clone()),
                "hold_music": spec.hold_music.as_ref().map(|p| p.name.clone()),
                "record": spec.record,
                "bridge": bridge,
            }),
            status_callback: spec.status_callback.clone(),
        };
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Insert {
                row: Box::new(row),
                at: now,
            })));
        self.rooms.rooms.insert(
            id,
            Room {
                spec,
                bridge,
                created: now,
                started: None,
                participants: Vec::new(),
                playing: None,
                recordings: Vec::new(),
            },
        );
    }

    /// Moves a live answered call into a room (out of the room it is in, if any).
    pub fn join(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        call_id: Uuid,
        options: ParticipantOptions,
    ) -> Result<ParticipantInfo, EngineError> {
        if !self.rooms.rooms.contains_key(&conference_id) {
            return Err(EngineError::ConferenceNotFound(conference_id));
        }
        self.live_answered(call_id)?;
        let r = self.join_inner(now, conference_id, call_id, options);
        self.drain_layer(now);
        r
    }

    fn join_inner(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        call_id: Uuid,
        options: ParticipantOptions,
    ) -> Result<ParticipantInfo, EngineError> {
        let room = self
            .rooms
            .rooms
            .get(&conference_id)
            .ok_or(EngineError::ConferenceNotFound(conference_id))?;
        check_join(room, call_id, &options)?;
        if self.room_of(call_id).is_some() {
            self.leave_room(now, call_id, "moved");
        }
        // Leaving the old room cannot end this one, nor this call: only the others in the
        // old room are hung up when it ends.
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Err(EngineError::NotFound(call_id));
        };
        call.room = Some(conference_id);
        // A route's prompt no longer decides the call's end once it is in a room.
        call.route_mode = None;
        call.pending_join = None;
        let Some(room) = self.rooms.rooms.get_mut(&conference_id) else {
            return Err(EngineError::ConferenceNotFound(conference_id));
        };
        let p = Participant {
            call_id,
            state: options.state,
            start_on_enter: options.start_on_enter,
            end_on_exit: options.end_on_exit,
            joined: now,
        };
        room.participants.push(p.clone());
        let beeps = room.spec.beeps;
        let callback = room.spec.status_callback.clone();
        let start = room.started.is_none() && p.start_on_enter;
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Join {
                room_id: conference_id,
                call_id,
                state: p.state,
            })));
        if beeps {
            self.actions
                .push_back(Action::Media(MediaCommand::Room(RoomCommand::Beep {
                    room_id: conference_id,
                })));
        }
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Joined {
                conference_id,
                call_id,
                payload: participant_json(conference_id, &p),
                callback,
                at: now,
            })));
        if start {
            self.start_room(now, conference_id);
        }
        Ok(self.participant_info(&p))
    }

    fn start_room(&mut self, now: Instant, conference_id: Uuid) {
        let Some(room) = self.rooms.rooms.get_mut(&conference_id) else {
            return;
        };
        room.started = Some(now);
        let callback = room.spec.status_callback.clone();
        let record = room.spec.record;
        let first = room.participants.first().map(|p| p.call_id);
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Started {
                room_id: conference_id,
                started: true,
            })));
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Started {
                conference_id,
                payload: json!({ "conference_id": conference_id }),
                callback: callback.clone(),
                at: now,
            })));
        if record && let Some(left) = first {
            let id = self.mint_id(now);
            self.start_recording_inner(
                now,
                id,
                RecordTarget::Room {
                    room_id: conference_id,
                    left,
                },
                callback,
            );
        }
    }

    /// Takes `call_id` out of its room, if it is in one; ends the room if it had `end_on_exit`
    /// (hanging up the others) or was the last participant.
    pub(super) fn leave_room(&mut self, now: Instant, call_id: Uuid, reason: &str) {
        let Some(conference_id) = self.calls.get_mut(&call_id).and_then(|c| c.room.take()) else {
            return;
        };
        let Some(room) = self.rooms.rooms.get_mut(&conference_id) else {
            return;
        };
        let Some(pos) = room.participants.iter().position(|p| p.call_id == call_id) else {
            return;
        };
        let p = room.participants.remove(pos);
        let empty = room.participants.is_empty();
        let beep = room.spec.beeps && !empty;
        let callback = room.spec.status_callback.clone();
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Leave {
                room_id: conference_id,
                call_id,
            })));
        if beep {
            self.actions
                .push_back(Action::Media(MediaCommand::Room(RoomCommand::Beep {
                    room_id: conference_id,
                })));
        }
        let mut payload = participant_json(conference_id, &p);
        payload["reason"] = json!(reason);
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                conference_id,
                call_id: Some(call_id),
                kind: kinds::PARTICIPANT_LEFT,
                payload,
                callback,
                at: now,
            })));
        if p.end_on_exit {
            self.end_room(now, conference_id, "end_on_exit", EndedBy::System);
        } else if empty {
            self.end_room(now, conference_id, "last_participant_left", EndedBy::System);
        }
    }

    /// Ends a room: its recordings stop, its participants leave and are hung up.
    fn end_room(&mut self, now: Instant, conference_id: Uuid, reason: &str, by: EndedBy) {
        let Some(room) = self.rooms.rooms.remove(&conference_id) else {
            return;
        };
        let callback = room.spec.status_callback.clone();
        for rec in &room.recordings {
            self.stop_recording_inner(*rec);
        }
        for p in &room.participants {
            if let Some(c) = self.calls.get_mut(&p.call_id) {
                c.room = None;
            }
            let mut payload = participant_json(conference_id, p);
            payload["reason"] = json!("conference_ended");
            self.actions
                .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                    conference_id,
                    call_id: Some(p.call_id),
                    kind: kinds::PARTICIPANT_LEFT,
                    payload,
                    callback: callback.clone(),
                    at: now,
                })));
        }
        if let Some(prompt) = &room.playing {
            self.actions
                .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                    conference_id,
                    call_id: None,
                    kind: kinds::PLAY_FINISHED,
                    payload: json!({ "conference_id": conference_id, "prompt": prompt, "stopped": true }),
                    callback: callback.clone(),
                    at: now,
                })));
        }
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::End {
                room_id: conference_id,
            })));
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Ended {
                conference_id,
                reason: reason.to_string(),
                payload: json!({ "conference_id": conference_id, "reason": reason }),
                callback,
                at: now,
            })));
        for p in &room.participants {
            self.end_call(
                now,
                p.call_id,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    format!("conference ended ({reason})"),
                    by,
                ),
            );
        }
    }

    /// Before a call's leg stops: its recordings stop and it leaves its room.
    pub(super) fn detach_call(&mut self, now: Instant, call_id: Uuid) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.pending_join = None;
        let recs = call.recordings.clone();
        for rec in recs {
            self.stop_recording_inner(rec);
        }
        self.leave_room(now, call_id, "hangup");
    }

    /// Changes a participant's state; returns it after the change.
    pub fn update_participant(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        call_id: Uuid,
        patch: ParticipantPatch,
    ) -> Result<ParticipantInfo, EngineError> {
        let room = self
            .rooms
            .rooms
            .get(&conference_id)
            .ok_or(EngineError::ConferenceNotFound(conference_id))?;
        let p = room
            .participants
            .iter()
            .find(|p| p.call_id == call_id)
            .ok_or(EngineError::NotFound(call_id))?;
        let before = p.state;
        let mut state = before;
        if let Some(role) = patch.role {
            check_role(room, call_id, &role)?;
            state.role = role;
        }
        state.muted = patch.muted.unwrap_or(state.muted);
        state.deaf = patch.deaf.unwrap_or(state.deaf);
        state.hold = patch.hold.unwrap_or(state.hold);
        let callback = room.spec.status_callback.clone();
        let room = self
            .rooms
            .rooms
            .get_mut(&conference_id)
            .ok_or(EngineError::ConferenceNotFound(conference_id))?;
        let Some(p) = room.participants.iter_mut().find(|p| p.call_id == call_id) else {
            return Err(EngineError::NotFound(call_id));
        };
        p.state = state;
        let p = p.clone();
        if state == before {
            return Ok(self.participant_info(&p));
        }
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Update {
                room_id: conference_id,
                call_id,
                state,
            })));
        let payload = participant_json(conference_id, &p);
        let mut event = |kind| {
            self.actions
                .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                    conference_id,
                    call_id: Some(call_id),
                    kind,
                    payload: payload.clone(),
                    callback: callback.clone(),
                    at: now,
                })));
        };
        if state.muted != before.muted {
            event(if state.muted {
                kinds::PARTICIPANT_MUTED
            } else {
                kinds::PARTICIPANT_UNMUTED
            });
        }
        if (state.deaf, state.hold, state.role) != (before.deaf, before.hold, before.role) {
            event(kinds::PARTICIPANT_UPDATED);
        }
        Ok(self.participant_info(&p))
    }

    /// Takes a participant out of a room, and hangs its call up if `hangup`.
    pub fn remove_participant(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        call_id: Uuid,
        hangup: bool,
    ) -> Result<(), EngineError> {
        let room = self
            .rooms
            .rooms
            .get(&conference_id)
            .ok_or(EngineError::ConferenceNotFound(conference_id))?;
        if !room.participants.iter().any(|p| p.call_id == call_id) {
            return Err(EngineError::NotFound(call_id));
        }
        self.leave_room(now, call_id, "removed");
        if hangup {
            self.end_call(
                now,
                call_id,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    "removed from conference",
                    EndedBy::Api,
                ),
            );
        }
        self.drain_layer(now);
        Ok(())
    }

    /// Ends a room by API: every leg in it is hung up.
    pub fn end_conference(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        reason: &str,
    ) -> Result<(), EngineError> {
        if !self.rooms.rooms.contains_key(&conference_id) {
            return Err(EngineError::ConferenceNotFound(conference_id));
        }
        self.end_room(now, conference_id, reason, EndedBy::Api);
        self.drain_layer(now);
        Ok(())
    }

    /// Ends every room (shutdown); their legs are hung up.
    pub(super) fn end_all_rooms(&mut self, now: Instant, reason: &str) {
        let ids: Vec<Uuid> = self.rooms.rooms.keys().copied().collect();
        for id in ids {
            self.end_room(now, id, reason, EndedBy::System);
        }
    }

    /// Puts two live answered calls into a new two-party room, both `end_on_exit`: when
    /// either hangs up, the other gets a BYE. Events go to `a`'s status callback (or `b`'s).
    pub fn bridge(
        &mut self,
        now: Instant,
        a: Uuid,
        b: Uuid,
    ) -> Result<ConferenceInfo, EngineError> {
        if a == b {
            return Err(EngineError::Invalid(format!(
                "call {a} cannot be bridged with itself"
            )));
        }
        let cb_a = self.live_answered(a)?.callback.clone();
        let cb_b = self.live_answered(b)?.callback.clone();
        let id = self.mint_id(now);
        let mut spec = ConferenceSpec::new(id);
        spec.status_callback = cb_a.or(cb_b);
        self.create_room(now, spec, true);
        let opts = ParticipantOptions {
            end_on_exit: true,
            ..ParticipantOptions::default()
        };
        let r = self
            .join_inner(now, id, a, opts)
            .and_then(|_| self.join_inner(now, id, b, opts));
        self.drain_layer(now);
        r?;
        self.conference(id)
    }

    /// Plays a prompt to the whole room (`None` stops what plays).
    pub fn play_room(
        &mut self,
        now: Instant,
        conference_id: Uuid,
        prompt: Option<Prompt>,
        repeat: bool,
    ) -> Result<(), EngineError> {
        let room = self
            .rooms
            .rooms
            .get_mut(&conference_id)
            .ok_or(EngineError::ConferenceNotFound(conference_id))?;
        let callback = room.spec.status_callback.clone();
        let previous = room.playing.take();
        room.playing = prompt.as_ref().map(|p| p.name.clone());
        let name = room.playing.clone();
        self.actions
            .push_back(Action::Media(MediaCommand::Room(RoomCommand::Play {
                room_id: conference_id,
                prompt,
                repeat,
            })));
        if let Some(prev) = previous {
            self.actions
                .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                    conference_id,
                    call_id: None,
                    kind: kinds::PLAY_FINISHED,
                    payload: json!({ "conference_id": conference_id, "prompt": prev, "stopped": true }),
                    callback: callback.clone(),
                    at: now,
                })));
        }
        if let Some(name) = name {
            self.actions
                .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                    conference_id,
                    call_id: None,
                    kind: kinds::PLAY_STARTED,
                    payload: json!({ "conference_id": conference_id, "prompt": name, "repeat": repeat }),
                    callback,
                    at: now,
                })));
        }
        Ok(())
    }

    /// The worker's report that a room's prompt ended.
    pub(super) fn on_room_play_finished(&mut self, now: Instant, conference_id: Uuid) {
        let Some(room) = self.rooms.rooms.get_mut(&conference_id) else {
            return;
        };
        let Some(prompt) = room.playing.take() else {
            return;
        };
        let callback = room.spec.status_callback.clone();
        self.actions
            .push_back(Action::Store(StoreOp::Conference(ConferenceOp::Event {
                conference_id,
                call_id: None,
                kind: kinds::PLAY_FINISHED,
                payload: json!({ "conference_id": conference_id, "prompt": prompt, "stopped": false }),
                callback,
                at: now,
            })));
    }

    /// After an outbound call's answer: start its recording (`record`), and join its room
    /// unless synchronous AMD must decide first.
    pub(super) fn after_answer(&mut self, now: Instant, call_id: Uuid) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let record = std::mem::take(&mut call.record_on_answer);
        let wait_for_amd = call.amd.as_ref().is_some_and(|a| !a.cfg.asynchronous);
        let callback = call.callback.clone();
        if record && call.media_running {
            let id = self.mint_id(now);
            self.start_recording_inner(now, id, RecordTarget::Call(call_id), callback);
        }
        if !wait_for_amd {
            self.join_pending(now, call_id);
        }
    }

    /// Joins the room an originate asked for; a call that cannot join (room gone, full) is
    /// hung up.
    pub(super) fn join_pending(&mut self, now: Instant, call_id: Uuid) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.end.is_some() || !call.media_running {
            return;
        }
        let Some((conference_id, options)) = call.pending_join.take() else {
            return;
        };
        if let Err(e) = self.join_inner(now, conference_id, call_id, options) {
            self.end_call(
                now,
                call_id,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    format!("cannot join conference {conference_id}: {e}"),
                    EndedBy::System,
                ),
            );
        }
    }

    // ---- recordings --------------------------------------------------------------------------

    /// Starts a recording of an answered call or a room.
    pub fn start_recording(
        &mut self,
        now: Instant,
        spec: RecordingSpec,
    ) -> Result<RecordingInfo, EngineError> {
        let id = spec.id;
        if self.rooms.recordings.contains_key(&id) || self.rooms.stopped.contains(&id) {
            return Err(EngineError::Conflict(format!(
                "recording {id} exists already"
            )));
        }
        let (target, callback) = match spec.target {
            RecordingTarget::Call(call_id) => {
                let call = self.live_answered(call_id)?;
                (RecordTarget::Call(call_id), call.callback.clone())
            }
            RecordingTarget::Conference {
                conference_id,
                left,
            } => {
                let room = self
                    .rooms
                    .rooms
                    .get(&conference_id)
                    .ok_or(EngineError::ConferenceNotFound(conference_id))?;
                let left = match left {
                    Some(l) if room.participants.iter().any(|p| p.call_id == l) => l,
                    Some(l) => {
                        return Err(EngineError::Invalid(format!(
                            "call {l} is not a participant of conference {conference_id}"
                        )));
                    }
                    None => room
                        .participants
                        .first()
                        .map(|p| p.call_id)
                        .ok_or_else(|| {
                            EngineError::Conflict(format!(
                                "conference {conference_id} has no participant to record"
                            ))
                        })?,
                };
                (
                    RecordTarget::Room {
                        room_id: conference_id,
                        left,
                    },
                    room.spec.status_callback.clone(),
                )
            }
        };
        Ok(self.start_recording_inner(now, id, target, callback))
    }

    pub(super) fn start_recording_inner(
        &mut self,
        now: Instant,
        id: Uuid,
        target: RecordTarget,
        callback: Option<String>,
    ) -> RecordingInfo {
        let date = v7_time(id).unwrap_or_else(|| self.utc_at(now));
        let path = recording_rel_path(id, date);
        let rec = Recording {
            target,
            path: path.clone(),
            paused: false,
            stopping: false,
            callback: callback.clone(),
            started: now,
        };
        match target {
            RecordTarget::Call(c) => {
                if let Some(call) = self.calls.get_mut(&c) {
                    call.recordings.push(id);
                }
            }
            RecordTarget::Room { room_id, .. } => {
                if let Some(room) = self.rooms.rooms.get_mut(&room_id) {
                    room.recordings.push(id);
                }
            }
        }
        self.actions
            .push_back(Action::Media(MediaCommand::Record(RecordCommand::Start {
                recording_id: id,
                target,
                path: self.cfg.recordings_dir.join(&path),
            })));
        let info = self.recording_info(id, &rec);
        let row = RecordingRow {
            id,
            call_id: rec.call_id(),
            conference_id: rec.conference_id(),
            path,
            channels: RECORDING_CHANNELS,
            sample_rate: RECORDING_SAMPLE_RATE,
        };
        self.actions
            .push_back(Action::Store(StoreOp::Recording(RecordingOp::Insert {
                row: Box::new(row),
                payload: serde_json::to_value(&info).unwrap_or_default(),
                callback,
                at: now,
            })));
        self.rooms.recordings.insert(id, rec);
        info
    }

    fn live_recording(&mut self, id: Uuid) -> Result<&mut Recording, EngineError> {
        let stopped = self.rooms.stopped.contains(&id);
        match self.rooms.recordings.get_mut(&id) {
            Some(r) if r.stopping => Err(EngineError::Conflict(format!(
                "recording {id} is stopped already"
            ))),
            Some(r) => Ok(r),
            None if stopped => Err(EngineError::Conflict(format!(
                "recording {id} is stopped already"
            ))),
            None => Err(EngineError::RecordingNotFound(id)),
        }
    }

    fn set_paused(
        &mut self,
        now: Instant,
        id: Uuid,
        paused: bool,
    ) -> Result<RecordingInfo, EngineError> {
        let rec = self.live_recording(id)?;
        if rec.paused == paused {
            return Err(EngineError::Conflict(format!(
                "recording {id} is {} already",
                if paused { "paused" } else { "recording" }
            )));
        }
        rec.paused = paused;
        let (call_id, callback) = (rec.call_id(), rec.callback.clone());
        let cmd = if paused {
            RecordCommand::Pause { recording_id: id }
        } else {
            RecordCommand::Resume { recording_id: id }
        };
        self.actions
            .push_back(Action::Media(MediaCommand::Record(cmd)));
        let info = self.recording(id)?;
        self.actions
            .push_back(Action::Store(StoreOp::Recording(RecordingOp::Status {
                recording_id: id,
                call_id,
                status: info.status,
                payload: serde_json::to_value(&info).unwrap_or_default(),
                callback,
                at: now,
            })));
        Ok(info)
    }

    /// Pauses a recording (conflict if paused or stopped already).
    pub fn pause_recording(
        &mut self,
        now: Instant,
        id: Uuid,
    ) -> Result<RecordingInfo, EngineError> {
        self.set_paused(now, id, true)
    }

    /// Resumes a paused recording (conflict if it is not paused, or stopped).
    pub fn resume_recording(
        &mut self,
        now: Instant,
        id: Uuid,
    ) -> Result<RecordingInfo, EngineError> {
        self.set_paused(now, id, false)
    }

    /// Stops a recording (conflict if stopped already); `recording.completed` follows when the
    /// worker has finished the file.
    pub fn stop_recording(&mut self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.live_recording(id)?;
        self.stop_recording_inner(id);
        self.recording(id)
    }

    fn stop_recording_inner(&mut self, id: Uuid) {
        let Some(rec) = self.rooms.recordings.get_mut(&id) else {
            return;
        };
        if rec.stopping {
            return;
        }
        rec.stopping = true;
        self.actions
            .push_back(Action::Media(MediaCommand::Record(RecordCommand::Stop {
                recording_id: id,
            })));
    }

    /// The worker finished a recording's file (asked to, or on its own after a failure).
    pub(super) fn on_recording_stopped(&mut self, now: Instant, id: Uuid, result: RecordingResult) {
        let Some(rec) = self.rooms.recordings.remove(&id) else {
            return;
        };
        match rec.target {
            RecordTarget::Call(c) => {
                if let Some(call) = self.calls.get_mut(&c) {
                    call.recordings.retain(|r| *r != id);
                }
            }
            RecordTarget::Room { room_id, .. } => {
                if let Some(room) = self.rooms.rooms.get_mut(&room_id) {
                    room.recordings.retain(|r| *r != id);
                }
            }
        }
        if self.rooms.stopped.len() >= STOPPED_MEMORY {
            self.rooms.stopped.pop_front();
        }
        self.rooms.stopped.push_back(id);
        let status = if result.error.is_some() {
            RecordingStatus::Failed
        } else {
            RecordingStatus::Completed
        };
        let payload = json!({
            "id": id,
            "call_id": rec.call_id(),
            "conference_id": rec.conference_id(),
            "path": rec.path,
            "status": status,
            "duration_ms": result.duration_ms,
            "size_bytes": result.size_bytes,
            "sha256": result.sha256,
            "error": result.error,
            "channels": RECORDING_CHANNELS,
            "sample_rate": RECORDING_SAMPLE_RATE,
            "started_at": self.utc_at(rec.started),
        });
        self.actions
            .push_back(Action::Store(StoreOp::Recording(RecordingOp::Finish {
                recording_id: id,
                call_id: rec.call_id(),
                status,
                result,
                payload,
                callback: rec.callback,
                at: now,
            })));
    }

    // ---- prompts on calls --------------------------------------------------------------------

    /// Stops the prompt playing on a call (`play.finished` with `stopped: true` if an API
    /// prompt was playing). The leg goes back to its room's mix, or silence.
    pub fn stop_play(&mut self, now: Instant, id: Uuid) -> Result<(), EngineError> {
        let call = self.live_answered(id)?;
        if call.amd.as_ref().is_some_and(|a| a.dropping) {
            return Err(EngineError::Conflict(format!(
                "call {id} is dropping a voicemail"
            )));
        }
        if let Some(amd) = call.amd.as_mut() {
            amd.held_play = None;
        }
        if matches!(call.route_mode, Some(LegMode::Play { .. })) {
            call.route_mode = None;
        }
        let playing = call.playing.take();
        self.actions
            .push_back(Action::Media(MediaCommand::StopPlay { call_id: id }));
        if let Some(prompt) = playing {
            self.actions.push_back(Action::Store(StoreOp::Event {
                call_id: id,
                kind: kinds::PLAY_FINISHED,
                payload: json!({ "prompt": prompt, "stopped": true }),
                at: now,
            }));
        }
        Ok(())
    }

    /// Starts an API prompt on a call's leg (`play.started`).
    pub(super) fn start_call_prompt(
        &mut self,
        now: Instant,
        id: Uuid,
        prompt: Prompt,
        repeat: bool,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.route_mode = None;
        let previous = call.playing.replace(prompt.name.clone());
        let name = prompt.name.clone();
        self.actions.push_back(Action::Media(MediaCommand::Play {
            call_id: id,
            prompt,
            repeat,
        }));
        if let Some(prev) = previous {
            self.actions.push_back(Action::Store(StoreOp::Event {
                call_id: id,
                kind: kinds::PLAY_FINISHED,
                payload: json!({ "prompt": prev, "stopped": true }),
                at: now,
            }));
        }
        self.actions.push_back(Action::Store(StoreOp::Event {
            call_id: id,
            kind: kinds::PLAY_STARTED,
            payload: json!({ "prompt": name, "repeat": repeat }),
            at: now,
        }));
    }

    /// An API prompt on a call played to its end (`play.finished`).
    pub(super) fn on_call_prompt_finished(&mut self, now: Instant, id: Uuid) {
        let Some(prompt) = self.calls.get_mut(&id).and_then(|c| c.playing.take()) else {
            return;
        };
        self.actions.push_back(Action::Store(StoreOp::Event {
            call_id: id,
            kind: kinds::PLAY_FINISHED,
            payload: json!({ "prompt": prompt, "stopped": false }),
            at: now,
        }));
    }
}
