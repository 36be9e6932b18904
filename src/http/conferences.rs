//! `/v1/conferences`: create, list, fetch and end rooms; add (move or dial), change and remove
//! participants; play to the whole room; `POST /v1/calls/{id}/bridge` puts two calls into a
//! new two-party room.
//!
//! The engine owns live rooms: a live room is answered from its snapshot (participants and
//! their state), an ended one from its store row with `participants: []`.
//!
//! Participant options travel flat in request bodies (`muted`, `deaf`, `hold`, `role`:
//! `normal|coach|listen`, `coach_target` with `coach`, `start_on_enter`, `end_on_exit`), and
//! participants are shown the same way.

use super::auth::Authed;
use super::calls::{self, CallResource, CreateCall, validate_callback};
use super::error::ApiError;
use super::state::AppState;
use crate::call::{
    ConferenceInfo, ConferenceSpec, EngineError, ParticipantInfo, ParticipantOptions,
    ParticipantPatch,
};
use crate::media::room::{ParticipantState, Role};
use crate::store::{Conference, ConferenceFilter, ConferenceStatus, StoreError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest conference name accepted, bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/conferences",
            post(create_conference).get(list_conferences),
        )
        .route("/conferences/{id}", get(get_conference))
        .route("/conferences/{id}/end", post(end_conference))
        .route("/conferences/{id}/participants", post(add_participant))
        .route(
            "/conferences/{id}/participants/{call_id}",
            patch(update_participant).delete(remove_participant),
        )
        .route("/conferences/{id}/play", post(play).delete(stop_play))
        .route("/calls/{id}/bridge", post(bridge))
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::Internal(e.into())
}

/// `POST /v1/conferences` body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConference {
    /// A name for people (at most 200 bytes).
    #[serde(default)]
    pub name: Option<String>,
    /// Most participants at once (at least 1; default: no limit). A join beyond it is 409.
    #[serde(default)]
    pub max_participants: Option<u32>,
    /// A short beep when a participant joins or leaves (default false).
    #[serde(default)]
    pub beeps: bool,
    /// Prompt heard until a `start_on_enter` participant joins (default: silence).
    #[serde(default)]
    pub wait_music: Option<String>,
    /// Prompt heard by participants on hold (default: silence).
    #[serde(default)]
    pub hold_music: Option<String>,
    /// Record the room from the moment it starts (default false).
    #[serde(default)]
    pub record: bool,
    /// URL receiving the room's events (and its recordings' events), signed.
    #[serde(default)]
    pub status_callback: Option<String>,
}

/// Room options as given at creation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConferenceOptions {
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
}

/// A conference (or two-party bridge) as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConferenceResource {
    /// Id.
    pub id: Uuid,
    /// Name, if any.
    pub name: Option<String>,
    /// `waiting` (no `start_on_enter` participant yet), `active` or `ended`.
    pub status: String,
    /// Whether this room is a two-party bridge.
    pub bridge: bool,
    /// Options given at creation.
    pub options: ConferenceOptions,
    /// Where its events go.
    pub status_callback: Option<String>,
    /// Created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Started.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended (`api`, `end_on_exit`, `empty`, `restart`, ...).
    pub end_reason: Option<String>,
    /// The prompt playing to the whole room, if any.
    pub playing: Option<String>,
    /// Participants in joining order (empty once ended).
    pub participants: Vec<ParticipantResource>,
    /// Recordings of the room in progress.
    pub recordings: Vec<Uuid>,
}

/// A participant as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParticipantResource {
    /// The participant's call.
    pub call_id: Uuid,
    /// Heard by nobody.
    pub muted: bool,
    /// Hears nothing.
    pub deaf: bool,
    /// Hears hold music, heard by nobody.
    pub hold: bool,
    /// `normal`, `coach` or `listen`.
    pub role: String,
    /// With `coach`: the call it is heard by.
    pub coach_target: Option<Uuid>,
    /// Its joining starts the room.
    pub start_on_enter: bool,
    /// Its leaving ends the room.
    pub end_on_exit: bool,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
}

