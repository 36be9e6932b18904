//! Inbound-call outcomes: `inbound_calls` (decided or not), `missed_calls` with the follow-up
//! decision, `followup_cooldowns` and `opt_outs`.
//!
//! [`Store::record_missed`] is the one place a call becomes missed: in one transaction it
//! inserts the `missed_calls` row (`call_id` is `UNIQUE`: a second attempt inserts nothing and
//! returns `None`), marks the inbound call decided, stores `call.missed`, and decides the
//! follow-up: `suppressed` (`opt-out`) when the caller is on the opt-out list, `suppressed`
//! (`cooldown`) when the cool-down upsert on `(number, caller)` does not take (someone got a
//! text within the cool-down; the upsert is atomic on both backends, so two misses racing
//! give one text), else `pending` with a `followup.text` event and its outbox row. `sent` and
//! `failed` are read from that outbox row.

use super::calls::{decode_cursor, encode_cursor};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, micros, new_id, on_pool};
use crate::events::Event;
use crate::inbound::followup::{FOLLOWUP_EVENT, MissedCall};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The `call.missed` event type.
pub const CALL_MISSED: &str = crate::events::kinds::CALL_MISSED;

/// Where a missed call's follow-up stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowupState {
    /// The number has no follow-up.
    None,
    /// Queued in the outbox, not delivered yet.
    Pending,
    /// Delivered (the URL answered 2xx).
    Sent,
    /// The outbox gave up; `followup_reason` holds the last error.
    Failed,
    /// Not sent: `followup_reason` is `cooldown` or `opt-out`.
    Suppressed,
}

/// A missed call as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MissedCallRow {
    /// Id of the missed-call record.
    pub id: Uuid,
    /// The caller's call.
    pub call_id: Uuid,
    /// The called number.
    pub number: String,
    /// The caller.
    pub caller: String,
    /// `caller-hangup`, `no-answer`, `busy`, `no-agents`, `closed` or `restart`.
    pub reason: String,
    /// How long it rang, milliseconds.
    pub ring_ms: i64,
    /// The voicemail recording, if any.
    pub voicemail_id: Option<Uuid>,
    /// The `call.missed` event.
    pub event_id: Uuid,
    /// The follow-up's state.
    pub followup_state: FollowupState,
    /// `cooldown` or `opt-out` when suppressed; the last delivery error when failed.
    pub followup_reason: Option<String>,
    /// The `followup.text` event, when one was queued.
    pub followup_event_id: Option<Uuid>,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MissedDbRow {
    id: Uuid,
    call_id: Uuid,
    number: String,
    caller: String,
    reason: String,
    ring_ms: i64,
    voicemail_id: Option<Uuid>,
    event_id: Uuid,
    followup_state: String,
    followup_reason: Option<String>,
    followup_event_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    given_up_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl From<MissedDbRow> for MissedCallRow {
    fn from(r: MissedDbRow) -> Self {
        let (state, reason) = match r.followup_state.as_str() {
            "suppressed" => (FollowupState::Suppressed, r.followup_reason),
            "pending" if r.delivered_at.is_some() => (FollowupState::Sent, None),
            "pending" if r.given_up_at.is_some() => (FollowupState::Failed, r.last_error),
            "pending" => (FollowupState::Pending, r.last_error),
            _ => (FollowupState::None, None),
        };
        MissedCallRow {
            id: r.id,
            call_id: r.call_id,
            number: r.number,
            caller: r.caller,
            reason: r.reason,
            ring_ms: r.ring_ms,
            voicemail_id: r.voicemail_id,
            event_id: r.event_id,
            followup_state: state,
            followup_reason: reason,
            followup_event_id: r.followup_event_id,
            created_at: r.created_at,
        }
    }
}

const MISSED_SELECT: &str = "SELECT m.id, m.call_id, m.number, m.caller, m.reason, m.ring_ms, \
    m.voicemail_id, m.event_id, m.followup_state, m.followup_reason, m.followup_event_id, \
    m.created_at, o.delivered_at, o.given_up_at, o.last_error \
    FROM missed_calls m LEFT JOIN webhook_outbox o ON o.event_id = m.followup_event_id";

/// Filters of [`Store::list_missed_calls`].
#[derive(Debug, Clone, Default)]
pub struct MissedFilter {
    /// Only this caller.
    pub caller: Option<String>,
    /// Only this number.
    pub number: Option<String>,
    /// Page size (default [`DEFAULT_LIST_LIMIT`], at most [`MAX_LIST_LIMIT`]).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of missed calls, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MissedPage {
    /// The rows.
    pub missed_calls: Vec<MissedCallRow>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// An inbound call whose outcome was never decided.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UndecidedCall {
    /// The caller's call.
    pub call_id: Uuid,
    /// The called number.
    pub number: String,
    /// The caller.
    pub caller: String,
    /// When it arrived.
    pub started_at: DateTime<Utc>,
}

/// An opt-out list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OptOut {
    /// The caller (as stored on calls: E.164 number or SIP URI).
    pub caller: String,
    /// Why, as given.
    pub reason: Option<String>,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// What [`Store::record_missed`] stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedMissed {
    /// The missed-call record's id.
    pub id: Uuid,
    /// `call.missed`.
    pub event: Event,
    /// `followup.text`, when a follow-up was queued.
    pub followup: Option<Event>,
}

