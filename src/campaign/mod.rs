//! Campaign data, pure: the shared vocabulary of the dialer (campaign states, dial modes,
//! attempt outcomes, contact statuses), campaign settings and their validation, caller-id pools,
//! retry delays, phone normalisation ([`phone`]) and CSV import validation ([`import`]).
//!
//! Nothing here touches the store, a socket or the clock: the store (`store::campaigns`) keeps
//! these values, the HTTP API (`http::campaigns`) validates requests with them, and the dialer
//! core (`dialer`) decides with them.
//!
//! # Campaign states
//!
//! ```text
//!   draft ──start──► running ──pause──► paused
//!     │                │  ▲──resume──────┘ │
//!     │                └──complete──► completed ◄──complete──┘
//!     └──archive──► archived ◄──archive── completed, paused
//! ```
//!
//! Any other move is refused (409 in the API). Starting needs a trunk, at least one caller id
//! and a contact list with contacts in it (422 naming what is missing otherwise).

pub mod import;
pub mod phone;

use crate::store::text_enum;
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Event kinds of a campaign's life, published through the event bus with the campaign as
/// payload.
pub mod kinds {
    /// A campaign was created (state `draft`).
    pub const CAMPAIGN_CREATED: &str = "campaign.created";
    /// A campaign's settings changed, or it was archived.
    pub const CAMPAIGN_UPDATED: &str = "campaign.updated";
    /// A campaign started or resumed (state `running`).
    pub const CAMPAIGN_STARTED: &str = "campaign.started";
    /// A campaign was paused.
    pub const CAMPAIGN_PAUSED: &str = "campaign.paused";
    /// A campaign completed.
    pub const CAMPAIGN_COMPLETED: &str = "campaign.completed";
}

text_enum!(
    /// Where a campaign is in its life (see the module docs for the allowed moves).
    CampaignState {
        /// Being set up; nothing is dialled.
        Draft = "draft",
        /// Contacts are being dialled.
        Running = "running",
        /// Stopped for now; resumable.
        Paused = "paused",
        /// Finished; nothing more is dialled.
        Completed = "completed",
        /// Kept for its history only (final).
        Archived = "archived",
    }
);

impl CampaignState {
    /// Whether a campaign in `self` may move to `to`.
    pub fn can_become(self, to: CampaignState) -> bool {
        use CampaignState::*;
        matches!(
            (self, to),
            (Draft, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Completed)
                | (Paused, Completed)
                | (Draft | Paused | Completed, Archived)
        )
    }

    /// The event published when a campaign enters this state.
    pub fn event_kind(self) -> &'static str {
        match self {
            CampaignState::Draft | CampaignState::Archived => kinds::CAMPAIGN_UPDATED,
            CampaignState::Running => kinds::CAMPAIGN_STARTED,
            CampaignState::Paused => kinds::CAMPAIGN_PAUSED,
            CampaignState::Completed => kinds::CAMPAIGN_COMPLETED,
        }
    }
}

text_enum!(
    /// How a campaign dials.
    DialMode {
        /// An agent asks for the next contact, sees it, and dials it.
        Preview = "preview",
        /// A fixed number of lines per available agent.
        Power = "power",
        /// Lines per agent adapted to answer rate, talk time and free agents.
        Predictive = "predictive",
        /// No agents: a prompt (or a bridge, or a webhook's choice) on a human.
        Agentless = "agentless",
    }
);

