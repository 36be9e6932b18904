//! The `contacts`, `dnc` and `attempts` tables: contact import, the do-not-call list, the
//! contact claim and the attempt history.
//!
//! # The claim
//!
//! [`Store::claim_next`] hands out the next contact of a running campaign to one dialler, and
//! never the same contact to two: in one transaction it picks the contacts in claim order
//! (highest priority, then earliest due, then id) among those `pending` or `retry`, due
//! (`next_due_at <= now`) and with a free or expired lease, then looks at them one by one:
//!
//! - on the do-not-call list (checked here, at claim time, so a number added mid-campaign is
//!   never dialled again) → status `dnc`;
//! - attempts used up → status `failed`;
//! - outside its calling window (the caller's gate, which knows the zone rules) → `next_due_at`
//!   moves to the window's opening, so it stops standing in front of the others (no
//!   starvation: every contact the scan passes over leaves the scan for good or until it can be
//!   dialled);
//! - else it is claimed: status `dialing`, `attempts + 1`, the lease (`lease_owner`,
//!   `lease_expires_at`), and its attempt row inserted with `attempt_no = attempts`. The
//!   attempt row is unique on `(contact_id, attempt_no)`, so an attempt can never be written
//!   twice.
//!
//! On PostgreSQL the rows are read `FOR UPDATE OF c SKIP LOCKED`: claimers on several nodes
//! skip each other's rows instead of waiting. On SQLite the transaction starts with
//! `BEGIN IMMEDIATE`, which takes the database's write lock first, so claims are serialised and
//! a read snapshot can never go stale before the write.
//!
//! A claim that is never dialled (a contact shown to a preview agent, then skipped) is undone by
//! [`Store::release_claim`]: its attempt row goes and the contact is back as it was, so looking
//! at a contact uses up none of its attempts.
//!
//! Rate limits and concurrency caps count stored attempts ([`Store::attempts_started_since`],
//! [`Store::attempts_in_flight`]), so a restart does not reset them.

use super::calls::{decode_cursor, encode_cursor, parse_col, parse_opt};
use super::campaigns::{cursor_parts, page_cursor};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Pool, Store, StoreError, micros, new_id, on_pool};
use crate::campaign::import::{BadReason, BadRow, DncRow, GoodRow, Validated};
use crate::campaign::{AttemptOutcome, ContactStatus};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// Rows per multi-row INSERT of an import (6 binds each). Kept small on purpose: binding a
/// statement's parameters costs time quadratic in their number on SQLite (each bind looks the
/// parameter up by walking the statement's list), and at 500 rows (3,000 binds) that was 40%
/// of a 100,000-row import; 100 rows halved the store's share of it (BENCHMARKS.md).
pub const IMPORT_ROWS_PER_INSERT: usize = 100;
/// Rows per transaction of an import: a failure loses at most this batch, and readers are
/// never blocked long.
pub const IMPORT_ROWS_PER_TRANSACTION: usize = 10_000;
/// Numbers per `IN (...)` lookup of existing or do-not-call numbers (small for the same reason
/// as [`IMPORT_ROWS_PER_INSERT`]).
const LOOKUP_CHUNK: usize = 100;
/// Contacts read per pass of the claim scan.
const CLAIM_SCAN_BATCH: i64 = 8;
/// Passes of the claim scan per call (each pass moves every passed-over row out of the way).
const CLAIM_MAX_PASSES: usize = 64;

