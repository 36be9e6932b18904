//! The `idempotency_keys` table: `Idempotency-Key` of `POST` requests that start calls.
//!
//! A key is scoped to the API key that sent it. The first request with a key claims it together
//! with the id of the call it will create; a repeat gets that call id back and whether it carried
//! the same request (same body hash), so the API can replay the first answer or refuse a
//! different body with 422.

use super::{Store, StoreError, micros, on_pool};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Outcome of [`Store::claim_idempotency_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The key was free and now belongs to this request and its call id.
    New,
    /// The key was claimed before.
    Existing {
        /// The call created by the first request.
        call_id: Uuid,
        /// Whether the first request had the same hash as this one.
        same_request: bool,
    },
}

impl Store {
    /// Claims `key` for `api_key_id`, binding it to `request_hash` (e.g. hex SHA-256 of the
    /// body) and to `call_id`, the id of the call about to be created.
    pub async fn claim_idempotency_key(
        &self,
        api_key_id: Uuid,
        key: &str,
        request_hash: &str,
        call_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Claimed, StoreError> {
        let claimed = on_pool!(self, |p| {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (api_key_id, key, request_hash, call_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (api_key_id, key) DO NOTHING",
            )
            .bind(api_key_id)
            .bind(key)
            .bind(request_hash)
            .bind(call_id)
            .bind(micros(at))
            .execute(p)
            .await?
            .rows_affected();
            if inserted == 1 {
                Claimed::New
            } else {
                let (hash, existing): (String, Uuid) = sqlx::query_as(
                    "SELECT request_hash, call_id FROM idempotency_keys \
                     WHERE api_key_id = $1 AND key = $2",
                )
                .bind(api_key_id)
                .bind(key)
                .fetch_one(p)
                .await?;
                Claimed::Existing {
                    call_id: existing,
                    same_request: hash == request_hash,
                }
            }
        });
        Ok(claimed)
    }

    /// Deletes keys claimed before `before` (keys are kept for a retention period, then freed).
    /// Returns how many were deleted.
    pub async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(micros(before))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}
