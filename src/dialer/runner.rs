//! The campaign runner (driver): makes running campaigns place calls.
//!
//! One task for the node ([`run_dialer`]) owns every campaign's calls in flight. It decides
//! nothing itself; the pure core does ([`super::pacing`], [`super::rate`], [`super::retry`],
//! [`super::window`] through [`outcome`]). Its loop:
//!
//! - **tick** ([`DialerConfig::tick`]): for each `running` campaign in `agentless` mode, rebuild
//!   the rate limiter from the stored attempt start times of the last hour and count the
//!   campaign's unfinished attempts (both from the store, so a restart or a second node does not
//!   reset them), ask [`super::pacing::agentless_calls`] how many to start, claim that many
//!   contacts ([`Store::claim_next`], which writes the attempt row and the lease, gated by the
//!   contact's calling window), and originate each through the campaign's trunk with its caller
//!   id (round robin per prefix pool), AMD settings and `on_machine` action. A campaign with
//!   nothing left to dial (no contact `pending`, `retry` or `dialing`, no call in flight)
//!   becomes `completed`.
//!   Running `power` and `predictive` campaigns are paced for their agent sessions instead
//!   ([`sessions`]: the agent's leg and room, lines per idle agent or the predictive pacer's
//!   decision, bridging the first human, wrap-up).
//! - **events** from the [`EventBus`] (what the store writer published): on a human (final AMD
//!   verdict `human`/`unknown`, or the answer when the campaign has no AMD) the campaign's prompt
//!   (`voicemail_prompt`, the one message of an agentless campaign) is played and the call hung
//!   up when it finishes; on `call.completed` the call row gives the outcome
//!   ([`outcome::outcome_of_call`]) and the attempt is finished with the retry policy (next due
//!   time snapped into the calling window) and its lease released.
//! - **sweep**: calls whose `call.completed` was missed (a lagging subscriber) are finished from
//!   their stored row; leases of calls in flight are renewed.
//!
//! A paused campaign gets no new claims; its calls in flight finish normally. The sweep also
//! finishes the attempts whose lease expired (a node that died), as at start.
//!
//! # Crash safety
//!
//! At start ([`reconcile`]), every unfinished attempt of this node (or whose lease expired) is
//! finished: from its call's final status when the row has one, else `failed` (reason
//! `restart`, in the `attempt.finished` event) and the contact due again by the retry policy.
//! The attempt counts; the contact is never dialled twice for one attempt, because the claim
//! created the attempt row before the call and a new dial needs a new claim. Running campaigns
//! simply resume on the next tick.
//!
//! API requests about agent sessions arrive on a queue ([`sessions::SessionsHandle`]), so the
//! one task owns every session too.
//!
//! A contact shown to a preview agent ([`sessions`]) has an attempt row with its session and no
//! call: it was never dialled, so reconciling it (at start, or when its lease expired) puts it
//! back in the queue without counting the attempt ([`Store::release_claim`]), as a `skip` does.
//!
//! Events: `attempt.started` (claimed and originated) and `attempt.finished` (with the outcome
//! and the contact's next status), through the event log (SSE and the campaign's webhook).

pub mod on_human;
pub mod outcome;
pub mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::amd::AmdParams;
use crate::call::{CallAmd, EngineError, EngineHandle, OnMachine as EngineOnMachine, Originate};
use crate::campaign::{AttemptOutcome, CampaignState, ContactStatus, DialMode, OnMachine};
use crate::clock::Clock;
use crate::events::{Event, EventBus, kinds};
use crate::media::player::{Prompt, PromptCache};
use crate::store::{
    Campaign, CampaignFilter, ClaimedContact, NewCall, OpenAttempt, Store, StoreError, WindowCheck,
    new_id,
};

use super::pacing::{Capacity, agentless_calls};
use super::rate::{HOUR, MINUTE, RateLimiter, RateLimits};

/// Event kinds of the runner.
pub mod attempt_kinds {
    /// A contact was claimed and its call placed.
    pub const ATTEMPT_STARTED: &str = "attempt.started";
    /// An attempt ended: outcome, AMD verdict, the contact's next status and due time.
    pub const ATTEMPT_FINISHED: &str = "attempt.finished";
    /// An agentless campaign decided what a person who answered gets (`on_human`).
    pub const ATTEMPT_HUMAN_ACTION: &str = "attempt.human_action";
}