/// A stored contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Id.
    pub id: Uuid,
    /// Its list.
    pub list_id: Uuid,
    /// E.164.
    pub phone: String,
    /// Name.
    pub name: Option<String>,
    /// IANA zone (given or derived); `None`: the campaign's default.
    pub timezone: Option<String>,
    /// Priority (higher first).
    pub priority: i64,
    /// Custom fields.
    pub custom: serde_json::Value,
    /// Status.
    pub status: ContactStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Not dialled before this time.
    pub next_due_at: DateTime<Utc>,
    /// Node holding the lease.
    pub lease_owner: Option<String>,
    /// Lease end.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Imported.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: Uuid,
    list_id: Uuid,
    phone: String,
    name: Option<String>,
    timezone: Option<String>,
    priority: i64,
    custom: serde_json::Value,
    status: String,
    attempts: i64,
    next_due_at: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StoreError;
    fn try_from(r: ContactRow) -> Result<Self, StoreError> {
        Ok(Contact {
            id: r.id,
            list_id: r.list_id,
            phone: r.phone,
            name: r.name,
            timezone: r.timezone,
            priority: r.priority,
            custom: r.custom,
            status: parse_col("status", r.status, ContactStatus::parse)?,
            attempts: u32::try_from(r.attempts).map_err(|_| StoreError::Corrupt {
                column: "attempts",
                value: r.attempts.to_string(),
            })?,
            next_due_at: r.next_due_at,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const CONTACT_COLUMNS: &str = "id, list_id, phone, name, timezone, priority, custom, status, \
    attempts, next_due_at, lease_owner, lease_expires_at, created_at, updated_at";

/// Filters and paging of [`Store::list_contacts`]; oldest first.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only contacts with this status.
    pub status: Option<ContactStatus>,
    /// Page size (clamped to 1..=[`MAX_LIST_LIMIT`]).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of contacts.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPage {
    /// In import order.
    pub contacts: Vec<Contact>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// What an import did (or, dry run, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    /// Data rows in the file.
    pub rows: u64,
    /// Rows that pass every check.
    pub valid: u64,
    /// Rows inserted (0 on a dry run; below `valid` only if a concurrent import added the
    /// same numbers meanwhile).
    pub imported: u64,
    /// Every refused row, by line.
    pub bad: Vec<BadRow>,
}

/// A do-not-call entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DncEntry {
    /// E.164.
    pub phone: String,
    /// Why (free text).
    pub reason: Option<String>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// One page of the do-not-call list, by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncPage {
    /// Entries in number order.
    pub entries: Vec<DncEntry>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// The caller's calling-window verdict on a candidate contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowCheck {
    /// It may be dialled now.
    Open,
    /// Not before this time (the window's next opening in the contact's zone).
    ClosedUntil(DateTime<Utc>),
}

/// What the claim's gate sees of a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCandidate {
    /// Contact id.
    pub id: Uuid,
    /// E.164.
    pub phone: String,
    /// Its zone, `None` for the campaign's default.
    pub timezone: Option<String>,
}

/// A contact handed to one dialler, with its new attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedContact {
    /// The attempt row inserted for this dial.
    pub attempt_id: Uuid,
    /// 1 for the first attempt.
    pub attempt_no: u32,
    /// The contact as it is now (status `dialing`, lease held).
    pub contact: Contact,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// Id.
    pub id: Uuid,
    /// Campaign.
    pub campaign_id: Uuid,
    /// Contact.
    pub contact_id: Uuid,
    /// 1 for the first attempt at this contact.
    pub attempt_no: u32,
    /// Number dialled.
    pub phone: String,
    /// The call, once created.
    pub call_id: Option<Uuid>,
    /// Node that dialled.
    pub node: String,
    /// Claimed.
    pub started_at: DateTime<Utc>,
    /// Finished (`None`: in flight).
    pub ended_at: Option<DateTime<Utc>>,
    /// Outcome once finished.
    pub outcome: Option<AttemptOutcome>,
    /// AMD verdict name, if any.
    pub amd_verdict: Option<String>,
    /// Call duration.
    pub duration_ms: Option<u64>,
    /// The agent session it was placed for (power mode).
    pub session_id: Option<Uuid>,
    /// The agent's disposition, once posted.
    pub disposition: Option<String>,
    /// An agent's talk time with the customer, stored with the disposition (ms).
    pub talk_ms: Option<u64>,
    /// The agent's wrap-up time before the disposition (ms).
    pub wrap_up_ms: Option<u64>,
}

/// An attempt in flight found by [`Store::open_attempts`] or [`Store::expired_attempts`].
pub type OpenAttempt = AttemptRow;

#[derive(sqlx::FromRow)]
struct AttemptDbRow {
    id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
    attempt_no: i64,
    phone: String,
    call_id: Option<Uuid>,
    node: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    amd_verdict: Option<String>,
    duration_ms: Option<i64>,
    session_id: Option<Uuid>,
    disposition: Option<String>,
    talk_ms: Option<i64>,
    wrap_up_ms: Option<i64>,
}

