//! An agent session's state machine (pure).
//!
//! An agent starts a session on a campaign; the server calls the agent once and keeps the
//! agent's leg in the agent's own conference for the whole session (issue 5, "Agent sessions").
//! [`Session`] decides what the session does; a driver feeds it the agent's HTTP commands
//! ([`Session::handle_command`]) and what the call engine reports ([`Session::handle_event`]),
//! then drains [`Session::poll_action`] and carries the actions out (call the agent, move a
//! customer into the conference, cancel a dial, save a disposition, publish a state change).
//!
//! ```text
//!             AgentAnswered              DialStarted               CustomerHuman
//! Connecting ───────────────► Available ────────────► Dialing ───────────────► OnCall
//!     │ AgentFailed              ▲  ▲ DialEnded (last)   │ CustomerHuman            │ CustomerHungUp
//!     ▼                          │  └────────────────────┘                          ▼
//! Ended(agent-unreachable)       └──────────── Disposition ◄───────────────────── WrapUp
//!
//! pause: Available/Dialing → Paused (dials cancelled); OnCall/WrapUp → Paused after the
//!        disposition.  resume: Paused → Available (→ Connecting if the agent leg is gone).
//! stop: any live state → Ended(stopped).  The agent's leg hanging up → Ended(agent-hangup).
//! ```
//!
//! # Preview mode
//!
//! A preview session waits in `available` until the agent asks for a contact
//! ([`SessionCommand::Next`] → [`SessionAction::ClaimNext`]); the driver claims one by the
//! campaign's queue and reports it ([`SessionEvent::ContactShown`]): the session stays
//! `available` and shows it ([`Session::preview`], [`SessionAction::ShowContact`]). Then:
//!
//! - `dial` ([`SessionCommand::Dial`]) → [`SessionAction::PlaceCall`] and `dialing`; from there
//!   it goes as a power line (a human → `on-call` → `wrap-up` → disposition; any other end →
//!   `available`);
//! - `skip`, `pause`, `stop` (and the session ending otherwise) →
//!   [`SessionAction::ReleaseContact`]: the shown contact goes back to the queue, and a contact
//!   that was only shown is not an attempt (the driver removes its claim).
//!
//! `next` while a contact is shown, `dial` with none shown, and `dial` naming another contact
//! are conflicts (HTTP 409) with a message saying what to do.
//!
//! A command in a state that does not allow it returns [`SessionError::WrongState`], which the
//! HTTP layer turns into 409; its message names the state and where the command is allowed
//! ("cannot resume while available: resume is allowed when paused").
//!
//! After a restart the session comes back [`Session::restored`]: paused, with no agent leg
//! (the process that held it is gone), and a [`SessionAction::Notify`] telling the agent why.
//! `resume` then calls the agent again.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AgentState, AttemptOutcome, DialMode, SessionEndReason};

/// Longest disposition accepted (a code such as `sale` or `callback`, not an essay).
pub const MAX_DISPOSITION_LEN: usize = 200;

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// The server is calling the agent.
    Connecting,
    /// Waiting for a customer.
    Available,
    /// Calls are being placed for this agent.
    Dialing,
    /// Talking to a customer.
    OnCall,
    /// The customer hung up; waiting for the disposition.
    WrapUp,
    /// Not taking calls.
    Paused,
    /// Over, for the given reason.
    Ended(SessionEndReason),
}

impl SessionState {
    /// The agent state, or `None` while connecting or after the end.
    pub fn agent_state(self) -> Option<AgentState> {
        match self {
            SessionState::Available => Some(AgentState::Available),
            SessionState::Dialing => Some(AgentState::Dialing),
            SessionState::OnCall => Some(AgentState::OnCall),
            SessionState::WrapUp => Some(AgentState::WrapUp),
            SessionState::Paused => Some(AgentState::Paused),
            SessionState::Connecting | SessionState::Ended(_) => None,
        }
    }

    /// The state string of `GET /v1/sessions/{id}` (`connecting`, an agent state, `ended`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Ended(_) => "ended",
            s => s.agent_state().expect("live state").as_str(),
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Ended(r) => write!(f, "ended ({r})"),
            s => f.write_str(s.as_str()),
        }
    }
}

