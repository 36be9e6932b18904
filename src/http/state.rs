//! The state every handler gets: cheap handles only (store pool, engine sender, clock).

use crate::call::EngineHandle;
use crate::clock::Clock;
use crate::config::Config;
use crate::dialer::runner::sessions::SessionsHandle;
use crate::events::EventBus;
use crate::media::player::PromptCache;
use crate::store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::{Arc, Mutex};

/// Shared state of the HTTP API.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Commands to the call engine.
    pub engine: EngineHandle,
    /// The event log and its live subscribers.
    pub events: EventBus,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Configuration (trunks, defaults).
    pub config: Arc<Config>,
    /// Decoded prompts (std mutex: short sections, never held across `.await`).
    pub prompts: Arc<Mutex<PromptCache>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Requests to the dialer's agent sessions.
    pub sessions: SessionsHandle,
}
