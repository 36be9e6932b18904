//! Agent sessions in the runner (driver): the agent's leg and room, power and predictive lines, bridging
//! the first human to the agent, wrap-up and dispositions (issue 5, "Agent sessions").
//!
//! Each live session of this node is a pure [`Session`] plus what the driver needs to carry
//! its actions out: the agent's call, the agent's room (a conference of its own), the contact
//! on the call. The HTTP API talks to the runner through a [`SessionsHandle`]; the runner owns
//! every session, so commands, engine events and pacing never race.
//!
//! - **start** (`POST /v1/sessions`): the row is stored (`connecting`), a room is created and
//!   the agent is called ([`crate::call::engine::AgentOriginate`]) with the room to join on
//!   answer, `end_on_exit` (the agent leaving ends the room and hangs up a customer in it).
//!   The agent answering makes the session `available`; the call failing or not being answered
//!   within the ring timeout ends it `agent-unreachable`; the agent hanging up later ends it
//!   `agent-hangup`.
//! - **power pacing** (every tick, running `power` campaigns): `lines_per_agent × idle agents −
//!   lines ringing` ([`super::super::pacing::power_calls`]), under the campaign's rate limits
//!   and concurrency cap, as for agentless campaigns. Each claimed contact is dialled with the
//!   campaign's AMD for the idle agent with the fewest lines ringing (`DialStarted`), or
//!   finished `cancelled` when that agent asked to skip the next contact.
//! - **predictive pacing** (running `predictive` campaigns): the same, but the number of calls
//!   is the campaign's [`PredictivePacer`]'s decision over this node's agents (idle, on a call
//!   or in wrap-up for how long) and lines ringing (for how long), under the same caps. The
//!   pacer is fed with every attempt of the campaign this node finishes (dial-to-person time
//!   for people, dial-to-end for the rest) and with each call's talk and wrap-up time when
//!   its disposition is posted (talk and wrap-up are stored on the attempt with the
//!   disposition). The first time a process needs a campaign's pacer it is rebuilt from the
//!   store ([`crate::store::Store::pacer_history`]): every attempt of the campaign (any node's)
//!   finished in the last 30 days, in order, and the latest handle times, so a restart keeps
//!   the measured answer rate, delays and 30-day abandon rate instead of starting from the
//!   priors.
//! - **preview** (`preview` campaigns; the tick places nothing): `next` claims the campaign's
//!   next contact with the same [`crate::store::Store::claim_next`] as a power line (queue
//!   order, calling window, do-not-call, attempts left; attempt row and lease for this node),
//!   marks the attempt with the session at once, and shows it (`session.previewing`); the sweep
//!   renews its lease while it is shown. `dial` places the call under that attempt
//!   (`Runner::start`, the campaign's caller id, AMD and trunk) as a line of this agent; from
//!   there it is a power line. A preview agent takes only the customer it dialled. A shown
//!   contact counts as a call started: `next` is refused (429) while the campaign's rate
//!   limits or `max_concurrent` allow no new call. The tick completes a preview campaign
//!   whose list is dialled through once no agent is on a call or in wrap-up.
//!   **A shown contact that is not dialled is not an attempt:** `skip`, `pause`, `stop` or the
//!   session ending release it ([`crate::store::Store::release_claim`]: attempt row removed,
//!   attempt count and status restored, due time unchanged, lease dropped;
//!   `session.preview_released`), so it is back in the queue at once. After a crash, the
//!   start-up reconciliation (or another node's sweep once the lease expired) finds an open
//!   attempt with a session and no call and releases it the same way.
//! - **a human** (final AMD verdict `human`/`unknown`, or the answer without AMD): the customer
//!   goes to the agent it was dialled for if that agent is still free, else to another free
//!   agent of the campaign; it is joined into the agent's room at once, and the agent's other
//!   lines are given up (`cancelled` if not answered yet). With no free agent for a person the
//!   attempt ends `abandoned`: the person hears the campaign's identification message
//!   (`abandon_prompt`) and is hung up when it ends, or at once when the campaign has none. The
//!   agent's other lines that were answered already (a person, or a call still under AMD) are
//!   treated the same way.
//!   Machines are handled by the engine as the campaign's `on_machine` says.
//! - **the customer hangs up**: wrap-up; the disposition is stored on the attempt and the agent
//!   is available again (or paused, if a pause was asked for during the call).
//! - Every state change is written to the session's row and published as
//!   `session.state_changed`; `session.started`, `session.disposition`, `session.notice` (the
//!   restart pause), `session.previewing` and `session.preview_released` too, all to the
//!   campaign's webhook as well.
//! - A campaign that is completed or archived ends its sessions (`campaign-ended`); a paused
//!   campaign places no calls, its agents stay connected.
//!
//! After a restart (`Runner::restore_sessions`, from [`super::run_dialer`]) the node's live
//! sessions are paused in the store (their legs died with the process), come back as
//! [`Session::restored`] with a `session.notice`, and `resume` calls the agent again. Their
//! customer attempts are reconciled like every other attempt.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::call::engine::AgentOriginate;
use crate::call::{ConferenceSpec, ParticipantOptions};
use crate::campaign::{AttemptOutcome, CampaignState, DialMode};
use crate::http::sessions::SessionResource;
use crate::store::{
    Campaign, ClaimedContact, HandleTime, NewCall, NewSession, SessionRow, SessionUpdate,
    StoreError, new_id,
};

use super::super::SessionEndReason;
use super::super::pacing::{
    AgentLoad, Capacity, PredictiveConfig, PredictivePacer, PredictiveSnapshot, power_calls,
};
use super::super::session::{
    Notice, Session, SessionAction, SessionCommand, SessionError, SessionEvent, SessionState,
};
use super::{Finish, MAX_STARTS_PER_TICK, Runner, finish, outcome, publish};

