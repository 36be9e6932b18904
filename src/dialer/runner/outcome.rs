//! From a finished call to an attempt outcome, and from an outcome to the contact's next status
//! (pure: the runner feeds it the stored call row and the campaign's settings).
//!
//! - answered: the AMD verdict decides (`human`, `machine_*`, `fax`); `unknown` or no AMD at
//!   all counts as `human` (someone or something took the call and heard the message);
//! - SIP 486 or 600 → `busy`;
//! - ring timeout (final status `no-answer`), 408, 480 or 487 → `no-answer`;
//! - `canceled` by us (shutdown, a pause that cut a ringing call) → `cancelled`;
//! - anything else (503, 404, 603, transport errors) → `failed`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::{AttemptOutcome, CampaignSettings, ContactStatus, OnMachine};
use crate::dialer::retry::{NextStatus, RetryDelays, RetryPolicy};
use crate::dialer::window::CallingWindow;
use crate::store::{Call, FinalStatus};

/// The outcome of an attempt whose call ended as `call` says; `None` while it has not ended.
pub fn outcome_of_call(call: &Call) -> Option<AttemptOutcome> {
    let status = call.final_status?;
    let code = call.end_sip_code;
    Some(match (status, code) {
        (_, Some(486 | 600)) => AttemptOutcome::Busy,
        (_, Some(408 | 480 | 487)) if call.answered_at.is_none() => {
            if status == FinalStatus::Canceled {
                AttemptOutcome::Cancelled
            } else {
                AttemptOutcome::NoAnswer
            }
        }
        (FinalStatus::NoAnswer, _) => AttemptOutcome::NoAnswer,
        (FinalStatus::Canceled, _) if call.answered_at.is_none() => AttemptOutcome::Cancelled,
        _ if call.answered_at.is_some() => match call.amd.as_ref().map(|a| a.result.as_str()) {
            Some(v) if v.starts_with("machine") => AttemptOutcome::Machine,
            Some("fax") => AttemptOutcome::Fax,
            _ => AttemptOutcome::Human,
        },
        _ => AttemptOutcome::Failed,
    })
}

/// The dialer core's name for an outcome (the two enums spell the same strings).
pub fn core_outcome(o: AttemptOutcome) -> crate::dialer::AttemptOutcome {
    match o {
        AttemptOutcome::Human => crate::dialer::AttemptOutcome::Human,
        AttemptOutcome::Machine => crate::dialer::AttemptOutcome::Machine,
        AttemptOutcome::Fax => crate::dialer::AttemptOutcome::Fax,
        AttemptOutcome::NoAnswer => crate::dialer::AttemptOutcome::NoAnswer,
        AttemptOutcome::Busy => crate::dialer::AttemptOutcome::Busy,
        AttemptOutcome::Failed => crate::dialer::AttemptOutcome::Failed,
        AttemptOutcome::Abandoned => crate::dialer::AttemptOutcome::Abandoned,
        AttemptOutcome::Cancelled => crate::dialer::AttemptOutcome::Cancelled,
    }
}

/// The campaign's retry policy for the pure core: its delays, and a machine that got a
/// voicemail drop ends the contact.
pub fn retry_policy(s: &CampaignSettings) -> RetryPolicy {
    let secs = std::time::Duration::from_secs;
    let d = s.retry_delays;
    RetryPolicy {
        max_attempts: s.max_attempts,
        delays: RetryDelays {
            no_answer: secs(d.no_answer),
            busy: secs(d.busy),
            failed: secs(d.failed),
            machine: (s.on_machine != OnMachine::VoicemailDrop).then(|| secs(d.machine)),
            default: secs(d.abandoned),
        },
    }
}

/// The campaign's calling window and a contact's zone (its own, else the campaign's default,
/// else UTC).
pub fn window_and_zone(s: &CampaignSettings, contact_tz: Option<&str>) -> (CallingWindow, Tz) {
    let tz = contact_tz
        .and_then(|t| t.parse::<Tz>().ok())
        .or_else(|| s.default_timezone.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC);
    (CallingWindow::new(s.window_start, s.window_end), tz)
}

