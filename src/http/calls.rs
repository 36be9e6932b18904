//! `/v1/calls`: originate (optionally recorded, or joining a conference on answer), list,
//! fetch, hang up, play and stop a prompt, send DTMF.

use super::auth::Authed;
use super::conferences::JoinOnAnswer;
use super::error::ApiError;
use super::state::AppState;
use crate::amd::{AmdMode, AmdParams};
use crate::call::{CallAmd, OnMachine, Originate, ParticipantOptions};
use crate::media::player::{Prompt, PromptError};
use crate::store::Claimed;
use crate::store::StoreError;
use crate::store::{AmdRow, Call, CallFilter, CallStatus, Direction, NewCall};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest ring timeout accepted, seconds.
pub const MAX_RING_TIMEOUT_SECS: u64 = 600;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calls", post(create_call).get(list_calls))
        .route("/calls/{id}", get(get_call))
        .route("/calls/{id}/hangup", post(hangup))
        .route("/calls/{id}/play", post(play).delete(stop_play))
        .route("/calls/{id}/dtmf", post(dtmf))
}

/// `POST /v1/calls` body.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCall {
    /// Destination: an E.164 number (`+15551234567`) or a SIP URI (`sip:bob@example.com`).
    pub to: String,
    /// Caller id: E.164 or SIP URI; default: the trunk's `caller_id`.
    #[serde(default)]
    pub from: Option<String>,
    /// Trunk name from `trunks.toml`; may be left out when exactly one trunk is configured.
    #[serde(default)]
    pub trunk: Option<String>,
    /// Seconds to ring before giving up with `no-answer` (1-600; default from `[calls]`).
    #[serde(default)]
    pub ring_timeout_secs: Option<u64>,
    /// URL that receives this call's status events (`initiated`, `ringing`, `answered`,
    /// `completed`), signed.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Free-form JSON kept with the call and echoed in events.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// Answering-machine detection once the call is answered; verdicts arrive as
    /// `amd.machine_start` (interim) and `amd.completed` events at `status_callback`.
    #[serde(default)]
    pub amd: Option<AmdRequest>,
    /// Record the call from its answer (dual channel: left the far end, right what we send).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
    /// Join this conference once answered (with synchronous AMD: once the verdict is in),
    /// with these participant options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<JoinOnAnswer>,
}

/// `amd` in `POST /v1/calls`.
///
/// Synchronous (`async: false`, the default): nothing is played on the call until the final
/// verdict; a prompt asked for meanwhile is held until then (and dropped when the verdict
/// hangs up or drops a voicemail). Asynchronous: the call proceeds at once and the verdict
/// arrives as an event.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmdRequest {
    /// `detect_message_end` (default: for a machine, wait for the beep or the end of the
    /// greeting) or `enable` (decide human/machine as early as possible).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub mode: Option<AmdMode>,
    /// Detector parameters in milliseconds (`timeout_ms`, `speech_threshold_ms`,
    /// `speech_end_threshold_ms`, `silence_timeout_ms`, `greeting_end_silence_ms`,
    /// `beep_guard_ms`); missing ones take their documented defaults.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<AmdParams>,
    /// Let the call proceed without waiting for the verdict (default false).
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
    /// What to do when a machine answered (default `continue`).
    #[serde(default)]
    pub on_machine: OnMachineAction,
    /// `voicemail_drop` only (and then required): the prompt to leave, a file in the
    /// config's `prompts/` folder.
    #[serde(default)]
    pub voicemail_prompt: Option<String>,
}

/// `amd.on_machine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMachineAction {
    /// Hang up at once.
    Hangup,
    /// Only report the verdict.
    #[default]
    Continue,
    /// Play `voicemail_prompt` once the beep (or the end-of-greeting silence) has passed, then
    /// hang up. Needs mode `detect_message_end`.
    VoicemailDrop,
}

