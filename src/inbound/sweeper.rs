//! The missed-call sweeper and pruner (driver).
//!
//! - [`sweep_undecided`] runs at start-up, before the engine: an inbound call of this node
//!   whose outcome was never decided (the process died while it rang) cannot be live in a new
//!   process. It gets its one `call.missed` with reason `restart` (and the number's
//!   follow-up), and its call row is ended. The missed-call row's unique constraint makes a
//!   second sweep (another restart, or another node sweeping too) write nothing. Other nodes'
//!   calls are left to them (they may be ringing right now on a live node), unless they are
//!   older than [`STALE_AFTER`]: then their node is presumed gone and any node decides them.
//! - [`run_prune`] deletes processed missed-call records after `[inbound]
//!   missed_retention_days`, at start and then every [`PRUNE_INTERVAL`].

use crate::clock::Clock;
use crate::config::Config;
use crate::events::{EventBus, kinds};
use crate::inbound::MissReason;
use crate::inbound::followup::{FollowupPlan, MissedCall};
use crate::store::{EndedBy, FinalStatus, RtpStats, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Age after which another node's undecided inbound call is swept by a node starting (no call
/// rings or records a voicemail for this long; its node is presumed gone).
pub const STALE_AFTER: TimeDelta = TimeDelta::hours(6);

/// How often [`run_prune`] looks for old records.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Decides `node`'s undecided inbound calls (and stale ones of any node) as missed
/// (`restart`). Returns how many `call.missed` events this sweep published.
pub async fn sweep_undecided(
    bus: &EventBus,
    cfg: &Config,
    now: DateTime<Utc>,
    node: &str,
) -> Result<usize, StoreError> {
    let store = bus.store();
    let mut published = 0;
    for c in store
        .undecided_inbound_calls(node, now - STALE_AFTER)
        .await?
    {
        let number = cfg.number(&c.number);
        let followup = number
            .and_then(|n| n.followup.as_ref())
            .map(|f| FollowupPlan::new(f, &c.caller, &c.number, MissReason::Restart));
        let ring_ms = (now - c.started_at).num_milliseconds().max(0);
        let missed = MissedCall {
            call_id: c.call_id,
            number: c.number.clone(),
            caller: c.caller.clone(),
            reason: MissReason::Restart,
            ring_ms,
            voicemail_id: None,
            followup,
            status_callback: number.and_then(|n| n.status_callback.clone()),
        };
        if bus.publish_missed(&missed, now).await?.is_some() {
            published += 1;
        }
        // The call row a crash left open ends too (once: `finish_call` applies once).
        let first = store
            .finish_call(
                c.call_id,
                FinalStatus::Failed,
                None,
                Some("restart: the server stopped during the call"),
                EndedBy::System,
                &RtpStats::default(),
                now,
            )
            .await?;
        if first && let Some(row) = store.get_call(c.call_id).await? {
            let url = row.status_callback.clone();
            let payload = serde_json::to_value(&row).unwrap_or_default();
            bus.publish(
                now,
                kinds::CALL_COMPLETED,
                Some(c.call_id),
                payload,
                url.as_deref(),
            )
            .await?;
        }
    }
    Ok(published)
}

/// Prunes processed missed-call records older than `retention_days` (0: never) now and
/// every `interval` until `shutdown`.
pub async fn run_prune(
    bus: EventBus,
    clock: Arc<dyn Clock>,
    cfg: Arc<Config>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let days = cfg.server.inbound.missed_retention_days;
    if days == 0 {
        return;
    }
    let longest_cooldown = cfg
        .numbers
        .iter()
        .filter_map(|n| n.followup.as_ref().map(|f| f.cooldown_secs))
        .max()
        .unwrap_or(0);
    tokio::pin!(shutdown);
    loop {
        let now = clock.utc();
        let before = now - TimeDelta::days(i64::from(days));
        let cooldown_before = now
            - TimeDelta::seconds(i64::try_from(longest_cooldown).unwrap_or(i64::MAX / 1_000_000));
        match bus
            .store()
            .prune_missed_calls(before, cooldown_before)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned old missed-call records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning missed-call records failed"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
