//! The call engine (pure): every call's SIP dialog and state, fed `(now, input)`.
//!
//! [`CallEngine`] owns the [`TransactionLayer`] and, per call, the dialog, the SDP session,
//! whether it was answered and how it ended. Inputs: datagrams (`handle_datagram`), API
//! commands (`originate`, `hangup`, `play`, `dtmf`), media events (`handle_media_event`) and
//! timeouts (`handle_timeout`). Outputs, drained after every input: SIP messages to send
//! (`poll_transmit`) and [`Action`]s in order (`poll_action`): media commands for the media
//! worker and store operations for the store writer. The engine never touches a socket, the
//! clock or the database; RTP ports come from an injected [`MediaPorts`].
//!
//! # Calls
//!
//! - **Inbound** (RFC 3261 sec. 13.3): an INVITE to a configured number runs its route. `echo`
//!   and `play` answer at once (180 then 200 with the SDP answer); `reject` answers the code.
//!   Unknown number: 404. No common codec: 488. No RTP port or over `max_calls`: 503 with
//!   `Retry-After`. Shutting down: 503.
//! - **Outbound** (sec. 13.2): `originate` checks the trunk (allowed prefixes, concurrent calls,
//!   calls per second), sends the INVITE with an SDP offer, answers 401/407 once with digest
//!   credentials, CANCELs at the ring timeout, and ACKs every 2xx.
//! - **Ending**: BYE from either side, CANCEL, a final error response, the ring timeout, the
//!   no-media timeout, an API hang-up or shutdown. Every call gets exactly one final status,
//!   decided once ([`EndInfo`]); the store operation `Finish` is emitted after the media leg has
//!   stopped, so it carries the leg's RTP counters.
//!
//! # Deliberate simplifications
//!
//! - In-dialog requests go to the address the dialog started with (the INVITE's source for
//!   inbound calls, the trunk for outbound ones), not to the Contact/Route URIs: those may carry
//!   host names, and we do no DNS. With SIPp, baresip and trunks that is the same place.
//! - One dialog per call: a second 2xx from a forking proxy (another To tag) is ACKed and
//!   sent BYE.
//! - Re-INVITEs are answered (hold and resume: sendonly, recvonly, inactive); we do not send any.
//!
//! # Answering-machine detection
//!
//! An outbound call with [`CallAmd`] starts its leg with the detector's parameters; the media
//! worker runs the detector on every received frame and reports verdicts
//! ([`MediaEvent::Amd`]), including the detector's last word (`unknown` or
//! `machine_end_other`) when the leg stops before a final verdict. The engine records `amd.machine_start` (interim) and
//! `amd.completed` (final) events and acts on [`OnMachine`] for machine verdicts. In
//! synchronous mode a prompt asked for before the final verdict is held until then.
//!
//! # Registrar
//!
//! REGISTER goes to the [`Registrar`] the engine owns ([`CallEngine::registrar`]): digest
//! authentication and bindings are decided there; the engine answers, turns binding changes
//! into [`RegistrationOp`]s for the store (`registration.created`, `registration.removed`) and
//! sends the keep-alive OPTIONS the registrar asks for to each binding's target (the
//! REGISTER's source address), reporting whether a response came back.
//!
//! # Who may call
//!
//! Every new INVITE is admitted first (`agent_calls.rs`): agents authenticate (407) and call
//! numbers or, through a trunk their config allows, the outside world (403 elsewhere); anyone
//! else reaches numbers only from a trunk's address or `[sip] trusted_sources` (403 otherwise).
//!
//! # Rooms and recordings
//!
//! Conferences, two-party bridges and recordings are kept here too (one owner), in
//! [`rooms`]: a call's end takes it out of its room and stops its recordings before its leg
//! stops, and a room ended by an `end_on_exit` participant hangs up the others in the same
//! input. An originate may ask to join a room once answered and to be recorded.

mod agent_calls;
pub mod inbound;
pub mod rooms;
pub mod sessions;

pub use inbound::InboundOp;
pub use sessions::AgentOriginate;

pub use rooms::{
    ConferenceOp, ConferenceRow, RECORDING_CHANNELS, RECORDING_SAMPLE_RATE, RecordingOp,
    RecordingRow, STOPPED_MEMORY, recording_rel_path,
};

use super::{CallAmd, EngineError, OnMachine, Originate, ParticipantOptions};
use crate::amd::{AmdParams, Verdict};
use crate::config::{Config, RouteConfig, TrunkConfig};
use crate::media::g711::Law;
use crate::media::player::Prompt;
use crate::media::room::ParticipantState;
use crate::rtp::session::SessionConfig;
use crate::sip::dialog::Dialog;
use crate::sip::digest::{Challenge, Credentials, DigestClient};
use crate::sip::message::{Request, Response, response_to};
use crate::sip::registrar::{Binding, Registrar, RegistrarEvent, RegistrarSettings, RemovedReason};
use crate::sip::sdp::{self, Codec, LocalMedia, NegotiatedMedia, SessionDescription};
use crate::sip::transaction::{
    TransactionConfig, TransactionEvent, TransactionKey, TransactionLayer, Transmit, Transport,
};
use crate::store::{AmdRow, CallStatus, Direction, EndedBy, FinalStatus, NewCall, RtpStats};
use ezk_sip_types::header::typed::Contact;
use ezk_sip_types::uri::NameAddr;
use ezk_sip_types::uri::SipUri;
use ezk_sip_types::{Method, Name};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Methods we answer in or out of dialogs (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER";
/// Methods we know but do not serve here: answered 405 with `Allow`. Others get 501.
const KNOWN_NOT_ALLOWED: [&str; 7] = [
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "REFER",
    "UPDATE",
    "PRACK",
    "PUBLISH",
];
/// After we CANCEL, wait this long for the INVITE's final response before ending anyway.
pub const CANCEL_GUARD: Duration = Duration::from_secs(32);
/// `Retry-After` seconds on 503 for capacity.
pub const RETRY_AFTER_SECS: u32 = 1;
/// Digest challenges answered per call before giving up (a second 401 means bad credentials).
const MAX_AUTH_ATTEMPTS: u8 = 1;

/// Where the engine gets RTP ports (the driver binds the sockets; tests use a plain pool).
pub trait MediaPorts: Send {
    /// An even RTP port whose socket (and RTCP at port + 1) is ready, or `None` when exhausted.
    fn allocate(&mut self) -> Option<u16>;
    /// Returns a port to the pool (after its media leg stopped, or when never started).
    fn release(&mut self, port: u16);
}

/// What a media leg does with its audio.
#[derive(Debug, Clone)]
pub enum LegMode {
    /// Sends every received frame back (the `echo` route).
    Echo,
    /// Plays a prompt; when it ends the engine is told ([`MediaEvent::PlayFinished`]).
    Play {
        /// The prompt.
        prompt: Prompt,
        /// Loop forever.
        repeat: bool,
    },
    /// Sends silence (an answered outbound call with nothing to play yet).
    Silence,
}

/// A command for the media worker.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// Start a leg on an allocated port.
    Start {
        /// The call.
        call_id: Uuid,
        /// Our RTP port (allocated from [`MediaPorts`]).
        port: u16,
        /// Codec, DTMF payload type and far-end address from the SDP.
        session: SessionConfig,
        /// What to send.
        mode: LegMode,
        /// Run answering-machine detection on the received audio with these parameters
        /// (the detector is created here, at leg start; verdicts come back as
        /// [`MediaEvent::Amd`]).
        amd: Option<AmdParams>,
    },
    /// The far end changed its media (re-INVITE): address, codec, and whether we may send.
    Update {
        /// The call.
        call_id: Uuid,
        /// New far-end address (`None`: hold by `c=0.0.0.0`).
        remote: Option<SocketAddr>,
        /// Codec.
        law: Law,
        /// DTMF payload type.
        dtmf_pt: Option<u8>,
        /// Whether we send audio (false while the far end holds us).
        send: bool,
    },
    /// Replace what the leg sends with a prompt.
    Play {
        /// The call.
        call_id: Uuid,
        /// The prompt.
        prompt: Prompt,
        /// Loop forever.
        repeat: bool,
    },
    /// Send DTMF digits.
    Dtmf {
        /// The call.
        call_id: Uuid,
        /// Digits.
        digits: String,
    },
    /// Stop the prompt playing on the leg (it goes back to its room's mix, or silence).
    StopPlay {
        /// The call.
        call_id: Uuid,
    },
    /// Stop the leg; the worker answers [`MediaEvent::Stopped`] with its counters.
    Stop {
        /// The call.
        call_id: Uuid,
    },
    /// Report [`MediaEvent::Silence`] once the far end has sent nothing above the speech level
    /// for `after` (voicemail: the message ends on silence).
    WatchSilence {
        /// The call.
        call_id: Uuid,
        /// How long the quiet must last.
        after: Duration,
    },
    /// A room (conference or bridge) in the worker's mixer.
    Room(RoomCommand),
    /// A recording (of a call or a room).
    Record(RecordCommand),
}

/// A command about a room (conference or two-party bridge): the worker keeps one mixer per room.
#[derive(Debug, Clone)]
pub enum RoomCommand {
    /// Create the room's mixer.
    Create {
        /// The room (conference id).
        room_id: Uuid,
        /// Heard by everyone until the room has started (`start_on_enter`).
        wait_music: Option<Prompt>,
        /// Heard by participants on hold.
        hold_music: Option<Prompt>,
    },
    /// Put a started leg into the room: from the next tick it hears the room's mix for it.
    Join {
        /// The room.
        room_id: Uuid,
        /// The call.
        call_id: Uuid,
        /// Mute, deaf, hold, role.
        state: ParticipantState,
    },
    /// Change a participant's state.
    Update {
        /// The room.
        room_id: Uuid,
        /// The call.
        call_id: Uuid,
        /// New state.
        state: ParticipantState,
    },
    /// Take a leg out of the room (it sends silence afterwards, unless a prompt plays).
    Leave {
        /// The room.
        room_id: Uuid,
        /// The call.
        call_id: Uuid,
    },
    /// Whether the room has started (until then everyone hears the wait music).
    Started {
        /// The room.
        room_id: Uuid,
        /// Started.
        started: bool,
    },
    /// A short join/leave beep heard by everyone in the room.
    Beep {
        /// The room.
        room_id: Uuid,
    },
    /// Play a prompt to the whole room (`None` stops what plays); a non-looping prompt that
    /// ends is reported as [`MediaEvent::RoomPlayFinished`].
    Play {
        /// The room.
        room_id: Uuid,
        /// The prompt, or `None` to stop.
        prompt: Option<Prompt>,
        /// Loop until stopped.
        repeat: bool,
    },
    /// Remove the room; legs still in it send silence.
    End {
        /// The room.
        room_id: Uuid,
    },
}