/// Event kinds of agent sessions.
pub mod session_kinds {
    /// A session was created (the agent is being called).
    pub const SESSION_STARTED: &str = "session.started";
    /// A session changed state (`from`, `to`, and the session).
    pub const SESSION_STATE_CHANGED: &str = "session.state_changed";
    /// The agent posted a disposition.
    pub const SESSION_DISPOSITION: &str = "session.disposition";
    /// Something the agent is told (`reason`: `restarted-paused`).
    pub const SESSION_NOTICE: &str = "session.notice";
    /// Preview: a contact is shown to the agent (`contact_id`, `attempt_id`, the contact).
    pub const SESSION_PREVIEWING: &str = "session.previewing";
    /// Preview: the shown contact went back to the queue undialled (`reason`: `skipped`,
    /// `paused`, `ended`).
    pub const SESSION_PREVIEW_RELEASED: &str = "session.preview_released";
}

/// Requests queued to the runner by the API at once, at most.
pub const SESSION_QUEUE: usize = 256;

/// Why a session request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// No such session.
    #[error("session {0}")]
    NotFound(Uuid),
    /// The session's state forbids the command (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable (HTTP 422).
    #[error("{message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Preview: no contact can be dialled now (HTTP 404); when the next one is due, if any
    /// waits.
    #[error("{}", nothing_due_message(*next_due_at))]
    NothingDue {
        /// The earliest due time of the contacts waiting, if any.
        next_due_at: Option<DateTime<Utc>>,
    },
    /// Preview: the campaign's rate limit or cap on calls at once allows no new contact now
    /// (HTTP 429).
    #[error("{0}")]
    Throttled(String),
    /// The runner is not running or is busy (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn nothing_due_message(next: Option<DateTime<Utc>>) -> String {
    match next {
        Some(at) => format!(
            "no contact is due now; the next one is due at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "no contact is due now: none is waiting in the campaign's list".into(),
    }
}

type Reply = oneshot::Sender<Result<SessionRow, SessionsError>>;

/// A request from the API to the runner.
#[derive(Debug)]
pub enum SessionRequest {
    /// Start a session.
    Start {
        /// The campaign.
        campaign_id: Uuid,
        /// A configured agent name or a `sip:` URI (checked by the API).
        agent: String,
        /// The new session.
        reply: Reply,
    },
    /// A command to a session.
    Command {
        /// The session.
        id: Uuid,
        /// The command.
        command: SessionCommand,
        /// The session after it.
        reply: Reply,
    },
}

/// The API's end of the runner's session queue (cheap to clone).
#[derive(Debug, Clone)]
pub struct SessionsHandle {
    tx: mpsc::Sender<SessionRequest>,
}

/// The runner's end of the session queue.
#[derive(Debug)]
pub struct SessionsInbox {
    pub(super) rx: mpsc::Receiver<SessionRequest>,
}

/// A connected handle and inbox.
pub fn session_channel() -> (SessionsHandle, SessionsInbox) {
    let (tx, rx) = mpsc::channel(SESSION_QUEUE);
    (SessionsHandle { tx }, SessionsInbox { rx })
}

impl SessionsHandle {
    async fn ask(
        &self,
        make: impl FnOnce(Reply) -> SessionRequest,
    ) -> Result<SessionRow, SessionsError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                SessionsError::Unavailable("the dialer is busy, retry shortly".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                SessionsError::Unavailable("the dialer is not running".into())
            }
        })?;
        rx.await
            .map_err(|_| SessionsError::Unavailable("the dialer is not running".into()))?
    }

    /// Starts a session of `agent` on a campaign.
    pub async fn start(
        &self,
        campaign_id: Uuid,
        agent: String,
    ) -> Result<SessionRow, SessionsError> {
        self.ask(|reply| SessionRequest::Start {
            campaign_id,
            agent,
            reply,
        })
        .await
    }

    /// Sends a command to a session.
    pub async fn command(
        &self,
        id: Uuid,
        command: SessionCommand,
    ) -> Result<SessionRow, SessionsError> {
        self.ask(|reply| SessionRequest::Command { id, command, reply })
            .await
    }
}

/// A session of this node, alive.
#[derive(Debug)]
pub(super) struct LiveSession {
    campaign_id: Uuid,
    agent: String,
    sm: Session,
    /// The agent's room (created when the agent is called).
    room: Option<Uuid>,
    /// The call to the agent, while up.
    agent_call: Option<Uuid>,
    /// The contact on the call or in wrap-up.
    current_contact: Option<Uuid>,
    /// Next contacts to skip (`skip` while available or paused).
    skip_next: u32,
    /// Preview: the claim of the contact shown (dialled with `dial`, released otherwise).
    shown: Option<ClaimedContact>,
    /// Preview: what the last `next` found, for the API's answer.
    claim_result: Option<Result<(), SessionsError>>,
    status_callback: Option<String>,
    /// Talk and wrap-up time already given to the campaign's predictive pacer (the session's
    /// counts when it last did).
    handled: (std::time::Duration, std::time::Duration),
    /// The handle time of the call whose disposition is being saved (stored on its attempt).
    last_handle: Option<HandleTime>,
}

fn conflict_or_invalid(e: SessionError) -> SessionsError {
    if e.is_conflict() {
        SessionsError::Conflict(e.to_string())
    } else {
        SessionsError::Invalid {
            field: "disposition",
            message: e.to_string(),
        }
    }
}

impl Runner {
    /// Answers one API request.
    pub(super) async fn on_session_request(&mut self, req: SessionRequest) {
        match req {
            SessionRequest::Start {
                campaign_id,
                agent,
                reply,
            } => {
                let r = self.start_session(campaign_id, agent).await;
                let _ = reply.send(r);
            }
            SessionRequest::Command { id, command, reply } => {
                let r = self.session_command(id, command).await;
                let _ = reply.send(r);
            }
        }
    }

