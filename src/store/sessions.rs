//! The `agent_sessions` table (migration 0006): the stored image of each agent session's state
//! machine ([`crate::dialer::session`]), the disposition and handle-time columns of `attempts`
//! (migration 0010), and the history a predictive pacer is rebuilt from after a restart
//! ([`Store::pacer_history`]).
//!
//! The runner that holds a session's agent leg is the only writer of its row while it lives
//! ([`Store::update_session`] writes the whole image after every change). On start-up a node
//! marks its own live sessions paused ([`Store::pause_live_sessions`]): the agent legs died
//! with the previous process, so the sessions come back paused (issue 5, "Crash safety").

use super::calls::parse_opt;
use super::{Store, StoreError, micros, on_pool};
use crate::campaign::AttemptOutcome;
use crate::dialer::SessionEndReason;
use crate::dialer::session::{SessionCounts, SessionState};
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long an agent handled a customer: talking, then in wrap-up until the disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleTime {
    /// Customer bridged to hang-up.
    pub talk: Duration,
    /// Hang-up to disposition.
    pub wrap_up: Duration,
}

/// A finished attempt as the predictive pacer sees it ([`Store::pacer_history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerAttempt {
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Its outcome.
    pub outcome: AttemptOutcome,
    /// Start to the person's answer (people: human, abandoned), or to the end (the rest).
    pub resolved_after: Duration,
}

/// A campaign's stored history for its predictive pacer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacerHistory {
    /// Finished attempts in the order they ended.
    pub attempts: Vec<PacerAttempt>,
    /// Handle times of the latest dispositions, oldest first.
    pub handles: Vec<HandleTime>,
}

#[derive(sqlx::FromRow)]
struct PacerAttemptRow {
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    outcome: Option<String>,
    answered_at: Option<DateTime<Utc>>,
}

/// A session to insert (state `connecting`).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// The campaign it works on.
    pub campaign_id: Uuid,
    /// A configured agent name, or a `sip:` URI.
    pub agent: String,
    /// The node that calls the agent and holds the leg.
    pub node: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Campaign.
    pub campaign_id: Uuid,
    /// A configured agent name, or a `sip:` URI.
    pub agent: String,
    /// State (with the end reason when ended).
    pub state: SessionState,
    /// The attempt on the call or in wrap-up.
    pub current_attempt_id: Option<Uuid>,
    /// Its contact.
    pub current_contact_id: Option<Uuid>,
    /// The call to the agent (the session's leg), once placed.
    pub agent_call_id: Option<Uuid>,
    /// Running totals.
    pub counts: SessionCounts,
    /// The node holding the agent's leg.
    pub node: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
}

/// What [`Store::update_session`] writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionUpdate {
    /// The new state.
    pub state: SessionState,
    /// The attempt on the call or in wrap-up.
    pub current_attempt_id: Option<Uuid>,
    /// Its contact.
    pub current_contact_id: Option<Uuid>,
    /// The call to the agent.
    pub agent_call_id: Option<Uuid>,
    /// Running totals.
    pub counts: SessionCounts,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    campaign_id: Uuid,
    agent: String,
    state: String,
    ended_reason: Option<String>,
    current_attempt_id: Option<Uuid>,
    current_contact_id: Option<Uuid>,
    agent_call_id: Option<Uuid>,
    calls: i64,
    dispositions: i64,
    skipped: i64,
    talk_ms: i64,
    wrap_up_ms: i64,
    node: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, campaign_id, agent, state, ended_reason, current_attempt_id, \
    current_contact_id, agent_call_id, calls, dispositions, skipped, talk_ms, wrap_up_ms, node, \
    created_at, updated_at, ended_at";

/// The stored text of a live state (`None` for `ended`, stored as `ended` + reason).
fn parse_live(s: &str) -> Option<SessionState> {
    Some(match s {
        "connecting" => SessionState::Connecting,
        "available" => SessionState::Available,
        "dialing" => SessionState::Dialing,
        "on-call" => SessionState::OnCall,
        "wrap-up" => SessionState::WrapUp,
        "paused" => SessionState::Paused,
        _ => return None,
    })
}

