//! Tests of the pacing rules and the predictive pacer's decisions.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(s)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn power_is_lines_per_agent_times_idle_agents_minus_ringing_capped() {
    let un = Capacity::UNLIMITED;
    assert_eq!(power_calls(2.0, 3, 0, un), 6);
    assert_eq!(power_calls(2.0, 3, 2, un), 4);
    assert_eq!(power_calls(2.0, 3, 9, un), 0);
    assert_eq!(power_calls(1.5, 3, 0, un), 4);
    assert_eq!(power_calls(2.0, 0, 0, un), 0);
    assert_eq!(power_calls(f64::NAN, 3, 0, un), 0);
    let cap = Capacity {
        max_concurrent: 10,
        live_calls: 7,
        rate_allowance: 5,
    };
    assert_eq!(power_calls(3.0, 4, 0, cap), 3, "concurrency cap");
    let cap = Capacity {
        max_concurrent: 100,
        live_calls: 7,
        rate_allowance: 2,
    };
    assert_eq!(power_calls(3.0, 4, 0, cap), 2, "rate cap");
}

#[test]
fn agentless_is_paced_by_caps_only() {
    let cap = Capacity {
        max_concurrent: 30,
        live_calls: 12,
        rate_allowance: 100,
    };
    assert_eq!(agentless_calls(cap), 18);
    let cap = Capacity {
        max_concurrent: 30,
        live_calls: 31,
        rate_allowance: 100,
    };
    assert_eq!(agentless_calls(cap), 0);
}

#[test]
fn add_bernoulli_builds_a_binomial() {
    let mut d = vec![1.0, 0.0, 0.0, 0.0, 0.0];
    for _ in 0..4 {
        add_bernoulli(&mut d, 0.25);
    }
    let binom = |k: i32| {
        let c = [1.0, 4.0, 6.0, 4.0, 1.0][k as usize];
        c * 0.25f64.powi(k) * 0.75f64.powi(4 - k)
    };
    for k in 0..5 {
        assert!((d[k as usize] - binom(k)).abs() < 1e-12);
    }
}

fn snap<'a>(idle: u32, busy: &'a [AgentLoad], ringing: &'a [Duration]) -> PredictiveSnapshot<'a> {
    PredictiveSnapshot {
        idle_agents: idle,
        busy,
        ringing,
        waiting: 0,
        capacity: Capacity::UNLIMITED,
    }
}

#[test]
fn no_agents_no_calls() {
    let p = PredictivePacer::new(PredictiveConfig::default());
    assert_eq!(p.decide(t(0), &snap(0, &[], &[])).calls, 0);
}

#[test]
fn idle_agents_get_more_than_one_line_each_within_the_allowed_share() {
    let p = PredictivePacer::new(PredictiveConfig::default());
    let d = p.decide(t(0), &snap(5, &[], &[]));
    // 5 agents at a 20% answer rate: more than 5 lines, fewer than 5 / 0.2 = 25.
    assert!(d.calls > 5 && d.calls < 25, "{d:?}");
    assert!(d.predicted_abandon <= d.allowed_abandon, "{d:?}");
    assert!((d.allowed_abandon - 0.025).abs() < 1e-12);
    // One call more would predict more abandons than allowed.
    let stricter = PredictiveConfig {
        setpoint: 0.005,
        ..Default::default()
    };
    let s = PredictivePacer::new(stricter).decide(t(0), &snap(5, &[], &[]));
    assert!(s.calls < d.calls, "{s:?} vs {d:?}");
}

#[test]
fn ringing_calls_count_and_long_ringing_ones_count_less() {
    let p = PredictivePacer::new(PredictiveConfig::default());
    let none = p.decide(t(0), &snap(5, &[], &[])).calls;
    let fresh = [secs(1); 6];
    let with_fresh = p.decide(t(0), &snap(5, &[], &fresh)).calls;
    let stale = [secs(60); 6];
    let with_stale = p.decide(t(0), &snap(5, &[], &stale)).calls;
    assert!(with_fresh < none, "{with_fresh} < {none}");
    assert!(with_stale > with_fresh, "{with_stale} > {with_fresh}");
}

#[test]
fn busy_agents_near_the_end_of_their_calls_count_as_soon_free() {
    let mut p = PredictivePacer::new(PredictiveConfig::default());
    // Every call lasts 100..120 s of talk + 20 s wrap-up; people answer 10..16 s after the
    // dial, one attempt in five.
    for i in 0..200 {
        p.record_handle(secs(100 + i % 21), secs(20));
    }
    for i in 0..500 {
        let (outcome, after) = if i % 5 == 0 {
            (AttemptOutcome::Human, secs(10 + (i / 5) % 7))
        } else {
            (AttemptOutcome::NoAnswer, secs(30))
        };
        p.record_attempt(
            t(i as i64),
            AttemptRecord {
                outcome,
                resolved_after: after,
            },
        );
    }
    let just_started = [AgentLoad::OnCall { elapsed: secs(5) }; 4];
    let nearly_done = [AgentLoad::OnCall { elapsed: secs(125) }; 4];
    let a = p.decide(t(0), &snap(0, &just_started, &[]));
    let b = p.decide(t(0), &snap(0, &nearly_done, &[]));
    assert_eq!(a.calls, 0, "{a:?}");
    assert!(a.expected_free < 0.01, "{a:?}");
    assert!(b.calls > 0 && b.expected_free > 3.0, "{b:?}");
    let wrapping = [AgentLoad::WrapUp { elapsed: secs(15) }; 4];
    let w = p.decide(t(0), &snap(0, &wrapping, &[]));
    assert!(w.expected_free > 3.9 && w.calls > 4, "{w:?}");
}

