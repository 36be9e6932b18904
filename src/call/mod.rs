//! The call engine: SIP dialogs, media legs and call state, one owner for every call.
//!
//! - [`engine`] (pure): the [`engine::CallEngine`] state machine fed `(now, input)`: SIP
//!   transaction events, API commands, media events and timeouts; it returns SIP messages to
//!   send, media commands and store/event records, in order.
//! - [`driver`]: the tokio task around it: SIP sockets, the media worker, the store writer.
//! - This file: the handle the HTTP API and the dialer use to send commands to the engine.

pub mod driver;
pub mod engine;

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

/// A command to the engine, with its reply channel.
#[derive(Debug)]
pub enum EngineCommand {
    /// Place an outbound call. Replies once the call row is stored and the INVITE is under way.
    Originate(Box<Originate>, oneshot::Sender<Result<(), EngineError>>),
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

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), EngineError>>) -> EngineCommand,
    ) -> Result<(), EngineError> {
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
}