/// What the agent asks for (HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// Preview mode: show the next contact (`POST /v1/sessions/{id}/next`).
    Next,
    /// Preview mode: dial the shown contact (`POST /v1/sessions/{id}/dial`).
    Dial {
        /// The contact the agent means to dial; if given, it must be the one shown.
        contact: Option<Uuid>,
    },
    /// Stop taking calls (after the current one, if on a call).
    Pause,
    /// Take calls again.
    Resume,
    /// Drop the contact being dialled, or skip the next one.
    Skip,
    /// End the session.
    Stop,
    /// The outcome of the call just finished, as the agent records it.
    Disposition {
        /// A campaign-defined code (`sale`, `callback`, ...).
        disposition: String,
    },
}

impl SessionCommand {
    /// The command's name, as in its URL.
    pub fn name(&self) -> &'static str {
        match self {
            SessionCommand::Next => "next",
            SessionCommand::Dial { .. } => "dial",
            SessionCommand::Pause => "pause",
            SessionCommand::Resume => "resume",
            SessionCommand::Skip => "skip",
            SessionCommand::Stop => "stop",
            SessionCommand::Disposition { .. } => "disposition",
        }
    }
}

/// What the call engine and the runner report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The agent answered the session call.
    AgentAnswered,
    /// The session call to the agent failed or was not answered.
    AgentFailed,
    /// The agent's leg hung up.
    AgentHungUp,
    /// The runner placed a call on this agent's behalf (preview dial, power line).
    DialStarted {
        /// The attempt.
        attempt: Uuid,
    },
    /// A call placed for this agent ended without reaching a person for it.
    DialEnded {
        /// The attempt.
        attempt: Uuid,
        /// How it ended.
        outcome: AttemptOutcome,
    },
    /// AMD said `human` on a customer call, and the runner picked this agent for it.
    CustomerHuman {
        /// The attempt.
        attempt: Uuid,
    },
    /// The customer on the call hung up.
    CustomerHungUp {
        /// The attempt.
        attempt: Uuid,
    },
    /// Preview: the driver claimed this contact for the agent (after [`SessionAction::ClaimNext`]).
    ContactShown {
        /// The contact.
        contact: Uuid,
        /// The attempt the claim opened (dialled, or removed on release).
        attempt: Uuid,
    },
    /// The campaign stopped running (paused, completed, archived).
    CampaignEnded,
}

impl SessionEvent {
    fn name(&self) -> &'static str {
        match self {
            SessionEvent::AgentAnswered => "agent-answered",
            SessionEvent::AgentFailed => "agent-failed",
            SessionEvent::AgentHungUp => "agent-hung-up",
            SessionEvent::DialStarted { .. } => "dial-started",
            SessionEvent::DialEnded { .. } => "dial-ended",
            SessionEvent::CustomerHuman { .. } => "customer-human",
            SessionEvent::CustomerHungUp { .. } => "customer-hung-up",
            SessionEvent::ContactShown { .. } => "contact-shown",
            SessionEvent::CampaignEnded => "campaign-ended",
        }
    }
}

/// Why the agent is being told something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The server restarted; the session is paused until the agent resumes.
    RestartedPaused,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAction {
    /// Call the agent and put the leg in the agent's conference.
    CallAgent,
    /// Hang up the agent's leg (or cancel the call to it).
    HangUpAgent,
    /// Preview: claim the next contact of the campaign for this agent, and report it with
    /// [`SessionEvent::ContactShown`] (or tell the agent none is due).
    ClaimNext,
    /// Preview: a contact is shown to the agent (publish it).
    ShowContact {
        /// The contact.
        contact: Uuid,
        /// Its claimed attempt.
        attempt: Uuid,
    },
    /// Preview: put the shown contact back in the queue; it was not dialled, so its claim is
    /// undone and no attempt is used up.
    ReleaseContact {
        /// The contact.
        contact: Uuid,
        /// Its claimed attempt.
        attempt: Uuid,
    },
    /// Preview: place the call to the shown contact for this agent (its claimed attempt).
    PlaceCall {
        /// The contact.
        contact: Uuid,
        /// The attempt claimed when it was shown.
        attempt: Uuid,
    },
    /// Cancel a call still ringing (its outcome becomes `cancelled`).
    CancelAttempt {
        /// The attempt.
        attempt: Uuid,
    },
    /// Skip the next contact this session would get (it is not dialled now).
    SkipNextContact,
    /// Move the customer's leg into the agent's conference.
    BridgeCustomer {
        /// The attempt whose leg moves.
        attempt: Uuid,
    },
    /// Hang up the customer's leg.
    HangUpCustomer {
        /// The attempt.
        attempt: Uuid,
    },
    /// Store the agent's disposition on the attempt.
    SaveDisposition {
        /// The attempt.
        attempt: Uuid,
        /// The code the agent posted.
        disposition: String,
    },
    /// Publish a state change (event log, SSE, webhooks).
    StateChanged {
        /// Before.
        from: SessionState,
        /// After.
        to: SessionState,
    },
    /// Tell the agent something (an event on the session).
    Notify(Notice),
}

