//! How many calls to start now (pure).
//!
//! - `preview`: none; the agent dials ([`super::session`]).
//! - `power` ([`power_calls`]): `lines_per_agent × idle agents − calls ringing`.
//! - `agentless` ([`agentless_calls`]): as many as the concurrency cap and the rate allow.
//! - `predictive` ([`PredictivePacer`]): described below; the runner asks it on each tick of a
//!   `predictive` campaign with agent sessions (`super::runner`).
//!
//! Every mode is capped by [`Capacity`]: the campaign's `max_concurrent` live calls and what
//! the rate limiter ([`super::rate::RateLimiter::available`]) still allows.
//!
//! # The predictive pacer
//!
//! The approach is the one predictive dialing started with (D. A. Samuelson, "Predictive
//! Dialing for Outbound Telephone Call Centers", *Interfaces* 29(5), 1999; examined by
//! simulation in J. Lindén, "Predictive Dialing", Uppsala University IT 10 047, 2010): forecast
//! how many agents will be free when the calls dialled now are answered, forecast how many
//! people will answer, and dial as many calls as keeps the expected number of answered people
//! without an agent within the allowed share. A feedback term then corrects the forecast's bias
//! against the abandon rate actually measured over 30 days.
//!
//! At every decision (the runner asks on every tick of the campaign):
//!
//! 1. **Answer model.** `p` = human answers / attempts over the last [`PredictiveConfig::
//!    sample_size`] attempts, smoothed with a prior worth `prior_weight` attempts. The time
//!    from dialling to a human verdict (ring + AMD) and from dialling to any other end
//!    (machine verdict, busy, no-answer timeout) are kept as empirical samples. A call still
//!    ringing after `r` seconds will reach a person with probability
//!    `p·S_h(r) / (p·S_h(r) + (1−p)·S_o(r))` (Bayes with the two survival functions), so a
//!    call that has rung for 25 s counts for little.
//! 2. **Checkpoints.** People do not all answer at once, and an agent must be free within
//!    2 s (the abandon grace) of *their* answer. So the forecast is made at checkpoints
//!    `t = {¼, ½, ¾, 1, 1½, 2} × T`, `T` the mean dial-to-human time: people arrived by `t`
//!    against agents free by `t + 2 s`; the last checkpoint counts every person still to come.
//! 3. **Agents expected free by `t + 2 s`.** The idle agents, plus each busy agent with the
//!    probability that its call ends by then, from the empirical handle-time (talk + wrap-up)
//!    distribution conditioned on the time already spent (`P(h ≤ e + t | h > e)`), or the
//!    wrap-up distribution for agents already in wrap-up. With few samples an exponential with
//!    the prior mean stands in (the Erlang assumption of memoryless service). The number free,
//!    `F(t)`, is a sum of independent Bernoullis (Poisson-binomial), computed exactly.
//! 4. **People arrived by `t`.** `A(t)` = the people already waiting for an agent + one
//!    Bernoulli per ringing call (step 1 times the chance its answer comes by `t`) +
//!    `Binomial(n, p · P(delay ≤ t))` for `n` new calls.
//! 5. **Choice.** The largest `n` with `max_t E[(A(t) − F(t))⁺] ≤ α · E[A]`, `E[A]` all the
//!    people expected: in every realisation, at least `A(t) − F(t)` of the people arrived by
//!    `t` found no agent, so the left side estimates the expected abandons (from below; the
//!    feedback takes care of the rest). `E[(A − F)⁺]` is computed exactly as
//!    `E[A] − E[F] + E[(F − A)⁺]`, which only needs `P(A = a)` for `a` below the number of
//!    agents, so a decision costs O(checkpoints · (ringing + busy + n) · agents).
//! 6. **Feedback.** The checkpoint forecast compares expectations, not paths: a person who
//!    answers at 3 s is abandoned even though an agent frees at 10 s (both count by
//!    `t = 10 s`), and `max_t E[·] ≤ E[max_t ·]`. So it under-predicts abandons, by a factor
//!    that depends on the population (in simulation, with the feedback held at 1, 10 agents
//!    abandoned 13.8 % on their first day instead of the 2.5 % forecast; BENCHMARKS.md). A
//!    controller corrects it with one factor `f = exp(gain · (setpoint · H₃₀ − A₃₀))`,
//!    clamped to `[feedback_min, feedback_max]`, where `H₃₀` and `A₃₀` are the human answers
//!    and abandons of the last 30 days: the allowed share is `α = setpoint · f` and each busy
//!    agent's chance of being free is scaled by `f`. This is the closed form of a
//!    Robbins–Monro integral controller (every person answered raises `log f` by
//!    `gain · setpoint`, every abandon lowers it by `gain`), so it drives the measured 30-day
//!    rate to the setpoint whatever the forecast's bias; near its lower bound only idle agents
//!    count and the pacer is nearly progressive. It is rebuilt exactly from the stored
//!    attempts after a restart. The setpoint (2.5 % by default) sits below the 3 % limit to
//!    leave room for chance.
//!
//! Caps: `n ≤ max_lines_per_agent × agents − ringing`, and [`Capacity`].
//!
//! Figures from the simulated population ([`super::sim`]) are in BENCHMARKS.md and the README.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AttemptOutcome;