    async fn start_session(
        &mut self,
        campaign_id: Uuid,
        agent: String,
    ) -> Result<SessionRow, SessionsError> {
        let store = self.deps.store.clone();
        let c = store
            .get_campaign(campaign_id)
            .await?
            .ok_or_else(|| SessionsError::Invalid {
                field: "campaign_id",
                message: format!("no campaign {campaign_id}"),
            })?;
        if c.settings.dial_mode == DialMode::Agentless {
            return Err(SessionsError::Invalid {
                field: "campaign_id",
                message: format!(
                    "campaign {campaign_id} dials in agentless mode; agent sessions run on \
                     preview, power and predictive campaigns"
                ),
            });
        }
        if matches!(c.state, CampaignState::Completed | CampaignState::Archived) {
            return Err(SessionsError::Conflict(format!(
                "campaign {campaign_id} is {}: it takes no sessions",
                c.state
            )));
        }
        let now = self.deps.clock.utc();
        let row = store
            .insert_session(&NewSession {
                id: new_id(now),
                campaign_id,
                agent: agent.clone(),
                node: self.cfg.node.clone(),
                created_at: now,
            })
            .await?;
        let id = row.id;
        self.sessions.insert(
            id,
            LiveSession {
                campaign_id,
                agent,
                sm: Session::new(now, core_mode(c.settings.dial_mode)),
                room: None,
                agent_call: None,
                current_contact: None,
                skip_next: 0,
                shown: None,
                claim_result: None,
                status_callback: c.settings.status_callback.clone(),
                handled: Default::default(),
                last_handle: None,
            },
        );
        publish(
            &self.deps,
            session_kinds::SESSION_STARTED,
            None,
            json!(SessionResource::from(row.clone())),
            c.settings.status_callback.as_deref(),
        )
        .await;
        self.drive(id).await;
        Ok(store.get_session(id).await?.unwrap_or(row))
    }

