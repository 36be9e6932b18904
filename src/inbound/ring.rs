//! A ring group's decisions (pure): which members ring when, who wins, and why nobody did.
//!
//! Fed `(now, input)` by the call engine, which owns the SIP legs: `start`, then for each
//! [`RingAction::Ring`] the engine reports how many legs it started for that member
//! ([`RingGroup::legs_started`], 0 when the member has no registered contact), then each leg's
//! end ([`RingGroup::leg_ended`]), an answer ([`RingGroup::answered`]), the total timeout
//! ([`RingGroup::timeout`]) or the caller giving up ([`RingGroup::caller_gone`]). Actions come
//! out in order from [`RingGroup::poll_action`].
//!
//! - **simultaneous**: every member rings at once until the group timeout.
//! - **in_order**: one member at a time for `member_timeout` (never past the group timeout);
//!   a member that is busy, unreachable or not registered is skipped at once.
//! - The first answer wins: every other ringing member is cancelled.
//! - Nobody answered: [`MissReason::NoAgents`] when no member had a contact to ring,
//!   [`MissReason::Busy`] when every member that rang was busy, else [`MissReason::NoAnswer`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::config::RingStrategy;

/// Why a call was missed (the `reason` of `call.missed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissReason {
    /// The caller hung up before an agent answered.
    CallerHangup,
    /// Members rang but nobody answered in time.
    NoAnswer,
    /// Every member that could be rung was busy.
    Busy,
    /// No member had a registered contact.
    NoAgents,
    /// Outside business hours.
    Closed,
    /// The server stopped while the call rang; decided by the sweeper at the next start.
    Restart,
}

impl MissReason {
    /// The name in events, rows and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            MissReason::CallerHangup => "caller-hangup",
            MissReason::NoAnswer => "no-answer",
            MissReason::Busy => "busy",
            MissReason::NoAgents => "no-agents",
            MissReason::Closed => "closed",
            MissReason::Restart => "restart",
        }
    }

    /// Every reason, for `CHECK` constraints and API docs.
    pub const ALL: [MissReason; 6] = [
        MissReason::CallerHangup,
        MissReason::NoAnswer,
        MissReason::Busy,
        MissReason::NoAgents,
        MissReason::Closed,
        MissReason::Restart,
    ];

    /// Parses [`MissReason::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingAction {
    /// Ring every contact of member `member` until `until`, then report
    /// [`RingGroup::legs_started`].
    Ring {
        /// Index in the group's member list.
        member: usize,
        /// When this member stops ringing.
        until: Instant,
    },
    /// Cancel every leg still ringing for `member`.
    Cancel {
        /// Index in the group's member list.
        member: usize,
    },
    /// Connect the caller with `member` (its answered leg).
    Connect {
        /// Index in the group's member list.
        member: usize,
    },
    /// Nobody will answer: run `on_no_answer` (or end the call) with this reason.
    NoAnswer(MissReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Waiting,
    Ringing {
        legs: usize,
        busy: usize,
    },
    /// Done without answering; `rang`: it had at least one leg; `busy`: all its legs were busy.
    Done {
        rang: bool,
        busy: bool,
    },
    Cancelled,
    Answered,
}

/// One ring group run for one call; see the module docs.
#[derive(Debug, Clone)]
pub struct RingGroup {
    strategy: RingStrategy,
    member_timeout: Duration,
    deadline: Instant,
    members: Vec<Member>,
    next: usize,
    finished: bool,
    actions: VecDeque<RingAction>,
}

impl RingGroup {
    /// A group of `members` members, ringing from `now` for at most `total`.
    pub fn new(
        now: Instant,
        members: usize,
        strategy: RingStrategy,
        member_timeout: Duration,
        total: Duration,
    ) -> Self {
        Self {
            strategy,
            member_timeout,
            deadline: now + total,
            members: vec![Member::Waiting; members],
            next: 0,
            finished: false,
            actions: VecDeque::new(),
        }
    }

    /// Starts ringing.
    pub fn start(&mut self, now: Instant) {
        match self.strategy {
            RingStrategy::Simultaneous => {
                for m in 0..self.members.len() {
                    self.ring(now, m);
                }
                self.next = self.members.len();
            }
            RingStrategy::InOrder => self.ring_next(now),
        }
        self.check_all_done();
    }