/// What a recording records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTarget {
    /// One call: left = what the far end sent, right = what we sent it.
    Call(Uuid),
    /// A room: left = the participant `left`, right = the rest of the room.
    Room {
        /// The room.
        room_id: Uuid,
        /// The participant on the left channel.
        left: Uuid,
    },
}

/// A command about a recording.
#[derive(Debug, Clone)]
pub enum RecordCommand {
    /// Start recording to `path` (a new file; directories are created).
    Start {
        /// The recording.
        recording_id: Uuid,
        /// What to record.
        target: RecordTarget,
        /// The WAV file to write.
        path: std::path::PathBuf,
    },
    /// Stop writing frames until resumed.
    Pause {
        /// The recording.
        recording_id: Uuid,
    },
    /// Write frames again.
    Resume {
        /// The recording.
        recording_id: Uuid,
    },
    /// Finish the file; the worker answers [`MediaEvent::RecordingStopped`].
    Stop {
        /// The recording.
        recording_id: Uuid,
    },
}

/// How a recording ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingResult {
    /// The file.
    pub path: std::path::PathBuf,
    /// Audio frames (20 ms) written.
    pub frames: u64,
    /// Audio length in milliseconds.
    pub duration_ms: u64,
    /// File size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, hex (`None` when it failed).
    pub sha256: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What the media worker reports.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    /// A non-looping prompt played to its end.
    PlayFinished {
        /// The call.
        call_id: Uuid,
    },
    /// No RTP arrived for the configured no-media timeout.
    NoMedia {
        /// The call.
        call_id: Uuid,
    },
    /// A DTMF digit was received.
    Dtmf {
        /// The call.
        call_id: Uuid,
        /// The digit.
        digit: char,
        /// How long it was held.
        duration: Duration,
    },
    /// An answering-machine detection verdict (interim `machine_start` or final).
    Amd {
        /// The call.
        call_id: Uuid,
        /// The verdict; its times are stream times from the leg's start.
        verdict: Verdict,
    },
    /// The far end was quiet for the time asked by [`MediaCommand::WatchSilence`].
    Silence {
        /// The call.
        call_id: Uuid,
    },
    /// A non-looping prompt played to a whole room ended.
    RoomPlayFinished {
        /// The room.
        room_id: Uuid,
    },
    /// A recording ended: stopped by command, or because its call or room ended (the worker
    /// stops a call's recordings before reporting the leg `Stopped`).
    RecordingStopped {
        /// The recording.
        recording_id: Uuid,
        /// How it ended.
        result: RecordingResult,
    },
    /// The leg stopped (after [`MediaCommand::Stop`], or because it failed to start).
    Stopped {
        /// The call.
        call_id: Uuid,
        /// Its port, now free to release.
        port: u16,
        /// Final counters.
        stats: RtpStats,
    },
}

/// A store operation, applied in order by the store writer, which also publishes the
/// matching event (`call.initiated`, `call.ringing`, `call.answered`, `call.completed`).
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// Insert the call row (`call.initiated`).
    Insert {
        /// The row.
        call: Box<NewCall>,
        /// When.
        at: Instant,
    },
    /// The far end rings (`call.ringing`).
    Ringing {
        /// The call.
        call_id: Uuid,
        /// When.
        at: Instant,
    },
    /// Answered (`call.answered`).
    Answered {
        /// The call.
        call_id: Uuid,
        /// When.
        at: Instant,
    },
    /// Ended (`call.completed` with the final status): exactly once per call.
    Finish {
        /// The call.
        call_id: Uuid,
        /// How it ended.
        end: EndInfo,
        /// RTP counters of its leg.
        stats: RtpStats,
        /// When.
        at: Instant,
    },
    /// The final answering-machine verdict: stored on the call row (its `amd` fields) and
    /// published as `amd.completed` with `payload`.
    Amd {
        /// The call.
        call_id: Uuid,
        /// The verdict as the row keeps it.
        amd: AmdRow,
        /// The event payload ([`amd_payload`]).
        payload: serde_json::Value,
        /// When.
        at: Instant,
    },
    /// Any other event about a call (e.g. `call.dtmf`), stored and delivered like the rest.
    Event {
        /// The call.
        call_id: Uuid,
        /// Event type.
        kind: &'static str,
        /// Payload.
        payload: serde_json::Value,
        /// When.
        at: Instant,
    },
    /// A room's row or event.
    Conference(ConferenceOp),
    /// A registration's row or event.
    Registration(RegistrationOp),
    /// A recording's row or event.
    Recording(RecordingOp),
    /// An inbound call's outcome (ring groups, voicemail, missed calls).
    Inbound(InboundOp),
}

/// A change to a stored registration (one row per user and contact).
#[derive(Debug, Clone)]
pub enum RegistrationOp {
    /// Insert or update the row; a new binding (`created`) publishes `registration.created`.
    Upsert {
        /// The binding as it is now.
        binding: Binding,
        /// A new binding rather than a refresh.
        created: bool,
        /// When.
        at: Instant,
    },
    /// Delete the row and publish `registration.removed` with the reason.
    Remove {
        /// The binding as it was.
        binding: Binding,
        /// Why it went.
        reason: RemovedReason,
        /// When.
        at: Instant,
    },
}

/// An output of the engine, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// For the media worker.
    Media(MediaCommand),
    /// For the store writer.
    Store(StoreOp),
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndInfo {
    /// The final status.
    pub status: FinalStatus,
    /// The SIP code that ended it, if one did.
    pub code: Option<u16>,
    /// Reason phrase or internal reason.
    pub reason: String,
    /// Which side ended it.
    pub ended_by: EndedBy,
}

impl EndInfo {
    fn new(status: FinalStatus, code: Option<u16>, reason: impl Into<String>, by: EndedBy) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
            ended_by: by,
        }
    }
}

/// Static settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our SIP address (Via sent-by, Contact).
    pub sip_addr: SocketAddr,
    /// The address written into SDP.
    pub media_ip: IpAddr,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// Most calls at once.
    pub max_calls: usize,
    /// Where recordings are written (`<data dir>/recordings`).
    pub recordings_dir: std::path::PathBuf,
}

