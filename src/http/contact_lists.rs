//! `/v1/contact-lists` and `/v1/dnc`: contact lists (create, list, fetch, rename, delete), CSV
//! import into a list (with a dry run), the list's contacts, the CSV template, and the
//! do-not-call list (add, remove, list, check, CSV import).
//!
//! Imports are read by [`crate::campaign::import`] on a blocking thread (parsing 100,000
//! numbers is CPU work), then finished by the store (duplicates in the list, do-not-call
//! numbers, batched inserts). A file that is not UTF-8, has no phone column, or has more rows
//! than `[campaigns] import_max_rows` is 422 and nothing is imported; bad rows are reported
//! with their line and reason and do not block the good ones (unless `dry_run=true`, which
//! imports nothing).

use super::campaigns::{check_limit, store_err};
use super::error::ApiError;
use super::state::AppState;
use crate::campaign::ContactStatus;
use crate::campaign::import::{
    self, BadRow, ImportError, ImportOptions, TEMPLATE_CSV, parse_mapping,
};
use crate::campaign::phone::{self, Region};
use crate::store::{Contact, ContactFilter, ContactList, DncEntry, NewContactList, new_id};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Largest CSV body accepted by the import routes (100,000 rows of ~100 bytes fit ten times).
pub const MAX_IMPORT_BYTES: usize = 100 << 20;

/// Routes of this module (merged under `/v1`), except the imports ([`import_router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contact-lists", post(create_list).get(list_lists))
        .route("/contact-lists/template.csv", get(template))
        .route(
            "/contact-lists/{id}",
            get(get_list).patch(update_list).delete(delete_list),
        )
        .route("/contact-lists/{id}/contacts", get(list_contacts))
        .route("/dnc", post(add_dnc).get(list_dnc))
        .route("/dnc/{phone}", get(check_dnc).delete(remove_dnc))
}

/// The import routes, which take bodies up to [`MAX_IMPORT_BYTES`] (merged under `/v1` with
/// their own body limit).
pub fn import_router() -> Router<AppState> {
    Router::new()
        .route("/contact-lists/{id}/import", post(import_contacts))
        .route("/dnc/import", post(import_dnc))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
}

fn region_or_default(st: &AppState, region: Option<&str>, field: &str) -> Result<Region, ApiError> {
    let code = region.unwrap_or(&st.config.server.campaigns.default_region);
    Region::parse(code).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn import_error(e: ImportError) -> ApiError {
    ApiError::invalid("body", e.to_string())
}

/// `POST /v1/contact-lists` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateList {
    /// Name (1-200 bytes).
    pub name: String,
    /// ISO region of numbers written without a country code (default from `[campaigns]`).
    #[serde(default)]
    pub default_region: Option<String>,
}

/// `PATCH /v1/contact-lists/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateList {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New default region (for later imports).
    #[serde(default)]
    pub default_region: Option<String>,
}

/// A contact list as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactListResource {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// ISO region of numbers imported without a country code.
    pub default_region: String,
    /// Contacts in the list (only in a single-list answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<u64>,
    /// Contacts by status (only in a single-list answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_status: Option<BTreeMap<String, u64>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last renamed or imported into.
    pub updated_at: DateTime<Utc>,
}