    /// When the whole group gives up (the engine's timer).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the group has decided (connected or gave up).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<RingAction> {
        self.actions.pop_front()
    }

    fn ring(&mut self, now: Instant, member: usize) {
        let until = match self.strategy {
            RingStrategy::Simultaneous => self.deadline,
            RingStrategy::InOrder => (now + self.member_timeout).min(self.deadline),
        };
        self.members[member] = Member::Ringing { legs: 0, busy: 0 };
        self.actions.push_back(RingAction::Ring { member, until });
    }

    fn ring_next(&mut self, now: Instant) {
        if self.next < self.members.len() && now < self.deadline {
            let m = self.next;
            self.next += 1;
            self.ring(now, m);
        }
    }

    /// The engine started `legs` legs for `member` (0: no contact; the member is skipped).
    pub fn legs_started(&mut self, now: Instant, member: usize, legs: usize) {
        if self.finished {
            return;
        }
        if let Some(Member::Ringing { legs: l, .. }) = self.members.get_mut(member) {
            *l += legs;
            if *l == 0 {
                self.members[member] = Member::Done {
                    rang: false,
                    busy: false,
                };
                self.after_member_done(now);
            }
        }
    }

    /// A leg of `member` ended without being connected (`busy`: it answered busy).
    pub fn leg_ended(&mut self, now: Instant, member: usize, busy: bool) {
        if self.finished {
            return;
        }
        if let Some(Member::Ringing { legs, busy: b }) = self.members.get_mut(member) {
            *legs = legs.saturating_sub(1);
            if busy {
                *b += 1;
            }
            if *legs == 0 {
                let all_busy = *b > 0;
                self.members[member] = Member::Done {
                    rang: true,
                    busy: all_busy,
                };
                self.after_member_done(now);
            }
        }
    }

    /// The member's own ring time ran out (in order): cancel it and ring the next.
    pub fn member_timeout(&mut self, now: Instant, member: usize) {
        if self.finished {
            return;
        }
        if let Some(Member::Ringing { .. }) = self.members.get(member) {
            self.members[member] = Member::Done {
                rang: true,
                busy: false,
            };
            self.actions.push_back(RingAction::Cancel { member });
            self.after_member_done(now);
        }
    }

    fn after_member_done(&mut self, now: Instant) {
        if self.strategy == RingStrategy::InOrder
            && !self
                .members
                .iter()
                .any(|m| matches!(m, Member::Ringing { .. }))
        {
            self.ring_next(now);
        }
        self.check_all_done();
    }

    fn check_all_done(&mut self) {
        if self.finished {
            return;
        }
        let pending = self
            .members
            .iter()
            .any(|m| matches!(m, Member::Waiting | Member::Ringing { .. }));
        if pending {
            return;
        }
        self.finished = true;
        let rang: Vec<bool> = self
            .members
            .iter()
            .filter_map(|m| match m {
                Member::Done { rang: true, busy } => Some(*busy),
                _ => None,
            })
            .collect();
        let reason = if rang.is_empty() {
            MissReason::NoAgents
        } else if rang.iter().all(|b| *b) {
            MissReason::Busy
        } else {
            MissReason::NoAnswer
        };
        self.actions.push_back(RingAction::NoAnswer(reason));
    }

    /// A leg of `member` answered. The first answer wins (true): the caller is connected to it
    /// and every other ringing member is cancelled. A later answer returns false (the engine
    /// hangs that leg up).
    pub fn answered(&mut self, _now: Instant, member: usize) -> bool {
        if self.finished || !matches!(self.members.get(member), Some(Member::Ringing { .. })) {
            return false;
        }
        self.finished = true;
        self.members[member] = Member::Answered;
        for m in 0..self.members.len() {
            if m != member && matches!(self.members[m], Member::Ringing { .. }) {
                self.members[m] = Member::Cancelled;
                self.actions.push_back(RingAction::Cancel { member: m });
            }
        }
        self.actions.push_back(RingAction::Connect { member });
        true
    }

    /// The group timeout: cancel what rings; nobody answered.
    pub fn timeout(&mut self, now: Instant) {
        if self.finished || now < self.deadline {
            return;
        }
        self.cancel_all();
        self.finished = true;
        let all_busy_or_none = !self.members.iter().any(|m| {
            matches!(
                m,
                Member::Cancelled
                    | Member::Done {
                        busy: false,
                        rang: true
                    }
            )
        });
        let reason = if all_busy_or_none
            && self
                .members
                .iter()
                .any(|m| matches!(m, Member::Done { busy: true, .. }))
        {
            MissReason::Busy
        } else {
            MissReason::NoAnswer
        };
        self.actions.push_back(RingAction::NoAnswer(reason));
    }

    /// The caller hung up: cancel what rings; no `NoAnswer` action (the caller is gone).
    pub fn caller_gone(&mut self, _now: Instant) {
        if self.finished {
            return;
        }
        self.cancel_all();
        self.finished = true;
    }

    fn cancel_all(&mut self) {
        for m in 0..self.members.len() {
            if matches!(self.members[m], Member::Ringing { .. }) {
                self.members[m] = Member::Cancelled;
                self.actions.push_back(RingAction::Cancel { member: m });
            }
        }
        self.next = self.members.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn drain(g: &mut RingGroup) -> Vec<RingAction> {
        std::iter::from_fn(|| g.poll_action()).collect()
    }

    #[test]
    fn simultaneous_first_answer_wins_and_cancels_the_others() {
        let t0 = crate::clock::test_origin();
        let mut g = RingGroup::new(t0, 3, RingStrategy::Simultaneous, 20 * S, 60 * S);
        g.start(t0);
        assert_eq!(
            drain(&mut g),
            (0..3)
                .map(|m| RingAction::Ring {
                    member: m,
                    until: t0 + 60 * S
                })
                .collect::<Vec<_>>()
        );
        for m in 0..3 {
            g.legs_started(t0, m, 1);
        }
        g.leg_ended(t0 + S, 2, true);
        assert!(g.answered(t0 + 5 * S, 1));
        assert_eq!(
            drain(&mut g),
            vec![
                RingAction::Cancel { member: 0 },
                RingAction::Connect { member: 1 }
            ]
        );
        // A late answer from the cancelled member loses.
        assert!(!g.answered(t0 + 6 * S, 0));
        g.timeout(t0 + 60 * S);
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn in_order_rings_one_after_the_other_and_skips_the_unreachable() {
        let t0 = crate::clock::test_origin();
        let mut g = RingGroup::new(t0, 3, RingStrategy::InOrder, 10 * S, 15 * S);
        g.start(t0);
        assert_eq!(
            drain(&mut g),
            vec![RingAction::Ring {
                member: 0,
                until: t0 + 10 * S
            }]
        );
        // Member 0 has no contact: member 1 at once.
        g.legs_started(t0, 0, 0);
        assert_eq!(
            drain(&mut g),
            vec![RingAction::Ring {
                member: 1,
                until: t0 + 10 * S
            }]
        );
        g.legs_started(t0, 1, 2);
        g.member_timeout(t0 + 10 * S, 1);
        assert_eq!(
            drain(&mut g),
            vec![
                RingAction::Cancel { member: 1 },
                // Never past the group deadline.
                RingAction::Ring {
                    member: 2,
                    until: t0 + 15 * S
                },
            ]
        );
        g.legs_started(t0 + 10 * S, 2, 1);
        // The cancelled legs of member 1 end later: no effect.
        g.leg_ended(t0 + 10 * S, 1, false);
        g.timeout(t0 + 15 * S);
        assert_eq!(
            drain(&mut g),
            vec![
                RingAction::Cancel { member: 2 },
                RingAction::NoAnswer(MissReason::NoAnswer)
            ]
        );
    }

    #[test]
    fn reasons_when_nobody_answers() {
        let t0 = crate::clock::test_origin();
        // Nobody registered.
        let mut g = RingGroup::new(t0, 2, RingStrategy::Simultaneous, 10 * S, 30 * S);
        g.start(t0);
        drain(&mut g);
        g.legs_started(t0, 0, 0);
        g.legs_started(t0, 1, 0);
        assert_eq!(
            drain(&mut g),
            vec![RingAction::NoAnswer(MissReason::NoAgents)]
        );
        // All busy (one unreachable, one busy).
        let mut g = RingGroup::new(t0, 2, RingStrategy::InOrder, 10 * S, 30 * S);
        g.start(t0);
        g.legs_started(t0, 0, 1);
        g.leg_ended(t0, 0, true);
        g.legs_started(t0, 1, 0);
        assert_eq!(
            drain(&mut g).last(),
            Some(&RingAction::NoAnswer(MissReason::Busy))
        );
        // One declines (not busy), one busy: no-answer.
        let mut g = RingGroup::new(t0, 2, RingStrategy::Simultaneous, 10 * S, 30 * S);
        g.start(t0);
        g.legs_started(t0, 0, 1);
        g.legs_started(t0, 1, 1);
        g.leg_ended(t0, 0, true);
        g.leg_ended(t0, 1, false);
        assert_eq!(
            drain(&mut g).last(),
            Some(&RingAction::NoAnswer(MissReason::NoAnswer))
        );
    }

    #[test]
    fn caller_hangup_cancels_without_a_no_answer() {
        let t0 = crate::clock::test_origin();
        let mut g = RingGroup::new(t0, 2, RingStrategy::Simultaneous, 10 * S, 30 * S);
        g.start(t0);
        g.legs_started(t0, 0, 1);
        g.legs_started(t0, 1, 1);
        drain(&mut g);
        g.caller_gone(t0 + S);
        assert_eq!(
            drain(&mut g),
            vec![
                RingAction::Cancel { member: 0 },
                RingAction::Cancel { member: 1 }
            ]
        );
        assert!(g.is_finished());
        assert!(!g.answered(t0 + 2 * S, 0));
    }

    #[test]
    fn reasons_round_trip() {
        for r in MissReason::ALL {
            assert_eq!(MissReason::parse(r.as_str()), Some(r));
        }
    }
}
