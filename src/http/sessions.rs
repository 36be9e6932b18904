//! `/v1/sessions`: agent sessions of preview, power and predictive campaigns (issue 5, "Agent
//! sessions", "Dial modes").
//!
//! `POST /v1/sessions {campaign_id, agent}` starts one: the server calls the agent (a name
//! from `sip-config/agents.toml`, rung at its registered contact, or a `sip:user@IP[:port]`
//! URI) and keeps the leg in the agent's own room; customers answered by a person are moved
//! into it. `GET /v1/sessions/{id}` shows the state, the current contact and the totals;
//! `pause`, `resume`, `skip`, `stop` and `disposition` drive it. A command the session's state
//! does not allow is 409 with the state machine's message ("cannot resume while available:
//! resume is allowed when paused"); an unknown session 404; a bad body 422. The runner
//! ([`crate::dialer::runner::sessions`]) owns the sessions and publishes their events
//! (`session.*`).
//!
//! Preview campaigns: the agent asks for a contact with `POST /v1/sessions/{id}/next` (the
//! session must be `available` with none shown); the contact is claimed by the campaign's queue
//! (priority, due time, calling window, do-not-call, attempts left) and leased to the session,
//! so no other agent or node gets it while it is shown; the answer is a [`PreviewResource`]
//! (the contact, its earlier attempts and outcomes, the claimed attempt), and
//! `GET /v1/sessions/{id}` shows it too (`preview`). No contact due now is 404 with
//! `next_due_at` in the details when one waits. `POST /v1/sessions/{id}/dial` (optional body
//! `{"contact_id"}`, which must be the shown contact) places the call as a power line does;
//! `skip`, `pause` and `stop` put the shown contact back in the queue, and a contact that was
//! only shown uses up none of its attempts. `next` or `dial` on a session of another mode is
//! 409 naming the campaign's mode; `dial` with no contact shown 409 ("ask for the next contact
//! first").

use super::campaigns::store_err;
use super::error::ApiError;
use super::state::AppState;
use crate::dialer::runner::sessions::SessionsError;
use crate::dialer::session::{SessionCommand, SessionState};
use crate::inbound::StaticTarget;
use crate::store::SessionRow;
use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/{id}", get(get_session))
        .route("/sessions/{id}/pause", post(pause))
        .route("/sessions/{id}/resume", post(resume))
        .route("/sessions/{id}/next", post(next))
        .route("/sessions/{id}/dial", post(dial))
        .route("/sessions/{id}/skip", post(skip))
        .route("/sessions/{id}/stop", post(stop))
        .route("/sessions/{id}/disposition", post(disposition))
        .route("/campaigns/{id}/sessions", get(list_sessions))
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// A `preview`, `power` or `predictive` campaign, not completed or archived.
    pub campaign_id: Uuid,
    /// A configured agent name (rung at its registered contact) or a `sip:user@IP[:port]` URI.
    pub agent: String,
}

/// `POST /v1/sessions/{id}/disposition`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionInput {
    /// A campaign-defined code (`sale`, `callback`, ...), 1 to 200 characters.
    pub disposition: String,
}

/// `POST /v1/sessions/{id}/dial` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialInput {
    /// The contact the agent means to dial: if given, it must be the contact shown.
    pub contact_id: Option<Uuid>,
}

/// An earlier attempt at a previewed contact.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PastAttempt {
    /// Attempt id.
    pub id: Uuid,
    /// 1 for the first attempt.
    pub attempt_no: u32,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Ended (`None`: still open).
    pub ended_at: Option<DateTime<Utc>>,
    /// `human`, `machine`, `fax`, `no-answer`, `busy`, `failed`, `abandoned`, `cancelled`.
    pub outcome: Option<String>,
    /// The AMD verdict, if any.
    pub amd_verdict: Option<String>,
    /// The agent's disposition, if one was posted.
    pub disposition: Option<String>,
}

/// The contact shown to a preview agent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewContact {
    /// Contact id.
    pub id: Uuid,
    /// E.164 number.
    pub phone: String,
    /// Name, if any.
    pub name: Option<String>,
    /// IANA zone, if the contact has one (else the campaign's default applies).
    pub timezone: Option<String>,
    /// Priority (higher first).
    pub priority: i64,
    /// Custom fields.
    pub custom: serde_json::Value,
}