/// Most calls one campaign starts per tick, whatever the pacer allows (a bound on the work of
/// one tick; the next tick starts more).
pub const MAX_STARTS_PER_TICK: u32 = 50;

/// How the runner is set up.
#[derive(Debug, Clone)]
pub struct DialerConfig {
    /// This node's name in attempt rows and leases (stable across restarts of one node).
    pub node: String,
    /// How often campaigns are paced.
    pub tick: Duration,
    /// Lease taken on a claimed contact; renewed while its call lasts.
    pub lease: Duration,
    /// Ring timeout of campaign calls.
    pub ring_timeout: Duration,
    /// How often calls in flight are checked against their stored rows and leases renewed.
    pub sweep: Duration,
    /// Signing secret of the `on_human_url` requests (`None`: the database's webhook secret,
    /// as the outbox uses).
    pub webhook_secret: Option<String>,
}

/// What the runner needs from the rest of the server.
#[derive(Clone)]
pub struct DialerDeps {
    /// The store.
    pub store: Store,
    /// The event log (published events are read back from it).
    pub bus: EventBus,
    /// The call engine.
    pub engine: EngineHandle,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Decoded prompts (std mutex: short sections only).
    pub prompts: Arc<Mutex<PromptCache>>,
}

/// A call placed for an attempt, until its outcome is stored.
#[derive(Debug, Clone)]
struct InFlight {
    campaign_id: Uuid,
    attempt_id: Uuid,
    attempt_no: u32,
    contact_id: Uuid,
    contact_tz: Option<String>,
    phone: String,
    /// Play this to a human, then hang up (`None`: hang up at once).
    prompt: Option<Prompt>,
    /// A session's call: the campaign's identification message, played to a person no agent
    /// could take before hanging up (`None`: hang up at once).
    abandon_prompt: Option<Prompt>,
    /// The campaign has AMD on: wait for the verdict before playing.
    amd: bool,
    /// The prompt was asked for.
    played: bool,
    /// The agent session this call was placed for (power mode).
    session: Option<Uuid>,
    /// The customer was given to an agent.
    bridged: bool,
    /// The session cancelled the call (its outcome is `cancelled`).
    cancelled: bool,
    /// A person answered and no agent was free (its outcome is `abandoned`).
    abandoned: bool,
    /// When the call was placed (the predictive pacer's ringing times).
    dialled_at: DateTime<Utc>,
    /// Agentless: what a person gets, and what `bridge` and `webhook` need.
    on_human: crate::campaign::OnHuman,
    bridge_to: Option<String>,
    on_human_url: Option<String>,
    /// The caller id and trunk the call went out with (a transfer leg uses them too).
    caller: Option<String>,
    trunk: Option<String>,
    /// The campaign's event URL.
    callback: Option<String>,
}

struct Runner {
    deps: DialerDeps,
    cfg: DialerConfig,
    calls: HashMap<Uuid, InFlight>,
    /// Caller-id round robin per campaign.
    turns: HashMap<Uuid, u64>,
    /// This node's live agent sessions.
    sessions: sessions::Sessions,
    /// Calls to agents: call id → session.
    agent_calls: HashMap<Uuid, Uuid>,
    /// The predictive pacer of each `predictive` campaign paced here, fed with this node's
    /// finished attempts.
    pacers: HashMap<Uuid, super::pacing::PredictivePacer>,
    /// Agentless transfers: the leg placed to `bridge_to` → the person's call.
    transfers: HashMap<Uuid, Uuid>,
    /// Where `on_human_url` answers come back ([`on_human::Decision`]).
    decisions: tokio::sync::mpsc::UnboundedSender<on_human::Decision>,
    /// HTTP client of the `on_human_url` requests.
    http: reqwest::Client,
}