text_enum!(
    /// The final outcome of one attempt.
    AttemptOutcome {
        /// A person answered.
        Human = "human",
        /// An answering machine answered.
        Machine = "machine",
        /// A fax answered.
        Fax = "fax",
        /// Nobody answered before the ring timeout.
        NoAnswer = "no-answer",
        /// Busy (486/600).
        Busy = "busy",
        /// The call failed (network, 4xx/5xx other than busy).
        Failed = "failed",
        /// A person answered and no agent was free in time.
        Abandoned = "abandoned",
        /// Stopped by us before an answer (campaign paused, contact skipped, reconciled).
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// Where a contact is in a campaign.
    ContactStatus {
        /// Never dialled yet.
        Pending = "pending",
        /// Claimed: a call to it is being set up or is in progress.
        Dialing = "dialing",
        /// Dialled, to be dialled again once due.
        Retry = "retry",
        /// Reached (final).
        Done = "done",
        /// Attempts exhausted (final).
        Failed = "failed",
        /// On the do-not-call list (final).
        Dnc = "dnc",
        /// Skipped by an agent or the API (final).
        Skipped = "skipped",
    }
);

text_enum!(
    /// What a campaign does when a machine answers.
    OnMachine {
        /// Hang up at once.
        Hangup = "hangup",
        /// Carry on as with a person (report the verdict only).
        Continue = "continue",
        /// Leave the voicemail prompt after the beep, then hang up.
        VoicemailDrop = "voicemail_drop",
    }
);

text_enum!(
    /// What an `agentless` campaign does when a person answers.
    OnHuman {
        /// Play the campaign's message (`voicemail_prompt`), then hang up.
        Prompt = "prompt",
        /// Call `bridge_to` through the campaign's trunk and put the person through to it.
        Bridge = "bridge",
        /// Ask `on_human_url` (a signed POST) which of those to do for this contact.
        Webhook = "webhook",
    }
);

/// Longest `bridge_to` accepted.
pub const MAX_BRIDGE_TO_LEN: usize = 200;

/// Caller ids of a campaign: a default pool, and pools chosen by the destination's prefix
/// (longest prefix wins). Numbers of a pool are used in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerIds {
    /// Used when no prefix pool matches.
    #[serde(default)]
    pub default: Vec<String>,
    /// Pools by destination prefix (E.164, e.g. `+44`).
    #[serde(default)]
    pub by_prefix: Vec<PrefixPool>,
}

/// Caller ids for destinations starting with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixPool {
    /// Destination prefix, `+` and digits.
    pub prefix: String,
    /// Caller ids, used in turn.
    pub numbers: Vec<String>,
}

impl CallerIds {
    /// No number at all.
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.by_prefix.iter().all(|p| p.numbers.is_empty())
    }

    /// The caller id for `destination` (E.164): the pool of the longest matching prefix, else
    /// the default pool; `turn` picks the number within the pool (round robin).
    pub fn pick(&self, destination: &str, turn: u64) -> Option<&str> {
        let pool = self
            .by_prefix
            .iter()
            .filter(|p| !p.numbers.is_empty() && destination.starts_with(&p.prefix))
            .max_by_key(|p| p.prefix.len())
            .map(|p| &p.numbers)
            .unwrap_or(&self.default);
        if pool.is_empty() {
            return None;
        }
        let i = usize::try_from(turn % pool.len() as u64).unwrap_or(0);
        pool.get(i).map(String::as_str)
    }

    /// Checks every number is E.164 (`+` then 2-15 digits) and every prefix `+` and digits.
    pub fn validate(&self) -> Result<(), String> {
        let e164 = |s: &str| {
            s.strip_prefix('+').is_some_and(|d| {
                (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
            })
        };
        for n in self
            .default
            .iter()
            .chain(self.by_prefix.iter().flat_map(|p| p.numbers.iter()))
        {
            if !e164(n) {
                return Err(format!("caller id {n:?} is not an E.164 number"));
            }
        }
        for p in &self.by_prefix {
            let ok = p.prefix.strip_prefix('+').is_some_and(|d| {
                !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err(format!("prefix {:?} must be + and digits", p.prefix));
            }
        }
        Ok(())
    }
}

/// Delay before a contact is dialled again, per outcome, seconds. Outcomes not listed here
/// (`human`, `fax`, `cancelled`) are not retried by delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryDelays {
    /// After `no-answer` (default 3600).
    #[serde(rename = "no-answer")]
    pub no_answer: u64,
    /// After `busy` (default 600).
    pub busy: u64,
    /// After `failed` (default 1800).
    pub failed: u64,
    /// After `machine` (default 14400).
    pub machine: u64,
    /// After `abandoned` (default 3600).
    pub abandoned: u64,
}

impl Default for RetryDelays {
    fn default() -> Self {
        Self {
            no_answer: 3600,
            busy: 600,
            failed: 1800,
            machine: 14_400,
            abandoned: 3600,
        }
    }
}

