//! The `campaigns` and `contact_lists` tables: campaign settings and state, and the lists their
//! contacts live in (contacts, the do-not-call list, attempts and the claim are in
//! `contacts.rs`).
//!
//! State changes are compare-and-set ([`Store::set_campaign_state`]): two API requests racing
//! to pause and complete one campaign cannot both win.

use super::calls::{decode_cursor, encode_cursor, parse_col};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, micros, on_pool};
use crate::campaign::{
    CallerIds, CampaignSettings, CampaignState, DialMode, OnHuman, OnMachine, RetryDelays,
    format_local_time, parse_local_time,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A campaign to insert (state `draft`).
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// Its id (from [`super::new_id`]).
    pub id: Uuid,
    /// Its settings (already validated).
    pub settings: CampaignSettings,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Settings.
    pub settings: CampaignSettings,
    /// State.
    pub state: CampaignState,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Completed.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Filters and paging of [`Store::list_campaigns`]; newest first.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    /// Only campaigns in this state.
    pub state: Option<CampaignState>,
    /// Page size (clamped to 1..=[`MAX_LIST_LIMIT`]).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of campaigns.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignPage {
    /// Newest first.
    pub campaigns: Vec<Campaign>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A contact list to insert.
#[derive(Debug, Clone)]
pub struct NewContactList {
    /// Its id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// ISO region of numbers imported without a country code.
    pub default_region: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A stored contact list.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactList {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// ISO region of numbers imported without a country code.
    pub default_region: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last renamed or imported into.
    pub updated_at: DateTime<Utc>,
}

/// One page of contact lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactListPage {
    /// Newest first.
    pub lists: Vec<ContactList>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: Uuid,
    name: String,
    list_id: Option<Uuid>,
    trunk: Option<String>,
    caller_ids: serde_json::Value,
    dial_mode: String,
    amd: serde_json::Value,
    on_machine: String,
    voicemail_prompt: Option<String>,
    abandon_prompt: Option<String>,
    on_human: String,
    bridge_to: Option<String>,
    on_human_url: Option<String>,
    record: bool,
    window_start: String,
    window_end: String,
    default_timezone: String,
    max_attempts: i64,
    retry_delays: serde_json::Value,
    rate_per_minute: Option<i64>,
    rate_per_hour: Option<i64>,
    max_concurrent: Option<i64>,
    lines_per_agent: f64,
    priority: i64,
    state: String,
    status_callback: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

fn corrupt(column: &'static str, value: impl ToString) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.to_string(),
    }
}

fn small(column: &'static str, v: Option<i64>) -> Result<Option<u32>, StoreError> {
    v.map(|v| u32::try_from(v).map_err(|_| corrupt(column, v)))
        .transpose()
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = StoreError;
    fn try_from(r: CampaignRow) -> Result<Self, StoreError> {
        let caller_ids: CallerIds = serde_json::from_value(r.caller_ids.clone())
            .map_err(|_| corrupt("caller_ids", &r.caller_ids))?;
        let retry_delays: RetryDelays = serde_json::from_value(r.retry_delays.clone())
            .map_err(|_| corrupt("retry_delays", &r.retry_delays))?;
        let settings = CampaignSettings {
            name: r.name,
            list_id: r.list_id,
            trunk: r.trunk,
            caller_ids,
            dial_mode: parse_col("dial_mode", r.dial_mode, DialMode::parse)?,
            amd: r.amd,
            on_machine: parse_col("on_machine", r.on_machine, OnMachine::parse)?,
            voicemail_prompt: r.voicemail_prompt,
            abandon_prompt: r.abandon_prompt,
            on_human: parse_col("on_human", r.on_human, OnHuman::parse)?,
            bridge_to: r.bridge_to,
            on_human_url: r.on_human_url,
            record: r.record,
            window_start: parse_local_time(&r.window_start)
                .ok_or_else(|| corrupt("window_start", &r.window_start))?,
            window_end: parse_local_time(&r.window_end)
                .ok_or_else(|| corrupt("window_end", &r.window_end))?,
            default_timezone: r.default_timezone,
            max_attempts: u32::try_from(r.max_attempts)
                .map_err(|_| corrupt("max_attempts", r.max_attempts))?,
            retry_delays,
            rate_per_minute: small("rate_per_minute", r.rate_per_minute)?,
            rate_per_hour: small("rate_per_hour", r.rate_per_hour)?,
            max_concurrent: small("max_concurrent", r.max_concurrent)?,
            lines_per_agent: r.lines_per_agent,
            priority: i32::try_from(r.priority).map_err(|_| corrupt("priority", r.priority))?,
            status_callback: r.status_callback,
        };
        Ok(Campaign {
            id: r.id,
            settings,
            state: parse_col("state", r.state, CampaignState::parse)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
        })
    }
}

const CAMPAIGN_COLUMNS: &str = "id, name, list_id, trunk, caller_ids, dial_mode, amd, \
    on_machine, voicemail_prompt, record, window_start, window_end, default_timezone, \
    max_attempts, retry_delays, rate_per_minute, rate_per_hour, max_concurrent, \
    lines_per_agent, priority, state, status_callback, created_at, updated_at, started_at, \
    completed_at, abandon_prompt, on_human, bridge_to, on_human_url";

const LIST_COLUMNS: &str = "id, name, default_region, created_at, updated_at";

/// The settings columns bound as `$2..=$25` in the order of [`CAMPAIGN_COLUMNS`] (after `id`;
/// the columns added later, from `abandon_prompt`, last).
macro_rules! bind_settings {
    ($q:expr, $s:expr) => {{
        let s: &CampaignSettings = $s;
        $q.bind(&s.name)
            .bind(s.list_id)
            .bind(&s.trunk)
            .bind(serde_json::to_value(&s.caller_ids).unwrap_or_default())
            .bind(s.dial_mode.as_str())
            .bind(&s.amd)
            .bind(s.on_machine.as_str())
            .bind(&s.voicemail_prompt)
            .bind(s.record)
            .bind(format_local_time(s.window_start))
            .bind(format_local_time(s.window_end))
            .bind(&s.default_timezone)
            .bind(i64::from(s.max_attempts))
            .bind(serde_json::to_value(s.retry_delays).unwrap_or_default())
            .bind(s.rate_per_minute.map(i64::from))
            .bind(s.rate_per_hour.map(i64::from))
            .bind(s.max_concurrent.map(i64::from))
            .bind(s.lines_per_agent)
            .bind(i64::from(s.priority))
            .bind(&s.status_callback)
            .bind(&s.abandon_prompt)
            .bind(s.on_human.as_str())
            .bind(&s.bridge_to)
            .bind(&s.on_human_url)
    }};
}

impl Store {
    /// Inserts a campaign in state `draft`.
    pub async fn insert_campaign(&self, c: &NewCampaign) -> Result<Campaign, StoreError> {
        let sql = format!(
            "INSERT INTO campaigns (id, name, list_id, trunk, caller_ids, dial_mode, amd, \
             on_machine, voicemail_prompt, record, window_start, window_end, default_timezone, \
             max_attempts, retry_delays, rate_per_minute, rate_per_hour, max_concurrent, \
             lines_per_agent, priority, status_callback, abandon_prompt, on_human, bridge_to, \
             on_human_url, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22, $23, $24, $25, 'draft', $26, $26) \
             RETURNING {CAMPAIGN_COLUMNS}"
        );
        let row: CampaignRow = on_pool!(self, |p| {
            let q = sqlx::query_as(&sql).bind(c.id);
            bind_settings!(q, &c.settings)
                .bind(micros(c.created_at))
                .fetch_one(p)
                .await?
        });
        row.try_into()
    }

    /// A campaign by id.
    pub async fn get_campaign(&self, id: Uuid) -> Result<Option<Campaign>, StoreError> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
        let row: Option<CampaignRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Campaign::try_from).transpose()
    }

    /// Replaces a campaign's settings, unless it is archived (then, or when unknown, `None`).
    pub async fn update_campaign_settings(
        &self,
        id: Uuid,
        settings: &CampaignSettings,
        now: DateTime<Utc>,
    ) -> Result<Option<Campaign>, StoreError> {
        let sql = format!(
            "UPDATE campaigns SET name = $2, list_id = $3, trunk = $4, caller_ids = $5, \
             dial_mode = $6, amd = $7, on_machine = $8, voicemail_prompt = $9, record = $10, \
             window_start = $11, window_end = $12, default_timezone = $13, max_attempts = $14, \
             retry_delays = $15, rate_per_minute = $16, rate_per_hour = $17, \
             max_concurrent = $18, lines_per_agent = $19, priority = $20, \
             status_callback = $21, abandon_prompt = $22, on_human = $23, bridge_to = $24, \
             on_human_url = $25, updated_at = $26 \
             WHERE id = $1 AND state <> 'archived' RETURNING {CAMPAIGN_COLUMNS}"
        );
        let row: Option<CampaignRow> = on_pool!(self, |p| {
            let q = sqlx::query_as(&sql).bind(id);
            bind_settings!(q, settings)
                .bind(micros(now))
                .fetch_optional(p)
                .await?
        });
        row.map(Campaign::try_from).transpose()
    }

    /// Moves a campaign from `from` to `to` at `now` if it is still in `from` (compare and
    /// set); `None` if it was not (moved meanwhile, or unknown). Entering `running` sets
    /// `started_at` the first time; entering `completed` sets `completed_at`.
    pub async fn set_campaign_state(
        &self,
        id: Uuid,
        from: CampaignState,
        to: CampaignState,
        now: DateTime<Utc>,
    ) -> Result<Option<Campaign>, StoreError> {
        let sql = format!(
            "UPDATE campaigns SET state = $3, updated_at = $4, \
             started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) \
                               ELSE started_at END, \
             completed_at = CASE WHEN $3 = 'completed' THEN $4 ELSE completed_at END \
             WHERE id = $1 AND state = $2 RETURNING {CAMPAIGN_COLUMNS}"
        );
        let row: Option<CampaignRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(micros(now))
            .fetch_optional(p)
            .await?);
        row.map(Campaign::try_from).transpose()
    }

    /// Deletes a draft campaign that has no attempts; false otherwise (or unknown).
    pub async fn delete_campaign(&self, id: Uuid) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM campaigns WHERE id = $1 AND state = 'draft' \
             AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.campaign_id = $1)"
        )
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// A page of campaigns, newest first (keyset on `(created_at, id)`).
    pub async fn list_campaigns(&self, f: &CampaignFilter) -> Result<CampaignPage, StoreError> {
        let limit = f
            .limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT);
        let (ts, cid) = cursor_parts(f.cursor.as_deref())?;
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns \
             WHERE ($1 IS NULL OR state = $1) \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows: Vec<CampaignRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(f.state.map(CampaignState::as_str))
            .bind(ts)
            .bind(cid)
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await?);
        let mut campaigns = rows
            .into_iter()
            .map(Campaign::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = page_cursor(&mut campaigns, limit, |c| (c.created_at, c.id));
        Ok(CampaignPage {
            campaigns,
            next_cursor,
        })
    }

    /// Inserts a contact list.
    pub async fn insert_contact_list(&self, l: &NewContactList) -> Result<ContactList, StoreError> {
        let sql = format!(
            "INSERT INTO contact_lists (id, name, default_region, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {LIST_COLUMNS}"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(l.id)
            .bind(&l.name)
            .bind(&l.default_region)
            .bind(micros(l.created_at))
            .fetch_one(p)
            .await?))
    }

    /// A contact list by id.
    pub async fn get_contact_list(&self, id: Uuid) -> Result<Option<ContactList>, StoreError> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM contact_lists WHERE id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// Renames a list and/or changes its default region.
    pub async fn update_contact_list(
        &self,
        id: Uuid,
        name: &str,
        default_region: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ContactList>, StoreError> {
        let sql = format!(
            "UPDATE contact_lists SET name = $2, default_region = $3, updated_at = $4 \
             WHERE id = $1 RETURNING {LIST_COLUMNS}"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .bind(name)
            .bind(default_region)
            .bind(micros(now))
            .fetch_optional(p)
            .await?))
    }

    /// Campaigns that dial a list (a list in use cannot be deleted).
    pub async fn campaigns_using_list(&self, list_id: Uuid) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaigns WHERE list_id = $1"
        )
        .bind(list_id)
        .fetch_one(p)
        .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes a list and its contacts, unless a campaign uses it; returns whether it was
    /// deleted.
    pub async fn delete_contact_list(&self, id: Uuid) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM contact_lists WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.list_id = $1)"
        )
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// A page of contact lists, newest first.
    pub async fn list_contact_lists(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<ContactListPage, StoreError> {
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT);
        let (ts, cid) = cursor_parts(cursor)?;
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM contact_lists \
             WHERE ($1 IS NULL OR created_at < $1 OR (created_at = $1 AND id < $2)) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let mut lists: Vec<ContactList> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(ts)
            .bind(cid)
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await?);
        let next_cursor = page_cursor(&mut lists, limit, |l| (l.created_at, l.id));
        Ok(ContactListPage { lists, next_cursor })
    }
}

pub(super) fn cursor_parts(
    cursor: Option<&str>,
) -> Result<(Option<DateTime<Utc>>, Option<Uuid>), StoreError> {
    match cursor {
        Some(c) => {
            let (t, i) = decode_cursor(c)?;
            Ok((Some(t), Some(i)))
        }
        None => Ok((None, None)),
    }
}

/// Cuts a page fetched with `limit + 1` rows and returns the next cursor, if any.
pub(super) fn page_cursor<T>(
    rows: &mut Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Option<String> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            let (t, id) = key(r);
            encode_cursor(t, id)
        })
    } else {
        None
    }
}