/// Limits every mode obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The campaign's cap on live calls (ringing, talking, playing a prompt).
    pub max_concurrent: u32,
    /// Live calls now.
    pub live_calls: u32,
    /// Starts the rate limiter still allows now.
    pub rate_allowance: u32,
}

impl Capacity {
    /// No cap at all (tests, the simulation).
    pub const UNLIMITED: Capacity = Capacity {
        max_concurrent: u32::MAX,
        live_calls: 0,
        rate_allowance: u32::MAX,
    };

    /// `n` reduced to what the caps allow.
    pub fn cap(&self, n: u32) -> u32 {
        n.min(self.max_concurrent.saturating_sub(self.live_calls))
            .min(self.rate_allowance)
    }
}

/// `power` mode: `lines_per_agent × idle_agents`, minus the calls already ringing, capped.
/// `idle_agents` counts agents available or dialing (not on a call, in wrap-up or paused).
pub fn power_calls(
    lines_per_agent: f64,
    idle_agents: u32,
    ringing: u32,
    capacity: Capacity,
) -> u32 {
    let lines = if lines_per_agent.is_finite() && lines_per_agent > 0.0 {
        (lines_per_agent * f64::from(idle_agents)).floor()
    } else {
        0.0
    };
    // Saturating float-to-int conversion: absurd configurations stay bounded by the caps.
    let target = lines as u32;
    capacity.cap(target.saturating_sub(ringing))
}

/// `agentless` mode: paced by the concurrency cap and the rate only.
pub fn agentless_calls(capacity: Capacity) -> u32 {
    capacity.cap(u32::MAX)
}

/// Settings of the predictive pacer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveConfig {
    /// The legal limit on abandoned / human-answered calls (0.03).
    pub max_abandon_rate: f64,
    /// The rate the feedback aims at, below the limit.
    pub setpoint: f64,
    /// How long a person may wait for an agent before the call counts as abandoned.
    pub abandon_grace: Duration,
    /// Never more lines than this per logged-in agent.
    pub max_lines_per_agent: f64,
    /// Human answer rate assumed before there are measurements.
    pub prior_answer_rate: f64,
    /// How many attempts the prior answer rate is worth.
    pub prior_weight: f64,
    /// Mean dial-to-human-verdict time assumed before measurements.
    pub prior_answer_delay: Duration,
    /// Mean dial-to-other-end time (machine, busy, no answer) assumed before measurements.
    pub prior_other_delay: Duration,
    /// Mean talk + wrap-up time assumed before measurements.
    pub prior_handle_time: Duration,
    /// Mean wrap-up time assumed before measurements.
    pub prior_wrap_up: Duration,
    /// How many recent attempts / durations the estimates use.
    pub sample_size: usize,
    /// Below this many samples, a distribution falls back to the exponential prior.
    pub min_samples: usize,
    /// Feedback gain per call (see the module docs).
    pub gain: f64,
    /// Lowest feedback factor.
    pub feedback_min: f64,
    /// Highest feedback factor.
    pub feedback_max: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        Self {
            max_abandon_rate: 0.03,
            setpoint: 0.025,
            abandon_grace: Duration::from_secs(2),
            max_lines_per_agent: 8.0,
            prior_answer_rate: 0.2,
            prior_weight: 50.0,
            prior_answer_delay: Duration::from_secs(15),
            prior_other_delay: Duration::from_secs(20),
            prior_handle_time: Duration::from_secs(180),
            prior_wrap_up: Duration::from_secs(30),
            sample_size: 500,
            min_samples: 20,
            gain: 0.05,
            feedback_min: 0.02,
            feedback_max: 1.5,
        }
    }
}