impl From<ParticipantInfo> for ParticipantResource {
    fn from(p: ParticipantInfo) -> Self {
        ParticipantResource {
            call_id: p.call_id,
            muted: p.muted,
            deaf: p.deaf,
            hold: p.hold,
            role: p.role.name().into(),
            coach_target: match p.role {
                Role::Coach { target } => Some(target),
                _ => None,
            },
            start_on_enter: p.start_on_enter,
            end_on_exit: p.end_on_exit,
            joined_at: p.joined_at,
        }
    }
}

impl From<ConferenceInfo> for ConferenceResource {
    fn from(c: ConferenceInfo) -> Self {
        ConferenceResource {
            id: c.id,
            name: c.name,
            status: c.status.as_str().into(),
            bridge: c.bridge,
            options: ConferenceOptions {
                max_participants: c.max_participants,
                beeps: c.beeps,
                wait_music: c.wait_music,
                hold_music: c.hold_music,
                record: c.record,
            },
            status_callback: c.status_callback,
            created_at: c.created_at,
            started_at: c.started_at,
            ended_at: c.ended_at,
            end_reason: c.end_reason,
            playing: c.playing,
            participants: c.participants.into_iter().map(Into::into).collect(),
            recordings: c.recordings,
        }
    }
}

impl From<Conference> for ConferenceResource {
    fn from(c: Conference) -> Self {
        let o = &c.options;
        let text = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let flag = |k: &str| o.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        ConferenceResource {
            id: c.id,
            name: c.name,
            status: c.status.as_str().into(),
            bridge: flag("bridge"),
            options: ConferenceOptions {
                max_participants: c.max_participants,
                beeps: flag("beeps"),
                wait_music: text("wait_music"),
                hold_music: text("hold_music"),
                record: flag("record"),
            },
            status_callback: c.status_callback,
            created_at: c.created_at,
            started_at: c.started_at,
            ended_at: c.ended_at,
            end_reason: c.end_reason,
            playing: None,
            participants: Vec::new(),
            recordings: Vec::new(),
        }
    }
}

