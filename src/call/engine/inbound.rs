//! Inbound routes in the call engine (pure): business hours, ring groups, voicemail and the
//! missed-call decision, run on the engine's SIP legs.
//!
//! - **Ring group.** The caller's INVITE gets 183 with our SDP and hears the group's prompt,
//!   then ringback (early media; 180 when the INVITE had no offer). Each member is rung on its
//!   contacts (a static `sip:` URI, or an agent's live registrations, [`Registrar::bindings`])
//!   by outbound legs
//!   whose rows carry `metadata.inbound_call_id`; [`RingGroup`] decides what rings when. The
//!   first 2xx wins: the caller gets its 200, both are bridged (a two-party room, recorded
//!   when the route says so), the other legs are cancelled, and a loser's late 2xx is ACKed
//!   and sent BYE.
//! - **Nobody answers** (timeout, all busy, nobody registered): `on_no_answer` runs on the
//!   same call (voicemail, another number's route, a prompt, a reject), or the caller gets 480.
//! - **Voicemail.** Answer, greeting and beep, then a recording of the caller that ends on
//!   silence, `#`, the longest length or hang-up; `voicemail.created` when the file is done.
//! - **Missed.** When a tracked call ends without an agent having answered, one
//!   [`InboundOp::Missed`] goes to the store (which makes `call.missed` exactly once).

use super::*;
use crate::config::{NumberConfig, RingGroupConfig, VoicemailConfig};
use crate::inbound::followup::{FollowupPlan, MissedCall};
use crate::inbound::hours::Schedule;
use crate::inbound::{MissReason, RingAction, RingGroup, StaticTarget};