/// A call as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallResource {
    /// Call id.
    pub id: Uuid,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Calling party.
    pub from: String,
    /// Called party.
    pub to: String,
    /// Trunk used.
    pub trunk: Option<String>,
    /// SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// `queued`, `initiated`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`,
    /// `failed`, `canceled`.
    pub status: String,
    /// Final status, once ended.
    pub final_status: Option<String>,
    /// Created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// First ringing.
    pub ringing_at: Option<DateTime<Utc>>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Answered duration, milliseconds.
    pub duration_ms: Option<i64>,
    /// SIP code of the end.
    pub end_sip_code: Option<u16>,
    /// Reason of the end.
    pub end_reason: Option<String>,
    /// `caller`, `callee`, `api` or `system`.
    pub ended_by: Option<String>,
    /// RTP counters.
    pub rtp: RtpResource,
    /// Status callback URL.
    pub status_callback: Option<String>,
    /// Metadata given at creation.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The conference the call is in, if any.
    pub conference_id: Option<Uuid>,
    /// Answering-machine detection verdict, once reached.
    pub amd: Option<AmdResource>,
}

/// The answering-machine detection verdict of a call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AmdResource {
    /// `human`, `machine_start`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax` or `unknown`.
    pub result: String,
    /// Confidence in 0..=1.
    pub confidence: f64,
    /// Milliseconds from the answer to the verdict.
    pub decision_ms: Option<i64>,
    /// Milliseconds from the answer to the start of the beep, when there was one.
    pub beep_ms: Option<i64>,
    /// Milliseconds from the answer to the earliest moment a voicemail drop may start.
    pub drop_ms: Option<i64>,
}

impl From<AmdRow> for AmdResource {
    fn from(a: AmdRow) -> Self {
        AmdResource {
            result: a.result,
            confidence: a.confidence,
            decision_ms: a.decision_ms,
            beep_ms: a.beep_ms,
            drop_ms: a.drop_ms,
        }
    }
}

/// RTP counters of a call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RtpResource {
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets lost.
    pub packets_lost: u64,
    /// Packets too late for the jitter buffer.
    pub packets_late: u64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
}

impl From<Call> for CallResource {
    fn from(c: Call) -> Self {
        CallResource {
            id: c.id,
            direction: c.direction.as_str().into(),
            from: c.from,
            to: c.to,
            trunk: c.trunk,
            sip_call_id: c.sip_call_id,
            status: c.status.as_str().into(),
            final_status: c.final_status.map(|s| s.as_str().into()),
            created_at: c.created_at,
            ringing_at: c.ringing_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            duration_ms: c.duration_ms,
            end_sip_code: c.end_sip_code,
            end_reason: c.end_reason,
            ended_by: c.ended_by.map(|s| s.as_str().into()),
            rtp: RtpResource {
                packets_in: c.rtp.packets_in,
                packets_out: c.rtp.packets_out,
                packets_lost: c.rtp.packets_lost,
                packets_late: c.rtp.packets_late,
                jitter_ms: c.rtp.jitter_ms,
            },
            status_callback: c.status_callback,
            metadata: c.metadata,
            conference_id: c.conference_id,
            amd: c.amd.map(Into::into),
        }
    }
}

/// A page of calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    /// Calls, newest first.
    pub calls: Vec<CallResource>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/calls` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Filter by status (`queued`, `initiated`, `ringing`, `in-progress`, `completed`, `busy`,
    /// `no-answer`, `failed`, `canceled`), or `missed`: inbound calls recorded missed (see
    /// `GET /v1/missed-calls` for the reason and follow-up).
    pub status: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// `POST /v1/calls/{id}/play` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// Prompt name: a file in the config's `prompts/` folder, extension optional.
    pub prompt: String,
    /// Loop until another prompt or hang-up.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

/// `POST /v1/calls/{id}/dtmf` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfRequest {
    /// Digits to send, `0-9 * # A-D`, at most 64.
    pub digits: String,
}