/// Runs the campaign runner until `shutdown` resolves: reconciles what a previous run left
/// open, then paces every running campaign.
pub async fn run_dialer(
    deps: DialerDeps,
    cfg: DialerConfig,
    inbox: sessions::SessionsInbox,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    // Subscribe before anything is placed, so no event of ours can be missed.
    let mut events = deps.bus.subscribe();
    match reconcile(&deps, &cfg.node).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(attempts = n, "dialer: reconciled attempts left open"),
        Err(e) => tracing::error!(error = %e, "dialer: reconciliation failed"),
    }
    let (decisions_tx, mut decisions) = tokio::sync::mpsc::unbounded_channel();
    let mut r = Runner {
        deps,
        cfg,
        calls: HashMap::new(),
        turns: HashMap::new(),
        sessions: HashMap::new(),
        agent_calls: HashMap::new(),
        pacers: HashMap::new(),
        transfers: HashMap::new(),
        decisions: decisions_tx,
        http: reqwest::Client::new(),
    };
    if let Err(e) = r.restore_sessions().await {
        tracing::error!(error = %e, "dialer: restoring agent sessions failed");
    }
    let mut inbox = inbox.rx;
    let mut tick = tokio::time::interval(r.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(r.cfg.sweep);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                if let Err(e) = r.pace_all().await {
                    tracing::error!(error = %e, "dialer: pacing failed");
                }
            }
            _ = sweep.tick() => r.sweep().await,
            Some(req) = inbox.recv() => r.on_session_request(req).await,
            Some(d) = decisions.recv() => r.on_decision(d).await,
            ev = events.recv() => match ev {
                Ok(ev) => r.on_event(&ev).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "dialer: event subscriber lagged; sweeping");
                    r.sweep().await;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// Finishes the attempts a previous run left open (this node's, and any whose lease expired):
/// from the call's final status when stored, else `failed` (reason `restart`). Returns how
/// many were finished.
pub async fn reconcile(deps: &DialerDeps, node: &str) -> Result<usize, StoreError> {
    let store = &deps.store;
    let now = deps.clock.utc();
    let mut open: Vec<OpenAttempt> = store.expired_attempts(now).await?;
    for state in [CampaignState::Running, CampaignState::Paused] {
        let page = store
            .list_campaigns(&CampaignFilter {
                state: Some(state),
                limit: Some(crate::store::MAX_LIST_LIMIT),
                cursor: None,
            })
            .await?;
        for c in page.campaigns {
            open.extend(store.open_attempts(c.id, Some(node)).await?);
        }
    }
    finish_open(deps, open).await
}

