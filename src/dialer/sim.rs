//! A simulated population of contacts and a team of agents driving the predictive pacer, in
//! simulated time (pure, seeded, deterministic).
//!
//! This is how the predictive pacer ([`super::pacing::PredictivePacer`]) is measured against
//! issue 5's goals (abandon rate ≤ 3 % of human-answered calls over 30 days, agents busy
//! ≥ 80 % of the time) without placing a call: a discrete-event simulation with a priority
//! queue of events on a millisecond clock, a seeded RNG, and no wall clock anywhere.
//!
//! # The model
//!
//! - Each attempt is, at random, a **human** answer (`answer_rate`), a **machine**
//!   (`machine_share`), **busy**, **failed**, or else **no answer** (the line rings until
//!   `no_answer_timeout`).
//! - Humans and machines answer after a log-normal ring time; AMD then takes a uniform
//!   `amd_human` / `amd_machine` delay. A machine holds its line for the voicemail drop.
//! - A person whose verdict is `human` takes the longest-idle free agent at once; otherwise
//!   they wait, and if no agent frees up within the 2 s grace the call is **abandoned**.
//! - An agent talks for a log-normal talk time, then wraps up for a uniform wrap-up time.
//! - Agents work a `shift` per simulated day; the pacer is asked every `tick` during the
//!   shift with the live snapshot; it keeps what it learnt from one day to the next.
//!
//! # Figures
//!
//! **Occupancy** = (talk + wrap-up) / (talk + wrap-up + idle time during the shift). **Abandon
//! rate** = abandoned / (connected + abandoned). **Mean wait** = mean time from the human
//! verdict to the agent, over connected calls. **Calls per agent-hour** = connected calls /
//! (agents × shift hours × days).
//!
//! Run `cargo run --example predictive_sim` for the table in BENCHMARKS.md.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::AttemptOutcome;
use super::pacing::{
    AgentLoad, AttemptRecord, Capacity, PredictiveConfig, PredictivePacer, PredictiveSnapshot,
};

/// How the simulated contacts behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Population {
    /// Share of attempts a person answers.
    pub answer_rate: f64,
    /// Share of attempts a machine answers.
    pub machine_share: f64,
    /// Share of attempts that are busy.
    pub busy_share: f64,
    /// Share of attempts that fail.
    pub failed_share: f64,
    /// Mean ring time before a person or a machine answers (log-normal).
    pub ring_mean: Duration,
    /// Standard deviation of the ring time.
    pub ring_sd: Duration,
    /// Ring timeout of unanswered calls.
    pub no_answer_timeout: Duration,
    /// AMD delay after a person answers (uniform in the range).
    pub amd_human: (Duration, Duration),
    /// AMD delay after a machine answers (uniform in the range).
    pub amd_machine: (Duration, Duration),
    /// How long a machine call holds its line after the verdict (voicemail drop).
    pub voicemail_drop: Duration,
    /// Mean talk time (log-normal).
    pub talk_mean: Duration,
    /// Standard deviation of the talk time.
    pub talk_sd: Duration,
    /// Wrap-up time, uniform in the range.
    pub wrap_up: (Duration, Duration),
}

impl Population {
    /// A typical consumer list: the given human answer rate, a quarter of attempts to
    /// machines, 5 % busy, 3 % failed; 3 min talk, 10–40 s wrap-up.
    pub fn typical(answer_rate: f64) -> Self {
        Self {
            answer_rate,
            machine_share: 0.25,
            busy_share: 0.05,
            failed_share: 0.03,
            ring_mean: Duration::from_secs(12),
            ring_sd: Duration::from_secs(6),
            no_answer_timeout: Duration::from_secs(30),
            amd_human: (Duration::from_millis(1200), Duration::from_millis(2500)),
            amd_machine: (Duration::from_millis(2500), Duration::from_millis(5000)),
            voicemail_drop: Duration::from_secs(25),
            talk_mean: Duration::from_secs(180),
            talk_sd: Duration::from_secs(120),
            wrap_up: (Duration::from_secs(10), Duration::from_secs(40)),
        }
    }
}