impl Store {
    /// Marks an inbound call's outcome as pending (it arrived at a tracked number), held by
    /// `node`.
    pub async fn insert_inbound_call(
        &self,
        call_id: Uuid,
        number: &str,
        caller: &str,
        at: DateTime<Utc>,
        node: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO inbound_calls (call_id, number, caller, started_at, node) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(call_id)
            .bind(number)
            .bind(caller)
            .bind(micros(at))
            .bind(node)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// An agent answered: the call is decided, not missed. False if it was decided already.
    pub async fn mark_inbound_answered(
        &self,
        call_id: Uuid,
        agent: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE inbound_calls SET outcome = 'answered', agent = $2, decided_at = $3 \
                 WHERE call_id = $1 AND outcome IS NULL",
            )
            .bind(call_id)
            .bind(agent)
            .bind(micros(at))
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Inbound calls never decided that `node` must decide after its restart, oldest first:
    /// its own, those of no node (written before nodes were recorded), and any node's that
    /// started before `stale_before` (that node is presumed gone). Another live node's
    /// ringing calls are left alone.
    pub async fn undecided_inbound_calls(
        &self,
        node: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<UndecidedCall>, StoreError> {
        let rows = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT call_id, number, caller, started_at FROM inbound_calls \
                 WHERE outcome IS NULL AND (node = $1 OR node IS NULL OR started_at < $2) \
                 ORDER BY started_at",
            )
            .bind(node)
            .bind(micros(stale_before))
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Records a missed call with its `call.missed` event and follow-up decision, in one
    /// transaction; `None` when the call was already recorded missed (nothing is written).
    pub async fn record_missed(
        &self,
        m: &MissedCall,
        at: DateTime<Utc>,
    ) -> Result<Option<RecordedMissed>, StoreError> {
        let at = micros(at);
        let is_pg = matches!(self.backend(), super::Backend::Postgres);
        let id = new_id(at);
        let event_id = new_id(at);
        let followup_id = new_id(at);
        let payload = |state: &str, reason: Option<&str>| {
            serde_json::json!({
                "id": id,
                "call_id": m.call_id,
                "number": m.number,
                "caller": m.caller,
                "reason": m.reason.as_str(),
                "ring_ms": m.ring_ms,
                "voicemail_id": m.voicemail_id,
                "followup": { "state": state, "reason": reason },
            })
        };
        let followup_payload = m.followup.as_ref().map(|f| {
            serde_json::json!({
                "missed_call_id": id,
                "call_id": m.call_id,
                "to": m.caller,
                "number": m.number,
                "reason": m.reason.as_str(),
                "text": f.text,
            })
        });
        let done: Option<(i64, Option<i64>, serde_json::Value)> = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(super::events::EVENT_SEQ_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(
                "INSERT INTO missed_calls (id, call_id, number, caller, reason, ring_ms, \
                 voicemail_id, event_id, followup_state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'none', $9) \
                 ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(id)
            .bind(m.call_id)
            .bind(&m.number)
            .bind(&m.caller)
            .bind(m.reason.as_str())
            .bind(m.ring_ms)
            .bind(m.voicemail_id)
            .bind(event_id)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                None
            } else {
                sqlx::query(
                    "UPDATE inbound_calls SET outcome = 'missed', decided_at = $2 \
                     WHERE call_id = $1 AND outcome IS NULL",
                )
                .bind(m.call_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                // The follow-up decision.
                let mut followup_seq = None;
                let (state, reason) = match &m.followup {
                    None => ("none", None),
                    Some(f) => {
                        let opted_out: Option<(String,)> =
                            sqlx::query_as("SELECT caller FROM opt_outs WHERE caller = $1")
                                .bind(&m.caller)
                                .fetch_optional(&mut *tx)
                                .await?;
                        if opted_out.is_some() {
                            ("suppressed", Some("opt-out"))
                        } else {
                            let cooldown = TimeDelta::seconds(
                                i64::try_from(f.cooldown_secs).unwrap_or(i64::MAX / 1_000_000),
                            );
                            let cutoff = at - cooldown;
                            let took = sqlx::query(
                                "INSERT INTO followup_cooldowns (number, caller, last_sent_at) \
                                 VALUES ($1, $2, $3) ON CONFLICT (number, caller) DO UPDATE \
                                 SET last_sent_at = excluded.last_sent_at \
                                 WHERE followup_cooldowns.last_sent_at <= $4",
                            )
                            .bind(&m.number)
                            .bind(&m.caller)
                            .bind(at)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if took == 0 {
                                ("suppressed", Some("cooldown"))
                            } else {
                                let (seq,): (i64,) = sqlx::query_as(
                                    "INSERT INTO events (id, type, call_id, payload, created_at) \
                                     VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                                )
                                .bind(followup_id)
                                .bind(FOLLOWUP_EVENT)
                                .bind(m.call_id)
                                .bind(&followup_payload)
                                .bind(at)
                                .fetch_one(&mut *tx)
                                .await?;
                                sqlx::query(
                                    "INSERT INTO webhook_outbox (event_id, seq, call_id, url, \
                                     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)",
                                )
                                .bind(followup_id)
                                .bind(seq)
                                .bind(m.call_id)
                                .bind(&f.url)
                                .bind(at)
                                .execute(&mut *tx)
                                .await?;
                                followup_seq = Some(seq);
                                ("pending", None)
                            }
                        }
                    }
                };
                sqlx::query(
                    "UPDATE missed_calls SET followup_state = $2, followup_reason = $3, \
                     followup_event_id = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(reason)
                .bind(followup_seq.map(|_| followup_id))
                .execute(&mut *tx)
                .await?;
                let missed_payload = payload(state, reason);
                // `call.missed` goes after the follow-up, so its payload carries the decision.
                let (seq,): (i64,) = sqlx::query_as(
                    "INSERT INTO events (id, type, call_id, payload, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                )
                .bind(event_id)
                .bind(CALL_MISSED)
                .bind(m.call_id)
                .bind(&missed_payload)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(url) = &m.status_callback {
                    sqlx::query(
                        "INSERT INTO webhook_outbox (event_id, seq, call_id, url, \
                         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(event_id)
                    .bind(seq)
                    .bind(m.call_id)
                    .bind(url)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Some((seq, followup_seq, missed_payload))
            }
        });
        let Some((seq, followup_seq, missed_payload)) = done else {
            return Ok(None);
        };
        if m.status_callback.is_some() || followup_seq.is_some() {
            self.wake_outbox();
        }
        Ok(Some(RecordedMissed {
            id,
            event: Event {
                id: event_id,
                seq,
                kind: CALL_MISSED.into(),
                call_id: Some(m.call_id),
                payload: missed_payload,
                created_at: at,
            },
            followup: followup_seq.map(|seq| Event {
                id: followup_id,
                seq,
                kind: FOLLOWUP_EVENT.into(),
                call_id: Some(m.call_id),
                payload: followup_payload.clone().unwrap_or_default(),
                created_at: at,
            }),
        }))
    }

    /// A missed call by its call.
    pub async fn get_missed_call(
        &self,
        call_id: Uuid,
    ) -> Result<Option<MissedCallRow>, StoreError> {
        let sql = format!("{MISSED_SELECT} WHERE m.call_id = $1");
        let row: Option<MissedDbRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(call_id)
            .fetch_optional(p)
            .await?);
        Ok(row.map(MissedCallRow::from))
    }

    /// A page of missed calls, newest first (keyset on `(created_at, id)`).
    pub async fn list_missed_calls(&self, f: &MissedFilter) -> Result<MissedPage, StoreError> {
        let limit = f
            .limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT);
        let (cur_ts, cur_id) = match &f.cursor {
            Some(c) => {
                let (t, i) = decode_cursor(c)?;
                (Some(t), Some(i))
            }
            None => (None, None),
        };
        let sql = format!(
            "{MISSED_SELECT} WHERE ($1 IS NULL OR m.caller = $1) AND ($2 IS NULL OR m.number = $2) \
             AND ($3 IS NULL OR m.created_at < $3 OR (m.created_at = $3 AND m.id < $4)) \
             ORDER BY m.created_at DESC, m.id DESC LIMIT $5"
        );
        let rows: Vec<MissedDbRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(&f.caller)
                .bind(&f.number)
                .bind(cur_ts)
                .bind(cur_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?
        });
        let mut missed_calls: Vec<MissedCallRow> = rows.into_iter().map(Into::into).collect();
        let next_cursor = if missed_calls.len() > limit as usize {
            missed_calls.truncate(limit as usize);
            missed_calls
                .last()
                .map(|r| encode_cursor(r.created_at, r.id))
        } else {
            None
        };
        Ok(MissedPage {
            missed_calls,
            next_cursor,
        })
    }

    /// Adds a caller to the opt-out list (idempotent: an existing entry is kept).
    pub async fn add_opt_out(
        &self,
        caller: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<OptOut, StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO opt_outs (caller, reason, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (caller) DO NOTHING",
            )
            .bind(caller)
            .bind(reason)
            .bind(micros(at))
            .execute(p)
            .await?;
        });
        let row: OptOut = on_pool!(self, |p| {
            sqlx::query_as("SELECT caller, reason, created_at FROM opt_outs WHERE caller = $1")
                .bind(caller)
                .fetch_one(p)
                .await?
        });
        Ok(row)
    }

    /// Removes a caller from the opt-out list; false if absent.
    pub async fn remove_opt_out(&self, caller: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM opt_outs WHERE caller = $1")
                .bind(caller)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The opt-out list, oldest first (at most `limit`).
    pub async fn list_opt_outs(&self, limit: u32) -> Result<Vec<OptOut>, StoreError> {
        let rows = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT caller, reason, created_at FROM opt_outs ORDER BY created_at, caller LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Deletes missed-call records decided before `before` whose follow-up is no longer
    /// pending (none, suppressed, sent or given up), the decided inbound-call markers before
    /// it, and cool-downs last used before `cooldown_before`. Returns the missed calls deleted.
    pub async fn prune_missed_calls(
        &self,
        before: DateTime<Utc>,
        cooldown_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let before = micros(before);
        let n = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "DELETE FROM missed_calls WHERE created_at < $1 AND (followup_event_id IS NULL \
                 OR followup_event_id IN (SELECT event_id FROM webhook_outbox \
                   WHERE delivered_at IS NOT NULL OR given_up_at IS NOT NULL))",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM inbound_calls WHERE outcome IS NOT NULL AND decided_at < $1 \
                 AND call_id NOT IN (SELECT call_id FROM missed_calls)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM followup_cooldowns WHERE last_sent_at < $1")
                .bind(micros(cooldown_before))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n)
    }
}