/// A list of state names for error messages: `paused`, `available or dialing`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed(pub &'static [&'static str]);

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " or " } else { ", " })?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// Why a command or event was refused. `WrongState` and `Ended` are HTTP 409; the others 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The command is not allowed in the current state.
    #[error("cannot {command} while {state}: {command} is allowed when {allowed}")]
    WrongState {
        /// The command or event name.
        command: &'static str,
        /// The state the session is in.
        state: SessionState,
        /// The states that allow it.
        allowed: Allowed,
    },
    /// The session is over.
    #[error("cannot {command}: the session has ended ({reason})")]
    Ended {
        /// The command or event name.
        command: &'static str,
        /// Why it ended.
        reason: SessionEndReason,
    },
    /// `next` or `dial` outside preview mode.
    #[error("{command} is only for preview sessions; this session's campaign dials in {mode} mode")]
    NotPreview {
        /// The command.
        command: &'static str,
        /// The campaign's mode.
        mode: DialMode,
    },
    /// `dial` (or a preview `skip`) with no contact shown.
    #[error(
        "cannot {command}: no contact is shown; ask for the next contact first \
         (POST /v1/sessions/{{id}}/next)"
    )]
    NoContactShown {
        /// The command.
        command: &'static str,
    },
    /// `next` while a contact is shown already.
    #[error("cannot next: contact {0} is shown; dial it or skip it first")]
    ContactAlreadyShown(Uuid),
    /// `dial` naming a contact other than the one shown.
    #[error("cannot dial contact {given}: the contact shown is {shown}")]
    NotTheShownContact {
        /// The contact in the request.
        given: Uuid,
        /// The contact shown.
        shown: Uuid,
    },
    /// An empty or oversized disposition.
    #[error("disposition must be 1 to {MAX_DISPOSITION_LEN} characters")]
    BadDisposition,
    /// An event about an attempt that is not this session's current customer.
    #[error("attempt {0} is not this session's current call")]
    UnknownAttempt(Uuid),
}

impl SessionError {
    /// Whether this is a conflict with the session's state (HTTP 409) rather than bad input.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            SessionError::WrongState { .. }
                | SessionError::Ended { .. }
                | SessionError::NotPreview { .. }
                | SessionError::NoContactShown { .. }
                | SessionError::ContactAlreadyShown(_)
                | SessionError::NotTheShownContact { .. }
        )
    }
}

/// A contact shown to a preview agent, not dialled yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preview {
    /// The contact.
    pub contact: Uuid,
    /// The attempt its claim opened.
    pub attempt: Uuid,
}

/// Running totals of a session (`GET /v1/sessions/{id}`, campaign stats, the pacer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Customers bridged to the agent.
    pub calls: u32,
    /// Dispositions posted.
    pub dispositions: u32,
    /// Contacts or dials skipped.
    pub skipped: u32,
    /// Total time on customer calls.
    pub talk: Duration,
    /// Total time in wrap-up.
    pub wrap_up: Duration,
}

/// One agent session.
#[derive(Debug, Clone)]
pub struct Session {
    mode: DialMode,
    state: SessionState,
    /// When `state` was entered.
    since: DateTime<Utc>,
    /// The agent's leg is up (false while connecting and after a restart).
    agent_leg: bool,
    /// Pause once the current call's disposition is in.
    pause_after_call: bool,
    /// Calls placed for this agent, still ringing.
    dialing: Vec<Uuid>,
    /// The customer on the call or in wrap-up.
    current: Option<Uuid>,
    /// Preview: the contact shown, not dialled yet (only while `available`).
    preview: Option<Preview>,
    counts: SessionCounts,
    actions: VecDeque<SessionAction>,
}

