//! The webhook outbox driver: delivers stored outbox rows by HTTP POST. Driver; the retry
//! schedule is pure ([`backoff`], [`after_failure`]).
//!
//! - **Durable.** All state is in the `webhook_outbox` table; the driver keeps nothing that a
//!   restart would lose. On start it simply claims what is due, including rows whose lease ran
//!   out because the previous process died while sending them.
//! - **At-least-once.** A 2xx marks a row delivered. Any other status, a connection error or a
//!   timeout schedules a retry after [`backoff`] (exponential from `base_backoff`, capped at
//!   `max_backoff`, minus up to 20 % random jitter so that rows failing together spread out). A
//!   row still failing `give_up_after` after its event is given up (kept, with `given_up_at`
//!   and the last error). A crash between the receiver's 2xx and our write re-sends the event,
//!   which receivers de-duplicate by `X-Trunkline-Event-Id`.
//! - **Ordered per call.** Only the earliest pending event of a call for a URL is claimable, so
//!   a receiver sees `initiated`, `ringing`, `answered`, `completed` in order even across
//!   retries; different calls (and events without a call) do not wait for each other.
//! - **Bounded.** At most `concurrency` requests are in flight. Each claim is a lease of
//!   `request_timeout + LEASE_MARGIN`; nodes sharing PostgreSQL never send the same row at once.
//! - **Shutdown.** When the shutdown future resolves the driver keeps delivering what is due for
//!   up to `shutdown_grace`, then abandons what is still in flight (those leases expire and the
//!   rows are retried after the restart) and returns.

use super::signature::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::clock::Clock;
use crate::config::WebhooksConfig;
use crate::store::{ClaimedDelivery, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Added to the request timeout to form a claim's lease: the time after which another worker
/// may send a row whose sender went silent.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Counter of webhook attempts by `outcome` (`delivered`, `failed`, `given_up`), exported on
/// `/metrics` by whichever `metrics` recorder the server installs.
pub const DELIVERIES_METRIC: &str = "trunkline_webhook_deliveries_total";
/// Pause when a row is due but could not be claimed.
const IDLE_RETRY: Duration = Duration::from_millis(20);
/// Longest stored error text.
const MAX_ERROR_LEN: usize = 500;

/// Settings of [`run_outbox`].
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Delay after the first failure; doubles with each further failure.
    pub base_backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
    /// Stop retrying a row this long after its event.
    pub give_up_after: Duration,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Timeout of one request (connect to last byte of the response head).
    pub request_timeout: Duration,
    /// After shutdown, how long to keep delivering what is due.
    pub shutdown_grace: Duration,
    /// How often to look for due rows when not woken: rows written by other nodes sharing the
    /// database, and leases that ran out.
    pub poll_interval: Duration,
    /// Signing secret; `None` uses [`Store::webhook_secret`] (generated once per database).
    pub secret: Option<String>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
            concurrency: 16,
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            poll_interval: Duration::from_secs(5),
            secret: None,
        }
    }
}

impl OutboxConfig {
    /// Defaults with `[webhooks]` applied (`secret` if not empty, `max_retry_secs`,
    /// `retry_base_ms`, `retry_max_secs`).
    pub fn from_config(w: &WebhooksConfig) -> Self {
        Self {
            give_up_after: Duration::from_secs(w.max_retry_secs),
            base_backoff: Duration::from_millis(w.retry_base_ms.max(1)),
            max_backoff: Duration::from_secs(w.retry_max_secs.max(1)),
            secret: (!w.secret.is_empty()).then(|| w.secret.clone()),
            ..Self::default()
        }
    }

