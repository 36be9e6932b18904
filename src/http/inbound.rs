//! `/v1/missed-calls` (missed inbound calls with their follow-up state) and `/v1/opt-outs`
//! (callers who get no missed-call follow-up).
//!
//! An opt-out applies to follow-ups decided after it (the decision is taken, once, when the
//! call is missed). Callers are matched exactly as stored on calls: the E.164 number
//! (`+15551234567`) when the caller sent one, else the caller's SIP URI.

use super::conferences::{check_limit, list_err};
use super::error::ApiError;
use super::state::AppState;
use crate::store::{MissedCallRow, MissedFilter, OptOut, StoreError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest caller accepted in an opt-out.
pub const MAX_CALLER_LEN: usize = 256;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/missed-calls", get(list_missed_calls))
        .route("/opt-outs", get(list_opt_outs).post(add_opt_out))
        .route("/opt-outs/{caller}", delete(remove_opt_out))
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::Internal(e.into())
}

/// `GET /v1/missed-calls` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MissedQuery {
    /// Only this caller.
    pub caller: Option<String>,
    /// Only this called number.
    pub number: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of missed calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct MissedCallList {
    /// Missed calls, newest first.
    pub missed_calls: Vec<MissedCallRow>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List missed calls, newest first, with the follow-up state of each (`none`, `pending`,
/// `sent`, `failed` with the last error, `suppressed` with `cooldown` or `opt-out`).
#[utoipa::path(get, path = "/v1/missed-calls", tag = "inbound", params(MissedQuery),
    responses((status = 200, body = MissedCallList), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_missed_calls(
    State(st): State<AppState>,
    q: Result<Query<MissedQuery>, QueryRejection>,
) -> Result<Json<MissedCallList>, ApiError> {
    let Query(q) = q?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_missed_calls(&MissedFilter {
            caller: q.caller,
            number: q.number,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await
        .map_err(list_err)?;
    Ok(Json(MissedCallList {
        missed_calls: page.missed_calls,
        next_cursor: page.next_cursor,
    }))
}

/// `POST /v1/opt-outs` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOptOut {
    /// The caller, as stored on calls (E.164 number or SIP URI).
    pub caller: String,
    /// Why (free text, e.g. "replied STOP").
    pub reason: Option<String>,
}

/// The opt-out list.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutList {
    /// Entries, oldest first (at most 500).
    pub opt_outs: Vec<OptOut>,
}

/// Add a caller to the opt-out list (idempotent: 201 with the entry, existing or new).
#[utoipa::path(post, path = "/v1/opt-outs", tag = "inbound", request_body = CreateOptOut,
    responses((status = 201, body = OptOut), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_opt_out(
    State(st): State<AppState>,
    body: Result<Json<CreateOptOut>, JsonRejection>,
) -> Result<(StatusCode, Json<OptOut>), ApiError> {
    let Json(body) = body?;
    let caller = body.caller.trim();
    if caller.is_empty() || caller.len() > MAX_CALLER_LEN || caller.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "caller",
            format!("caller must be 1-{MAX_CALLER_LEN} printable characters"),
        ));
    }
    let row = st
        .store
        .add_opt_out(caller, body.reason.as_deref(), st.clock.utc())
        .await
        .map_err(store_err)?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// The opt-out list.
#[utoipa::path(get, path = "/v1/opt-outs", tag = "inbound",
    responses((status = 200, body = OptOutList)),
    security(("api_key" = [])))]
pub async fn list_opt_outs(State(st): State<AppState>) -> Result<Json<OptOutList>, ApiError> {
    let opt_outs = st
        .store
        .list_opt_outs(crate::store::MAX_LIST_LIMIT)
        .await
        .map_err(store_err)?;
    Ok(Json(OptOutList { opt_outs }))
}

/// Remove a caller from the opt-out list (URL-encode the caller: `%2B1555...`).
#[utoipa::path(delete, path = "/v1/opt-outs/{caller}", tag = "inbound",
    params(("caller" = String, Path, description = "the caller, URL-encoded")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_opt_out(
    State(st): State<AppState>,
    caller: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(caller) = caller?;
    if st.store.remove_opt_out(&caller).await.map_err(store_err)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("opt-out for {caller:?}")))
    }
}
