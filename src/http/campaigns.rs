//! `/v1/campaigns`: create, list, fetch, change and delete campaigns; move them through their
//! states (`start`, `pause`, `resume`, `complete`, `archive`); export their attempt history
//! (`attempts.csv`).
//!
//! Every change publishes an event (`campaign.created`, `campaign.updated`, `campaign.started`,
//! `campaign.paused`, `campaign.completed`) with the campaign as payload, delivered to the
//! campaign's `status_callback` when it has one. Starting a campaign with no trunk, no caller
//! id or an empty list is 422 naming what is missing; a move its state forbids is 409.

use super::calls::{resolve_prompt, validate_callback};
use super::error::ApiError;
use super::state::AppState;
use crate::amd::{AmdMode, AmdParams};
use crate::campaign::{
    CallerIds, CampaignSettings, CampaignState, DialMode, OnHuman, OnMachine, RetryDelays,
    format_local_time, parse_local_time,
};
use crate::store::{Campaign, CampaignFilter, NewCampaign, StoreError, new_id};
use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Attempts read per store query while exporting.
const EXPORT_PAGE: u32 = 5_000;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", post(create_campaign).get(list_campaigns))
        .route(
            "/campaigns/{id}",
            get(get_campaign)
                .patch(update_campaign)
                .delete(delete_campaign),
        )
        .route("/campaigns/{id}/start", post(start))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/complete", post(complete))
        .route("/campaigns/{id}/archive", post(archive))
        .route("/campaigns/{id}/attempts.csv", get(attempts_csv))
        .route("/campaigns/{id}/stats", get(stats))
}

pub(super) fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidCursor => {
            ApiError::invalid("cursor", "cursor is not one this server gave out")
        }
        e => ApiError::Internal(e.into()),
    }
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value; absent fields are `None`
/// by `#[serde(default)]`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// AMD settings of a campaign (as `amd` in `POST /v1/calls`, without the machine action, which
/// is the campaign's `on_machine`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmdSettings {
    #[serde(default)]
    #[allow(dead_code)]
    mode: Option<AmdMode>,
    #[serde(default)]
    params: Option<AmdParams>,
}

/// `POST /v1/campaigns` and `PATCH /v1/campaigns/{id}` body. On create only `name` is
/// required; on `PATCH` fields left out keep their value and `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// Name (1-200 bytes).
    #[serde(default)]
    pub name: Option<String>,
    /// The contact list dialled.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub list_id: Option<Option<Uuid>>,
    /// Trunk name from `trunks.toml`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub trunk: Option<Option<String>>,
    /// One caller id (shorthand for `caller_ids: {"default": [it]}`).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Caller-id pools: `default`, and `by_prefix` (`[{prefix, numbers}]`, longest prefix
    /// wins); numbers of a pool are used in turn.
    #[serde(default)]
    pub caller_ids: Option<CallerIds>,
    /// `preview`, `power` (default), `predictive` or `agentless`.
    #[serde(default)]
    pub dial_mode: Option<String>,
    /// AMD: `{"mode": "enable"|"detect_message_end", "params": {...}}` as in `POST /v1/calls`;
    /// `{}` (default) for no detection.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub amd: Option<serde_json::Value>,
    /// On a machine: `hangup` (default), `continue` or `voicemail_drop`.
    #[serde(default)]
    pub on_machine: Option<String>,
    /// Prompt left after the beep with `voicemail_drop` (a file of `prompts/`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub voicemail_prompt: Option<Option<String>>,
    /// Identification message (a file of `prompts/`): played to a person who answered when
    /// no agent of a power or predictive session was free, then the call is hung up. Unset
    /// (default): the call is hung up at once.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub abandon_prompt: Option<Option<String>>,
    /// `agentless`: what a person who answers gets: `prompt` (default: `voicemail_prompt`,
    /// then hang up), `bridge` (put through to `bridge_to` over the campaign's trunk) or
    /// `webhook` (a signed POST to `on_human_url` answers which, see the README).
    #[serde(default)]
    pub on_human: Option<String>,
    /// `on_human: bridge`: the number (or `sip:` URI) people are put through to.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub bridge_to: Option<Option<String>>,
    /// `on_human: webhook`: the http(s) URL asked for each person's action.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub on_human_url: Option<Option<String>>,
    /// Record answered calls (default false).
    #[serde(default)]
    pub record: Option<bool>,
    /// Calling window start, the contact's local time, `HH:MM` (default `08:00`).
    #[serde(default)]
    pub window_start: Option<String>,
    /// Calling window end (exclusive), `HH:MM` (default `21:00`).
    #[serde(default)]
    pub window_end: Option<String>,
    /// IANA zone of contacts whose zone is unknown (default from `[campaigns]`).
    #[serde(default)]
    pub default_timezone: Option<String>,
    /// Most attempts per contact, 1-100 (default 3).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Seconds before a retry per outcome: `no-answer`, `busy`, `failed`, `machine`,
    /// `abandoned` (missing ones take their defaults).
    #[serde(default)]
    pub retry_delays: Option<RetryDelays>,
    /// Most attempts started in any 60 s.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>)]
    pub rate_per_minute: Option<Option<u32>>,
    /// Most attempts started in any hour.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>)]
    pub rate_per_hour: Option<Option<u32>>,
    /// Most calls in progress at once.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>)]
    pub max_concurrent: Option<Option<u32>>,
    /// Lines per available agent, 1-20 (default 1).
    #[serde(default)]
    pub lines_per_agent: Option<f64>,
    /// Higher runs first when campaigns compete for lines (default 0).
    #[serde(default)]
    pub priority: Option<i32>,
    /// URL receiving this campaign's events, signed.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub status_callback: Option<Option<String>>,
}