    fn lease(&self) -> TimeDelta {
        delta(self.request_timeout + LEASE_MARGIN)
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Delay before the next attempt after `failures` failed ones (1 = the first failure):
/// `base * 2^(failures-1)` capped at `max`, then shortened by `jitter` × 20 % (`jitter` in
/// `0.0..=1.0`, random in the driver). Pure.
pub fn backoff(failures: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let d = base.saturating_mul(1u32 << exp.min(31)).min(max);
    d.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// What to do with a row after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (never later than the give-up time).
    RetryAt(DateTime<Utc>),
    /// Stop: the row has been failing for `give_up_after`.
    GiveUp,
}

/// The decision after the `failures`-th failed attempt at `now` of a row queued at
/// `queued_at`; `jitter` in `0.0..=1.0` (random in the driver). Pure. The last retry is
/// scheduled at the give-up time itself, so a receiver that comes back just before it still
/// gets the event.
pub fn after_failure(
    config: &OutboxConfig,
    queued_at: DateTime<Utc>,
    now: DateTime<Utc>,
    failures: u32,
    jitter: f64,
) -> AfterFailure {
    let give_up_at = queued_at + delta(config.give_up_after);
    if now >= give_up_at {
        return AfterFailure::GiveUp;
    }
    let wait = backoff(failures, config.base_backoff, config.max_backoff, jitter);
    AfterFailure::RetryAt((now + delta(wait)).min(give_up_at))
}

/// Delivers outbox rows until `shutdown` resolves (then flushes for up to `shutdown_grace`).
/// Fails only if the signing secret cannot be read at start; later database errors are logged
/// and retried. Give it a clone of the [`Store`] the [`super::EventBus`] writes to, so publishes
/// wake it at once. Suggested client: `reqwest::Client::builder()
/// .redirect(reqwest::redirect::Policy::none())`, since a redirected POST may turn into a GET
/// and a 3xx then counts as a failure to retry, as it should for a webhook.
pub async fn run_outbox(
    store: Store,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    config: OutboxConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StoreError> {
    let secret: Arc<str> = match &config.secret {
        Some(s) => s.as_str().into(),
        None => store.webhook_secret().await?.into(),
    };
    let config = Arc::new(config);
    let concurrency = config.concurrency.max(1);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);

    loop {
        let now = clock.utc();
        let free = concurrency - in_flight.len();
        let mut db_failed = false;
        let mut claimed = 0;
        if free > 0 {
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match store
                .claim_deliveries(now, now + config.lease(), limit)
                .await
            {
                Ok(rows) => {
                    claimed = rows.len();
                    for d in rows {
                        let job = Delivery {
                            store: store.clone(),
                            client: client.clone(),
                            clock: Arc::clone(&clock),
                            config: Arc::clone(&config),
                            secret: Arc::clone(&secret),
                        };
                        in_flight.spawn(job.run(d));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: claiming deliveries failed");
                    db_failed = true;
                }
            }
        }

        // How long until something may be due.
        let mut wait = config.poll_interval;
        if !db_failed && in_flight.len() < concurrency {
            match store.next_delivery_due().await {
                Ok(Some(t)) => {
                    let until = (t - clock.utc()).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.min(until);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "outbox: reading the next due time failed"),
            }
        }
        if claimed == 0 && wait == Duration::ZERO {
            // Due but not claimable this instant (e.g. locked by another node's claim): do not
            // spin.
            wait = IDLE_RETRY;
        }
        if grace_deadline.is_some() && in_flight.is_empty() && claimed == 0 {
            // Shutting down and nothing due right now: done.
            return Ok(());
        }

        tokio::select! {
            Some(res) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = res
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "outbox: delivery task panicked");
                }
            }
            () = store.outbox_woken() => {}
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown, if grace_deadline.is_none() => {
                tracing::info!(in_flight = in_flight.len(), "outbox: shutting down, flushing");
                grace_deadline = Some(tokio::time::Instant::from_std(clock.now()) + config.shutdown_grace);
            }
            () = sleep_until_opt(grace_deadline) => {
                tracing::info!(abandoned = in_flight.len(), "outbox: grace period over");
                in_flight.shutdown().await;
                return Ok(());
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What one delivery task needs.
struct Delivery {
    store: Store,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    config: Arc<OutboxConfig>,
    secret: Arc<str>,
}

impl Delivery {
    async fn run(self, d: ClaimedDelivery) {
        let outcome = self.send(&d).await;
        let now = self.clock.utc();
        let res = match outcome {
            Ok(()) => {
                metrics::counter!(DELIVERIES_METRIC, "outcome" => "delivered").increment(1);
                self.store.mark_delivered(d.outbox_id, now).await
            }
            Err(error) => {
                let failures = d.attempts.saturating_add(1);
                match after_failure(&self.config, d.queued_at, now, failures, rand::random()) {
                    AfterFailure::GiveUp => {
                        metrics::counter!(DELIVERIES_METRIC, "outcome" => "given_up").increment(1);
                        tracing::warn!(event = %d.event.id, url = %d.url, %error, failures, "webhook given up");
                        self.store
                            .mark_delivery_given_up(d.outbox_id, &error, now)
                            .await
                    }
                    AfterFailure::RetryAt(next) => {
                        metrics::counter!(DELIVERIES_METRIC, "outcome" => "failed").increment(1);
                        tracing::debug!(event = %d.event.id, url = %d.url, %error, failures, "webhook failed, retrying");
                        self.store
                            .mark_delivery_failed(d.outbox_id, &error, next)
                            .await
                    }
                }
            }
        };
        if let Err(e) = res {
            // The lease runs out and the row is sent again: at-least-once holds.
            tracing::warn!(error = %e, outbox_id = d.outbox_id, "outbox: recording a delivery failed");
        }
    }

    /// One POST; `Err` carries the reason for `last_error`.
    async fn send(&self, d: &ClaimedDelivery) -> Result<(), String> {
        let body = serde_json::to_vec(&d.event).map_err(|e| format!("encoding event: {e}"))?;
        let timestamp = self.clock.utc().timestamp().to_string();
        let signature = sign(&self.secret, &timestamp, &body);
        let res = self
            .client
            .post(&d.url)
            .timeout(self.config.request_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, d.event.id.to_string())
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("http status {}", r.status().as_u16())),
            Err(e) => {
                let mut msg = if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "connection failed".to_owned()
                } else {
                    "request failed".to_owned()
                };
                let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                msg.truncate(
                    (0..=MAX_ERROR_LEN.min(msg.len()))
                        .rev()
                        .find(|&i| msg.is_char_boundary(i))
                        .unwrap_or(0),
                );
                Err(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_down() {
        let b = Duration::from_secs(1);
        let m = Duration::from_secs(60);
        assert_eq!(backoff(1, b, m, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, b, m, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(6, b, m, 0.0), Duration::from_secs(32));
        assert_eq!(backoff(7, b, m, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX, b, m, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(7, b, m, 1.0), Duration::from_secs(48));
        assert_eq!(backoff(0, b, m, 0.0), Duration::from_secs(1));
        assert!(backoff(3, b, m, 0.5) < backoff(3, b, m, 0.0));
        // Out-of-range jitter is clamped, never longer than the cap.
        assert_eq!(backoff(9, b, m, -3.0), m);
    }

    #[test]
    fn retries_until_the_give_up_time_then_gives_up() {
        let c = OutboxConfig {
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(100),
            ..OutboxConfig::default()
        };
        let q = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let s = |n| TimeDelta::seconds(n);
        assert_eq!(
            after_failure(&c, q, q, 1, 0.0),
            AfterFailure::RetryAt(q + s(10))
        );
        assert_eq!(
            after_failure(&c, q, q + s(10), 2, 0.0),
            AfterFailure::RetryAt(q + s(30))
        );
        // Capped at the give-up time, then given up there.
        assert_eq!(
            after_failure(&c, q, q + s(70), 4, 0.0),
            AfterFailure::RetryAt(q + s(100))
        );
        assert_eq!(
            after_failure(&c, q, q + s(100), 5, 0.0),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn config_takes_webhook_settings() {
        let w = WebhooksConfig {
            secret: "k".into(),
            max_retry_secs: 60,
            retry_base_ms: 250,
            retry_max_secs: 5,
        };
        let c = OutboxConfig::from_config(&w);
        assert_eq!(c.secret.as_deref(), Some("k"));
        assert_eq!(c.give_up_after, Duration::from_secs(60));
        assert_eq!(c.base_backoff, Duration::from_millis(250));
        assert_eq!(c.max_backoff, Duration::from_secs(5));
        assert_eq!(
            OutboxConfig::from_config(&WebhooksConfig::default()).secret,
            None
        );
    }
}