impl EngineConfig {
    /// From the loaded configuration (SIP address as bound).
    pub fn from_config(cfg: &Config, sip_addr: SocketAddr) -> Self {
        let public = cfg.server.sip.public_address;
        let sip_addr = SocketAddr::new(public.unwrap_or(sip_addr.ip()), sip_addr.port());
        EngineConfig {
            sip_addr,
            media_ip: public.unwrap_or(cfg.server.rtp.address),
            user_agent: cfg.server.sip.user_agent.clone(),
            max_calls: cfg.server.calls.max_calls,
            recordings_dir: cfg.server.data.dir.join("recordings"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnRole {
    Invite,
    Bye,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Ring,
    CancelGuard,
    /// A ring group's total ring time (on the caller's call).
    Group,
    /// A voicemail message's longest length (on the caller's call).
    Voicemail,
}

#[derive(Debug)]
struct Call {
    id: Uuid,
    direction: Direction,
    trunk: Option<String>,
    sip_call_id: String,
    /// Where requests go (trunk, or the inbound INVITE's source).
    peer: SocketAddr,
    transport: Transport,
    /// UAC: our current INVITE; UAS: the INVITE received.
    invite: Request,
    invite_key: TransactionKey,
    dialog: Option<Dialog>,
    /// UAC: the ACK of the 2xx, resent on 2xx retransmissions.
    ack: Option<Request>,
    local: LocalMedia,
    offer: Option<SessionDescription>,
    port: Option<u16>,
    media_running: bool,
    ringing_reported: bool,
    answered: bool,
    end: Option<EndInfo>,
    /// UAC: a CANCEL is wanted but no provisional has arrived yet (RFC 3261 sec. 9.1).
    cancel_pending: bool,
    auth_attempts: u8,
    digest: Option<DigestClient>,
    route_mode: Option<LegMode>,
    /// UAS: the ACK of our 2xx arrived (or Timer L ended the wait); UAC: always true.
    acked: bool,
    /// Answering-machine detection on this call.
    amd: Option<AmdState>,
    /// Where this call's events (and its recordings' events) go.
    callback: Option<String>,
    /// The room the call is in.
    room: Option<Uuid>,
    /// An originate's room, joined once answered (after the AMD verdict in synchronous mode).
    pending_join: Option<(Uuid, ParticipantOptions)>,
    /// Record from the answer (an originate's `record`).
    record_on_answer: bool,
    /// Recordings of this call not yet reported stopped.
    recordings: Vec<Uuid>,
    /// The API prompt playing on the leg (name), for `play.finished`.
    playing: Option<String>,
    /// An inbound call to a number that tracks missed calls: its ring group, voicemail and
    /// missed-call decision.
    inbound: Option<Box<inbound::InboundCall>>,
    /// A ring-group leg: the caller's call and the member's index.
    member_of: Option<(Uuid, usize)>,
}

/// What every new outbound leg starts from: an RTP port, our media and its offer, a Call-ID
/// and a From tag ([`CallEngine::new_leg`]).
struct NewLeg {
    port: u16,
    local: LocalMedia,
    offer: SessionDescription,
    sip_call_id: String,
    from_tag: String,
}

impl Call {
    /// A UAC leg (`leg`) whose INVITE (`invite`, transaction `invite_key`) has just been sent to
    /// `peer`; everything else starts empty, and the caller sets what differs (trunk, digest,
    /// AMD, room to join, recording, ring-group membership).
    fn outbound(
        id: Uuid,
        leg: NewLeg,
        peer: SocketAddr,
        transport: Transport,
        invite: Request,
        invite_key: TransactionKey,
        callback: Option<String>,
    ) -> Call {
        Call {
            id,
            direction: Direction::Outbound,
            trunk: None,
            sip_call_id: leg.sip_call_id,
            peer,
            transport,
            invite,
            invite_key,
            dialog: None,
            ack: None,
            local: leg.local,
            offer: Some(leg.offer),
            port: Some(leg.port),
            media_running: false,
            ringing_reported: false,
            answered: false,
            end: None,
            cancel_pending: false,
            auth_attempts: 0,
            digest: None,
            route_mode: None,
            acked: true,
            amd: None,
            callback,
            room: None,
            pending_join: None,
            record_on_answer: false,
            recordings: Vec::new(),
            playing: None,
            inbound: None,
            member_of: None,
        }
    }
}

/// Where a call's answering-machine detection stands.
#[derive(Debug)]
struct AmdState {
    cfg: CallAmd,
    /// The final verdict arrived.
    done: bool,
    /// The voicemail-drop prompt is playing; its end hangs up.
    dropping: bool,
    /// Synchronous mode: a prompt asked for before the verdict.
    held_play: Option<(Prompt, bool)>,
    /// Synchronous mode: when the call was answered; `call.answered` is published with the
    /// final verdict (or, at the latest, just before the call's final status).
    held_answered: Option<Instant>,
}

#[derive(Debug, Default)]
struct TrunkState {
    active: usize,
    recent: VecDeque<Instant>,
}

/// The pure call engine; see the module docs.
pub struct CallEngine {
    cfg: EngineConfig,
    config: Arc<Config>,
    layer: TransactionLayer,
    rng: SmallRng,
    ports: Box<dyn MediaPorts>,
    prompts: HashMap<String, Prompt>,
    calls: HashMap<Uuid, Call>,
    by_sip_call_id: HashMap<String, Uuid>,
    by_txn: HashMap<TransactionKey, (Uuid, TxnRole)>,
    timers: BinaryHeap<Reverse<(Instant, TimerKind, Uuid)>>,
    ring_deadline: HashMap<Uuid, (Instant, TimerKind)>,
    trunks: HashMap<String, TrunkState>,
    actions: VecDeque<Action>,
    accepting: bool,
    stats: EngineStats,
    /// BYEs held until the ACK of our 2xx (sec. 15): call -> (Call-ID, BYE, peer, transport).
    deferred_byes: HashMap<Uuid, (String, Request, SocketAddr, Transport)>,
    /// Rooms, recordings and the wall clock as last told.
    rooms: rooms::RoomState,
    /// Generated ringback, played while a ring group rings.
    ringback: Prompt,
    /// Voicemail recordings in progress: recording -> (call, number, caller, status callback).
    voicemails: HashMap<Uuid, (Uuid, String, String, Option<String>)>,
    /// Agents' registrations.
    registrar: Registrar,
    /// Keep-alive OPTIONS in flight: transaction -> (user, contact).
    pings: HashMap<TransactionKey, (String, String)>,
    /// `[sip] trusted_sources`, parsed.
    trusted: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for CallEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEngine")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Inbound INVITEs answered 404 (unknown number).
    pub unknown_number: u64,
    /// INVITEs answered 403 (unknown source, or a destination the agent may not call).
    pub forbidden: u64,
    /// Agents' INVITEs answered 407 (challenge), 429 or 400 by digest authentication.
    pub auth_challenged: u64,
    /// Calls refused for capacity (503).
    pub refused_capacity: u64,
    /// Offers refused for lack of a common codec (488).
    pub no_common_codec: u64,
    /// In-dialog requests matching no call (481).
    pub no_dialog: u64,
}

fn sip_uri(s: &str) -> Option<SipUri> {
    s.parse::<SipUri>().ok()
}

/// The final status a failed INVITE maps to (Twilio's names).
pub fn final_status_for(code: u16) -> FinalStatus {
    match code {
        486 | 600 | 603 => FinalStatus::Busy,
        408 | 480 | 487 => FinalStatus::NoAnswer,
        _ => FinalStatus::Failed,
    }
}

impl CallEngine {
    /// A new engine. `prompts` are the route prompts, decoded by the caller.
    pub fn new(
        cfg: EngineConfig,
        config: Arc<Config>,
        ports: Box<dyn MediaPorts>,
        prompts: HashMap<String, Prompt>,
        rng_seed: u64,
    ) -> Self {
        let layer = TransactionLayer::new(TransactionConfig::new(cfg.sip_addr), rng_seed);
        let mut rng = SmallRng::seed_from_u64(rng_seed ^ 0x5eed);
        // The nonce key: whoever knows it can mint nonces, so it is drawn, never configured.
        let registrar = Registrar::new(
            RegistrarSettings::from_config(&config.server.registrar),
            &config.agents,
            rng.r#gen(),
        );
        CallEngine {
            cfg,
            layer,
            rng,
            ports,
            prompts,
            calls: HashMap::new(),
            by_sip_call_id: HashMap::new(),
            by_txn: HashMap::new(),
            timers: BinaryHeap::new(),
            ring_deadline: HashMap::new(),
            trunks: HashMap::new(),
            actions: VecDeque::new(),
            accepting: true,
            stats: EngineStats::default(),
            deferred_byes: HashMap::new(),
            rooms: rooms::RoomState::default(),
            ringback: crate::inbound::tones::ringback(),
            voicemails: HashMap::new(),
            registrar,
            pings: HashMap::new(),
            trusted: config.trusted_sources(),
            config,
        }
    }

    /// The registrar: agents' bindings ([`Registrar::bindings`]), where to reach them.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Puts back registrations loaded from the store at start; expired ones (and ones of
    /// agents no longer configured) are removed from the store.
    pub fn restore_registrations(&mut self, now: Instant, bindings: Vec<Binding>) {
        for b in bindings {
            self.registrar.restore(now, b);
        }
        self.drain_registrar(now);
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The transaction layer's counters.
    pub fn transaction_stats(&self) -> crate::sip::transaction::TransactionStats {
        self.layer.stats()
    }

    /// The next SIP message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((t, _, _))| *t);
        [
            ours,
            self.layer.poll_timeout(),
            self.registrar.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A datagram (or one framed TCP message) from the network.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        // Malformed input was answered (400) or dropped by the layer, and counted.
        let _ = self.layer.handle_datagram(now, from, transport, bytes);
        self.drain_layer(now);
    }

    /// The driver could not deliver to `destination` (e.g. a TCP connect failed): the
    /// transactions toward it end, and calls waiting on them fail.
    pub fn handle_transport_error(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        transport: Transport,
    ) {
        self.layer
            .handle_transport_error(now, destination, transport);
        self.drain_layer(now);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drain_layer(now);
        if self.registrar.poll_timeout().is_some_and(|t| t <= now) {
            self.registrar.handle_timeout(now);
            self.drain_registrar(now);
        }
        while let Some(Reverse((at, kind, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.ring_deadline.get(&id) != Some(&(at, kind)) {
                continue;
            }
            self.ring_deadline.remove(&id);
            match kind {
                TimerKind::Group => self.on_group_timeout(now, id),
                TimerKind::Voicemail => self.end_call(
                    now,
                    id,
                    EndInfo::new(
                        FinalStatus::Completed,
                        None,
                        "voicemail: longest message reached",
                        EndedBy::System,
                    ),
                ),
                TimerKind::Ring if self.on_member_timeout(now, id) => {}
                TimerKind::Ring => self.give_up_ringing(
                    now,
                    id,
                    EndInfo::new(
                        FinalStatus::NoAnswer,
                        Some(487),
                        "ring timeout",
                        EndedBy::System,
                    ),
                ),
                TimerKind::CancelGuard => {
                    // The far end never answered our CANCEL or INVITE: end here, and destroy
                    // the INVITE transaction stuck in Proceeding (sec. 9.1), or it stays forever.
                    if let Some(c) = self.calls.get(&id) {
                        let key = c.invite_key.clone();
                        self.layer.abandon(&key);
                    }
                    self.finish_without_media(now, id);
                }
            }
        }
        self.drain_layer(now);
    }

    /// Stops taking new calls (shutdown): new INVITEs and originates get 503.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Hangs up every call and ends every room (end of the shutdown grace period).
    pub fn hangup_all(&mut self, now: Instant) {
        // Inbound calls still ringing are missed because the server stops, not the caller.
        self.mark_ringing_missed_by_restart();
        self.end_all_rooms(now, "shutdown");
        let ids: Vec<Uuid> = self.calls.keys().copied().collect();
        for id in ids {
            let answered = self.calls.get(&id).is_some_and(|c| c.answered);
            let status = if answered {
                FinalStatus::Completed
            } else {
                FinalStatus::Canceled
            };
            self.end_call(
                now,
                id,
                EndInfo::new(status, None, "server shutdown", EndedBy::System),
            );
        }
        self.drain_layer(now);
    }

    // ---- API commands ----------------------------------------------------------------------

    /// Places an outbound call. On success the `Insert` store operation is queued before any
    /// other operation of this call.
    pub fn originate(&mut self, now: Instant, o: Originate) -> Result<(), EngineError> {
        self.originate_inner(now, o)?;
        self.drain_layer(now);
        Ok(())
    }

    /// [`CallEngine::originate`] without draining the transaction layer (for callers inside
    /// the engine that are in the middle of their own work).
    fn originate_inner(&mut self, now: Instant, o: Originate) -> Result<(), EngineError> {
        self.admit_outbound(o.call.id, o.join.as_ref())?;
        let mut call = o.call;
        let callback = call.status_callback.clone();
        let trunk_name = call.trunk.clone().unwrap_or_default();
        let trunk: TrunkConfig = self
            .config
            .trunk(&trunk_name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownTrunk(trunk_name.clone()))?;
        let allowed = trunk
            .allowed_prefixes
            .iter()
            .any(|p| p == "*" || call.to.starts_with(p.as_str()));
        if !allowed {
            return Err(EngineError::DestinationNotAllowed {
                trunk: trunk.name.clone(),
                to: call.to.clone(),
            });
        }
        let ts = self.trunks.entry(trunk.name.clone()).or_default();
        if ts.active >= trunk.max_concurrent {
            return Err(EngineError::TrunkAtCapacity(trunk.name.clone()));
        }
        while ts
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            ts.recent.pop_front();
        }
        if ts.recent.len() >= trunk.max_cps as usize {
            return Err(EngineError::TrunkRateLimited(trunk.name.clone()));
        }
        let Some(leg) = self.new_leg() else {
            self.stats.refused_capacity += 1;
            return Err(EngineError::OverCapacity("RTP ports exhausted".into()));
        };
        let ts = self.trunks.entry(trunk.name.clone()).or_default();
        ts.recent.push_back(now);
        ts.active += 1;
        let invite = self.build_invite(&trunk, &call.to, &call.from, &leg);
        let Some(invite) = invite else {
            self.ports.release(leg.port);
            if let Some(ts) = self.trunks.get_mut(&trunk.name) {
                ts.active -= 1;
            }
            return Err(EngineError::Conflict(format!(
                "cannot build a SIP request for {:?}",
                call.to
            )));
        };
        let key = match self.layer.send_request(
            now,
            trunk.address,
            to_transport(trunk.transport),
            invite.clone(),
        ) {
            Ok(k) => k,
            Err(e) => {
                self.ports.release(leg.port);
                if let Some(ts) = self.trunks.get_mut(&trunk.name) {
                    ts.active -= 1;
                }
                return Err(EngineError::OverCapacity(e.to_string()));
            }
        };
        let id = call.id;
        call.sip_call_id = Some(leg.sip_call_id.clone());
        call.status = CallStatus::Initiated;
        self.actions.push_back(Action::Store(StoreOp::Insert {
            call: Box::new(call),
            at: now,
        }));
        let digest = match (&trunk.username, &trunk.password) {
            (Some(u), Some(p)) => Some(DigestClient::new(Credentials {
                username: u.clone(),
                password: p.clone(),
            })),
            _ => None,
        };
        self.by_txn.insert(key.clone(), (id, TxnRole::Invite));
        self.by_sip_call_id.insert(leg.sip_call_id.clone(), id);
        let peer = trunk.address;
        let transport = to_transport(trunk.transport);
        self.calls.insert(
            id,
            Call {
                trunk: Some(trunk.name.clone()),
                digest,
                amd: o.amd.map(|cfg| AmdState {
                    cfg,
                    done: false,
                    dropping: false,
                    held_play: None,
                    held_answered: None,
                }),
                pending_join: o.join,
                record_on_answer: o.record,
                ..Call::outbound(id, leg, peer, transport, invite, key, callback)
            },
        );
        self.set_timer(id, now + o.ring_timeout, TimerKind::Ring);
        Ok(())
    }

    /// Hangs a call up: CANCEL before the answer, BYE after.
    pub fn hangup(&mut self, now: Instant, id: Uuid) -> Result<(), EngineError> {
        let call = self.calls.get(&id).ok_or(EngineError::NotFound(id))?;
        if call.end.is_some() {
            return Err(EngineError::Conflict(format!(
                "call {id} is already ending"
            )));
        }
        if call.answered {
            self.end_call(
                now,
                id,
                EndInfo::new(FinalStatus::Completed, None, "hung up by API", EndedBy::Api),
            );
        } else {
            self.give_up_ringing(
                now,
                id,
                EndInfo::new(
                    FinalStatus::Canceled,
                    Some(487),
                    "canceled by API",
                    EndedBy::Api,
                ),
            );
        }
        self.drain_layer(now);
        Ok(())
    }

    /// Plays a prompt on an answered call.
    /// With synchronous AMD, a prompt asked for before the verdict is held until then; while a
    /// voicemail is being dropped the call takes no other prompt.
    pub fn play(
        &mut self,
        now: Instant,
        id: Uuid,
        prompt: Prompt,
        repeat: bool,
    ) -> Result<(), EngineError> {
        let call = self.live_answered(id)?;
        if let Some(amd) = call.amd.as_mut() {
            if amd.dropping {
                return Err(EngineError::Conflict(format!(
                    "call {id} is dropping a voicemail"
                )));
            }
            if !amd.cfg.asynchronous && !amd.done {
                amd.held_play = Some((prompt, repeat));
                return Ok(());
            }
        }
        self.start_call_prompt(now, id, prompt, repeat);
        Ok(())
    }

    /// Sends DTMF digits on an answered call.
    pub fn dtmf(&mut self, id: Uuid, digits: String) -> Result<(), EngineError> {
        self.live_answered(id)?;
        self.actions.push_back(Action::Media(MediaCommand::Dtmf {
            call_id: id,
            digits,
        }));
        Ok(())
    }

    fn live_answered(&mut self, id: Uuid) -> Result<&mut Call, EngineError> {
        let call = self.calls.get_mut(&id).ok_or(EngineError::NotFound(id))?;
        if call.end.is_some() {
            return Err(EngineError::Conflict(format!("call {id} is ending")));
        }
        if !call.media_running {
            return Err(EngineError::Conflict(format!(
                "call {id} is not answered yet"
            )));
        }
        Ok(call)
    }

    // ---- media events ----------------------------------------------------------------------

    /// A report from the media worker.
    pub fn handle_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::PlayFinished { call_id } if self.inbound_play_finished(now, call_id) => {}
            MediaEvent::Silence { call_id } => self.on_voicemail_silence(now, call_id),
            MediaEvent::PlayFinished { call_id } => {
                // A route's prompt has ended: the route is done. API prompts just stop.
                let from_route = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| matches!(c.route_mode, Some(LegMode::Play { .. })));
                let dropped = self
                    .calls
                    .get(&call_id)
                    .and_then(|c| c.amd.as_ref())
                    .is_some_and(|a| a.dropping);
                if dropped {
                    self.end_call(
                        now,
                        call_id,
                        EndInfo::new(
                            FinalStatus::Completed,
                            None,
                            "voicemail dropped",
                            EndedBy::System,
                        ),
                    );
                } else if from_route {
                    self.end_call(
                        now,
                        call_id,
                        EndInfo::new(
                            FinalStatus::Completed,
                            None,
                            "prompt finished",
                            EndedBy::System,
                        ),
                    );
                } else {
                    self.on_call_prompt_finished(now, call_id);
                }
            }
            MediaEvent::Amd { call_id, verdict } => self.on_amd_verdict(now, call_id, verdict),
            MediaEvent::RoomPlayFinished { room_id } => self.on_room_play_finished(now, room_id),
            MediaEvent::RecordingStopped {
                recording_id,
                result,
            } => {
                let duration_ms = result.duration_ms;
                let failed = result.error.is_some();
                self.on_recording_stopped(now, recording_id, result);
                self.on_voicemail_recorded(now, recording_id, duration_ms, failed);
            }
            MediaEvent::NoMedia { call_id } => {
                self.end_call(
                    now,
                    call_id,
                    EndInfo::new(
                        FinalStatus::Completed,
                        None,
                        "no RTP received (no-media timeout)",
                        EndedBy::System,
                    ),
                );
            }
            MediaEvent::Dtmf {
                call_id,
                digit,
                duration,
            } => {
                if self.calls.contains_key(&call_id) {
                    self.on_inbound_dtmf(now, call_id, digit);
                    self.actions.push_back(Action::Store(StoreOp::Event {
                        call_id,
                        kind: "call.dtmf",
                        payload: serde_json::json!({ "digit": digit.to_string(), "duration_ms": duration.as_millis() as u64 }),
                        at: now,
                    }));
                }
            }
            MediaEvent::Stopped {
                call_id,
                port,
                stats,
            } => {
                self.ports.release(port);
                if let Some(c) = self.calls.get_mut(&call_id) {
                    c.media_running = false;
                    c.port = None;
                    if c.end.is_none() {
                        // The leg failed to start or died on its own: without media the call
                        // cannot go on, so end it here (the far end gets a BYE).
                        c.end = Some(EndInfo::new(
                            FinalStatus::Failed,
                            None,
                            "media leg stopped",
                            EndedBy::System,
                        ));
                        self.detach_call(now, call_id);
                        self.send_bye(now, call_id);
                    }
                    self.finish(now, call_id, stats);
                }
            }
        }
        self.drain_layer(now);
    }

    /// A verdict from the leg's detector: record it, then act on `on_machine`. A call that
    /// is ending still records its final verdict (the worker reports the detector's last word
    /// when the leg stops mid-analysis) but nothing is done about it.
    fn on_amd_verdict(&mut self, now: Instant, id: Uuid, verdict: Verdict) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let ending = call.end.is_some();
        let Some(amd) = call.amd.as_mut() else {
            return;
        };
        if amd.done || (ending && !verdict.is_final) {
            return;
        }
        if !verdict.is_final {
            self.actions.push_back(Action::Store(StoreOp::Event {
                call_id: id,
                kind: "amd.machine_start",
                payload: amd_payload(&verdict),
                at: now,
            }));
            return;
        }
        self.actions.push_back(Action::Store(StoreOp::Amd {
            call_id: id,
            amd: amd_row(&verdict),
            payload: amd_payload(&verdict),
            at: now,
        }));
        if let Some(at) = amd.held_answered.take() {
            self.actions
                .push_back(Action::Store(StoreOp::Answered { call_id: id, at }));
        }
        amd.done = true;
        if ending {
            return;
        }
        let held = amd.held_play.take();
        let machine = verdict.answered_by.is_machine();
        match (&amd.cfg.on_machine, machine) {
            (OnMachine::Hangup, true) => {
                self.end_call(
                    now,
                    id,
                    EndInfo::new(
                        FinalStatus::Completed,
                        None,
                        "answering machine",
                        EndedBy::System,
                    ),
                );
            }
            (OnMachine::VoicemailDrop(prompt), true) => {
                // The worker holds the prompt until the verdict's `message_start`.
                let prompt = prompt.clone();
                amd.dropping = true;
                call.route_mode = None;
                self.actions.push_back(Action::Media(MediaCommand::Play {
                    call_id: id,
                    prompt,
                    repeat: false,
                }));
            }
            _ => {
                if let Some((prompt, repeat)) = held {
                    self.start_call_prompt(now, id, prompt, repeat);
                }
                // The call goes on: an originate's room is joined now.
                self.join_pending(now, id);
            }
        }
    }

    // ---- transaction events -----------------------------------------------------------------

    fn drain_layer(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            self.on_transaction_event(now, ev);
        }
    }

    fn on_transaction_event(&mut self, now: Instant, ev: TransactionEvent) {
        match ev {
            TransactionEvent::IncomingRequest {
                key,
                request,
                source,
                transport,
            } => self.on_request(now, key, request, source, transport),
            TransactionEvent::Response { key, response } => {
                if response.code() >= 200
                    && let Some((user, contact)) = self.pings.remove(&key)
                {
                    // Any final response shows the contact is reachable.
                    self.registrar
                        .handle_ping_result(now, &user, &contact, true);
                    self.drain_registrar(now);
                }
                if let Some((id, role)) = self.by_txn.get(&key).cloned() {
                    if role == TxnRole::Invite {
                        self.on_invite_response(now, id, response);
                    }
                }
            }
            TransactionEvent::Timeout { key, .. } => {
                self.ping_failed(now, &key);
                if let Some((id, TxnRole::Invite)) = self.by_txn.get(&key).cloned() {
                    if self.calls.get(&id).is_some_and(|c| c.end.is_some()) {
                        // We had cancelled; nothing more will come.
                        self.finish_without_media(now, id);
                    } else {
                        let info = EndInfo::new(
                            FinalStatus::Failed,
                            Some(408),
                            "no response to INVITE (Timer B)",
                            EndedBy::System,
                        );
                        self.end_call_no_bye(now, id, info);
                    }
                }
            }
            TransactionEvent::Cancelled { key } => {
                if let Some((id, _)) = self.by_txn.get(&key).cloned() {
                    self.end_call(
                        now,
                        id,
                        EndInfo::new(
                            FinalStatus::Canceled,
                            Some(487),
                            "canceled by caller",
                            EndedBy::Caller,
                        ),
                    );
                }
            }
            TransactionEvent::AckTimeout { key } => {
                if let Some((id, _)) = self.by_txn.get(&key).cloned() {
                    // The wait for the ACK is over: a held BYE goes now.
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.acked = true;
                    }
                    self.send_deferred_bye(now, id);
                    self.end_call(
                        now,
                        id,
                        EndInfo::new(
                            FinalStatus::Failed,
                            Some(408),
                            "no ACK for our 200 OK",
                            EndedBy::System,
                        ),
                    );
                }
            }
            TransactionEvent::TransportError { key } => {
                self.ping_failed(now, &key);
                if let Some((id, TxnRole::Invite)) = self.by_txn.get(&key).cloned() {
                    if self.calls.get(&id).is_some_and(|c| c.end.is_some()) {
                        self.finish_without_media(now, id);
                    } else {
                        let info = EndInfo::new(
                            FinalStatus::Failed,
                            Some(503),
                            "transport error toward the far end",
                            EndedBy::System,
                        );
                        self.end_call_no_bye(now, id, info);
                    }
                }
            }
            TransactionEvent::StrayAck { request, .. } => self.on_ack(now, request),
            TransactionEvent::StrayResponse { response, .. } => self.on_stray_response(response),
            TransactionEvent::Terminated { key } => {
                self.by_txn.remove(&key);
                self.pings.remove(&key);
            }
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let method = req.method().clone();
        let in_dialog = req.to_tag().is_some();
        if method == Method::INVITE && !in_dialog {
            self.on_new_invite(now, key, req, source, transport);
            return;
        }
        if method == Method::REGISTER {
            let r = self.registrar.handle_register(now, &req, source, transport);
            self.respond(now, &key, r);
            self.drain_registrar(now);
            return;
        }
        if method == Method::OPTIONS {
            let mut r = response_to(&req, 200, None, None);
            r.headers.insert(Name::ALLOW, ALLOW);
            r.headers.insert(Name::ACCEPT, "application/sdp");
            self.respond(now, &key, r);
            return;
        }
        let m = method.to_string();
        if method != Method::BYE && method != Method::INVITE && method != Method::INFO {
            let code = if KNOWN_NOT_ALLOWED.contains(&m.as_str()) {
                405
            } else {
                501
            };
            let mut r = response_to(&req, code, None, None);
            r.headers.insert(Name::ALLOW, ALLOW);
            self.respond(now, &key, r);
            return;
        }
        // In-dialog BYE, re-INVITE or INFO: Call-ID and both tags must match (sec. 12.2.2).
        let (to_tag, from_tag) = (req.to_tag(), req.from_tag());
        let found = req
            .call_id()
            .and_then(|cid| self.by_sip_call_id.get(cid).copied())
            .filter(|id| {
                self.calls
                    .get(id)
                    .and_then(|c| c.dialog.as_ref())
                    .is_some_and(|d| {
                        to_tag.as_deref() == Some(d.id.local_tag.as_str())
                            && from_tag.as_deref() == Some(d.id.remote_tag.as_str())
                    })
            });
        let Some(id) = found else {
            self.stats.no_dialog += 1;
            self.respond(now, &key, response_to(&req, 481, None, None));
            return;
        };
        let check = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.dialog.as_mut())
            .map(|d| d.handle_request(&req));
        if let Some(Err(e)) = check {
            let code = if matches!(e, crate::sip::dialog::DialogError::CSeqOutOfOrder { .. }) {
                500
            } else {
                481
            };
            self.respond(now, &key, response_to(&req, code, None, None));
            return;
        }
        if method == Method::BYE {
            self.respond(now, &key, response_to(&req, 200, None, None));
            let by = match self.calls.get(&id).map(|c| c.direction) {
                Some(Direction::Inbound) => EndedBy::Caller,
                _ => EndedBy::Callee,
            };
            let info = EndInfo::new(FinalStatus::Completed, None, "BYE", by);
            self.end_call_no_bye(now, id, info);
        } else if method == Method::INFO {
            self.respond(now, &key, response_to(&req, 200, None, None));
        } else {
            self.on_reinvite(now, id, key, req);
        }
    }

