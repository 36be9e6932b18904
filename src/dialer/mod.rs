//! The dialer's pure core: calling windows, retries, rate limits, agent sessions and pacing
//! (pure), plus a simulated population to measure the predictive pacer.
//!
//! Everything here is sans-IO (STYLE.md sec. 2): plain structs fed `(now, input)` that return
//! decisions. A campaign runner (driver) loads campaigns, contacts and attempts from the store,
//! feeds them in, and carries out what comes back (claim a contact, start a call, move a leg).
//!
//! # Which time
//!
//! The dialer's decisions are about *wall* time: calling windows are local times of day, rate
//! limits count the attempts of the last minute and hour, the abandon rate is over 30 days, and
//! all of it must survive a restart (issue 5: "a restart does not reset them"). So its `now` is a
//! `DateTime<Utc>` (from `Clock::utc()` in the driver, a simulated instant in tests), the same
//! value that goes into the attempt rows it is later rebuilt from. Durations are
//! `std::time::Duration`.
//!
//! # Modules
//!
//! - [`window`]: is a contact's calling window open, and when does it next open (DST-safe).
//! - [`retry`]: outcome + attempts so far → `retry` at a due time, `done` or `failed`.
//! - [`rate`]: attempts per minute / per hour from the stored attempt start times.
//! - [`session`]: an agent session's state machine (available, dialing, on-call, wrap-up, paused).
//! - [`pacing`]: how many calls to start now, for `power`, `agentless` and `predictive`.
//! - [`sim`]: a seeded, simulated-time population driving the predictive pacer.
//! - [`runner`] (driver): the campaign runner that claims contacts, places calls and stores
//!   attempt outcomes.
//!
//! # Shared vocabulary
//!
//! The enums below are the strings the API, the store and the events use (kebab-case).

pub mod pacing;
pub mod rate;
pub mod retry;
pub mod runner;
pub mod session;
pub mod sim;
pub mod window;

use serde::{Deserialize, Serialize};

/// Generates `as_str`, `Display` and `FromStr` for a fieldless enum from one table of strings,
/// so the serde names, the store's text columns and the API can never disagree.
macro_rules! vocabulary {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire / store string.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

/// A string that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which vocabulary (`dial mode`, `attempt outcome`, ...).
    pub what: &'static str,
    /// The value that was given.
    pub value: String,
}

/// How a campaign paces its calls (issue 5, "Dial modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DialMode {
    /// An agent sees the next contact and dials it.
    Preview,
    /// A fixed number of lines per available agent.
    Power,
    /// Lines per agent adapted to answer rate, handle time and free agents (see [`pacing`]).
    Predictive,
    /// No agents: prompts and voicemail drops, paced by rate and concurrency only.
    Agentless,
}

vocabulary!(DialMode, "dial mode", {
    Preview => "preview",
    Power => "power",
    Predictive => "predictive",
    Agentless => "agentless",
});

/// The final outcome of one attempt to call a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// A person answered (AMD verdict `human`) and was connected.
    Human,
    /// An answering machine or voicemail answered.
    Machine,
    /// A fax machine answered.
    Fax,
    /// Nobody answered before the ring timeout.
    NoAnswer,
    /// The far end was busy (486/600).
    Busy,
    /// The call failed (4xx/5xx other than busy, no route, transport error).
    Failed,
    /// A person answered and no agent was free within 2 s: they heard the identification message.
    Abandoned,
    /// We cancelled the attempt (skip, stop, pause, contact added to do-not-call).
    Cancelled,
}

vocabulary!(AttemptOutcome, "attempt outcome", {
    Human => "human",
    Machine => "machine",
    Fax => "fax",
    NoAnswer => "no-answer",
    Busy => "busy",
    Failed => "failed",
    Abandoned => "abandoned",
    Cancelled => "cancelled",
});

impl AttemptOutcome {
    /// Whether a person picked up (connected or abandoned): the denominator of the abandon rate.
    pub fn is_human_answer(self) -> bool {
        matches!(self, AttemptOutcome::Human | AttemptOutcome::Abandoned)
    }
}

/// What an agent in a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Waiting for a customer.
    Available,
    /// Calls are being placed on this agent's behalf (preview dial, power lines).
    Dialing,
    /// Talking to a customer in the agent's conference.
    OnCall,
    /// The customer hung up; the agent has not posted a disposition yet.
    WrapUp,
    /// Not taking calls.
    Paused,
}

vocabulary!(AgentState, "agent state", {
    Available => "available",
    Dialing => "dialing",
    OnCall => "on-call",
    WrapUp => "wrap-up",
    Paused => "paused",
});

/// Why an agent session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionEndReason {
    /// The agent did not answer (or rejected) the session call.
    AgentUnreachable,
    /// The agent's leg hung up during the session.
    AgentHangup,
    /// `POST /v1/sessions/{id}/stop`.
    Stopped,
    /// The campaign was paused, completed or archived.
    CampaignEnded,
}

vocabulary!(SessionEndReason, "session end reason", {
    AgentUnreachable => "agent-unreachable",
    AgentHangup => "agent-hangup",
    Stopped => "stopped",
    CampaignEnded => "campaign-ended",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_strings_round_trip_through_serde_and_from_str() {
        for m in DialMode::ALL {
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(m.as_str().parse::<DialMode>().unwrap(), *m);
        }
        for o in AttemptOutcome::ALL {
            let json = serde_json::to_string(o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(o.as_str().parse::<AttemptOutcome>().unwrap(), *o);
        }
        for s in AgentState::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
            assert_eq!(s.as_str().parse::<AgentState>().unwrap(), *s);
        }
        for r in SessionEndReason::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{r}\""));
            assert_eq!(r.as_str().parse::<SessionEndReason>().unwrap(), *r);
        }
        assert_eq!(AttemptOutcome::NoAnswer.as_str(), "no-answer");
        assert_eq!(AgentState::WrapUp.as_str(), "wrap-up");
        assert_eq!(
            SessionEndReason::AgentUnreachable.as_str(),
            "agent-unreachable"
        );
        let err = "ringing".parse::<AttemptOutcome>().unwrap_err();
        assert_eq!(err.to_string(), "unknown attempt outcome \"ringing\"");
    }
}