/// A page of conferences.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConferenceList {
    /// Conferences, newest first (from the store: `participants` is empty; fetch one for its
    /// live participants).
    pub conferences: Vec<ConferenceResource>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/conferences` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConferenceListQuery {
    /// `waiting`, `active` or `ended`.
    pub status: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Participant options in their flat API form (shared by the request bodies that carry them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantFields {
    /// Heard by nobody.
    pub muted: bool,
    /// Hears nothing.
    pub deaf: bool,
    /// On hold.
    pub hold: bool,
    /// `normal`, `coach` or `listen` (default `normal`).
    pub role: Option<String>,
    /// Required with `coach`.
    pub coach_target: Option<Uuid>,
    /// Default true.
    pub start_on_enter: Option<bool>,
    /// Default false.
    pub end_on_exit: Option<bool>,
}

/// The role named by `role` and `coach_target` (`prefix` goes before field names in errors).
/// `coach_target` alone means `coach`.
pub fn parse_role(
    prefix: &str,
    role: Option<&str>,
    coach_target: Option<Uuid>,
) -> Result<Option<Role>, ApiError> {
    match (role, coach_target) {
        (None, None) => Ok(None),
        (Some("coach"), Some(target)) | (None, Some(target)) => Ok(Some(Role::Coach { target })),
        (Some("coach"), None) => Err(ApiError::invalid(
            format!("{prefix}coach_target"),
            "coach_target (the call id of the participant to coach) is required with role coach",
        )),
        (Some(r @ ("normal" | "listen")), Some(_)) => Err(ApiError::invalid(
            format!("{prefix}coach_target"),
            format!("coach_target is only allowed with role coach, not {r}"),
        )),
        (Some("normal"), None) => Ok(Some(Role::Normal)),
        (Some("listen"), None) => Ok(Some(Role::Listen)),
        (Some(r), _) => Err(ApiError::invalid(
            format!("{prefix}role"),
            format!("role must be normal, coach or listen, not {r:?}"),
        )),
    }
}

impl ParticipantFields {
    /// The engine's options; 422 naming the field for a bad role or coach target.
    pub fn options(&self, prefix: &str) -> Result<ParticipantOptions, ApiError> {
        let role = parse_role(prefix, self.role.as_deref(), self.coach_target)?.unwrap_or_default();
        Ok(ParticipantOptions {
            state: ParticipantState {
                muted: self.muted,
                deaf: self.deaf,
                hold: self.hold,
                role,
            },
            start_on_enter: self.start_on_enter.unwrap_or(true),
            end_on_exit: self.end_on_exit.unwrap_or(false),
        })
    }
}

/// `conference` in `POST /v1/calls`: join this room once the call is answered.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinOnAnswer {
    /// The conference.
    pub id: Uuid,
    /// Heard by nobody.
    #[serde(default)]
    pub muted: bool,
    /// Hears nothing.
    #[serde(default)]
    pub deaf: bool,
    /// On hold.
    #[serde(default)]
    pub hold: bool,
    /// `normal` (default), `coach` or `listen`.
    #[serde(default)]
    pub role: Option<String>,
    /// Required with `coach`: the call id of the participant to coach.
    #[serde(default)]
    pub coach_target: Option<Uuid>,
    /// The room starts when this participant joins (default true).
    #[serde(default)]
    pub start_on_enter: Option<bool>,
    /// The room ends when this participant leaves (default false).
    #[serde(default)]
    pub end_on_exit: Option<bool>,
}

impl JoinOnAnswer {
    /// The flat participant options.
    pub fn fields(&self) -> ParticipantFields {
        ParticipantFields {
            muted: self.muted,
            deaf: self.deaf,
            hold: self.hold,
            role: self.role.clone(),
            coach_target: self.coach_target,
            start_on_enter: self.start_on_enter,
            end_on_exit: self.end_on_exit,
        }
    }
}

/// `POST /v1/conferences/{id}/participants` body: either `call_id` (move a live answered call
/// in) or `to` (dial a new leg, which joins when answered), plus participant options.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    /// A live answered call to move into the room.
    #[serde(default)]
    pub call_id: Option<Uuid>,
    /// Or a destination to dial (as in `POST /v1/calls`).
    #[serde(default)]
    pub to: Option<String>,
    /// Caller id of the dialled leg.
    #[serde(default)]
    pub from: Option<String>,
    /// Trunk of the dialled leg.
    #[serde(default)]
    pub trunk: Option<String>,
    /// Ring timeout of the dialled leg, seconds.
    #[serde(default)]
    pub ring_timeout_secs: Option<u64>,
    /// Answering-machine detection on the dialled leg.
    #[serde(default)]
    pub amd: Option<calls::AmdRequest>,
    /// Status callback of the dialled leg.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Metadata of the dialled leg.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Record the dialled leg from its answer.
    #[serde(default)]
    pub record: bool,
    /// Heard by nobody.
    #[serde(default)]
    pub muted: bool,
    /// Hears nothing.
    #[serde(default)]
    pub deaf: bool,
    /// On hold.
    #[serde(default)]
    pub hold: bool,
    /// `normal` (default), `coach` or `listen`.
    #[serde(default)]
    pub role: Option<String>,
    /// Required with `coach`: the call id of the participant to coach.
    #[serde(default)]
    pub coach_target: Option<Uuid>,
    /// The room starts when this participant joins (default true).
    #[serde(default)]
    pub start_on_enter: Option<bool>,
    /// The room ends when this participant leaves (default false).
    #[serde(default)]
    pub end_on_exit: Option<bool>,
}

/// `PATCH /v1/conferences/{id}/participants/{call_id}` body; fields left out stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParticipant {
    /// Heard by nobody.
    #[serde(default)]
    pub muted: Option<bool>,
    /// Hears nothing.
    #[serde(default)]
    pub deaf: Option<bool>,
    /// On hold.
    #[serde(default)]
    pub hold: Option<bool>,
    /// `normal`, `coach` or `listen`.
    #[serde(default)]
    pub role: Option<String>,
    /// With `coach` (alone, it means `coach`).
    #[serde(default)]
    pub coach_target: Option<Uuid>,
}

/// A new participant: the participant when a live call was moved in, the call when a leg is
/// being dialled (it joins when answered; `conference_id` is set then).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ParticipantCreated {
    /// A live call moved in.
    Participant(ParticipantResource),
    /// A dialled leg.
    Call(Box<CallResource>),
}

/// `DELETE /v1/conferences/{id}/participants/{call_id}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Hang the call up after it left (default false: it stays up, out of any room).
    pub hangup: Option<bool>,
}

