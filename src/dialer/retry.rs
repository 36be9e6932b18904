//! Retry policy: what becomes of a contact after an attempt (pure).
//!
//! [`RetryPolicy::next`] takes the attempt's outcome and how many attempts the contact has had
//! (this one included) and returns the contact's next status:
//! - `human` and `fax` end the contact: [`NextStatus::Done`] (a person was reached; a fax line
//!   will never be one);
//! - `machine` ends it too when the campaign's `on_machine` action completes the contact
//!   (a voicemail was left: [`RetryDelays::machine`] is `None`), else it is retried;
//! - `no-answer`, `busy`, `failed`, `abandoned` and `cancelled` are retried after their delay,
//!   unless the contact has had `max_attempts`: then [`NextStatus::Failed`] (exhausted);
//!   `cancelled` (we stopped the attempt: skip, stop, pause) does not use up an attempt, so it is
//!   never exhausted and comes back after the default delay.
//!
//! A retry's due time is `now + delay`, moved forward to the next instant the contact's calling
//! window is open ([`CallingWindow::next_open`]), so the queue never holds a contact that is due
//! at night.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::AttemptOutcome;
use super::window::CallingWindow;

/// Delay before the next attempt, per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryDelays {
    /// After nobody answered.
    pub no_answer: Duration,
    /// After a busy signal.
    pub busy: Duration,
    /// After a failed call (network or far-end error).
    pub failed: Duration,
    /// After an answering machine; `None` when the machine completes the contact (the
    /// campaign leaves a voicemail and is done with it).
    pub machine: Option<Duration>,
    /// Every other retried outcome (`abandoned`, `cancelled`).
    pub default: Duration,
}

impl Default for RetryDelays {
    fn default() -> Self {
        Self {
            no_answer: Duration::from_secs(4 * 3600),
            busy: Duration::from_secs(15 * 60),
            failed: Duration::from_secs(3600),
            machine: Some(Duration::from_secs(24 * 3600)),
            default: Duration::from_secs(3600),
        }
    }
}

/// A campaign's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per contact, the first one included (at least 1).
    pub max_attempts: u32,
    /// Delay before the next attempt, per outcome.
    pub delays: RetryDelays,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            delays: RetryDelays::default(),
        }
    }
}

/// A contact's status after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStatus {
    /// Dial again, not before `due_at` (already inside the calling window).
    Retry {
        /// When the contact is next due.
        due_at: DateTime<Utc>,
    },
    /// The contact is finished (reached, or a machine took the message).
    Done,
    /// Every attempt was used without reaching the contact.
    Failed,
}

impl NextStatus {
    /// The contact status string the store keeps (`retry`, `done`, `failed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            NextStatus::Retry { .. } => "retry",
            NextStatus::Done => "done",
            NextStatus::Failed => "failed",
        }
    }
}

impl RetryPolicy {
    /// The delay before retrying after `outcome`, or `None` if the outcome ends the contact.
    pub fn delay(&self, outcome: AttemptOutcome) -> Option<Duration> {
        use AttemptOutcome::*;
        match outcome {
            Human | Fax => None,
            Machine => self.delays.machine,
            NoAnswer => Some(self.delays.no_answer),
            Busy => Some(self.delays.busy),
            Failed => Some(self.delays.failed),
            Abandoned | Cancelled => Some(self.delays.default),
        }
    }

    /// The contact's next status after an attempt that ended with `outcome` at `now`, when the
    /// contact has had `attempts` attempts that used up an attempt (this one included; the
    /// caller does not count `cancelled` ones). The due time is inside `window` in `tz`.
    pub fn next(
        &self,
        now: DateTime<Utc>,
        outcome: AttemptOutcome,
        attempts: u32,
        window: &CallingWindow,
        tz: Tz,
    ) -> NextStatus {
        let Some(delay) = self.delay(outcome) else {
            return NextStatus::Done;
        };
        if outcome != AttemptOutcome::Cancelled && attempts >= self.max_attempts.max(1) {
            return NextStatus::Failed;
        }
        // Delays are configured in seconds to days; one that does not fit chrono's range
        // (hundreds of millions of years) is treated as "never": the contact is exhausted.
        let Some(due) = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
        else {
            return NextStatus::Failed;
        };
        NextStatus::Retry {
            due_at: window.next_open(due, tz),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            delays: RetryDelays {
                no_answer: Duration::from_secs(2 * 3600),
                busy: Duration::from_secs(10 * 60),
                failed: Duration::from_secs(30 * 60),
                machine: Some(Duration::from_secs(24 * 3600)),
                default: Duration::from_secs(3600),
            },
        }
    }

