//! A participant's state in a room (conference or two-party bridge), shared by the call engine,
//! which decides it, and the mixer, which applies it every tick (pure data).
//!
//! The semantics are the ones call-centre developers know:
//!
//! - **mute**: the participant is heard by nobody; it still hears the room.
//! - **deaf**: the participant hears nothing; it is still heard.
//! - **hold**: the participant hears the room's hold music and is heard by nobody.
//! - **role** ([`Role`]): `normal` (also what "barge" means), `coach` (a supervisor heard only
//!   by the one participant it coaches, "whisper"; it hears everyone), `listen` (hears everyone,
//!   heard by nobody).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a participant takes part in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hears everyone else, is heard by everyone else (a barge is this role).
    #[default]
    Normal,
    /// Heard only by `target` (whisper); hears everyone.
    Coach {
        /// The call of the participant it coaches.
        target: Uuid,
    },
    /// Hears everyone, heard by nobody (silent monitoring).
    Listen,
}

impl Role {
    /// The role's name in the API (`normal`, `coach`, `listen`).
    pub fn name(&self) -> &'static str {
        match self {
            Role::Normal => "normal",
            Role::Coach { .. } => "coach",
            Role::Listen => "listen",
        }
    }
}

/// What the mixer needs to know about one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParticipantState {
    /// Heard by nobody.
    pub muted: bool,
    /// Hears nothing.
    pub deaf: bool,
    /// Hears hold music, heard by nobody.
    pub hold: bool,
    /// Normal, coach (whisper) or listen.
    pub role: Role,
}

impl ParticipantState {
    /// Whether the rest of the room (everyone but a coach's target) hears this participant.
    pub fn heard_by_room(&self) -> bool {
        !self.muted && !self.hold && matches!(self.role, Role::Normal)
    }
}
