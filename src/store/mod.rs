//! Store: a sqlx pool over SQLite (embedded default) or PostgreSQL, migrations, one function per
//! query. Driver (async, owns the pool); no protocol decisions live here.
//!
//! # Why an enum of pools and not `AnyPool`
//!
//! [`Store`] holds either a `SqlitePool` or a `PgPool`. sqlx's `Any` driver would give one code
//! path, but in sqlx 0.8 it only carries primitive values (integers, floats, text, bytes): no
//! `chrono`, `uuid` or JSON types, and no rewriting of placeholders. Going through `Any` would
//! force timestamps, ids and JSON into strings on PostgreSQL too, losing `TIMESTAMPTZ`, `UUID`
//! and `JSONB` where several nodes share the data. With the enum, each function is written once
//! and expanded for both pools by a small macro (the same SQL text, `$1`-style binds, which
//! SQLite accepts), rows are decoded by one generic `FromRow` derive, and the few places where
//! the dialects differ (`FOR UPDATE SKIP LOCKED`, advisory locks) are an explicit branch inside
//! the one function for that operation. Queries are plain `sqlx::query`/`query_as` with binds,
//! checked by the test suite against both backends (`tests/store_*.rs`), not at build time.
//!
//! # Column types per backend
//!
//! | value      | SQLite                                        | PostgreSQL    |
//! |------------|-----------------------------------------------|---------------|
//! | ids        | `BLOB` (16 bytes of the UUID v7)              | `UUID`        |
//! | timestamps | `TEXT`, RFC 3339 UTC, `+00:00` suffix         | `TIMESTAMPTZ` |
//! | JSON       | `TEXT`                                        | `JSONB`       |
//! | enums      | `TEXT` with a `CHECK`                         | `TEXT` with a `CHECK` |
//!
//! Timestamps are truncated to microseconds before they are written (PostgreSQL's precision), so a
//! value read back equals the value written on both backends. On SQLite the fixed `+00:00`
//! suffix sorts below every digit, so text comparison of two stored timestamps is time order
//! whatever the number of fractional digits. Ids are UUID v7 made from the caller's wall time
//! ([`new_id`]): they sort by creation time, which keeps primary-key indexes append-only.
//!
//! # Connection settings
//!
//! SQLite: WAL journal (readers never block the writer), `synchronous = NORMAL` (in WAL mode
//! a crash of the process loses nothing; a power cut may lose the last transactions), a busy
//! timeout so concurrent writers wait instead of failing, and foreign keys on. PostgreSQL: a pool
//! of [`PG_MAX_CONNECTIONS`]; a node needs few connections because every query is short, and
//! several nodes share one server whose default `max_connections` is 100.

pub mod admin;
mod api_keys;
mod batch;
mod calls;
mod campaign_stats;
mod campaigns;
mod conferences;
mod contacts;
mod events;
mod idempotency;
mod inbound;
mod recordings;
mod registrations;
mod sessions;
mod settings;
#[doc(hidden)]
pub mod testing;

pub use api_keys::{API_KEY_PREFIX, ApiKey};
pub use batch::{CallChange, CallWrite, MAX_ROWS_PER_INSERT, NewEvent};
pub(crate) use calls::text_enum;
pub use calls::{
    AmdRow, Call, CallFilter, CallPage, CallStatus, DEFAULT_LIST_LIMIT, Direction, EndedBy,
    FinalStatus, MAX_LIST_LIMIT, NewCall, RtpStats,
};
pub use campaign_stats::CampaignStats;
pub use campaigns::{
    Campaign, CampaignFilter, CampaignPage, ContactList, ContactListPage, NewCampaign,
    NewContactList,
};
pub use conferences::{
    Conference, ConferenceFilter, ConferencePage, ConferenceStatus, NewConference,
};
pub use contacts::{
    AttemptRow, ClaimCandidate, ClaimedContact, Contact, ContactFilter, ContactPage, DncEntry,
    DncPage, ImportSummary, OpenAttempt, WindowCheck,
};
pub use events::{ClaimedDelivery, OutboxEntry};
pub use idempotency::Claimed;
pub use inbound::{
    CALL_MISSED, FollowupState, MissedCallRow, MissedFilter, MissedPage, OptOut, RecordedMissed,
    UndecidedCall,
};
pub use recordings::{
    NewRecording, Recording, RecordingFilter, RecordingPage, RecordingStatus, RecordingSummaryRow,
};
pub use registrations::{
    NewRegistration, Registration, RegistrationFilter, RegistrationPage, RegistrationTransport,
};
pub use sessions::{HandleTime, NewSession, PacerAttempt, PacerHistory, SessionRow, SessionUpdate};

