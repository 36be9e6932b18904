//! `/v1/recordings`: start (of a call or a conference), pause, resume, stop, list, fetch,
//! download and delete recordings.
//!
//! The resource never shows the file's path: the audio is served by id from the path in the
//! store (`GET /v1/recordings/{id}/audio`).
//!
//! # Downloads and `Range`
//!
//! The audio is `audio/wav` with `Accept-Ranges: bytes`. One range (`bytes=a-b`, `bytes=a-`,
//! `bytes=-n`) is answered 206 with `Content-Range: bytes a-b/len`; a range starting past the
//! end (or `-0`) is 416 with `Content-Range: bytes */len`. A malformed header, another unit or
//! several ranges are ignored and the whole file is sent with 200, as RFC 9110 §14.2 allows.
//! A live recording may be downloaded as it is so far (the writer keeps the header valid).

use super::conferences::{check_limit, list_err};
use super::error::ApiError;
use super::state::AppState;
use crate::call::{EngineError, RecordingInfo, RecordingSpec, RecordingTarget};
use crate::retention::{self, DeleteError};
use crate::store::{Recording, RecordingFilter, RecordingStatus, StoreError};
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::ToSchema;
use uuid::Uuid;

/// Bytes read from the file per chunk of a download.
pub const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;
/// After a stop, how long the handler waits for the store row to carry the file's summary
/// before answering with the engine's snapshot instead (`stopping: true`).
pub const STOP_SUMMARY_WAIT: Duration = Duration::from_secs(2);

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calls/{id}/recordings", post(start_call_recording))
        .route(
            "/conferences/{id}/recordings",
            post(start_conference_recording),
        )
        .route("/recordings", get(list_recordings))
        .route(
            "/recordings/{id}",
            get(get_recording).delete(delete_recording),
        )
        .route("/recordings/{id}/audio", get(audio))
        .route("/recordings/{id}/pause", post(pause))
        .route("/recordings/{id}/resume", post(resume))
        .route("/recordings/{id}/stop", post(stop))
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::Internal(e.into())
}

/// A recording as the API shows it (never its server path).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordingResource {
    /// Id.
    pub id: Uuid,
    /// The recorded call, for a call recording.
    pub call_id: Option<Uuid>,
    /// The recorded conference, for a conference recording.
    pub conference_id: Option<Uuid>,
    /// `recording`, `paused`, `completed`, `interrupted` or `failed`.
    pub status: String,
    /// A stop was asked for and the file is being finalized (the summary fields follow).
    pub stopping: bool,
    /// Started (RFC 3339, UTC).
    pub started_at: DateTime<Utc>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Audio length, ms (once ended).
    pub duration_ms: Option<i64>,
    /// File size, bytes (once ended).
    pub size_bytes: Option<u64>,
    /// Channels (2: left the far end or the chosen participant, right the rest).
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Lowercase hex SHA-256 of the file (once ended).
    pub sha256: Option<String>,
    /// Why it failed, or what the repair after a crash found.
    pub error: Option<String>,
}

impl From<Recording> for RecordingResource {
    fn from(r: Recording) -> Self {
        RecordingResource {
            id: r.id,
            call_id: r.call_id,
            conference_id: r.conference_id,
            status: r.status.as_str().into(),
            stopping: false,
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            channels: r.channels,
            sample_rate: r.sample_rate,
            sha256: r.sha256,
            error: r.error,
        }
    }
}

impl From<RecordingInfo> for RecordingResource {
    fn from(r: RecordingInfo) -> Self {
        RecordingResource {
            id: r.id,
            call_id: r.call_id,
            conference_id: r.conference_id,
            status: r.status.as_str().into(),
            stopping: r.stopping,
            started_at: r.started_at,
            ended_at: None,
            duration_ms: None,
            size_bytes: None,
            channels: r.channels,
            sample_rate: r.sample_rate,
            sha256: None,
            error: None,
        }
    }
}