impl TryFrom<AttemptDbRow> for AttemptRow {
    type Error = StoreError;
    fn try_from(r: AttemptDbRow) -> Result<Self, StoreError> {
        Ok(AttemptRow {
            id: r.id,
            campaign_id: r.campaign_id,
            contact_id: r.contact_id,
            attempt_no: u32::try_from(r.attempt_no).map_err(|_| StoreError::Corrupt {
                column: "attempt_no",
                value: r.attempt_no.to_string(),
            })?,
            phone: r.phone,
            call_id: r.call_id,
            node: r.node,
            started_at: r.started_at,
            ended_at: r.ended_at,
            outcome: parse_opt("outcome", r.outcome, AttemptOutcome::parse)?,
            amd_verdict: r.amd_verdict,
            duration_ms: r.duration_ms.and_then(|d| u64::try_from(d).ok()),
            session_id: r.session_id,
            disposition: r.disposition,
            talk_ms: r.talk_ms.and_then(|d| u64::try_from(d).ok()),
            wrap_up_ms: r.wrap_up_ms.and_then(|d| u64::try_from(d).ok()),
        })
    }
}

const ATTEMPT_COLUMNS: &str = "id, campaign_id, contact_id, attempt_no, phone, call_id, node, \
    started_at, ended_at, outcome, amd_verdict, duration_ms, session_id, disposition, talk_ms, \
    wrap_up_ms";

#[derive(sqlx::FromRow)]
struct CandidateRow {
    id: Uuid,
    phone: String,
    timezone: Option<String>,
    attempts: i64,
    on_dnc: bool,
}