use chrono::{DateTime, Timelike, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Most connections a node opens to PostgreSQL.
pub const PG_MAX_CONNECTIONS: u32 = 10;
/// Most connections to the SQLite file (one writer at a time; WAL lets readers run beside it).
pub const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// How long a SQLite writer waits for the write lock before failing with "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free pooled connection.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("unsupported database url scheme {0:?} (expected sqlite: or postgres:)")]
    UnsupportedUrl(String),
    /// A unique constraint was violated (an id, key or name that already exists).
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint or index name reported by the database (empty if unknown).
        constraint: String,
    },
    /// A list cursor that this store did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A stored value that the code does not know (e.g. a status written by a newer version).
    #[error("invalid stored value {value:?} in column {column}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error (connection, I/O, SQL).
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict {
                constraint: db.constraint().unwrap_or_default().to_owned(),
            };
        }
        StoreError::Database(e)
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool of either backend. The body is expanded
/// twice, so it must compile for both (plain `sqlx::query` with binds does).
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The database handle: a pool plus the outbox wake-up. Cheap to clone (all clones share them).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    outbox_wake: Arc<Notify>,
}

impl Store {
    /// Connects to `sqlite:…` (the file is created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let mut opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let mut pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT);
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Each connection would get its own empty in-memory database: keep exactly
                // one, forever.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                opts = opts.journal_mode(SqliteJournalMode::Wal);
            }
            Pool::Sqlite(pool.connect_with(opts).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(PG_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await?,
            )
        } else {
            let scheme = url.split(':').next().unwrap_or_default().to_owned();
            return Err(StoreError::UnsupportedUrl(scheme));
        };
        Ok(Store {
            pool,
            outbox_wake: Arc::new(Notify::new()),
        })
    }

    /// Applies the embedded migrations of this backend (`migrations/sqlite` or
    /// `migrations/postgres`); already applied ones are skipped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every pooled connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }

    /// Wakes the outbox driver sharing this store (called after an outbox row is written).
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Resolves when [`Store::wake_outbox`] is called on any clone (a wake-up given while nobody
    /// waits is kept for the next waiter).
    pub async fn outbox_woken(&self) {
        self.outbox_wake.notified().await;
    }
}

/// The database URL for a configuration: `[data] database_url` if set (the command line and
/// `DATABASE_URL` are applied to the config before), else SQLite at `<data dir>/trunkline.db`.
/// The data folder is created if missing (best effort; [`Store::connect`] reports failures) and
/// the SQLite file is created by [`Store::connect`].
pub fn database_url(cfg: &crate::config::Config) -> String {
    if let Some(url) = &cfg.server.data.database_url
        && !url.trim().is_empty()
    {
        return url.clone();
    }
    let dir = &cfg.server.data.dir;
    let _ = std::fs::create_dir_all(dir);
    format!("sqlite://{}", dir.join("trunkline.db").display())
}

/// A new UUID v7 for the wall time `at` (the clock is injected; the 74 random bits come from the
/// thread RNG).
pub fn new_id(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// `t` truncated to whole microseconds, the precision both backends store.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_truncates_and_keeps_leap_seconds_sane() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(micros(t).to_rfc3339(), "2026-01-02T03:04:05.123456+00:00");
    }

    #[test]
    fn ids_sort_by_time() {
        let a = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let b = DateTime::from_timestamp_millis(1_700_000_000_001).unwrap();
        assert!(new_id(a) < new_id(b));
        assert_eq!(new_id(a).get_version_num(), 7);
    }

    #[test]
    fn database_url_prefers_config_then_sqlite_in_data_dir() {
        let mut cfg = crate::config::Config::embedded();
        let dir = std::env::temp_dir().join(format!("trunkline-url-{}", Uuid::new_v4()));
        cfg.server.data.dir = dir.clone();
        let url = database_url(&cfg);
        assert!(url.starts_with("sqlite://"), "{url}");
        assert!(url.ends_with("trunkline.db"), "{url}");
        assert!(dir.is_dir());
        let _ = std::fs::remove_dir_all(&dir);
        cfg.server.data.database_url = Some("postgres://x@127.0.0.1/y".into());
        assert_eq!(database_url(&cfg), "postgres://x@127.0.0.1/y");
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_one_database() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store.set_setting("a", "1").await.unwrap();
        assert_eq!(store.get_setting("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(store.backend(), Backend::Sqlite);
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        let e = Store::connect("mysql://h/db").await.unwrap_err();
        assert!(
            matches!(e, StoreError::UnsupportedUrl(ref s) if s == "mysql"),
            "{e}"
        );
    }
}
