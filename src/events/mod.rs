//! Events: the event log, the durable webhook outbox with signed delivery, SSE fan-out. Driver.
//!
//! Every state change is published through the [`EventBus`]: it is stored first (the event and
//! its outbox row in one transaction, [`Store::insert_event`]), then broadcast to live
//! subscribers (`GET /v1/events`), and the outbox driver ([`run_outbox`]) is woken to deliver it
//! to the call's status callback URL. Delivery is at-least-once with the event id in a header
//! for de-duplication; see [`outbox`] for retries and order and [`signature`] for the signature.
//!
//! Subscribers get events through a `tokio::sync::broadcast` channel of
//! [`EVENT_BROADCAST_CAPACITY`]: the publisher never waits for a subscriber; one that falls
//! further behind is told how many events it missed (`RecvError::Lagged(n)`) and can fetch them
//! with [`EventBus::events_since`], which is also how an SSE client resumes with
//! `Last-Event-ID` (the event's `seq`).

pub mod outbox;
pub mod signature;

pub use outbox::{AfterFailure, OutboxConfig, after_failure, backoff, run_outbox};
pub use signature::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature};

use crate::store::{CallWrite, Store, StoreError, new_id};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{Mutex, broadcast};
use uuid::Uuid;

/// Events buffered per live subscriber before it is told it lagged. At 20 ms per media frame
/// this is far more than a call produces; it bounds memory when an SSE client stalls.
pub const EVENT_BROADCAST_CAPACITY: usize = 1024;

/// The event kinds of a call's life, in the order a receiver sees them.
pub mod kinds {
    /// A call was created (outbound: INVITE about to be sent; inbound: INVITE received).
    pub const CALL_INITIATED: &str = "call.initiated";
    /// The far end is ringing.
    pub const CALL_RINGING: &str = "call.ringing";
    /// The call was answered.
    pub const CALL_ANSWERED: &str = "call.answered";
    /// The call ended; the payload carries its one final status.
    pub const CALL_COMPLETED: &str = "call.completed";
    /// The final answering-machine verdict of a call (also stored on its row).
    pub const AMD_COMPLETED: &str = "amd.completed";
    /// A conference started (its first `start_on_enter` participant joined).
    pub const CONFERENCE_STARTED: &str = "conference.started";
    /// A conference ended; the payload carries the reason.
    pub const CONFERENCE_ENDED: &str = "conference.ended";
    /// A call joined a conference.
    pub const PARTICIPANT_JOINED: &str = "conference.participant.joined";
    /// A call left a conference (hung up, removed, moved, or the room ended).
    pub const PARTICIPANT_LEFT: &str = "conference.participant.left";
    /// A participant was muted.
    pub const PARTICIPANT_MUTED: &str = "conference.participant.muted";
    /// A participant was unmuted.
    pub const PARTICIPANT_UNMUTED: &str = "conference.participant.unmuted";
    /// A participant's deaf, hold or role changed.
    pub const PARTICIPANT_UPDATED: &str = "conference.participant.updated";
    /// A prompt started playing to a call or a room.
    pub const PLAY_STARTED: &str = "play.started";
    /// A prompt played to its end, or was stopped (`stopped: true`).
    pub const PLAY_FINISHED: &str = "play.finished";
    /// A recording started.
    pub const RECORDING_STARTED: &str = "recording.started";
    /// A recording was paused.
    pub const RECORDING_PAUSED: &str = "recording.paused";
    /// A paused recording was resumed.
    pub const RECORDING_RESUMED: &str = "recording.resumed";
    /// A recording ended (status `completed`, `failed` or `interrupted`).
    pub const RECORDING_COMPLETED: &str = "recording.completed";
    /// A recording's file and row were deleted (`reason`: `api` or `retention`).
    pub const RECORDING_DELETED: &str = "recording.deleted";
    /// An inbound call ended without an agent answering (exactly one per missed call).
    pub const CALL_MISSED: &str = "call.missed";
    /// A voicemail message was recorded (recording id and duration).
    pub const VOICEMAIL_CREATED: &str = "voicemail.created";
    /// The follow-up text of a missed call, POSTed to the number's follow-up URL.
    pub const FOLLOWUP_TEXT: &str = "followup.text";
    /// An agent registered a new contact (refreshes publish nothing).
    pub const REGISTRATION_CREATED: &str = "registration.created";
    /// A registered contact went (`reason`: `unregister`, `expired` or `keepalive`).
    pub const REGISTRATION_REMOVED: &str = "registration.removed";
}

