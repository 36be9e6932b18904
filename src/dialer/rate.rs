//! Attempt rate limits per minute and per hour (pure).
//!
//! A [`RateLimiter`] holds the start times of the campaign's recent attempts: the ones it
//! recorded itself and, after a restart, the ones loaded from the store
//! ([`RateLimiter::from_starts`]), so a restart does not reset the limits (issue 5).
//!
//! # The guarantee
//!
//! No sliding window of 60 s (of 3,600 s) ever holds more than `per_minute` (`per_hour`)
//! starts: for every instant `t`, the starts in `[t, t + 60 s)` number at most the limit.
//! [`RateLimiter::can_start`] allows a start at `now` only if fewer than `limit` of the known
//! starts are later than `now - 60 s`, which is exactly the condition for every window
//! containing `now`. When it refuses it returns the earliest instant that would be allowed: the
//! `limit`-th most recent start plus the window length. Starts later than `now` (another node
//! whose clock runs ahead) are counted as if they were in every window, which errs on the safe
//! side. The property test below drives random demand through the limiter, restarts it from the
//! recorded starts mid-way, and checks every window of the resulting schedule.
//!
//! Times are wall-clock (`DateTime<Utc>`), because the starts outlive the process as attempt
//! rows; see the [`dialer`](super) module docs.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The length of the per-minute window.
pub const MINUTE: Duration = Duration::from_secs(60);
/// The length of the per-hour window.
pub const HOUR: Duration = Duration::from_secs(3600);

/// A campaign's rate limits; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Most attempt starts in any 60-second window.
    pub per_minute: Option<u32>,
    /// Most attempt starts in any 3,600-second window.
    pub per_hour: Option<u32>,
}

/// Sliding-window rate limiter over attempt start times.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: RateLimits,
    /// Known starts, sorted ascending, none older than the longest window before the latest
    /// `now` seen (older ones can no longer matter).
    starts: VecDeque<DateTime<Utc>>,
}

fn window_delta(len: Duration) -> chrono::Duration {
    chrono::Duration::from_std(len).expect("window lengths are constants that fit")
}

