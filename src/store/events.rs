//! The `events` log and the `webhook_outbox` table.
//!
//! An event and its outbox rows are written in one transaction, so an event is stored before
//! anything can deliver it and no delivery is ever forgotten. Outbox rows are claimed with a
//! lease: claiming moves `next_attempt_at` to the end of the lease and stamps a claim token, so a
//! row is sent by one worker at a time (`FOR UPDATE SKIP LOCKED` keeps PostgreSQL nodes apart)
//! and a worker that dies mid-delivery only delays the row until its lease runs out.
//!
//! Order: only the head of each `(url, call_id)` chain is claimable, i.e. a row waits while an
//! earlier event (lower `seq`) of the same call to the same URL is neither delivered nor given
//! up. Events without a call have no order among themselves.

use super::{Store, StoreError, micros, on_pool};
use crate::events::Event;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Key of the PostgreSQL advisory lock that serialises event inserts. A `BIGINT` identity
/// hands out numbers at insert but transactions commit in any order, so without it a reader
/// could see seq 7 before seq 6 commits and an SSE client resuming after 7 would never get 6.
/// SQLite has a single writer, so its `seq` is commit-ordered anyway.
pub(super) const EVENT_SEQ_LOCK: i64 = 0x7472_756e_6b6c_696e; // "trunklin"

/// An outbox row claimed for delivery, with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// Outbox row id.
    pub outbox_id: i64,
    /// Where to POST.
    pub url: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the row was queued (the event time); give-up is measured from here.
    pub queued_at: DateTime<Utc>,
    /// The event to send.
    pub event: Event,
}

/// One outbox row's delivery state (for tests, metrics and operators).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEntry {
    /// Outbox row id.
    pub id: i64,
    /// The event.
    pub event_id: Uuid,
    /// Where to POST.
    pub url: String,
    /// Failed attempts so far.
    pub attempts: i32,
    /// Not before this time (or: end of the current lease).
    pub next_attempt_at: DateTime<Utc>,
    /// When a 2xx came back.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When retrying stopped.
    pub given_up_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    seq: i64,
    #[sqlx(rename = "type")]
    kind: String,
    call_id: Option<Uuid>,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            id: r.id,
            seq: r.seq,
            kind: r.kind,
            call_id: r.call_id,
            payload: r.payload,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    outbox_id: i64,
    url: String,
    attempts: i32,
    queued_at: DateTime<Utc>,
    #[sqlx(flatten)]
    event: EventRow,
}

const PENDING: &str = "delivered_at IS NULL AND given_up_at IS NULL";

/// Pending rows `o` with no pending earlier event of the same call to the same URL.
const HEADS: &str = "o.delivered_at IS NULL AND o.given_up_at IS NULL \
    AND NOT EXISTS (SELECT 1 FROM webhook_outbox e \
      WHERE e.url = o.url AND e.call_id = o.call_id AND e.seq < o.seq \
      AND e.delivered_at IS NULL AND e.given_up_at IS NULL)";

