//! Runs the predictive pacer against simulated populations and prints the BENCHMARKS.md table.
//!
//! `cargo run --example predictive_sim [DAYS [AGENTS:ANSWER_RATE:SEED ...]]`
//! (default: 30 days of 8-hour shifts, the populations of BENCHMARKS.md). The figures are the
//! same in any build profile; `--release` only makes them come faster.
//! Everything is simulated (clock, contacts, agents; see `trunkline::dialer::sim`): no call is
//! placed and the figures are the same on every machine for the same seeds.

use trunkline::dialer::sim::{SimConfig, simulate};

fn main() {
    let days: u32 = std::env::args()
        .nth(1)
        .and_then(|d| d.parse().ok())
        .unwrap_or(30);
    println!(
        "| agents | answer rate | attempts | occupancy | abandon rate (30 d) | worst day | mean wait for an agent | calls per agent-hour |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs: Vec<(u32, f64, u64)> = std::env::args()
        .skip(2)
        .filter_map(|a| {
            let mut it = a.split(':');
            Some((
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
                it.next().unwrap_or("1").parse().ok()?,
            ))
        })
        .collect();
    if runs.is_empty() {
        // The first two are the populations `dialer::sim`'s tests assert on.
        runs = vec![(10, 0.30, 1), (25, 0.15, 2), (10, 0.15, 3), (5, 0.30, 5)];
    }
    for (agents, answer_rate, seed) in runs {
        let mut cfg = SimConfig::new(agents, answer_rate, seed);
        cfg.days = days;
        let r = simulate(&cfg);
        println!(
            "| {} | {:.1} % | {} | {:.1} % | {:.2} % | {:.2} % | {} ms | {:.1} |",
            r.agents,
            r.answer_rate * 100.0,
            r.attempts,
            r.occupancy * 100.0,
            r.abandon_rate * 100.0,
            r.worst_day_abandon_rate * 100.0,
            r.mean_wait.as_millis(),
            r.calls_per_agent_hour,
        );
    }
}