/// `POST /v1/sessions/{id}/next`: the contact shown, with its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewResource {
    /// The session.
    pub session_id: Uuid,
    /// The attempt claimed for it (dialled with `dial`; removed if the contact is skipped).
    pub attempt_id: Uuid,
    /// Its number: 1 + the attempts made before.
    pub attempt_no: u32,
    /// The contact.
    pub contact: PreviewContact,
    /// Attempts made before, first first, with their outcomes.
    pub attempts: Vec<PastAttempt>,
}

/// The running totals of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionCountsResource {
    /// Customers bridged to the agent.
    pub calls: u32,
    /// Dispositions posted.
    pub dispositions: u32,
    /// Contacts or dials skipped.
    pub skipped: u32,
    /// Time on customer calls, in milliseconds.
    pub talk_ms: u64,
    /// Time in wrap-up, in milliseconds.
    pub wrap_up_ms: u64,
}

/// The contact on the call or in wrap-up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionContact {
    /// Contact id.
    pub id: Uuid,
    /// E.164 number.
    pub phone: String,
    /// Name, if any.
    pub name: Option<String>,
    /// Custom fields.
    pub custom: serde_json::Value,
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionResource {
    /// Id.
    pub id: Uuid,
    /// Campaign.
    pub campaign_id: Uuid,
    /// The agent (name or URI).
    pub agent: String,
    /// `connecting`, `available`, `dialing`, `on-call`, `wrap-up`, `paused` or `ended`.
    pub state: String,
    /// Why it ended (`agent-unreachable`, `agent-hangup`, `stopped`, `campaign-ended`).
    pub ended_reason: Option<String>,
    /// The attempt on the call or in wrap-up.
    pub current_attempt_id: Option<Uuid>,
    /// Its contact's id.
    pub current_contact_id: Option<Uuid>,
    /// The contact (in `GET` answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_contact: Option<SessionContact>,
    /// Preview: the contact shown, not dialled yet (in `GET` and command answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewResource>,
    /// The call to the agent, while up.
    pub agent_call_id: Option<Uuid>,
    /// Totals.
    pub counts: SessionCountsResource,
    /// The node holding the agent's leg.
    pub node: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<SessionRow> for SessionResource {
    fn from(r: SessionRow) -> Self {
        let ended_reason = match r.state {
            SessionState::Ended(reason) => Some(reason.as_str().to_owned()),
            _ => None,
        };
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            id: r.id,
            campaign_id: r.campaign_id,
            agent: r.agent,
            state: r.state.as_str().to_owned(),
            ended_reason,
            current_attempt_id: r.current_attempt_id,
            current_contact_id: r.current_contact_id,
            current_contact: None,
            preview: None,
            agent_call_id: r.agent_call_id,
            counts: SessionCountsResource {
                calls: r.counts.calls,
                dispositions: r.counts.dispositions,
                skipped: r.counts.skipped,
                talk_ms: millis(r.counts.talk),
                wrap_up_ms: millis(r.counts.wrap_up),
            },
            node: r.node,
            created_at: r.created_at,
            updated_at: r.updated_at,
            ended_at: r.ended_at,
        }
    }
}

/// A campaign's sessions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionList {
    /// Oldest first.
    pub sessions: Vec<SessionResource>,
}

fn sessions_err(e: SessionsError) -> ApiError {
    match e {
        SessionsError::NotFound(id) => ApiError::NotFound(format!("session {id}")),
        SessionsError::Conflict(m) => ApiError::Conflict(m),
        SessionsError::Invalid { field, message } => ApiError::invalid(field, message),
        SessionsError::NothingDue { next_due_at } => ApiError::NothingHere {
            message: SessionsError::NothingDue { next_due_at }.to_string(),
            details: Some(serde_json::json!({ "next_due_at": next_due_at })),
        },
        SessionsError::Throttled(m) => ApiError::TooManyRequests(m),
        SessionsError::Unavailable(message) => ApiError::Unavailable {
            message,
            retry_after_secs: 1,
        },
        SessionsError::Store(e) => store_err(e),
    }
}