/// One simulation run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Agents logged in during the shift.
    pub agents: u32,
    /// Simulated days.
    pub days: u32,
    /// Working hours per day.
    pub shift: Duration,
    /// How often the pacer is asked.
    pub tick: Duration,
    /// RNG seed.
    pub seed: u64,
    /// The contacts.
    pub population: Population,
    /// The pacer's settings.
    pub pacer: PredictiveConfig,
}

impl SimConfig {
    /// `agents` agents on a population answering at `answer_rate`, 30 days of 8 hours.
    pub fn new(agents: u32, answer_rate: f64, seed: u64) -> Self {
        Self {
            agents,
            days: 30,
            shift: Duration::from_secs(8 * 3600),
            tick: Duration::from_secs(1),
            seed,
            population: Population::typical(answer_rate),
            pacer: PredictiveConfig::default(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// Agents.
    pub agents: u32,
    /// Days simulated.
    pub days: u32,
    /// Calls placed.
    pub attempts: u64,
    /// People connected to an agent.
    pub connected: u64,
    /// People who found no agent within the grace.
    pub abandoned: u64,
    /// Measured human answers per attempt.
    pub answer_rate: f64,
    /// Abandoned / human-answered over the whole run (30 days).
    pub abandon_rate: f64,
    /// The worst single day's abandon rate.
    pub worst_day_abandon_rate: f64,
    /// Each day's abandon rate.
    pub daily_abandon_rates: Vec<f64>,
    /// Busy share of the agents' logged-in time.
    pub occupancy: f64,
    /// Mean time from the human verdict to the agent, over connected calls.
    pub mean_wait: Duration,
    /// Connected calls per agent-hour.
    pub calls_per_agent_hour: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    ShiftStart,
    ShiftEnd,
    Tick,
    /// A call got its verdict or ended ringing.
    Resolve(usize),
    /// A machine call's line is free.
    LineFree(usize),
    /// The grace of a waiting person is over.
    Grace(usize),
    TalkEnd(usize),
    WrapEnd(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Human,
    Machine,
    Busy,
    Failed,
    NoAnswer,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    dialed_ms: u64,
    kind: Kind,
    verdict_ms: u64,
    waiting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentPhase {
    Idle,
    Talk { since_ms: u64, wrap_ms: u64 },
    Wrap { since_ms: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Agent {
    phase: AgentPhase,
    idle_since_ms: Option<u64>,
    talk_ms: u64,
}

struct Sim {
    cfg: SimConfig,
    rng: SmallRng,
    t0: DateTime<Utc>,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    pacer: PredictivePacer,
    calls: Vec<Call>,
    ringing: Vec<usize>,
    machine_lines: u32,
    waiting: VecDeque<usize>,
    agents: Vec<Agent>,
    in_shift: bool,
    // Figures.
    attempts: u64,
    connected: u64,
    abandoned: u64,
    humans: u64,
    wait_total_ms: u64,
    busy_ms: u64,
    idle_ms: u64,
    day_humans: u64,
    day_abandoned: u64,
    worst_day: f64,
    daily: Vec<f64>,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Sim {
    fn at(&self, t_ms: u64) -> DateTime<Utc> {
        self.t0 + chrono::Duration::milliseconds(t_ms as i64)
    }

    fn schedule(&mut self, t_ms: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((t_ms, self.seq, ev)));
    }

    fn uniform(&mut self, range: (Duration, Duration)) -> u64 {
        let (a, b) = (ms(range.0), ms(range.1));
        if b <= a { a } else { self.rng.gen_range(a..=b) }
    }

    fn lognormal(&mut self, mean: Duration, sd: Duration) -> u64 {
        let (m, s) = (mean.as_secs_f64(), sd.as_secs_f64());
        if m <= 0.0 {
            return 0;
        }
        let sigma2 = (1.0 + (s * s) / (m * m)).ln();
        let mu = m.ln() - sigma2 / 2.0;
        // Box-Muller.
        let u1: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.r#gen();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        ((mu + sigma2.sqrt() * z).exp() * 1000.0) as u64
    }

    fn dial(&mut self) {
        let pop = self.cfg.population;
        let u: f64 = self.rng.r#gen();
        let kind = if u < pop.answer_rate {
            Kind::Human
        } else if u < pop.answer_rate + pop.machine_share {
            Kind::Machine
        } else if u < pop.answer_rate + pop.machine_share + pop.busy_share {
            Kind::Busy
        } else if u < pop.answer_rate + pop.machine_share + pop.busy_share + pop.failed_share {
            Kind::Failed
        } else {
            Kind::NoAnswer
        };
        let timeout = ms(pop.no_answer_timeout);
        let resolve_after = match kind {
            Kind::Human | Kind::Machine => {
                let ring = self.lognormal(pop.ring_mean, pop.ring_sd);
                if ring >= timeout {
                    None
                } else if kind == Kind::Human {
                    Some(ring + self.uniform(pop.amd_human))
                } else {
                    Some(ring + self.uniform(pop.amd_machine))
                }
            }
            Kind::Busy => Some(self.uniform((Duration::from_secs(1), Duration::from_secs(4)))),
            Kind::Failed => {
                Some(self.uniform((Duration::from_millis(300), Duration::from_secs(3))))
            }
            Kind::NoAnswer => None,
        };
        // A person or machine slower than the ring timeout is a no-answer.
        let (kind, after) = match resolve_after {
            Some(a) => (kind, a),
            None => (Kind::NoAnswer, timeout),
        };
        let id = self.calls.len();
        self.calls.push(Call {
            dialed_ms: self.now_ms,
            kind,
            verdict_ms: 0,
            waiting: false,
        });
        self.ringing.push(id);
        self.attempts += 1;
        self.schedule(self.now_ms + after, Event::Resolve(id));
    }

    fn record(&mut self, id: usize, outcome: AttemptOutcome) {
        let call = self.calls[id];
        let resolved = match outcome {
            AttemptOutcome::Human | AttemptOutcome::Abandoned => call.verdict_ms,
            _ => self.now_ms,
        } - call.dialed_ms;
        let at = self.at(self.now_ms);
        self.pacer.record_attempt(
            at,
            AttemptRecord {
                outcome,
                resolved_after: Duration::from_millis(resolved),
            },
        );
    }

    fn idle_agent(&self) -> Option<usize> {
        // The longest idle agent takes the call.
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, a)| a.phase == AgentPhase::Idle)
            .min_by_key(|(_, a)| a.idle_since_ms.unwrap_or(0))
            .map(|(i, _)| i)
    }

    fn connect(&mut self, agent: usize, id: usize) {
        let call = &mut self.calls[id];
        call.waiting = false;
        self.wait_total_ms += self.now_ms - call.verdict_ms;
        self.connected += 1;
        self.humans += 1;
        self.day_humans += 1;
        let pop = self.cfg.population;
        let talk = self.lognormal(pop.talk_mean, pop.talk_sd).max(5_000);
        let wrap = self.uniform(pop.wrap_up);
        let a = &mut self.agents[agent];
        if let Some(since) = a.idle_since_ms.take() {
            self.idle_ms += self.now_ms - since;
        }
        a.phase = AgentPhase::Talk {
            since_ms: self.now_ms,
            wrap_ms: wrap,
        };
        a.talk_ms = talk;
        self.busy_ms += talk + wrap;
        self.schedule(self.now_ms + talk, Event::TalkEnd(agent));
        self.record(id, AttemptOutcome::Human);
    }

    fn agent_free(&mut self, agent: usize) {
        self.agents[agent].phase = AgentPhase::Idle;
        self.agents[agent].idle_since_ms = self.in_shift.then_some(self.now_ms);
        if let Some(id) = self.waiting.pop_front() {
            self.connect(agent, id);
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms;
        let idle = if self.waiting.is_empty() {
            self.agents
                .iter()
                .filter(|a| a.phase == AgentPhase::Idle)
                .count() as u32
        } else {
            0
        };
        let busy: Vec<AgentLoad> = self
            .agents
            .iter()
            .filter_map(|a| match a.phase {
                AgentPhase::Idle => None,
                AgentPhase::Talk { since_ms, .. } => Some(AgentLoad::OnCall {
                    elapsed: Duration::from_millis(now - since_ms),
                }),
                AgentPhase::Wrap { since_ms } => Some(AgentLoad::WrapUp {
                    elapsed: Duration::from_millis(now - since_ms),
                }),
            })
            .collect();
        let ringing: Vec<Duration> = self
            .ringing
            .iter()
            .map(|id| Duration::from_millis(now - self.calls[*id].dialed_ms))
            .collect();
        let snapshot = PredictiveSnapshot {
            idle_agents: idle,
            busy: &busy,
            ringing: &ringing,
            waiting: self.waiting.len() as u32,
            capacity: Capacity::UNLIMITED,
        };
        let decision = self.pacer.decide(self.at(now), &snapshot);
        for _ in 0..decision.calls {
            self.dial();
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::ShiftStart => {
                self.in_shift = true;
                for a in &mut self.agents {
                    if a.phase == AgentPhase::Idle {
                        a.idle_since_ms = Some(self.now_ms);
                    }
                }
                self.day_humans = 0;
                self.day_abandoned = 0;
                self.schedule(self.now_ms, Event::Tick);
                self.schedule(self.now_ms + ms(self.cfg.shift), Event::ShiftEnd);
            }
            Event::ShiftEnd => {
                self.in_shift = false;
                for a in &mut self.agents {
                    if let Some(since) = a.idle_since_ms.take() {
                        self.idle_ms += self.now_ms - since;
                    }
                }
                if self.day_humans > 0 {
                    let day = self.day_abandoned as f64 / self.day_humans as f64;
                    self.worst_day = self.worst_day.max(day);
                    self.daily.push(day);
                }
            }
            Event::Tick => {
                if self.in_shift {
                    self.tick();
                    self.schedule(self.now_ms + ms(self.cfg.tick).max(1), Event::Tick);
                }
            }
            Event::Resolve(id) => {
                self.ringing.retain(|c| *c != id);
                match self.calls[id].kind {
                    Kind::Human => {
                        self.calls[id].verdict_ms = self.now_ms;
                        if let Some(agent) = self.idle_agent() {
                            self.connect(agent, id);
                        } else {
                            self.calls[id].waiting = true;
                            self.waiting.push_back(id);
                            let grace = ms(self.cfg.pacer.abandon_grace);
                            self.schedule(self.now_ms + grace, Event::Grace(id));
                        }
                    }
                    Kind::Machine => {
                        self.machine_lines += 1;
                        self.record(id, AttemptOutcome::Machine);
                        let drop = ms(self.cfg.population.voicemail_drop);
                        self.schedule(self.now_ms + drop, Event::LineFree(id));
                    }
                    Kind::Busy => self.record(id, AttemptOutcome::Busy),
                    Kind::Failed => self.record(id, AttemptOutcome::Failed),
                    Kind::NoAnswer => self.record(id, AttemptOutcome::NoAnswer),
                }
            }
            Event::LineFree(_) => self.machine_lines -= 1,
            Event::Grace(id) => {
                if self.calls[id].waiting {
                    self.calls[id].waiting = false;
                    self.waiting.retain(|c| *c != id);
                    self.abandoned += 1;
                    self.humans += 1;
                    self.day_humans += 1;
                    self.day_abandoned += 1;
                    self.record(id, AttemptOutcome::Abandoned);
                }
            }
            Event::TalkEnd(agent) => {
                if let AgentPhase::Talk { wrap_ms, .. } = self.agents[agent].phase {
                    self.agents[agent].phase = AgentPhase::Wrap {
                        since_ms: self.now_ms,
                    };
                    self.schedule(self.now_ms + wrap_ms, Event::WrapEnd(agent));
                }
            }
            Event::WrapEnd(agent) => {
                if let AgentPhase::Wrap { since_ms } = self.agents[agent].phase {
                    let talk = Duration::from_millis(self.agents[agent].talk_ms);
                    let wrap = Duration::from_millis(self.now_ms - since_ms);
                    self.pacer.record_handle(talk, wrap);
                }
                self.agent_free(agent);
            }
        }
    }
}

/// Runs the simulation to the end and returns its figures.
pub fn simulate(cfg: &SimConfig) -> SimReport {
    let t0 = DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .expect("constant")
        .with_timezone(&Utc);
    let mut sim = Sim {
        cfg: *cfg,
        rng: SmallRng::seed_from_u64(cfg.seed),
        t0,
        now_ms: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        pacer: PredictivePacer::new(cfg.pacer),
        calls: Vec::new(),
        ringing: Vec::new(),
        machine_lines: 0,
        waiting: VecDeque::new(),
        agents: vec![
            Agent {
                phase: AgentPhase::Idle,
                idle_since_ms: None,
                talk_ms: 0,
            };
            cfg.agents as usize
        ],
        in_shift: false,
        attempts: 0,
        connected: 0,
        abandoned: 0,
        humans: 0,
        wait_total_ms: 0,
        busy_ms: 0,
        idle_ms: 0,
        day_humans: 0,
        day_abandoned: 0,
        worst_day: 0.0,
        daily: Vec::new(),
    };
    for day in 0..u64::from(cfg.days) {
        sim.schedule(day * DAY_MS, Event::ShiftStart);
    }
    while let Some(Reverse((t, _, ev))) = sim.queue.pop() {
        sim.now_ms = t;
        sim.handle(ev);
    }
    let agent_hours =
        f64::from(cfg.agents) * cfg.shift.as_secs_f64() / 3600.0 * f64::from(cfg.days);
    SimReport {
        agents: cfg.agents,
        days: cfg.days,
        attempts: sim.attempts,
        connected: sim.connected,
        abandoned: sim.abandoned,
        answer_rate: if sim.attempts > 0 {
            sim.humans as f64 / sim.attempts as f64
        } else {
            0.0
        },
        abandon_rate: if sim.humans > 0 {
            sim.abandoned as f64 / sim.humans as f64
        } else {
            0.0
        },
        worst_day_abandon_rate: sim.worst_day,
        daily_abandon_rates: sim.daily,
        occupancy: if sim.busy_ms + sim.idle_ms > 0 {
            sim.busy_ms as f64 / (sim.busy_ms + sim.idle_ms) as f64
        } else {
            0.0
        },
        mean_wait: Duration::from_millis(sim.wait_total_ms / sim.connected.max(1)),
        calls_per_agent_hour: if agent_hours > 0.0 {
            sim.connected as f64 / agent_hours
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(agents: u32, answer_rate: f64, seed: u64) -> SimReport {
        let r = simulate(&SimConfig::new(agents, answer_rate, seed));
        eprintln!("{r:?}");
        assert!(r.connected > 1000, "{r:?}");
        assert!(
            (r.answer_rate - answer_rate).abs() < 0.02,
            "the population answers as configured: {r:?}"
        );
        assert!(r.abandon_rate <= 0.03, "abandon rate over 30 days: {r:?}");
        assert!(r.occupancy >= 0.80, "occupancy: {r:?}");
        r
    }

    #[test]
    fn ten_agents_thirty_percent_answer_thirty_days() {
        check(10, 0.30, 1);
    }

    #[test]
    fn twenty_five_agents_fifteen_percent_answer_thirty_days() {
        check(25, 0.15, 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let mut cfg = SimConfig::new(4, 0.3, 7);
        cfg.days = 2;
        cfg.shift = Duration::from_secs(3600);
        assert_eq!(simulate(&cfg), simulate(&cfg));
    }
}