    /// A keep-alive OPTIONS got no response (or could not be sent).
    fn ping_failed(&mut self, now: Instant, key: &TransactionKey) {
        if let Some((user, contact)) = self.pings.remove(key) {
            self.registrar
                .handle_ping_result(now, &user, &contact, false);
            self.drain_registrar(now);
        }
    }

    /// Turns the registrar's events into store operations and keep-alive OPTIONS.
    fn drain_registrar(&mut self, now: Instant) {
        while let Some(ev) = self.registrar.poll_event() {
            let op = match ev {
                RegistrarEvent::Created(binding) => RegistrationOp::Upsert {
                    binding,
                    created: true,
                    at: now,
                },
                RegistrarEvent::Refreshed(binding) => RegistrationOp::Upsert {
                    binding,
                    created: false,
                    at: now,
                },
                RegistrarEvent::Removed { binding, reason } => RegistrationOp::Remove {
                    binding,
                    reason,
                    at: now,
                },
                RegistrarEvent::Ping {
                    user,
                    contact,
                    target,
                    transport,
                } => {
                    self.send_ping(now, user, contact, target, transport);
                    continue;
                }
            };
            self.actions
                .push_back(Action::Store(StoreOp::Registration(op)));
        }
    }

    /// Sends a keep-alive OPTIONS to a binding's target (RFC 3261 sec. 11).
    fn send_ping(
        &mut self,
        now: Instant,
        user: String,
        contact: String,
        target: SocketAddr,
        transport: Transport,
    ) {
        let Some(uri) = sip_uri(&contact) else {
            // Not a URI we can address: counts as unanswered.
            self.registrar
                .handle_ping_result(now, &user, &contact, false);
            return;
        };
        let mut r = Request::new(Method::OPTIONS, uri);
        let tag = self.layer.new_tag();
        let call_id = format!(
            "{:032x}@{}",
            self.rng.r#gen::<u128>(),
            self.cfg.sip_addr.ip()
        );
        r.headers.insert(Name::MAX_FORWARDS, "70");
        r.headers.insert(
            Name::FROM,
            format!("<sip:trunkline@{}>;tag={tag}", self.cfg.sip_addr),
        );
        r.headers.insert(Name::TO, format!("<{contact}>"));
        r.headers.insert(Name::CALL_ID, call_id);
        r.headers.insert(Name::CSEQ, "1 OPTIONS");
        r.headers.insert_named(&self.contact(transport));
        r.headers
            .insert(Name::USER_AGENT, self.cfg.user_agent.clone());
        match self.layer.send_request(now, target, transport, r) {
            Ok(key) => {
                self.pings.insert(key, (user, contact));
            }
            Err(_) => self
                .registrar
                .handle_ping_result(now, &user, &contact, false),
        }
    }

