//! The `api_keys` table: HTTP API keys, stored as SHA-256 hashes.
//!
//! A key is `tl_` followed by 43 base64url characters (32 random bytes from the OS). Because a key
//! carries 256 bits of entropy, a plain SHA-256 is enough to store it (a slow password hash
//! protects guessable secrets, which these are not), and the hash doubles as the lookup index.
//! Only the first [`PREFIX_LEN`] characters are kept in clear, to tell keys apart in listings.

use super::{Store, StoreError, micros, new_id, on_pool};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// Every key starts with this, so leaked keys are easy to recognise (secret scanners).
pub const API_KEY_PREFIX: &str = "tl_";
/// Characters of a key kept in clear for display (`tl_` plus 8).
const PREFIX_LEN: usize = 11;
/// `last_used_at` is written at most this often per key, so verification is not a write per
/// request.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A stored API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Name given at creation.
    pub name: String,
    /// The first characters of the key, for display.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful verification (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key no longer verifies.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: Uuid,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Hex SHA-256 of a key, as stored.
fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

impl Store {
    /// Creates a key named `name`; returns it and its plaintext, which is shown once and never
    /// stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<(ApiKey, String), StoreError> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let plaintext = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let prefix = plaintext[..PREFIX_LEN].to_owned();
        let row: ApiKeyRow = on_pool!(self, |p| {
            sqlx::query_as(
                "INSERT INTO api_keys (id, name, prefix, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
            )
            .bind(new_id(at))
            .bind(name)
            .bind(&prefix)
            .bind(hash_key(&plaintext))
            .bind(micros(at))
            .fetch_one(p)
            .await?
        });
        Ok((row.into(), plaintext))
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
                 ORDER BY created_at, id",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    /// Revokes a key. Returns false if it is unknown or already revoked.
    pub async fn revoke_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(micros(at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The live (not revoked) key whose plaintext this is, updating its `last_used_at` (at
    /// most once a minute). `None` for an unknown or revoked key.
    pub async fn verify_api_key(
        &self,
        plaintext: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        if !plaintext.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let at = micros(at);
        let row: Option<ApiKeyRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
                 WHERE key_hash = $1 AND revoked_at IS NULL",
            )
            .bind(hash_key(plaintext))
            .fetch_optional(p)
            .await?
        });
        let Some(mut key) = row.map(ApiKey::from) else {
            return Ok(None);
        };
        if key
            .last_used_at
            .is_none_or(|t| at - t >= LAST_USED_RESOLUTION)
        {
            on_pool!(self, |p| {
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(key.id)
                    .bind(at)
                    .execute(p)
                    .await?;
            });
            key.last_used_at = Some(at);
        }
        Ok(Some(key))
    }
}