/// A body that is not the expected JSON is 422 here (the session API's one answer to a bad
/// body), naming the parser's complaint.
fn bad_body(r: JsonRejection) -> ApiError {
    ApiError::invalid("body", r.body_text())
}

fn path_id(id: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(id) = id?;
    Ok(id)
}

/// The contact shown to a preview session (`available` with an attempt and its contact).
async fn preview_of(st: &AppState, row: &SessionRow) -> Result<Option<PreviewResource>, ApiError> {
    let (SessionState::Available, Some(attempt), Some(contact)) =
        (row.state, row.current_attempt_id, row.current_contact_id)
    else {
        return Ok(None);
    };
    let Some(c) = st.store.get_contact(contact).await.map_err(store_err)? else {
        return Ok(None);
    };
    let all = st
        .store
        .contact_attempts(contact)
        .await
        .map_err(store_err)?;
    let attempt_no = all
        .iter()
        .find(|a| a.id == attempt)
        .map_or(c.attempts, |a| a.attempt_no);
    let attempts = all
        .into_iter()
        .filter(|a| a.id != attempt)
        .map(|a| PastAttempt {
            id: a.id,
            attempt_no: a.attempt_no,
            started_at: a.started_at,
            ended_at: a.ended_at,
            outcome: a.outcome.map(|o| o.as_str().to_owned()),
            amd_verdict: a.amd_verdict,
            disposition: a.disposition,
        })
        .collect();
    Ok(Some(PreviewResource {
        session_id: row.id,
        attempt_id: attempt,
        attempt_no,
        contact: PreviewContact {
            id: c.id,
            phone: c.phone,
            name: c.name,
            timezone: c.timezone,
            priority: c.priority,
            custom: c.custom,
        },
        attempts,
    }))
}

/// The resource with its current contact (and the preview, if one is shown).
async fn resource(st: &AppState, row: SessionRow) -> Result<SessionResource, ApiError> {
    let contact = match row.current_contact_id {
        Some(id) => st.store.get_contact(id).await.map_err(store_err)?,
        None => None,
    };
    let preview = preview_of(st, &row).await?;
    let mut r = SessionResource::from(row);
    r.preview = preview;
    r.current_contact = contact.map(|c| SessionContact {
        id: c.id,
        phone: c.phone,
        name: c.name,
        custom: c.custom,
    });
    Ok(r)
}

/// Start a session: the agent is called.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "created (state connecting: the agent is being called)", body = SessionResource),
        (status = 409, description = "the campaign is completed or archived", body = super::error::ErrorBody),
        (status = 422, description = "bad body, unknown agent or campaign, campaign not in power or predictive mode", body = super::error::ErrorBody),
        (status = 503, description = "the dialer is not running or busy", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_session(
    State(st): State<AppState>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<(StatusCode, Json<SessionResource>), ApiError> {
    let Json(input) = body.map_err(bad_body)?;
    let agent = input.agent.trim().to_owned();
    let known = if agent.starts_with("sip:") {
        StaticTarget::parse(&agent).is_some()
    } else {
        st.config.agent(&agent).is_some()
    };
    if !known {
        return Err(ApiError::invalid(
            "agent",
            format!(
                "{agent:?} is neither an agent of sip-config/agents.toml nor a sip:user@IP[:port] URI"
            ),
        ));
    }
    let row = st
        .sessions
        .start(input.campaign_id, agent)
        .await
        .map_err(sessions_err)?;
    Ok((StatusCode::CREATED, Json(resource(&st, row).await?)))
}

/// A session: state, current contact, totals.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_session(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    let id = path_id(id)?;
    let row = st
        .store
        .get_session(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("session {id}")))?;
    Ok(Json(resource(&st, row).await?))
}

/// A campaign's sessions, oldest first (ended ones too).
#[utoipa::path(get, path = "/v1/campaigns/{id}/sessions", tag = "sessions",
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 200, body = SessionList), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_sessions(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionList>, ApiError> {
    let id = path_id(id)?;
    if st
        .store
        .get_campaign(id)
        .await
        .map_err(store_err)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("campaign {id}")));
    }
    let rows = st.store.list_sessions(id).await.map_err(store_err)?;
    Ok(Json(SessionList {
        sessions: rows.into_iter().map(SessionResource::from).collect(),
    }))
}