/// What one finished attempt tells the pacer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// From dialling to the human verdict (`human`, `abandoned`) or to the end of ringing
    /// (machine verdict, busy, failure, no-answer timeout): the time the call was "ringing"
    /// as far as the pacer is concerned.
    pub resolved_after: Duration,
}

/// A busy agent, as the pacer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLoad {
    /// Talking, for `elapsed` since the customer was bridged.
    OnCall {
        /// Time since the customer was bridged.
        elapsed: Duration,
    },
    /// In wrap-up, for `elapsed` since the customer hung up.
    WrapUp {
        /// Time since wrap-up began.
        elapsed: Duration,
    },
}

/// The campaign as it is now, for one predictive decision.
#[derive(Debug, Clone, Copy)]
pub struct PredictiveSnapshot<'a> {
    /// Agents available (or dialing) and not yet claimed by a waiting person.
    pub idle_agents: u32,
    /// Agents on a call or in wrap-up.
    pub busy: &'a [AgentLoad],
    /// For each call still ringing (no verdict yet): time since it was dialled.
    pub ringing: &'a [Duration],
    /// People who answered and are waiting (within the grace) for an agent.
    pub waiting: u32,
    /// Caps.
    pub capacity: Capacity,
}

/// One predictive decision, with the figures behind it (for stats and logs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingDecision {
    /// Calls to start now.
    pub calls: u32,
    /// Human answer rate per attempt used.
    pub answer_rate: f64,
    /// Agents expected free by `T + grace` (`T` the mean dial-to-human time), `E[F]`.
    pub expected_free: f64,
    /// People expected, `E[A]`, with the chosen calls.
    pub expected_people: f64,
    /// Predicted share of them finding no agent.
    pub predicted_abandon: f64,
    /// The share allowed for this decision (`α`, the setpoint times the feedback).
    pub allowed_abandon: f64,
    /// The feedback factor applied to `α` and to the busy agents' chances of being free.
    pub feedback: f64,
    /// Lines (ringing + new) per agent expected free.
    pub lines_per_agent: f64,
}

/// A bounded sample of durations (seconds) kept both in arrival order and sorted.
#[derive(Debug, Clone)]
struct Samples {
    arrival: VecDeque<f64>,
    sorted: Vec<f64>,
    cap: usize,
    sum: f64,
}

impl Samples {
    fn new(cap: usize) -> Self {
        Self {
            arrival: VecDeque::with_capacity(cap),
            sorted: Vec::with_capacity(cap),
            cap: cap.max(1),
            sum: 0.0,
        }
    }

    fn push(&mut self, x: f64) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        if self.arrival.len() == self.cap
            && let Some(old) = self.arrival.pop_front()
        {
            let i = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(i);
            self.sum -= old;
        }
        self.arrival.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
        self.sum += x;
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn mean(&self) -> Option<f64> {
        (!self.sorted.is_empty()).then(|| self.sum / self.sorted.len() as f64)
    }

    /// Number of samples strictly greater than `x`.
    fn count_above(&self, x: f64) -> usize {
        self.sorted.len() - self.sorted.partition_point(|v| *v <= x)
    }
}

/// A duration distribution: empirical when there are enough samples, else exponential.
struct Dist<'a> {
    samples: &'a Samples,
    prior_mean: f64,
    min_samples: usize,
}

impl Dist<'_> {
    fn empirical(&self) -> bool {
        self.samples.len() >= self.min_samples
    }

    fn mean(&self) -> f64 {
        if self.empirical() {
            self.samples.mean().unwrap_or(self.prior_mean)
        } else {
            self.prior_mean
        }
    }

    /// `P(X > x)`.
    fn survival(&self, x: f64) -> f64 {
        if self.empirical() {
            self.samples.count_above(x) as f64 / self.samples.len() as f64
        } else {
            (-x / self.prior_mean.max(1e-9)).exp()
        }
    }

    /// `P(X ≤ e + t | X > e)`: the chance something that has lasted `e` ends within `t`.
    fn ends_within(&self, e: f64, t: f64) -> f64 {
        if self.empirical() {
            let above_e = self.samples.count_above(e);
            if above_e == 0 {
                // Longer than anything seen: no information; fall back to memoryless.
                return 1.0 - (-t / self.mean().max(1e-9)).exp();
            }
            let above_et = self.samples.count_above(e + t);
            (above_e - above_et) as f64 / above_e as f64
        } else {
            1.0 - (-t / self.prior_mean.max(1e-9)).exp()
        }
    }
}

