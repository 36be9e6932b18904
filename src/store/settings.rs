//! The `settings` table: small key/value state kept by the server itself (the webhook secret).

use super::{Store, StoreError, on_pool};
use rand::RngCore as _;

const WEBHOOK_SECRET: &str = "webhook_secret";

impl Store {
    /// A setting's value.
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let v: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?
        });
        Ok(v.map(|(v,)| v))
    }

    /// Sets a setting, replacing any value.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The webhook signing secret: 32 random bytes (64 hex characters) generated the first time
    /// and kept, so every node sharing the database and every restart sign with the same key.
    pub async fn webhook_secret(&self) -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let candidate = hex::encode(bytes);
        // Insert-if-absent, then read: concurrent first calls agree on one winner.
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(WEBHOOK_SECRET)
            .bind(&candidate)
            .execute(p)
            .await?;
        });
        Ok(self.get_setting(WEBHOOK_SECRET).await?.unwrap_or(candidate))
    }
}