const LIVE: Allowed = Allowed(&["available", "dialing", "on-call", "wrap-up"]);

impl Session {
    /// A new session: the agent is being called ([`SessionAction::CallAgent`]).
    pub fn new(now: DateTime<Utc>, mode: DialMode) -> Self {
        let mut s = Self::blank(
            now,
            mode,
            SessionState::Connecting,
            SessionCounts::default(),
        );
        s.actions.push_back(SessionAction::CallAgent);
        s
    }

    /// A session brought back after a restart: paused, no agent leg, the agent notified.
    pub fn restored(now: DateTime<Utc>, mode: DialMode, counts: SessionCounts) -> Self {
        let mut s = Self::blank(now, mode, SessionState::Paused, counts);
        s.actions
            .push_back(SessionAction::Notify(Notice::RestartedPaused));
        s
    }

    fn blank(
        now: DateTime<Utc>,
        mode: DialMode,
        state: SessionState,
        counts: SessionCounts,
    ) -> Self {
        Self {
            mode,
            state,
            since: now,
            agent_leg: false,
            pause_after_call: false,
            dialing: Vec::new(),
            current: None,
            preview: None,
            counts,
            actions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// The campaign's dial mode.
    pub fn mode(&self) -> DialMode {
        self.mode
    }

    /// The customer on the call or in wrap-up.
    pub fn current_attempt(&self) -> Option<Uuid> {
        self.current
    }

    /// Preview: the contact shown to the agent and not dialled yet.
    pub fn preview(&self) -> Option<Preview> {
        self.preview
    }

    /// Calls placed for this agent that are still ringing.
    pub fn dialing(&self) -> &[Uuid] {
        &self.dialing
    }

    /// Whether a pause will take effect after the current call's disposition.
    pub fn pause_pending(&self) -> bool {
        self.pause_after_call
    }

    /// Running totals.
    pub fn counts(&self) -> SessionCounts {
        self.counts
    }

    /// The next action for the driver; drain until `None` after every `handle_*`.
    pub fn poll_action(&mut self) -> Option<SessionAction> {
        self.actions.pop_front()
    }

    fn wrong(&self, command: &'static str, allowed: &'static [&'static str]) -> SessionError {
        match self.state {
            SessionState::Ended(reason) => SessionError::Ended { command, reason },
            state => SessionError::WrongState {
                command,
                state,
                allowed: Allowed(allowed),
            },
        }
    }

    fn enter(&mut self, now: DateTime<Utc>, to: SessionState) {
        let from = self.state;
        if from == to {
            return;
        }
        let spent = (now - self.since).to_std().unwrap_or_default();
        match from {
            SessionState::OnCall => self.counts.talk += spent,
            SessionState::WrapUp => self.counts.wrap_up += spent,
            _ => {}
        }
        self.state = to;
        self.since = now;
        self.actions
            .push_back(SessionAction::StateChanged { from, to });
    }

    fn cancel_dials(&mut self) {
        for attempt in self.dialing.drain(..) {
            self.actions
                .push_back(SessionAction::CancelAttempt { attempt });
        }
    }

    /// Preview: the shown contact goes back to the queue.
    fn release_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            self.actions.push_back(SessionAction::ReleaseContact {
                contact: p.contact,
                attempt: p.attempt,
            });
        }
    }

    fn not_preview(&self, command: &'static str) -> Option<SessionError> {
        (self.mode != DialMode::Preview).then_some(SessionError::NotPreview {
            command,
            mode: self.mode,
        })
    }

    fn end(&mut self, now: DateTime<Utc>, reason: SessionEndReason) {
        self.release_preview();
        self.cancel_dials();
        if let Some(attempt) = self.current.take()
            && self.state == SessionState::OnCall
        {
            self.actions
                .push_back(SessionAction::HangUpCustomer { attempt });
        }
        let agent_may_be_up = self.agent_leg || self.state == SessionState::Connecting;
        // A leg that failed or hung up by itself needs no hang-up.
        let leg_gone = matches!(
            reason,
            SessionEndReason::AgentHangup | SessionEndReason::AgentUnreachable
        );
        if agent_may_be_up && !leg_gone {
            self.actions.push_back(SessionAction::HangUpAgent);
        }
        self.agent_leg = false;
        self.enter(now, SessionState::Ended(reason));
    }

    /// Where the agent goes when a call or dial is over.
    fn idle_state(&self) -> SessionState {
        if self.pause_after_call {
            SessionState::Paused
        } else if self.dialing.is_empty() {
            SessionState::Available
        } else {
            SessionState::Dialing
        }
    }

    /// An agent's command. On `Err` nothing changed.
    pub fn handle_command(
        &mut self,
        now: DateTime<Utc>,
        command: SessionCommand,
    ) -> Result<(), SessionError> {
        use SessionState::*;
        let name = command.name();
        match (command, self.state) {
            (_, Ended(reason)) => Err(SessionError::Ended {
                command: name,
                reason,
            }),
            (SessionCommand::Stop, _) => {
                self.end(now, SessionEndReason::Stopped);
                Ok(())
            }
            (SessionCommand::Next | SessionCommand::Dial { .. }, _)
                if self.mode != DialMode::Preview =>
            {
                Err(self.not_preview(name).expect("not preview"))
            }
            (SessionCommand::Next, Available) => {
                if let Some(p) = self.preview {
                    return Err(SessionError::ContactAlreadyShown(p.contact));
                }
                self.actions.push_back(SessionAction::ClaimNext);
                Ok(())
            }
            (SessionCommand::Next, _) => Err(self.wrong(name, &["available"])),
            (SessionCommand::Dial { contact }, Available) => {
                let Some(p) = self.preview else {
                    return Err(SessionError::NoContactShown { command: name });
                };
                if let Some(given) = contact.filter(|c| *c != p.contact) {
                    return Err(SessionError::NotTheShownContact {
                        given,
                        shown: p.contact,
                    });
                }
                self.preview = None;
                self.dialing.push(p.attempt);
                self.actions.push_back(SessionAction::PlaceCall {
                    contact: p.contact,
                    attempt: p.attempt,
                });
                self.enter(now, Dialing);
                Ok(())
            }
            (SessionCommand::Dial { .. }, _) => Err(self.wrong(name, &["available"])),
            (SessionCommand::Pause, Available | Dialing) => {
                self.release_preview();
                self.cancel_dials();
                self.enter(now, Paused);
                Ok(())
            }
            (SessionCommand::Pause, OnCall | WrapUp) => {
                self.pause_after_call = true;
                Ok(())
            }
            (SessionCommand::Pause, _) => Err(self.wrong(name, LIVE.0)),
            (SessionCommand::Resume, Paused) => {
                self.pause_after_call = false;
                if self.agent_leg {
                    self.enter(now, Available);
                } else {
                    self.actions.push_back(SessionAction::CallAgent);
                    self.enter(now, Connecting);
                }
                Ok(())
            }
            (SessionCommand::Resume, _) => Err(self.wrong(name, &["paused"])),
            (SessionCommand::Skip, Dialing) => {
                self.counts.skipped += 1;
                self.cancel_dials();
                let to = self.idle_state();
                self.enter(now, to);
                Ok(())
            }
            (SessionCommand::Skip, Available) if self.preview.is_some() => {
                self.counts.skipped += 1;
                self.release_preview();
                Ok(())
            }
            (SessionCommand::Skip, Available | Paused) if self.mode == DialMode::Preview => {
                Err(SessionError::NoContactShown { command: name })
            }
            (SessionCommand::Skip, Available | Paused) => {
                self.counts.skipped += 1;
                self.actions.push_back(SessionAction::SkipNextContact);
                Ok(())
            }
            (SessionCommand::Skip, _) => Err(self.wrong(name, &["available", "dialing", "paused"])),
            (SessionCommand::Disposition { disposition }, WrapUp) => {
                let len = disposition.chars().count();
                if len == 0 || len > MAX_DISPOSITION_LEN || disposition.trim().is_empty() {
                    return Err(SessionError::BadDisposition);
                }
                let attempt = self
                    .current
                    .take()
                    .expect("wrap-up always has a current call");
                self.counts.dispositions += 1;
                self.actions.push_back(SessionAction::SaveDisposition {
                    attempt,
                    disposition,
                });
                let to = self.idle_state();
                if to == Paused {
                    // Lines a power runner kept going for this agent are no longer wanted.
                    self.cancel_dials();
                }
                self.pause_after_call = false;
                self.enter(now, to);
                Ok(())
            }
            (SessionCommand::Disposition { .. }, _) => Err(self.wrong(name, &["wrap-up"])),
        }
    }

    /// Something the call engine or the runner observed. `Err` means the event does not fit
    /// (e.g. a human for an agent who is already on a call): the runner must route that
    /// customer elsewhere or abandon the call; nothing changed here.
    pub fn handle_event(
        &mut self,
        now: DateTime<Utc>,
        event: SessionEvent,
    ) -> Result<(), SessionError> {
        use SessionState::*;
        let name = event.name();
        if let Ended(reason) = self.state {
            // Late reports about calls this session already cancelled are expected.
            return match event {
                SessionEvent::DialEnded { .. } | SessionEvent::AgentHungUp => Ok(()),
                _ => Err(SessionError::Ended {
                    command: name,
                    reason,
                }),
            };
        }
        match (event, self.state) {
            (SessionEvent::AgentAnswered, Connecting) => {
                self.agent_leg = true;
                self.enter(now, Available);
                Ok(())
            }
            (SessionEvent::AgentAnswered, _) => Err(self.wrong(name, &["connecting"])),
            (SessionEvent::AgentFailed, Connecting) => {
                self.end(now, SessionEndReason::AgentUnreachable);
                Ok(())
            }
            (SessionEvent::AgentFailed | SessionEvent::AgentHungUp, _) => {
                if self.state == Connecting {
                    self.end(now, SessionEndReason::AgentUnreachable);
                } else if self.agent_leg {
                    self.agent_leg = false;
                    self.end(now, SessionEndReason::AgentHangup);
                }
                // A paused session restored after a restart has no leg: nothing to end.
                Ok(())
            }
            (SessionEvent::DialStarted { attempt }, Available | Dialing) => {
                self.dialing.push(attempt);
                self.enter(now, Dialing);
                Ok(())
            }
            (SessionEvent::DialStarted { attempt }, OnCall | WrapUp) => {
                // Power mode may keep a line going for an agent about to be free.
                self.dialing.push(attempt);
                Ok(())
            }
            (SessionEvent::DialStarted { .. }, _) => Err(self.wrong(name, LIVE.0)),
            (SessionEvent::DialEnded { attempt, .. }, state) => {
                // Unknown attempts: already cancelled by skip or pause; nothing to do.
                self.dialing.retain(|a| *a != attempt);
                if state == Dialing && self.dialing.is_empty() {
                    self.enter(now, Available);
                }
                Ok(())
            }
            (SessionEvent::CustomerHuman { attempt }, Available | Dialing)
                if self.mode == DialMode::Preview && !self.dialing.contains(&attempt) =>
            {
                // A preview agent takes only the customer it dialled.
                Err(SessionError::UnknownAttempt(attempt))
            }
            (SessionEvent::CustomerHuman { attempt }, Available | Dialing) => {
                self.dialing.retain(|a| *a != attempt);
                self.current = Some(attempt);
                self.counts.calls += 1;
                self.actions
                    .push_back(SessionAction::BridgeCustomer { attempt });
                self.enter(now, OnCall);
                Ok(())
            }
            (SessionEvent::CustomerHuman { .. }, _) => {
                Err(self.wrong(name, &["available", "dialing"]))
            }
            (SessionEvent::CustomerHungUp { attempt }, OnCall) => {
                if self.current != Some(attempt) {
                    return Err(SessionError::UnknownAttempt(attempt));
                }
                self.enter(now, WrapUp);
                Ok(())
            }
            (SessionEvent::CustomerHungUp { .. }, _) => Err(self.wrong(name, &["on-call"])),
            (SessionEvent::ContactShown { contact, attempt }, Available) => {
                if let Some(e) = self.not_preview(name) {
                    return Err(e);
                }
                if let Some(p) = self.preview {
                    return Err(SessionError::ContactAlreadyShown(p.contact));
                }
                self.preview = Some(Preview { contact, attempt });
                self.actions
                    .push_back(SessionAction::ShowContact { contact, attempt });
                Ok(())
            }
            (SessionEvent::ContactShown { .. }, _) => Err(self.wrong(name, &["available"])),
            (SessionEvent::CampaignEnded, _) => {
                self.end(now, SessionEndReason::CampaignEnded);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
