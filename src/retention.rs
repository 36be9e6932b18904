//! Recording files outside the media path (driver): deleting one recording by id (the API's
//! `DELETE /v1/recordings/{id}`) and the retention job that deletes old ones.
//!
//! A deletion removes the file first, then the row, then publishes `recording.deleted` (with
//! the reason, `api` or `retention`) to the recorded call's or room's status callback. A file
//! already gone is not an error: the row still goes. A live recording (`recording`/`paused`)
//! is never deleted.
//!
//! Paths come from the store (relative to the recordings folder), never from a request, and a
//! stored path that would leave the folder (`..`, absolute) is refused rather than followed.
//!
//! # Retention
//!
//! With `[recordings] retention_days = N` (N > 0), [`run_retention`] runs [`retention_pass`]
//! at start and then every [`RETENTION_INTERVAL`]: recordings that ended more than N days ago
//! (by the injected clock) are deleted in batches of [`RETENTION_BATCH`], oldest first.

use crate::clock::Clock;
use crate::events::{EventBus, kinds};
use crate::store::{Recording, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How often the retention job runs after its first pass at start.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Rows fetched per query by a retention pass.
pub const RETENTION_BATCH: u32 = 100;

/// Why a recording was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such recording.
    #[error("recording {0} not found")]
    NotFound(Uuid),
    /// It is still recording or paused.
    #[error("recording {0} is in progress: stop it before deleting it")]
    Live(Uuid),
    /// Its stored path would leave the recordings folder.
    #[error("recording {0} has an invalid stored path")]
    BadPath(Uuid),
    /// The file could not be removed.
    #[error("cannot remove the file of recording {id}: {source}")]
    Io {
        /// The recording.
        id: Uuid,
        /// The cause.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The file of a recording: `rel` (as stored) under `dir`, or `None` if `rel` is empty,
/// absolute or climbs out of `dir`.
pub fn recording_file(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let mut any = false;
    for c in rel.components() {
        match c {
            Component::Normal(_) => any = true,
            Component::CurDir => {}
            _ => return None,
        }
    }
    any.then(|| dir.join(rel))
}

/// Deletes one ended recording: file (missing is fine), row, then `recording.deleted` with
/// `reason`. Returns the deleted row.
pub async fn delete_recording(
    bus: &EventBus,
    now: DateTime<Utc>,
    dir: &Path,
    id: Uuid,
    reason: &str,
) -> Result<Recording, DeleteError> {
    let store = bus.store();
    let rec = store
        .get_recording(id)
        .await?
        .ok_or(DeleteError::NotFound(id))?;
    if rec.status.is_live() {
        return Err(DeleteError::Live(id));
    }
    let file = recording_file(dir, &rec.path).ok_or(DeleteError::BadPath(id))?;
    match tokio::fs::remove_file(&file).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(DeleteError::Io { id, source }),
    }
    let rec = store
        .delete_recording(id)
        .await?
        .ok_or(DeleteError::NotFound(id))?;
    let callback = callback_of(store, &rec).await?;
    let payload = serde_json::json!({
        "recording_id": rec.id,
        "call_id": rec.call_id,
        "conference_id": rec.conference_id,
        "status": rec.status,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "duration_ms": rec.duration_ms,
        "reason": reason,
    });
    bus.publish(
        now,
        kinds::RECORDING_DELETED,
        rec.call_id,
        payload,
        callback.as_deref(),
    )
    .await?;
    Ok(rec)
}

/// The status callback of the recorded call, or else of the recorded room.
async fn callback_of(store: &Store, rec: &Recording) -> Result<Option<String>, StoreError> {
    if let Some(c) = rec.call_id
        && let Some(call) = store.get_call(c).await?
        && call.status_callback.is_some()
    {
        return Ok(call.status_callback);
    }
    if let Some(c) = rec.conference_id
        && let Some(room) = store.get_conference(c).await?
    {
        return Ok(room.status_callback);
    }
    Ok(None)
}

/// One retention pass: deletes every ended recording that ended (or, without an end time, was
/// created) more than `retention_days` days before the clock's now. `0` deletes nothing.
/// Returns how many were deleted. A file that cannot be removed is logged and its row kept
/// for the next pass.
pub async fn retention_pass(
    bus: &EventBus,
    clock: &dyn Clock,
    dir: &Path,
    retention_days: u32,
) -> Result<usize, StoreError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let now = clock.utc();
    let cutoff = now - TimeDelta::days(i64::from(retention_days));
    let mut deleted = 0;
    loop {
        let batch = bus
            .store()
            .recordings_older_than(cutoff, RETENTION_BATCH)
            .await?;
        let mut progress = 0;
        for rec in &batch {
            if rec.ended_at.unwrap_or(rec.created_at) >= cutoff {
                continue;
            }
            match delete_recording(bus, now, dir, rec.id, "retention").await {
                Ok(_) => progress += 1,
                // Gone or changed since the query: nothing to do.
                Err(DeleteError::NotFound(_) | DeleteError::Live(_)) => {}
                Err(DeleteError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(recording = %rec.id, error = %e, "retention: recording kept")
                }
            }
        }
        deleted += progress;
        if batch.len() < RETENTION_BATCH as usize || progress == 0 {
            return Ok(deleted);
        }
    }
}

/// The retention job: a pass at once, then one every `interval`, until `shutdown` resolves.
/// Does nothing (and returns at once) when `retention_days` is 0.
pub async fn run_retention(
    bus: EventBus,
    clock: Arc<dyn Clock>,
    dir: PathBuf,
    retention_days: u32,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    if retention_days == 0 {
        return;
    }
    tokio::pin!(shutdown);
    loop {
        match retention_pass(&bus, clock.as_ref(), &dir, retention_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days, "retention: recordings deleted"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next time"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_stay_in_the_folder() {
        let dir = Path::new("rec");
        assert_eq!(
            recording_file(dir, "2024/05/01/x.wav"),
            Some(PathBuf::from("rec/2024/05/01/x.wav"))
        );
        assert_eq!(
            recording_file(dir, "./a.wav"),
            Some(PathBuf::from("rec/./a.wav"))
        );
        assert_eq!(recording_file(dir, ""), None);
        assert_eq!(recording_file(dir, "."), None);
        assert_eq!(recording_file(dir, "../etc/passwd"), None);
        assert_eq!(recording_file(dir, "a/../../b.wav"), None);
        assert_eq!(recording_file(dir, "/etc/passwd"), None);
    }
}
