//! What an `agentless` campaign does with a person who answers (issue 5, "agentless"): the
//! campaign's `on_human` setting ([`OnHuman`]).
//!
//! - **`prompt`** (default): the campaign's message (`voicemail_prompt`) is played and the call
//!   hung up when it finishes (or at once without one). This lives in the runner itself.
//! - **`bridge`**: the person is put in a two-party room of its own and `bridge_to` is called
//!   through the campaign's trunk with the campaign's caller id, joining the room on answer.
//!   Both join with `end_on_exit`, so either hanging up ends the other. If the transfer leg
//!   ends without answering (busy, no answer, refused) the person is hung up; if the person
//!   hangs up while it rings, the leg is cancelled. The person hears silence while it rings.
//!   The transfer leg's call row carries `campaign_id`, `attempt_id` and `bridged_from` (the
//!   person's call) in its metadata; the attempt's outcome is `human`.
//! - **`webhook`**: a POST to `on_human_url`, signed like the webhooks (`X-Trunkline-Timestamp`,
//!   `X-Trunkline-Signature`), with the campaign, attempt, call and contact (id, phone, name,
//!   time zone, custom fields). A 2xx reply whose JSON body is `{"action": "prompt", "prompt":
//!   NAME}`, `{"action": "bridge", "to": NUMBER}` or `{"action": "hangup"}` is carried out. A
//!   reply that is late ([`ON_HUMAN_TIMEOUT`]), not 2xx or not one of those falls back to the
//!   campaign's message (or a hang-up without one). The request runs beside the runner; the
//!   decision comes back on a queue ([`Decision`]), so pacing never waits for it. The person
//!   hears silence until it is carried out.
//!
//! Every decision is published as `attempt.human_action` (`action`, `source`: `campaign`,
//! `webhook` or `fallback`, and `error` for a fallback).

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{InFlight, Runner, attempt_kinds, publish};
use crate::call::{ConferenceSpec, Originate, ParticipantOptions};
use crate::campaign::OnHuman;
use crate::media::player::Prompt;
use crate::store::{NewCall, new_id};

/// How long the `on_human_url` webhook has to answer.
pub const ON_HUMAN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with a person, once known.
#[derive(Debug, Clone)]
pub enum HumanAction {
    /// Play this prompt, then hang up.
    Prompt(Prompt),
    /// Put the person through to this number or URI.
    Bridge(String),
    /// Hang up.
    Hangup,
}

/// A webhook's answer for a call, sent back to the runner.
#[derive(Debug)]
pub struct Decision {
    /// The person's call.
    pub call_id: Uuid,
    /// What the webhook chose, or why it gave no usable answer.
    pub reply: Result<Reply, String>,
}

/// The runner's end of the decisions queue.
pub type Decisions = mpsc::UnboundedReceiver<Decision>;

impl HumanAction {
    fn name(&self) -> &'static str {
        match self {
            HumanAction::Prompt(_) => "prompt",
            HumanAction::Bridge(_) => "bridge",
            HumanAction::Hangup => "hangup",
        }
    }
}

impl Runner {
    /// A person answered a call of an agentless campaign: act on its `on_human`.
    pub(super) async fn on_human(&mut self, call_id: Uuid) {
        let Some(f) = self.calls.get(&call_id) else {
            return;
        };
        match f.on_human {
            OnHuman::Prompt => {
                let action = match f.prompt.clone() {
                    Some(p) => HumanAction::Prompt(p),
                    None => HumanAction::Hangup,
                };
                self.carry_out(call_id, action, "campaign", None).await;
            }
            OnHuman::Bridge => {
                let to = f.bridge_to.clone().unwrap_or_default();
                self.carry_out(call_id, HumanAction::Bridge(to), "campaign", None)
                    .await;
            }
            OnHuman::Webhook => self.ask_webhook(call_id, f.clone()),
        }
    }

    /// A decision came back from a webhook: carried out, or the fallback (the campaign's
    /// message, else a hang-up) when it was unusable.
    pub(super) async fn on_decision(&mut self, d: Decision) {
        let Some(f) = self.calls.get(&d.call_id) else {
            // The person hung up meanwhile.
            return;
        };
        let fallback = match f.prompt.clone() {
            Some(p) => HumanAction::Prompt(p),
            None => HumanAction::Hangup,
        };
        let (action, source, error) = match d.reply {
            Ok(Reply::Prompt(name)) => match self.prompt(&name) {
                Some(p) => (HumanAction::Prompt(p), "webhook", None),
                None => (
                    fallback,
                    "fallback",
                    Some(format!("unknown prompt {name:?}")),
                ),
            },
            Ok(Reply::Bridge(to)) => (HumanAction::Bridge(to), "webhook", None),
            Ok(Reply::Hangup) => (HumanAction::Hangup, "webhook", None),
            Err(e) => (fallback, "fallback", Some(e)),
        };
        self.carry_out(d.call_id, action, source, error).await;
    }