/// Human answers and abandons per hour, for the rolling 30-day rate.
#[derive(Debug, Clone, Default)]
struct RollingCounts {
    /// Hour number since the epoch → (attempts, human answers, abandons).
    hours: BTreeMap<i64, (u64, u64, u64)>,
}

/// The abandon rate's window.
pub const ABANDON_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

impl RollingCounts {
    fn hour(at: DateTime<Utc>) -> i64 {
        at.timestamp().div_euclid(3600)
    }

    fn add(&mut self, at: DateTime<Utc>, attempts: u64, humans: u64, abandons: u64) {
        let e = self.hours.entry(Self::hour(at)).or_default();
        e.0 += attempts;
        e.1 += humans;
        e.2 += abandons;
        // Forget hours that can no longer be inside any window ending at or after `at`.
        let oldest = Self::hour(at) - (ABANDON_WINDOW.as_secs() / 3600) as i64;
        while let Some((&h, _)) = self.hours.first_key_value() {
            if h > oldest {
                break;
            }
            self.hours.pop_first();
        }
    }

    /// (attempts, humans, abandons) of the window ending at `now`, at hour resolution.
    fn totals(&self, now: DateTime<Utc>) -> (u64, u64, u64) {
        let from = Self::hour(now) - (ABANDON_WINDOW.as_secs() / 3600) as i64;
        self.hours
            .range(from + 1..)
            .fold((0, 0, 0), |t, (_, c)| (t.0 + c.0, t.1 + c.1, t.2 + c.2))
    }
}

/// The predictive pacer of one campaign.
#[derive(Debug, Clone)]
pub struct PredictivePacer {
    config: PredictiveConfig,
    /// Recent attempts: was it a human answer?
    recent: VecDeque<bool>,
    recent_humans: usize,
    human_delays: Samples,
    other_delays: Samples,
    handle_times: Samples,
    wrap_ups: Samples,
    window: RollingCounts,
}

