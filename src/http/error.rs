//! API errors: `{"error": {"code", "message", "details"}}` with the right status.
//!
//! 4xx carry a message for the user; 5xx return generic text and log the cause.

use crate::call::EngineError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered by the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, wrong types).
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 404: no such resource.
    #[error("{0} not found")]
    NotFound(String),
    /// 404 with a message of its own (what is missing and why) and optional details, e.g.
    /// `{"next_due_at": ...}` when no contact is due now.
    #[error("{message}")]
    NothingHere {
        /// Why nothing is there.
        message: String,
        /// Extra data.
        details: Option<serde_json::Value>,
    },
    /// 409: the resource is in a state that forbids the request.
    #[error("{0}")]
    Conflict(String),
    /// 422: a value is well-formed but not acceptable.
    #[error("{message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// Why.
        message: String,
    },
    /// 416: the `Range` of a download lies past the end of the file (`len` bytes).
    #[error("range not satisfiable: the file has {len} bytes")]
    RangeNotSatisfiable {
        /// The file's length, sent as `Content-Range: bytes */len`.
        len: u64,
    },
    /// 429: too many requests.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: over capacity; retry later.
    #[error("{message}")]
    Unavailable {
        /// Why.
        message: String,
        /// Seconds for the `Retry-After` header.
        retry_after_secs: u32,
    },
    /// 500: our fault; the cause is logged, not returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::NothingHere { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) | ApiError::NothingHere { .. } => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid { .. } => "invalid_value",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`bad_request`, `unauthorized`, `not_found`, `conflict`,
    /// `invalid_value`, `range_not_satisfiable`, `too_many_requests`, `unavailable`, `internal`).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Extra data, e.g. `{"field": "to"}` for `invalid_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error answering an API request");
        }
        let details = match &self {
            ApiError::Invalid { field, .. } => Some(serde_json::json!({ "field": field })),
            ApiError::NothingHere { details, .. } => details.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
                details,
            },
        };
        let mut resp = (self.status(), Json(body)).into_response();
        if let ApiError::Unavailable {
            retry_after_secs, ..
        } = &self
            && let Ok(v) = retry_after_secs.to_string().parse()
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        if let ApiError::RangeNotSatisfiable { len } = &self
            && let Ok(v) = format!("bytes */{len}").parse()
        {
            resp.headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, v);
        }
        resp
    }
}

impl ApiError {
    /// An engine refusal, with `field` named in a 422 ([`EngineError::Invalid`]) instead of
    /// `body`: the handler knows which field the engine judged.
    pub fn from_engine(e: EngineError, field: &str) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::invalid(field, m),
            e => e.into(),
        }
    }
}

/// Engine refusals: unknown call, conference or recording 404; a state that forbids the
/// command (full room, recording stopped already) 409; an unacceptable value 422; rate limits
/// 429; capacity and shutdown 503 with `Retry-After`.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(id) => ApiError::NotFound(format!("live call {id}")),
            EngineError::ConferenceNotFound(id) => {
                ApiError::NotFound(format!("live conference {id}"))
            }
            EngineError::RecordingNotFound(id) => {
                ApiError::NotFound(format!("live recording {id}"))
            }
            EngineError::Conflict(m) => ApiError::Conflict(m),
            EngineError::Full(_) => ApiError::Conflict(e.to_string()),
            EngineError::Invalid(m) => ApiError::invalid("body", m),
            EngineError::UnknownTrunk(_) => ApiError::invalid("trunk", e.to_string()),
            EngineError::DestinationNotAllowed { .. } => ApiError::invalid("to", e.to_string()),
            EngineError::TrunkRateLimited(_) => ApiError::TooManyRequests(e.to_string()),
            EngineError::TrunkAtCapacity(_) | EngineError::OverCapacity(_) => {
                ApiError::Unavailable {
                    message: e.to_string(),
                    retry_after_secs: 1,
                }
            }
            EngineError::ShuttingDown | EngineError::Stopped => ApiError::Unavailable {
                message: e.to_string(),
                retry_after_secs: 5,
            },
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}
