//! The call engine: SIP dialogs, media legs and call state, one owner for every call.
//!
//! - [`engine`] (pure): the [`engine::CallEngine`] state machine fed `(now, input)`: SIP
//!   transaction events, API commands, media events and timeouts; it returns SIP messages to
//!   send, media commands and store/event records, in order.
//! - [`driver`]: the tokio task around it: SIP sockets, the media worker, the store writer.
//! - This file: the handle the HTTP API and the dialer use to send commands to the engine.

pub mod driver;
pub mod engine;
pub mod rooms;

pub use rooms::{
    ConferenceInfo, ConferenceSpec, ConferenceStatus, ParticipantInfo, ParticipantOptions,
    ParticipantPatch, RecordingInfo, RecordingSpec, RecordingStatus, RecordingTarget,
};

use crate::amd::AmdParams;
use crate::media::player::Prompt;
use crate::store::NewCall;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Capacity of the engine's command channel; a full channel answers 503 to the API.
pub const COMMAND_CAPACITY: usize = 1024;

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No live call with this id on this node.
    #[error("call {0} is not in progress on this node")]
    NotFound(Uuid),
    /// The call is in a state that does not allow the command.
    #[error("{0}")]
    Conflict(String),
    /// The named trunk is not configured.
    #[error("trunk {0:?} is not configured")]
    UnknownTrunk(String),
    /// The destination is not allowed on the trunk (`allowed_prefixes`).
    #[error("destination {to:?} is not allowed on trunk {trunk:?}")]
    DestinationNotAllowed {
        /// Trunk name.
        trunk: String,
        /// Destination.
        to: String,
    },
    /// The trunk has `max_concurrent` calls up.
    #[error("trunk {0:?} is at its concurrent call limit")]
    TrunkAtCapacity(String),
    /// The trunk's `max_cps` would be exceeded.
    #[error("trunk {0:?} is at its calls-per-second limit")]
    TrunkRateLimited(String),
    /// This node has `max_calls` calls up, or its RTP ports are exhausted.
    #[error("{0}")]
    OverCapacity(String),
    /// The server is shutting down and takes no new calls.
    #[error("shutting down")]
    ShuttingDown,
    /// The engine is not running (channel closed).
    #[error("call engine is not running")]
    Stopped,
    /// No live conference with this id on this node.
    #[error("conference {0} is not in progress on this node")]
    ConferenceNotFound(Uuid),
    /// No recording in progress with this id on this node.
    #[error("recording {0} is not in progress on this node")]
    RecordingNotFound(Uuid),
    /// The conference has `max_participants` participants already.
    #[error("conference {0} is full")]
    Full(Uuid),
    /// A value is not acceptable (a role, a coach target not in the room, a prompt).
    #[error("{0}")]
    Invalid(String),
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct Originate {
    /// The row to insert (id, to, from, trunk, callback, metadata…); status is set by the engine.
    pub call: NewCall,
    /// Cancel the INVITE if not answered within this time.
    pub ring_timeout: Duration,
    /// Answering-machine detection on the answered call, if asked for.
    pub amd: Option<CallAmd>,
    /// Join this conference once answered (with synchronous AMD: once the final verdict is
    /// in, unless `on_machine` ended the call or drops a voicemail).
    pub join: Option<(Uuid, ParticipantOptions)>,
    /// Record the call from its answer.
    pub record: bool,
}

/// Answering-machine detection asked for on an outbound call.
///
/// Once the call is answered, its media leg runs an [`crate::amd::AmdDetector`] on every
/// frame it receives; the engine publishes the verdict (`amd.completed`) and acts on
/// [`OnMachine`].
///
/// - **Synchronous** (`asynchronous: false`, the default): nothing is played on the call until
///   the final verdict; a prompt asked for meanwhile (`POST /v1/calls/{id}/play`) is held and
///   starts when a verdict arrives that does not end the call or drop a voicemail.
/// - **Asynchronous**: the call proceeds normally; the verdict arrives as an event only.
#[derive(Debug, Clone)]
pub struct CallAmd {
    /// Detector parameters, mode included.
    pub params: AmdParams,
    /// Whether the call proceeds without waiting for the verdict.
    pub asynchronous: bool,
    /// What to do when a machine answered.
    pub on_machine: OnMachine,
}

/// What the engine does after a machine verdict.
#[derive(Debug, Clone)]
pub enum OnMachine {
    /// Hang up at once (final status `completed`, reason "answering machine").
    Hangup,
    /// Do nothing: the verdict is only reported.
    Continue,
    /// Once the final verdict arrives (`machine_end_*`), play this prompt, starting no
    /// earlier than the verdict's `message_start` (after the beep), then hang up (reason
    /// "voicemail dropped").
    VoicemailDrop(Prompt),
}