impl PredictivePacer {
    /// A pacer with no history (the priors stand in until there are measurements).
    pub fn new(config: PredictiveConfig) -> Self {
        let n = config.sample_size;
        Self {
            config,
            recent: VecDeque::with_capacity(n),
            recent_humans: 0,
            human_delays: Samples::new(n),
            other_delays: Samples::new(n),
            handle_times: Samples::new(n),
            wrap_ups: Samples::new(n),
            window: RollingCounts::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PredictiveConfig {
        &self.config
    }

    /// An attempt ended (or reached its human verdict) at `at`. After a restart the runner
    /// replays the stored attempts of the last 30 days in order through this.
    pub fn record_attempt(&mut self, at: DateTime<Utc>, record: AttemptRecord) {
        if record.outcome == AttemptOutcome::Cancelled {
            // We stopped it: says nothing about the population.
            return;
        }
        let human = record.outcome.is_human_answer();
        if self.recent.len() == self.config.sample_size.max(1)
            && self.recent.pop_front() == Some(true)
        {
            self.recent_humans -= 1;
        }
        self.recent.push_back(human);
        if human {
            self.recent_humans += 1;
            self.human_delays.push(record.resolved_after.as_secs_f64());
        } else {
            self.other_delays.push(record.resolved_after.as_secs_f64());
        }
        let abandoned = record.outcome == AttemptOutcome::Abandoned;
        self.window
            .add(at, 1, u64::from(human), u64::from(abandoned));
    }

    /// A customer call handled by an agent finished: its talk time and wrap-up time.
    pub fn record_handle(&mut self, talk: Duration, wrap_up: Duration) {
        self.handle_times.push((talk + wrap_up).as_secs_f64());
        self.wrap_ups.push(wrap_up.as_secs_f64());
    }

    /// Human answers per attempt, smoothed with the prior.
    pub fn answer_rate(&self) -> f64 {
        let c = &self.config;
        (self.recent_humans as f64 + c.prior_answer_rate * c.prior_weight)
            / (self.recent.len() as f64 + c.prior_weight).max(1e-9)
    }

    /// Abandoned / human-answered calls over the 30 days before `now`, `None` before any
    /// human answer.
    pub fn abandon_rate_30d(&self, now: DateTime<Utc>) -> Option<f64> {
        let (_, humans, abandons) = self.window.totals(now);
        (humans > 0).then(|| abandons as f64 / humans as f64)
    }

    /// The feedback factor `f` (module docs, step 6).
    pub fn feedback(&self, now: DateTime<Utc>) -> f64 {
        let c = &self.config;
        let (_, humans, abandons) = self.window.totals(now);
        let slack = c.setpoint * humans as f64 - abandons as f64;
        (c.gain * slack).exp().clamp(c.feedback_min, c.feedback_max)
    }

    /// How many calls to start now.
    pub fn decide(&self, now: DateTime<Utc>, snap: &PredictiveSnapshot<'_>) -> PacingDecision {
        let c = &self.config;
        let p = self.answer_rate().clamp(0.0, 1.0);
        let human_delay = Dist {
            samples: &self.human_delays,
            prior_mean: c.prior_answer_delay.as_secs_f64(),
            min_samples: c.min_samples,
        };
        let other_delay = Dist {
            samples: &self.other_delays,
            prior_mean: c.prior_other_delay.as_secs_f64(),
            min_samples: c.min_samples,
        };
        let handle = Dist {
            samples: &self.handle_times,
            prior_mean: c.prior_handle_time.as_secs_f64(),
            min_samples: c.min_samples,
        };
        let wrap = Dist {
            samples: &self.wrap_ups,
            prior_mean: c.prior_wrap_up.as_secs_f64(),
            min_samples: c.min_samples,
        };
        let grace = c.abandon_grace.as_secs_f64();
        let mean_delay = human_delay.mean();
        let feedback = self.feedback(now);
        let allowed = (c.setpoint * feedback).max(0.0);
        let agents = snap.idle_agents as usize + snap.busy.len();

        // Each ringing call reaches a person with probability `reach` (Bayes on how long it
        // has rung), after a delay distributed as the human delays longer than its age.
        let reach: Vec<f64> = snap
            .ringing
            .iter()
            .map(|r| {
                let r = r.as_secs_f64();
                let h = p * human_delay.survival(r);
                let o = (1.0 - p) * other_delay.survival(r);
                if h + o > 0.0 { h / (h + o) } else { 0.0 }
            })
            .collect();
        let total_people = f64::from(snap.waiting) + reach.iter().sum::<f64>();

        // One checkpoint per `t` (module docs, step 5): people arrived by `t` against agents
        // free by `t + grace`.
        let last = CHECKPOINTS.len() - 1;
        let mut checkpoints: Vec<Checkpoint> = CHECKPOINTS
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let t = k * mean_delay;
                // The last checkpoint counts every person still to come, however late,
                // against the agents free by then.
                let arrived_by = |r: f64| {
                    if i == last {
                        1.0
                    } else {
                        human_delay.ends_within(r, t)
                    }
                };
                // F(t + grace) = idle + Σ Bernoulli(q_j).
                let mut free = vec![0.0f64; agents + 1];
                free[snap.idle_agents as usize] = 1.0;
                let mut expected_free = f64::from(snap.idle_agents);
                for load in snap.busy {
                    let q = match *load {
                        AgentLoad::OnCall { elapsed } => {
                            handle.ends_within(elapsed.as_secs_f64(), t + grace)
                        }
                        AgentLoad::WrapUp { elapsed } => {
                            wrap.ends_within(elapsed.as_secs_f64(), t + grace)
                        }
                    };
                    let q = (q * feedback).clamp(0.0, 1.0);
                    expected_free += q;
                    add_bernoulli(&mut free, q);
                }
                // gap[a] = E[(F − a)⁺] for a < agents: gap[0] = E[F], and each step down
                // subtracts P(F > a) since (f − a − 1)⁺ = (f − a)⁺ − 1{f > a}.
                let mut gap = Vec::with_capacity(agents);
                let mut g = free
                    .iter()
                    .enumerate()
                    .map(|(f, pf)| pf * f as f64)
                    .sum::<f64>();
                let mut above = 1.0 - free[0];
                for a in 0..agents {
                    gap.push(g.max(0.0));
                    g -= above;
                    above -= free[a + 1];
                }
                // A(t) = waiting + Σ Bernoulli(reach_i · P(arrives by t)), P(A = a) for a < agents.
                let mut people = vec![0.0f64; agents];
                if (snap.waiting as usize) < agents {
                    people[snap.waiting as usize] = 1.0;
                }
                let mut expected_people = f64::from(snap.waiting);
                for (r, reach) in snap.ringing.iter().zip(&reach) {
                    let q = reach * arrived_by(r.as_secs_f64());
                    expected_people += q;
                    add_bernoulli(&mut people, q);
                }
                Checkpoint {
                    new_call: p * arrived_by(0.0),
                    expected_free,
                    gap,
                    people,
                    expected_people,
                }
            })
            .collect();

        let ringing = snap.ringing.len() as u32;
        let line_cap = (c.max_lines_per_agent * agents as f64).floor().max(0.0) as u32;
        let max_new = snap.capacity.cap(line_cap.saturating_sub(ringing));
        let worst = |cps: &[Checkpoint]| cps.iter().map(Checkpoint::overflow).fold(0.0, f64::max);
        let mut n = 0;
        let mut over = worst(&checkpoints);
        let mut people_total = total_people;
        if agents > 0 && p > 0.0 {
            let mut scratch = vec![0.0f64; agents];
            while n < max_new {
                // Try one more call: each checkpoint gains a Bernoulli(new_call).
                let mut next_over = 0.0f64;
                for cp in &checkpoints {
                    scratch.copy_from_slice(&cp.people);
                    add_bernoulli(&mut scratch, cp.new_call);
                    next_over =
                        next_over.max(cp.overflow_of(&scratch, cp.expected_people + cp.new_call));
                }
                let next_total = people_total + p;
                if next_over > allowed * next_total + 1e-12 {
                    break;
                }
                for cp in &mut checkpoints {
                    add_bernoulli(&mut cp.people, cp.new_call);
                    cp.expected_people += cp.new_call;
                }
                people_total = next_total;
                over = next_over;
                n += 1;
            }
        }
        PacingDecision {
            calls: n,
            answer_rate: p,
            expected_free: checkpoints[HORIZON_CHECKPOINT].expected_free,
            expected_people: people_total,
            predicted_abandon: if people_total > 0.0 {
                over / people_total
            } else {
                0.0
            },
            allowed_abandon: allowed,
            feedback,
            lines_per_agent: f64::from(ringing + n) / agents.max(1) as f64,
        }
    }
}