fn count(column: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        column,
        value: v.to_string(),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

impl TryFrom<Row> for SessionRow {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let reason = parse_opt("ended_reason", r.ended_reason, |s| {
            s.parse::<SessionEndReason>().ok()
        })?;
        let state = match (r.state.as_str(), reason) {
            ("ended", Some(reason)) => SessionState::Ended(reason),
            (s, None) => parse_live(s).ok_or_else(|| StoreError::Corrupt {
                column: "state",
                value: r.state.clone(),
            })?,
            _ => {
                return Err(StoreError::Corrupt {
                    column: "state",
                    value: r.state,
                });
            }
        };
        Ok(SessionRow {
            id: r.id,
            campaign_id: r.campaign_id,
            agent: r.agent,
            state,
            current_attempt_id: r.current_attempt_id,
            current_contact_id: r.current_contact_id,
            agent_call_id: r.agent_call_id,
            counts: SessionCounts {
                calls: count("calls", r.calls)?,
                dispositions: count("dispositions", r.dispositions)?,
                skipped: count("skipped", r.skipped)?,
                talk: duration(r.talk_ms),
                wrap_up: duration(r.wrap_up_ms),
            },
            node: r.node,
            created_at: r.created_at,
            updated_at: r.updated_at,
            ended_at: r.ended_at,
        })
    }
}

fn reason_of(state: SessionState) -> Option<&'static str> {
    match state {
        SessionState::Ended(r) => Some(r.as_str()),
        _ => None,
    }
}