async fn command(
    st: &AppState,
    id: Uuid,
    cmd: SessionCommand,
) -> Result<Json<SessionResource>, ApiError> {
    let row = st.sessions.command(id, cmd).await.map_err(sessions_err)?;
    Ok(Json(resource(st, row).await?))
}

/// Pause: no more calls (after the current call's disposition, if on a call).
#[utoipa::path(post, path = "/v1/sessions/{id}/pause", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not live", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn pause(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    command(&st, path_id(id)?, SessionCommand::Pause).await
}

/// Resume a paused session (the agent is called again if its leg is gone).
#[utoipa::path(post, path = "/v1/sessions/{id}/resume", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not paused", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn resume(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    command(&st, path_id(id)?, SessionCommand::Resume).await
}

/// Preview: claim the next contact of the campaign's queue and show it to the agent.
#[utoipa::path(post, path = "/v1/sessions/{id}/next", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses(
        (status = 200, description = "the contact shown (leased to this session until dialled or skipped)", body = PreviewResource),
        (status = 404, description = "unknown session, or no contact is due now (details: next_due_at, null when none waits)", body = super::error::ErrorBody),
        (status = 409, description = "not a preview session, not available, a contact is shown already, or the campaign is not running", body = super::error::ErrorBody),
        (status = 429, description = "the campaign's rate limit or max_concurrent allows no new contact now (a shown contact counts as a call started)", body = super::error::ErrorBody),
        (status = 503, description = "the dialer is not running or busy", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn next(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<PreviewResource>, ApiError> {
    let id = path_id(id)?;
    let row = st
        .sessions
        .command(id, SessionCommand::Next)
        .await
        .map_err(sessions_err)?;
    preview_of(&st, &row).await?.map(Json).ok_or_else(|| {
        // The runner showed it; only a change in between (stop, crash) gets here.
        ApiError::Conflict(format!(
            "session {id} shows no contact any more (it is {})",
            row.state
        ))
    })
}

/// Preview: dial the contact shown (with the campaign's AMD and caller id); a person is joined
/// into the agent's room, then wrap-up and disposition as in power mode.
#[utoipa::path(post, path = "/v1/sessions/{id}/dial", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    request_body(content = Option<DialInput>, description = "optional: the contact meant, which must be the one shown"),
    responses((status = 200, description = "dialing", body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not a preview session, no contact shown (ask for the next first), another contact shown, not available, or the campaign is not running", body = super::error::ErrorBody),
        (status = 422, description = "bad body", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn dial(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<SessionResource>, ApiError> {
    let id = path_id(id)?;
    // No body (or an empty one) is fine: dial the contact shown.
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        DialInput::default()
    } else {
        serde_json::from_slice::<DialInput>(&body)
            .map_err(|e| ApiError::invalid("body", format!("bad dial body: {e}")))?
    };
    command(
        &st,
        id,
        SessionCommand::Dial {
            contact: input.contact_id,
        },
    )
    .await
}

/// Skip the contacts being dialled, or the next contact (preview: put the shown contact back).
#[utoipa::path(post, path = "/v1/sessions/{id}/skip", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "on a call, in wrap-up, connecting or ended", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn skip(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    command(&st, path_id(id)?, SessionCommand::Skip).await
}

/// End the session (the agent's leg and any customer with it are hung up).
#[utoipa::path(post, path = "/v1/sessions/{id}/stop", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "already ended", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn stop(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    command(&st, path_id(id)?, SessionCommand::Stop).await
}

/// The outcome of the call just finished: stored on its attempt; the agent is available again.
#[utoipa::path(post, path = "/v1/sessions/{id}/disposition", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    request_body = DispositionInput,
    responses((status = 200, body = SessionResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not in wrap-up", body = super::error::ErrorBody),
        (status = 422, description = "bad body or disposition", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn disposition(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<DispositionInput>, JsonRejection>,
) -> Result<Json<SessionResource>, ApiError> {
    let id = path_id(id)?;
    let Json(input) = body.map_err(bad_body)?;
    command(
        &st,
        id,
        SessionCommand::Disposition {
            disposition: input.disposition,
        },
    )
    .await
}
