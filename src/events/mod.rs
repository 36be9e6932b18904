//! Events: the event log, the durable webhook outbox with signed delivery, SSE fan-out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A state change, stored before it is delivered. Serialised as the webhook body and SSE data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID v7); receivers de-duplicate on it.
    pub id: Uuid,
    /// Position in the event log, increasing; the SSE `id:` field.
    pub seq: i64,
    /// What happened, e.g. `call.initiated`, `call.ringing`, `call.answered`, `call.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The call concerned, if any.
    pub call_id: Option<Uuid>,
    /// Details (for call events: the call's fields at that moment).
    pub payload: serde_json::Value,
    /// When it happened (UTC, RFC 3339 in JSON).
    pub created_at: DateTime<Utc>,
}