/// A campaign as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignResource {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `draft`, `running`, `paused`, `completed` or `archived`.
    pub state: String,
    /// Contact list.
    pub list_id: Option<Uuid>,
    /// Trunk.
    pub trunk: Option<String>,
    /// Caller-id pools.
    pub caller_ids: CallerIds,
    /// Dial mode.
    pub dial_mode: String,
    /// AMD settings.
    #[schema(value_type = Object)]
    pub amd: serde_json::Value,
    /// On a machine.
    pub on_machine: String,
    /// Voicemail prompt.
    pub voicemail_prompt: Option<String>,
    /// Identification message for abandoned calls.
    pub abandon_prompt: Option<String>,
    /// `agentless`: `prompt`, `bridge` or `webhook`.
    pub on_human: String,
    /// Where `bridge` puts people through.
    pub bridge_to: Option<String>,
    /// The URL `webhook` asks.
    pub on_human_url: Option<String>,
    /// Recording on.
    pub record: bool,
    /// Calling window start (`HH:MM`, contact's local time).
    pub window_start: String,
    /// Calling window end.
    pub window_end: String,
    /// Zone of contacts whose zone is unknown.
    pub default_timezone: String,
    /// Most attempts per contact.
    pub max_attempts: u32,
    /// Retry delays per outcome, seconds.
    pub retry_delays: RetryDelays,
    /// Most attempts started per minute.
    pub rate_per_minute: Option<u32>,
    /// Most attempts started per hour.
    pub rate_per_hour: Option<u32>,
    /// Most calls at once.
    pub max_concurrent: Option<u32>,
    /// Lines per available agent.
    pub lines_per_agent: f64,
    /// Priority among campaigns.
    pub priority: i32,
    /// Event URL.
    pub status_callback: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Completed.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<Campaign> for CampaignResource {
    fn from(c: Campaign) -> Self {
        let s = c.settings;
        CampaignResource {
            id: c.id,
            name: s.name,
            state: c.state.as_str().into(),
            list_id: s.list_id,
            trunk: s.trunk,
            caller_ids: s.caller_ids,
            dial_mode: s.dial_mode.as_str().into(),
            amd: s.amd,
            on_machine: s.on_machine.as_str().into(),
            voicemail_prompt: s.voicemail_prompt,
            abandon_prompt: s.abandon_prompt,
            on_human: s.on_human.as_str().into(),
            bridge_to: s.bridge_to,
            on_human_url: s.on_human_url,
            record: s.record,
            window_start: format_local_time(s.window_start),
            window_end: format_local_time(s.window_end),
            default_timezone: s.default_timezone,
            max_attempts: s.max_attempts,
            retry_delays: s.retry_delays,
            rate_per_minute: s.rate_per_minute,
            rate_per_hour: s.rate_per_hour,
            max_concurrent: s.max_concurrent,
            lines_per_agent: s.lines_per_agent,
            priority: s.priority,
            status_callback: s.status_callback,
            created_at: c.created_at,
            updated_at: c.updated_at,
            started_at: c.started_at,
            completed_at: c.completed_at,
        }
    }
}

