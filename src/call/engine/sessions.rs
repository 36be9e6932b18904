//! Calls to agents (pure): the leg of an agent session (issue 5, "Agent sessions").
//!
//! [`CallEngine::originate_agent`] places an outbound call to an agent rather than through a
//! trunk: a configured agent is rung at its most recently registered contact (the registrar's
//! bindings, as a ring group member is), a `sip:user@IP[:port]` URI directly. The call is an
//! ordinary outbound call afterwards (ring timeout, CANCEL, BYE, `call.*` events); with `join`
//! it enters its room once answered, which is how a session keeps the agent's leg in the
//! agent's own conference for the whole session.

use super::*;
use crate::inbound::StaticTarget;

/// A call to an agent to place.
#[derive(Debug, Clone)]
pub struct AgentOriginate {
    /// The row to insert (id, from, callback, metadata…); `to` is replaced by the URI rung and
    /// `trunk` is cleared.
    pub call: NewCall,
    /// A configured agent name (rung at its registered contact) or a `sip:` URI.
    pub agent: String,
    /// Cancel the INVITE if not answered within this time.
    pub ring_timeout: Duration,
    /// Join this conference once answered.
    pub join: Option<(Uuid, ParticipantOptions)>,
}

impl CallEngine {
    /// Where an agent is rung: a `sip:` URI as written, or the agent's most recently
    /// registered contact (`None`: not registered, or not a usable URI).
    fn agent_target(&self, now: Instant, agent: &str) -> Option<(StaticTarget, Transport)> {
        // A ring-group member's targets, of which the latest registered.
        self.resolve_member(now, agent).pop()
    }

    /// Places a call to an agent. Errors: shutting down or over capacity as [`Self::originate`];
    /// [`EngineError::Invalid`] for an agent with no registered contact or an unusable URI;
    /// [`EngineError::ConferenceNotFound`] for a `join` room that does not exist.
    pub fn originate_agent(&mut self, now: Instant, o: AgentOriginate) -> Result<(), EngineError> {
        self.admit_outbound(o.call.id, o.join.as_ref())?;
        let (target, transport) = self.agent_target(now, &o.agent).ok_or_else(|| {
            EngineError::Invalid(format!("agent {:?} has no registered contact", o.agent))
        })?;
        if sip_uri(&target.uri).is_none() {
            return Err(EngineError::Invalid(format!(
                "cannot call {:?}",
                target.uri
            )));
        }
        let Some(leg) = self.new_leg() else {
            self.stats.refused_capacity += 1;
            return Err(EngineError::OverCapacity("RTP ports exhausted".into()));
        };
        let from_uri = format!("sip:trunkline@{}", self.cfg.sip_addr.ip());
        let Some(invite) = self.invite_request(&target.uri, &from_uri, &leg, transport) else {
            self.ports.release(leg.port);
            return Err(EngineError::Invalid(format!(
                "cannot call {:?}",
                target.uri
            )));
        };
        let key = match self
            .layer
            .send_request(now, target.addr, transport, invite.clone())
        {
            Ok(k) => k,
            Err(e) => {
                self.ports.release(leg.port);
                return Err(EngineError::OverCapacity(e.to_string()));
            }
        };
        let mut call = o.call;
        let id = call.id;
        let callback = call.status_callback.clone();
        call.to = target.uri.clone();
        call.trunk = None;
        call.sip_call_id = Some(leg.sip_call_id.clone());
        call.status = CallStatus::Initiated;
        self.actions.push_back(Action::Store(StoreOp::Insert {
            call: Box::new(call),
            at: now,
        }));
        self.by_txn.insert(key.clone(), (id, TxnRole::Invite));
        self.by_sip_call_id.insert(leg.sip_call_id.clone(), id);
        self.calls.insert(
            id,
            Call {
                pending_join: o.join,
                ..Call::outbound(id, leg, target.addr, transport, invite, key, callback)
            },
        );
        self.set_timer(id, now + o.ring_timeout, TimerKind::Ring);
        self.drain_layer(now);
        Ok(())
    }
}