    async fn carry_out(
        &mut self,
        call_id: Uuid,
        action: HumanAction,
        source: &'static str,
        error: Option<String>,
    ) {
        let Some(f) = self.calls.get(&call_id) else {
            return;
        };
        let mut payload = json!({
            "campaign_id": f.campaign_id,
            "attempt_id": f.attempt_id,
            "contact_id": f.contact_id,
            "action": action.name(),
            "source": source,
        });
        if let HumanAction::Bridge(to) = &action {
            payload["to"] = json!(to);
        }
        if let Some(e) = &error {
            payload["error"] = json!(e);
        }
        let callback = f.callback.clone();
        publish(
            &self.deps,
            attempt_kinds::ATTEMPT_HUMAN_ACTION,
            Some(call_id),
            payload,
            callback.as_deref(),
        )
        .await;
        let r = match action {
            HumanAction::Prompt(p) => self.deps.engine.play(call_id, p, false).await,
            HumanAction::Hangup => self.deps.engine.hangup(call_id).await,
            HumanAction::Bridge(to) => {
                self.bridge(call_id, to).await;
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::debug!(%call_id, error = %e, "dialer: could not act on the answered call");
        }
    }

    /// Puts the person on `call_id` through to `to` (module docs).
    async fn bridge(&mut self, call_id: Uuid, to: String) {
        let Some(f) = self.calls.get(&call_id).cloned() else {
            return;
        };
        let now = self.deps.clock.utc();
        let mut spec = ConferenceSpec::new(new_id(now));
        spec.name = Some(format!("transfer of {call_id}"));
        spec.max_participants = Some(2);
        let both = ParticipantOptions {
            end_on_exit: true,
            ..ParticipantOptions::default()
        };
        let room = match self.deps.engine.create_conference(spec).await {
            Ok(info) => info.id,
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "dialer: no room for the transfer");
                let _ = self.deps.engine.hangup(call_id).await;
                return;
            }
        };
        if let Err(e) = self.deps.engine.join(room, call_id, both).await {
            tracing::warn!(%call_id, error = %e, "dialer: the person could not join the transfer");
            self.give_up_transfer(room, call_id).await;
            return;
        }
        let leg = new_id(now);
        let placed = match (f.caller.clone(), f.trunk.clone()) {
            (Some(from), Some(trunk)) => {
                self.deps
                    .engine
                    .originate(Originate {
                        call: NewCall {
                            id: leg,
                            direction: crate::store::Direction::Outbound,
                            from,
                            to,
                            trunk: Some(trunk),
                            sip_call_id: None,
                            status: crate::store::CallStatus::Initiated,
                            status_callback: f.callback.clone(),
                            metadata: json!({
                                "campaign_id": f.campaign_id,
                                "attempt_id": f.attempt_id,
                                "contact_id": f.contact_id,
                                "bridged_from": call_id,
                            }),
                            idempotency_key: None,
                            api_key_id: None,
                            created_at: now,
                        },
                        ring_timeout: self.cfg.ring_timeout,
                        amd: None,
                        join: Some((room, both)),
                        record: false,
                    })
                    .await
            }
            _ => Err(crate::call::EngineError::Invalid(
                "the campaign has no caller id or trunk".into(),
            )),
        };
        match placed {
            Ok(()) => {
                self.transfers.insert(leg, call_id);
            }
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "dialer: the transfer leg was not placed");
                self.give_up_transfer(room, call_id).await;
            }
        }
    }

    /// A transfer that cannot go on: its room ends and the person is hung up.
    async fn give_up_transfer(&self, room: Uuid, call_id: Uuid) {
        let _ = self
            .deps
            .engine
            .end_conference(room, "transfer-failed".into())
            .await;
        let _ = self.deps.engine.hangup(call_id).await;
    }

    /// A call ended: if it was a transfer leg, the person it was for is hung up (a leg that
    /// never answered leaves them alone in the room; one that did has ended the room already,
    /// and the hang-up finds nothing). If it was a person being transferred, the leg still
    /// ringing is cancelled. True if the call was a transfer leg (it is no attempt's call).
    pub(super) async fn transfer_call_ended(&mut self, call_id: Uuid) -> bool {
        if let Some(person) = self.transfers.remove(&call_id) {
            let _ = self.deps.engine.hangup(person).await;
            return true;
        }
        let legs: Vec<Uuid> = self
            .transfers
            .iter()
            .filter(|(_, p)| **p == call_id)
            .map(|(leg, _)| *leg)
            .collect();
        for leg in legs {
            let _ = self.deps.engine.hangup(leg).await;
        }
        false
    }

    /// Asks the campaign's `on_human_url` beside the runner; the answer comes back as a
    /// [`Decision`].
    fn ask_webhook(&self, call_id: Uuid, f: InFlight) {
        let store = self.deps.store.clone();
        let tx = self.decisions.clone();
        let secret = self.cfg.webhook_secret.clone();
        let http = self.http.clone();
        let now = self.deps.clock.utc();
        tokio::spawn(async move {
            let reply = ask(&http, &store, secret.as_deref(), now, call_id, &f).await;
            let _ = tx.send(Decision { call_id, reply });
        });
    }
}

