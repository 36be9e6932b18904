//! `/v1/sessions`: agent sessions of power and predictive campaigns (issue 5, "Agent sessions").
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
        .route("/sessions/{id}/skip", post(skip))
        .route("/sessions/{id}/stop", post(stop))
        .route("/sessions/{id}/disposition", post(disposition))
        .route("/campaigns/{id}/sessions", get(list_sessions))
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// A `power` or `predictive` campaign, not completed or archived.
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

/// The resource with its current contact.
async fn resource(st: &AppState, row: SessionRow) -> Result<SessionResource, ApiError> {
    let contact = match row.current_contact_id {
        Some(id) => st.store.get_contact(id).await.map_err(store_err)?,
        None => None,
    };
    let mut r = SessionResource::from(row);
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

/// Skip the contacts being dialled, or the next contact.
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