impl Store {
    /// Inserts a session in state `connecting`.
    pub async fn insert_session(&self, s: &NewSession) -> Result<SessionRow, StoreError> {
        let sql = format!(
            "INSERT INTO agent_sessions (id, campaign_id, agent, state, node, created_at, \
             updated_at) VALUES ($1, $2, $3, 'connecting', $4, $5, $5) RETURNING {COLUMNS}"
        );
        let row: Row = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(s.id)
            .bind(s.campaign_id)
            .bind(&s.agent)
            .bind(&s.node)
            .bind(micros(s.created_at))
            .fetch_one(p)
            .await?);
        row.try_into()
    }

    /// A session by id.
    pub async fn get_session(&self, id: Uuid) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM agent_sessions WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(SessionRow::try_from).transpose()
    }

    /// A campaign's sessions, oldest first (ended ones too).
    pub async fn list_sessions(&self, campaign_id: Uuid) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM agent_sessions WHERE campaign_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(campaign_id)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(SessionRow::try_from).collect()
    }

    /// Writes a session's state, current call and totals at `now`; entering `ended` sets
    /// `ended_at`. An ended session is never changed again: `None` then, or when unknown.
    pub async fn update_session(
        &self,
        id: Uuid,
        u: &SessionUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!(
            "UPDATE agent_sessions SET state = $2, ended_reason = $3, current_attempt_id = $4, \
             current_contact_id = $5, agent_call_id = $6, calls = $7, dispositions = $8, \
             skipped = $9, talk_ms = $10, wrap_up_ms = $11, updated_at = $12, \
             ended_at = CASE WHEN $2 = 'ended' THEN $12 ELSE ended_at END \
             WHERE id = $1 AND state <> 'ended' RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .bind(u.state.as_str())
            .bind(reason_of(u.state))
            .bind(u.current_attempt_id)
            .bind(u.current_contact_id)
            .bind(u.agent_call_id)
            .bind(i64::from(u.counts.calls))
            .bind(i64::from(u.counts.dispositions))
            .bind(i64::from(u.counts.skipped))
            .bind(millis(u.counts.talk))
            .bind(millis(u.counts.wrap_up))
            .bind(micros(now))
            .fetch_optional(p)
            .await?);
        row.map(SessionRow::try_from).transpose()
    }

    /// Start-up: every live session of `node` that is not paused becomes paused (its agent leg
    /// died with the previous process; the call to it is forgotten). Returns the sessions now
    /// paused that were live before, oldest first, with the state they were in.
    pub async fn pause_live_sessions(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(SessionRow, SessionState)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM agent_sessions WHERE node = $1 AND state <> 'ended' \
             ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(node)
            .fetch_all(p)
            .await?);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let before = SessionRow::try_from(row)?;
            let was = before.state;
            let u = SessionUpdate {
                state: SessionState::Paused,
                current_attempt_id: None,
                current_contact_id: None,
                agent_call_id: None,
                counts: before.counts,
            };
            if let Some(after) = self.update_session(before.id, &u, now).await? {
                out.push((after, was));
            }
        }
        Ok(out)
    }

    /// Every session of `node` that has not ended, oldest first.
    pub async fn live_sessions(&self, node: &str) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM agent_sessions WHERE node = $1 AND state <> 'ended' \
             ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(node)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(SessionRow::try_from).collect()
    }

    /// Marks an attempt as placed for a session.
    pub async fn set_attempt_session(
        &self,
        attempt_id: Uuid,
        session_id: Uuid,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE attempts SET session_id = $2 WHERE id = $1"
        )
        .bind(attempt_id)
        .bind(session_id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Stores the agent's disposition on an attempt, with the call's talk and wrap-up time
    /// when known; false if the attempt is unknown.
    pub async fn set_attempt_disposition(
        &self,
        attempt_id: Uuid,
        disposition: &str,
        handle: Option<HandleTime>,
    ) -> Result<bool, StoreError> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE attempts SET disposition = $2, talk_ms = $3, wrap_up_ms = $4 WHERE id = $1"
        )
        .bind(attempt_id)
        .bind(disposition)
        .bind(handle.map(|h| ms(h.talk)))
        .bind(handle.map(|h| ms(h.wrap_up)))
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// What a campaign's predictive pacer learns from, read back after a restart: every
    /// attempt finished since `since` (all nodes'), in the order they ended, and the handle
    /// times of the latest `handles` dispositions, oldest first.
    pub async fn pacer_history(
        &self,
        campaign_id: Uuid,
        since: DateTime<Utc>,
        handles: usize,
    ) -> Result<PacerHistory, StoreError> {
        let rows: Vec<PacerAttemptRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT a.started_at, a.ended_at, a.outcome, c.answered_at \
             FROM attempts a LEFT JOIN calls c ON c.id = a.call_id \
             WHERE a.campaign_id = $1 AND a.ended_at >= $2 AND a.outcome IS NOT NULL \
             ORDER BY a.ended_at, a.id"
        )
        .bind(campaign_id)
        .bind(micros(since))
        .fetch_all(p)
        .await?);
        let mut out = PacerHistory::default();
        for r in rows {
            let Some(outcome) = parse_opt("outcome", r.outcome, AttemptOutcome::parse)? else {
                continue;
            };
            let human = matches!(outcome, AttemptOutcome::Human | AttemptOutcome::Abandoned);
            // Dial to the person for people, dial to the end for everything else (as the
            // runner measures it live).
            let resolved = match (human, r.answered_at) {
                (true, Some(at)) => at,
                _ => r.ended_at,
            };
            out.attempts.push(PacerAttempt {
                ended_at: r.ended_at,
                outcome,
                resolved_after: (resolved - r.started_at).to_std().unwrap_or_default(),
            });
        }
        let limit = i64::try_from(handles).unwrap_or(i64::MAX);
        let handle_rows: Vec<(i64, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT talk_ms, wrap_up_ms FROM attempts \
             WHERE campaign_id = $1 AND talk_ms IS NOT NULL AND wrap_up_ms IS NOT NULL \
             ORDER BY ended_at DESC, id DESC LIMIT $2"
        )
        .bind(campaign_id)
        .bind(limit)
        .fetch_all(p)
        .await?);
        let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        out.handles = handle_rows
            .into_iter()
            .rev()
            .map(|(talk, wrap_up)| HandleTime {
                talk: ms(talk),
                wrap_up: ms(wrap_up),
            })
            .collect();
        Ok(out)
    }

    /// An attempt's session and disposition (`None` if the attempt is unknown).
    pub async fn attempt_disposition(
        &self,
        attempt_id: Uuid,
    ) -> Result<Option<(Option<Uuid>, Option<String>)>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT session_id, disposition FROM attempts WHERE id = $1"
        )
        .bind(attempt_id)
        .fetch_optional(p)
        .await?))
    }
}