/// A page of campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest first.
    pub campaigns: Vec<CampaignResource>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/campaigns` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CampaignListQuery {
    /// Only campaigns in this state.
    pub state: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Applies `input` onto `s`, checking each value; 422 names the field.
async fn apply(
    st: &AppState,
    s: &mut CampaignSettings,
    input: CampaignInput,
) -> Result<(), ApiError> {
    if let Some(n) = input.name {
        s.name = n;
    }
    if let Some(l) = input.list_id {
        if let Some(id) = l
            && st
                .store
                .get_contact_list(id)
                .await
                .map_err(store_err)?
                .is_none()
        {
            return Err(ApiError::invalid(
                "list_id",
                format!("contact list {id} does not exist"),
            ));
        }
        s.list_id = l;
    }
    if let Some(t) = input.trunk {
        if let Some(name) = &t
            && !st.config.trunks.iter().any(|tr| &tr.name == name)
        {
            return Err(ApiError::invalid(
                "trunk",
                format!("no trunk named {name:?} in trunks.toml"),
            ));
        }
        s.trunk = t;
    }
    match (input.caller_id, input.caller_ids) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "caller_id",
                "give caller_id or caller_ids, not both",
            ));
        }
        (Some(one), None) => {
            s.caller_ids = CallerIds {
                default: vec![one],
                by_prefix: Vec::new(),
            }
        }
        (None, Some(ids)) => s.caller_ids = ids,
        (None, None) => {}
    }
    if let Some(m) = input.dial_mode {
        s.dial_mode = DialMode::parse(&m).ok_or_else(|| {
            ApiError::invalid(
                "dial_mode",
                format!("dial_mode must be preview, power, predictive or agentless, not {m:?}"),
            )
        })?;
    }
    if let Some(a) = input.amd {
        let parsed: AmdSettings = serde_json::from_value(a.clone())
            .map_err(|e| ApiError::invalid("amd", format!("amd: {e}")))?;
        if let Some(p) = parsed.params {
            p.validate()
                .map_err(|e| ApiError::invalid("amd", e.to_string()))?;
        }
        s.amd = a;
    }
    if let Some(m) = input.on_machine {
        s.on_machine = OnMachine::parse(&m).ok_or_else(|| {
            ApiError::invalid(
                "on_machine",
                format!("on_machine must be hangup, continue or voicemail_drop, not {m:?}"),
            )
        })?;
    }
    if let Some(v) = input.voicemail_prompt {
        if let Some(name) = &v {
            resolve_prompt(st, "voicemail_prompt", name).await?;
        }
        s.voicemail_prompt = v;
    }
    if let Some(v) = input.abandon_prompt {
        if let Some(name) = &v {
            resolve_prompt(st, "abandon_prompt", name).await?;
        }
        s.abandon_prompt = v;
    }
    if let Some(h) = input.on_human {
        s.on_human = OnHuman::parse(&h).ok_or_else(|| {
            ApiError::invalid(
                "on_human",
                format!("on_human must be prompt, bridge or webhook, not {h:?}"),
            )
        })?;
    }
    if let Some(b) = input.bridge_to {
        s.bridge_to = b;
    }
    if let Some(u) = input.on_human_url {
        super::calls::validate_http_url("on_human_url", u.as_deref())?;
        s.on_human_url = u;
    }
    if let Some(r) = input.record {
        s.record = r;
    }
    for (field, value, slot) in [
        ("window_start", input.window_start, &mut s.window_start),
        ("window_end", input.window_end, &mut s.window_end),
    ] {
        if let Some(v) = value {
            *slot = parse_local_time(&v).ok_or_else(|| {
                ApiError::invalid(field, format!("{field} must be HH:MM, not {v:?}"))
            })?;
        }
    }
    if let Some(z) = input.default_timezone {
        s.default_timezone = z;
    }
    if let Some(m) = input.max_attempts {
        s.max_attempts = m;
    }
    if let Some(r) = input.retry_delays {
        s.retry_delays = r;
    }
    if let Some(r) = input.rate_per_minute {
        s.rate_per_minute = r;
    }
    if let Some(r) = input.rate_per_hour {
        s.rate_per_hour = r;
    }
    if let Some(r) = input.max_concurrent {
        s.max_concurrent = r;
    }
    if let Some(l) = input.lines_per_agent {
        s.lines_per_agent = l;
    }
    if let Some(p) = input.priority {
        s.priority = p;
    }
    if let Some(cb) = input.status_callback {
        validate_callback(cb.as_deref())?;
        s.status_callback = cb;
    }
    s.validate()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    Ok(())
}

/// Publishes a campaign event; the change is stored already, so a failure is logged, not
/// answered.
async fn publish(st: &AppState, kind: &str, c: &CampaignResource) {
    let payload = serde_json::to_value(c).unwrap_or_default();
    if let Err(e) = st
        .events
        .publish(
            st.clock.utc(),
            kind,
            None,
            payload,
            c.status_callback.as_deref(),
        )
        .await
    {
        tracing::error!(error = %e, campaign = %c.id, kind, "storing a campaign event failed");
    }
}

async fn load(st: &AppState, id: Uuid) -> Result<Campaign, ApiError> {
    st.store
        .get_campaign(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("campaign {id}")))
}

/// Create a campaign (state `draft`).
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns",
    request_body = CampaignInput,
    responses(
        (status = 201, description = "created (state draft)", body = CampaignResource),
        (status = 400, description = "malformed JSON", body = super::error::ErrorBody),
        (status = 422, description = "invalid value; details.field names it", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_campaign(
    State(st): State<AppState>,
    body: Result<Json<CampaignInput>, JsonRejection>,
) -> Result<(StatusCode, Json<CampaignResource>), ApiError> {
    let Json(input) = body?;
    if input.name.is_none() {
        return Err(ApiError::invalid("name", "name is required"));
    }
    let mut settings = CampaignSettings::new("", &st.config.server.campaigns.default_timezone);
    apply(&st, &mut settings, input).await?;
    let now = st.clock.utc();
    let c = st
        .store
        .insert_campaign(&NewCampaign {
            id: new_id(now),
            settings,
            created_at: now,
        })
        .await
        .map_err(store_err)?;
    let r = CampaignResource::from(c);
    publish(&st, crate::campaign::kinds::CAMPAIGN_CREATED, &r).await;
    Ok((StatusCode::CREATED, Json(r)))
}

/// List campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", params(CampaignListQuery),
    responses((status = 200, body = CampaignList), (status = 400, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_campaigns(
    State(st): State<AppState>,
    q: Result<Query<CampaignListQuery>, QueryRejection>,
) -> Result<Json<CampaignList>, ApiError> {
    let Query(q) = q?;
    let state = q
        .state
        .as_deref()
        .map(|s| {
            CampaignState::parse(s)
                .ok_or_else(|| ApiError::invalid("state", format!("unknown state {s:?}")))
        })
        .transpose()?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_campaigns(&CampaignFilter {
            state,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await
        .map_err(store_err)?;
    Ok(Json(CampaignList {
        campaigns: page.campaigns.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// 422 unless `limit` is 1-500.
pub(super) fn check_limit(limit: Option<u32>) -> Result<(), ApiError> {
    if let Some(l) = limit
        && !(1..=crate::store::MAX_LIST_LIMIT).contains(&l)
    {
        return Err(ApiError::invalid("limit", "limit must be 1-500"));
    }
    Ok(())
}

/// Fetch a campaign.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 200, body = CampaignResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_campaign(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<CampaignResource>, ApiError> {
    let Path(id) = id?;
    Ok(Json(load(&st, id).await?.into()))
}

/// Change a campaign's settings (any state but `archived`).
#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "campaign id")),
    request_body = CampaignInput,
    responses((status = 200, body = CampaignResource), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "archived", body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn update_campaign(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<CampaignInput>, JsonRejection>,
) -> Result<Json<CampaignResource>, ApiError> {
    let Path(id) = id?;
    let Json(input) = body?;
    let c = load(&st, id).await?;
    if c.state == CampaignState::Archived {
        return Err(ApiError::Conflict(format!(
            "campaign {id} is archived and cannot change"
        )));
    }
    let mut settings = c.settings.clone();
    apply(&st, &mut settings, input).await?;
    let c = st
        .store
        .update_campaign_settings(id, &settings, st.clock.utc())
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::Conflict(format!("campaign {id} was archived meanwhile")))?;
    let r = CampaignResource::from(c);
    publish(&st, crate::campaign::kinds::CAMPAIGN_UPDATED, &r).await;
    Ok(Json(r))
}

/// Delete a draft campaign that never dialled (others: archive them).
#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 204, description = "deleted"), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "not a draft, or it has attempts", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_campaign(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    let c = load(&st, id).await?;
    if st.store.delete_campaign(id).await.map_err(store_err)? {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(ApiError::Conflict(format!(
        "campaign {id} is {} or has attempts: only a draft that never dialled can be deleted; \
         archive it instead",
        c.state
    )))
}

/// Moves a campaign to `to` if its state allows it (409 otherwise); entering `running` checks
/// what a start needs (422 naming what is missing).
async fn transition(
    st: &AppState,
    id: Uuid,
    to: CampaignState,
    verb: &str,
    allowed_from: &[CampaignState],
) -> Result<Json<CampaignResource>, ApiError> {
    let c = load(st, id).await?;
    if !allowed_from.contains(&c.state) || !c.state.can_become(to) {
        return Err(ApiError::Conflict(format!(
            "campaign {id} is {}: cannot {verb} it",
            c.state
        )));
    }
    if to == CampaignState::Running {
        let mut missing = c.settings.missing_for_start();
        if let Some(list) = c.settings.list_id
            && st.store.count_contacts(list).await.map_err(store_err)? == 0
        {
            missing.push("contacts");
        }
        if !missing.is_empty() {
            let what: Vec<&str> = missing
                .iter()
                .map(|m| match *m {
                    "trunk" => "no trunk",
                    "caller_ids" => "no caller id",
                    "list_id" => "no contact list",
                    _ => "the contact list is empty",
                })
                .collect();
            return Err(ApiError::invalid(
                missing.join(","),
                format!("cannot {verb} campaign {id}: {}", what.join(", ")),
            ));
        }
    }
    let moved = st
        .store
        .set_campaign_state(id, c.state, to, st.clock.utc())
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::Conflict(format!("campaign {id} changed state meanwhile; retry"))
        })?;
    let r = CampaignResource::from(moved);
    publish(st, to.event_kind(), &r).await;
    Ok(Json(r))
}

macro_rules! transition_handler {
    ($(#[$m:meta])* $name:ident, $path:literal, $to:expr, $verb:literal, [$($from:expr),+]) => {
        $(#[$m])*
        #[utoipa::path(post, path = $path, tag = "campaigns",
            params(("id" = Uuid, Path, description = "campaign id")),
            responses((status = 200, body = CampaignResource),
                (status = 404, body = super::error::ErrorBody),
                (status = 409, description = "the campaign's state forbids it", body = super::error::ErrorBody),
                (status = 422, description = "cannot start: details.field lists what is missing", body = super::error::ErrorBody)),
            security(("api_key" = [])))]
        pub async fn $name(
            State(st): State<AppState>,
            id: Result<Path<Uuid>, PathRejection>,
        ) -> Result<Json<CampaignResource>, ApiError> {
            let Path(id) = id?;
            transition(&st, id, $to, $verb, &[$($from),+]).await
        }
    };
}

transition_handler!(
    /// Start a draft (or paused) campaign: needs a trunk, a caller id and a non-empty list.
    start, "/v1/campaigns/{id}/start", CampaignState::Running, "start",
    [CampaignState::Draft, CampaignState::Paused]
);
transition_handler!(
    /// Pause a running campaign.
    pause, "/v1/campaigns/{id}/pause", CampaignState::Paused, "pause",
    [CampaignState::Running]
);
transition_handler!(
    /// Resume a paused campaign.
    resume, "/v1/campaigns/{id}/resume", CampaignState::Running, "resume",
    [CampaignState::Paused]
);
transition_handler!(
    /// Complete a running or paused campaign.
    complete, "/v1/campaigns/{id}/complete", CampaignState::Completed, "complete",
    [CampaignState::Running, CampaignState::Paused]
);
transition_handler!(
    /// Archive a draft, paused or completed campaign.
    archive, "/v1/campaigns/{id}/archive", CampaignState::Archived, "archive",
    [CampaignState::Draft, CampaignState::Paused, CampaignState::Completed]
);

/// A campaign's live figures, computed from the stored rows (the same on every node and after
/// a restart): contacts by status, attempts by outcome (`in-flight` for unfinished ones), AMD
/// verdicts, attempts started in the last minute, answer rate, abandon rate today (UTC) and
/// over 30 days, average talk time of person-answered calls.
#[utoipa::path(get, path = "/v1/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 200, body = crate::store::CampaignStats),
        (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn stats(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<crate::store::CampaignStats>, ApiError> {
    let Path(id) = id?;
    let c = load(&st, id).await?;
    let s = st
        .store
        .campaign_stats(id, c.settings.list_id, st.clock.utc())
        .await
        .map_err(store_err)?;
    Ok(Json(s))
}

/// Export a campaign's attempt history as CSV (one row per attempt, in start order): `attempt_id,
/// contact_id, attempt_no, phone, call_id, node, started_at, ended_at, outcome, amd_verdict,
/// duration_ms, session_id, disposition, talk_ms, wrap_up_ms` (the last four for calls placed
/// for agent sessions).
#[utoipa::path(get, path = "/v1/campaigns/{id}/attempts.csv", tag = "campaigns",
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn attempts_csv(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = id?;
    load(&st, id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| ApiError::Internal(e.into());
    w.write_record([
        "attempt_id",
        "contact_id",
        "attempt_no",
        "phone",
        "call_id",
        "node",
        "started_at",
        "ended_at",
        "outcome",
        "amd_verdict",
        "duration_ms",
        "session_id",
        "disposition",
        "talk_ms",
        "wrap_up_ms",
    ])
    .map_err(internal)?;
    let mut cursor: Option<String> = None;
    loop {
        let (rows, next) = st
            .store
            .list_attempts(id, cursor.as_deref(), EXPORT_PAGE)
            .await
            .map_err(store_err)?;
        for a in rows {
            let opt = |v: Option<String>| v.unwrap_or_default();
            w.write_record([
                a.id.to_string(),
                a.contact_id.to_string(),
                a.attempt_no.to_string(),
                a.phone,
                opt(a.call_id.map(|c| c.to_string())),
                a.node,
                a.started_at.to_rfc3339(),
                opt(a.ended_at.map(|t| t.to_rfc3339())),
                opt(a.outcome.map(|o| o.as_str().to_owned())),
                opt(a.amd_verdict),
                opt(a.duration_ms.map(|d| d.to_string())),
                opt(a.session_id.map(|s| s.to_string())),
                opt(a.disposition),
                opt(a.talk_ms.map(|d| d.to_string())),
                opt(a.wrap_up_ms.map(|d| d.to_string())),
            ])
            .map_err(internal)?;
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let body = w
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv writer: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-attempts.csv\""),
            ),
        ],
        body,
    ))
}