/// A page of recordings.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingList {
    /// Recordings, newest first.
    pub recordings: Vec<RecordingResource>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/recordings` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecordingListQuery {
    /// Only recordings of this call.
    pub call_id: Option<Uuid>,
    /// Only recordings of this conference.
    pub conference_id: Option<Uuid>,
    /// `recording`, `paused`, `completed`, `interrupted` or `failed`.
    pub status: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// `POST /v1/calls/{id}/recordings` body (empty object).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCallRecording {}

/// `POST /v1/conferences/{id}/recordings` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConferenceRecording {
    /// The participant on the left channel (default: the first joined still present); the
    /// rest of the room is on the right.
    #[serde(default)]
    pub left_call_id: Option<Uuid>,
}

/// Body of an optional JSON request: none (or empty) is the default.
fn optional_body<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(b)) => Ok(b),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

/// Start recording an answered call (left: the far end, right: what we send it).
#[utoipa::path(post, path = "/v1/calls/{id}/recordings", tag = "recordings",
    params(("id" = Uuid, Path, description = "call id")), request_body = StartCallRecording,
    responses((status = 201, body = RecordingResource), (status = 404, description = "no live call", body = super::error::ErrorBody), (status = 409, description = "not answered", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn start_call_recording(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<StartCallRecording>, JsonRejection>,
) -> Result<(StatusCode, Json<RecordingResource>), ApiError> {
    let Path(id) = id?;
    optional_body(body)?;
    let spec = RecordingSpec {
        id: crate::store::new_id(st.clock.utc()),
        target: RecordingTarget::Call(id),
    };
    let info = st.engine.start_recording(spec).await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// Start recording a conference (left: one participant, right: the rest of the room).
#[utoipa::path(post, path = "/v1/conferences/{id}/recordings", tag = "recordings",
    params(("id" = Uuid, Path, description = "conference id")), request_body = StartConferenceRecording,
    responses((status = 201, body = RecordingResource), (status = 404, description = "no live conference", body = super::error::ErrorBody), (status = 409, description = "no participant to record", body = super::error::ErrorBody), (status = 422, description = "left_call_id is not a participant", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn start_conference_recording(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<StartConferenceRecording>, JsonRejection>,
) -> Result<(StatusCode, Json<RecordingResource>), ApiError> {
    let Path(id) = id?;
    let body = optional_body(body)?;
    let spec = RecordingSpec {
        id: crate::store::new_id(st.clock.utc()),
        target: RecordingTarget::Conference {
            conference_id: id,
            left: body.left_call_id,
        },
    };
    let info = st
        .engine
        .start_recording(spec)
        .await
        .map_err(|e| ApiError::from_engine(e, "left_call_id"))?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// The store's row, 404 if none.
async fn stored(st: &AppState, id: Uuid) -> Result<Recording, ApiError> {
    st.store
        .get_recording(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("recording {id}")))
}

/// An engine refusal about a recording: one the engine does not know is 409 when its row has
/// ended (stopped already), 404 when there is no row.
async fn recording_err(st: &AppState, id: Uuid, e: EngineError) -> ApiError {
    if let EngineError::RecordingNotFound(_) = e {
        return match stored(st, id).await {
            Ok(r) if !r.status.is_live() => {
                ApiError::Conflict(format!("recording {id} is stopped already ({})", r.status))
            }
            // A live row the engine does not know: a previous process left it (it is finished
            // as interrupted at the next start).
            Ok(_) => ApiError::Conflict(format!("recording {id} is not running on this node")),
            Err(e) => e,
        };
    }
    e.into()
}

/// Pause a recording (frames are not written until resumed).
#[utoipa::path(post, path = "/v1/recordings/{id}/pause", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id")),
    responses((status = 200, body = RecordingResource), (status = 404, body = super::error::ErrorBody), (status = 409, description = "paused or stopped already", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn pause(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<RecordingResource>, ApiError> {
    let Path(id) = id?;
    match st.engine.pause_recording(id).await {
        Ok(info) => Ok(Json(info.into())),
        Err(e) => Err(recording_err(&st, id, e).await),
    }
}

/// Resume a paused recording.
#[utoipa::path(post, path = "/v1/recordings/{id}/resume", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id")),
    responses((status = 200, body = RecordingResource), (status = 404, body = super::error::ErrorBody), (status = 409, description = "not paused, or stopped already", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn resume(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<RecordingResource>, ApiError> {
    let Path(id) = id?;
    match st.engine.resume_recording(id).await {
        Ok(info) => Ok(Json(info.into())),
        Err(e) => Err(recording_err(&st, id, e).await),
    }
}

/// Stop a recording. The answer carries the file's summary (status `completed`, duration,
/// size, sha256) when it is written within a moment; otherwise `stopping: true`, and
/// `recording.completed` follows.
#[utoipa::path(post, path = "/v1/recordings/{id}/stop", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id")),
    responses((status = 200, body = RecordingResource), (status = 404, body = super::error::ErrorBody), (status = 409, description = "stopped already", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn stop(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<RecordingResource>, ApiError> {
    let Path(id) = id?;
    let info = match st.engine.stop_recording(id).await {
        Ok(info) => info,
        Err(e) => return Err(recording_err(&st, id, e).await),
    };
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < STOP_SUMMARY_WAIT {
        if let Some(r) = st.store.get_recording(id).await.map_err(store_err)?
            && !r.status.is_live()
        {
            return Ok(Json(r.into()));
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    Ok(Json(info.into()))
}

/// List recordings, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/recordings", tag = "recordings", params(RecordingListQuery),
    responses((status = 200, body = RecordingList), (status = 400, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_recordings(
    State(st): State<AppState>,
    q: Result<Query<RecordingListQuery>, QueryRejection>,
) -> Result<Json<RecordingList>, ApiError> {
    let Query(q) = q?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            RecordingStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    "status must be recording, paused, completed, interrupted or failed",
                )
            })
        })
        .transpose()?;
    check_limit(q.limit)?;
    let page = st
        .store
        .list_recordings(&RecordingFilter {
            call_id: q.call_id,
            conference_id: q.conference_id,
            status,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await
        .map_err(list_err)?;
    Ok(Json(RecordingList {
        recordings: page.recordings.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Fetch one recording.
#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id")),
    responses((status = 200, body = RecordingResource), (status = 404, body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_recording(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<RecordingResource>, ApiError> {
    let Path(id) = id?;
    match stored(&st, id).await {
        Ok(r) => Ok(Json(r.into())),
        // Its row is written an instant after the start: the engine knows it already.
        Err(ApiError::NotFound(m)) => match st.engine.recording(id).await {
            Ok(info) => Ok(Json(info.into())),
            Err(_) => Err(ApiError::NotFound(m)),
        },
        Err(e) => Err(e),
    }
}

/// Delete a recording: its file and its row (`recording.deleted` follows).
#[utoipa::path(delete, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id")),
    responses((status = 204, description = "deleted"), (status = 404, body = super::error::ErrorBody), (status = 409, description = "still recording or paused", body = super::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_recording(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    if st.engine.recording(id).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "recording {id} is in progress: stop it before deleting it"
        )));
    }
    let dir = st.config.recordings_dir();
    match retention::delete_recording(&st.events, st.clock.utc(), &dir, id, "api").await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(DeleteError::NotFound(_)) => Err(ApiError::NotFound(format!("recording {id}"))),
        Err(e @ DeleteError::Live(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(DeleteError::Store(e)) => Err(store_err(e)),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// What a `Range` header asks of a file of some length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range: send the whole file (200).
    Full,
    /// Send bytes `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive (< the length).
        end: u64,
    },
    /// The range lies past the end (416).
    Unsatisfiable,
}