/// Accepted: the command was handed to the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `true`.
    pub accepted: bool,
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::Internal(e.into())
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// Whether `s` is a usable SIP URI: `sip:`/`sips:`, a non-empty host, no whitespace or angle
/// brackets (it goes into a Request-URI as is).
pub fn is_sip_uri(s: &str) -> bool {
    let rest = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:"));
    let Some(rest) = rest else { return false };
    let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = host.split([';', '?']).next().unwrap_or("");
    !host.is_empty()
        && s.len() <= 256
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>' || b == b'"')
}

fn validate_party(field: &str, v: &str) -> Result<(), ApiError> {
    if is_e164(v) || is_sip_uri(v) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be an E.164 number like +15551234567 or a SIP URI like sip:bob@example.com, not {v:?}"
            ),
        ))
    }
}

/// 422 unless `url` (if any) is an http or https URL with a host.
pub fn validate_callback(url: Option<&str>) -> Result<(), ApiError> {
    validate_http_url("status_callback", url)
}

/// 422 naming `field` unless `url` (if any) is an http or https URL with a host.
pub fn validate_http_url(field: &str, url: Option<&str>) -> Result<(), ApiError> {
    if let Some(u) = url {
        let ok = reqwest::Url::parse(u)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::invalid(
                field,
                format!("{field} must be an http or https URL, not {u:?}"),
            ));
        }
    }
    Ok(())
}

/// The 422 for a prompt that cannot be had, naming the prompt (never the server's path).
pub fn prompt_error(field: &str, name: &str, e: &PromptError) -> ApiError {
    let message = match e {
        PromptError::NotFound(_) => format!("prompt {name:?} not found"),
        PromptError::Decode { reason, .. } => {
            format!("prompt {name:?} cannot be decoded: {reason}")
        }
        PromptError::InvalidName(_) | PromptError::UnsupportedExtension { .. } => e.to_string(),
    };
    ApiError::invalid(field, message)
}

/// Resolves a prompt name through the cache; decoding a new file runs off the async runtime.
/// A missing or undecodable prompt is 422 on `field`.
pub async fn resolve_prompt(st: &AppState, field: &str, name: &str) -> Result<Prompt, ApiError> {
    let cache = st.prompts.clone();
    let owned = name.to_string();
    let got = tokio::task::spawn_blocking(move || {
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&owned)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("prompt decoding task failed: {e}")))?;
    got.map_err(|e| prompt_error(field, name, &e))
}

/// Validates a create request against the config; returns (trunk, from, ring timeout).
fn validate_create(
    st: &AppState,
    body: &CreateCall,
) -> Result<(String, String, Duration), ApiError> {
    validate_party("to", &body.to)?;
    let trunk = match &body.trunk {
        Some(t) => st
            .config
            .trunk(t)
            .ok_or_else(|| ApiError::invalid("trunk", format!("trunk {t:?} is not configured")))?,
        None if st.config.trunks.len() == 1 => &st.config.trunks[0],
        None => {
            return Err(ApiError::invalid(
                "trunk",
                "trunk is required when more than one trunk is configured",
            ));
        }
    };
    let from = match (&body.from, &trunk.caller_id) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(ApiError::invalid(
                "from",
                "from is required: the trunk has no caller_id",
            ));
        }
    };
    validate_party("from", &from)?;
    let secs = body
        .ring_timeout_secs
        .unwrap_or(st.config.server.calls.ring_timeout_secs);
    if !(1..=MAX_RING_TIMEOUT_SECS).contains(&secs) {
        return Err(ApiError::invalid(
            "ring_timeout_secs",
            format!("ring_timeout_secs must be 1-{MAX_RING_TIMEOUT_SECS}, not {secs}"),
        ));
    }
    validate_callback(body.status_callback.as_deref())?;
    if let Some(m) = &body.metadata
        && !m.is_object()
    {
        return Err(ApiError::invalid(
            "metadata",
            "metadata must be a JSON object",
        ));
    }
    Ok((trunk.name.clone(), from, Duration::from_secs(secs)))
}