    fn on_new_invite(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        if !self.accepting {
            let mut r = response_to(&req, 503, Some("Shutting Down"), None);
            r.headers.insert(Name::RETRY_AFTER, "5");
            self.respond(now, &key, r);
            return;
        }
        // A retransmission that reached us as a new transaction (new branch) for a live call.
        if let Some(cid) = req.call_id()
            && self.by_sip_call_id.contains_key(cid)
        {
            self.respond(
                now,
                &key,
                response_to(&req, 482, Some("Loop Detected"), None),
            );
            return;
        }
        let user = req.request_uri_user().unwrap_or("").to_string();
        // Who may call what: agents authenticate, others must come from a known source.
        let (number, route, closed, agent_out) =
            match self.admit_invite(now, &key, &req, source, &user) {
                None => return,
                Some(agent_calls::Admitted::Number(number)) => {
                    // Business hours, then `number` hops, decide what runs.
                    let (route, closed) = self.effective_route(now, &number);
                    (number, route, closed, None)
                }
                Some(agent_calls::Admitted::Agent(out)) => {
                    let (number, route) = self.agent_route(&out);
                    (number, route, false, Some(out))
                }
            };
        let tracked = number.tracks_missed_calls()
            || matches!(route, RouteConfig::RingGroup(_) | RouteConfig::Voicemail(_));
        if let RouteConfig::Reject { code } = route {
            self.respond(now, &key, response_to(&req, code, None, None));
            let id = self.record_rejected(now, &req, &user, code);
            if tracked {
                let caller = party_of(req.from().map(|f| uri_string(&f.uri.uri)));
                let reason = if closed {
                    crate::inbound::MissReason::Closed
                } else {
                    crate::inbound::MissReason::NoAgents
                };
                self.record_rejected_missed(now, id, &number, caller, reason);
            }
            return;
        }
        if self.calls.len() >= self.cfg.max_calls {
            self.stats.refused_capacity += 1;
            let mut r = response_to(&req, 503, Some("Over Capacity"), None);
            r.headers
                .insert(Name::RETRY_AFTER, RETRY_AFTER_SECS.to_string());
            self.respond(now, &key, r);
            return;
        }
        let offer = if req.body().is_empty() {
            None
        } else {
            match SessionDescription::parse(req.body()) {
                Ok(o) => Some(o),
                Err(e) => {
                    let mut r = response_to(&req, 400, Some("Bad SDP"), None);
                    r.headers
                        .insert(Name::WARNING, format!("399 trunkline \"{e}\""));
                    self.respond(now, &key, r);
                    return;
                }
            }
        };
        // A ring group answers only when an agent does: until then the caller hears the
        // group's prompt or ringback as early media (183 with SDP), or gets a 180 when the
        // INVITE had no offer.
        let early = matches!(route, RouteConfig::RingGroup(_));
        let mode = match &route {
            RouteConfig::Echo => LegMode::Echo,
            RouteConfig::Play { prompt, repeat } => match self.prompts.get(prompt) {
                Some(p) => LegMode::Play {
                    prompt: p.clone(),
                    repeat: *repeat,
                },
                None => {
                    let r = response_to(&req, 500, Some("Prompt Not Loaded"), None);
                    self.respond(now, &key, r);
                    return;
                }
            },
            RouteConfig::RingGroup(g) => {
                match g.prompt.as_ref().and_then(|p| self.prompts.get(p)) {
                    Some(p) => LegMode::Play {
                        prompt: p.clone(),
                        repeat: false,
                    },
                    None => LegMode::Play {
                        prompt: self.ringback.clone(),
                        repeat: true,
                    },
                }
            }
            RouteConfig::Voicemail(v) => LegMode::Play {
                prompt: crate::inbound::tones::greeting_with_beep(
                    v.greeting.as_ref().and_then(|g| self.prompts.get(g)),
                ),
                repeat: false,
            },
            RouteConfig::Reject { .. } | RouteConfig::Number { .. } => return,
        };
        let Some(port) = self.ports.allocate() else {
            self.stats.refused_capacity += 1;
            let mut r = response_to(&req, 503, Some("RTP Ports Exhausted"), None);
            r.headers
                .insert(Name::RETRY_AFTER, RETRY_AFTER_SECS.to_string());
            self.respond(now, &key, r);
            return;
        };
        let local = LocalMedia::new(self.cfg.media_ip, port, self.rng.r#gen::<u32>() as u64);
        // Answer the offer (or make one, for an offerless INVITE: the answer comes in the ACK).
        let (sdp_body, negotiated) = match &offer {
            Some(o) => match sdp::answer(o, &local) {
                Ok(a) => (a.sdp, Some(a.media)),
                Err(e) => {
                    self.ports.release(port);
                    self.stats.no_common_codec += 1;
                    let mut r = response_to(&req, 488, None, None);
                    r.headers
                        .insert(Name::WARNING, format!("304 trunkline \"{e}\""));
                    self.respond(now, &key, r);
                    return;
                }
            },
            None => (sdp::offer(&local), None),
        };
        let to_tag = self.layer.new_tag();
        let dialog = match Dialog::new_uas(&req, &to_tag, Some(self.contact(transport))) {
            Ok(d) => d,
            Err(e) => {
                self.ports.release(port);
                let mut r = response_to(&req, 400, Some("Bad Request"), None);
                r.headers
                    .insert(Name::WARNING, format!("399 trunkline \"{e}\""));
                self.respond(now, &key, r);
                return;
            }
        };
        let id = self.new_call_id();
        let sip_call_id = req.call_id().unwrap_or_default().to_string();
        let from = party_of(req.from().map(|f| uri_string(&f.uri.uri)));
        let metadata = match &agent_out {
            Some(o) => serde_json::json!({ "agent": o.agent, "trunk": o.trunk }),
            None => serde_json::json!({}),
        };
        let new = NewCall {
            id,
            direction: Direction::Inbound,
            from: from.clone(),
            to: user.clone(),
            trunk: None,
            sip_call_id: Some(sip_call_id.clone()),
            status: CallStatus::Initiated,
            status_callback: number.status_callback.clone(),
            metadata,
            idempotency_key: None,
            api_key_id: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        self.actions.push_back(Action::Store(StoreOp::Insert {
            call: Box::new(new),
            at: now,
        }));
        if early && negotiated.is_some() {
            let mut progress = response_to(&req, 183, None, Some(&to_tag));
            progress.headers.insert_named(&self.contact(transport));
            progress
                .headers
                .insert(Name::CONTENT_TYPE, "application/sdp");
            progress.body = sdp_body.to_bytes().into();
            self.respond(now, &key, progress);
        } else {
            let ringing = response_to(&req, 180, None, Some(&to_tag));
            self.respond(now, &key, ringing);
        }
        self.actions.push_back(Action::Store(StoreOp::Ringing {
            call_id: id,
            at: now,
        }));
        if !early {
            let mut ok = response_to(&req, 200, None, Some(&to_tag));
            ok.headers.insert_named(&self.contact(transport));
            ok.headers.insert(Name::ALLOW, ALLOW);
            ok.headers.insert(Name::SERVER, self.cfg.user_agent.clone());
            ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
            ok.body = sdp_body.to_bytes().into();
            self.respond(now, &key, ok);
            self.actions.push_back(Action::Store(StoreOp::Answered {
                call_id: id,
                at: now,
            }));
        }
        self.by_txn.insert(key.clone(), (id, TxnRole::Invite));
        self.by_sip_call_id.insert(sip_call_id.clone(), id);
        let inbound = tracked.then(|| {
            let mut ib =
                inbound::InboundCall::new(now, &number, from.clone(), closed, sdp_body.clone());
            ib.agent_out = agent_out;
            Box::new(ib)
        });
        let mut call = Call {
            id,
            direction: Direction::Inbound,
            trunk: None,
            sip_call_id,
            peer: source,
            transport,
            invite: req,
            invite_key: key,
            dialog: Some(dialog),
            ack: None,
            local,
            offer: if offer.is_none() {
                Some(sdp_body)
            } else {
                None
            },
            port: Some(port),
            media_running: false,
            ringing_reported: true,
            answered: !early,
            end: None,
            cancel_pending: false,
            auth_attempts: 0,
            digest: None,
            route_mode: Some(mode.clone()),
            acked: false,
            amd: None,
            callback: number.status_callback.clone(),
            room: None,
            pending_join: None,
            record_on_answer: false,
            recordings: Vec::new(),
            playing: None,
            inbound,
            member_of: None,
        };
        if early {
            // The early-media prompt is not the route's: its end starts the ringing.
            call.route_mode = None;
        }
        if let Some(media) = negotiated {
            self.start_media(&mut call, media, mode);
        }
        self.calls.insert(id, call);
        if tracked {
            self.start_inbound(now, id, route);
        }
    }

    fn record_rejected(&mut self, now: Instant, req: &Request, user: &str, code: u16) -> Uuid {
        let id = self.new_call_id();
        let new = NewCall {
            id,
            direction: Direction::Inbound,
            from: party_of(req.from().map(|f| uri_string(&f.uri.uri))),
            to: user.to_string(),
            trunk: None,
            sip_call_id: req.call_id().map(str::to_string),
            status: CallStatus::Initiated,
            status_callback: None,
            metadata: serde_json::json!({}),
            idempotency_key: None,
            api_key_id: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        self.actions.push_back(Action::Store(StoreOp::Insert {
            call: Box::new(new),
            at: now,
        }));
        let end = EndInfo::new(
            final_status_for(code),
            Some(code),
            "rejected by route",
            EndedBy::Callee,
        );
        self.actions.push_back(Action::Store(StoreOp::Finish {
            call_id: id,
            end,
            stats: RtpStats::default(),
            at: now,
        }));
        id
    }

    fn on_reinvite(&mut self, now: Instant, id: Uuid, key: TransactionKey, req: Request) {
        let sip_addr = self.cfg.sip_addr;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.end.is_some() {
            let r = response_to(&req, 481, None, None);
            self.respond(now, &key, r);
            return;
        }
        let offer = match SessionDescription::parse(req.body()) {
            Ok(o) => o,
            Err(_) if req.body().is_empty() => {
                // Offerless re-INVITE: offer our current media again.
                let mut ok = response_to(&req, 200, None, None);
                call.local.bump_version();
                ok.body = sdp::offer(&call.local).to_bytes().into();
                ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
                let contact = contact_for(sip_addr, call.transport);
                ok.headers.insert_named(&contact);
                self.respond(now, &key, ok);
                return;
            }
            Err(e) => {
                let mut r = response_to(&req, 488, None, None);
                r.headers
                    .insert(Name::WARNING, format!("399 trunkline \"{e}\""));
                self.respond(now, &key, r);
                return;
            }
        };
        call.local.bump_version();
        match sdp::answer(&offer, &call.local) {
            Ok(a) => {
                let mut ok = response_to(&req, 200, None, None);
                ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
                ok.body = a.sdp.to_bytes().into();
                let contact = contact_for(sip_addr, call.transport);
                ok.headers.insert_named(&contact);
                if call.media_running {
                    self.actions.push_back(Action::Media(MediaCommand::Update {
                        call_id: id,
                        remote: a.media.remote_rtp,
                        law: law_of(a.media.codec),
                        dtmf_pt: a.media.telephone_event,
                        send: a.media.direction.sends() && !a.media.remote_hold,
                    }));
                }
                self.respond(now, &key, ok);
            }
            Err(e) => {
                let mut r = response_to(&req, 488, None, None);
                r.headers
                    .insert(Name::WARNING, format!("304 trunkline \"{e}\""));
                self.respond(now, &key, r);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        // A BYE held for this ACK (the call may have finished meanwhile) goes now.
        let held = self
            .deferred_byes
            .iter()
            .find(|(_, d)| ack.call_id() == Some(d.0.as_str()))
            .map(|(id, _)| *id);
        if let Some(id) = held {
            if let Some(c) = self.calls.get_mut(&id) {
                c.acked = true;
            }
            self.send_deferred_bye(now, id);
        }
        let Some(id) = ack
            .call_id()
            .and_then(|c| self.by_sip_call_id.get(c).copied())
        else {
            return;
        };
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        call.acked = true;
        // An offerless INVITE: the answer to our offer is in the ACK.
        if !call.media_running
            && call.end.is_none()
            && call.direction == Direction::Inbound
            && let Some(offer) = call.offer.take()
        {
            let mode = call.route_mode.clone().unwrap_or(LegMode::Silence);
            match SessionDescription::parse(ack.body())
                .and_then(|a| sdp::process_answer(&offer, &a))
            {
                Ok(media) => {
                    self.start_media(&mut call, media, mode);
                    self.calls.insert(id, call);
                    self.on_inbound_media_started(now, id);
                    return;
                }
                Err(e) => {
                    self.calls.insert(id, call);
                    let info = EndInfo::new(
                        FinalStatus::Failed,
                        Some(488),
                        format!("no usable SDP answer in ACK: {e}"),
                        EndedBy::System,
                    );
                    self.end_call(now, id, info);
                    return;
                }
            }
        }
        self.calls.insert(id, call);
    }

    fn on_stray_response(&mut self, response: Response) {
        // A retransmitted 2xx to our INVITE after the transaction ended: ACK it again.
        if response.code() / 100 != 2 {
            return;
        }
        let Some(id) = response
            .call_id()
            .and_then(|c| self.by_sip_call_id.get(c).copied())
        else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id)
            && let Some(ack) = call.ack.as_mut()
        {
            self.layer
                .send_stateless_request(call.peer, call.transport, ack);
        }
    }

    fn on_invite_response(&mut self, now: Instant, id: Uuid, resp: Response) {
        let code = resp.code();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.direction != Direction::Outbound {
            return;
        }
        match code {
            100..=199 => {
                // Any provisional, 100 Trying included, allows the CANCEL (sec. 9.1).
                if call.cancel_pending {
                    call.cancel_pending = false;
                    let key = call.invite_key.clone();
                    self.send_cancel(now, id, &key);
                    return;
                }
                if code == 100 {
                    return;
                }
                if !call.ringing_reported && call.end.is_none() {
                    call.ringing_reported = true;
                    self.actions.push_back(Action::Store(StoreOp::Ringing {
                        call_id: id,
                        at: now,
                    }));
                }
            }
            200..=299 => self.on_invite_2xx(now, id, resp),
            401 | 407
                if call.end.is_none()
                    && call.auth_attempts < MAX_AUTH_ATTEMPTS
                    && call.digest.is_some() =>
            {
                self.retry_with_auth(now, id, resp);
            }
            _ => {
                let end = match call.end.clone() {
                    // We cancelled (ring timeout or API): keep that outcome.
                    Some(e) => e,
                    None => EndInfo::new(
                        final_status_for(code),
                        Some(code),
                        resp.reason().to_string(),
                        EndedBy::Callee,
                    ),
                };
                call.end = None;
                self.end_call_no_bye(now, id, end);
            }
        }
    }

    fn on_invite_2xx(&mut self, now: Instant, id: Uuid, resp: Response) {
        let sip_addr = self.cfg.sip_addr;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // A 2xx retransmission, or a second 2xx from a fork.
        if let Some(d) = &call.dialog {
            let same = resp.to_tag().is_some_and(|t| t == d.id.remote_tag);
            if same {
                if let Some(ack) = call.ack.as_mut() {
                    self.layer
                        .send_stateless_request(call.peer, call.transport, ack);
                }
            } else if let Ok(mut other) = Dialog::new_uac(&call.invite, &resp, None) {
                let mut ack = other.create_ack();
                self.layer
                    .send_stateless_request(call.peer, call.transport, &mut ack);
                let bye = other.create_request(Method::BYE);
                let _ = self.layer.send_request(now, call.peer, call.transport, bye);
            }
            return;
        }
        let contact = contact_for(sip_addr, call.transport);
        let mut dialog = match Dialog::new_uac(&call.invite, &resp, Some(contact)) {
            Ok(d) => d,
            Err(e) => {
                let info = EndInfo::new(
                    FinalStatus::Failed,
                    Some(resp.code()),
                    format!("unusable 2xx: {e}"),
                    EndedBy::System,
                );
                call.end = None;
                self.end_call_no_bye(now, id, info);
                return;
            }
        };
        let mut ack = dialog.create_ack();
        self.layer
            .send_stateless_request(call.peer, call.transport, &mut ack);
        call.ack = Some(ack);
        call.dialog = Some(dialog);
        self.ring_deadline.remove(&id);
        if call.end.is_some() {
            // Answered after we gave up (CANCEL crossed the 2xx): hang up, keep the outcome.
            self.send_bye(now, id);
            self.finish_without_media(now, id);
            return;
        }
        call.answered = true;
        match call.amd.as_mut() {
            // Synchronous AMD: the answer is published with the verdict.
            Some(amd) if !amd.cfg.asynchronous => amd.held_answered = Some(now),
            _ => self.actions.push_back(Action::Store(StoreOp::Answered {
                call_id: id,
                at: now,
            })),
        }
        let negotiated = call
            .offer
            .as_ref()
            .ok_or(sdp::SdpError::NoAudio)
            .and_then(|o| {
                SessionDescription::parse(resp.body()).and_then(|a| sdp::process_answer(o, &a))
            });
        match negotiated {
            Ok(media) => {
                let mut call = self.calls.remove(&id).expect("present");
                self.start_media(&mut call, media, LegMode::Silence);
                self.calls.insert(id, call);
                self.after_answer(now, id);
                self.on_member_answered(now, id);
            }
            Err(e) => {
                let info = EndInfo::new(
                    FinalStatus::Failed,
                    Some(488),
                    format!("no usable SDP answer: {e}"),
                    EndedBy::System,
                );
                self.end_call(now, id, info);
            }
        }
    }

    fn retry_with_auth(&mut self, now: Instant, id: Uuid, resp: Response) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (challenge_name, answer_name) = if resp.code() == 407 {
            (Name::PROXY_AUTHENTICATE, Name::PROXY_AUTHORIZATION)
        } else {
            (Name::WWW_AUTHENTICATE, Name::AUTHORIZATION)
        };
        let challenges: Vec<String> = resp
            .headers
            .get_raw(&challenge_name)
            .map(|v| v.to_string())
            .collect();
        let Some(challenge) = Challenge::best(challenges.iter().map(String::as_str)) else {
            let info = EndInfo::new(
                FinalStatus::Failed,
                Some(resp.code()),
                "unusable authentication challenge",
                EndedBy::Callee,
            );
            self.end_call_no_bye(now, id, info);
            return;
        };
        call.auth_attempts += 1;
        let Some(digest) = call.digest.as_mut() else {
            return;
        };
        digest.set_challenge(challenge);
        let uri = uri_string(&call.invite.line.uri);
        let Some(value) = digest.authorize("INVITE", &uri, &mut self.rng) else {
            let info = EndInfo::new(
                FinalStatus::Failed,
                Some(resp.code()),
                "cannot answer authentication challenge",
                EndedBy::System,
            );
            self.end_call_no_bye(now, id, info);
            return;
        };
        let mut invite = call.invite.clone();
        invite.headers.remove(&Name::VIA);
        invite.headers.remove(&answer_name);
        let cseq = invite.cseq().map(|c| c.cseq).unwrap_or(1) + 1;
        invite.headers.remove(&Name::CSEQ);
        invite.headers.insert(Name::CSEQ, format!("{cseq} INVITE"));
        invite.headers.insert(answer_name, value);
        match self
            .layer
            .send_request(now, call.peer, call.transport, invite.clone())
        {
            Ok(key) => {
                self.by_txn.insert(key.clone(), (id, TxnRole::Invite));
                call.invite_key = key;
                call.invite = invite;
            }
            Err(e) => {
                let info = EndInfo::new(
                    FinalStatus::Failed,
                    None,
                    format!("cannot resend INVITE: {e}"),
                    EndedBy::System,
                );
                self.end_call_no_bye(now, id, info);
            }
        }
    }

    // ---- ending ------------------------------------------------------------------------------

    /// Gives up on a call not yet answered: CANCEL now, or once a provisional arrives (a CANCEL
    /// may not precede the first provisional, sec. 9.1). The outcome is decided now; a guard
    /// timer ends the call if the far end never finishes the INVITE.
    fn give_up_ringing(&mut self, now: Instant, id: Uuid, info: EndInfo) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.end.is_some() {
            return;
        }
        if call.answered {
            self.end_call(now, id, info);
            return;
        }
        call.end = Some(info);
        let key = call.invite_key.clone();
        if self.layer.create_cancel(&key).is_ok() {
            self.send_cancel(now, id, &key);
        } else if let Some(c) = self.calls.get_mut(&id) {
            c.cancel_pending = true;
        }
        self.set_timer(id, now + CANCEL_GUARD, TimerKind::CancelGuard);
    }

    fn send_cancel(&mut self, now: Instant, id: Uuid, invite: &TransactionKey) {
        if let Ok(k) = self.layer.send_cancel(now, invite) {
            self.by_txn.insert(k, (id, TxnRole::Cancel));
        }
    }

    fn send_bye(&mut self, now: Instant, id: Uuid) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let bye = dialog.create_request(Method::BYE);
        if !call.acked {
            // A UAS sends no BYE before the ACK of its 2xx or the end of that wait (sec. 15).
            let held = (call.sip_call_id.clone(), bye, call.peer, call.transport);
            self.deferred_byes.insert(id, held);
            return;
        }
        if let Ok(k) = self.layer.send_request(now, call.peer, call.transport, bye) {
            self.by_txn.insert(k, (id, TxnRole::Bye));
        }
    }

    fn send_deferred_bye(&mut self, now: Instant, id: Uuid) {
        if let Some((_, bye, peer, transport)) = self.deferred_byes.remove(&id)
            && let Ok(k) = self.layer.send_request(now, peer, transport, bye)
        {
            self.by_txn.insert(k, (id, TxnRole::Bye));
        }
    }

    /// Decides the end of a call and sends BYE if it was answered.
    fn end_call(&mut self, now: Instant, id: Uuid, info: EndInfo) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.end.is_some() {
            return;
        }
        if !call.answered && call.direction == Direction::Outbound {
            self.give_up_ringing(now, id, info);
            return;
        }
        if !call.answered && call.direction == Direction::Inbound {
            // Not answered yet (a ring group): the INVITE gets a final error, never a BYE.
            let code = info.code.filter(|c| *c >= 400).unwrap_or(480);
            let tag = call.dialog.as_ref().map(|d| d.id.local_tag.clone());
            let r = response_to(&call.invite, code, None, tag.as_deref());
            let key = call.invite_key.clone();
            self.respond(now, &key, r);
            self.end_call_no_bye(now, id, info);
            return;
        }
        if call.dialog.is_some() {
            self.send_bye(now, id);
        }
        self.end_call_no_bye(now, id, info);
    }

