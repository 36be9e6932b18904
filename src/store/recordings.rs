//! The `recordings` table: one row per recording (of a call or of a conference), written when it
//! starts, updated on pause/resume and once when it ends with the file's summary.
//!
//! A recording whose process died is left `recording` or `paused`:
//! [`Store::unfinished_recordings`] finds those at start-up so their files are repaired and the
//! rows finished as `interrupted`. Paths are relative to the recordings folder, so the folder
//! can move; the API serves a recording by id, never by path.

use super::calls::{decode_cursor, encode_cursor, parse_col, text_enum};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, micros, on_pool};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

text_enum!(
    /// Where a recording is in its life. `recording` and `paused` are live; the other three
    /// are final and set once.
    RecordingStatus {
        /// Frames are being written.
        Recording = "recording",
        /// Paused by the API: frames are not written.
        Paused = "paused",
        /// Stopped normally, file finalized.
        Completed = "completed",
        /// The process died while it was live; the file was repaired at the next start.
        Interrupted = "interrupted",
        /// Writing failed (see the error).
        Failed = "failed",
    }
);

impl RecordingStatus {
    /// Whether the recording may still change (`recording` or `paused`).
    pub fn is_live(self) -> bool {
        matches!(self, RecordingStatus::Recording | RecordingStatus::Paused)
    }
}

/// A recording to insert (its status starts as `recording`).
#[derive(Debug, Clone)]
pub struct NewRecording {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// The call recorded, for a call recording.
    pub call_id: Option<Uuid>,
    /// The conference recorded, for a conference recording.
    pub conference_id: Option<Uuid>,
    /// File path relative to the recordings folder.
    pub path: String,
    /// Audio channels (2: left = far end, right = our side).
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When the row is created.
    pub created_at: DateTime<Utc>,
    /// The node writing the file (`None`: not recorded).
    pub node: Option<String>,
}

/// How a recording ended: the summary of its file, written once by
/// [`Store::finish_recording`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummaryRow {
    /// Final status: `completed`, `interrupted` or `failed`.
    pub status: RecordingStatus,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Audio length in milliseconds, if a file exists.
    pub duration_ms: Option<i64>,
    /// File size in bytes, if a file exists.
    pub size_bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the file, if a file exists.
    pub sha256: Option<String>,
    /// Why it failed (or what the repair found).
    pub error: Option<String>,
}

/// A stored recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    /// Id (UUID v7).
    pub id: Uuid,
    /// The call recorded.
    pub call_id: Option<Uuid>,
    /// The conference recorded.
    pub conference_id: Option<Uuid>,
    /// File path relative to the recordings folder.
    pub path: String,
    /// Current status.
    pub status: RecordingStatus,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, once ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Audio length in milliseconds, once ended.
    pub duration_ms: Option<i64>,
    /// File size in bytes, once ended.
    pub size_bytes: Option<u64>,
    /// Audio channels.
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Lowercase hex SHA-256 of the file, once ended.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Row creation time.
    pub created_at: DateTime<Utc>,
}

/// Filters and paging of [`Store::list_recordings`]. Pages run newest first.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// Only recordings of this call.
    pub call_id: Option<Uuid>,
    /// Only recordings of this conference.
    pub conference_id: Option<Uuid>,
    /// Only recordings with this status.
    pub status: Option<RecordingStatus>,
    /// Page size, 1..=[`MAX_LIST_LIMIT`] (clamped); default [`DEFAULT_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of recordings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingPage {
    /// The recordings, newest first.
    pub recordings: Vec<Recording>,
    /// Opaque cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    id: Uuid,
    call_id: Option<Uuid>,
    conference_id: Option<Uuid>,
    path: String,
    status: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    size_bytes: Option<i64>,
    channels: i32,
    sample_rate: i32,
    sha256: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<RecordingRow> for Recording {
    type Error = StoreError;
    fn try_from(r: RecordingRow) -> Result<Self, StoreError> {
        Ok(Recording {
            id: r.id,
            call_id: r.call_id,
            conference_id: r.conference_id,
            path: r.path,
            status: parse_col("status", r.status, RecordingStatus::parse)?,
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes.map(|b| u64::try_from(b).unwrap_or(0)),
            channels: u16::try_from(r.channels).map_err(|_| StoreError::Corrupt {
                column: "channels",
                value: r.channels.to_string(),
            })?,
            sample_rate: u32::try_from(r.sample_rate).map_err(|_| StoreError::Corrupt {
                column: "sample_rate",
                value: r.sample_rate.to_string(),
            })?,
            sha256: r.sha256,
            error: r.error,
            created_at: r.created_at,
        })
    }
}

const RECORDING_COLUMNS: &str = "id, call_id, conference_id, path, status, started_at, ended_at, \
    duration_ms, size_bytes, channels, sample_rate, sha256, error, created_at";

fn rows_into(rows: Vec<RecordingRow>) -> Result<Vec<Recording>, StoreError> {
    rows.into_iter().map(Recording::try_from).collect()
}

