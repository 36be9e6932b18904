//! The `calls` table: one row per call with its whole life (created, ringing, answered, ended),
//! its end (final status, SIP code and reason, which side ended it) and its RTP counters.

use super::{Store, StoreError, micros, on_pool};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most calls returned by one [`Store::list_calls`] page.
pub const MAX_LIST_LIMIT: u32 = 500;
/// Page size when [`CallFilter::limit`] is not given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v),+
        }
        impl $name {
            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            /// Parses the stored and wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
/// Shared with the other tables' status enums (recordings, conferences).
pub(crate) use text_enum;

text_enum!(
    /// Which way a call goes.
    Direction {
        /// Received from a trunk or a softphone.
        Inbound = "inbound",
        /// Placed by us (API or dialer).
        Outbound = "outbound",
    }
);

text_enum!(
    /// Where a call is in its life (Twilio's names). The last five are final and equal
    /// [`FinalStatus`].
    CallStatus {
        /// Accepted, not yet sent.
        Queued = "queued",
        /// INVITE sent (outbound) or received (inbound).
        Initiated = "initiated",
        /// The far end is ringing (180/183).
        Ringing = "ringing",
        /// Answered, media flowing.
        InProgress = "in-progress",
        /// Answered, then ended normally.
        Completed = "completed",
        /// The far end was busy (486/600).
        Busy = "busy",
        /// Nobody answered before the ring timeout.
        NoAnswer = "no-answer",
        /// Could not be placed or failed (other 4xx-6xx, timeouts, media failure).
        Failed = "failed",
        /// Cancelled by us before it was answered.
        Canceled = "canceled",
    }
);

text_enum!(
    /// How a call ended; every call gets exactly one.
    FinalStatus {
        /// Answered, then ended normally.
        Completed = "completed",
        /// The far end was busy.
        Busy = "busy",
        /// Nobody answered before the ring timeout.
        NoAnswer = "no-answer",
        /// Could not be placed or failed.
        Failed = "failed",
        /// Cancelled before it was answered.
        Canceled = "canceled",
    }
);

text_enum!(
    /// Which side ended a call.
    EndedBy {
        /// The calling party (BYE or CANCEL from the caller).
        Caller = "caller",
        /// The called party (BYE or a final error response).
        Callee = "callee",
        /// An API request (`POST /v1/calls/{id}/hangup`).
        Api = "api",
        /// trunkline itself (ring timeout, no media, shutdown).
        System = "system",
    }
);

impl From<FinalStatus> for CallStatus {
    fn from(f: FinalStatus) -> Self {
        match f {
            FinalStatus::Completed => CallStatus::Completed,
            FinalStatus::Busy => CallStatus::Busy,
            FinalStatus::NoAnswer => CallStatus::NoAnswer,
            FinalStatus::Failed => CallStatus::Failed,
            FinalStatus::Canceled => CallStatus::Canceled,
        }
    }
}

/// RTP counters of a call, kept by its media session and written when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RtpStats {
    /// RTP packets received.
    pub packets_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Packets lost (sequence gaps never filled).
    pub packets_lost: u64,
    /// Packets that arrived too late for the jitter buffer.
    pub packets_late: u64,
    /// Interarrival jitter (RFC 3550 sec. 6.4.1), milliseconds.
    pub jitter_ms: f64,
}

/// A call to insert.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Calling party (E.164 number or SIP URI).
    pub from: String,
    /// Called party.
    pub to: String,
    /// Trunk name, if the call uses one.
    pub trunk: Option<String>,
    /// SIP Call-ID, once known.
    pub sip_call_id: Option<String>,
    /// Starting status (normally `queued` or `initiated`).
    pub status: CallStatus,
    /// Status callback URL (webhooks for this call).
    pub status_callback: Option<String>,
    /// Free-form JSON given by the API client.
    pub metadata: serde_json::Value,
    /// `Idempotency-Key` of the request that created it.
    pub idempotency_key: Option<String>,
    /// API key that created it.
    pub api_key_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A stored call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Calling party.
    pub from: String,
    /// Called party.
    pub to: String,
    /// Trunk name.
    pub trunk: Option<String>,
    /// SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// Current status.
    pub status: CallStatus,
    /// Final status, set once when the call ends.
    pub final_status: Option<FinalStatus>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// First ringing time.
    pub ringing_at: Option<DateTime<Utc>>,
    /// Answer time.
    pub answered_at: Option<DateTime<Utc>>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
    /// Answered duration in milliseconds (0 if never answered), set when the call ends.
    pub duration_ms: Option<i64>,
    /// SIP status code of the end (e.g. 486), if any.
    pub end_sip_code: Option<u16>,
    /// Reason phrase or internal reason of the end.
    pub end_reason: Option<String>,
    /// Which side ended it.
    pub ended_by: Option<EndedBy>,
    /// RTP counters (zero until the call ends).
    pub rtp: RtpStats,
    /// Status callback URL.
    pub status_callback: Option<String>,
    /// Free-form JSON metadata.
    pub metadata: serde_json::Value,
    /// `Idempotency-Key` of the creating request.
    pub idempotency_key: Option<String>,
    /// API key that created it.
    pub api_key_id: Option<Uuid>,
    /// Answering-machine detection verdict, once reached (the last one written wins, so a
    /// final verdict replaces an interim `machine_start`).
    pub amd: Option<AmdRow>,
    /// The conference the call is in, if any.
    pub conference_id: Option<Uuid>,
}