/// Validates `amd` and decodes its voicemail prompt.
async fn validate_amd(st: &AppState, req: &AmdRequest) -> Result<CallAmd, ApiError> {
    let mut params = req.params.unwrap_or_default();
    if let Some(mode) = req.mode {
        params.mode = mode;
    }
    params
        .validate()
        .map_err(|e| ApiError::invalid(format!("amd.params.{}", e.name), e.to_string()))?;
    let on_machine = match req.on_machine {
        OnMachineAction::Hangup => OnMachine::Hangup,
        OnMachineAction::Continue => OnMachine::Continue,
        OnMachineAction::VoicemailDrop => {
            if params.mode != AmdMode::DetectMessageEnd {
                return Err(ApiError::invalid(
                    "amd.mode",
                    "on_machine voicemail_drop needs mode detect_message_end",
                ));
            }
            let name = req.voicemail_prompt.as_deref().ok_or_else(|| {
                ApiError::invalid(
                    "amd.voicemail_prompt",
                    "voicemail_prompt is required with on_machine voicemail_drop",
                )
            })?;
            let prompt = resolve_prompt(st, "amd.voicemail_prompt", name).await?;
            OnMachine::VoicemailDrop(prompt)
        }
    };
    Ok(CallAmd {
        params,
        asynchronous: req.asynchronous,
        on_machine,
    })
}

/// Place an outbound call.
#[utoipa::path(post, path = "/v1/calls", tag = "calls",
    request_body = CreateCall,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe key: the same key and body return the same call")),
    responses(
        (status = 201, description = "call placed", body = CallResource),
        (status = 200, description = "replay of an earlier request with the same Idempotency-Key", body = CallResource),
        (status = 400, description = "malformed JSON", body = super::error::ErrorBody),
        (status = 401, description = "missing or invalid API key", body = super::error::ErrorBody),
        (status = 409, description = "Idempotency-Key reused with a different body", body = super::error::ErrorBody),
        (status = 422, description = "invalid value", body = super::error::ErrorBody),
        (status = 429, description = "trunk calls-per-second limit", body = super::error::ErrorBody),
        (status = 503, description = "over capacity (Retry-After)", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_call(
    State(st): State<AppState>,
    Extension(Authed(key)): Extension<Authed>,
    headers: HeaderMap,
    body: Result<Json<CreateCall>, JsonRejection>,
) -> Result<(StatusCode, Json<CallResource>), ApiError> {
    let Json(body) = body?;
    let join = match &body.conference {
        Some(c) => {
            let options = c.fields().options("conference.")?;
            super::conferences::check_can_join(&st, c.id, &options, "conference.").await?;
            Some((c.id, options))
        }
        None => None,
    };
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Idempotency-Key",
                        "Idempotency-Key must be 1-255 visible ASCII characters",
                    )
                })?;
            Some(k.to_string())
        }
    };
    let replay = idem.is_some();
    match place_call(&st, key.id, body, idem, join).await {
        Ok(c) => Ok((StatusCode::CREATED, Json(c))),
        Err(Placed::Replay(c)) if replay => Ok((StatusCode::OK, Json(*c))),
        Err(Placed::Replay(c)) => Ok((StatusCode::CREATED, Json(*c))),
        Err(Placed::Error(e)) => Err(e),
    }
}

/// Why [`place_call`] placed no new call.
#[derive(Debug)]
pub enum Placed {
    /// An earlier request with the same `Idempotency-Key` placed this call.
    Replay(Box<CallResource>),
    /// Refused.
    Error(ApiError),
}

impl From<ApiError> for Placed {
    fn from(e: ApiError) -> Self {
        Placed::Error(e)
    }
}