/// A store operation about an inbound call's outcome.
#[derive(Debug, Clone)]
pub enum InboundOp {
    /// The call arrived at a number that tracks missed calls: its outcome is now pending
    /// (the sweeper decides it after a crash).
    Start {
        /// The caller's call.
        call_id: Uuid,
        /// The called number.
        number: String,
        /// The caller.
        caller: String,
        /// When.
        at: Instant,
    },
    /// An agent answered: the call is not missed.
    Connected {
        /// The caller's call.
        call_id: Uuid,
        /// The member who answered (agent name or URI).
        agent: String,
        /// When.
        at: Instant,
    },
    /// A voicemail message is recorded (`voicemail.created`).
    Voicemail {
        /// The caller's call.
        call_id: Uuid,
        /// Event payload (recording id, duration, number, caller).
        payload: serde_json::Value,
        /// The number's webhook URL.
        callback: Option<String>,
        /// When.
        at: Instant,
    },
    /// The call ended missed: insert the missed call, `call.missed` and the follow-up.
    Missed {
        /// What was decided.
        missed: Box<MissedCall>,
        /// When.
        at: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VoicemailPhase {
    Greeting,
    Recording,
}

#[derive(Debug)]
struct Voicemail {
    cfg: VoicemailConfig,
    phase: VoicemailPhase,
}

/// An inbound call's route state.
#[derive(Debug)]
pub(super) struct InboundCall {
    number: NumberConfig,
    caller: String,
    started: Instant,
    /// When ringing ended (an agent, voicemail, the caller hung up).
    ring_end: Option<Instant>,
    /// Our SDP (answer, or offer for an offerless INVITE) for the 200 sent on connect.
    sdp: SessionDescription,
    group: Option<RingGroup>,
    group_cfg: Option<RingGroupConfig>,
    /// Member legs: (leg, member index).
    pub(super) legs: Vec<(Uuid, usize)>,
    /// The leg that answered first, until connected.
    winner: Option<Uuid>,
    /// The agent's leg the caller is connected with.
    connected: Option<Uuid>,
    /// A connect waiting for the caller's media (offerless INVITE: the ACK brings the answer).
    pending_bridge: Option<(Uuid, bool)>,
    miss_reason: Option<MissReason>,
    voicemail: Option<Voicemail>,
    voicemail_id: Option<Uuid>,
    /// `number` hops taken by `on_no_answer`.
    hops: usize,
    /// An agent's call out through a trunk (see `agent_calls.rs`), not a call to a number.
    pub(super) agent_out: Option<super::agent_calls::AgentOut>,
}

impl InboundCall {
    pub(super) fn new(
        now: Instant,
        number: &NumberConfig,
        caller: String,
        closed: bool,
        sdp: SessionDescription,
    ) -> Self {
        Self {
            number: number.clone(),
            caller,
            started: now,
            ring_end: None,
            sdp,
            group: None,
            group_cfg: None,
            legs: Vec::new(),
            winner: None,
            connected: None,
            pending_bridge: None,
            miss_reason: closed.then_some(MissReason::Closed),
            voicemail: None,
            voicemail_id: None,
            hops: 0,
            agent_out: None,
        }
    }
}

impl CallEngine {
    /// The route a call to `number` runs now: `hours.closed` outside business hours (and
    /// whether it is closed), with `number` hops followed.
    pub(super) fn effective_route(
        &self,
        now: Instant,
        number: &NumberConfig,
    ) -> (RouteConfig, bool) {
        let mut closed = false;
        let mut route = number.route.clone();
        if let Some(h) = &number.hours {
            // Validated at load; an unparsable schedule counts as always open.
            if let Ok(s) = Schedule::parse(h)
                && !s.is_open(self.utc_at(now))
            {
                closed = true;
                route = (*h.closed).clone();
            }
        }
        (self.follow_hops(route), closed)
    }

    fn follow_hops(&self, mut route: RouteConfig) -> RouteConfig {
        for _ in 0..=crate::config::MAX_ROUTE_HOPS {
            match route {
                RouteConfig::Number { number } => match self.config.route(&number) {
                    Some(r) => route = r.clone(),
                    None => return RouteConfig::Reject { code: 404 },
                },
                r => return r,
            }
        }
        RouteConfig::Reject { code: 482 }
    }

    /// A rejected call to a tracked number: its outcome row and its missed call.
    pub(super) fn record_rejected_missed(
        &mut self,
        now: Instant,
        id: Uuid,
        number: &NumberConfig,
        caller: String,
        reason: MissReason,
    ) {
        self.actions
            .push_back(Action::Store(StoreOp::Inbound(InboundOp::Start {
                call_id: id,
                number: number.number.clone(),
                caller: caller.clone(),
                at: now,
            })));
        let followup = number
            .followup
            .as_ref()
            .map(|f| FollowupPlan::new(f, &caller, &number.number, reason));
        self.actions
            .push_back(Action::Store(StoreOp::Inbound(InboundOp::Missed {
                missed: Box::new(MissedCall {
                    call_id: id,
                    number: number.number.clone(),
                    caller,
                    reason,
                    ring_ms: 0,
                    voicemail_id: None,
                    followup,
                    status_callback: number.status_callback.clone(),
                }),
                at: now,
            })));
    }

    /// A tracked call was set up (early or answered): record it and run its route.
    pub(super) fn start_inbound(&mut self, now: Instant, id: Uuid, route: RouteConfig) {
        let Some(ib) = self.calls.get(&id).and_then(|c| c.inbound.as_ref()) else {
            return;
        };
        if ib.agent_out.is_none() {
            self.actions
                .push_back(Action::Store(StoreOp::Inbound(InboundOp::Start {
                    call_id: id,
                    number: ib.number.number.clone(),
                    caller: ib.caller.clone(),
                    at: now,
                })));
        }
        match route {
            RouteConfig::RingGroup(g) => {
                let media = self.calls.get(&id).is_some_and(|c| c.media_running);
                let prompt_first = media
                    && g.prompt
                        .as_ref()
                        .is_some_and(|p| self.prompts.contains_key(p));
                let group = RingGroup::new(
                    now,
                    g.members.len(),
                    g.strategy,
                    Duration::from_secs(g.member_timeout_secs),
                    Duration::from_secs(g.timeout_secs),
                );
                if let Some(ib) = self.inbound_mut(id) {
                    ib.group = Some(group);
                    ib.group_cfg = Some(g);
                }
                if !prompt_first {
                    self.start_ringing(now, id);
                }
            }
            RouteConfig::Voicemail(v) => {
                // Answered already, the greeting playing (set up as the leg's mode).
                if let Some(ib) = self.inbound_mut(id) {
                    ib.ring_end = Some(now);
                    if ib.miss_reason.is_none() {
                        ib.miss_reason = Some(MissReason::NoAgents);
                    }
                    ib.voicemail = Some(Voicemail {
                        cfg: v,
                        phase: VoicemailPhase::Greeting,
                    });
                }
            }
            _ => {
                // Echo or play on a tracked number (e.g. a closed-hours message): answered.
                if let Some(ib) = self.inbound_mut(id) {
                    ib.ring_end = Some(now);
                    if ib.miss_reason.is_none() {
                        ib.miss_reason = Some(MissReason::NoAgents);
                    }
                }
            }
        }
    }

    pub(super) fn inbound_mut(&mut self, id: Uuid) -> Option<&mut InboundCall> {
        self.calls
            .get_mut(&id)
            .and_then(|c| c.inbound.as_deref_mut())
    }

    /// Starts the group (after the prompt, if any): ringback plays, members ring.
    fn start_ringing(&mut self, now: Instant, id: Uuid) {
        let Some(ib) = self.inbound_mut(id) else {
            return;
        };
        let Some(group) = ib.group.as_mut() else {
            return;
        };
        group.start(now);
        let deadline = group.deadline();
        self.set_timer(id, deadline, TimerKind::Group);
        self.drive_group(now, id);
    }

    /// Carries out the group's actions.
    fn drive_group(&mut self, now: Instant, id: Uuid) {
        loop {
            let Some(action) = self
                .inbound_mut(id)
                .and_then(|ib| ib.group.as_mut())
                .and_then(RingGroup::poll_action)
            else {
                return;
            };
            match action {
                RingAction::Ring { member, until } => {
                    let name = self
                        .inbound_mut(id)
                        .and_then(|ib| ib.group_cfg.as_ref())
                        .and_then(|g| g.members.get(member).cloned())
                        .unwrap_or_default();
                    let in_order = self
                        .inbound_mut(id)
                        .and_then(|ib| ib.group_cfg.as_ref())
                        .is_some_and(|g| g.strategy == crate::config::RingStrategy::InOrder);
                    let agent_call = self
                        .inbound_mut(id)
                        .is_some_and(|ib| ib.agent_out.is_some());
                    let mut started = 0;
                    if agent_call && self.start_agent_leg(now, id, member) {
                        started += 1;
                    }
                    let targets = if agent_call {
                        Vec::new()
                    } else {
                        self.resolve_member(now, &name)
                    };
                    for (target, transport) in targets {
                        if self.start_member_leg(
                            now,
                            id,
                            member,
                            &name,
                            &target,
                            transport,
                            in_order.then_some(until),
                        ) {
                            started += 1;
                        }
                    }
                    if let Some(g) = self.inbound_mut(id).and_then(|ib| ib.group.as_mut()) {
                        g.legs_started(now, member, started);
                    }
                }
                RingAction::Cancel { member } => {
                    let legs: Vec<Uuid> = self
                        .inbound_mut(id)
                        .map(|ib| {
                            ib.legs
                                .iter()
                                .filter(|(_, m)| *m == member)
                                .map(|(l, _)| *l)
                                .collect()
                        })
                        .unwrap_or_default();
                    for leg in legs {
                        let answered = self.calls.get(&leg).is_some_and(|c| c.answered);
                        if answered {
                            continue;
                        }
                        self.give_up_ringing(
                            now,
                            leg,
                            EndInfo::new(
                                FinalStatus::Canceled,
                                Some(487),
                                "ring group: answered elsewhere or gave up",
                                EndedBy::System,
                            ),
                        );
                    }
                }
                RingAction::Connect { member } => self.connect(now, id, member),
                RingAction::NoAnswer(reason) => self.on_group_no_answer(now, id, reason),
            }
        }
    }

    /// Where a member rings: a static URI, or every live registered contact of the agent of
    /// that name (none when it is not registered: the member is skipped).
    pub(super) fn resolve_member(
        &self,
        now: Instant,
        name: &str,
    ) -> Vec<(StaticTarget, Transport)> {
        if name.starts_with("sip:") {
            return StaticTarget::parse(name)
                .map(|t| vec![(t, Transport::Udp)])
                .unwrap_or_default();
        }
        self.registrar
            .bindings(name, now)
            .map(|b| {
                let uri = b
                    .contact
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                (
                    StaticTarget {
                        uri,
                        addr: b.target,
                    },
                    b.transport,
                )
            })
            .collect()
    }

    /// Sends an INVITE to one contact of a member; false if it could not be sent.
    #[allow(clippy::too_many_arguments)]
    fn start_member_leg(
        &mut self,
        now: Instant,
        caller_id: Uuid,
        member: usize,
        name: &str,
        target: &StaticTarget,
        transport: Transport,
        until: Option<Instant>,
    ) -> bool {
        if !self.accepting || self.calls.len() >= self.cfg.max_calls {
            return false;
        }
        let Some((caller, callback)) = self.calls.get(&caller_id).and_then(|c| {
            c.inbound
                .as_ref()
                .map(|ib| (ib.caller.clone(), c.callback.clone()))
        }) else {
            return false;
        };
        let Some(leg) = self.new_leg() else {
            return false;
        };
        let from_user = if caller.starts_with('+') {
            caller.as_str()
        } else {
            "trunkline"
        };
        let from_uri = format!("sip:{from_user}@{}", self.cfg.sip_addr.ip());
        let Some(invite) = self.invite_request(&target.uri, &from_uri, &leg, transport) else {
            self.ports.release(leg.port);
            return false;
        };
        let key = match self
            .layer
            .send_request(now, target.addr, transport, invite.clone())
        {
            Ok(k) => k,
            Err(_) => {
                self.ports.release(leg.port);
                return false;
            }
        };
        let id = self.new_call_id();
        let row = NewCall {
            id,
            direction: Direction::Outbound,
            from: caller,
            to: target.uri.clone(),
            trunk: None,
            sip_call_id: Some(leg.sip_call_id.clone()),
            status: CallStatus::Initiated,
            status_callback: callback.clone(),
            metadata: serde_json::json!({ "inbound_call_id": caller_id, "member": name }),
            idempotency_key: None,
            api_key_id: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        self.actions.push_back(Action::Store(StoreOp::Insert {
            call: Box::new(row),
            at: now,
        }));
        self.by_txn.insert(key.clone(), (id, TxnRole::Invite));
        self.by_sip_call_id.insert(leg.sip_call_id.clone(), id);
        self.calls.insert(
            id,
            Call {
                member_of: Some((caller_id, member)),
                ..Call::outbound(id, leg, target.addr, transport, invite, key, callback)
            },
        );
        if let Some(until) = until {
            self.set_timer(id, until, TimerKind::Ring);
        }
        if let Some(ib) = self.inbound_mut(caller_id) {
            ib.legs.push((id, member));
        }
        true
    }

    /// A member's leg answered (after its media started): the first wins, a late one is hung up.
    pub(super) fn on_member_answered(&mut self, now: Instant, leg: Uuid) {
        let Some((caller, member)) = self.calls.get(&leg).and_then(|c| c.member_of) else {
            return;
        };
        let won = match self.inbound_mut(caller) {
            Some(ib) => {
                let won = ib.group.as_mut().is_some_and(|g| g.answered(now, member));
                if won {
                    ib.winner = Some(leg);
                }
                won
            }
            None => false,
        };
        if won {
            self.drive_group(now, caller);
        } else {
            self.end_call(
                now,
                leg,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    "ring group: answered elsewhere",
                    EndedBy::System,
                ),
            );
        }
    }

    /// Answers the caller's INVITE (200 with our SDP) if not yet answered.
    fn answer_caller(&mut self, now: Instant, id: Uuid) {
        let contact = match self.calls.get(&id) {
            Some(c) if !c.answered && c.end.is_none() => self.contact(c.transport),
            _ => return,
        };
        let user_agent = self.cfg.user_agent.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(ib) = call.inbound.as_deref_mut() else {
            return;
        };
        let tag = call.dialog.as_ref().map(|d| d.id.local_tag.clone());
        let mut ok = response_to(&call.invite, 200, None, tag.as_deref());
        ok.headers.insert_named(&contact);
        ok.headers.insert(Name::ALLOW, ALLOW);
        ok.headers.insert(Name::SERVER, user_agent);
        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        ok.body = ib.sdp.to_bytes().into();
        if ib.ring_end.is_none() {
            ib.ring_end = Some(now);
        }
        call.answered = true;
        let key = call.invite_key.clone();
        self.respond(now, &key, ok);
        self.actions.push_back(Action::Store(StoreOp::Answered {
            call_id: id,
            at: now,
        }));
    }

    /// The winner answered: the caller is answered and bridged with it.
    fn connect(&mut self, now: Instant, id: Uuid, member: usize) {
        let Some(ib) = self.inbound_mut(id) else {
            return;
        };
        let Some(leg) = ib.winner.take() else {
            return;
        };
        ib.connected = Some(leg);
        ib.miss_reason = None;
        let record = ib.group_cfg.as_ref().is_some_and(|g| g.record);
        let agent = ib
            .group_cfg
            .as_ref()
            .and_then(|g| g.members.get(member).cloned())
            .unwrap_or_default();
        let agent_call = ib.agent_out.is_some();
        self.ring_deadline.remove(&id);
        self.answer_caller(now, id);
        if !agent_call {
            self.actions
                .push_back(Action::Store(StoreOp::Inbound(InboundOp::Connected {
                    call_id: id,
                    agent,
                    at: now,
                })));
        }
        let caller_media = self.calls.get(&id).is_some_and(|c| c.media_running);
        if caller_media {
            self.bridge_caller(now, id, leg, record);
        } else if let Some(ib) = self.inbound_mut(id) {
            ib.pending_bridge = Some((leg, record));
        }
    }

    fn bridge_caller(&mut self, now: Instant, id: Uuid, leg: Uuid, record: bool) {
        self.actions
            .push_back(Action::Media(MediaCommand::StopPlay { call_id: id }));
        match self.bridge(now, id, leg) {
            Ok(room) => {
                if record {
                    let rec = self.mint_id(now);
                    let callback = self.calls.get(&id).and_then(|c| c.callback.clone());
                    self.start_recording_inner(
                        now,
                        rec,
                        RecordTarget::Room {
                            room_id: room.id,
                            left: id,
                        },
                        callback,
                    );
                }
            }
            Err(e) => {
                let info = EndInfo::new(
                    FinalStatus::Failed,
                    None,
                    format!("cannot bridge the caller with the agent: {e}"),
                    EndedBy::System,
                );
                self.end_call(now, leg, info.clone());
                self.end_call(now, id, info);
            }
        }
    }

    /// The caller's media started late (offerless INVITE, answer in the ACK).
    pub(super) fn on_inbound_media_started(&mut self, now: Instant, id: Uuid) {
        if let Some((leg, record)) = self.inbound_mut(id).and_then(|ib| ib.pending_bridge.take()) {
            self.bridge_caller(now, id, leg, record);
        }
    }

    /// A member leg ended (not connected): the group learns it.
    pub(super) fn on_member_leg_ended(
        &mut self,
        now: Instant,
        caller: Uuid,
        member: usize,
        leg: Uuid,
        status: FinalStatus,
        code: Option<u16>,
    ) {
        let Some(ib) = self.inbound_mut(caller) else {
            return;
        };
        ib.legs.retain(|(l, _)| *l != leg);
        if ib.connected == Some(leg) {
            return;
        }
        if let Some(out) = ib.agent_out.as_mut() {
            out.last_end = Some((status, code));
        }
        let busy = status == FinalStatus::Busy;
        if let Some(g) = ib.group.as_mut() {
            g.leg_ended(now, member, busy);
        }
        self.drive_group(now, caller);
    }

    /// A member leg's own ring time (in order) ran out; true if `leg` is a member leg.
    pub(super) fn on_member_timeout(&mut self, now: Instant, leg: Uuid) -> bool {
        let Some((caller, member)) = self.calls.get(&leg).and_then(|c| c.member_of) else {
            return false;
        };
        if let Some(g) = self.inbound_mut(caller).and_then(|ib| ib.group.as_mut()) {
            g.member_timeout(now, member);
            self.drive_group(now, caller);
        } else {
            self.give_up_ringing(
                now,
                leg,
                EndInfo::new(
                    FinalStatus::NoAnswer,
                    Some(487),
                    "ring timeout",
                    EndedBy::System,
                ),
            );
        }
        true
    }

    /// The group's total ring time ran out.
    pub(super) fn on_group_timeout(&mut self, now: Instant, id: Uuid) {
        if let Some(g) = self.inbound_mut(id).and_then(|ib| ib.group.as_mut()) {
            g.timeout(now);
        }
        self.drive_group(now, id);
    }

    /// Nobody answered: `on_no_answer`, or 480.
    fn on_group_no_answer(&mut self, now: Instant, id: Uuid, reason: MissReason) {
        let Some(ib) = self.inbound_mut(id) else {
            return;
        };
        if let Some(out) = ib.agent_out.clone() {
            ib.ring_end = Some(now);
            self.ring_deadline.remove(&id);
            self.agent_call_failed(now, id, &out);
            return;
        }
        ib.miss_reason = Some(reason);
        ib.ring_end = Some(now);
        ib.hops += 1;
        let hops = ib.hops;
        let next = ib
            .group_cfg
            .as_ref()
            .and_then(|g| g.on_no_answer.as_deref().cloned());
        self.ring_deadline.remove(&id);
        let route = next.map(|r| self.follow_hops(r));
        let status = if reason == MissReason::Busy {
            FinalStatus::Busy
        } else {
            FinalStatus::NoAnswer
        };
        match route {
            Some(RouteConfig::Voicemail(v)) => self.start_voicemail(now, id, v),
            Some(RouteConfig::Play { prompt, repeat }) if self.prompts.contains_key(&prompt) => {
                let p = self.prompts[&prompt].clone();
                self.answer_caller(now, id);
                if let Some(c) = self.calls.get_mut(&id) {
                    c.route_mode = Some(LegMode::Play {
                        prompt: p.clone(),
                        repeat,
                    });
                    if c.media_running {
                        self.actions.push_back(Action::Media(MediaCommand::Play {
                            call_id: id,
                            prompt: p,
                            repeat,
                        }));
                    }
                }
            }
            Some(RouteConfig::RingGroup(g)) if hops <= crate::config::MAX_ROUTE_HOPS => {
                // A group reached through `number` (validated not to loop).
                let group = RingGroup::new(
                    now,
                    g.members.len(),
                    g.strategy,
                    Duration::from_secs(g.member_timeout_secs),
                    Duration::from_secs(g.timeout_secs),
                );
                if let Some(ib) = self.inbound_mut(id) {
                    ib.group = Some(group);
                    ib.group_cfg = Some(g);
                    ib.ring_end = None;
                }
                self.start_ringing(now, id);
            }
            Some(RouteConfig::Reject { code }) => self.end_call(
                now,
                id,
                EndInfo::new(
                    status,
                    Some(code),
                    "ring group: nobody answered",
                    EndedBy::System,
                ),
            ),
            _ => {
                let code = if reason == MissReason::Busy { 486 } else { 480 };
                self.end_call(
                    now,
                    id,
                    EndInfo::new(
                        status,
                        Some(code),
                        "ring group: nobody answered",
                        EndedBy::System,
                    ),
                );
            }
        }
    }

    /// Answers the caller and plays the greeting and beep; the recording starts after them.
    fn start_voicemail(&mut self, now: Instant, id: Uuid, v: VoicemailConfig) {
        let prompt = crate::inbound::tones::greeting_with_beep(
            v.greeting.as_ref().and_then(|g| self.prompts.get(g)),
        );
        self.answer_caller(now, id);
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.media_running {
            self.actions.push_back(Action::Media(MediaCommand::Play {
                call_id: id,
                prompt,
                repeat: false,
            }));
        } else {
            c.route_mode = Some(LegMode::Play {
                prompt,
                repeat: false,
            });
        }
        if let Some(ib) = c.inbound.as_deref_mut() {
            ib.voicemail = Some(Voicemail {
                cfg: v,
                phase: VoicemailPhase::Greeting,
            });
        }
    }

    /// A prompt ended on a tracked call: the group's prompt (ringing starts) or the voicemail
    /// greeting (recording starts). False if it is neither.
    pub(super) fn inbound_play_finished(&mut self, now: Instant, id: Uuid) -> bool {
        let Some(c) = self.calls.get(&id) else {
            return false;
        };
        if c.end.is_some() {
            return false;
        }
        let Some(ib) = c.inbound.as_deref() else {
            return false;
        };
        if let Some(vm) = &ib.voicemail {
            if vm.phase != VoicemailPhase::Greeting {
                return false;
            }
            let (max, silence) = (
                Duration::from_secs(vm.cfg.max_secs),
                Duration::from_secs(vm.cfg.silence_secs),
            );
            let (number, caller) = (ib.number.number.clone(), ib.caller.clone());
            let callback = c.callback.clone();
            let rec = self.mint_id(now);
            self.start_recording_inner(now, rec, RecordTarget::Call(id), callback.clone());
            self.actions
                .push_back(Action::Media(MediaCommand::WatchSilence {
                    call_id: id,
                    after: silence,
                }));
            self.set_timer(id, now + max, TimerKind::Voicemail);
            self.voicemails.insert(rec, (id, number, caller, callback));
            if let Some(ib) = self.inbound_mut(id) {
                ib.voicemail_id = Some(rec);
                if let Some(vm) = ib.voicemail.as_mut() {
                    vm.phase = VoicemailPhase::Recording;
                }
            }
            return true;
        }
        let waiting = ib.group.is_some() && ib.ring_end.is_none() && ib.connected.is_none();
        if waiting && !c.answered {
            // The group's prompt ended: ringback, and the members ring.
            let ringback = self.ringback.clone();
            self.actions.push_back(Action::Media(MediaCommand::Play {
                call_id: id,
                prompt: ringback,
                repeat: true,
            }));
            self.start_ringing(now, id);
            return true;
        }
        false
    }

    fn recording_voicemail(&self, id: Uuid) -> bool {
        self.calls
            .get(&id)
            .and_then(|c| c.inbound.as_deref())
            .and_then(|ib| ib.voicemail.as_ref())
            .is_some_and(|vm| vm.phase == VoicemailPhase::Recording)
    }

    /// Silence from the caller while recording a message ends it.
    pub(super) fn on_voicemail_silence(&mut self, now: Instant, id: Uuid) {
        if self.recording_voicemail(id) {
            self.end_call(
                now,
                id,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    "voicemail: the caller went silent",
                    EndedBy::System,
                ),
            );
        }
    }

    /// `#` while recording a message ends it.
    pub(super) fn on_inbound_dtmf(&mut self, now: Instant, id: Uuid, digit: char) {
        if digit == '#' && self.recording_voicemail(id) {
            self.end_call(
                now,
                id,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    "voicemail: the caller pressed #",
                    EndedBy::Caller,
                ),
            );
        }
    }

