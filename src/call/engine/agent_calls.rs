//! Who may place a call, and agents calling out through trunks (pure).
//!
//! Every new INVITE is admitted here before any route runs ([`CallEngine::admit_invite`]):
//!
//! - **An agent** (the From user is a configured agent, or the INVITE carries
//!   `Proxy-Authorization`) must authenticate with digest, as for REGISTER: no credentials or
//!   wrong ones get 407 with a fresh challenge, repeated failures from one address get 429.
//!   Authenticated, a call to one of our numbers runs that number's route; a call anywhere
//!   else goes out through the first of the agent's `trunks` whose `allowed_prefixes` permit
//!   the destination ([`crate::config::Config::agent_trunk`]), and 403 when none does.
//! - **Anyone else** may call our numbers only from a known source (a trunk's address or
//!   `[sip] trusted_sources`): a known source gets 404 for a number we do not have, an
//!   unknown one 403 whatever it calls.
//!
//! An agent's call out is run as a one-member ring group on the agent's INVITE (see
//! `inbound.rs`): the agent gets 183 and hears ringback while the trunk leg rings, the trunk
//! leg is placed with [`CallEngine::originate`]'s rules (trunk caps, rate, digest to the
//! trunk), and its answer answers the agent and bridges both. If the trunk leg fails, the
//! agent's INVITE gets its final code (486 busy, 404, 503 …; 480 when it rang out). A
//! CANCEL from the agent cancels the trunk leg. No missed-call decision is taken on these
//! calls: they are not calls to a number.

use super::*;
use crate::config::{NumberConfig, RingGroupConfig, RingStrategy};

/// An agent's call out through a trunk (kept on the agent's call).
#[derive(Debug, Clone)]
pub(super) struct AgentOut {
    /// The authenticated agent.
    pub(super) agent: String,
    /// The trunk the call goes out through.
    pub(super) trunk: String,
    /// The dialled destination (Request-URI user).
    pub(super) to: String,
    /// How the last trunk leg ended that was never answered: its status and SIP code.
    pub(super) last_end: Option<(FinalStatus, Option<u16>)>,
}

/// What [`CallEngine::admit_invite`] decided.
pub(super) enum Admitted {
    /// A call to one of our numbers.
    Number(NumberConfig),
    /// An authenticated agent's call out.
    Agent(AgentOut),
}

impl CallEngine {
    /// Decides whether a new INVITE to `user` may go on, and as what. `None`: it was
    /// answered here (407, 403, 404, 429, 400).
    pub(super) fn admit_invite(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        req: &Request,
        source: SocketAddr,
        user: &str,
    ) -> Option<Admitted> {
        let from_user = req
            .from()
            .and_then(|f| crate::sip::message::uri_user(&f.uri.uri).map(str::to_string));
        let claims_agent = from_user
            .as_deref()
            .is_some_and(|u| self.config.agent(u).is_some())
            || req.header(&Name::PROXY_AUTHORIZATION).is_some();
        if claims_agent {
            let agent = match self.registrar.authenticate_request(now, req, source) {
                Ok(agent) => agent,
                Err(resp) => {
                    self.stats.auth_challenged += 1;
                    self.respond(now, key, resp);
                    return None;
                }
            };
            if let Some(number) = self.config.number(user) {
                return Some(Admitted::Number(number.clone()));
            }
            let Some(trunk) = self.config.agent_trunk(&agent, user) else {
                self.stats.forbidden += 1;
                let r = response_to(
                    req,
                    403,
                    Some("Destination Not Allowed For This Agent"),
                    None,
                );
                self.respond(now, key, r);
                return None;
            };
            return Some(Admitted::Agent(AgentOut {
                agent,
                trunk: trunk.name.clone(),
                to: user.to_string(),
                last_end: None,
            }));
        }
        if !self.config.is_known_source(source.ip(), &self.trusted) {
            self.stats.forbidden += 1;
            let r = response_to(req, 403, Some("Unknown Source"), None);
            self.respond(now, key, r);
            return None;
        }
        match self.config.number(user) {
            Some(number) => Some(Admitted::Number(number.clone())),
            None => {
                self.stats.unknown_number += 1;
                self.respond(
                    now,
                    key,
                    response_to(req, 404, Some("Number Not Configured"), None),
                );
                None
            }
        }
    }