impl Store {
    /// Inserts a recording with status `recording`; an id that exists already is
    /// [`StoreError::Conflict`].
    pub async fn insert_recording(&self, r: &NewRecording) -> Result<Recording, StoreError> {
        let sql = format!(
            "INSERT INTO recordings (id, call_id, conference_id, path, status, started_at, \
             channels, sample_rate, created_at, node) \
             VALUES ($1, $2, $3, $4, 'recording', $5, $6, $7, $8, $9) \
             RETURNING {RECORDING_COLUMNS}"
        );
        let row: RecordingRow = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(r.id)
                .bind(r.call_id)
                .bind(r.conference_id)
                .bind(&r.path)
                .bind(micros(r.started_at))
                .bind(i32::from(r.channels))
                // Sample rates are far below i32::MAX; saturate rather than wrap.
                .bind(i32::try_from(r.sample_rate).unwrap_or(i32::MAX))
                .bind(micros(r.created_at))
                .bind(&r.node)
                .fetch_one(p)
                .await?
        });
        row.try_into()
    }

    /// Pauses or resumes a live recording (`status` must be `recording` or `paused`; a final
    /// status is set by [`Store::finish_recording`], so one given here changes nothing).
    /// Returns whether the row is live and now has `status` (false for an ended or unknown
    /// recording).
    pub async fn set_recording_status(
        &self,
        id: Uuid,
        status: RecordingStatus,
    ) -> Result<bool, StoreError> {
        if !status.is_live() {
            return Ok(false);
        }
        let done = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE recordings SET status = $2 \
                 WHERE id = $1 AND status IN ('recording', 'paused')",
            )
            .bind(id)
            .bind(status.as_str())
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Ends a live recording with its file summary, once: returns true for the call that ended
    /// it, false (changing nothing) if it had already ended, is unknown, or `s.status` is not
    /// a final status.
    pub async fn finish_recording(
        &self,
        id: Uuid,
        s: &RecordingSummaryRow,
    ) -> Result<bool, StoreError> {
        if s.status.is_live() {
            return Ok(false);
        }
        let done = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE recordings SET status = $2, ended_at = $3, duration_ms = $4, \
                 size_bytes = $5, sha256 = $6, error = $7 \
                 WHERE id = $1 AND status IN ('recording', 'paused')",
            )
            .bind(id)
            .bind(s.status.as_str())
            .bind(micros(s.ended_at))
            .bind(s.duration_ms)
            .bind(s.size_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
            .bind(&s.sha256)
            .bind(&s.error)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// A recording by id.
    pub async fn get_recording(&self, id: Uuid) -> Result<Option<Recording>, StoreError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = $1");
        let row: Option<RecordingRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Recording::try_from).transpose()
    }

    /// A page of recordings, newest first, by keyset pagination on `(created_at, id)` as
    /// [`Store::list_calls`].
    pub async fn list_recordings(&self, f: &RecordingFilter) -> Result<RecordingPage, StoreError> {
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
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE ($1 IS NULL OR call_id = $1) \
             AND ($2 IS NULL OR conference_id = $2) \
             AND ($3 IS NULL OR status = $3) \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let rows: Vec<RecordingRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(f.call_id)
                .bind(f.conference_id)
                .bind(f.status.map(RecordingStatus::as_str))
                .bind(cur_ts)
                .bind(cur_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?
        });
        let mut recordings = rows_into(rows)?;
        let next_cursor = if recordings.len() > limit as usize {
            recordings.truncate(limit as usize);
            recordings.last().map(|r| encode_cursor(r.created_at, r.id))
        } else {
            None
        };
        Ok(RecordingPage {
            recordings,
            next_cursor,
        })
    }

    /// Deletes a recording's row and returns it (so the caller can remove its file), or `None`
    /// if there was none. The file is the caller's to remove.
    pub async fn delete_recording(&self, id: Uuid) -> Result<Option<Recording>, StoreError> {
        let sql = format!("DELETE FROM recordings WHERE id = $1 RETURNING {RECORDING_COLUMNS}");
        let row: Option<RecordingRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Recording::try_from).transpose()
    }

    /// Recordings still `recording` or `paused` that `node` must finish after its restart,
    /// oldest first: its own (no recorder of this node runs yet), those of no node, and any
    /// node's created before `stale_before` (that node is presumed gone). Their files are
    /// repaired and they finish as `interrupted`; another live node's are left alone.
    pub async fn unfinished_recordings(
        &self,
        node: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<Recording>, StoreError> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE status IN ('recording', 'paused') \
             AND (node = $1 OR node IS NULL OR created_at < $2) ORDER BY created_at, id"
        );
        let rows: Vec<RecordingRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(node)
            .bind(micros(stale_before))
            .fetch_all(p)
            .await?);
        rows_into(rows)
    }

    /// Up to `limit` ended recordings created before `cutoff`, oldest first (for the retention
    /// job). Live recordings are never returned, however old.
    pub async fn recordings_older_than(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Recording>, StoreError> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE created_at < $1 AND status NOT IN ('recording', 'paused') \
             ORDER BY created_at, id LIMIT $2"
        );
        let rows: Vec<RecordingRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(micros(cutoff))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?
        });
        rows_into(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spelling_round_trips() {
        for s in ["recording", "paused", "completed", "interrupted", "failed"] {
            assert_eq!(RecordingStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(RecordingStatus::parse("stopped").is_none());
        assert!(RecordingStatus::Paused.is_live());
        assert!(!RecordingStatus::Interrupted.is_live());
        assert_eq!(
            serde_json::to_string(&RecordingStatus::Completed).unwrap(),
            "\"completed\""
        );
    }
}