impl From<Placed> for ApiError {
    fn from(p: Placed) -> Self {
        match p {
            // Only with an idempotency key, which the dial-into-a-room path never gives.
            Placed::Replay(_) => ApiError::Conflict("call placed by an earlier request".into()),
            Placed::Error(e) => e,
        }
    }
}

/// Validates `body`, claims `idem` (if any) and places the call, joining `join` on answer;
/// returns the stored call.
pub async fn place_call(
    st: &AppState,
    key_id: Uuid,
    body: CreateCall,
    idem: Option<String>,
    join: Option<(Uuid, ParticipantOptions)>,
) -> Result<CallResource, Placed> {
    let (trunk, from, ring_timeout) = validate_create(st, &body)?;
    let amd = match &body.amd {
        Some(a) => Some(validate_amd(st, a).await?),
        None => None,
    };
    let now = st.clock.utc();
    let id = crate::store::new_id(now);
    if let Some(k) = &idem {
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&body).unwrap_or_default(),
        ));
        match st
            .store
            .claim_idempotency_key(key_id, k, &hash, id, now)
            .await
            .map_err(store_err)?
        {
            Claimed::New => {}
            Claimed::Existing {
                call_id,
                same_request: true,
            } => {
                // The first request may still be placing its call: its row appears shortly.
                for _ in 0..50 {
                    if let Some(c) = st.store.get_call(call_id).await.map_err(store_err)? {
                        return Err(Placed::Replay(Box::new(c.into())));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still being processed".into(),
                )
                .into());
            }
            Claimed::Existing {
                same_request: false,
                ..
            } => {
                return Err(ApiError::Conflict(
                    "Idempotency-Key was already used with a different request body".into(),
                )
                .into());
            }
        }
    }
    let call = NewCall {
        id,
        direction: Direction::Outbound,
        from,
        to: body.to.clone(),
        trunk: Some(trunk),
        sip_call_id: None,
        status: CallStatus::Initiated,
        status_callback: body.status_callback.clone(),
        metadata: body
            .metadata
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
        idempotency_key: idem,
        api_key_id: Some(key_id),
        created_at: now,
    };
    st.engine
        .originate(Originate {
            call,
            ring_timeout,
            amd,
            join,
            record: body.record,
        })
        .await
        .map_err(|e| ApiError::from_engine(e, "conference.coach_target"))?;
    let c = st
        .store
        .get_call(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("call {id} missing after originate")))?;
    Ok(c.into())
}