impl RateLimiter {
    /// A limiter with no recorded starts.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            starts: VecDeque::new(),
        }
    }

    /// A limiter rebuilt from stored attempt start times (any order; the store loads the
    /// starts of the last hour, older ones are ignored anyway).
    pub fn from_starts(
        limits: RateLimits,
        starts: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> Self {
        let mut v: Vec<_> = starts.into_iter().collect();
        v.sort_unstable();
        Self {
            limits,
            starts: v.into(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Changes the limits (a campaign was edited); the recorded starts are kept.
    pub fn set_limits(&mut self, limits: RateLimits) {
        self.limits = limits;
    }

    /// How far back starts must be kept.
    fn horizon(&self) -> Duration {
        if self.limits.per_hour.is_some() {
            HOUR
        } else {
            MINUTE
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let oldest_needed = now - window_delta(self.horizon());
        while self.starts.front().is_some_and(|s| *s <= oldest_needed) {
            self.starts.pop_front();
        }
    }

    /// The earliest instant a start is allowed under one limit, or `None` if `now` is fine.
    fn earliest_for(&self, now: DateTime<Utc>, limit: u32, len: Duration) -> Option<DateTime<Utc>> {
        let len = window_delta(len);
        if limit == 0 {
            // A zero limit forbids every start; "never" is far in the future.
            return Some(DateTime::<Utc>::MAX_UTC);
        }
        let limit = limit as usize;
        if self.starts.len() < limit {
            return None;
        }
        // The limit-th most recent start: once it leaves the window, a start is allowed.
        let pivot = self.starts[self.starts.len() - limit];
        let earliest = pivot + len;
        (earliest > now).then_some(earliest)
    }

    /// `Ok` if an attempt may start at `now`; otherwise the earliest instant one may.
    pub fn can_start(&self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let a = self
            .limits
            .per_minute
            .and_then(|l| self.earliest_for(now, l, MINUTE));
        let b = self
            .limits
            .per_hour
            .and_then(|l| self.earliest_for(now, l, HOUR));
        match a.max(b) {
            None => Ok(()),
            Some(t) => Err(t),
        }
    }

    /// How many attempts may start at `now`, all at once, without breaking a limit
    /// (`u32::MAX` when unlimited). The pacer caps its decision with this.
    pub fn available(&self, now: DateTime<Utc>) -> u32 {
        let count_since = |len: Duration| {
            let from = now - window_delta(len);
            self.starts.iter().rev().take_while(|s| **s > from).count() as u32
        };
        let mut n = u32::MAX;
        if let Some(l) = self.limits.per_minute {
            n = n.min(l.saturating_sub(count_since(MINUTE)));
        }
        if let Some(l) = self.limits.per_hour {
            n = n.min(l.saturating_sub(count_since(HOUR)));
        }
        n
    }

    /// Records an attempt that started at `now` (whether or not [`can_start`](Self::can_start)
    /// allowed it: a start that happened counts).
    pub fn record_start(&mut self, now: DateTime<Utc>) {
        // Keep the deque sorted even if starts arrive slightly out of order.
        let pos = self.starts.partition_point(|s| *s <= now);
        self.starts.insert(pos, now);
        let latest = *self.starts.back().expect("just inserted");
        self.forget_before(latest);
    }

    /// The starts still remembered (sorted), e.g. for stats ("calls per minute now").
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.starts.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn ten_per_minute_refuses_the_eleventh_until_the_first_leaves_the_window() {
        let mut r = RateLimiter::new(RateLimits {
            per_minute: Some(10),
            per_hour: None,
        });
        for i in 0..10 {
            assert_eq!(r.can_start(t0() + secs(i)), Ok(()));
            r.record_start(t0() + secs(i));
        }
        assert_eq!(r.available(t0() + secs(10)), 0);
        assert_eq!(r.can_start(t0() + secs(10)), Err(t0() + secs(60)));
        assert_eq!(r.can_start(t0() + secs(59)), Err(t0() + secs(60)));
        assert_eq!(r.can_start(t0() + secs(60)), Ok(()));
        assert_eq!(r.available(t0() + secs(61)), 2);
    }

    #[test]
    fn the_hour_limit_binds_after_the_minute_limit() {
        let mut r = RateLimiter::new(RateLimits {
            per_minute: Some(10),
            per_hour: Some(15),
        });
        for i in 0..10 {
            r.record_start(t0() + secs(i));
        }
        for i in 0..5 {
            r.record_start(t0() + secs(60 + i));
        }
        assert_eq!(r.can_start(t0() + secs(120)), Err(t0() + secs(3600)));
        assert_eq!(r.available(t0() + secs(120)), 0);
        assert_eq!(r.can_start(t0() + secs(3600)), Ok(()));
    }

    #[test]
    fn a_restart_from_the_stored_starts_keeps_the_limit() {
        let limits = RateLimits {
            per_minute: Some(10),
            per_hour: None,
        };
        let stored: Vec<_> = (0..10).rev().map(|i| t0() + secs(i * 3)).collect();
        let r = RateLimiter::from_starts(limits, stored);
        assert_eq!(r.can_start(t0() + secs(40)), Err(t0() + secs(60)));
        // A fresh limiter would have allowed it: that is what a restart must not do.
        assert_eq!(RateLimiter::new(limits).can_start(t0() + secs(40)), Ok(()));
    }

    #[test]
    fn zero_limit_and_no_limit() {
        let r = RateLimiter::new(RateLimits {
            per_minute: Some(0),
            per_hour: None,
        });
        assert_eq!(r.can_start(t0()), Err(DateTime::<Utc>::MAX_UTC));
        assert_eq!(r.available(t0()), 0);
        let r = RateLimiter::new(RateLimits::default());
        assert_eq!(r.can_start(t0()), Ok(()));
        assert_eq!(r.available(t0()), u32::MAX);
    }

    /// Largest number of starts in any half-open window `[t, t + len)`.
    fn max_in_window(starts: &[DateTime<Utc>], len: Duration) -> usize {
        let len = window_delta(len);
        let mut best = 0;
        let mut j = 0;
        // Windows that start at a start are the worst ones.
        for i in 0..starts.len() {
            while j < starts.len() && starts[j] < starts[i] + len {
                j += 1;
            }
            best = best.max(j - i);
        }
        best
    }

    proptest! {
        /// Demand arrives at random; every start obeys the limiter (waiting for the instant it
        /// names when refused); the limiter is rebuilt from the stored starts of the last hour
        /// at a random point (a restart). No 60 s or 3600 s window ever exceeds its limit, and
        /// the instant the limiter names is indeed allowed.
        #[test]
        fn obeying_the_limiter_never_exceeds_any_window(
            per_minute in 1u32..15,
            per_hour in prop::option::of(5u32..120),
            gaps_ms in prop::collection::vec(0u64..20_000, 1..400),
            burst in prop::collection::vec(1u32..6, 1..400),
            restart_at in 0usize..400,
        ) {
            let limits = RateLimits { per_minute: Some(per_minute), per_hour };
            let mut r = RateLimiter::new(limits);
            let mut history: Vec<DateTime<Utc>> = Vec::new();
            let mut now = t0();
            for (i, gap) in gaps_ms.iter().enumerate() {
                now += chrono::Duration::milliseconds(*gap as i64);
                if i == restart_at {
                    let from = now - window_delta(HOUR);
                    r = RateLimiter::from_starts(
                        limits,
                        history.iter().copied().filter(|s| *s > from).rev(),
                    );
                }
                // A burst of attempts wanted at `now`, started as soon as allowed.
                for _ in 0..burst[i % burst.len()] {
                    let at = match r.can_start(now) {
                        Ok(()) => now,
                        Err(t) => {
                            prop_assert!(t > now);
                            prop_assert_eq!(r.can_start(t), Ok(()));
                            t
                        }
                    };
                    r.record_start(at);
                    history.push(at);
                    now = at;
                }
            }
            prop_assert!(max_in_window(&history, MINUTE) <= per_minute as usize);
            if let Some(h) = per_hour {
                prop_assert!(max_in_window(&history, HOUR) <= h as usize);
            }
        }
    }
}