/// Finishes attempts found open (see [`reconcile`]).
async fn finish_open(deps: &DialerDeps, mut open: Vec<OpenAttempt>) -> Result<usize, StoreError> {
    let store = &deps.store;
    open.sort_by_key(|a| a.id);
    open.dedup_by_key(|a| a.id);
    let mut n = 0;
    let mut campaigns: HashMap<Uuid, Option<Campaign>> = HashMap::new();
    for a in open {
        let campaign = match campaigns.get(&a.campaign_id) {
            Some(c) => c.clone(),
            None => {
                let c = store.get_campaign(a.campaign_id).await?;
                campaigns.insert(a.campaign_id, c.clone());
                c
            }
        };
        let Some(campaign) = campaign else { continue };
        if a.call_id.is_none() && a.session_id.is_some() {
            // A contact shown to a preview agent and never dialled: back to the queue, and
            // no attempt used (as a skip would have done).
            if store.release_claim(a.id, deps.clock.utc()).await? {
                tracing::info!(attempt = %a.id, contact = %a.contact_id,
                    "dialer: released a previewed contact left undialled");
                n += 1;
            }
            continue;
        }
        let call = match a.call_id {
            Some(id) => store.get_call(id).await?,
            None => None,
        };
        let (outcome, amd, duration, reason) = match call
            .as_ref()
            .and_then(|c| outcome::outcome_of_call(c).map(|o| (c, o)))
        {
            Some((c, o)) => (
                o,
                c.amd.as_ref().map(|a| a.result.clone()),
                c.duration_ms,
                "call",
            ),
            None => (AttemptOutcome::Failed, None, None, "restart"),
        };
        let tz = store
            .get_contact(a.contact_id)
            .await?
            .and_then(|c| c.timezone);
        let f = Finish {
            campaign: &campaign,
            attempt_id: a.id,
            attempt_no: a.attempt_no,
            contact_id: a.contact_id,
            contact_tz: tz.as_deref(),
            phone: &a.phone,
            call_id: a.call_id,
            outcome,
            amd_verdict: amd.as_deref(),
            duration_ms: duration,
            reason,
        };
        if finish(deps, &f).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// An attempt to finish.
struct Finish<'a> {
    campaign: &'a Campaign,
    attempt_id: Uuid,
    attempt_no: u32,
    contact_id: Uuid,
    contact_tz: Option<&'a str>,
    phone: &'a str,
    call_id: Option<Uuid>,
    outcome: AttemptOutcome,
    amd_verdict: Option<&'a str>,
    duration_ms: Option<i64>,
    reason: &'a str,
}

/// Stores an attempt's outcome and its contact's next status (once), then publishes
/// `attempt.finished`. Returns whether this call finished it.
async fn finish(deps: &DialerDeps, f: &Finish<'_>) -> Result<bool, StoreError> {
    let now = deps.clock.utc();
    let (status, due) = outcome::next_status(
        &f.campaign.settings,
        f.contact_tz,
        now,
        f.outcome,
        f.attempt_no,
    );
    let duration = f
        .duration_ms
        .and_then(|d| u64::try_from(d).ok())
        .map(Duration::from_millis);
    let done = deps
        .store
        .finish_attempt(
            f.attempt_id,
            now,
            f.outcome,
            f.amd_verdict,
            duration,
            due,
            status,
        )
        .await?;
    if done {
        publish(
            deps,
            attempt_kinds::ATTEMPT_FINISHED,
            f.call_id,
            json!({
                "campaign_id": f.campaign.id,
                "attempt_id": f.attempt_id,
                "contact_id": f.contact_id,
                "attempt_no": f.attempt_no,
                "phone": f.phone,
                "outcome": f.outcome.as_str(),
                "amd_verdict": f.amd_verdict,
                "duration_ms": f.duration_ms,
                "reason": f.reason,
                "contact_status": status.as_str(),
                "next_due_at": due,
            }),
            f.campaign.settings.status_callback.as_deref(),
        )
        .await;
    }
    Ok(done)
}

async fn publish(
    deps: &DialerDeps,
    kind: &str,
    call_id: Option<Uuid>,
    payload: serde_json::Value,
    url: Option<&str>,
) {
    if let Err(e) = deps
        .bus
        .publish(deps.clock.utc(), kind, call_id, payload, url)
        .await
    {
        tracing::error!(error = %e, kind, "dialer: event not stored");
    }
}

/// The campaign's AMD for the engine: `None` when its `amd` is `{}` (no detection).
fn campaign_amd(c: &Campaign, voicemail: Option<&Prompt>) -> Option<CallAmd> {
    let obj = c.settings.amd.as_object()?;
    if obj.is_empty() {
        return None;
    }
    let mut params: AmdParams = obj
        .get("params")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    if let Some(mode) = obj
        .get("mode")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
    {
        params.mode = mode;
    }
    let on_machine = match (c.settings.on_machine, voicemail) {
        (OnMachine::VoicemailDrop, Some(p)) => EngineOnMachine::VoicemailDrop(p.clone()),
        (OnMachine::Continue, _) => EngineOnMachine::Continue,
        _ => EngineOnMachine::Hangup,
    };
    Some(CallAmd {
        params,
        asynchronous: false,
        on_machine,
    })
}

impl Runner {
    fn prompt(&self, name: &str) -> Option<Prompt> {
        let mut cache = self.deps.prompts.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(name) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(prompt = name, error = %e, "dialer: campaign prompt unusable");
                None
            }
        }
    }

    async fn pace_all(&mut self) -> Result<(), StoreError> {
        let page = self
            .deps
            .store
            .list_campaigns(&CampaignFilter {
                state: Some(CampaignState::Running),
                limit: Some(crate::store::MAX_LIST_LIMIT),
                cursor: None,
            })
            .await?;
        let running: Vec<Uuid> = page.campaigns.iter().map(|c| c.id).collect();
        for c in page.campaigns {
            let r = match c.settings.dial_mode {
                DialMode::Agentless => self.pace(&c).await,
                DialMode::Power | DialMode::Predictive => self.pace_power(&c).await,
                // Agents dial; the tick only completes a list dialled through.
                DialMode::Preview => self.maybe_complete_preview(&c).await,
            };
            if let Err(e) = r {
                tracing::error!(campaign = %c.id, error = %e, "dialer: campaign tick failed");
            }
        }
        self.end_sessions_of_finished_campaigns(&running).await;
        Ok(())
    }

    /// The campaign's rate limiter at `now`, from the stored attempt starts (so a restart does
    /// not reset it).
    async fn limiter(&self, c: &Campaign, now: DateTime<Utc>) -> Result<RateLimiter, StoreError> {
        let limits = RateLimits {
            per_minute: c.settings.rate_per_minute,
            per_hour: c.settings.rate_per_hour,
        };
        // The latest `limit` starts over the longest limited window are all the limiter needs:
        // if that window holds more, its allowance is zero whatever the rest.
        let horizon = if limits.per_hour.is_some() {
            HOUR
        } else {
            MINUTE
        };
        let starts = match limits.per_minute.max(limits.per_hour) {
            None => Vec::new(),
            Some(most) => {
                let since = now - chrono::Duration::from_std(horizon).unwrap_or_default();
                self.deps
                    .store
                    .attempt_starts_since(c.id, since, most)
                    .await?
            }
        };
        Ok(RateLimiter::from_starts(limits, starts))
    }

    async fn pace(&mut self, c: &Campaign) -> Result<(), StoreError> {
        let store = self.deps.store.clone();
        let now = self.deps.clock.utc();
        let limiter = self.limiter(c, now).await?;
        let live = u32::try_from(store.attempts_in_flight(c.id).await?).unwrap_or(u32::MAX);
        let n = agentless_calls(Capacity {
            max_concurrent: c.settings.max_concurrent.unwrap_or(u32::MAX),
            live_calls: live,
            rate_allowance: limiter.available(now),
        })
        .min(MAX_STARTS_PER_TICK);
        let mut claimed = 0;
        for _ in 0..n {
            let now = self.deps.clock.utc();
            let claim = self.claim(c, now).await?;
            let Some(claim) = claim else { break };
            claimed += 1;
            self.start(c, claim, now, None).await?;
        }
        if claimed == 0 && live == 0 {
            self.maybe_complete(c).await?;
        }
        Ok(())
    }

    /// Claims the campaign's next contact for this node ([`Store::claim_next`]: queue order,
    /// do-not-call, attempts left), inside its calling window at `now`.
    async fn claim(
        &self,
        c: &Campaign,
        now: DateTime<Utc>,
    ) -> Result<Option<ClaimedContact>, StoreError> {
        let settings = &c.settings;
        self.deps
            .store
            .claim_next(c.id, &self.cfg.node, now, self.cfg.lease, |cand| {
                let (window, tz) = outcome::window_and_zone(settings, cand.timezone.as_deref());
                if window.is_open(now, tz) {
                    WindowCheck::Open
                } else {
                    WindowCheck::ClosedUntil(window.next_open(now, tz))
                }
            })
            .await
    }

    /// Places the call of a claimed contact (for an agent session, if given); returns whether
    /// it was placed.
    async fn start(
        &mut self,
        c: &Campaign,
        claim: ClaimedContact,
        now: DateTime<Utc>,
        session: Option<Uuid>,
    ) -> Result<bool, StoreError> {
        let s = &c.settings;
        let call_id = new_id(now);
        let turn = self.turns.entry(c.id).or_default();
        let from = s
            .caller_ids
            .pick(&claim.contact.phone, *turn)
            .map(str::to_owned);
        *turn += 1;
        let prompt = s.voicemail_prompt.as_deref().and_then(|p| self.prompt(p));
        let amd = campaign_amd(c, prompt.as_ref());
        let abandon_prompt = session
            .and(s.abandon_prompt.as_deref())
            .and_then(|p| self.prompt(p));
        // The call id is on the attempt before the INVITE leaves: a crash in between finds it.
        self.deps
            .store
            .set_attempt_call(claim.attempt_id, call_id)
            .await?;
        let flight = InFlight {
            campaign_id: c.id,
            attempt_id: claim.attempt_id,
            attempt_no: claim.attempt_no,
            contact_id: claim.contact.id,
            contact_tz: claim.contact.timezone.clone(),
            phone: claim.contact.phone.clone(),
            prompt,
            abandon_prompt,
            amd: amd.is_some(),
            played: false,
            session,
            bridged: false,
            cancelled: false,
            abandoned: false,
            dialled_at: now,
            on_human: s.on_human,
            bridge_to: s.bridge_to.clone(),
            on_human_url: s.on_human_url.clone(),
            caller: from.clone(),
            trunk: s.trunk.clone(),
            callback: s.status_callback.clone(),
        };
        let (Some(from), Some(trunk)) = (from, s.trunk.clone()) else {
            self.fail_to_start(
                c,
                &flight,
                call_id,
                AttemptOutcome::Failed,
                "no caller id or trunk",
            )
            .await?;
            return Ok(false);
        };
        self.calls.insert(call_id, flight.clone());
        let call = NewCall {
            id: call_id,
            direction: crate::store::Direction::Outbound,
            from,
            to: claim.contact.phone.clone(),
            trunk: Some(trunk),
            sip_call_id: None,
            status: crate::store::CallStatus::Initiated,
            status_callback: s.status_callback.clone(),
            metadata: json!({
                "campaign_id": c.id,
                "contact_id": claim.contact.id,
                "attempt_id": claim.attempt_id,
                "attempt_no": claim.attempt_no,
            }),
            idempotency_key: None,
            api_key_id: None,
            created_at: now,
        };
        let placed = self
            .deps
            .engine
            .originate(Originate {
                call,
                ring_timeout: self.cfg.ring_timeout,
                amd,
                join: None,
                record: s.record,
            })
            .await;
        match placed {
            Ok(()) => {
                publish(
                    &self.deps,
                    attempt_kinds::ATTEMPT_STARTED,
                    Some(call_id),
                    json!({
                        "campaign_id": c.id,
                        "attempt_id": claim.attempt_id,
                        "contact_id": claim.contact.id,
                        "attempt_no": claim.attempt_no,
                        "phone": claim.contact.phone,
                    }),
                    s.status_callback.as_deref(),
                )
                .await;
                Ok(true)
            }
            Err(e) => {
                self.calls.remove(&call_id);
                tracing::warn!(campaign = %c.id, error = %e, "dialer: originate refused");
                // A node or trunk that is only full does not spend the contact's attempts.
                let outcome = match e {
                    EngineError::TrunkAtCapacity(_)
                    | EngineError::TrunkRateLimited(_)
                    | EngineError::OverCapacity(_)
                    | EngineError::ShuttingDown
                    | EngineError::Stopped => AttemptOutcome::Cancelled,
                    _ => AttemptOutcome::Failed,
                };
                self.fail_to_start(c, &flight, call_id, outcome, &e.to_string())
                    .await?;
                Ok(false)
            }
        }
    }

    /// The call could not be placed: the attempt ends with `outcome` (`why` in the event).
    async fn fail_to_start(
        &self,
        c: &Campaign,
        f: &InFlight,
        call_id: Uuid,
        outcome: AttemptOutcome,
        why: &str,
    ) -> Result<(), StoreError> {
        finish(
            &self.deps,
            &Finish {
                campaign: c,
                attempt_id: f.attempt_id,
                attempt_no: f.attempt_no,
                contact_id: f.contact_id,
                contact_tz: f.contact_tz.as_deref(),
                phone: &f.phone,
                call_id: Some(call_id),
                outcome,
                amd_verdict: None,
                duration_ms: None,
                reason: why,
            },
        )
        .await
        .map(|_| ())
    }

    /// A running campaign with nothing left to dial becomes `completed`.
    async fn maybe_complete(&self, c: &Campaign) -> Result<(), StoreError> {
        let Some(list) = c.settings.list_id else {
            return Ok(());
        };
        if self.calls.values().any(|f| f.campaign_id == c.id) {
            return Ok(());
        }
        let counts = self.deps.store.contact_counts(list).await?;
        let left = counts.iter().any(|(s, n)| {
            *n > 0
                && matches!(
                    s,
                    ContactStatus::Pending | ContactStatus::Retry | ContactStatus::Dialing
                )
        });
        if left {
            return Ok(());
        }
        let now = self.deps.clock.utc();
        if let Some(done) = self
            .deps
            .store
            .set_campaign_state(c.id, CampaignState::Running, CampaignState::Completed, now)
            .await?
        {
            let payload =
                serde_json::to_value(crate::http::campaigns::CampaignResource::from(done.clone()))
                    .unwrap_or_default();
            publish(
                &self.deps,
                crate::campaign::kinds::CAMPAIGN_COMPLETED,
                None,
                payload,
                done.settings.status_callback.as_deref(),
            )
            .await;
            tracing::info!(campaign = %c.id, "dialer: campaign completed");
        }
        Ok(())
    }

    /// Makes sure this process has `campaign_id`'s predictive pacer: the first time, it is
    /// rebuilt from the stored history (attempts finished in the last 30 days, in order, and
    /// the latest handle times; [`Store::pacer_history`]). True when it was built now. A store
    /// error leaves a pacer with only its priors (logged), rather than none.
    async fn ensure_pacer(&mut self, campaign_id: Uuid) -> bool {
        if self.pacers.contains_key(&campaign_id) {
            return false;
        }
        let pacer = self.rebuilt_pacer(campaign_id).await;
        self.pacers.insert(campaign_id, pacer);
        true
    }

    async fn rebuilt_pacer(&self, campaign_id: Uuid) -> super::pacing::PredictivePacer {
        use super::pacing::{ABANDON_WINDOW, AttemptRecord, PredictiveConfig, PredictivePacer};
        let mut pacer = PredictivePacer::new(PredictiveConfig::default());
        let now = self.deps.clock.utc();
        let since = now - chrono::Duration::from_std(ABANDON_WINDOW).unwrap_or_default();
        let keep = pacer.config().sample_size;
        match self
            .deps
            .store
            .pacer_history(campaign_id, since, keep)
            .await
        {
            Ok(h) => {
                for a in &h.attempts {
                    pacer.record_attempt(
                        a.ended_at,
                        AttemptRecord {
                            outcome: outcome::core_outcome(a.outcome),
                            resolved_after: a.resolved_after,
                        },
                    );
                }
                for t in &h.handles {
                    pacer.record_handle(t.talk, t.wrap_up);
                }
                tracing::info!(
                    campaign = %campaign_id,
                    attempts = h.attempts.len(),
                    handles = h.handles.len(),
                    "dialer: predictive pacer rebuilt from the stored attempts"
                );
            }
            Err(e) => {
                tracing::warn!(
                    campaign = %campaign_id,
                    error = %e,
                    "dialer: predictive pacer history unreadable; starting from the priors"
                );
            }
        }
        pacer
    }

    async fn on_event(&mut self, ev: &Event) {
        let Some(call_id) = ev.call_id else { return };
        if self.on_agent_call_event(call_id, &ev.kind).await {
            return;
        }
        if ev.kind == kinds::CALL_COMPLETED && self.transfer_call_ended(call_id).await {
            return;
        }
        if !self.calls.contains_key(&call_id) {
            return;
        }
        match ev.kind.as_str() {
            kinds::CALL_ANSWERED if self.calls.get(&call_id).is_some_and(|f| !f.amd) => {
                self.human(call_id).await;
            }
            kinds::AMD_COMPLETED => {
                let is_final = ev.payload.get("final").and_then(|v| v.as_bool()) != Some(false);
                let verdict = ev
                    .payload
                    .get("answered_by")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown");
                if is_final && (verdict == "human" || verdict == "unknown") {
                    self.human(call_id).await;
                }
            }
            kinds::PLAY_FINISHED if self.calls.get(&call_id).is_some_and(|f| f.played) => {
                let _ = self.deps.engine.hangup(call_id).await;
            }
            kinds::CALL_COMPLETED => self.completed(call_id).await,
            _ => {}
        }
    }

    /// A person answered: play the campaign's message, or hang up when it has none.
    async fn human(&mut self, call_id: Uuid) {
        let Some(f) = self.calls.get_mut(&call_id) else {
            return;
        };
        if f.played {
            return;
        }
        f.played = true;
        if f.session.is_some() {
            self.session_human(call_id).await;
            return;
        }
        self.on_human(call_id).await;
    }

    /// The call ended: finish its attempt from the stored row.
    async fn completed(&mut self, call_id: Uuid) {
        let call = match self.deps.store.get_call(call_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(%call_id, error = %e, "dialer: reading the ended call failed");
                return;
            }
        };
        let Some(o) = outcome::outcome_of_call(&call) else {
            return;
        };
        let Some(f) = self.calls.remove(&call_id) else {
            return;
        };
        // A session's call hung up by us: a person who answered and got no agent was
        // abandoned; a call cancelled before the answer, cancelled.
        let o = match o {
            AttemptOutcome::Human if f.abandoned || f.cancelled => AttemptOutcome::Abandoned,
            _ if f.abandoned => AttemptOutcome::Abandoned,
            _ if f.cancelled && call.answered_at.is_none() => AttemptOutcome::Cancelled,
            o => o,
        };
        let campaign = match self.deps.store.get_campaign(f.campaign_id).await {
            Ok(Some(c)) => c,
            _ => return,
        };
        let fin = Finish {
            campaign: &campaign,
            attempt_id: f.attempt_id,
            attempt_no: f.attempt_no,
            contact_id: f.contact_id,
            contact_tz: f.contact_tz.as_deref(),
            phone: &f.phone,
            call_id: Some(call_id),
            outcome: o,
            amd_verdict: call.amd.as_ref().map(|a| a.result.as_str()),
            duration_ms: call.duration_ms,
            reason: "call",
        };
        if let Err(e) = finish(&self.deps, &fin).await {
            tracing::error!(%call_id, error = %e, "dialer: finishing the attempt failed");
            self.calls.insert(call_id, f);
            return;
        }
        if campaign.settings.dial_mode == DialMode::Predictive {
            // Dial to the person (or to the end, for everything else): how long it "rang".
            let now = self.deps.clock.utc();
            let resolved = match (outcome::core_outcome(o).is_human_answer(), call.answered_at) {
                (true, Some(at)) => at,
                _ => now,
            };
            // A pacer rebuilt now from the store has this attempt already (finished above).
            if !self.ensure_pacer(campaign.id).await
                && let Some(p) = self.pacers.get_mut(&campaign.id)
            {
                p.record_attempt(
                    now,
                    super::pacing::AttemptRecord {
                        outcome: outcome::core_outcome(o),
                        resolved_after: (resolved - f.dialled_at).to_std().unwrap_or_default(),
                    },
                );
            }
        }
        if let Some(session) = f.session {
            self.session_call_ended(session, f.attempt_id, f.bridged, o)
                .await;
        }
    }

    /// Finishes calls whose end was missed and renews the leases of the others; finishes the
    /// attempts of other nodes whose lease expired (a node that died).
    async fn sweep(&mut self) {
        // Contacts shown to this node's preview agents stay leased while shown.
        let shown = self.shown_previews();
        let until =
            self.deps.clock.utc() + chrono::Duration::from_std(self.cfg.lease).unwrap_or_default();
        for (_, contact) in &shown {
            if let Err(e) = self
                .deps
                .store
                .renew_lease(*contact, &self.cfg.node, until)
                .await
            {
                tracing::warn!(error = %e, "dialer: lease renewal of a shown contact failed");
            }
        }
        match self
            .deps
            .store
            .expired_attempts(self.deps.clock.utc())
            .await
        {
            Ok(expired) => {
                let foreign: Vec<OpenAttempt> = expired
                    .into_iter()
                    .filter(|a| a.call_id.is_none_or(|id| !self.calls.contains_key(&id)))
                    .filter(|a| !shown.iter().any(|(attempt, _)| *attempt == a.id))
                    .collect();
                if !foreign.is_empty() {
                    match finish_open(&self.deps, foreign).await {
                        Ok(n) => tracing::warn!(attempts = n, "dialer: reconciled expired leases"),
                        Err(e) => {
                            tracing::error!(error = %e, "dialer: reconciling expired leases failed")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "dialer: reading expired leases failed"),
        }
        let ids: Vec<Uuid> = self.calls.keys().copied().collect();
        let until =
            self.deps.clock.utc() + chrono::Duration::from_std(self.cfg.lease).unwrap_or_default();
        for id in ids {
            match self.deps.store.get_call(id).await {
                Ok(Some(c)) if c.final_status.is_some() => self.completed(id).await,
                _ => {
                    if let Some(f) = self.calls.get(&id)
                        && let Err(e) = self
                            .deps
                            .store
                            .renew_lease(f.contact_id, &self.cfg.node, until)
                            .await
                    {
                        tracing::warn!(error = %e, "dialer: lease renewal failed");
                    }
                }
            }
        }
    }
}
