//! `GET /v1/events`: the event log as Server-Sent Events, live, resumable with `Last-Event-ID`.
//!
//! A client first gets the stored events after `Last-Event-ID` (or none when absent), then the
//! live ones. A client too slow for the live stream is not allowed to hold the publisher back:
//! it receives the events it missed from the store and continues.

use super::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use std::convert::Infallible;
use std::time::Duration;

/// Stored events sent per catch-up query.
const CATCH_UP_BATCH: u32 = 500;

/// Routes of this module (merged under `/v1`).
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(stream))
}

fn to_sse(e: &crate::events::Event) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.clone())
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// Stream events (SSE). Each SSE `id` is the event's `seq`; `event` is its type; `data` its JSON.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this seq")),
    responses((status = 200, description = "text/event-stream of events", content_type = "text/event-stream")),
    security(("api_key" = [])))]
pub async fn stream(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut last: Option<i64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut rx = st.events.subscribe();
    let bus = st.events.clone();
    let s = async_stream::stream! {
        loop {
            // Catch up from the store when resuming, or after lagging behind the live channel.
            if let Some(after) = last {
                loop {
                    match bus.events_since(last.unwrap_or(after), CATCH_UP_BATCH).await {
                        Ok(batch) if !batch.is_empty() => {
                            for e in &batch {
                                last = Some(e.seq);
                                yield Ok(to_sse(e));
                            }
                            if batch.len() < CATCH_UP_BATCH as usize { break; }
                        }
                        Ok(_) => break,
                        Err(e) => { tracing::warn!(error = %e, "sse catch-up failed"); break; }
                    }
                }
            }
            match rx.recv().await {
                Ok(e) => {
                    if last.is_some_and(|l| e.seq <= l) { continue; }
                    last = Some(e.seq);
                    yield Ok(to_sse(&e));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some live events: the store has them; loop to catch up from the
                    // last one sent (a client that has received nothing yet starts live).
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