impl RetryDelays {
    /// Longest delay accepted: 30 days.
    pub const MAX_SECS: u64 = 30 * 24 * 3600;

    /// The delay after `outcome`, or `None` for outcomes that are not retried by delay.
    pub fn delay_for(&self, outcome: AttemptOutcome) -> Option<Duration> {
        let s = match outcome {
            AttemptOutcome::NoAnswer => self.no_answer,
            AttemptOutcome::Busy => self.busy,
            AttemptOutcome::Failed => self.failed,
            AttemptOutcome::Machine => self.machine,
            AttemptOutcome::Abandoned => self.abandoned,
            AttemptOutcome::Human | AttemptOutcome::Fax | AttemptOutcome::Cancelled => {
                return None;
            }
        };
        Some(Duration::from_secs(s))
    }

    /// Checks every delay is at most [`RetryDelays::MAX_SECS`].
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("no-answer", self.no_answer),
            ("busy", self.busy),
            ("failed", self.failed),
            ("machine", self.machine),
            ("abandoned", self.abandoned),
        ];
        for (name, v) in all {
            if v > Self::MAX_SECS {
                return Err(format!(
                    "retry delay {name} must be at most {} seconds",
                    Self::MAX_SECS
                ));
            }
        }
        Ok(())
    }
}

/// Most attempts per contact accepted in a campaign.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Most lines per agent accepted.
pub const MAX_LINES_PER_AGENT: f64 = 20.0;

/// Everything a campaign is set up with (what `POST /v1/campaigns` and `PATCH` give).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSettings {
    /// Name for people.
    pub name: String,
    /// The contact list dialled.
    pub list_id: Option<Uuid>,
    /// Trunk name from `trunks.toml`.
    pub trunk: Option<String>,
    /// Caller ids.
    pub caller_ids: CallerIds,
    /// Dial mode.
    pub dial_mode: DialMode,
    /// AMD settings as in `POST /v1/calls` `amd` (mode, params), JSON; `{}` for no detection.
    pub amd: serde_json::Value,
    /// What to do on a machine.
    pub on_machine: OnMachine,
    /// Voicemail prompt for `voicemail_drop`.
    pub voicemail_prompt: Option<String>,
    /// Identification message: played to a person who answered when no agent was free (an
    /// abandoned call), then the call is hung up. `None`: hung up at once.
    pub abandon_prompt: Option<String>,
    /// `agentless`: what a person who answers gets.
    pub on_human: OnHuman,
    /// `on_human = bridge`: the number (or `sip:` URI) the person is put through to.
    pub bridge_to: Option<String>,
    /// `on_human = webhook`: the URL asked for the action.
    pub on_human_url: Option<String>,
    /// Record answered calls.
    pub record: bool,
    /// Calling window start, the contact's local time.
    pub window_start: NaiveTime,
    /// Calling window end (exclusive), the contact's local time.
    pub window_end: NaiveTime,
    /// IANA zone for contacts whose zone is unknown.
    pub default_timezone: String,
    /// Most attempts per contact.
    pub max_attempts: u32,
    /// Retry delays.
    pub retry_delays: RetryDelays,
    /// Most attempts started in any 60 s.
    pub rate_per_minute: Option<u32>,
    /// Most attempts started in any hour.
    pub rate_per_hour: Option<u32>,
    /// Most calls in progress at once.
    pub max_concurrent: Option<u32>,
    /// Lines per available agent (power mode; the start value of predictive).
    pub lines_per_agent: f64,
    /// Higher runs first when campaigns compete for lines.
    pub priority: i32,
    /// URL receiving this campaign's events, signed.
    pub status_callback: Option<String>,
}

/// A settings value that is not acceptable: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    /// The field.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