/// The answering-machine detection verdict stored on a call row (`amd_*` columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmdRow {
    /// Verdict name: `human`, `machine_start`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax` or `unknown` (not checked by the database, so a newer
    /// detector's verdict can be stored).
    pub result: String,
    /// Confidence in 0..=1.
    pub confidence: f64,
    /// Milliseconds from the answer to the verdict.
    pub decision_ms: Option<i64>,
    /// Milliseconds from the answer to the start of the beep, when there was one.
    pub beep_ms: Option<i64>,
    /// Milliseconds from the answer to the earliest moment a voicemail drop may start.
    pub drop_ms: Option<i64>,
}

/// Filters and paging of [`Store::list_calls`]. Pages run newest first.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only calls with this status.
    pub status: Option<CallStatus>,
    /// Only calls in this direction.
    pub direction: Option<Direction>,
    /// Only calls created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only calls created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1..=[`MAX_LIST_LIMIT`] (clamped); default [`DEFAULT_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallPage {
    /// The calls, newest first.
    pub calls: Vec<Call>,
    /// Opaque cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Marks a call ringing once, only before it is answered or ended (`mark_ringing`, batches).
pub(super) const MARK_RINGING_SQL: &str = "UPDATE calls SET status = 'ringing', ringing_at = $2 \
     WHERE id = $1 AND ringing_at IS NULL AND answered_at IS NULL AND final_status IS NULL";
/// Marks a call answered once, only before it ended (`mark_answered`, batches).
pub(super) const MARK_ANSWERED_SQL: &str = "UPDATE calls SET status = 'in-progress', answered_at = $2 \
     WHERE id = $1 AND answered_at IS NULL AND final_status IS NULL";
/// Sets the final status once, with the end and the RTP counters; returns the answer time so
/// the duration can follow (`finish_call`, batches).
pub(super) const FINISH_SQL: &str = "UPDATE calls SET status = $2, final_status = $2, end_sip_code = $3, \
     end_reason = $4, ended_by = $5, ended_at = $6, rtp_packets_in = $7, rtp_packets_out = $8, \
     rtp_packets_lost = $9, rtp_packets_late = $10, rtp_jitter_ms = $11 \
     WHERE id = $1 AND final_status IS NULL RETURNING answered_at";
/// Sets the answered duration after [`FINISH_SQL`].
pub(super) const SET_DURATION_SQL: &str = "UPDATE calls SET duration_ms = $2 WHERE id = $1";
/// Writes the AMD verdict, whatever the call's state (`set_call_amd`, batches).
pub(super) const SET_AMD_SQL: &str = "UPDATE calls SET amd_result = $2, amd_confidence = $3, \
     amd_decision_ms = $4, amd_beep_ms = $5, amd_drop_ms = $6 WHERE id = $1";

#[derive(sqlx::FromRow)]
struct CallRow {
    id: Uuid,
    direction: String,
    from_addr: String,
    to_addr: String,
    trunk: Option<String>,
    sip_call_id: Option<String>,
    status: String,
    final_status: Option<String>,
    created_at: DateTime<Utc>,
    ringing_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    end_sip_code: Option<i32>,
    end_reason: Option<String>,
    ended_by: Option<String>,
    rtp_packets_in: i64,
    rtp_packets_out: i64,
    rtp_packets_lost: i64,
    rtp_packets_late: i64,
    rtp_jitter_ms: f64,
    status_callback: Option<String>,
    metadata: serde_json::Value,
    idempotency_key: Option<String>,
    api_key_id: Option<Uuid>,
    amd_result: Option<String>,
    amd_confidence: Option<f64>,
    amd_decision_ms: Option<i64>,
    amd_beep_ms: Option<i64>,
    amd_drop_ms: Option<i64>,
    conference_id: Option<Uuid>,
}