    /// Decides the end of a call whose SIP side is already over (BYE received, final response).
    fn end_call_no_bye(&mut self, now: Instant, id: Uuid, info: EndInfo) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.end.is_some() {
            return;
        }
        call.end = Some(info);
        self.ring_deadline.remove(&id);
        // A caller leaving while its group rings: the members are cancelled.
        self.on_inbound_ending(now, id);
        // Its recordings stop and it leaves its room before its leg stops (a room it ends
        // hangs up the others here, in the same input).
        self.detach_call(now, id);
        let media_running = self.calls.get(&id).is_some_and(|c| c.media_running);
        if media_running {
            self.actions
                .push_back(Action::Media(MediaCommand::Stop { call_id: id }));
        } else {
            self.finish_without_media(now, id);
        }
    }

    fn finish_without_media(&mut self, now: Instant, id: Uuid) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.media_running {
            self.actions
                .push_back(Action::Media(MediaCommand::Stop { call_id: id }));
            return;
        }
        if let Some(port) = call.port.take() {
            self.ports.release(port);
        }
        self.finish(now, id, RtpStats::default());
    }

    /// Emits `Finish` and forgets the call.
    fn finish(&mut self, now: Instant, id: Uuid, stats: RtpStats) {
        // Normally done when the end was decided; a call must never stay in a room.
        self.detach_call(now, id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        // An answer held for a verdict that never came is still published, before the end.
        if let Some(at) = call.amd.as_ref().and_then(|a| a.held_answered) {
            self.actions
                .push_back(Action::Store(StoreOp::Answered { call_id: id, at }));
        }
        self.by_sip_call_id.remove(&call.sip_call_id);
        self.ring_deadline.remove(&id);
        if let Some(t) = &call.trunk
            && let Some(ts) = self.trunks.get_mut(t)
        {
            ts.active = ts.active.saturating_sub(1);
        }
        let end = call.end.unwrap_or_else(|| {
            EndInfo::new(
                FinalStatus::Failed,
                None,
                "ended without a decided outcome",
                EndedBy::System,
            )
        });
        // The missed-call decision is taken as the call ends (before its final status); a
        // ring-group leg tells its group.
        if let Some(ib) = &call.inbound {
            self.decide_missed(now, id, ib);
        }
        if let Some((caller, member)) = call.member_of {
            self.on_member_leg_ended(now, caller, member, id, end.status, end.code);
        }
        self.actions.push_back(Action::Store(StoreOp::Finish {
            call_id: id,
            end,
            stats,
            at: now,
        }));
    }

    // ---- helpers -------------------------------------------------------------------------

    /// A random (v4) id for a call the engine creates; the store writer sets its time.
    fn new_call_id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.r#gen::<[u8; 16]>()).into_uuid()
    }

    fn start_media(&mut self, call: &mut Call, media: NegotiatedMedia, mode: LegMode) {
        let Some(port) = call.port else { return };
        let mut session =
            SessionConfig::new(law_of(media.codec), media.telephone_event, media.remote_rtp);
        session.cname = format!("trunkline@{}", self.cfg.media_ip);
        call.media_running = true;
        self.actions.push_back(Action::Media(MediaCommand::Start {
            call_id: call.id,
            port,
            session,
            mode,
            amd: call.amd.as_ref().map(|a| a.cfg.params),
        }));
        // A call that starts on hold (sendonly offer, inactive answer, c=0.0.0.0): no sending.
        if !media.direction.sends() || media.remote_hold {
            self.actions.push_back(Action::Media(MediaCommand::Update {
                call_id: call.id,
                remote: media.remote_rtp,
                law: law_of(media.codec),
                dtmf_pt: media.telephone_event,
                send: false,
            }));
        }
    }

    fn respond(&mut self, now: Instant, key: &TransactionKey, resp: Response) {
        // An error here means the transaction ended already (e.g. the caller gave up).
        let _ = self.layer.send_response(now, key, resp);
    }

    fn set_timer(&mut self, id: Uuid, at: Instant, kind: TimerKind) {
        self.ring_deadline.insert(id, (at, kind));
        self.timers.push(Reverse((at, kind, id)));
    }

    fn contact(&self, transport: Transport) -> Contact {
        contact_for(self.cfg.sip_addr, transport)
    }
}

