//! Time, injected (STYLE.md sec. 3).
//!
//! Pure cores are *told* the time: every `handle_*` takes `now: Instant`. Drivers get an
//! `Arc<dyn Clock>`. [`SystemClock`] reads `tokio::time::Instant`, so tests that pause tokio time
//! and our clock agree; [`ManualClock`] serves tests that assert wall-clock values.
//!
//! This is the only file allowed to read the system clock (`.clippy.toml` forbids it elsewhere).
#![allow(clippy::disallowed_methods)]

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A source of monotonic time (`now`) and wall-clock time (`wall`).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time, for deadlines and media.
    fn now(&self) -> Instant;
    /// Wall-clock time, for CDRs, file names and database rows only.
    fn wall(&self) -> SystemTime;
    /// Wall-clock time as a UTC `chrono` timestamp.
    fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::<chrono::Utc>::from(self.wall())
    }
}

/// The real clock. `now` reads tokio's clock so that `start_paused` tests advance it too.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    inner: Mutex<(Instant, SystemTime)>,
}

impl ManualClock {
    /// A manual clock starting at the given wall-clock time.
    pub fn new(wall: SystemTime) -> Self {
        Self {
            inner: Mutex::new((Instant::now(), wall)),
        }
    }

    /// Moves both monotonic and wall time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += by;
        g.1 += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn wall(&self) -> SystemTime {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// A fixed monotonic origin for pure tests that build `t0 + i * 20 ms` instants.
pub fn test_origin() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(SystemTime::UNIX_EPOCH);
        let a = c.now();
        c.advance(Duration::from_secs(32));
        assert_eq!(c.now() - a, Duration::from_secs(32));
        assert_eq!(c.wall(), SystemTime::UNIX_EPOCH + Duration::from_secs(32));
    }
}