#[test]
fn answer_rate_is_measured_and_smoothed_by_the_prior() {
    let mut p = PredictivePacer::new(PredictiveConfig::default());
    assert!((p.answer_rate() - 0.2).abs() < 1e-12);
    for i in 0..450 {
        let outcome = if i % 2 == 0 {
            AttemptOutcome::Human
        } else {
            AttemptOutcome::NoAnswer
        };
        p.record_attempt(
            t(i),
            AttemptRecord {
                outcome,
                resolved_after: secs(10),
            },
        );
    }
    // (225 + 0.2 * 50) / (450 + 50)
    assert!((p.answer_rate() - 0.47).abs() < 1e-9, "{}", p.answer_rate());
    // Cancelled attempts say nothing.
    p.record_attempt(
        t(500),
        AttemptRecord {
            outcome: AttemptOutcome::Cancelled,
            resolved_after: secs(1),
        },
    );
    assert!((p.answer_rate() - 0.47).abs() < 1e-9);
}

fn human(p: &mut PredictivePacer, at: DateTime<Utc>, abandoned: bool) {
    p.record_attempt(
        at,
        AttemptRecord {
            outcome: if abandoned {
                AttemptOutcome::Abandoned
            } else {
                AttemptOutcome::Human
            },
            resolved_after: secs(12),
        },
    );
}

#[test]
fn feedback_tightens_after_abandons_and_the_30_day_window_forgets() {
    let mut p = PredictivePacer::new(PredictiveConfig::default());
    assert_eq!(p.feedback(t(0)), 1.0);
    let busy = [AgentLoad::WrapUp { elapsed: secs(20) }; 6];
    let loose = p.decide(t(0), &snap(1, &busy, &[])).calls;
    // 100 people, 10 abandoned: 10% against a 2.5% setpoint.
    for i in 0..100 {
        human(&mut p, t(i), i % 10 == 0);
    }
    assert!((p.abandon_rate_30d(t(100)).unwrap() - 0.10).abs() < 1e-12);
    let f = p.feedback(t(100));
    assert!(f < 1.0, "{f}");
    let tight = p.decide(t(100), &snap(1, &busy, &[]));
    assert!(tight.calls < loose, "{tight:?} vs {loose}");
    assert_eq!(tight.feedback, f);
    // Thirty-one days later those abandons are out of the window.
    let later = t(31 * 24 * 3600);
    assert_eq!(p.abandon_rate_30d(later), None);
    assert_eq!(p.feedback(later), 1.0);
    // Many people and no abandons: the feedback loosens, up to its bound.
    for i in 0..2000 {
        human(&mut p, later + chrono::Duration::seconds(i), false);
    }
    assert_eq!(p.feedback(later + chrono::Duration::seconds(2000)), 1.5);
}

#[test]
fn a_pacer_rebuilt_from_the_stored_attempts_decides_the_same() {
    let mut live = PredictivePacer::new(PredictiveConfig::default());
    let mut history = Vec::new();
    for i in 0..300i64 {
        let outcome = match i % 7 {
            0 | 3 => AttemptOutcome::Human,
            1 => AttemptOutcome::Machine,
            2 => AttemptOutcome::Busy,
            5 if i % 21 == 5 => AttemptOutcome::Abandoned,
            _ => AttemptOutcome::NoAnswer,
        };
        let r = AttemptRecord {
            outcome,
            resolved_after: secs(5 + (i % 20) as u64),
        };
        live.record_attempt(t(i * 30), r);
        history.push((t(i * 30), r));
        if outcome == AttemptOutcome::Human {
            live.record_handle(secs(60 + (i % 90) as u64), secs(20));
        }
    }
    let mut rebuilt = PredictivePacer::new(PredictiveConfig::default());
    for (at, r) in &history {
        rebuilt.record_attempt(*at, *r);
        if r.outcome == AttemptOutcome::Human {
            let i = (*at - t(0)).num_seconds() / 30;
            rebuilt.record_handle(secs(60 + (i % 90) as u64), secs(20));
        }
    }
    let busy = [
        AgentLoad::OnCall { elapsed: secs(40) },
        AgentLoad::WrapUp { elapsed: secs(3) },
    ];
    let ringing = [secs(2), secs(9)];
    let now = t(300 * 30);
    assert_eq!(
        live.decide(now, &snap(3, &busy, &ringing)),
        rebuilt.decide(now, &snap(3, &busy, &ringing))
    );
}

#[test]
fn people_waiting_for_an_agent_use_up_the_idle_agents() {
    let p = PredictivePacer::new(PredictiveConfig::default());
    let mut s = snap(2, &[], &[]);
    let free = p.decide(t(0), &s).calls;
    s.waiting = 2;
    assert_eq!(p.decide(t(0), &s).calls, 0);
    assert!(free > 0);
}

#[test]
fn caps_bound_predictive_too() {
    let p = PredictivePacer::new(PredictiveConfig::default());
    let mut s = snap(10, &[], &[]);
    s.capacity = Capacity {
        max_concurrent: 100,
        live_calls: 0,
        rate_allowance: 3,
    };
    assert_eq!(p.decide(t(0), &s).calls, 3);
    let c = PredictiveConfig {
        max_lines_per_agent: 1.0,
        ..Default::default()
    };
    let p = PredictivePacer::new(c);
    assert_eq!(p.decide(t(0), &snap(10, &[], &[])).calls, 10);
}