/// A webhook's reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Play this prompt (a name of `prompts/`), then hang up.
    Prompt(String),
    /// Put the person through to this number or URI.
    Bridge(String),
    /// Hang up.
    Hangup,
}

/// Parses the webhook's JSON body.
fn parse_reply(body: &[u8]) -> Result<Reply, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    match text("action").as_deref() {
        Some("prompt") => text("prompt")
            .map(Reply::Prompt)
            .ok_or_else(|| "action prompt needs a \"prompt\" name".into()),
        Some("bridge") => match text("to") {
            Some(to)
                if to.len() <= crate::campaign::MAX_BRIDGE_TO_LEN
                    && !to.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Ok(Reply::Bridge(to))
            }
            _ => Err("action bridge needs a \"to\" number without spaces".into()),
        },
        Some("hangup") => Ok(Reply::Hangup),
        other => Err(format!(
            "action must be prompt, bridge or hangup, not {other:?}"
        )),
    }
}

/// The POST to `on_human_url` and its parsed reply.
async fn ask(
    http: &reqwest::Client,
    store: &crate::store::Store,
    secret: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    call_id: Uuid,
    f: &InFlight,
) -> Result<Reply, String> {
    let url = f.on_human_url.clone().ok_or("no on_human_url")?;
    let contact = store
        .get_contact(f.contact_id)
        .await
        .map_err(|e| format!("reading the contact: {e}"))?;
    let body = json!({
        "campaign_id": f.campaign_id,
        "attempt_id": f.attempt_id,
        "attempt_no": f.attempt_no,
        "call_id": call_id,
        "contact": contact.map(|c| json!({
            "id": c.id,
            "phone": c.phone,
            "name": c.name,
            "timezone": c.timezone,
            "custom": c.custom,
        })),
    });
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let secret = match secret {
        Some(s) => s.to_owned(),
        None => store
            .webhook_secret()
            .await
            .map_err(|e| format!("reading the signing secret: {e}"))?,
    };
    let ts = now.timestamp().to_string();
    let signature = crate::events::sign(&secret, &ts, &body);
    let resp = http
        .post(&url)
        .timeout(ON_HUMAN_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(crate::events::TIMESTAMP_HEADER, ts)
        .header(crate::events::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("POST {url} answered {status}"));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the reply: {e}"))?;
    parse_reply(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_and_bad_ones_explained() {
        assert_eq!(
            parse_reply(br#"{"action": "prompt", "prompt": "tone"}"#),
            Ok(Reply::Prompt("tone".into()))
        );
        assert_eq!(
            parse_reply(br#"{"action": "bridge", "to": "+12125550190"}"#),
            Ok(Reply::Bridge("+12125550190".into()))
        );
        assert_eq!(parse_reply(br#"{"action": "hangup"}"#), Ok(Reply::Hangup));
        for (body, why) in [
            (&b"not json"[..], "not JSON"),
            (br#"{"action": "prompt"}"#, "needs a \"prompt\""),
            (br#"{"action": "bridge", "to": "+1 212"}"#, "without spaces"),
            (
                br#"{"action": "dance"}"#,
                "must be prompt, bridge or hangup",
            ),
            (br#"{}"#, "must be prompt, bridge or hangup"),
        ] {
            let e = parse_reply(body).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