impl CampaignSettings {
    /// Defaults for a new campaign named `name`: power, one line per agent, 08:00-21:00,
    /// 3 attempts, default retry delays.
    pub fn new(name: impl Into<String>, default_timezone: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            list_id: None,
            trunk: None,
            caller_ids: CallerIds::default(),
            dial_mode: DialMode::Power,
            amd: serde_json::json!({}),
            on_machine: OnMachine::Hangup,
            voicemail_prompt: None,
            abandon_prompt: None,
            on_human: OnHuman::Prompt,
            bridge_to: None,
            on_human_url: None,
            record: false,
            window_start: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            window_end: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
            default_timezone: default_timezone.into(),
            max_attempts: 3,
            retry_delays: RetryDelays::default(),
            rate_per_minute: None,
            rate_per_hour: None,
            max_concurrent: None,
            lines_per_agent: 1.0,
            priority: 0,
            status_callback: None,
        }
    }

    /// Checks the values on their own (names, ranges, zone, window); what a start needs on top
    /// is [`CampaignSettings::missing_for_start`].
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(bad("name", "name must be 1 to 200 bytes"));
        }
        self.caller_ids
            .validate()
            .map_err(|m| bad("caller_ids", m))?;
        self.retry_delays
            .validate()
            .map_err(|m| bad("retry_delays", m))?;
        if !self.amd.is_object() {
            return Err(bad("amd", "amd must be a JSON object"));
        }
        if self.on_machine == OnMachine::VoicemailDrop && self.voicemail_prompt.is_none() {
            return Err(bad(
                "voicemail_prompt",
                "voicemail_prompt is required with on_machine voicemail_drop",
            ));
        }
        if self.on_human != OnHuman::Prompt && self.dial_mode != DialMode::Agentless {
            return Err(bad(
                "on_human",
                format!(
                    "on_human {} is for agentless campaigns; a {} campaign gives people to its agents",
                    self.on_human.as_str(),
                    self.dial_mode.as_str()
                ),
            ));
        }
        match (&self.on_human, &self.bridge_to) {
            (OnHuman::Bridge, None) => {
                return Err(bad(
                    "bridge_to",
                    "bridge_to is required with on_human bridge",
                ));
            }
            (_, Some(to))
                if to.trim().is_empty()
                    || to.len() > MAX_BRIDGE_TO_LEN
                    || to.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err(bad(
                    "bridge_to",
                    format!(
                        "bridge_to must be a number or sip: URI of 1 to {MAX_BRIDGE_TO_LEN} bytes without spaces"
                    ),
                ));
            }
            _ => {}
        }
        if self.on_human == OnHuman::Webhook && self.on_human_url.is_none() {
            return Err(bad(
                "on_human_url",
                "on_human_url is required with on_human webhook",
            ));
        }
        if self.window_start >= self.window_end {
            return Err(bad(
                "window_start",
                "window_start must be before window_end",
            ));
        }
        if self.default_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(bad(
                "default_timezone",
                format!("unknown time zone {:?}", self.default_timezone),
            ));
        }
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(bad(
                "max_attempts",
                format!("max_attempts must be 1 to {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        for (field, v) in [
            ("rate_per_minute", self.rate_per_minute),
            ("rate_per_hour", self.rate_per_hour),
            ("max_concurrent", self.max_concurrent),
        ] {
            if v == Some(0) {
                return Err(bad(
                    field,
                    format!("{field} must be at least 1 (or absent)"),
                ));
            }
        }
        if !(self.lines_per_agent.is_finite()
            && (1.0..=MAX_LINES_PER_AGENT).contains(&self.lines_per_agent))
        {
            return Err(bad(
                "lines_per_agent",
                format!("lines_per_agent must be 1 to {MAX_LINES_PER_AGENT}"),
            ));
        }
        Ok(())
    }

    /// What a start lacks, by field name, from what the settings alone tell (trunk, caller
    /// id, list); the list's contacts are counted by the store.
    pub fn missing_for_start(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.trunk.as_deref().is_none_or(|t| t.trim().is_empty()) {
            missing.push("trunk");
        }
        if self.caller_ids.is_empty() {
            missing.push("caller_ids");
        }
        if self.list_id.is_none() {
            missing.push("list_id");
        }
        missing
    }
}

/// Parses a local time of the calling window: `HH:MM` (or `HH:MM:SS`).
pub fn parse_local_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