    /// A voicemail recording is finished: `voicemail.created`.
    pub(super) fn on_voicemail_recorded(
        &mut self,
        now: Instant,
        recording_id: Uuid,
        duration_ms: u64,
        failed: bool,
    ) {
        let Some((call_id, number, caller, callback)) = self.voicemails.remove(&recording_id)
        else {
            return;
        };
        if failed {
            return;
        }
        // The call may have ended already (its final status written): the event carries its
        // own webhook URL rather than the call row's.
        self.actions
            .push_back(Action::Store(StoreOp::Inbound(InboundOp::Voicemail {
                call_id,
                payload: serde_json::json!({
                    "recording_id": recording_id,
                    "call_id": call_id,
                    "number": number,
                    "caller": caller,
                    "duration_ms": duration_ms,
                }),
                callback,
                at: now,
            })));
    }

    /// The caller's call is ending: a group still ringing is cancelled.
    pub(super) fn on_inbound_ending(&mut self, now: Instant, id: Uuid) {
        let Some(ib) = self.inbound_mut(id) else {
            return;
        };
        if ib.ring_end.is_none() {
            ib.ring_end = Some(now);
        }
        let ringing = ib.group.as_ref().is_some_and(|g| !g.is_finished());
        if let Some(g) = ib.group.as_mut() {
            g.caller_gone(now);
        }
        // A winner not yet connected is hung up with the others.
        let winner = ib.winner.take();
        if ringing {
            self.drive_group(now, id);
        }
        if let Some(w) = winner {
            self.end_call(
                now,
                w,
                EndInfo::new(
                    FinalStatus::Completed,
                    None,
                    "the caller hung up",
                    EndedBy::System,
                ),
            );
        }
    }

