//! A campaign's live figures (`GET /v1/campaigns/{id}/stats`), computed from the stored rows
//! on each request: contacts by status, attempts by outcome, AMD verdicts, calls started in the
//! last minute, answer and abandon rates, average talk and wrap-up time, agents by state.
//! Nothing is kept in memory, so the
//! figures are the same on every node and after a restart.

use super::{Store, StoreError, micros, on_pool};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A campaign's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignStats {
    /// Contacts of the campaign's list by status (`pending`, `dialing`, `done`, …).
    pub contacts: BTreeMap<String, u64>,
    /// Attempts by outcome; attempts still in flight count as `in-flight`.
    pub attempts: BTreeMap<String, u64>,
    /// Attempts by AMD verdict (`human`, `machine_end_beep`, …), where AMD ran.
    pub amd: BTreeMap<String, u64>,
    /// Attempts started in the last 60 seconds.
    pub calls_last_minute: u64,
    /// Answered (person, machine, fax, abandoned) over finished attempts, not counting
    /// cancelled ones; `null` before the first finished attempt.
    pub answer_rate: Option<f64>,
    /// Abandoned over person-answered (`human` + `abandoned`) attempts started since 00:00
    /// UTC today; `null` when there were none.
    pub abandon_rate_today: Option<f64>,
    /// The same over the last 30 days (the rolling window the predictive pacer keeps ≤ 3 %).
    pub abandon_rate_30d: Option<f64>,
    /// Mean duration of the calls answered by a person, in milliseconds.
    pub average_talk_ms: Option<f64>,
    /// Mean wrap-up time per disposition over the campaign's agent sessions, in milliseconds.
    pub average_wrap_up_ms: Option<f64>,
    /// Live agent sessions by state (`available`, `dialing`, `on-call`, `wrap-up`, `paused`,
    /// `connecting`).
    pub agents: BTreeMap<String, u64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// The figures of campaign `id` (whose contacts are in `list_id`) at `now`.
    pub async fn campaign_stats(
        &self,
        id: Uuid,
        list_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<CampaignStats, StoreError> {
        let mut s = CampaignStats::default();
        if let Some(list) = list_id {
            for (status, n) in self.contact_counts(list).await? {
                s.contacts.insert(status.as_str().to_string(), n);
            }
        }
        let rows: Vec<(Option<String>, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = $1 GROUP BY outcome"
        )
        .bind(id)
        .fetch_all(p)
        .await?);
        for (outcome, n) in rows {
            let key = outcome.unwrap_or_else(|| "in-flight".into());
            *s.attempts.entry(key).or_default() += to_u64(n);
        }
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT amd_verdict, COUNT(*) FROM attempts WHERE campaign_id = $1 \
             AND amd_verdict IS NOT NULL GROUP BY amd_verdict"
        )
        .bind(id)
        .fetch_all(p)
        .await?);
        s.amd = rows.into_iter().map(|(v, n)| (v, to_u64(n))).collect();
        s.calls_last_minute = self
            .attempts_started_since(id, now - TimeDelta::seconds(60))
            .await?;
        let count = |k: &str| s.attempts.get(k).copied().unwrap_or(0);
        let finished: u64 = s
            .attempts
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "in-flight" | "cancelled"))
            .map(|(_, n)| n)
            .sum();
        let answered = count("human") + count("machine") + count("fax") + count("abandoned");
        s.answer_rate = ratio(answered, finished);
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        s.abandon_rate_today = self.abandon_rate_since(id, today).await?;
        s.abandon_rate_30d = self
            .abandon_rate_since(id, now - TimeDelta::days(30))
            .await?;
        let (sum, n): (Option<i64>, i64) = on_pool!(self, |p| sqlx::query_as(
            "SELECT CAST(SUM(duration_ms) AS BIGINT), COUNT(duration_ms) FROM attempts \
             WHERE campaign_id = $1 AND outcome = 'human'"
        )
        .bind(id)
        .fetch_one(p)
        .await?);
        s.average_talk_ms = ratio(to_u64(sum.unwrap_or(0)), to_u64(n));
        let (wrap, dispositions): (Option<i64>, Option<i64>) = on_pool!(self, |p| sqlx::query_as(
            "SELECT CAST(SUM(wrap_up_ms) AS BIGINT), CAST(SUM(dispositions) AS BIGINT) \
             FROM agent_sessions WHERE campaign_id = $1"
        )
        .bind(id)
        .fetch_one(p)
        .await?);
        s.average_wrap_up_ms = ratio(to_u64(wrap.unwrap_or(0)), to_u64(dispositions.unwrap_or(0)));
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT state, COUNT(*) FROM agent_sessions WHERE campaign_id = $1 \
             AND state <> 'ended' GROUP BY state"
        )
        .bind(id)
        .fetch_all(p)
        .await?);
        s.agents = rows.into_iter().map(|(st, n)| (st, to_u64(n))).collect();
        Ok(s)
    }

    /// Abandoned over person-answered attempts started since `since`.
    async fn abandon_rate_since(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Option<f64>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = $1 \
             AND started_at >= $2 AND outcome IN ('human', 'abandoned') GROUP BY outcome"
        )
        .bind(id)
        .bind(micros(since))
        .fetch_all(p)
        .await?);
        let (mut human, mut abandoned) = (0, 0);
        for (o, n) in rows {
            if o == "abandoned" {
                abandoned += to_u64(n);
            } else {
                human += to_u64(n);
            }
        }
        Ok(ratio(abandoned, human + abandoned))
    }
}