pub(super) fn parse_col<T>(
    column: &'static str,
    s: String,
    f: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    f(&s).ok_or(StoreError::Corrupt { column, value: s })
}

pub(super) fn parse_opt<T>(
    column: &'static str,
    s: Option<String>,
    f: fn(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| parse_col(column, s, f)).transpose()
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn db_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl TryFrom<CallRow> for Call {
    type Error = StoreError;
    fn try_from(r: CallRow) -> Result<Self, StoreError> {
        Ok(Call {
            id: r.id,
            direction: parse_col("direction", r.direction, Direction::parse)?,
            from: r.from_addr,
            to: r.to_addr,
            trunk: r.trunk,
            sip_call_id: r.sip_call_id,
            status: parse_col("status", r.status, CallStatus::parse)?,
            final_status: parse_opt("final_status", r.final_status, FinalStatus::parse)?,
            created_at: r.created_at,
            ringing_at: r.ringing_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            duration_ms: r.duration_ms,
            end_sip_code: r.end_sip_code.and_then(|c| u16::try_from(c).ok()),
            end_reason: r.end_reason,
            ended_by: parse_opt("ended_by", r.ended_by, EndedBy::parse)?,
            rtp: RtpStats {
                packets_in: count(r.rtp_packets_in),
                packets_out: count(r.rtp_packets_out),
                packets_lost: count(r.rtp_packets_lost),
                packets_late: count(r.rtp_packets_late),
                jitter_ms: r.rtp_jitter_ms,
            },
            status_callback: r.status_callback,
            metadata: r.metadata,
            idempotency_key: r.idempotency_key,
            api_key_id: r.api_key_id,
            amd: r.amd_result.map(|result| AmdRow {
                result,
                confidence: r.amd_confidence.unwrap_or(0.0),
                decision_ms: r.amd_decision_ms,
                beep_ms: r.amd_beep_ms,
                drop_ms: r.amd_drop_ms,
            }),
            conference_id: r.conference_id,
        })
    }
}

const CALL_COLUMNS: &str = "id, direction, from_addr, to_addr, trunk, sip_call_id, status, \
    final_status, created_at, ringing_at, answered_at, ended_at, duration_ms, end_sip_code, \
    end_reason, ended_by, rtp_packets_in, rtp_packets_out, rtp_packets_lost, rtp_packets_late, \
    rtp_jitter_ms, status_callback, metadata, idempotency_key, api_key_id, amd_result, \
    amd_confidence, amd_decision_ms, amd_beep_ms, amd_drop_ms, conference_id";

/// Keyset position: the last row of a page, by `(created_at, id)` descending (calls,
/// recordings, conferences).
pub(super) fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    let raw = format!("{}|{}", created_at.timestamp_micros(), id.simple());
    URL_SAFE_NO_PAD.encode(raw)
}

pub(super) fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), StoreError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::InvalidCursor)?;
    let raw = std::str::from_utf8(&raw).map_err(|_| StoreError::InvalidCursor)?;
    let (ts, id) = raw.split_once('|').ok_or(StoreError::InvalidCursor)?;
    let ts: i64 = ts.parse().map_err(|_| StoreError::InvalidCursor)?;
    let ts = DateTime::from_timestamp_micros(ts).ok_or(StoreError::InvalidCursor)?;
    let id = Uuid::try_parse(id).map_err(|_| StoreError::InvalidCursor)?;
    Ok((ts, id))
}

impl Store {
    /// Inserts a call; an id that exists already is [`StoreError::Conflict`].
    pub async fn insert_call(&self, c: &NewCall) -> Result<Call, StoreError> {
        let sql = format!(
            "INSERT INTO calls (id, direction, from_addr, to_addr, trunk, sip_call_id, status, \
             created_at, status_callback, metadata, idempotency_key, api_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {CALL_COLUMNS}"
        );
        let row: CallRow = on_pool!(self, |p| {
            sqlx::query_as(&sql)
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
                .bind(c.api_key_id)
                .fetch_one(p)
                .await?
        });
        row.try_into()
    }