/// Checkpoints, in multiples of the mean dial-to-human time `T`.
const CHECKPOINTS: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0];
/// The checkpoint at `T`, whose expected free agents the decision reports.
const HORIZON_CHECKPOINT: usize = 3;

/// People arrived and agents free at one checkpoint `t`.
struct Checkpoint {
    /// Probability that one new call has produced a person by `t`.
    new_call: f64,
    /// `E[F]`: agents free by `t + grace`.
    expected_free: f64,
    /// `gap[a] = E[(F − a)⁺]`.
    gap: Vec<f64>,
    /// `P(A = a)` for `a` below the number of agents: people arrived by `t`.
    people: Vec<f64>,
    /// `E[A]`.
    expected_people: f64,
}

impl Checkpoint {
    /// `E[(A − F)⁺] = E[A] − E[F] + E[(F − A)⁺]`.
    fn overflow_of(&self, people: &[f64], expected_people: f64) -> f64 {
        let short: f64 = people.iter().zip(&self.gap).map(|(pa, g)| pa * g).sum();
        (expected_people - self.expected_free + short).max(0.0)
    }

    fn overflow(&self) -> f64 {
        self.overflow_of(&self.people, self.expected_people)
    }
}

/// Convolves a (truncated) count distribution with one Bernoulli(`q`) in place: the mass
/// that moves past the end is dropped (only the low counts are needed).
fn add_bernoulli(dist: &mut [f64], q: f64) {
    for k in (0..dist.len()).rev() {
        let stay = dist[k] * (1.0 - q);
        let from_below = if k > 0 { dist[k - 1] * q } else { 0.0 };
        dist[k] = stay + from_below;
    }
}

#[cfg(test)]
mod tests;