    async fn session_command(
        &mut self,
        id: Uuid,
        command: SessionCommand,
    ) -> Result<SessionRow, SessionsError> {
        let now = self.deps.clock.utc();
        let Some(s) = self.sessions.get_mut(&id) else {
            let row = self
                .deps
                .store
                .get_session(id)
                .await?
                .ok_or(SessionsError::NotFound(id))?;
            return Err(match row.state {
                SessionState::Ended(reason) => SessionsError::Conflict(
                    SessionError::Ended {
                        command: command.name(),
                        reason,
                    }
                    .to_string(),
                ),
                _ => SessionsError::Conflict(format!(
                    "session {id} is held by node {:?}, not this one",
                    row.node
                )),
            });
        };
        let disposition = matches!(command, SessionCommand::Disposition { .. });
        let preview_cmd = matches!(command, SessionCommand::Next | SessionCommand::Dial { .. });
        if preview_cmd && s.sm.mode() == super::super::DialMode::Preview {
            let campaign_id = s.campaign_id;
            let c = self
                .deps
                .store
                .get_campaign(campaign_id)
                .await?
                .ok_or_else(|| {
                    SessionsError::Conflict(format!("campaign {campaign_id} is gone"))
                })?;
            if c.state != CampaignState::Running {
                return Err(SessionsError::Conflict(format!(
                    "campaign {campaign_id} is {}: it hands out and dials no contacts until it \
                     runs",
                    c.state
                )));
            }
            let Some(s) = self.sessions.get(&id) else {
                return Err(SessionsError::NotFound(id));
            };
            if let (SessionCommand::Dial { .. }, Some(claim)) = (&command, &s.shown) {
                let (window, tz) =
                    outcome::window_and_zone(&c.settings, claim.contact.timezone.as_deref());
                if !window.is_open(now, tz) {
                    return Err(SessionsError::Conflict(format!(
                        "contact {}'s calling window is closed now; skip it",
                        claim.contact.id
                    )));
                }
            }
        }
        let Some(s) = self.sessions.get_mut(&id) else {
            return Err(SessionsError::NotFound(id));
        };
        s.sm.handle_command(now, command)
            .map_err(conflict_or_invalid)?;
        if disposition {
            self.feed_handle_time(id).await;
        }
        self.drive(id).await;
        if let Some(Err(e)) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.claim_result.take())
        {
            return Err(e);
        }
        self.deps
            .store
            .get_session(id)
            .await?
            .ok_or(SessionsError::NotFound(id))
    }

    /// Start-up: pauses this node's live sessions in the store and brings them back paused
    /// (their agents told by `session.notice`).
    pub(super) async fn restore_sessions(&mut self) -> Result<(), StoreError> {
        let now = self.deps.clock.utc();
        let store = self.deps.store.clone();
        for (row, was) in store.pause_live_sessions(&self.cfg.node, now).await? {
            let c = store.get_campaign(row.campaign_id).await?;
            let callback = c.as_ref().and_then(|c| c.settings.status_callback.clone());
            let mode = c.as_ref().map_or(super::super::DialMode::Power, |c| {
                core_mode(c.settings.dial_mode)
            });
            if was != SessionState::Paused {
                publish(
                    &self.deps,
                    session_kinds::SESSION_STATE_CHANGED,
                    None,
                    state_payload(&row, was, SessionState::Paused),
                    callback.as_deref(),
                )
                .await;
            }
            let id = row.id;
            self.sessions.insert(
                id,
                LiveSession {
                    campaign_id: row.campaign_id,
                    agent: row.agent.clone(),
                    sm: Session::restored(now, mode, row.counts),
                    room: None,
                    agent_call: None,
                    current_contact: None,
                    skip_next: 0,
                    shown: None,
                    claim_result: None,
                    status_callback: callback,
                    handled: (row.counts.talk, row.counts.wrap_up),
                    last_handle: None,
                },
            );
            tracing::warn!(session = %id, "dialer: session paused by the restart");
            self.drive(id).await;
        }
        Ok(())
    }

    /// Feeds an engine or runner observation to a session, then carries its actions out.
    async fn session_event(&mut self, id: Uuid, event: SessionEvent) -> Result<(), SessionError> {
        let now = self.deps.clock.utc();
        let Some(s) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        let r = s.sm.handle_event(now, event);
        self.drive(id).await;
        r
    }

    /// Carries out a session's actions, then writes its row.
    async fn drive(&mut self, id: Uuid) {
        while let Some(action) = self.sessions.get_mut(&id).and_then(|s| s.sm.poll_action()) {
            self.act(id, action).await;
        }
        self.save_session(id).await;
        if self
            .sessions
            .get(&id)
            .is_some_and(|s| matches!(s.sm.state(), SessionState::Ended(_)))
            && let Some(s) = self.sessions.remove(&id)
        {
            if let Some(call) = s.agent_call {
                self.agent_calls.remove(&call);
            }
            if let Some(room) = s.room {
                let _ = self
                    .deps
                    .engine
                    .end_conference(room, "agent session ended".into())
                    .await;
            }
        }
    }

    async fn save_session(&mut self, id: Uuid) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let u = SessionUpdate {
            state: s.sm.state(),
            current_attempt_id: s.sm.current_attempt().or(s.sm.preview().map(|p| p.attempt)),
            current_contact_id: s.current_contact,
            agent_call_id: s.agent_call,
            counts: s.sm.counts(),
        };
        let now = self.deps.clock.utc();
        if let Err(e) = self.deps.store.update_session(id, &u, now).await {
            tracing::error!(session = %id, error = %e, "dialer: session not stored");
        }
    }

    /// The call placed for an attempt, if still in flight here.
    fn call_of_attempt(&self, attempt: Uuid) -> Option<Uuid> {
        self.calls
            .iter()
            .find(|(_, f)| f.attempt_id == attempt)
            .map(|(id, _)| *id)
    }

    async fn act(&mut self, id: Uuid, action: SessionAction) {
        let now = self.deps.clock.utc();
        match action {
            SessionAction::CallAgent => self.call_agent(id, now).await,
            SessionAction::HangUpAgent => {
                if let Some(call) = self.sessions.get(&id).and_then(|s| s.agent_call) {
                    let _ = self.deps.engine.hangup(call).await;
                }
            }
            SessionAction::ClaimNext => {
                let r = self.claim_for_preview(id, now).await;
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.claim_result = Some(r);
                }
            }
            SessionAction::ShowContact { contact, attempt } => {
                self.publish_preview(id, contact, attempt).await;
            }
            SessionAction::ReleaseContact { contact, attempt } => {
                self.release_preview(id, contact, attempt).await;
            }
            SessionAction::PlaceCall { contact, attempt } => {
                self.place_preview_call(id, contact, attempt, now).await;
            }
            SessionAction::CancelAttempt { attempt }
            | SessionAction::HangUpCustomer { attempt } => {
                if let Some(call) = self.call_of_attempt(attempt) {
                    if let Some(f) = self.calls.get_mut(&call)
                        && !f.bridged
                    {
                        f.cancelled = true;
                    }
                    let _ = self.deps.engine.hangup(call).await;
                }
            }
            SessionAction::SkipNextContact => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.skip_next += 1;
                }
            }
            SessionAction::BridgeCustomer { attempt } => {
                let room = self.sessions.get(&id).and_then(|s| s.room);
                let Some(call) = self.call_of_attempt(attempt) else {
                    return;
                };
                let joined = match room {
                    Some(room) => self
                        .deps
                        .engine
                        .join(room, call, ParticipantOptions::default())
                        .await
                        .map(|_| ()),
                    None => Err(crate::call::EngineError::Conflict("no room".into())),
                };
                if let Err(e) = joined {
                    tracing::warn!(session = %id, %call, error = %e, "dialer: bridging failed");
                    let _ = self.deps.engine.hangup(call).await;
                }
            }
            SessionAction::SaveDisposition {
                attempt,
                disposition,
            } => {
                let handle = self
                    .sessions
                    .get_mut(&id)
                    .and_then(|s| s.last_handle.take());
                if let Err(e) = self
                    .deps
                    .store
                    .set_attempt_disposition(attempt, &disposition, handle)
                    .await
                {
                    tracing::error!(session = %id, error = %e, "dialer: disposition not stored");
                }
                let (campaign_id, callback, contact) = match self.sessions.get_mut(&id) {
                    Some(s) => (
                        s.campaign_id,
                        s.status_callback.clone(),
                        s.current_contact.take(),
                    ),
                    None => return,
                };
                publish(
                    &self.deps,
                    session_kinds::SESSION_DISPOSITION,
                    None,
                    json!({
                        "session_id": id,
                        "campaign_id": campaign_id,
                        "attempt_id": attempt,
                        "contact_id": contact,
                        "disposition": disposition,
                    }),
                    callback.as_deref(),
                )
                .await;
            }
            SessionAction::StateChanged { from, to } => {
                if to == SessionState::Available
                    && let Some(s) = self.sessions.get_mut(&id)
                    && s.sm.current_attempt().is_none()
                {
                    s.current_contact = None;
                }
                self.save_session(id).await;
                let callback = self
                    .sessions
                    .get(&id)
                    .and_then(|s| s.status_callback.clone());
                if let Ok(Some(row)) = self.deps.store.get_session(id).await {
                    publish(
                        &self.deps,
                        session_kinds::SESSION_STATE_CHANGED,
                        None,
                        state_payload(&row, from, to),
                        callback.as_deref(),
                    )
                    .await;
                }
            }
            SessionAction::Notify(Notice::RestartedPaused) => {
                let (campaign_id, callback) = match self.sessions.get(&id) {
                    Some(s) => (s.campaign_id, s.status_callback.clone()),
                    None => return,
                };
                publish(
                    &self.deps,
                    session_kinds::SESSION_NOTICE,
                    None,
                    json!({
                        "session_id": id,
                        "campaign_id": campaign_id,
                        "reason": "restarted-paused",
                        "message": "the server restarted: the session is paused; resume it to be called again",
                    }),
                    callback.as_deref(),
                )
                .await;
            }
        }
    }

    /// Preview `next`: claims the campaign's next contact for the session (leased as for a
    /// power line) and shows it; `Err` tells the API why there is none.
    async fn claim_for_preview(
        &mut self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), SessionsError> {
        let Some(campaign_id) = self.sessions.get(&id).map(|s| s.campaign_id) else {
            return Err(SessionsError::NotFound(id));
        };
        let store = self.deps.store.clone();
        let c = store
            .get_campaign(campaign_id)
            .await?
            .ok_or_else(|| SessionsError::Conflict(format!("campaign {campaign_id} is gone")))?;
        // A shown contact is an attempt started (it counts towards the rate limits and the
        // cap on calls at once, as a power line does).
        if let Err(at) = self.limiter(&c, now).await?.can_start(now) {
            return Err(SessionsError::Throttled(format!(
                "the campaign's rate limit is reached: the next contact may be shown at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        if let Some(cap) = c.settings.max_concurrent {
            let live = store.attempts_in_flight(c.id).await?;
            if live >= u64::from(cap) {
                return Err(SessionsError::Throttled(format!(
                    "the campaign has {live} calls or shown contacts at once (max_concurrent {cap})"
                )));
            }
        }
        let claim = self.claim(&c, now).await?;
        let Some(claim) = claim else {
            let next_due_at = match c.settings.list_id {
                Some(list) => store.next_due_at(list).await?,
                None => None,
            };
            return Err(SessionsError::NothingDue { next_due_at });
        };
        // The attempt names its session at once: a crash before the dial finds it a preview.
        store.set_attempt_session(claim.attempt_id, id).await?;
        let (contact, attempt) = (claim.contact.id, claim.attempt_id);
        let shown = match self.sessions.get_mut(&id) {
            Some(s) => {
                let r =
                    s.sm.handle_event(now, SessionEvent::ContactShown { contact, attempt });
                if r.is_ok() {
                    s.shown = Some(claim);
                    s.current_contact = Some(contact);
                }
                r
            }
            None => Err(SessionError::UnknownAttempt(attempt)),
        };
        if let Err(e) = shown {
            store.release_claim(attempt, now).await?;
            return Err(conflict_or_invalid(e));
        }
        Ok(())
    }

    /// Publishes `session.previewing` for a contact just shown.
    async fn publish_preview(&mut self, id: Uuid, contact: Uuid, attempt: Uuid) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let (campaign_id, callback) = (s.campaign_id, s.status_callback.clone());
        let shown = s.shown.as_ref().map(|c| {
            json!({
                "phone": c.contact.phone,
                "name": c.contact.name,
                "attempt_no": c.attempt_no,
            })
        });
        publish(
            &self.deps,
            session_kinds::SESSION_PREVIEWING,
            None,
            json!({
                "session_id": id,
                "campaign_id": campaign_id,
                "contact_id": contact,
                "attempt_id": attempt,
                "contact": shown,
            }),
            callback.as_deref(),
        )
        .await;
    }

    /// Puts a shown contact back in the queue without using an attempt.
    async fn release_preview(&mut self, id: Uuid, contact: Uuid, attempt: Uuid) {
        let now = self.deps.clock.utc();
        let (campaign_id, callback, reason) = match self.sessions.get_mut(&id) {
            Some(s) => {
                s.shown = None;
                if s.current_contact == Some(contact) {
                    s.current_contact = None;
                }
                let reason = match s.sm.state() {
                    SessionState::Paused => "paused",
                    SessionState::Ended(_) => "ended",
                    _ => "skipped",
                };
                (s.campaign_id, s.status_callback.clone(), reason)
            }
            None => return,
        };
        match self.deps.store.release_claim(attempt, now).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(session = %id, %attempt, "dialer: shown contact was not released");
            }
            Err(e) => {
                // Its lease runs out and the sweep releases it then.
                tracing::error!(session = %id, error = %e, "dialer: releasing the shown contact failed");
            }
        }
        publish(
            &self.deps,
            session_kinds::SESSION_PREVIEW_RELEASED,
            None,
            json!({
                "session_id": id,
                "campaign_id": campaign_id,
                "contact_id": contact,
                "attempt_id": attempt,
                "reason": reason,
            }),
            callback.as_deref(),
        )
        .await;
    }

    /// Preview `dial`: places the call to the shown contact under its claimed attempt, with
    /// the campaign's AMD and caller id, as a power line for this agent.
    async fn place_preview_call(
        &mut self,
        id: Uuid,
        contact: Uuid,
        attempt: Uuid,
        now: DateTime<Utc>,
    ) {
        let (claim, campaign_id) = match self.sessions.get_mut(&id) {
            Some(s) => (s.shown.take(), s.campaign_id),
            None => return,
        };
        let placed = match (claim, self.deps.store.get_campaign(campaign_id).await) {
            (Some(claim), Ok(Some(c))) if claim.attempt_id == attempt => {
                match self.start(&c, claim, now, Some(id)).await {
                    Ok(placed) => placed,
                    Err(e) => {
                        tracing::error!(session = %id, error = %e, "dialer: preview dial failed");
                        false
                    }
                }
            }
            _ => {
                tracing::error!(session = %id, %contact, "dialer: preview dial without its claim");
                false
            }
        };
        if !placed {
            // The attempt was finished with its outcome (or its lease runs out): available again.
            if let Some(s) = self.sessions.get_mut(&id) {
                let _ = s.sm.handle_event(
                    now,
                    SessionEvent::DialEnded {
                        attempt,
                        outcome: super::super::AttemptOutcome::Failed,
                    },
                );
            }
        }
    }

    /// Preview: the attempts of the contacts shown by this node's sessions, and their
    /// contacts (leases to renew; not for the expired-lease sweep).
    pub(super) fn shown_previews(&self) -> Vec<(Uuid, Uuid)> {
        self.sessions
            .values()
            .filter_map(|s| s.shown.as_ref())
            .map(|c| (c.attempt_id, c.contact.id))
            .collect()
    }

    /// Calls the agent into a (new) room of its own.
    async fn call_agent(&mut self, id: Uuid, now: DateTime<Utc>) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let (agent, campaign_id, callback) =
            (s.agent.clone(), s.campaign_id, s.status_callback.clone());
        let room = match s.room {
            Some(room) => room,
            None => {
                let mut spec = ConferenceSpec::new(new_id(now));
                spec.name = Some(format!("agent session {id}"));
                match self.deps.engine.create_conference(spec).await {
                    Ok(info) => info.id,
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, "dialer: no room for the agent");
                        self.agent_failed(id).await;
                        return;
                    }
                }
            }
        };
        let call_id = new_id(now);
        if let Some(s) = self.sessions.get_mut(&id) {
            s.room = Some(room);
            s.agent_call = Some(call_id);
        }
        self.agent_calls.insert(call_id, id);
        let placed = self
            .deps
            .engine
            .originate_agent(AgentOriginate {
                call: NewCall {
                    id: call_id,
                    direction: crate::store::Direction::Outbound,
                    from: "trunkline".into(),
                    to: agent.clone(),
                    trunk: None,
                    sip_call_id: None,
                    status: crate::store::CallStatus::Initiated,
                    status_callback: callback,
                    metadata: json!({
                        "session_id": id,
                        "campaign_id": campaign_id,
                        "agent": agent,
                    }),
                    idempotency_key: None,
                    api_key_id: None,
                    created_at: now,
                },
                agent,
                ring_timeout: self.cfg.ring_timeout,
                join: Some((
                    room,
                    ParticipantOptions {
                        end_on_exit: true,
                        ..ParticipantOptions::default()
                    },
                )),
            })
            .await;
        if let Err(e) = placed {
            tracing::warn!(session = %id, error = %e, "dialer: cannot call the agent");
            self.agent_calls.remove(&call_id);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.agent_call = None;
            }
            self.agent_failed(id).await;
        }
    }

    /// The agent could not be called: queued as an event (the session is being driven).
    async fn agent_failed(&mut self, id: Uuid) {
        let now = self.deps.clock.utc();
        if let Some(s) = self.sessions.get_mut(&id) {
            let _ = s.sm.handle_event(now, SessionEvent::AgentFailed);
        }
    }

    /// An event about a call to an agent: true if it was one.
    pub(super) async fn on_agent_call_event(&mut self, call_id: Uuid, kind: &str) -> bool {
        let Some(&id) = self.agent_calls.get(&call_id) else {
            return false;
        };
        match kind {
            crate::events::kinds::CALL_ANSWERED => {
                let _ = self.session_event(id, SessionEvent::AgentAnswered).await;
            }
            crate::events::kinds::CALL_COMPLETED => {
                self.agent_calls.remove(&call_id);
                let connecting = match self.sessions.get_mut(&id) {
                    Some(s) => {
                        s.agent_call = None;
                        s.sm.state() == SessionState::Connecting
                    }
                    None => return true,
                };
                let ev = if connecting {
                    SessionEvent::AgentFailed
                } else {
                    SessionEvent::AgentHungUp
                };
                let _ = self.session_event(id, ev).await;
            }
            _ => {}
        }
        true
    }

    /// A person answered a call placed for a session: bridge it to a free agent of the
    /// campaign (the one it was dialled for first), or abandon it.
    pub(super) async fn session_human(&mut self, call_id: Uuid) {
        let Some(f) = self.calls.get(&call_id) else {
            return;
        };
        let (attempt, contact, campaign, first) =
            (f.attempt_id, f.contact_id, f.campaign_id, f.session);
        let mut candidates: Vec<Uuid> = first.into_iter().collect();
        let mut others: Vec<Uuid> = self
            .sessions
            .iter()
            .filter(|(sid, s)| {
                Some(**sid) != first
                    && s.campaign_id == campaign
                    && matches!(
                        s.sm.state(),
                        SessionState::Available | SessionState::Dialing
                    )
            })
            .map(|(sid, _)| *sid)
            .collect();
        others.sort();
        candidates.extend(others);
        for sid in candidates {
            let now = self.deps.clock.utc();
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if s.sm
                .handle_event(now, SessionEvent::CustomerHuman { attempt })
                .is_err()
            {
                continue;
            }
            s.current_contact = Some(contact);
            if let Some(f) = self.calls.get_mut(&call_id) {
                f.bridged = true;
                f.session = Some(sid);
            }
            if let Some(first) = first.filter(|f| *f != sid) {
                let _ = self
                    .session_event(
                        first,
                        SessionEvent::DialEnded {
                            attempt,
                            outcome: super::super::AttemptOutcome::Human,
                        },
                    )
                    .await;
            }
            if let Err(e) = self.deps.store.set_attempt_session(attempt, sid).await {
                tracing::warn!(error = %e, "dialer: attempt's session not stored");
            }
            self.drive(sid).await;
            // The agent has a person: the other lines placed for it are no longer wanted.
            let others: Vec<Uuid> = self
                .sessions
                .get(&sid)
                .map(|s| s.sm.dialing().to_vec())
                .unwrap_or_default();
            for other in others {
                if let Some(call) = self.call_of_attempt(other) {
                    self.drop_line(call, false).await;
                }
            }
            return;
        }
        // Nobody free: the call is abandoned.
        self.drop_line(call_id, true).await;
    }

    /// Gives up a customer's line that no agent takes (`abandoned`: a person is known to be
    /// there). When the campaign has an identification message and the call is answered (the
    /// engine, which knows, accepts the prompt), the person hears it and the call is hung up
    /// when it finishes (`play.finished`); the attempt ends `abandoned`. Otherwise the call is
    /// hung up at once: `cancelled` if it was still ringing.
    async fn drop_line(&mut self, call_id: Uuid, abandoned: bool) {
        let Some(f) = self.calls.get_mut(&call_id) else {
            return;
        };
        f.played = true;
        if abandoned {
            f.abandoned = true;
        } else {
            f.cancelled = true;
        }
        if let Some(prompt) = f.abandon_prompt.clone()
            && self.deps.engine.play(call_id, prompt, false).await.is_ok()
        {
            if let Some(f) = self.calls.get_mut(&call_id) {
                f.abandoned = true;
            }
            return;
        }
        let _ = self.deps.engine.hangup(call_id).await;
    }

    /// A call placed for a session ended (its attempt is finished): tell the session.
    pub(super) async fn session_call_ended(
        &mut self,
        session: Uuid,
        attempt: Uuid,
        bridged: bool,
        outcome: AttemptOutcome,
    ) {
        let ev = if bridged {
            SessionEvent::CustomerHungUp { attempt }
        } else {
            SessionEvent::DialEnded {
                attempt,
                outcome: outcome::core_outcome(outcome),
            }
        };
        let _ = self.session_event(session, ev).await;
    }

    /// Ends the sessions of campaigns that are over (completed, archived, deleted).
    pub(super) async fn end_sessions_of_finished_campaigns(&mut self, running: &[Uuid]) {
        let mut ids: Vec<Uuid> = self
            .sessions
            .values()
            .map(|s| s.campaign_id)
            .filter(|c| !running.contains(c))
            .collect();
        ids.sort();
        ids.dedup();
        for cid in ids {
            let over = match self.deps.store.get_campaign(cid).await {
                Ok(Some(c)) => {
                    matches!(c.state, CampaignState::Completed | CampaignState::Archived)
                }
                Ok(None) => true,
                Err(_) => false,
            };
            if !over {
                continue;
            }
            let sids: Vec<Uuid> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.campaign_id == cid)
                .map(|(id, _)| *id)
                .collect();
            for sid in sids {
                let _ = self.session_event(sid, SessionEvent::CampaignEnded).await;
            }
        }
    }

    /// Whether a campaign has an agent talking to or wrapping up a customer (it does not
    /// complete meanwhile).
    pub(super) fn has_busy_agent(&self, campaign_id: Uuid) -> bool {
        self.sessions.values().any(|s| {
            s.campaign_id == campaign_id
                && matches!(s.sm.state(), SessionState::OnCall | SessionState::WrapUp)
        })
    }

    /// One tick of a running `preview` campaign: it completes once its list is dialled
    /// through (nothing pending, due for a retry or shown) and no agent is on a call or in
    /// wrap-up with one of its contacts.
    pub(super) async fn maybe_complete_preview(&mut self, c: &Campaign) -> Result<(), StoreError> {
        if self.deps.store.attempts_in_flight(c.id).await? == 0 && !self.has_busy_agent(c.id) {
            self.maybe_complete(c).await?;
        }
        Ok(())
    }

    /// One tick of a running `power` campaign.
    pub(super) async fn pace_power(&mut self, c: &Campaign) -> Result<(), StoreError> {
        let store = self.deps.store.clone();
        let idle: Vec<Uuid> = {
            let mut v: Vec<Uuid> = self
                .sessions
                .iter()
                .filter(|(_, s)| {
                    s.campaign_id == c.id
                        && matches!(
                            s.sm.state(),
                            SessionState::Available | SessionState::Dialing
                        )
                })
                .map(|(id, _)| *id)
                .collect();
            v.sort();
            v
        };
        let live = u32::try_from(store.attempts_in_flight(c.id).await?).unwrap_or(u32::MAX);
        if idle.is_empty() {
            if live == 0 && self.sessions.values().all(|s| s.campaign_id != c.id) {
                // No agent: nothing to do, and nothing to complete either (a power campaign
                // completes when its list is dialled through with agents on it).
            } else if live == 0 && !self.has_busy_agent(c.id) {
                self.maybe_complete(c).await?;
            }
            return Ok(());
        }
        let now = self.deps.clock.utc();
        let limiter = self.limiter(c, now).await?;
        let ringing = self
            .calls
            .values()
            .filter(|f| f.campaign_id == c.id && f.session.is_some() && !f.bridged)
            .count();
        let capacity = Capacity {
            max_concurrent: c.settings.max_concurrent.unwrap_or(u32::MAX),
            live_calls: live,
            rate_allowance: limiter.available(now),
        };
        let n = if c.settings.dial_mode == DialMode::Predictive {
            self.ensure_pacer(c.id).await;
            self.predictive_calls(c, u32::try_from(idle.len()).unwrap_or(u32::MAX), capacity)
        } else {
            power_calls(
                c.settings.lines_per_agent,
                u32::try_from(idle.len()).unwrap_or(u32::MAX),
                u32::try_from(ringing).unwrap_or(u32::MAX),
                capacity,
            )
        }
        .min(MAX_STARTS_PER_TICK);
        let mut claimed = 0;
        for _ in 0..n {
            let now = self.deps.clock.utc();
            let claim = self.claim(c, now).await?;
            let Some(claim) = claim else { break };
            claimed += 1;
            // The idle agent with the fewest lines ringing gets this one.
            let Some(sid) = idle
                .iter()
                .filter(|id| {
                    self.sessions.get(id).is_some_and(|s| {
                        matches!(
                            s.sm.state(),
                            SessionState::Available | SessionState::Dialing
                        )
                    })
                })
                .min_by_key(|id| self.sessions.get(id).map_or(0, |s| s.sm.dialing().len()))
                .copied()
            else {
                self.skip_claim(c, &claim, "no agent free").await?;
                break;
            };
            if let Some(s) = self.sessions.get_mut(&sid)
                && s.skip_next > 0
            {
                s.skip_next -= 1;
                self.skip_claim(c, &claim, "skipped by the agent").await?;
                continue;
            }
            let attempt = claim.attempt_id;
            let placed = self.start(c, claim, now, Some(sid)).await?;
            if placed {
                let _ = store.set_attempt_session(attempt, sid).await;
                let _ = self
                    .session_event(sid, SessionEvent::DialStarted { attempt })
                    .await;
            }
        }
        if claimed == 0 && live == 0 && !self.has_busy_agent(c.id) {
            self.maybe_complete(c).await?;
        }
        Ok(())
    }

    /// A disposition ended a wrap-up: the call's talk and wrap-up time are kept to be stored
    /// with the disposition, and go to the campaign's predictive pacer (predictive campaigns
    /// only).
    async fn feed_handle_time(&mut self, id: Uuid) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let counts = s.sm.counts();
        let talk = counts.talk.saturating_sub(s.handled.0);
        let wrap_up = counts.wrap_up.saturating_sub(s.handled.1);
        s.handled = (counts.talk, counts.wrap_up);
        s.last_handle = Some(HandleTime { talk, wrap_up });
        let campaign_id = s.campaign_id;
        let predictive = matches!(
            self.deps.store.get_campaign(campaign_id).await,
            Ok(Some(c)) if c.settings.dial_mode == DialMode::Predictive
        );
        if predictive {
            // (Not stored yet: a pacer rebuilt now does not have this call, so it is added.)
            self.ensure_pacer(campaign_id).await;
            if let Some(p) = self.pacers.get_mut(&campaign_id) {
                p.record_handle(talk, wrap_up);
            }
        }
    }

    /// `predictive` mode: what the campaign's [`PredictivePacer`] decides for this node's
    /// agents and lines now.
    fn predictive_calls(&mut self, c: &Campaign, idle: u32, capacity: Capacity) -> u32 {
        let now = self.deps.clock.utc();
        let busy: Vec<AgentLoad> = self
            .sessions
            .values()
            .filter(|s| s.campaign_id == c.id)
            .filter_map(|s| {
                let elapsed = (now - s.sm.since()).to_std().unwrap_or_default();
                match s.sm.state() {
                    SessionState::OnCall => Some(AgentLoad::OnCall { elapsed }),
                    SessionState::WrapUp => Some(AgentLoad::WrapUp { elapsed }),
                    _ => None,
                }
            })
            .collect();
        let ringing: Vec<std::time::Duration> = self
            .calls
            .values()
            .filter(|f| f.campaign_id == c.id && f.session.is_some() && !f.bridged)
            .map(|f| (now - f.dialled_at).to_std().unwrap_or_default())
            .collect();
        let pacer = self
            .pacers
            .entry(c.id)
            .or_insert_with(|| PredictivePacer::new(PredictiveConfig::default()));
        let d = pacer.decide(
            now,
            &PredictiveSnapshot {
                idle_agents: idle,
                busy: &busy,
                ringing: &ringing,
                waiting: 0,
                capacity,
            },
        );
        if d.calls > 0 {
            tracing::debug!(campaign = %c.id, calls = d.calls, answer_rate = d.answer_rate,
                expected_free = d.expected_free, feedback = d.feedback, "dialer: predictive pacing");
        }
        d.calls
    }

    /// Finishes a claimed contact's attempt as `cancelled` without dialling it.
    async fn skip_claim(
        &mut self,
        c: &Campaign,
        claim: &ClaimedContact,
        why: &str,
    ) -> Result<(), StoreError> {
        finish(
            &self.deps,
            &Finish {
                campaign: c,
                attempt_id: claim.attempt_id,
                attempt_no: claim.attempt_no,
                contact_id: claim.contact.id,
                contact_tz: claim.contact.timezone.as_deref(),
                phone: &claim.contact.phone,
                call_id: None,
                outcome: AttemptOutcome::Cancelled,
                amd_verdict: None,
                duration_ms: None,
                reason: why,
            },
        )
        .await
        .map(|_| ())
    }
}

/// The dialer core's name for a campaign's dial mode.
fn core_mode(m: DialMode) -> super::super::DialMode {
    match m {
        DialMode::Preview => super::super::DialMode::Preview,
        DialMode::Power => super::super::DialMode::Power,
        DialMode::Predictive => super::super::DialMode::Predictive,
        DialMode::Agentless => super::super::DialMode::Agentless,
    }
}

/// The payload of `session.state_changed`.
fn state_payload(row: &SessionRow, from: SessionState, to: SessionState) -> serde_json::Value {
    let reason = match to {
        SessionState::Ended(r) => Some(r),
        _ => None::<SessionEndReason>,
    };
    json!({
        "session_id": row.id,
        "campaign_id": row.campaign_id,
        "from": from.as_str(),
        "to": to.as_str(),
        "ended_reason": reason.map(SessionEndReason::as_str),
        "session": SessionResource::from(row.clone()),
    })
}

/// Sessions by id, as the runner keeps them.
pub(super) type Sessions = HashMap<Uuid, LiveSession>;