/// A state change, stored before it is delivered. Serialised as the webhook body and SSE data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID v7); receivers de-duplicate on it.
    pub id: Uuid,
    /// Position in the event log, increasing in commit order; the SSE `id:` field.
    pub seq: i64,
    /// What happened, e.g. `call.initiated`, `call.ringing`, `call.answered`, `call.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The call concerned, if any.
    pub call_id: Option<Uuid>,
    /// Details (for call events: the call's fields at that moment).
    pub payload: serde_json::Value,
    /// When it happened (UTC, RFC 3339 in JSON).
    pub created_at: DateTime<Utc>,
}

/// Publishes events: store, then broadcast, then wake the outbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    store: Store,
    tx: broadcast::Sender<Arc<Event>>,
    /// Held from the insert to the broadcast so live subscribers see events in `seq` order.
    order: Arc<Mutex<()>>,
}

impl EventBus {
    /// A bus publishing into `store` (give the same store, or a clone, to [`run_outbox`]).
    pub fn new(store: Store) -> Self {
        let (tx, _) = broadcast::channel(EVENT_BROADCAST_CAPACITY);
        Self {
            store,
            tx,
            order: Arc::new(Mutex::new(())),
        }
    }

    /// The store this bus writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores an event (and, with a `webhook_url`, its outbox row, in the same transaction),
    /// then broadcasts it to subscribers and wakes the outbox. `now_wall` is the event time from
    /// the injected clock. Returns the stored event.
    pub async fn publish(
        &self,
        now_wall: DateTime<Utc>,
        kind: &str,
        call_id: Option<Uuid>,
        payload: serde_json::Value,
        webhook_url: Option<&str>,
    ) -> Result<Arc<Event>, StoreError> {
        let urls: Vec<&str> = webhook_url.into_iter().collect();
        let _order = self.order.lock().await;
        let event = self
            .store
            .insert_event(new_id(now_wall), kind, call_id, &payload, now_wall, &urls)
            .await?;
        let event = Arc::new(event);
        // No subscribers is not an error: events are in the store.
        let _ = self.tx.send(Arc::clone(&event));
        Ok(event)
    }

    /// Writes call-row changes and their events in one transaction ([`Store::write_batch`]),
    /// then broadcasts the stored events in order (the outbox is woken by the store). Returns,
    /// per write, the stored event or `None` where the change did not apply. Like
    /// [`EventBus::publish`], it holds the order lock from the insert to the broadcast.
    pub async fn publish_batch(
        &self,
        writes: &[CallWrite],
    ) -> Result<Vec<Option<Arc<Event>>>, StoreError> {
        let _order = self.order.lock().await;
        let events = self.store.write_batch(writes).await?;
        Ok(events
            .into_iter()
            .map(|e| {
                e.map(|e| {
                    let e = Arc::new(e);
                    // No subscribers is not an error: events are in the store.
                    let _ = self.tx.send(Arc::clone(&e));
                    e
                })
            })
            .collect())
    }

    /// Records a missed call ([`Store::record_missed`]: row, `call.missed` and follow-up in
    /// one transaction), then broadcasts its events. `None` when the call was already missed.
    pub async fn publish_missed(
        &self,
        m: &crate::inbound::followup::MissedCall,
        now_wall: DateTime<Utc>,
    ) -> Result<Option<crate::store::RecordedMissed>, StoreError> {
        let _order = self.order.lock().await;
        let r = self.store.record_missed(m, now_wall).await?;
        if let Some(r) = &r {
            // The follow-up's event was stored first (lower seq).
            if let Some(f) = &r.followup {
                let _ = self.tx.send(Arc::new(f.clone()));
            }
            let _ = self.tx.send(Arc::new(r.event.clone()));
        }
        Ok(r)
    }

    /// A receiver of every event published after this call. To resume a client without a gap
    /// (SSE `Last-Event-ID`), subscribe first, then send [`EventBus::events_since`] of the
    /// client's last seq, then the live events with a `seq` above the last one sent.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Stored events with `seq > after_seq`, oldest first, at most `limit` (SSE resume).
    pub async fn events_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.store.events_since(after_seq, limit).await
    }
}
