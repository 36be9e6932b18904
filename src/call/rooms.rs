//! Rooms (conferences and two-party bridges) and recordings as the engine's API sees them:
//! what a caller asks for ([`ConferenceSpec`], [`ParticipantOptions`], [`ParticipantPatch`],
//! [`RecordingSpec`]) and the snapshots the engine answers with ([`ConferenceInfo`],
//! [`ParticipantInfo`], [`RecordingInfo`]), which serialize as the HTTP API returns them.
//!
//! The rules themselves live in the pure engine (`engine/rooms.rs`).

use crate::media::player::Prompt;
use crate::media::room::{ParticipantState, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use uuid::Uuid;

/// Where a room stands (the store's spelling: `waiting`, `active`, `ended`).
pub use crate::store::ConferenceStatus;
/// Where a recording stands (the store's spelling: `recording`, `paused`, `completed`,
/// `interrupted`, `failed`).
pub use crate::store::RecordingStatus;

/// A conference to create.
#[derive(Debug, Clone)]
pub struct ConferenceSpec {
    /// Its id (a v7 UUID from the API).
    pub id: Uuid,
    /// A name for people, if any.
    pub name: Option<String>,
    /// Most participants at once (`None`: no limit); a join beyond it is refused
    /// ([`super::EngineError::Full`]).
    pub max_participants: Option<u32>,
    /// A short beep when a participant joins or leaves.
    pub beeps: bool,
    /// Heard by everyone until a `start_on_enter` participant joins (silence if `None`).
    pub wait_music: Option<Prompt>,
    /// Heard by participants on hold (silence if `None`).
    pub hold_music: Option<Prompt>,
    /// Record the room from the moment it starts.
    pub record: bool,
    /// Where the room's events (and its recordings' events) are delivered.
    pub status_callback: Option<String>,
}

impl ConferenceSpec {
    /// A spec with every option at its default (no limit, no beeps, no music, no recording).
    pub fn new(id: Uuid) -> Self {
        Self {
            id,
            name: None,
            max_participants: None,
            beeps: false,
            wait_music: None,
            hold_music: None,
            record: false,
            status_callback: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// How a call takes part in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantOptions {
    /// Mute, deaf, hold and role.
    #[serde(flatten)]
    pub state: ParticipantState,
    /// The room starts when a participant with this flag joins (default true).
    #[serde(default = "yes")]
    pub start_on_enter: bool,
    /// When this participant leaves, the room ends and every other leg is hung up
    /// (default false).
    #[serde(default)]
    pub end_on_exit: bool,
}

impl Default for ParticipantOptions {
    fn default() -> Self {
        Self {
            state: ParticipantState::default(),
            start_on_enter: true,
            end_on_exit: false,
        }
    }
}

/// A change to a participant; fields left `None` stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantPatch {
    /// Heard by nobody.
    pub muted: Option<bool>,
    /// Hears nothing.
    pub deaf: Option<bool>,
    /// Hears hold music, heard by nobody.
    pub hold: Option<bool>,
    /// Normal, coach (with the target's call id, a participant of the same room) or listen.
    pub role: Option<Role>,
}

/// A participant as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantInfo {
    /// The participant's call.
    pub call_id: Uuid,
    /// Heard by nobody.
    pub muted: bool,
    /// Hears nothing.
    pub deaf: bool,
    /// On hold.
    pub hold: bool,
    /// Normal, coach (`{"coach": {"target": id}}`) or listen.
    pub role: Role,
    /// Its joining starts the room.
    pub start_on_enter: bool,
    /// Its leaving ends the room.
    pub end_on_exit: bool,
    /// When it joined (UTC).
    pub joined_at: DateTime<Utc>,
}

/// A room as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConferenceInfo {
    /// Its id.
    pub id: Uuid,
    /// Name, if any.
    pub name: Option<String>,
    /// `waiting`, `active` or `ended`.
    pub status: ConferenceStatus,
    /// Whether this room is a two-party bridge (`POST /v1/calls/{id}/bridge`).
    pub bridge: bool,
    /// Most participants at once.
    pub max_participants: Option<u32>,
    /// Join/leave beeps.
    pub beeps: bool,
    /// Wait music prompt name.
    pub wait_music: Option<String>,
    /// Hold music prompt name.
    pub hold_music: Option<String>,
    /// Recorded from its start.
    pub record: bool,
    /// Where its events go.
    pub status_callback: Option<String>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Started (UTC), once a `start_on_enter` participant joined.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended (UTC).
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The prompt playing to the whole room, if any.
    pub playing: Option<String>,
    /// Participants, in joining order.
    pub participants: Vec<ParticipantInfo>,
    /// Recordings of the room in progress.
    pub recordings: Vec<Uuid>,
}

/// What to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingTarget {
    /// One answered call: left = the far end, right = what we send it.
    Call(Uuid),
    /// A room: left = the participant `left` (default: the first joined still present),
    /// right = the rest of the room.
    Conference {
        /// The room.
        conference_id: Uuid,
        /// The participant on the left channel.
        left: Option<Uuid>,
    },
}

/// A recording to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSpec {
    /// Its id (a v7 UUID: the file's date folder is its timestamp's date).
    pub id: Uuid,
    /// What it records.
    pub target: RecordingTarget,
}

/// A recording in progress as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingInfo {
    /// Its id.
    pub id: Uuid,
    /// The recorded call, for a call recording.
    pub call_id: Option<Uuid>,
    /// The recorded room, for a room recording.
    pub conference_id: Option<Uuid>,
    /// For a room recording: the participant on the left channel.
    pub left: Option<Uuid>,
    /// The file, relative to the recordings directory (`yyyy/mm/dd/<id>.wav`).
    pub path: PathBuf,
    /// `recording`, `paused` (or `completed`/`failed` once the worker reported it).
    pub status: RecordingStatus,
    /// Whether a stop was asked for (the file is being finalized).
    pub stopping: bool,
    /// Channels in the file (2: left and right).
    pub channels: u16,
    /// Sample rate of the file in Hz.
    pub sample_rate: u32,
    /// When it started (UTC).
    pub started_at: DateTime<Utc>,
}