fn contact_for(sip_addr: SocketAddr, transport: Transport) -> Contact {
    let t = match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    let uri = sip_uri(&format!("sip:trunkline@{sip_addr};transport={t}"))
        .expect("our own address forms a SIP URI");
    Contact::new(NameAddr::uri(uri))
}

impl CallEngine {
    #[allow(clippy::too_many_arguments)]
    fn build_invite(
        &self,
        trunk: &TrunkConfig,
        to: &str,
        from: &str,
        leg: &NewLeg,
    ) -> Option<Request> {
        let ruri = if to.starts_with("sip:") || to.starts_with("sips:") {
            to.to_string()
        } else {
            format!("sip:{to}@{}", trunk.address)
        };
        let from_uri = if from.starts_with("sip:") || from.starts_with("sips:") {
            from.to_string()
        } else {
            format!("sip:{from}@{}", self.cfg.sip_addr.ip())
        };
        self.invite_request(&ruri, &from_uri, leg, to_transport(trunk.transport))
    }

    /// The initial INVITE of `leg` to `ruri` (also its To), from `from_uri`, with our Contact
    /// for `transport` and the leg's SDP offer; `None` when `ruri` is not a SIP URI.
    fn invite_request(
        &self,
        ruri: &str,
        from_uri: &str,
        leg: &NewLeg,
        transport: Transport,
    ) -> Option<Request> {
        let uri = sip_uri(ruri)?;
        let mut r = Request::new(Method::INVITE, uri);
        r.headers.insert(Name::MAX_FORWARDS, "70");
        r.headers
            .insert(Name::FROM, format!("<{from_uri}>;tag={}", leg.from_tag));
        r.headers.insert(Name::TO, format!("<{ruri}>"));
        r.headers.insert(Name::CALL_ID, leg.sip_call_id.clone());
        r.headers.insert(Name::CSEQ, "1 INVITE");
        r.headers.insert_named(&self.contact(transport));
        r.headers.insert(Name::ALLOW, ALLOW);
        r.headers
            .insert(Name::USER_AGENT, self.cfg.user_agent.clone());
        r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        r.body = leg.offer.to_bytes().into();
        Some(r)
    }