/// A reply channel.
pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// A command to the engine, with its reply channel.
#[derive(Debug)]
pub enum EngineCommand {
    /// Place an outbound call. Replies once the call row is stored and the INVITE is under way.
    Originate(Box<Originate>, oneshot::Sender<Result<(), EngineError>>),
    /// Call an agent (a session's leg). Replies as `Originate`.
    OriginateAgent(
        Box<engine::AgentOriginate>,
        oneshot::Sender<Result<(), EngineError>>,
    ),
    /// Hang up (CANCEL before answer, BYE after).
    Hangup(Uuid, oneshot::Sender<Result<(), EngineError>>),
    /// Play a prompt to the call (replacing what plays now).
    Play {
        /// The call.
        call_id: Uuid,
        /// Decoded prompt.
        prompt: Prompt,
        /// Loop until stopped.
        repeat: bool,
        /// Reply.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Send DTMF digits (RFC 4733).
    Dtmf {
        /// The call.
        call_id: Uuid,
        /// Digits `0-9*#A-D`.
        digits: String,
        /// Reply.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Stop the prompt playing on a call.
    StopPlay {
        /// The call.
        call_id: Uuid,
        /// Reply.
        reply: Reply<()>,
    },
    /// Create a conference.
    CreateConference(Box<ConferenceSpec>, Reply<ConferenceInfo>),
    /// Move a live answered call into a conference (out of its current room, if any).
    Join {
        /// The room.
        conference_id: Uuid,
        /// The call.
        call_id: Uuid,
        /// Flags and state.
        options: ParticipantOptions,
        /// Reply: the participant.
        reply: Reply<ParticipantInfo>,
    },
    /// Change a participant (mute, deaf, hold, role).
    UpdateParticipant {
        /// The room.
        conference_id: Uuid,
        /// The participant's call.
        call_id: Uuid,
        /// The change.
        patch: ParticipantPatch,
        /// Reply: the participant after the change.
        reply: Reply<ParticipantInfo>,
    },
    /// Take a participant out of a room, optionally hanging it up.
    RemoveParticipant {
        /// The room.
        conference_id: Uuid,
        /// The participant's call.
        call_id: Uuid,
        /// Hang the call up after it left.
        hangup: bool,
        /// Reply.
        reply: Reply<()>,
    },
    /// End a room and hang up every leg in it.
    EndConference {
        /// The room.
        conference_id: Uuid,
        /// Why (stored and sent in `conference.ended`).
        reason: String,
        /// Reply.
        reply: Reply<()>,
    },
    /// Put two live calls into a new two-party room (`end_on_exit` on both).
    Bridge {
        /// One call.
        a: Uuid,
        /// The other.
        b: Uuid,
        /// Reply: the new room.
        reply: Reply<ConferenceInfo>,
    },
    /// A snapshot of one live room.
    Conference(Uuid, Reply<ConferenceInfo>),
    /// Snapshots of every live room.
    Conferences(Reply<Vec<ConferenceInfo>>),
    /// Play a prompt to a whole room (`None` stops what plays).
    PlayRoom {
        /// The room.
        conference_id: Uuid,
        /// The prompt, or `None` to stop.
        prompt: Option<Prompt>,
        /// Loop until stopped.
        repeat: bool,
        /// Reply.
        reply: Reply<()>,
    },
    /// Start a recording of a call or a room.
    StartRecording(RecordingSpec, Reply<RecordingInfo>),
    /// Pause a recording.
    PauseRecording(Uuid, Reply<RecordingInfo>),
    /// Resume a paused recording.
    ResumeRecording(Uuid, Reply<RecordingInfo>),
    /// Stop a recording (the file is finalized; `recording.completed` follows).
    StopRecording(Uuid, Reply<RecordingInfo>),
    /// A snapshot of one recording in progress.
    Recording(Uuid, Reply<RecordingInfo>),
}

/// A cheap, cloneable handle to the engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<EngineCommand>,
}

impl EngineHandle {
    /// Wraps a command sender (the driver holds the receiver).
    pub fn new(tx: mpsc::Sender<EngineCommand>) -> Self {
        Self { tx }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> EngineCommand,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                EngineError::OverCapacity("call engine is busy, retry shortly".into())
            }
            mpsc::error::TrySendError::Closed(_) => EngineError::Stopped,
        })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Places an outbound call.
    pub async fn originate(&self, o: Originate) -> Result<(), EngineError> {
        self.ask(|r| EngineCommand::Originate(Box::new(o), r)).await
    }

    /// Calls an agent (a configured agent at its registered contact, or a `sip:` URI).
    pub async fn originate_agent(&self, o: engine::AgentOriginate) -> Result<(), EngineError> {
        self.ask(|r| EngineCommand::OriginateAgent(Box::new(o), r))
            .await
    }

    /// Hangs a call up.
    pub async fn hangup(&self, call_id: Uuid) -> Result<(), EngineError> {
        self.ask(|r| EngineCommand::Hangup(call_id, r)).await
    }

    /// Plays a prompt to a call.
    pub async fn play(
        &self,
        call_id: Uuid,
        prompt: Prompt,
        repeat: bool,
    ) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::Play {
            call_id,
            prompt,
            repeat,
            reply,
        })
        .await
    }

    /// Sends DTMF digits on a call.
    pub async fn dtmf(&self, call_id: Uuid, digits: String) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::Dtmf {
            call_id,
            digits,
            reply,
        })
        .await
    }

    /// Stops the prompt playing on a call (`play.finished` with `stopped: true`).
    pub async fn stop_play(&self, call_id: Uuid) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::StopPlay { call_id, reply })
            .await
    }

    /// Creates a conference (status `waiting` until a `start_on_enter` participant joins).
    pub async fn create_conference(
        &self,
        spec: ConferenceSpec,
    ) -> Result<ConferenceInfo, EngineError> {
        self.ask(|r| EngineCommand::CreateConference(Box::new(spec), r))
            .await
    }

    /// Moves a live answered call into a conference.
    pub async fn join(
        &self,
        conference_id: Uuid,
        call_id: Uuid,
        options: ParticipantOptions,
    ) -> Result<ParticipantInfo, EngineError> {
        self.ask(|reply| EngineCommand::Join {
            conference_id,
            call_id,
            options,
            reply,
        })
        .await
    }

    /// Changes a participant; returns it after the change.
    pub async fn update_participant(
        &self,
        conference_id: Uuid,
        call_id: Uuid,
        patch: ParticipantPatch,
    ) -> Result<ParticipantInfo, EngineError> {
        self.ask(|reply| EngineCommand::UpdateParticipant {
            conference_id,
            call_id,
            patch,
            reply,
        })
        .await
    }

    /// Takes a participant out of a room, and hangs it up if `hangup`.
    pub async fn remove_participant(
        &self,
        conference_id: Uuid,
        call_id: Uuid,
        hangup: bool,
    ) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::RemoveParticipant {
            conference_id,
            call_id,
            hangup,
            reply,
        })
        .await
    }

    /// Ends a room and hangs up every leg in it.
    pub async fn end_conference(
        &self,
        conference_id: Uuid,
        reason: String,
    ) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::EndConference {
            conference_id,
            reason,
            reply,
        })
        .await
    }

    /// Bridges two live answered calls (a new two-party room).
    pub async fn bridge(&self, a: Uuid, b: Uuid) -> Result<ConferenceInfo, EngineError> {
        self.ask(|reply| EngineCommand::Bridge { a, b, reply })
            .await
    }

    /// A snapshot of a live room.
    pub async fn conference(&self, conference_id: Uuid) -> Result<ConferenceInfo, EngineError> {
        self.ask(|r| EngineCommand::Conference(conference_id, r))
            .await
    }

    /// Snapshots of every live room.
    pub async fn conferences(&self) -> Result<Vec<ConferenceInfo>, EngineError> {
        self.ask(EngineCommand::Conferences).await
    }

    /// Plays a prompt to a whole room (`None` stops what plays).
    pub async fn play_room(
        &self,
        conference_id: Uuid,
        prompt: Option<Prompt>,
        repeat: bool,
    ) -> Result<(), EngineError> {
        self.ask(|reply| EngineCommand::PlayRoom {
            conference_id,
            prompt,
            repeat,
            reply,
        })
        .await
    }

    /// Starts a recording.
    pub async fn start_recording(&self, spec: RecordingSpec) -> Result<RecordingInfo, EngineError> {
        self.ask(|r| EngineCommand::StartRecording(spec, r)).await
    }

    /// Pauses a recording (409 `Conflict` if it is paused or stopped already).
    pub async fn pause_recording(&self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.ask(|r| EngineCommand::PauseRecording(id, r)).await
    }

    /// Resumes a paused recording.
    pub async fn resume_recording(&self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.ask(|r| EngineCommand::ResumeRecording(id, r)).await
    }

    /// Stops a recording (`Conflict` if it was stopped already).
    pub async fn stop_recording(&self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.ask(|r| EngineCommand::StopRecording(id, r)).await
    }

    /// A snapshot of a recording in progress.
    pub async fn recording(&self, id: Uuid) -> Result<RecordingInfo, EngineError> {
        self.ask(|r| EngineCommand::Recording(id, r)).await
    }
}