/// `POST /v1/conferences/{id}/play` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomPlayRequest {
    /// Prompt name: a file in the config's `prompts/` folder, extension optional.
    pub prompt: String,
    /// Loop until stopped.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

/// `POST /v1/calls/{id}/bridge` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeRequest {
    /// The other call.
    pub call_id: Uuid,
}

async fn optional_prompt(
    st: &AppState,
    field: &str,
    name: Option<&str>,
) -> Result<Option<crate::media::player::Prompt>, ApiError> {
    match name {
        Some(n) => Ok(Some(calls::resolve_prompt(st, field, n).await?)),
        None => Ok(None),
    }
}

/// Create a conference.
#[utoipa::path(post, path = "/v1/conferences", tag = "conferences",
    request_body = CreateConference,
    responses(
        (status = 201, description = "created (status waiting)", body = ConferenceResource),
        (status = 400, description = "malformed JSON", body = super::error::ErrorBody),
        (status = 422, description = "invalid value, e.g. a missing or undecodable prompt", body = super::error::ErrorBody),
        (status = 503, description = "shutting down", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_conference(
    State(st): State<AppState>,
    body: Result<Json<CreateConference>, JsonRejection>,
) -> Result<(StatusCode, Json<ConferenceResource>), ApiError> {
    let Json(body) = body?;
    if let Some(n) = &body.name
        && (n.is_empty() || n.len() > MAX_NAME_LEN)
    {
        return Err(ApiError::invalid(
            "name",
            format!("name must be 1-{MAX_NAME_LEN} bytes"),
        ));
    }
    if body.max_participants == Some(0) {
        return Err(ApiError::invalid(
            "max_participants",
            "max_participants must be at least 1",
        ));
    }
    validate_callback(body.status_callback.as_deref())?;
    let wait_music = optional_prompt(&st, "wait_music", body.wait_music.as_deref()).await?;
    let hold_music = optional_prompt(&st, "hold_music", body.hold_music.as_deref()).await?;
    let mut spec = ConferenceSpec::new(crate::store::new_id(st.clock.utc()));
    spec.name = body.name;
    spec.max_participants = body.max_participants;
    spec.beeps = body.beeps;
    spec.wait_music = wait_music;
    spec.hold_music = hold_music;
    spec.record = body.record;
    spec.status_callback = body.status_callback;
    let info = st
        .engine
        .create_conference(spec)
        .await
        .map_err(|e| ApiError::from_engine(e, "max_participants"))?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List conferences, newest first (store rows; `participants` is empty here).
#[utoipa::path(get, path = "/v1/conferences", tag = "conferences", params(ConferenceListQuery),
    responses((status = 200, body = ConferenceList), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_conferences(
    State(st): State<AppState>,
    q: Result<Query<ConferenceListQuery>, QueryRejection>,
) -> Result<Json<ConferenceList>, ApiError> {
    let Query(q) = q?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ConferenceStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "status must be waiting, active or ended")
            })
        })
        .transpose()?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_conferences(&ConferenceFilter {
            status,
            name: None,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await
        .map_err(list_err)?;
    Ok(Json(ConferenceList {
        conferences: page.conferences.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// 422 for a page size outside 1-500.
pub(super) fn check_limit(limit: Option<u32>) -> Result<(), ApiError> {
    match limit {
        Some(l) if !(1..=crate::store::MAX_LIST_LIMIT).contains(&l) => {
            Err(ApiError::invalid("limit", "limit must be 1-500"))
        }
        _ => Ok(()),
    }
}

/// A list query's store error: a foreign cursor is 422.
pub(super) fn list_err(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidCursor => {
            ApiError::invalid("cursor", "cursor is not one this server gave out")
        }
        e => store_err(e),
    }
}

/// The live snapshot of a room, or its store row once ended; 404 if neither.
async fn conference_resource(st: &AppState, id: Uuid) -> Result<ConferenceResource, ApiError> {
    match st.engine.conference(id).await {
        Ok(info) => Ok(info.into()),
        Err(EngineError::ConferenceNotFound(_)) => st
            .store
            .get_conference(id)
            .await
            .map_err(store_err)?
            .map(Into::into)
            .ok_or_else(|| ApiError::NotFound(format!("conference {id}"))),
        Err(e) => Err(e.into()),
    }
}

/// 404 for a conference never heard of, 409 for one that has ended, else the engine's error.
/// A stored room the engine no longer holds has ended, even while the store writer has not
/// yet marked its row `ended` (just after an end): 409 then too, never 404.
async fn not_live(st: &AppState, id: Uuid, e: EngineError, field: &str) -> ApiError {
    if let EngineError::ConferenceNotFound(_) = e {
        return match st.store.get_conference(id).await {
            Ok(Some(_)) => ApiError::Conflict(format!("conference {id} has ended")),
            Ok(None) => ApiError::NotFound(format!("conference {id}")),
            Err(e) => store_err(e),
        };
    }
    ApiError::from_engine(e, field)
}

/// Fetch one conference with its participants.
#[utoipa::path(get, path = "/v1/conferences/{id}", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id")),
    responses((status = 200, body = ConferenceResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_conference(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<ConferenceResource>, ApiError> {
    let Path(id) = id?;
    Ok(Json(conference_resource(&st, id).await?))
}

/// End a conference and hang up every leg in it.
#[utoipa::path(post, path = "/v1/conferences/{id}/end", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id")),
    responses((status = 200, description = "ended", body = ConferenceResource), (status = 404, body = super::error::ErrorBody), (status = 409, description = "ended already", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn end_conference(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<ConferenceResource>, ApiError> {
    let Path(id) = id?;
    let before = match st.engine.conference(id).await {
        Ok(info) => info,
        Err(e) => return Err(not_live(&st, id, e, "id").await),
    };
    if let Err(e) = st.engine.end_conference(id, "api".into()).await {
        return Err(not_live(&st, id, e, "id").await);
    }
    // The store row is ended by the store writer shortly; answer from the last snapshot.
    let mut res: ConferenceResource = before.into();
    res.status = ConferenceStatus::Ended.as_str().into();
    res.ended_at = Some(st.clock.utc());
    res.end_reason = Some("api".into());
    res.playing = None;
    res.participants.clear();
    res.recordings.clear();
    Ok(Json(res))
}

/// Add a participant: move a live answered call in (`call_id`), or dial a new leg (`to`) that
/// joins when answered.
#[utoipa::path(post, path = "/v1/conferences/{id}/participants", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id")),
    request_body = AddParticipant,
    responses(
        (status = 201, description = "the participant (moved call) or the call (dialled leg)", body = ParticipantCreated),
        (status = 404, description = "unknown conference or call", body = super::error::ErrorBody),
        (status = 409, description = "full, ended, or the call is in the room already", body = super::error::ErrorBody),
        (status = 422, description = "bad role or coach target, or a bad dial value", body = super::error::ErrorBody),
        (status = 503, description = "over capacity", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn add_participant(
    State(st): State<AppState>,
    Extension(Authed(key)): Extension<Authed>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<AddParticipant>, JsonRejection>,
) -> Result<(StatusCode, Json<ParticipantCreated>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let fields = ParticipantFields {
        muted: body.muted,
        deaf: body.deaf,
        hold: body.hold,
        role: body.role.clone(),
        coach_target: body.coach_target,
        start_on_enter: body.start_on_enter,
        end_on_exit: body.end_on_exit,
    };
    let options = fields.options("")?;
    let dial_only = body.from.is_some()
        || body.trunk.is_some()
        || body.ring_timeout_secs.is_some()
        || body.amd.is_some()
        || body.status_callback.is_some()
        || body.metadata.is_some()
        || body.record;
    match (body.call_id, body.to) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "to",
            "give either call_id (move a live call in) or to (dial a new leg), not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "call_id",
            "call_id (a live call to move in) or to (a destination to dial) is required",
        )),
        (Some(_), None) if dial_only => Err(ApiError::invalid(
            "call_id",
            "from, trunk, ring_timeout_secs, amd, status_callback, metadata and record only go \
             with to (dialling a new leg)",
        )),
        (Some(call_id), None) => {
            let p = match st.engine.join(id, call_id, options).await {
                Ok(p) => p,
                Err(e) => return Err(not_live(&st, id, e, "coach_target").await),
            };
            Ok((
                StatusCode::CREATED,
                Json(ParticipantCreated::Participant(p.into())),
            ))
        }
        (None, Some(to)) => {
            check_can_join(&st, id, &options, "").await?;
            let create = CreateCall {
                to,
                from: body.from,
                trunk: body.trunk,
                ring_timeout_secs: body.ring_timeout_secs,
                status_callback: body.status_callback,
                metadata: body.metadata,
                amd: body.amd,
                record: body.record,
                conference: None,
            };
            let call = calls::place_call(&st, key.id, create, None, Some((id, options))).await?;
            Ok((
                StatusCode::CREATED,
                Json(ParticipantCreated::Call(Box::new(call))),
            ))
        }
    }
}

/// Checks, before dialling a leg that joins `id` on answer, that the room is live and not full
/// and that a coach's target is in it (the engine checks again at the join).
pub async fn check_can_join(
    st: &AppState,
    id: Uuid,
    options: &ParticipantOptions,
    prefix: &str,
) -> Result<(), ApiError> {
    let room = match st.engine.conference(id).await {
        Ok(r) => r,
        Err(e) => return Err(not_live(st, id, e, "id").await),
    };
    if let Role::Coach { target } = options.state.role
        && !room.participants.iter().any(|p| p.call_id == target)
    {
        return Err(ApiError::invalid(
            format!("{prefix}coach_target"),
            format!("coach target {target} is not a participant of conference {id}"),
        ));
    }
    if let Some(max) = room.max_participants
        && room.participants.len() >= max as usize
    {
        return Err(EngineError::Full(id).into());
    }
    Ok(())
}

/// Change a participant: mute, deaf, hold, role, coach target.
#[utoipa::path(patch, path = "/v1/conferences/{id}/participants/{call_id}", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id"), ("call_id" = Uuid, Path, description = "the participant's call id")),
    request_body = UpdateParticipant,
    responses((status = 200, body = ParticipantResource), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn update_participant(
    State(st): State<AppState>,
    ids: Result<Path<(Uuid, Uuid)>, PathRejection>,
    body: Result<Json<UpdateParticipant>, JsonRejection>,
) -> Result<Json<ParticipantResource>, ApiError> {
    let Path((id, call_id)) = ids?;
    let Json(body) = body?;
    let patch = ParticipantPatch {
        muted: body.muted,
        deaf: body.deaf,
        hold: body.hold,
        role: parse_role("", body.role.as_deref(), body.coach_target)?,
    };
    match st.engine.update_participant(id, call_id, patch).await {
        Ok(p) => Ok(Json(p.into())),
        Err(EngineError::NotFound(c)) => Err(ApiError::NotFound(format!(
            "participant {c} in conference {id}"
        ))),
        Err(e) => Err(not_live(&st, id, e, "coach_target").await),
    }
}

/// Take a participant out of the room, optionally hanging it up.
#[utoipa::path(delete, path = "/v1/conferences/{id}/participants/{call_id}", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id"), ("call_id" = Uuid, Path, description = "the participant's call id"), RemoveQuery),
    responses((status = 204, description = "removed"), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_participant(
    State(st): State<AppState>,
    ids: Result<Path<(Uuid, Uuid)>, PathRejection>,
    q: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((id, call_id)) = ids?;
    let Query(q) = q?;
    match st
        .engine
        .remove_participant(id, call_id, q.hangup.unwrap_or(false))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(EngineError::NotFound(c)) => Err(ApiError::NotFound(format!(
            "participant {c} in conference {id}"
        ))),
        Err(e) => Err(not_live(&st, id, e, "call_id").await),
    }
}

/// Play a prompt to the whole room (replacing what plays to it).
#[utoipa::path(post, path = "/v1/conferences/{id}/play", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id")), request_body = RoomPlayRequest,
    responses((status = 202, body = calls::Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, description = "missing or undecodable prompt", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn play(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<RoomPlayRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<calls::Accepted>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let prompt = calls::resolve_prompt(&st, "prompt", &body.prompt).await?;
    if let Err(e) = st.engine.play_room(id, Some(prompt), body.repeat).await {
        return Err(not_live(&st, id, e, "prompt").await);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(calls::Accepted { accepted: true }),
    ))
}

/// Stop the prompt playing to the room.
#[utoipa::path(delete, path = "/v1/conferences/{id}/play", tag = "conferences",
    params(("id" = Uuid, Path, description = "conference id")),
    responses((status = 202, body = calls::Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn stop_play(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<(StatusCode, Json<calls::Accepted>), ApiError> {
    let Path(id) = id?;
    if let Err(e) = st.engine.play_room(id, None, false).await {
        return Err(not_live(&st, id, e, "id").await);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(calls::Accepted { accepted: true }),
    ))
}

/// Bridge this call with another live answered call: a new two-party room, `end_on_exit` on
/// both (when either hangs up, the other is hung up).
#[utoipa::path(post, path = "/v1/calls/{id}/bridge", tag = "conferences",
    params(("id" = Uuid, Path, description = "call id")), request_body = BridgeRequest,
    responses((status = 201, body = ConferenceResource), (status = 404, description = "unknown call", body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, description = "the same call twice", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn bridge(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<BridgeRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ConferenceResource>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    if body.call_id == id {
        return Err(ApiError::invalid(
            "call_id",
            "call_id must be another call than the one in the path",
        ));
    }
    let info = st
        .engine
        .bridge(id, body.call_id)
        .await
        .map_err(|e| ApiError::from_engine(e, "call_id"))?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_with_their_target() {
        let t = Uuid::from_u128(7);
        assert_eq!(parse_role("", None, None).unwrap(), None);
        assert_eq!(
            parse_role("", Some("normal"), None).unwrap(),
            Some(Role::Normal)
        );
        assert_eq!(
            parse_role("", Some("listen"), None).unwrap(),
            Some(Role::Listen)
        );
        assert_eq!(
            parse_role("", Some("coach"), Some(t)).unwrap(),
            Some(Role::Coach { target: t })
        );
        assert_eq!(
            parse_role("", None, Some(t)).unwrap(),
            Some(Role::Coach { target: t })
        );
        let field = |r: Result<Option<Role>, ApiError>| match r {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected 422, got {other:?}"),
        };
        assert_eq!(field(parse_role("", Some("coach"), None)), "coach_target");
        assert_eq!(
            field(parse_role("conference.", Some("listen"), Some(t))),
            "conference.coach_target"
        );
        assert_eq!(field(parse_role("", Some("barge"), None)), "role");
    }

    #[test]
    fn participant_fields_default_to_start_on_enter() {
        let o = ParticipantFields::default().options("").unwrap();
        assert_eq!(o, ParticipantOptions::default());
        assert!(o.start_on_enter && !o.end_on_exit);
    }

    #[test]
    fn ended_row_shows_its_options() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = Conference {
            id: Uuid::from_u128(1),
            name: Some("sales".into()),
            status: ConferenceStatus::Ended,
            created_at: now,
            started_at: Some(now),
            ended_at: Some(now),
            end_reason: Some("api".into()),
            max_participants: Some(3),
            options: serde_json::json!({"beeps": true, "wait_music": "tone", "bridge": false}),
            status_callback: None,
        };
        let r = ConferenceResource::from(c);
        assert_eq!(r.status, "ended");
        assert!(r.options.beeps && !r.options.record && !r.bridge);
        assert_eq!(r.options.wait_music.as_deref(), Some("tone"));
        assert_eq!(r.options.max_participants, Some(3));
        assert!(r.participants.is_empty());
    }
}