impl Store {
    /// Stores an event and one outbox row per webhook URL in one transaction, then wakes the
    /// outbox driver if there is something to deliver. Returns the event with its `seq`.
    pub async fn insert_event(
        &self,
        id: Uuid,
        kind: &str,
        call_id: Option<Uuid>,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
        webhook_urls: &[&str],
    ) -> Result<Event, StoreError> {
        let at = micros(at);
        let is_pg = matches!(self.backend(), super::Backend::Postgres);
        let seq: i64 = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(EVENT_SEQ_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO events (id, type, call_id, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            )
            .bind(id)
            .bind(kind)
            .bind(call_id)
            .bind(payload)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            for url in webhook_urls {
                sqlx::query(
                    "INSERT INTO webhook_outbox (event_id, seq, call_id, url, next_attempt_at, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(id)
                .bind(seq)
                .bind(call_id)
                .bind(*url)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            seq
        });
        if !webhook_urls.is_empty() {
            self.wake_outbox();
        }
        Ok(Event {
            id,
            seq,
            kind: kind.to_owned(),
            call_id,
            payload: payload.clone(),
            created_at: at,
        })
    }

    /// Events with `seq > after_seq`, oldest first, at most `limit` (for SSE `Last-Event-ID`).
    pub async fn events_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, seq, type, call_id, payload, created_at FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// Every event of a call, oldest first.
    pub async fn events_for_call(&self, call_id: Uuid) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, seq, type, call_id, payload, created_at FROM events \
                 WHERE call_id = $1 ORDER BY seq",
            )
            .bind(call_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// Claims up to `limit` due outbox rows (each the head of its `(url, call)` chain) until
    /// `lease_until`, oldest event first.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let token = Uuid::new_v4();
        let skip_locked = match self.backend() {
            super::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let claim = format!(
            "UPDATE webhook_outbox SET claim_token = $1, next_attempt_at = $2 \
             WHERE id IN (SELECT o.id FROM webhook_outbox o \
               WHERE {HEADS} AND o.next_attempt_at <= $3 ORDER BY o.seq LIMIT $4 {skip_locked})"
        );
        let rows: Vec<ClaimedRow> = on_pool!(self, |p| {
            let n = sqlx::query(&claim)
                .bind(token)
                .bind(micros(lease_until))
                .bind(micros(now))
                .bind(i64::from(limit))
                .execute(p)
                .await?
                .rows_affected();
            if n == 0 {
                Vec::new()
            } else {
                sqlx::query_as(
                    "SELECT o.id AS outbox_id, o.url, o.attempts, o.created_at AS queued_at, \
                     e.id, e.seq, e.type, e.call_id, e.payload, e.created_at \
                     FROM webhook_outbox o JOIN events e ON e.id = o.event_id \
                     WHERE o.claim_token = $1 ORDER BY o.seq",
                )
                .bind(token)
                .fetch_all(p)
                .await?
            }
        });
        Ok(rows
            .into_iter()
            .map(|r| ClaimedDelivery {
                outbox_id: r.outbox_id,
                url: r.url,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
                queued_at: r.queued_at,
                event: r.event.into(),
            })
            .collect())
    }

    /// Records a 2xx. Returns false if the row was not pending.
    pub async fn mark_delivered(
        &self,
        outbox_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE webhook_outbox SET delivered_at = $2, claim_token = NULL \
             WHERE id = $1 AND {PENDING}"
        );
        let n = on_pool!(self, |p| {
            sqlx::query(&sql)
                .bind(outbox_id)
                .bind(micros(at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a failed attempt and when to retry. Returns false if the row was not pending.
    pub async fn mark_delivery_failed(
        &self,
        outbox_id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, claim_token = NULL WHERE id = $1 AND {PENDING}"
        );
        let n = on_pool!(self, |p| {
            sqlx::query(&sql)
                .bind(outbox_id)
                .bind(error)
                .bind(micros(next_attempt_at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a last failed attempt and stops retrying the row (later events of the same call
    /// then proceed). Returns false if the row was not pending.
    pub async fn mark_delivery_given_up(
        &self,
        outbox_id: i64,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $2, \
             given_up_at = $3, claim_token = NULL WHERE id = $1 AND {PENDING}"
        );
        let n = on_pool!(self, |p| {
            sqlx::query(&sql)
                .bind(outbox_id)
                .bind(error)
                .bind(micros(at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The earliest `next_attempt_at` of a pending row that heads its `(url, call)` chain (a
    /// retry time or the end of a lease): when [`Store::claim_deliveries`] next has work. Rows
    /// waiting behind an earlier event are left out, since they cannot be claimed before it.
    pub async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = format!("SELECT MIN(o.next_attempt_at) FROM webhook_outbox o WHERE {HEADS}");
        let (t,): (Option<DateTime<Utc>>,) =
            on_pool!(self, |p| sqlx::query_as(&sql).fetch_one(p).await?);
        Ok(t)
    }

    /// How many outbox rows are neither delivered nor given up.
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM webhook_outbox WHERE {PENDING}");
        let (n,): (i64,) = on_pool!(self, |p| sqlx::query_as(&sql).fetch_one(p).await?);
        Ok(n)
    }

    /// The outbox rows of an event.
    pub async fn outbox_entries(&self, event_id: Uuid) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows: Vec<OutboxEntry> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, event_id, url, attempts, next_attempt_at, delivered_at, last_error, \
                 given_up_at FROM webhook_outbox WHERE event_id = $1 ORDER BY id",
            )
            .bind(event_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}
