//! The missed-call follow-up (pure part): the text sent to the follow-up URL, and the record
//! the engine hands to the store when a call is missed.
//!
//! The store decides, inside the transaction that inserts the missed call, whether the text
//! goes: not when the caller is on the opt-out list (`suppressed`, `opt-out`), not when this
//! caller got one from this number within the cool-down (`suppressed`, `cooldown`; an atomic
//! upsert on `followup_cooldowns`, so two misses racing still give one text), else a
//! `followup.text` event with an outbox row to the URL (`pending`, then `sent` or `failed`
//! as the outbox delivers it or gives up).

use crate::config::FollowupConfig;
use crate::inbound::MissReason;
use uuid::Uuid;

/// The event type POSTed to a number's follow-up URL.
pub const FOLLOWUP_EVENT: &str = crate::events::kinds::FOLLOWUP_TEXT;

/// Replaces `{caller}`, `{number}` and `{reason}` in `template`.
pub fn render(template: &str, caller: &str, number: &str, reason: MissReason) -> String {
    template
        .replace("{caller}", caller)
        .replace("{number}", number)
        .replace("{reason}", reason.as_str())
}

/// A follow-up to consider for a missed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowupPlan {
    /// Where it goes.
    pub url: String,
    /// The rendered text.
    pub text: String,
    /// The cool-down, seconds.
    pub cooldown_secs: u64,
}

impl FollowupPlan {
    /// The plan for a missed call from `caller` to `number`.
    pub fn new(cfg: &FollowupConfig, caller: &str, number: &str, reason: MissReason) -> Self {
        Self {
            url: cfg.url.clone(),
            text: render(&cfg.body, caller, number, reason),
            cooldown_secs: cfg.cooldown_secs,
        }
    }
}

/// A missed call as the engine decided it, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedCall {
    /// The caller's call.
    pub call_id: Uuid,
    /// The called number.
    pub number: String,
    /// The caller (E.164 number or SIP URI).
    pub caller: String,
    /// Why.
    pub reason: MissReason,
    /// How long it rang, milliseconds (until an agent, voicemail or hang-up).
    pub ring_ms: i64,
    /// The voicemail recording, if the caller reached voicemail.
    pub voicemail_id: Option<Uuid>,
    /// The follow-up to consider.
    pub followup: Option<FollowupPlan>,
    /// Webhook URL of the number's events (`call.missed` goes there too).
    pub status_callback: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_placeholders() {
        assert_eq!(
            render(
                "Sorry we missed you {caller}, call {number} back ({reason}) {other}",
                "+15551234567",
                "+15550000000",
                MissReason::CallerHangup
            ),
            "Sorry we missed you +15551234567, call +15550000000 back (caller-hangup) {other}"
        );
    }
}