impl From<ContactList> for ContactListResource {
    fn from(l: ContactList) -> Self {
        ContactListResource {
            id: l.id,
            name: l.name,
            default_region: l.default_region,
            contacts: None,
            by_status: None,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A page of contact lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactListList {
    /// Newest first.
    pub lists: Vec<ContactListResource>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// Paging query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/contact-lists/{id}/contacts` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    /// Only contacts with this status.
    pub status: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// A contact as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactResource {
    /// Id.
    pub id: Uuid,
    /// Its list.
    pub list_id: Uuid,
    /// E.164.
    pub phone: String,
    /// Name.
    pub name: Option<String>,
    /// IANA zone (given or derived); absent: the campaign's default.
    pub timezone: Option<String>,
    /// Priority.
    pub priority: i64,
    /// Custom fields.
    #[schema(value_type = Object)]
    pub custom: serde_json::Value,
    /// `pending`, `dialing`, `retry`, `done`, `failed`, `dnc` or `skipped`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not dialled before.
    pub next_due_at: DateTime<Utc>,
    /// Imported.
    pub created_at: DateTime<Utc>,
}

impl From<Contact> for ContactResource {
    fn from(c: Contact) -> Self {
        ContactResource {
            id: c.id,
            list_id: c.list_id,
            phone: c.phone,
            name: c.name,
            timezone: c.timezone,
            priority: c.priority,
            custom: c.custom,
            status: c.status.as_str().into(),
            attempts: c.attempts,
            next_due_at: c.next_due_at,
            created_at: c.created_at,
        }
    }
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPageResource {
    /// In import order.
    pub contacts: Vec<ContactResource>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/contact-lists/{id}/import` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Only check the file and report (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// Column renames: `Mobile:phone,Zone:timezone`.
    pub mapping: Option<String>,
}

/// What an import did (or, dry run, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// Nothing was imported.
    pub dry_run: bool,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows passing every check.
    pub valid: u64,
    /// Contacts inserted.
    pub imported: u64,
    /// Every refused row with its line (the header is line 1) and reason: `invalid number`,
    /// `duplicate in file`, `duplicate in list`, `on the do-not-call list`, `bad time zone`,
    /// `bad priority`.
    pub bad: Vec<BadRow>,
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "name must be 1 to 200 bytes"));
    }
    Ok(())
}

async fn load_list(st: &AppState, id: Uuid) -> Result<ContactList, ApiError> {
    st.store
        .get_contact_list(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("contact list {id}")))
}

/// Create a contact list.
#[utoipa::path(post, path = "/v1/contact-lists", tag = "contact-lists", request_body = CreateList,
    responses((status = 201, body = ContactListResource), (status = 400, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_list(
    State(st): State<AppState>,
    body: Result<Json<CreateList>, JsonRejection>,
) -> Result<(StatusCode, Json<ContactListResource>), ApiError> {
    let Json(b) = body?;
    validate_name(&b.name)?;
    let region = region_or_default(&st, b.default_region.as_deref(), "default_region")?;
    let now = st.clock.utc();
    let l = st
        .store
        .insert_contact_list(&NewContactList {
            id: new_id(now),
            name: b.name,
            default_region: region.code(),
            created_at: now,
        })
        .await
        .map_err(store_err)?;
    let mut r = ContactListResource::from(l);
    r.contacts = Some(0);
    r.by_status = Some(BTreeMap::new());
    Ok((StatusCode::CREATED, Json(r)))
}

/// List contact lists, newest first.
#[utoipa::path(get, path = "/v1/contact-lists", tag = "contact-lists", params(PageQuery),
    responses((status = 200, body = ContactListList), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_lists(
    State(st): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ContactListList>, ApiError> {
    let Query(q) = q?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_contact_lists(q.limit, q.cursor.as_deref())
        .await
        .map_err(store_err)?;
    Ok(Json(ContactListList {
        lists: page.lists.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Fetch a contact list with its counts by status.
#[utoipa::path(get, path = "/v1/contact-lists/{id}", tag = "contact-lists",
    params(("id" = Uuid, Path, description = "list id")),
    responses((status = 200, body = ContactListResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_list(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<ContactListResource>, ApiError> {
    let Path(id) = id?;
    let l = load_list(&st, id).await?;
    let counts = st.store.contact_counts(id).await.map_err(store_err)?;
    let mut r = ContactListResource::from(l);
    r.contacts = Some(counts.iter().map(|(_, n)| n).sum());
    r.by_status = Some(
        counts
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
    );
    Ok(Json(r))
}

/// Rename a list or change its default region.
#[utoipa::path(patch, path = "/v1/contact-lists/{id}", tag = "contact-lists", request_body = UpdateList,
    params(("id" = Uuid, Path, description = "list id")),
    responses((status = 200, body = ContactListResource), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn update_list(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<UpdateList>, JsonRejection>,
) -> Result<Json<ContactListResource>, ApiError> {
    let Path(id) = id?;
    let Json(b) = body?;
    let l = load_list(&st, id).await?;
    let name = b.name.unwrap_or(l.name);
    validate_name(&name)?;
    let region = match b.default_region {
        Some(r) => region_or_default(&st, Some(&r), "default_region")?.code(),
        None => l.default_region,
    };
    let l = st
        .store
        .update_contact_list(id, &name, &region, st.clock.utc())
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("contact list {id}")))?;
    Ok(Json(l.into()))
}

/// Delete a list and its contacts (409 while a campaign uses it).
#[utoipa::path(delete, path = "/v1/contact-lists/{id}", tag = "contact-lists",
    params(("id" = Uuid, Path, description = "list id")),
    responses((status = 204, description = "deleted"), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "a campaign uses it", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_list(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    load_list(&st, id).await?;
    if st.store.delete_contact_list(id).await.map_err(store_err)? {
        return Ok(StatusCode::NO_CONTENT);
    }
    let using = st.store.campaigns_using_list(id).await.map_err(store_err)?;
    Err(ApiError::Conflict(format!(
        "contact list {id} is used by {using} campaign(s)"
    )))
}

/// A list's contacts in import order.
#[utoipa::path(get, path = "/v1/contact-lists/{id}/contacts", tag = "contact-lists",
    params(("id" = Uuid, Path, description = "list id"), ContactQuery),
    responses((status = 200, body = ContactPageResource), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_contacts(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    q: Result<Query<ContactQuery>, QueryRejection>,
) -> Result<Json<ContactPageResource>, ApiError> {
    let Path(id) = id?;
    let Query(q) = q?;
    check_limit(q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ContactStatus::parse(s)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status {s:?}")))
        })
        .transpose()?;
    load_list(&st, id).await?;
    let page = st
        .store
        .list_contacts(
            id,
            &ContactFilter {
                status,
                limit: q.limit,
                cursor: q.cursor,
            },
        )
        .await
        .map_err(store_err)?;
    Ok(Json(ContactPageResource {
        contacts: page.contacts.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The CSV template of a contact import.
#[utoipa::path(get, path = "/v1/contact-lists/template.csv", tag = "contact-lists",
    responses((status = 200, description = "CSV", content_type = "text/csv", body = String)),
    security(("api_key" = [])))]
pub async fn template() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contacts-template.csv\"",
            ),
        ],
        TEMPLATE_CSV,
    )
}

/// Import contacts from a CSV body (header row; `phone` required, `name`, `timezone`,
/// `priority`, anything else into custom fields).
#[utoipa::path(post, path = "/v1/contact-lists/{id}/import", tag = "contact-lists",
    params(("id" = Uuid, Path, description = "list id"), ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "imported (or checked, dry run); bad rows reported", body = ImportReport),
        (status = 404, body = super::error::ErrorBody),
        (status = 422, description = "not UTF-8, no phone column, over the row limit, malformed: nothing imported", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn import_contacts(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    q: Result<Query<ImportQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    let Path(id) = id?;
    let Query(q) = q?;
    let list = load_list(&st, id).await?;
    let mapping = match q.mapping.as_deref() {
        Some(m) => parse_mapping(m).map_err(|e| ApiError::invalid("mapping", e))?,
        None => Default::default(),
    };
    let opts = ImportOptions {
        default_region: region_or_default(&st, Some(&list.default_region), "default_region")?,
        max_rows: st.config.server.campaigns.import_max_rows,
        mapping,
    };
    let validated =
        tokio::task::spawn_blocking(move || import::validate_contacts(&body[..], &opts))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(import_error)?;
    let summary = st
        .store
        .import_contacts(id, validated, st.clock.utc(), q.dry_run)
        .await
        .map_err(store_err)?;
    Ok(Json(ImportReport {
        dry_run: q.dry_run,
        rows: summary.rows,
        valid: summary.valid,
        imported: summary.imported,
        bad: summary.bad,
    }))
}

/// `POST /v1/dnc` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDnc {
    /// The number (E.164, or national in `region`).
    pub phone: String,
    /// Why (free text, at most 500 bytes).
    #[serde(default)]
    pub reason: Option<String>,
    /// Region of a national number (default from `[campaigns]`).
    #[serde(default)]
    pub region: Option<String>,
}

/// A do-not-call entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncResource {
    /// E.164.
    pub phone: String,
    /// Why.
    pub reason: Option<String>,
    /// Added.
    pub added_at: DateTime<Utc>,
}

impl From<DncEntry> for DncResource {
    fn from(e: DncEntry) -> Self {
        DncResource {
            phone: e.phone,
            reason: e.reason,
            added_at: e.added_at,
        }
    }
}

/// A page of the do-not-call list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncList {
    /// In number order.
    pub entries: Vec<DncResource>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/dnc/{phone}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncCheck {
    /// The number, normalised.
    pub phone: String,
    /// Whether it is on the list.
    pub listed: bool,
    /// Its entry when listed.
    pub entry: Option<DncResource>,
}

/// `?region=` of the do-not-call routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegionQuery {
    /// Region of national numbers (default from `[campaigns]`).
    pub region: Option<String>,
}

/// Report of a do-not-call import.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncImportReport {
    /// Data rows.
    pub rows: u64,
    /// Numbers added.
    pub added: u64,
    /// Valid numbers that were listed already.
    pub already_listed: u64,
    /// Refused rows (`invalid number`, `duplicate in file`).
    pub bad: Vec<BadRow>,
}

fn normalise(st: &AppState, phone_in: &str, region: Option<&str>) -> Result<String, ApiError> {
    let region = region_or_default(st, region, "region")?;
    phone::normalise(phone_in, region)
        .map(|n| n.e164)
        .map_err(|e| ApiError::invalid("phone", format!("invalid number {phone_in:?}: {e}")))
}

/// Put a number on the do-not-call list; contacts with it still to be dialled become `dnc`,
/// and the claim checks the list at dial time.
#[utoipa::path(post, path = "/v1/dnc", tag = "dnc", request_body = AddDnc,
    responses((status = 201, description = "added", body = DncResource),
        (status = 200, description = "listed already (entry unchanged)", body = DncResource),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_dnc(
    State(st): State<AppState>,
    body: Result<Json<AddDnc>, JsonRejection>,
) -> Result<(StatusCode, Json<DncResource>), ApiError> {
    let Json(b) = body?;
    let phone = normalise(&st, &b.phone, b.region.as_deref())?;
    if b.reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(ApiError::invalid(
            "reason",
            "reason must be at most 500 bytes",
        ));
    }
    let (entry, new) = st
        .store
        .add_dnc(&phone, b.reason.as_deref(), st.clock.utc())
        .await
        .map_err(store_err)?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry.into())))
}

/// List the do-not-call numbers.
#[utoipa::path(get, path = "/v1/dnc", tag = "dnc", params(PageQuery),
    responses((status = 200, body = DncList), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_dnc(
    State(st): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<DncList>, ApiError> {
    let Query(q) = q?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_dnc(q.limit, q.cursor.as_deref())
        .await
        .map_err(store_err)?;
    Ok(Json(DncList {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Check a number against the do-not-call list.
#[utoipa::path(get, path = "/v1/dnc/{phone}", tag = "dnc",
    params(("phone" = String, Path, description = "the number (E.164, or national in region)"), RegionQuery),
    responses((status = 200, body = DncCheck), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn check_dnc(
    State(st): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<RegionQuery>, QueryRejection>,
) -> Result<Json<DncCheck>, ApiError> {
    let Path(p) = p?;
    let Query(q) = q?;
    let phone = normalise(&st, &p, q.region.as_deref())?;
    let entry = st.store.get_dnc(&phone).await.map_err(store_err)?;
    Ok(Json(DncCheck {
        phone,
        listed: entry.is_some(),
        entry: entry.map(Into::into),
    }))
}

/// Take a number off the do-not-call list (contacts already marked `dnc` stay so).
#[utoipa::path(delete, path = "/v1/dnc/{phone}", tag = "dnc",
    params(("phone" = String, Path, description = "the number"), RegionQuery),
    responses((status = 204, description = "removed"), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_dnc(
    State(st): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<RegionQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(p) = p?;
    let Query(q) = q?;
    let phone = normalise(&st, &p, q.region.as_deref())?;
    if st.store.remove_dnc(&phone).await.map_err(store_err)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "{phone} on the do-not-call list"
        )))
    }
}

/// Import do-not-call numbers from a CSV body (`phone` column, optional `reason`).
#[utoipa::path(post, path = "/v1/dnc/import", tag = "dnc", params(RegionQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = DncImportReport),
        (status = 422, description = "not UTF-8, no phone column, over the row limit: nothing imported", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn import_dnc(
    State(st): State<AppState>,
    q: Result<Query<RegionQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<DncImportReport>, ApiError> {
    let Query(q) = q?;
    let region = region_or_default(&st, q.region.as_deref(), "region")?;
    let max_rows = st.config.server.campaigns.import_max_rows;
    let (good, bad, rows) =
        tokio::task::spawn_blocking(move || import::validate_dnc(&body[..], region, max_rows))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(import_error)?;
    let added = st
        .store
        .insert_dnc(&good, st.clock.utc())
        .await
        .map_err(store_err)?;
    Ok(Json(DncImportReport {
        rows,
        added,
        already_listed: good.len() as u64 - added,
        bad,
    }))
}