/// The contact's status and next due time after attempt number `attempt_no` ended with
/// `outcome` at `now`.
pub fn next_status(
    s: &CampaignSettings,
    contact_tz: Option<&str>,
    now: DateTime<Utc>,
    outcome: AttemptOutcome,
    attempt_no: u32,
) -> (ContactStatus, Option<DateTime<Utc>>) {
    let (window, tz) = window_and_zone(s, contact_tz);
    match retry_policy(s).next(now, core_outcome(outcome), attempt_no, &window, tz) {
        NextStatus::Retry { due_at } => (ContactStatus::Retry, Some(due_at)),
        NextStatus::Done => (ContactStatus::Done, None),
        NextStatus::Failed => (ContactStatus::Failed, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AmdRow, CallStatus, Direction, NewCall};

    fn call(status: FinalStatus, code: Option<u16>, answered: bool, amd: Option<&str>) -> Call {
        let t = DateTime::parse_from_rfc3339("2026-06-10T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut c = Call::from_new(&NewCall {
            id: uuid::Uuid::nil(),
            direction: Direction::Outbound,
            from: "+15550100000".into(),
            to: "+15550100001".into(),
            trunk: None,
            sip_call_id: None,
            status: CallStatus::Initiated,
            status_callback: None,
            metadata: serde_json::json!({}),
            idempotency_key: None,
            api_key_id: None,
            created_at: t,
        });
        c.final_status = Some(status);
        c.end_sip_code = code;
        c.answered_at = answered.then_some(t);
        c.amd = amd.map(|r| AmdRow {
            result: r.into(),
            confidence: 0.9,
            decision_ms: None,
            beep_ms: None,
            drop_ms: None,
        });
        c
    }

    #[test]
    fn calls_map_to_the_issue_outcomes() {
        use AttemptOutcome::*;
        use FinalStatus as F;
        let cases = [
            (call(F::Busy, Some(486), false, None), Busy),
            (call(F::Busy, Some(600), false, None), Busy),
            (call(F::Busy, Some(603), false, None), Failed),
            (call(F::NoAnswer, Some(487), false, None), NoAnswer),
            (call(F::NoAnswer, Some(480), false, None), NoAnswer),
            (call(F::NoAnswer, None, false, None), NoAnswer),
            (call(F::Failed, Some(503), false, None), Failed),
            (call(F::Failed, None, false, None), Failed),
            (call(F::Canceled, Some(487), false, None), Cancelled),
            (call(F::Completed, None, true, None), Human),
            (call(F::Completed, None, true, Some("human")), Human),
            (call(F::Completed, None, true, Some("unknown")), Human),
            (
                call(F::Completed, None, true, Some("machine_end_beep")),
                Machine,
            ),
            (call(F::Completed, None, true, Some("fax")), Fax),
        ];
        for (c, want) in cases {
            assert_eq!(
                outcome_of_call(&c),
                Some(want),
                "{:?} {:?} answered={}",
                c.final_status,
                c.end_sip_code,
                c.answered_at.is_some()
            );
        }
        let mut live = call(F::Completed, None, true, None);
        live.final_status = None;
        assert_eq!(outcome_of_call(&live), None);
    }

    #[test]
    fn retries_follow_the_campaign_delays_and_max_attempts() {
        let mut s = CampaignSettings::new("c", "UTC");
        s.window_start = chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap();
        s.window_end = chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap();
        s.max_attempts = 2;
        s.retry_delays.busy = 3;
        let now = DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_status(&s, None, now, AttemptOutcome::Busy, 1),
            (
                ContactStatus::Retry,
                Some(now + chrono::Duration::seconds(3))
            )
        );
        assert_eq!(
            next_status(&s, None, now, AttemptOutcome::Busy, 2),
            (ContactStatus::Failed, None)
        );
        assert_eq!(
            next_status(&s, None, now, AttemptOutcome::Human, 1),
            (ContactStatus::Done, None)
        );
        s.on_machine = OnMachine::VoicemailDrop;
        assert_eq!(
            next_status(&s, None, now, AttemptOutcome::Machine, 1),
            (ContactStatus::Done, None)
        );
        s.on_machine = OnMachine::Hangup;
        assert_eq!(
            next_status(&s, None, now, AttemptOutcome::Machine, 1).0,
            ContactStatus::Retry
        );
    }
}