    /// Shutdown: tracked calls not yet decided get the reason `restart` (the server stopped
    /// while they rang), as the sweeper would give them after a crash.
    pub(super) fn mark_ringing_missed_by_restart(&mut self) {
        for c in self.calls.values_mut() {
            if let Some(ib) = c.inbound.as_deref_mut()
                && ib.connected.is_none()
                && ib.miss_reason.is_none()
            {
                ib.miss_reason = Some(MissReason::Restart);
            }
        }
    }

    /// The missed-call decision of an ending tracked call (`ib` is its state).
    pub(super) fn decide_missed(&mut self, now: Instant, id: Uuid, ib: &InboundCall) {
        if ib.connected.is_some() || ib.agent_out.is_some() {
            return;
        }
        let reason = ib.miss_reason.unwrap_or(MissReason::CallerHangup);
        let ring_end = ib.ring_end.unwrap_or(now);
        let ring_ms = i64::try_from(ring_end.saturating_duration_since(ib.started).as_millis())
            .unwrap_or(i64::MAX);
        let followup = ib
            .number
            .followup
            .as_ref()
            .map(|f| FollowupPlan::new(f, &ib.caller, &ib.number.number, reason));
        self.actions
            .push_back(Action::Store(StoreOp::Inbound(InboundOp::Missed {
                missed: Box::new(MissedCall {
                    call_id: id,
                    number: ib.number.number.clone(),
                    caller: ib.caller.clone(),
                    reason,
                    ring_ms,
                    voicemail_id: ib.voicemail_id,
                    followup,
                    status_callback: ib.number.status_callback.clone(),
                }),
                at: now,
            })));
    }
}
