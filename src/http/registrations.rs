//! `/v1/registrations`: the agents' live registrations (bindings of the registrar), read from
//! the store, which the engine's store writer keeps in step with the registrar.

use super::conferences::{check_limit, list_err};
use super::error::ApiError;
use super::state::AppState;
use crate::store::{Registration, RegistrationFilter};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new().route("/registrations", get(list_registrations))
}

/// One registered contact of an agent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistrationResource {
    /// The agent (SIP user).
    pub user: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where requests to the agent go (`ip:port`): the address the REGISTER came from
    /// (received/rport), which differs from the Contact behind NAT.
    pub source: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// When it expires unless refreshed (RFC 3339, UTC).
    pub expires_at: DateTime<Utc>,
    /// The phone's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// First registered.
    pub created_at: DateTime<Utc>,
    /// Last refreshed.
    pub updated_at: DateTime<Utc>,
}

impl From<Registration> for RegistrationResource {
    fn from(r: Registration) -> Self {
        RegistrationResource {
            user: r.user,
            contact: r.contact,
            source: r.source,
            transport: r.transport.as_str().into(),
            expires_at: r.expires_at,
            user_agent: r.user_agent,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A page of registrations.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationList {
    /// Registrations, oldest first.
    pub registrations: Vec<RegistrationResource>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/registrations` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegistrationListQuery {
    /// Only this agent's registrations.
    pub user: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// List the live (not expired) registrations, oldest first, optionally of one agent.
#[utoipa::path(get, path = "/v1/registrations", tag = "registrations", params(RegistrationListQuery),
    responses((status = 200, body = RegistrationList), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_registrations(
    State(st): State<AppState>,
    q: Result<Query<RegistrationListQuery>, QueryRejection>,
) -> Result<Json<RegistrationList>, ApiError> {
    let Query(q) = q?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_registrations(
            &RegistrationFilter {
                user: q.user,
                limit: q.limit,
                cursor: q.cursor,
            },
            st.clock.utc(),
        )
        .await
        .map_err(list_err)?;
    Ok(Json(RegistrationList {
        registrations: page.registrations.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
