//! The `registrations` table: one row per agent and registered contact, as the registrar keeps
//! it ([`crate::sip::registrar`]). The engine's store writer inserts or refreshes a row when a
//! binding is created or refreshed and deletes it when the binding goes; at start the rows are
//! read back into the registrar ([`Store::all_registrations`]), so registrations survive a
//! restart. `GET /v1/registrations` lists the live ones ([`Store::list_registrations`]).

use super::calls::{decode_cursor, encode_cursor, parse_col, text_enum};
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, micros, on_pool};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

text_enum!(
    /// The SIP transport a registration came on (requests to the agent use it too).
    RegistrationTransport {
        /// UDP.
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
    }
);

/// A registration to insert or refresh (keyed by user and contact).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRegistration {
    /// Row id for an insert (from [`super::new_id`]); a refresh keeps the stored one.
    pub id: Uuid,
    /// The agent.
    pub user: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where requests to this binding go (`ip:port` the REGISTER came from).
    pub source: String,
    /// Transport.
    pub transport: RegistrationTransport,
    /// When it expires unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// `User-Agent` of the REGISTER.
    pub user_agent: Option<String>,
    /// When this write happens.
    pub at: DateTime<Utc>,
}

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    /// Row id.
    pub id: Uuid,
    /// The agent (SIP user).
    pub user: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where requests to the agent go: the address the REGISTER came from (received/rport).
    pub source: String,
    /// `udp` or `tcp`.
    pub transport: RegistrationTransport,
    /// When it expires unless refreshed (RFC 3339 UTC).
    pub expires_at: DateTime<Utc>,
    /// The phone's `User-Agent`.
    pub user_agent: Option<String>,
    /// Call-ID of the last REGISTER.
    pub call_id: String,
    /// CSeq number of the last REGISTER.
    pub cseq: u32,
    /// First registered.
    pub created_at: DateTime<Utc>,
    /// Last refreshed.
    pub updated_at: DateTime<Utc>,
}

/// Filters and paging of [`Store::list_registrations`]. Pages run oldest first.
#[derive(Debug, Clone, Default)]
pub struct RegistrationFilter {
    /// Only this agent's registrations.
    pub user: Option<String>,
    /// Page size, 1..=[`MAX_LIST_LIMIT`] (clamped); default [`DEFAULT_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of registrations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationPage {
    /// The registrations, oldest first.
    pub registrations: Vec<Registration>,
    /// Opaque cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RegistrationRow {
    id: Uuid,
    username: String,
    contact: String,
    source: String,
    transport: String,
    expires_at: DateTime<Utc>,
    call_id: String,
    cseq: i64,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RegistrationRow> for Registration {
    type Error = StoreError;
    fn try_from(r: RegistrationRow) -> Result<Self, StoreError> {
        Ok(Registration {
            id: r.id,
            user: r.username,
            contact: r.contact,
            source: r.source,
            transport: parse_col("transport", r.transport, RegistrationTransport::parse)?,
            expires_at: r.expires_at,
            user_agent: r.user_agent,
            call_id: r.call_id,
            cseq: u32::try_from(r.cseq).map_err(|_| StoreError::Corrupt {
                column: "cseq",
                value: r.cseq.to_string(),
            })?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const REGISTRATION_COLUMNS: &str = "id, username, contact, source, transport, expires_at, \
    call_id, cseq, user_agent, created_at, updated_at";

fn rows_into(rows: Vec<RegistrationRow>) -> Result<Vec<Registration>, StoreError> {
    rows.into_iter().map(Registration::try_from).collect()
}

impl Store {
    /// Inserts the registration of `(user, contact)`, or refreshes the existing row (source,
    /// transport, expiry, Call-ID, CSeq, User-Agent; its id and `created_at` stay).
    pub async fn upsert_registration(
        &self,
        r: &NewRegistration,
    ) -> Result<Registration, StoreError> {
        let sql = format!(
            "INSERT INTO registrations (id, username, contact, source, transport, expires_at, \
             call_id, cseq, user_agent, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (username, contact) DO UPDATE SET source = excluded.source, \
             transport = excluded.transport, expires_at = excluded.expires_at, \
             call_id = excluded.call_id, cseq = excluded.cseq, \
             user_agent = excluded.user_agent, updated_at = excluded.updated_at \
             RETURNING {REGISTRATION_COLUMNS}"
        );
        let row: RegistrationRow = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(r.id)
                .bind(&r.user)
                .bind(&r.contact)
                .bind(&r.source)
                .bind(r.transport.as_str())
                .bind(micros(r.expires_at))
                .bind(&r.call_id)
                .bind(i64::from(r.cseq))
                .bind(&r.user_agent)
                .bind(micros(r.at))
                .fetch_one(p)
                .await?
        });
        row.try_into()
    }

    /// Deletes the registration of `(user, contact)`; returns the row it deleted, `None` if
    /// there was none.
    pub async fn delete_registration(
        &self,
        user: &str,
        contact: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let sql = format!(
            "DELETE FROM registrations WHERE username = $1 AND contact = $2 \
             RETURNING {REGISTRATION_COLUMNS}"
        );
        let row: Option<RegistrationRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(user)
            .bind(contact)
            .fetch_optional(p)
            .await?);
        row.map(Registration::try_from).transpose()
    }

    /// Every stored registration, expired ones included, oldest first: what the registrar
    /// loads at start (it removes the expired ones through the usual path, with their event).
    pub async fn all_registrations(&self) -> Result<Vec<Registration>, StoreError> {
        let sql =
            format!("SELECT {REGISTRATION_COLUMNS} FROM registrations ORDER BY created_at, id");
        let rows: Vec<RegistrationRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        rows_into(rows)
    }

    /// A page of the registrations not expired at `now`, oldest first, by keyset pagination
    /// on `(created_at, id)`.
    pub async fn list_registrations(
        &self,
        f: &RegistrationFilter,
        now: DateTime<Utc>,
    ) -> Result<RegistrationPage, StoreError> {
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
            "SELECT {REGISTRATION_COLUMNS} FROM registrations \
             WHERE expires_at > $1 \
             AND ($2 IS NULL OR username = $2) \
             AND ($3 IS NULL OR created_at > $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at, id LIMIT $5"
        );
        let rows: Vec<RegistrationRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(micros(now))
                .bind(f.user.as_deref())
                .bind(cur_ts)
                .bind(cur_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?
        });
        let mut registrations = rows_into(rows)?;
        let next_cursor = if registrations.len() > limit as usize {
            registrations.truncate(limit as usize);
            registrations
                .last()
                .map(|r| encode_cursor(r.created_at, r.id))
        } else {
            None
        };
        Ok(RegistrationPage {
            registrations,
            next_cursor,
        })
    }
}