/// `$first, $first+1, ...` for `n` binds.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Numbers among `phones` that `list_id` has already.
    pub async fn phones_in_list(
        &self,
        list_id: Uuid,
        phones: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in phones.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT phone FROM contacts WHERE list_id = $1 AND phone IN ({})",
                placeholders(2, chunk.len())
            );
            let rows: Vec<String> = on_pool!(self, |p| {
                let mut q = sqlx::query_scalar(&sql).bind(list_id);
                for ph in chunk {
                    q = q.bind(*ph);
                }
                q.fetch_all(p).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Numbers among `phones` on the do-not-call list.
    pub async fn phones_on_dnc(&self, phones: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in phones.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT phone FROM dnc WHERE phone IN ({})",
                placeholders(1, chunk.len())
            );
            let rows: Vec<String> = on_pool!(self, |p| {
                let mut q = sqlx::query_scalar(&sql);
                for ph in chunk {
                    q = q.bind(*ph);
                }
                q.fetch_all(p).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Finishes an import: refuses the rows whose number the list has already or that are on
    /// the do-not-call list, then (unless `dry_run`) inserts the good rows as `pending`
    /// contacts due at `now`, in transactions of `IMPORT_ROWS_PER_TRANSACTION` rows.
    pub async fn import_contacts(
        &self,
        list_id: Uuid,
        mut validated: Validated,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ImportSummary, StoreError> {
        let phones: Vec<&str> = validated.good.iter().map(|r| r.phone.as_str()).collect();
        let in_list = self.phones_in_list(list_id, &phones).await?;
        let on_dnc = self.phones_on_dnc(&phones).await?;
        drop(phones);
        validated.exclude(|p| {
            if in_list.contains(p) {
                Some(BadReason::DuplicateInList)
            } else if on_dnc.contains(p) {
                Some(BadReason::OnDnc)
            } else {
                None
            }
        });
        let valid = validated.good.len() as u64;
        let mut imported = 0u64;
        if !dry_run {
            // Ids in file order: UUID v7s drawn in one millisecond are random among
            // themselves, and rows inserted in random id order scatter their writes over the
            // primary key and the two indexes that end in the id. Sorted, every insert appends;
            // contacts of equal priority and due time are also claimed in file order.
            let mut ids: Vec<Uuid> = validated.good.iter().map(|_| new_id(now)).collect();
            ids.sort_unstable();
            for (batch, ids) in validated
                .good
                .chunks(IMPORT_ROWS_PER_TRANSACTION)
                .zip(ids.chunks(IMPORT_ROWS_PER_TRANSACTION))
            {
                imported += self.insert_contacts(list_id, batch, ids, now).await?;
            }
            on_pool!(self, |p| sqlx::query(
                "UPDATE contact_lists SET updated_at = $2 WHERE id = $1"
            )
            .bind(list_id)
            .bind(micros(now))
            .execute(p)
            .await?
            .rows_affected());
        }
        Ok(ImportSummary {
            rows: validated.rows,
            valid,
            imported,
            bad: validated.bad,
        })
    }

    /// Inserts contacts with the given ids (one per row) in one transaction (numbers already
    /// in the list are skipped); returns how many were inserted.
    async fn insert_contacts(
        &self,
        list_id: Uuid,
        rows: &[GoodRow],
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now = micros(now);
        let mut inserted = 0;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (chunk, ids) in rows
                .chunks(IMPORT_ROWS_PER_INSERT)
                .zip(ids.chunks(IMPORT_ROWS_PER_INSERT))
            {
                let values = (0..chunk.len())
                    .map(|i| {
                        let b = i * 6;
                        format!(
                            "(${}, $1, ${}, ${}, ${}, ${}, ${}, 'pending', 0, $2, $2, $2)",
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO contacts (id, list_id, phone, name, timezone, priority, custom, \
                     status, attempts, next_due_at, created_at, updated_at) \
                     VALUES {values} ON CONFLICT (list_id, phone) DO NOTHING"
                );
                let mut q = sqlx::query(&sql).bind(list_id).bind(now);
                for (r, id) in chunk.iter().zip(ids) {
                    q = q
                        .bind(*id)
                        .bind(&r.phone)
                        .bind(&r.name)
                        .bind(&r.timezone)
                        .bind(r.priority)
                        .bind(serde_json::Value::Object(r.custom.clone()));
                }
                inserted += q.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        });
        Ok(inserted)
    }

    /// Contacts in a list.
    pub async fn count_contacts(&self, list_id: Uuid) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE list_id = $1"
        )
        .bind(list_id)
        .fetch_one(p)
        .await?);
        Ok(to_u64(n))
    }

    /// Contacts of a list by status (statuses with none are left out).
    pub async fn contact_counts(
        &self,
        list_id: Uuid,
    ) -> Result<Vec<(ContactStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT status, COUNT(*) FROM contacts WHERE list_id = $1 GROUP BY status \
             ORDER BY status"
        )
        .bind(list_id)
        .fetch_all(p)
        .await?);
        rows.into_iter()
            .map(|(s, n)| Ok((parse_col("status", s, ContactStatus::parse)?, to_u64(n))))
            .collect()
    }

    /// A contact by id.
    pub async fn get_contact(&self, id: Uuid) -> Result<Option<Contact>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1");
        let row: Option<ContactRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.map(Contact::try_from).transpose()
    }

    /// A page of a list's contacts in import order (keyset on `(created_at, id)`).
    pub async fn list_contacts(
        &self,
        list_id: Uuid,
        f: &ContactFilter,
    ) -> Result<ContactPage, StoreError> {
        let limit = f
            .limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT);
        let (ts, cid) = cursor_parts(f.cursor.as_deref())?;
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE list_id = $1 \
             AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR created_at > $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at, id LIMIT $5"
        );
        let rows: Vec<ContactRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(list_id)
            .bind(f.status.map(ContactStatus::as_str))
            .bind(ts)
            .bind(cid)
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await?);
        let mut contacts = rows
            .into_iter()
            .map(Contact::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = page_cursor(&mut contacts, limit, |c| (c.created_at, c.id));
        Ok(ContactPage {
            contacts,
            next_cursor,
        })
    }

    /// Puts a number on the do-not-call list (keeping the first entry if it is there already)
    /// and marks the contacts with it that are still to be dialled `dnc`. Returns the entry and
    /// whether it is new.
    pub async fn add_dnc(
        &self,
        phone: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DncEntry, bool), StoreError> {
        let added = self
            .insert_dnc(
                &[DncRow {
                    line: 0,
                    phone: phone.to_owned(),
                    reason: reason.map(str::to_owned),
                }],
                now,
            )
            .await?;
        let entry = self
            .get_dnc(phone)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                column: "dnc.phone",
                value: phone.to_owned(),
            })?;
        Ok((entry, added == 1))
    }

    /// Inserts do-not-call numbers (existing ones are kept as they are) and marks the contacts
    /// with them `dnc`, in one transaction; returns how many numbers are new.
    pub async fn insert_dnc(&self, rows: &[DncRow], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        let mut added = 0;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(IMPORT_ROWS_PER_INSERT) {
                let values = (0..chunk.len())
                    .map(|i| format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO dnc (phone, reason, added_at) VALUES {values} \
                     ON CONFLICT (phone) DO NOTHING"
                );
                let mut q = sqlx::query(&sql).bind(now);
                for r in chunk {
                    q = q.bind(&r.phone).bind(&r.reason);
                }
                added += q.execute(&mut *tx).await?.rows_affected();
                let sql = format!(
                    "UPDATE contacts SET status = 'dnc', updated_at = $1 \
                     WHERE status IN ('pending', 'retry') AND phone IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(now);
                for r in chunk {
                    q = q.bind(&r.phone);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(added)
    }

    /// Takes a number off the do-not-call list; returns whether it was there. Contacts already
    /// marked `dnc` stay so (they were not dialled; re-import them to dial them).
    pub async fn remove_dnc(&self, phone: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query("DELETE FROM dnc WHERE phone = $1")
            .bind(phone)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// The do-not-call entry of a number.
    pub async fn get_dnc(&self, phone: &str) -> Result<Option<DncEntry>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT phone, reason, added_at FROM dnc WHERE phone = $1"
        )
        .bind(phone)
        .fetch_optional(p)
        .await?))
    }

    /// A page of the do-not-call list in number order.
    pub async fn list_dnc(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<DncPage, StoreError> {
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT);
        let after = cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(StoreError::InvalidCursor)
            })
            .transpose()?;
        let mut entries: Vec<DncEntry> = on_pool!(self, |p| sqlx::query_as(
            "SELECT phone, reason, added_at FROM dnc WHERE ($1 IS NULL OR phone > $1) \
             ORDER BY phone LIMIT $2"
        )
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(p)
        .await?);
        let next_cursor = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| URL_SAFE_NO_PAD.encode(&e.phone))
        } else {
            None
        };
        Ok(DncPage {
            entries,
            next_cursor,
        })
    }

    /// Claims the next contact of a running campaign for `node` (see the module docs): `None`
    /// when the campaign is not running or no contact can be dialled now. `gate` says whether
    /// a candidate is inside its calling window at `now`.
    pub async fn claim_next(
        &self,
        campaign_id: Uuid,
        node: &str,
        now: DateTime<Utc>,
        lease: Duration,
        mut gate: impl FnMut(&ClaimCandidate) -> WindowCheck + Send,
    ) -> Result<Option<ClaimedContact>, StoreError> {
        let now = micros(now);
        let lease_end = micros(
            TimeDelta::from_std(lease)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        let pg = matches!(self.pool, Pool::Postgres(_));
        let scan = format!(
            "SELECT c.id, c.phone, c.timezone, c.attempts, (d.phone IS NOT NULL) AS on_dnc \
             FROM contacts c LEFT JOIN dnc d ON d.phone = c.phone \
             WHERE c.list_id = $1 AND c.status IN ('pending', 'retry') \
             AND c.next_due_at <= $2 \
             AND (c.lease_expires_at IS NULL OR c.lease_expires_at <= $2) \
             ORDER BY c.priority DESC, c.next_due_at, c.id LIMIT $3{}",
            if pg {
                " FOR UPDATE OF c SKIP LOCKED"
            } else {
                ""
            }
        );
        let claim_sql = format!(
            "UPDATE contacts SET status = 'dialing', attempts = attempts + 1, \
             lease_owner = $2, lease_expires_at = $3, updated_at = $4 \
             WHERE id = $1 RETURNING {CONTACT_COLUMNS}"
        );
        on_pool!(self, |p| {
            let mut tx = if pg {
                p.begin().await?
            } else {
                p.begin_with("BEGIN IMMEDIATE").await?
            };
            let head: Option<(Option<Uuid>, i64, String)> =
                sqlx::query_as("SELECT list_id, max_attempts, state FROM campaigns WHERE id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((Some(list_id), max_attempts, state)) = head else {
                return Ok(None);
            };
            if state != "running" {
                return Ok(None);
            }
            for _ in 0..CLAIM_MAX_PASSES {
                let rows: Vec<CandidateRow> = sqlx::query_as(&scan)
                    .bind(list_id)
                    .bind(now)
                    .bind(CLAIM_SCAN_BATCH)
                    .fetch_all(&mut *tx)
                    .await?;
                let full = rows.len() as i64 == CLAIM_SCAN_BATCH;
                for r in rows {
                    let set_status = |status: &'static str| {
                        sqlx::query(
                            "UPDATE contacts SET status = $2, updated_at = $3 WHERE id = $1",
                        )
                        .bind(r.id)
                        .bind(status)
                        .bind(now)
                    };
                    if r.on_dnc {
                        set_status("dnc").execute(&mut *tx).await?;
                        continue;
                    }
                    if r.attempts >= max_attempts {
                        set_status("failed").execute(&mut *tx).await?;
                        continue;
                    }
                    let candidate = ClaimCandidate {
                        id: r.id,
                        phone: r.phone.clone(),
                        timezone: r.timezone.clone(),
                    };
                    if let WindowCheck::ClosedUntil(open) = gate(&candidate) {
                        // Strictly later than now, or the scan would meet it again.
                        let open = micros(open.max(now + TimeDelta::seconds(1)));
                        sqlx::query(
                            "UPDATE contacts SET next_due_at = $2, updated_at = $3 WHERE id = $1",
                        )
                        .bind(r.id)
                        .bind(open)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        continue;
                    }
                    let row: ContactRow = sqlx::query_as(&claim_sql)
                        .bind(r.id)
                        .bind(node)
                        .bind(lease_end)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    let contact = Contact::try_from(row)?;
                    let attempt_id = new_id(now);
                    sqlx::query(
                        "INSERT INTO attempts (id, campaign_id, contact_id, attempt_no, phone, \
                         node, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(attempt_id)
                    .bind(campaign_id)
                    .bind(contact.id)
                    .bind(i64::from(contact.attempts))
                    .bind(&contact.phone)
                    .bind(node)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(Some(ClaimedContact {
                        attempt_id,
                        attempt_no: contact.attempts,
                        contact,
                    }));
                }
                if !full {
                    break;
                }
            }
            tx.commit().await?;
        });
        Ok(None)
    }

    /// Records the call of an attempt once it exists; false if the attempt is unknown.
    pub async fn set_attempt_call(
        &self,
        attempt_id: Uuid,
        call_id: Uuid,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE attempts SET call_id = $2 WHERE id = $1"
        )
        .bind(attempt_id)
        .bind(call_id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Extends the lease of a contact being dialled by `node`; false if it is not (any more)
    /// dialled under that node's lease.
    pub async fn renew_lease(
        &self,
        contact_id: Uuid,
        node: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE contacts SET lease_expires_at = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'dialing'"
        )
        .bind(contact_id)
        .bind(node)
        .bind(micros(until))
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Finishes an attempt once: its end, outcome, AMD verdict and duration, and its contact's
    /// new status and due time (`None` keeps it), lease released, in one transaction. Returns
    /// false (changing nothing) if the attempt had finished already or is unknown.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_attempt(
        &self,
        attempt_id: Uuid,
        now: DateTime<Utc>,
        outcome: AttemptOutcome,
        amd_verdict: Option<&str>,
        duration: Option<Duration>,
        next_due_at: Option<DateTime<Utc>>,
        new_status: ContactStatus,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        let duration_ms = duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let done = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let contact: Option<Uuid> = sqlx::query_scalar(
                "UPDATE attempts SET ended_at = $2, outcome = $3, amd_verdict = $4, \
                 duration_ms = $5 WHERE id = $1 AND ended_at IS NULL RETURNING contact_id",
            )
            .bind(attempt_id)
            .bind(now)
            .bind(outcome.as_str())
            .bind(amd_verdict)
            .bind(duration_ms)
            .fetch_optional(&mut *tx)
            .await?;
            match contact {
                None => false,
                Some(contact_id) => {
                    sqlx::query(
                        "UPDATE contacts SET status = $2, \
                         next_due_at = COALESCE($3, next_due_at), lease_owner = NULL, \
                         lease_expires_at = NULL, updated_at = $4 WHERE id = $1",
                    )
                    .bind(contact_id)
                    .bind(new_status.as_str())
                    .bind(next_due_at.map(micros))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    true
                }
            }
        });
        Ok(done)
    }

    /// Undoes the claim of a contact that was shown (preview) but never dialled: its attempt
    /// row is removed and the contact goes back to the queue as it was (`pending`, or `retry`
    /// after earlier attempts; attempt count restored; due time unchanged; lease released), so
    /// a contact that was only looked at uses up none of its attempts. Only an unfinished
    /// attempt with no call can be released: false (changing nothing) otherwise.
    pub async fn release_claim(
        &self,
        attempt_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        let done = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let contact: Option<Uuid> = sqlx::query_scalar(
                "DELETE FROM attempts WHERE id = $1 AND ended_at IS NULL AND call_id IS NULL \
                 RETURNING contact_id",
            )
            .bind(attempt_id)
            .fetch_optional(&mut *tx)
            .await?;
            match contact {
                None => false,
                Some(contact_id) => {
                    sqlx::query(
                        "UPDATE contacts SET attempts = attempts - 1, \
                         status = CASE WHEN attempts > 1 THEN 'retry' ELSE 'pending' END, \
                         lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 \
                         WHERE id = $1 AND status = 'dialing'",
                    )
                    .bind(contact_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    true
                }
            }
        });
        Ok(done)
    }

    /// A contact's attempts, first first.
    pub async fn contact_attempts(&self, contact_id: Uuid) -> Result<Vec<AttemptRow>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE contact_id = $1 ORDER BY attempt_no"
        );
        let rows: Vec<AttemptDbRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(contact_id)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(AttemptRow::try_from).collect()
    }

    /// When the next contact of a list waiting in the queue (`pending` or `retry`) is due:
    /// `None` when none waits.
    pub async fn next_due_at(&self, list_id: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT next_due_at FROM contacts WHERE list_id = $1 \
             AND status IN ('pending', 'retry') ORDER BY next_due_at LIMIT 1"
        )
        .bind(list_id)
        .fetch_optional(p)
        .await?))
    }

    /// Attempts of a campaign started at or after `since` (rate limits over stored attempts).
    pub async fn attempts_started_since(
        &self,
        campaign_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM attempts WHERE campaign_id = $1 AND started_at >= $2"
        )
        .bind(campaign_id)
        .bind(micros(since))
        .fetch_one(p)
        .await?);
        Ok(to_u64(n))
    }

    /// The latest `limit` start times of a campaign's attempts at or after `since`, newest
    /// first (the dialer rebuilds its rate limiter from them, so a restart does not reset the
    /// limits; a limiter of `limit` needs no more than the latest `limit` starts).
    pub async fn attempt_starts_since(
        &self,
        campaign_id: Uuid,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT started_at FROM attempts WHERE campaign_id = $1 AND started_at >= $2 \
             ORDER BY started_at DESC LIMIT $3"
        )
        .bind(campaign_id)
        .bind(micros(since))
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?))
    }

    /// Attempts of a campaign not finished (concurrency cap over stored attempts).
    pub async fn attempts_in_flight(&self, campaign_id: Uuid) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM attempts WHERE campaign_id = $1 AND ended_at IS NULL"
        )
        .bind(campaign_id)
        .fetch_one(p)
        .await?);
        Ok(to_u64(n))
    }

    /// Unfinished attempts of a campaign, oldest first (what a restarted node reconciles);
    /// with `node`, only that node's.
    pub async fn open_attempts(
        &self,
        campaign_id: Uuid,
        node: Option<&str>,
    ) -> Result<Vec<OpenAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE campaign_id = $1 \
             AND ended_at IS NULL AND ($2 IS NULL OR node = $2) ORDER BY started_at, id"
        );
        let rows: Vec<AttemptDbRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(campaign_id)
            .bind(node)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(AttemptRow::try_from).collect()
    }

    /// Unfinished attempts whose contact's lease expired before `now` (a node died or lost
    /// its store): any node may reconcile them.
    pub async fn expired_attempts(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<OpenAttempt>, StoreError> {
        let sql = format!(
            "SELECT {} FROM attempts a JOIN contacts c ON c.id = a.contact_id \
             WHERE a.ended_at IS NULL AND c.status = 'dialing' AND c.lease_expires_at <= $1 \
             ORDER BY a.started_at, a.id",
            ATTEMPT_COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<AttemptDbRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(micros(now))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(AttemptRow::try_from).collect()
    }

    /// A page of a campaign's attempts in start order, after `(started_at, id)` of the last
    /// one seen (export).
    pub async fn list_attempts(
        &self,
        campaign_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AttemptRow>, Option<String>), StoreError> {
        let limit = limit.clamp(1, 10_000);
        let (ts, aid) = match after {
            Some(c) => {
                let (t, i) = decode_cursor(c)?;
                (Some(t), Some(i))
            }
            None => (None, None),
        };
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE campaign_id = $1 \
             AND ($2 IS NULL OR started_at > $2 OR (started_at = $2 AND id > $3)) \
             ORDER BY started_at, id LIMIT $4"
        );
        let rows: Vec<AttemptDbRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(campaign_id)
            .bind(ts)
            .bind(aid)
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await?);
        let mut rows = rows
            .into_iter()
            .map(AttemptRow::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|a| encode_cursor(a.started_at, a.id))
        } else {
            None
        };
        Ok((rows, next))
    }
}