    /// Allocates what a new outbound leg starts from; `None` when the RTP ports are exhausted.
    fn new_leg(&mut self) -> Option<NewLeg> {
        let port = self.ports.allocate()?;
        let local = LocalMedia::new(self.cfg.media_ip, port, self.rng.r#gen::<u32>() as u64);
        let offer = sdp::offer(&local);
        let sip_call_id = format!(
            "{:032x}@{}",
            self.rng.r#gen::<u128>(),
            self.cfg.sip_addr.ip()
        );
        let from_tag = self.layer.new_tag();
        Some(NewLeg {
            port,
            local,
            offer,
            sip_call_id,
            from_tag,
        })
    }

    /// Whether a new outbound call may be placed: the node is accepting calls, is under
    /// `max_calls`, and the room to join on answer (if any) exists and takes this call.
    fn admit_outbound(
        &mut self,
        call_id: Uuid,
        join: Option<&(Uuid, ParticipantOptions)>,
    ) -> Result<(), EngineError> {
        if !self.accepting {
            return Err(EngineError::ShuttingDown);
        }
        if self.calls.len() >= self.cfg.max_calls {
            self.stats.refused_capacity += 1;
            return Err(EngineError::OverCapacity(format!(
                "this node has {} calls up (max_calls)",
                self.calls.len()
            )));
        }
        if let Some((conf, opts)) = join {
            let room = self
                .rooms
                .rooms
                .get(conf)
                .ok_or(EngineError::ConferenceNotFound(*conf))?;
            rooms::check_join(room, call_id, opts)?;
        }
        Ok(())
    }
}

/// A URI as printed in a header or the digest `uri` parameter.
/// The payload of `amd.completed` / `amd.machine_start`: the verdict and its stream times in
/// milliseconds from the answer.
pub fn amd_payload(v: &Verdict) -> serde_json::Value {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    serde_json::json!({
        "answered_by": v.answered_by.as_str(),
        "confidence": v.confidence,
        "decision_ms": ms(v.at),
        "beep_ms": v.beep_onset.map(ms),
        "beep_end_ms": v.beep_end.map(ms),
        "message_start_ms": v.message_start.map(ms),
        "speech_ms": ms(v.speech),
        "final": v.is_final,
    })
}

/// A final verdict as the call row keeps it (times in ms from the answer).
pub fn amd_row(v: &Verdict) -> AmdRow {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    AmdRow {
        result: v.answered_by.as_str().to_string(),
        confidence: f64::from(v.confidence),
        decision_ms: Some(ms(v.at)),
        beep_ms: v.beep_onset.map(ms),
        drop_ms: v.message_start.map(ms),
    }
}

fn uri_string(uri: &SipUri) -> String {
    use ezk_sip_types::print::AppendCtx;
    uri.default_print_ctx().to_string()
}

fn to_transport(t: crate::config::Transport) -> Transport {
    match t {
        crate::config::Transport::Udp => Transport::Udp,
        crate::config::Transport::Tcp => Transport::Tcp,
    }
}

fn law_of(c: Codec) -> Law {
    match c {
        Codec::Pcmu => Law::Ulaw,
        Codec::Pcma => Law::Alaw,
    }
}

/// The calling party as stored: the user part when it is an E.164 number, else the URI.
fn party_of(uri: Option<String>) -> String {
    let Some(uri) = uri else {
        return String::from("anonymous");
    };
    let user = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .and_then(|r| r.split_once('@').map(|(u, _)| u));
    match user {
        Some(u) if u.starts_with('+') && u[1..].bytes().all(|b| b.is_ascii_digit()) => {
            u.to_string()
        }
        _ => uri,
    }
}

#[cfg(test)]
mod tests;