/// Fetch one call.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = Uuid, Path, description = "call id")),
    responses((status = 200, body = CallResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_call(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<Json<CallResource>, ApiError> {
    let Path(id) = id?;
    let c = st.store.get_call(id).await.map_err(store_err)?;
    c.map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::NotFound(format!("call {id}")))
}

/// List calls, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(ListQuery),
    responses((status = 200, body = CallList), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_calls(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<CallList>, ApiError> {
    let Query(q) = q?;
    let missed = q.status.as_deref() == Some("missed");
    let status = q
        .status
        .as_deref()
        .filter(|_| !missed)
        .map(|s| {
            CallStatus::parse(s)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status {s:?}")))
        })
        .transpose()?;
    let direction = q
        .direction
        .as_deref()
        .map(|s| {
            Direction::parse(s).ok_or_else(|| {
                ApiError::invalid("direction", "direction must be inbound or outbound")
            })
        })
        .transpose()?;
    if let Some(l) = q.limit
        && !(1..=crate::store::MAX_LIST_LIMIT).contains(&l)
    {
        return Err(ApiError::invalid("limit", "limit must be 1-500"));
    }
    let filter = CallFilter {
        status,
        direction,
        missed,
        since: q.since,
        until: q.until,
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = st.store.list_calls(&filter).await.map_err(|e| match e {
        StoreError::InvalidCursor => {
            ApiError::invalid("cursor", "cursor is not one this server gave out")
        }
        e => store_err(e),
    })?;
    Ok(Json(CallList {
        calls: page.calls.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn ensure_exists(st: &AppState, id: Uuid) -> Result<Call, ApiError> {
    let c = st.store.get_call(id).await.map_err(store_err)?;
    let c = c.ok_or_else(|| ApiError::NotFound(format!("call {id}")))?;
    if c.final_status.is_some() {
        return Err(ApiError::Conflict(format!(
            "call {id} has already ended ({})",
            c.status
        )));
    }
    Ok(c)
}

/// Hang up: CANCEL before answer, BYE after.
#[utoipa::path(post, path = "/v1/calls/{id}/hangup", tag = "calls",
    params(("id" = Uuid, Path, description = "call id")),
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn hangup(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Path(id) = id?;
    ensure_exists(&st, id).await?;
    st.engine.hangup(id).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Play a prompt to an answered call.
#[utoipa::path(post, path = "/v1/calls/{id}/play", tag = "calls",
    params(("id" = Uuid, Path, description = "call id")), request_body = PlayRequest,
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn play(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
    body: Result<Json<PlayRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let prompt = resolve_prompt(&st, "prompt", &body.prompt).await?;
    ensure_exists(&st, id).await?;
    st.engine.play(id, prompt, body.repeat).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Stop the prompt playing to a call (`play.finished` with `stopped: true`).
#[utoipa::path(delete, path = "/v1/calls/{id}/play", tag = "calls",
    params(("id" = Uuid, Path, description = "call id")),
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, description = "ended, or nothing playing", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn stop_play(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Path(id) = id?;
    ensure_exists(&st, id).await?;
    st.engine.stop_play(id).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Send DTMF digits (RFC 4733) on an answered call.
#[utoipa::path(post, path = "/v1/calls/{id}/dtmf", tag = "calls",
    params(("id" = Uuid, Path, description = "call id")), request_body = DtmfRequest,
    responses((status = 202, body = Accepted), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn dtmf(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
    body: Result<Json<DtmfRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let d = &body.digits;
    if d.is_empty() || d.len() > 64 || !d.chars().all(|c| "0123456789*#ABCDabcd".contains(c)) {
        return Err(ApiError::invalid(
            "digits",
            "digits must be 1-64 of 0-9 * # A-D",
        ));
    }
    ensure_exists(&st, id).await?;
    st.engine.dtmf(id, d.to_ascii_uppercase()).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_validation() {
        assert!(is_e164("+15551234567"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1555"));
        assert!(is_sip_uri("sip:bob@example.com"));
        assert!(is_sip_uri("sip:127.0.0.1:5070"));
        assert!(!is_sip_uri("sip:"));
        assert!(!is_sip_uri("sip:bob@"));
        assert!(!is_sip_uri("sip:bob@host>evil"));
        assert!(!is_sip_uri("tel:+1555"));
    }

    #[test]
    fn amd_request_defaults_and_names() {
        let a: AmdRequest = serde_json::from_str("{}").expect("empty amd");
        assert_eq!(a.on_machine, OnMachineAction::Continue);
        assert!(!a.asynchronous);
        assert!(a.mode.is_none() && a.params.is_none() && a.voicemail_prompt.is_none());
        let a: AmdRequest = serde_json::from_str(
            r#"{"mode": "enable", "async": true, "on_machine": "voicemail_drop",
                "voicemail_prompt": "vm", "params": {"timeout_ms": 10000}}"#,
        )
        .expect("full amd");
        assert_eq!(a.mode, Some(AmdMode::Enable));
        assert!(a.asynchronous);
        assert_eq!(a.on_machine, OnMachineAction::VoicemailDrop);
        assert_eq!(
            a.params.map(|p| p.timeout),
            Some(Duration::from_millis(10_000))
        );
        assert!(serde_json::from_str::<AmdRequest>(r#"{"on_machine": "drop"}"#).is_err());
        assert!(serde_json::from_str::<AmdRequest>(r#"{"asynchronous": true}"#).is_err());
    }
}
