//! Batched call-row changes and their events, written in one transaction. Driver (async).
//!
//! The store writer of the call engine turns each call's life into a row change (insert,
//! ringing, answered, AMD verdict, finish) plus the event announcing it. Written one at a time, every change
//! and every event is its own transaction, and on SQLite each statement is a round trip to
//! sqlx's worker thread. [`Store::write_batch`] writes many at once: one transaction, the new
//! rows in one multi-row `INSERT`, the updates one statement each (with the same conditions as
//! [`Store::mark_ringing`], [`Store::mark_answered`] and [`Store::finish_call`], so each applies
//! at most once), then the events of the changes that applied in one multi-row `INSERT ...
//! RETURNING seq` and their outbox rows in another. On PostgreSQL the event-sequence advisory
//! lock is taken once, at the start of the transaction, so `seq` still follows commit order.
//!
//! [`CallChange::apply_to`] mirrors the same conditions on an in-memory [`Call`], so a caller
//! that keeps each live call's row can build the event payload (the call as the API shows it)
//! without reading the row back.

use super::calls::{
    FINISH_SQL, MARK_ANSWERED_SQL, MARK_RINGING_SQL, SET_AMD_SQL, SET_DURATION_SQL,
};
use super::{AmdRow, Call, CallStatus, EndedBy, FinalStatus, NewCall, RtpStats, Store, StoreError};
use super::{micros, on_pool};
use crate::events::Event;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use uuid::Uuid;

/// Most rows in one multi-row `INSERT`. Far below both backends' bind limits, and small because
/// sqlx looks up each parameter's name on SQLite, a linear scan inside SQLite, so a statement's
/// bind cost grows with the square of its parameter count (at 200 rows,
/// `sqlite3_bind_parameter_name` was 4.5% of the server's profile at 3000 calls/s; at 64, 1.7%).
pub const MAX_ROWS_PER_INSERT: usize = 64;

/// A change to one call row.
#[derive(Debug, Clone)]
pub enum CallChange {
    /// Insert the row; an id that exists already fails the batch with [`StoreError::Conflict`].
    Insert(NewCall),
    /// First ringing, as [`Store::mark_ringing`].
    Ringing {
        /// The call.
        call_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// Answer, as [`Store::mark_answered`].
    Answered {
        /// The call.
        call_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// End, as [`Store::finish_call`] (the final status is set once).
    Finish {
        /// The call.
        call_id: Uuid,
        /// Final status.
        status: FinalStatus,
        /// SIP code of the end.
        sip_code: Option<u16>,
        /// Reason phrase or internal reason.
        reason: Option<String>,
        /// Which side ended it.
        ended_by: EndedBy,
        /// RTP counters.
        stats: RtpStats,
        /// When.
        at: DateTime<Utc>,
    },
    /// The AMD verdict, as [`Store::set_call_amd`]: applies whenever the call exists, whatever
    /// its state (a verdict may land after the hang-up), replacing an earlier one.
    Amd {
        /// The call.
        call_id: Uuid,
        /// The verdict.
        amd: AmdRow,
    },
    /// No row change: the event is always written.
    None,
}

/// An event to store with its outbox rows.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// Event type.
    pub kind: String,
    /// The call concerned.
    pub call_id: Option<Uuid>,
    /// Payload.
    pub payload: serde_json::Value,
    /// Event time.
    pub created_at: DateTime<Utc>,
    /// One outbox row per URL.
    pub webhook_urls: Vec<String>,
}

/// One call-row change and the event written if (and only if) the change applies.
#[derive(Debug, Clone)]
pub struct CallWrite {
    /// The row change.
    pub change: CallChange,
    /// The event announcing it.
    pub event: NewEvent,
}

impl Call {
    /// The row as it reads back right after [`Store::insert_call`] of `c`.
    pub fn from_new(c: &NewCall) -> Call {
        Call {
            id: c.id,
            direction: c.direction,
            from: c.from.clone(),
            to: c.to.clone(),
            trunk: c.trunk.clone(),
            sip_call_id: c.sip_call_id.clone(),
            status: c.status,
            final_status: None,
            created_at: micros(c.created_at),
            ringing_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            end_sip_code: None,
            end_reason: None,
            ended_by: None,
            rtp: RtpStats::default(),
            status_callback: c.status_callback.clone(),
            metadata: c.metadata.clone(),
            idempotency_key: c.idempotency_key.clone(),
            api_key_id: c.api_key_id,
            amd: None,
            conference_id: None,
        }
    }
}

/// A counter as it reads back after being stored in a signed 64-bit column.
fn stored_count(v: u64) -> u64 {
    v.min(i64::MAX as u64)
}

fn db_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl CallChange {
    /// The call this change is about (`None` for [`CallChange::None`]).
    pub fn call_id(&self) -> Option<Uuid> {
        match self {
            CallChange::Insert(c) => Some(c.id),
            CallChange::Ringing { call_id, .. }
            | CallChange::Answered { call_id, .. }
            | CallChange::Finish { call_id, .. }
            | CallChange::Amd { call_id, .. } => Some(*call_id),
            CallChange::None => None,
        }
    }

    /// Applies the change to `row` with the conditions the SQL uses, and returns whether it
    /// applied (`row` is left unchanged when not). `row` must be the stored row (for
    /// [`CallChange::Insert`], it is replaced by the new row).
    pub fn apply_to(&self, row: &mut Call) -> bool {
        match self {
            CallChange::Insert(c) => {
                *row = Call::from_new(c);
                true
            }
            CallChange::Ringing { at, .. } => {
                if row.ringing_at.is_some()
                    || row.answered_at.is_some()
                    || row.final_status.is_some()
                {
                    return false;
                }
                row.status = CallStatus::Ringing;
                row.ringing_at = Some(micros(*at));
                true
            }
            CallChange::Answered { at, .. } => {
                if row.answered_at.is_some() || row.final_status.is_some() {
                    return false;
                }
                row.status = CallStatus::InProgress;
                row.answered_at = Some(micros(*at));
                true
            }
            CallChange::Finish {
                status,
                sip_code,
                reason,
                ended_by,
                stats,
                at,
                ..
            } => {
                if row.final_status.is_some() {
                    return false;
                }
                let at = micros(*at);
                row.status = (*status).into();
                row.final_status = Some(*status);
                row.end_sip_code = *sip_code;
                row.end_reason = reason.clone();
                row.ended_by = Some(*ended_by);
                row.ended_at = Some(at);
                row.rtp = RtpStats {
                    packets_in: stored_count(stats.packets_in),
                    packets_out: stored_count(stats.packets_out),
                    packets_lost: stored_count(stats.packets_lost),
                    packets_late: stored_count(stats.packets_late),
                    jitter_ms: stats.jitter_ms,
                };
                row.duration_ms = Some(
                    row.answered_at
                        .map(|a| (at - a).num_milliseconds().max(0))
                        .unwrap_or(0),
                );
                true
            }
            CallChange::Amd { amd, .. } => {
                row.amd = Some(amd.clone());
                true
            }
            CallChange::None => true,
        }
    }
}

/// `($1, $2, ...), (...)` for `rows` rows of `cols` binds each, numbered from 1.
fn values_list(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "${}", r * cols + c + 1);
        }
        s.push(')');
    }
    s
}