    /// A call by id.
    pub async fn get_call(&self, id: Uuid) -> Result<Option<Call>, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1");
        let row: Option<CallRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Call::try_from).transpose()
    }

    /// The call with this SIP Call-ID (the newest if several share it).
    pub async fn get_call_by_sip_call_id(
        &self,
        sip_call_id: &str,
    ) -> Result<Option<Call>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE sip_call_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let row: Option<CallRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(sip_call_id)
                .fetch_optional(p)
                .await?
        });
        row.map(Call::try_from).transpose()
    }

    /// `queued` → `initiated` (INVITE sent), recording the SIP Call-ID if given. Returns whether
    /// the call moved (false if it was already past `queued` or unknown).
    pub async fn mark_initiated(
        &self,
        id: Uuid,
        sip_call_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE calls SET status = 'initiated', sip_call_id = COALESCE($2, sip_call_id) \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(sip_call_id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records the first ringing (180/183). Returns whether anything changed: false if it
    /// already rang, was answered or ended, or is unknown.
    pub async fn mark_ringing(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(MARK_RINGING_SQL)
                .bind(id)
                .bind(micros(at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records the answer (2xx). Returns whether anything changed: false if already answered,
    /// ended, or unknown.
    pub async fn mark_answered(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(MARK_ANSWERED_SQL)
                .bind(id)
                .bind(micros(at))
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Ends a call: sets its final status (once only), end code, reason, side, RTP counters, end
    /// time and answered duration. Idempotent: returns true for the call that set the final
    /// status, false (and changes nothing) if the call had already ended or is unknown.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_call(
        &self,
        id: Uuid,
        status: FinalStatus,
        sip_code: Option<u16>,
        reason: Option<&str>,
        ended_by: EndedBy,
        stats: &RtpStats,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = micros(at);
        let done = on_pool!(self, |p| {
            // The final status is set by the first statement (a write, so SQLite takes the write
            // lock at once); the duration needs the answer time it returns.
            let mut tx = p.begin().await?;
            let answered: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(FINISH_SQL)
                .bind(id)
                .bind(status.as_str())
                .bind(sip_code.map(i32::from))
                .bind(reason)
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
                        .bind(id)
                        .bind(duration_ms)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    true
                }
            }
        });
        Ok(done)
    }

    /// Stores the AMD verdict on the call row, replacing an earlier one (an interim
    /// `machine_start` is followed by the final verdict). Returns whether the call exists.
    pub async fn set_call_amd(&self, call_id: Uuid, amd: &AmdRow) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query(SET_AMD_SQL)
                .bind(call_id)
                .bind(&amd.result)
                .bind(amd.confidence)
                .bind(amd.decision_ms)
                .bind(amd.beep_ms)
                .bind(amd.drop_ms)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Sets (or, with `None`, clears) the conference a call is in. Returns whether the call
    /// exists.
    pub async fn set_call_conference(
        &self,
        call_id: Uuid,
        conference_id: Option<Uuid>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |p| {
            sqlx::query("UPDATE calls SET conference_id = $2 WHERE id = $1")
                .bind(call_id)
                .bind(conference_id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// A page of calls, newest first, by keyset pagination on `(created_at, id)`: a page is
    /// stable while new calls arrive, and each page costs one index range scan.
    pub async fn list_calls(&self, f: &CallFilter) -> Result<CallPage, StoreError> {
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
            "SELECT {CALL_COLUMNS} FROM calls \
             WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR direction = $2) \
             AND ($3 IS NULL OR created_at >= $3) \
             AND ($4 IS NULL OR created_at < $4) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $7"
        );
        let rows: Vec<CallRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(f.status.map(CallStatus::as_str))
                .bind(f.direction.map(Direction::as_str))
                .bind(f.since.map(micros))
                .bind(f.until.map(micros))
                .bind(cur_ts)
                .bind(cur_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?
        });
        let mut calls = rows
            .into_iter()
            .map(Call::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if calls.len() > limit as usize {
            calls.truncate(limit as usize);
            calls.last().map(|c| encode_cursor(c.created_at, c.id))
        } else {
            None
        };
        Ok(CallPage { calls, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let t = DateTime::from_timestamp_micros(1_763_000_000_123_456).unwrap();
        let id = Uuid::from_u128(0x0123_4567_89ab_7def_8123_4567_89ab_cdef);
        assert_eq!(decode_cursor(&encode_cursor(t, id)).unwrap(), (t, id));
        for bad in ["", "!!", "YWJj", &URL_SAFE_NO_PAD.encode("1|nope")] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::InvalidCursor)),
                "{bad}"
            );
        }
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        for s in [
            "queued",
            "initiated",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "no-answer",
            "failed",
            "canceled",
        ] {
            assert_eq!(CallStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(
            CallStatus::from(FinalStatus::NoAnswer),
            CallStatus::NoAnswer
        );
        assert_eq!(
            serde_json::to_string(&CallStatus::InProgress).unwrap(),
            "\"in-progress\""
        );
        assert!(EndedBy::parse("nobody").is_none());
    }
}
