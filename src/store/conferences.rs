//! The `conferences` table: one row per conference room (bridges included), written when the
//! engine creates it, marked started when the first `start_on_enter` participant joins, and
//! ended once.
//!
//! The engine owns live rooms; after a restart none is live any more, so
//! [`Store::unfinished_conferences`] finds the rows a previous process left open, to end them.

use super::calls::{decode_cursor, encode_cursor, parse_col, text_enum};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, micros, on_pool};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

text_enum!(
    /// Where a conference is in its life.
    ConferenceStatus {
        /// Created; participants hear the wait music until one with `start_on_enter` joins.
        Waiting = "waiting",
        /// Started: participants hear each other.
        Active = "active",
        /// Ended (final).
        Ended = "ended",
    }
);

/// A conference to insert (its status starts as `waiting`).
#[derive(Debug, Clone)]
pub struct NewConference {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// Name given by the API client.
    pub name: Option<String>,
    /// Most participants at once.
    pub max_participants: Option<u32>,
    /// Room options as given (beeps, wait and hold music, record, ...), kept as JSON.
    pub options: serde_json::Value,
    /// Status callback URL (webhooks for this conference).
    pub status_callback: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The node holding the room (`None`: not recorded).
    pub node: Option<String>,
}

/// A stored conference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conference {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Name given by the API client.
    pub name: Option<String>,
    /// Current status.
    pub status: ConferenceStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it started (first `start_on_enter` participant).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended (e.g. `api`, `end_on_exit`, `empty`, `restart`).
    pub end_reason: Option<String>,
    /// Most participants at once.
    pub max_participants: Option<u32>,
    /// Room options as given.
    pub options: serde_json::Value,
    /// Status callback URL.
    pub status_callback: Option<String>,
}

/// Filters and paging of [`Store::list_conferences`]. Pages run newest first.
#[derive(Debug, Clone, Default)]
pub struct ConferenceFilter {
    /// Only conferences with this status.
    pub status: Option<ConferenceStatus>,
    /// Only conferences with exactly this name.
    pub name: Option<String>,
    /// Page size, 1..=[`MAX_LIST_LIMIT`] (clamped); default [`DEFAULT_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of conferences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConferencePage {
    /// The conferences, newest first.
    pub conferences: Vec<Conference>,
    /// Opaque cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ConferenceRow {
    id: Uuid,
    name: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
    max_participants: Option<i32>,
    options: serde_json::Value,
    status_callback: Option<String>,
}

impl TryFrom<ConferenceRow> for Conference {
    type Error = StoreError;
    fn try_from(r: ConferenceRow) -> Result<Self, StoreError> {
        Ok(Conference {
            id: r.id,
            name: r.name,
            status: parse_col("status", r.status, ConferenceStatus::parse)?,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            max_participants: r
                .max_participants
                .map(|m| {
                    u32::try_from(m).map_err(|_| StoreError::Corrupt {
                        column: "max_participants",
                        value: m.to_string(),
                    })
                })
                .transpose()?,
            options: r.options,
            status_callback: r.status_callback,
        })
    }
}

const CONFERENCE_COLUMNS: &str = "id, name, status, created_at, started_at, ended_at, \
    end_reason, max_participants, options, status_callback";

fn rows_into(rows: Vec<ConferenceRow>) -> Result<Vec<Conference>, StoreError> {
    rows.into_iter().map(Conference::try_from).collect()
}

impl Store {
    /// Inserts a conference with status `waiting`; an id that exists already is
    /// [`StoreError::Conflict`].
    pub async fn insert_conference(&self, c: &NewConference) -> Result<Conference, StoreError> {
        let sql = format!(
            "INSERT INTO conferences (id, name, status, created_at, max_participants, options, \
             status_callback, node) VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7) \
             RETURNING {CONFERENCE_COLUMNS}"
        );
        let row: ConferenceRow = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(c.id)
                .bind(&c.name)
                .bind(micros(c.created_at))
                .bind(
                    c.max_participants
                        .map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
                )
                .bind(&c.options)
                .bind(&c.status_callback)
                .bind(&c.node)
                .fetch_one(p)
                .await?
        });
        row.try_into()
    }

    /// `waiting` → `active` at `at`, once. Returns whether it moved (false if already started,
    /// ended, or unknown).
    pub async fn mark_conference_started(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE conferences SET status = 'active', started_at = $2 \
                 WHERE id = $1 AND status = 'waiting'",
            )
            .bind(id)
            .bind(micros(at))
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Ends a conference (from `waiting` or `active`) once, with the time and reason. Returns
    /// true for the call that ended it, false (changing nothing) if it had ended already or is
    /// unknown.
    pub async fn end_conference(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE conferences SET status = 'ended', ended_at = $2, end_reason = $3 \
                 WHERE id = $1 AND status <> 'ended'",
            )
            .bind(id)
            .bind(micros(at))
            .bind(reason)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// A conference by id.
    pub async fn get_conference(&self, id: Uuid) -> Result<Option<Conference>, StoreError> {
        let sql = format!("SELECT {CONFERENCE_COLUMNS} FROM conferences WHERE id = $1");
        let row: Option<ConferenceRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Conference::try_from).transpose()
    }

    /// A page of conferences, newest first, by keyset pagination on `(created_at, id)` as
    /// [`Store::list_calls`].
    pub async fn list_conferences(
        &self,
        f: &ConferenceFilter,
    ) -> Result<ConferencePage, StoreError> {
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
            "SELECT {CONFERENCE_COLUMNS} FROM conferences \
             WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR name = $2) \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let rows: Vec<ConferenceRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(f.status.map(ConferenceStatus::as_str))
                .bind(f.name.as_deref())
                .bind(cur_ts)
                .bind(cur_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?
        });
        let mut conferences = rows_into(rows)?;
        let next_cursor = if conferences.len() > limit as usize {
            conferences.truncate(limit as usize);
            conferences
                .last()
                .map(|c| encode_cursor(c.created_at, c.id))
        } else {
            None
        };
        Ok(ConferencePage {
            conferences,
            next_cursor,
        })
    }

    /// Conferences not ended (`waiting` or `active`) that `node` must end after its restart,
    /// oldest first: its own, those of no node (written before nodes were recorded), and any
    /// node's created before `stale_before` (that node is presumed gone). Another live node's
    /// rooms are left alone.
    pub async fn unfinished_conferences(
        &self,
        node: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<Conference>, StoreError> {
        let sql = format!(
            "SELECT {CONFERENCE_COLUMNS} FROM conferences \
             WHERE status <> 'ended' AND (node = $1 OR node IS NULL OR created_at < $2) \
             ORDER BY created_at, id"
        );
        let rows: Vec<ConferenceRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(node)
            .bind(micros(stale_before))
            .fetch_all(p)
            .await?);
        rows_into(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spelling_round_trips() {
        for s in ["waiting", "active", "ended"] {
            assert_eq!(ConferenceStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(ConferenceStatus::parse("done").is_none());
    }
}