impl Store {
    /// Writes `writes` in order in one transaction and returns, for each, the stored event, or
    /// `None` where the row change did not apply (then no event is written). On any error the
    /// whole batch is rolled back. Wakes the outbox driver if an outbox row was written.
    pub async fn write_batch(
        &self,
        writes: &[CallWrite],
    ) -> Result<Vec<Option<Event>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let is_pg = matches!(self.backend(), super::Backend::Postgres);
        // New rows go first, in one statement. An update of a row that this batch inserts
        // later would have found no row in order, so it does not apply.
        let inserts: Vec<&NewCall> = writes
            .iter()
            .filter_map(|w| match &w.change {
                CallChange::Insert(c) => Some(c),
                _ => None,
            })
            .collect();
        let mut applied = vec![false; writes.len()];
        let seqs: HashMap<Uuid, i64> = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(super::events::EVENT_SEQ_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            for chunk in inserts.chunks(MAX_ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO calls (id, direction, from_addr, to_addr, trunk, sip_call_id, \
                     status, created_at, status_callback, metadata, idempotency_key, \
                     api_key_id) VALUES {}",
                    values_list(chunk.len(), 12)
                );
                let mut q = sqlx::query(&sql);
                for c in chunk {
                    q = q
                        .bind(c.id)
                        .bind(c.direction.as_str())
                        .bind(&c.from)
                        .bind(&c.to)
                        .bind(&c.trunk)
                        .bind(&c.sip_call_id)
                        .bind(c.status.as_str())
                        .bind(micros(c.created_at))
                        .bind(&c.status_callback)
                        .bind(&c.metadata)
                        .bind(&c.idempotency_key)
                        .bind(c.api_key_id);
                }
                q.execute(&mut *tx).await?;
            }
            let mut inserted: HashSet<Uuid> = HashSet::new();
            let pending: HashSet<Uuid> = inserts.iter().map(|c| c.id).collect();
            for (i, w) in writes.iter().enumerate() {
                if let Some(id) = w.change.call_id()
                    && !matches!(w.change, CallChange::Insert(_))
                    && pending.contains(&id)
                    && !inserted.contains(&id)
                {
                    continue;
                }
                applied[i] = match &w.change {
                    CallChange::Insert(c) => {
                        inserted.insert(c.id);
                        true
                    }
                    CallChange::None => true,
                    CallChange::Ringing { call_id, at } => {
                        sqlx::query(MARK_RINGING_SQL)
                            .bind(*call_id)
                            .bind(micros(*at))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1
                    }
                    CallChange::Answered { call_id, at } => {
                        sqlx::query(MARK_ANSWERED_SQL)
                            .bind(*call_id)
                            .bind(micros(*at))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1
                    }
                    CallChange::Amd { call_id, amd } => {
                        sqlx::query(SET_AMD_SQL)
                            .bind(*call_id)
                            .bind(&amd.result)
                            .bind(amd.confidence)
                            .bind(amd.decision_ms)
                            .bind(amd.beep_ms)
                            .bind(amd.drop_ms)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1
                    }
                    CallChange::Finish {
                        call_id,
                        status,
                        sip_code,
                        reason,
                        ended_by,
                        stats,
                        at,
                    } => {
                        let at = micros(*at);
                        let answered: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(FINISH_SQL)
                            .bind(*call_id)
                            .bind(status.as_str())
                            .bind(sip_code.map(i32::from))
                            .bind(reason.as_deref())
                            .bind(ended_by.as_str())
                            .bind(at)
                            .bind(db_count(stats.packets_in))
                            .bind(db_count(stats.packets_out))
                            .bind(db_count(stats.packets_lost))
                            .bind(db_count(stats.packets_late))
                            .bind(stats.jitter_ms)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match answered {
                            None => false,
                            Some((answered_at,)) => {
                                let duration_ms = answered_at
                                    .map(|a| (at - a).num_milliseconds().max(0))
                                    .unwrap_or(0);
                                sqlx::query(SET_DURATION_SQL)
                                    .bind(*call_id)
                                    .bind(duration_ms)
                                    .execute(&mut *tx)
                                    .await?;
                                true
                            }
                        }
                    }
                };
            }
            let events: Vec<&NewEvent> = writes
                .iter()
                .zip(&applied)
                .filter(|(_, a)| **a)
                .map(|(w, _)| &w.event)
                .collect();
            let mut seqs: HashMap<Uuid, i64> = HashMap::with_capacity(events.len());
            // Rows of one VALUES list get their `seq` in list order, and chunks run in order.
            for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO events (id, type, call_id, payload, created_at) VALUES {} \
                     RETURNING id, seq",
                    values_list(chunk.len(), 5)
                );
                let mut q = sqlx::query_as::<_, (Uuid, i64)>(&sql);
                for e in chunk {
                    q = q
                        .bind(e.id)
                        .bind(&e.kind)
                        .bind(e.call_id)
                        .bind(&e.payload)
                        .bind(micros(e.created_at));
                }
                seqs.extend(q.fetch_all(&mut *tx).await?);
            }
            let outbox: Vec<(&NewEvent, &str)> = events
                .iter()
                .flat_map(|e| e.webhook_urls.iter().map(move |u| (*e, u.as_str())))
                .collect();
            for chunk in outbox.chunks(MAX_ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO webhook_outbox (event_id, seq, call_id, url, next_attempt_at, \
                     created_at) VALUES {}",
                    values_list(chunk.len(), 6)
                );
                let mut q = sqlx::query(&sql);
                for (e, url) in chunk {
                    let at = micros(e.created_at);
                    q = q
                        .bind(e.id)
                        .bind(seqs.get(&e.id).copied().unwrap_or_default())
                        .bind(e.call_id)
                        .bind(*url)
                        .bind(at)
                        .bind(at);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            seqs
        });
        let outbox_rows = writes
            .iter()
            .zip(&applied)
            .any(|(w, a)| *a && !w.event.webhook_urls.is_empty());
        if outbox_rows {
            self.wake_outbox();
        }
        let mut out = Vec::with_capacity(writes.len());
        for (w, a) in writes.iter().zip(applied) {
            let e = &w.event;
            out.push(match (a, seqs.get(&e.id)) {
                (true, Some(&seq)) => Some(Event {
                    id: e.id,
                    seq,
                    kind: e.kind.clone(),
                    call_id: e.call_id,
                    payload: e.payload.clone(),
                    created_at: micros(e.created_at),
                }),
                _ => None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_list_numbers_binds_row_by_row() {
        assert_eq!(values_list(1, 2), "($1, $2)");
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