    /// The number and route an agent's call runs: a one-member group ringing the trunk leg
    /// for the ring timeout, with no fallback.
    pub(super) fn agent_route(&self, out: &AgentOut) -> (NumberConfig, RouteConfig) {
        let ring = self.config.server.calls.ring_timeout_secs.max(1);
        let route = RouteConfig::RingGroup(RingGroupConfig {
            members: vec![out.to.clone()],
            strategy: RingStrategy::Simultaneous,
            member_timeout_secs: ring,
            timeout_secs: ring,
            prompt: None,
            record: false,
            on_no_answer: None,
        });
        let number = NumberConfig {
            number: out.to.clone(),
            route: route.clone(),
            hours: None,
            followup: None,
            status_callback: None,
        };
        (number, route)
    }

    /// Places the trunk leg of agent call `caller_id`; false if it could not be placed (the
    /// reason is kept for the agent's final response).
    pub(super) fn start_agent_leg(&mut self, now: Instant, caller_id: Uuid, member: usize) -> bool {
        let Some(out) = self
            .calls
            .get(&caller_id)
            .and_then(|c| c.inbound.as_ref())
            .and_then(|ib| ib.agent_out.clone())
        else {
            return false;
        };
        let from = self
            .config
            .agent(&out.agent)
            .and_then(|a| a.caller_id.clone())
            .or_else(|| {
                self.config
                    .trunk(&out.trunk)
                    .and_then(|t| t.caller_id.clone())
            })
            .unwrap_or_else(|| out.agent.clone());
        let id = self.new_call_id();
        let row = NewCall {
            id,
            direction: Direction::Outbound,
            from,
            to: out.to.clone(),
            trunk: Some(out.trunk.clone()),
            sip_call_id: None,
            status: CallStatus::Initiated,
            status_callback: None,
            metadata: serde_json::json!({ "agent": out.agent, "agent_call_id": caller_id }),
            idempotency_key: None,
            api_key_id: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        let o = Originate {
            call: row,
            ring_timeout: Duration::from_secs(self.config.server.calls.ring_timeout_secs.max(1)),
            amd: None,
            join: None,
            record: false,
        };
        match self.originate_inner(now, o) {
            Ok(()) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.member_of = Some((caller_id, member));
                }
                if let Some(ib) = self.inbound_mut(caller_id) {
                    ib.legs.push((id, member));
                }
                true
            }
            Err(e) => {
                let code = match e {
                    EngineError::DestinationNotAllowed { .. } => 403,
                    _ => 503,
                };
                tracing::info!(agent = %out.agent, trunk = %out.trunk, error = %e, "agent call not placed");
                if let Some(o) = self
                    .inbound_mut(caller_id)
                    .and_then(|ib| ib.agent_out.as_mut())
                {
                    o.last_end = Some((FinalStatus::Failed, Some(code)));
                }
                false
            }
        }
    }

    /// The agent's final response when its trunk leg was not answered.
    pub(super) fn agent_call_failed(&mut self, now: Instant, id: Uuid, out: &AgentOut) {
        let (status, code) = match out.last_end {
            // Rang out (our CANCEL) or no answer: 480; a refusal keeps its code.
            Some((FinalStatus::NoAnswer, _)) | None => (FinalStatus::NoAnswer, 480),
            Some((FinalStatus::Busy, c)) => (FinalStatus::Busy, c.unwrap_or(486)),
            Some((status, c)) => (
                status,
                c.filter(|c| (400..=699).contains(c) && *c != 487)
                    .unwrap_or(503),
            ),
        };
        self.end_call(
            now,
            id,
            EndInfo::new(
                status,
                Some(code),
                format!("agent call through trunk {}: not answered", out.trunk),
                EndedBy::System,
            ),
        );
    }
}