/// A local time of the calling window as stored and shown: `HH:MM` (seconds when not zero).
pub fn format_local_time(t: NaiveTime) -> String {
    use chrono::Timelike;
    if t.second() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_spellings_round_trip() {
        for s in ["draft", "running", "paused", "completed", "archived"] {
            assert_eq!(CampaignState::parse(s).unwrap().as_str(), s);
        }
        for s in ["preview", "power", "predictive", "agentless"] {
            assert_eq!(DialMode::parse(s).unwrap().as_str(), s);
        }
        for s in [
            "human",
            "machine",
            "fax",
            "no-answer",
            "busy",
            "failed",
            "abandoned",
            "cancelled",
        ] {
            assert_eq!(AttemptOutcome::parse(s).unwrap().as_str(), s);
        }
        for s in [
            "pending", "dialing", "retry", "done", "failed", "dnc", "skipped",
        ] {
            assert_eq!(ContactStatus::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn state_moves() {
        use CampaignState::*;
        assert!(Draft.can_become(Running));
        assert!(Running.can_become(Paused));
        assert!(Paused.can_become(Running));
        assert!(Paused.can_become(Completed));
        assert!(Completed.can_become(Archived));
        assert!(!Draft.can_become(Paused));
        assert!(!Completed.can_become(Running));
        assert!(!Archived.can_become(Draft));
        assert!(!Running.can_become(Archived));
        assert!(!Running.can_become(Running));
    }

    #[test]
    fn caller_id_longest_prefix_then_round_robin() {
        let ids = CallerIds {
            default: vec!["+15550000001".into()],
            by_prefix: vec![
                PrefixPool {
                    prefix: "+44".into(),
                    numbers: vec!["+442000000001".into(), "+442000000002".into()],
                },
                PrefixPool {
                    prefix: "+4420".into(),
                    numbers: vec!["+442000000009".into()],
                },
            ],
        };
        assert_eq!(ids.pick("+12125551234", 7), Some("+15550000001"));
        assert_eq!(ids.pick("+441612223333", 0), Some("+442000000001"));
        assert_eq!(ids.pick("+441612223333", 1), Some("+442000000002"));
        assert_eq!(ids.pick("+442071234567", 1), Some("+442000000009"));
        assert!(CallerIds::default().pick("+1", 0).is_none());
        assert!(ids.validate().is_ok());
        let bad = CallerIds {
            default: vec!["5550000001".into()],
            by_prefix: vec![],
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn settings_validation_names_the_field() {
        let ok = CampaignSettings::new("spring", "America/New_York");
        assert_eq!(ok.validate(), Ok(()));
        let mut s = ok.clone();
        s.default_timezone = "Mars/Olympus".into();
        assert_eq!(s.validate().unwrap_err().field, "default_timezone");
        let mut s = ok.clone();
        s.window_start = parse_local_time("21:00").unwrap();
        assert_eq!(s.validate().unwrap_err().field, "window_start");
        let mut s = ok.clone();
        s.max_attempts = 0;
        assert_eq!(s.validate().unwrap_err().field, "max_attempts");
        let mut s = ok.clone();
        s.on_machine = OnMachine::VoicemailDrop;
        assert_eq!(s.validate().unwrap_err().field, "voicemail_prompt");
        assert_eq!(
            ok.missing_for_start(),
            vec!["trunk", "caller_ids", "list_id"]
        );
    }

    #[test]
    fn retry_delays_by_outcome() {
        let d = RetryDelays::default();
        assert_eq!(
            d.delay_for(AttemptOutcome::Busy),
            Some(Duration::from_secs(600))
        );
        assert_eq!(d.delay_for(AttemptOutcome::Human), None);
        let parsed: RetryDelays = serde_json::from_str(r#"{"no-answer": 60}"#).unwrap();
        assert_eq!(parsed.no_answer, 60);
        assert_eq!(parsed.busy, 600);
    }

    #[test]
    fn local_times() {
        let t = parse_local_time("08:30").unwrap();
        assert_eq!(format_local_time(t), "08:30");
        assert!(parse_local_time("25:00").is_none());
        assert_eq!(
            format_local_time(parse_local_time("08:30:15").unwrap()),
            "08:30:15"
        );
    }
}