    #[test]
    fn each_outcome_gets_its_own_delay_inside_the_window() {
        let p = policy();
        let win = CallingWindow::default(); // 08:00-21:00
        let now = utc("2026-06-10T14:00:00Z"); // 10:00 EDT
        let at = |o| p.next(now, o, 1, &win, New_York);
        assert_eq!(
            at(AttemptOutcome::NoAnswer),
            NextStatus::Retry {
                due_at: utc("2026-06-10T16:00:00Z")
            }
        );
        assert_eq!(
            at(AttemptOutcome::Busy),
            NextStatus::Retry {
                due_at: utc("2026-06-10T14:10:00Z")
            }
        );
        assert_eq!(
            at(AttemptOutcome::Failed),
            NextStatus::Retry {
                due_at: utc("2026-06-10T14:30:00Z")
            }
        );
        assert_eq!(
            at(AttemptOutcome::Machine),
            NextStatus::Retry {
                due_at: utc("2026-06-11T14:00:00Z")
            }
        );
        assert_eq!(
            at(AttemptOutcome::Abandoned),
            NextStatus::Retry {
                due_at: utc("2026-06-10T15:00:00Z")
            }
        );
        assert_eq!(at(AttemptOutcome::Human), NextStatus::Done);
        assert_eq!(at(AttemptOutcome::Fax), NextStatus::Done);
    }

    #[test]
    fn due_time_is_snapped_to_the_next_open_window() {
        let p = policy();
        let win = CallingWindow::default();
        // 20:30 EDT + 2 h no-answer delay = 22:30: next open is tomorrow 08:00 EDT.
        let now = utc("2026-06-11T00:30:00Z");
        assert_eq!(
            p.next(now, AttemptOutcome::NoAnswer, 1, &win, New_York),
            NextStatus::Retry {
                due_at: utc("2026-06-11T12:00:00Z")
            }
        );
        // Across the spring-forward night: 20:50 EST Saturday + 2 h -> Sunday 08:00 EDT.
        let now = utc("2026-03-08T01:50:00Z");
        assert_eq!(
            p.next(now, AttemptOutcome::NoAnswer, 2, &win, New_York),
            NextStatus::Retry {
                due_at: utc("2026-03-08T12:00:00Z")
            }
        );
    }

    #[test]
    fn max_attempts_exhausts_to_failed() {
        let p = policy();
        let win = CallingWindow::always();
        let now = utc("2026-06-10T14:00:00Z");
        assert!(matches!(
            p.next(now, AttemptOutcome::Busy, 2, &win, New_York),
            NextStatus::Retry { .. }
        ));
        assert_eq!(
            p.next(now, AttemptOutcome::Busy, 3, &win, New_York),
            NextStatus::Failed
        );
        assert_eq!(
            p.next(now, AttemptOutcome::Machine, 3, &win, New_York),
            NextStatus::Failed
        );
        // A human on the last attempt is still done, not failed.
        assert_eq!(
            p.next(now, AttemptOutcome::Human, 3, &win, New_York),
            NextStatus::Done
        );
        // Cancelled attempts never exhaust the contact.
        assert_eq!(
            p.next(now, AttemptOutcome::Cancelled, 3, &win, New_York),
            NextStatus::Retry {
                due_at: utc("2026-06-10T15:00:00Z")
            }
        );
        assert_eq!(NextStatus::Failed.as_str(), "failed");
    }

    #[test]
    fn machine_completes_the_contact_when_the_campaign_leaves_a_voicemail() {
        let mut p = policy();
        p.delays.machine = None;
        let now = utc("2026-06-10T14:00:00Z");
        assert_eq!(
            p.next(
                now,
                AttemptOutcome::Machine,
                1,
                &CallingWindow::always(),
                New_York
            ),
            NextStatus::Done
        );
    }
}
