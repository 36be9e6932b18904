//! `Authorization: Bearer <api key>` on every `/v1` route; keys are verified against their
//! stored SHA-256 hash.

use super::error::ApiError;
use super::state::AppState;
use crate::store::ApiKey;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// The verified key of the request, inserted as a request extension.
#[derive(Debug, Clone)]
pub struct Authed(pub ApiKey);

/// Middleware: 401 unless the request carries a live API key.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let key = state
        .store
        .verify_api_key(token, state.clock.utc())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::Unauthorized)?;
    req.extensions_mut().insert(Authed(key));
    Ok(next.run(req).await)
}