/// Digits as a number, saturating at `u64::MAX`; `None` unless all ASCII digits and non-empty.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Reads a `Range` header (RFC 9110 §14.2) against a file of `len` bytes. Pure.
///
/// `bytes=a-b` (b clamped to the end), `bytes=a-` and `bytes=-n` (the last n bytes) are
/// honoured; a start at or past the end, or `-0`, is unsatisfiable. Anything else (no header,
/// another unit, a malformed spec, `a > b`, several ranges) is [`ByteRange::Full`].
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(h) = header else {
        return ByteRange::Full;
    };
    let h = h.trim();
    let Some(spec) = h
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| h[6..].trim())
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match digits(b) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        // `a-`: from a to the end.
        (false, true) => match digits(a) {
            None => ByteRange::Full,
            Some(start) if start >= len => ByteRange::Unsatisfiable,
            Some(start) => ByteRange::Partial {
                start,
                end: len - 1,
            },
        },
        (false, false) => match (digits(a), digits(b)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Partial {
                        start,
                        end: end.min(len - 1),
                    }
                }
            }
            _ => ByteRange::Full,
        },
        (true, true) => ByteRange::Full,
    }
}

/// Download the audio (`audio/wav`), whole or one byte range.
#[utoipa::path(get, path = "/v1/recordings/{id}/audio", tag = "recordings",
    params(("id" = Uuid, Path, description = "recording id"), ("Range" = Option<String>, Header, description = "one range: bytes=a-b, bytes=a- or bytes=-n; several ranges or a malformed header get the whole file")),
    responses(
        (status = 200, description = "the whole file", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "the range asked for (Content-Range)", content_type = "audio/wav", body = Vec<u8>),
        (status = 404, description = "no such recording, or its file is gone", body = super::error::ErrorBody),
        (status = 416, description = "range past the end (Content-Range: bytes */len)", body = super::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn audio(
    State(st): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let rec = stored(&st, id).await?;
    let missing = || ApiError::NotFound(format!("audio file of recording {id}"));
    let path =
        retention::recording_file(&st.config.recordings_dir(), &rec.path).ok_or_else(missing)?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    // The length now: a live recording keeps growing, and we send what there was.
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .len();
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, start, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len }),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let stream = async_stream::try_stream! {
        let mut left = count;
        let mut buf = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "recording file shrank while being sent",
                ))?;
            }
            left -= n as u64;
            yield bytes::Bytes::copy_from_slice(&buf[..n]);
        }
    };
    let mut resp = (
        status,
        Body::from_stream::<_>(Box::pin(stream) as BoxedChunks),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let ByteRange::Partial { start, end } = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

type BoxedChunks = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static>,
>;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(start: u64, end: u64) -> ByteRange {
        ByteRange::Partial { start, end }
    }

    #[test]
    fn no_header_or_other_unit_is_the_whole_file() {
        assert_eq!(parse_range(None, 100), ByteRange::Full);
        assert_eq!(parse_range(Some("items=0-5"), 100), ByteRange::Full);
        assert_eq!(parse_range(Some(""), 100), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes"), 100), ByteRange::Full);
    }

    #[test]
    fn closed_ranges() {
        assert_eq!(parse_range(Some("bytes=0-0"), 100), p(0, 0));
        assert_eq!(parse_range(Some("bytes=0-99"), 100), p(0, 99));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), p(10, 19));
        assert_eq!(parse_range(Some("bytes=99-99"), 100), p(99, 99));
        // The end is clamped to the last byte.
        assert_eq!(parse_range(Some("bytes=50-1000"), 100), p(50, 99));
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 100),
            p(0, 99)
        );
        // Unit case and spaces are tolerated.
        assert_eq!(parse_range(Some(" Bytes= 1 - 2 "), 100), p(1, 2));
    }

    #[test]
    fn open_and_suffix_ranges() {
        assert_eq!(parse_range(Some("bytes=0-"), 100), p(0, 99));
        assert_eq!(parse_range(Some("bytes=44-"), 100), p(44, 99));
        assert_eq!(parse_range(Some("bytes=99-"), 100), p(99, 99));
        assert_eq!(parse_range(Some("bytes=-1"), 100), p(99, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), p(90, 99));
        // A suffix longer than the file is the whole file, as a 206.
        assert_eq!(parse_range(Some("bytes=-500"), 100), p(0, 99));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=100-200"), 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=-0"), 100), ByteRange::Unsatisfiable);
        // An empty file satisfies no range.
        assert_eq!(parse_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(None, 0), ByteRange::Full);
    }

    #[test]
    fn malformed_or_multiple_ranges_are_ignored() {
        for h in [
            "bytes=",
            "bytes=-",
            "bytes=5",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=+1-2",
            "bytes=-+3",
            "bytes=20-10",
            "bytes=1--2",
            "bytes=0-1,5-6",
            "bytes=0-1, -3",
            "bytes=١-٢",
        ] {
            assert_eq!(parse_range(Some(h), 100), ByteRange::Full, "{h}");
        }
    }

    #[test]
    fn never_panics_and_stays_in_bounds() {
        let samples = [
            "bytes=0-",
            "bytes=-1",
            "bytes=3-7",
            "bytes=7-3",
            "bytes=-0",
            "bytes=9-",
            "bytes=18446744073709551615-",
            "bytes=-18446744073709551615",
        ];
        for len in [0u64, 1, 2, 10, u64::MAX] {
            for h in samples {
                if let ByteRange::Partial { start, end } = parse_range(Some(h), len) {
                    assert!(start <= end && end < len, "{h} on {len}");
                }
            }
        }
    }
}
