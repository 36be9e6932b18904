//! Server transactions (pure): INVITE (RFC 3261 sec. 17.2.1 with RFC 6026's Accepted state),
//! non-INVITE (sec. 17.2.2), and CANCEL handling (sec. 9.2).
//!
//! INVITE: Proceeding (100 Trying sent at once; retransmitted INVITEs get the last provisional)
//! -> Completed on a 300-699 from the TU (Timer G from T1 doubling to T2 on UDP, Timer H =
//! 64*T1) -> Confirmed on ACK (Timer I = T4 on UDP, 0 on TCP); or Accepted on a 2xx (Timer L =
//! 64*T1; INVITE retransmissions absorbed; the 2xx resent from T1 doubling to T2 on UDP until
//! its ACK, sec. 13.3.1.4). Non-INVITE: Trying -> Proceeding on 1xx -> Completed on a final
//! (Timer J = 64*T1 on UDP, 0 on TCP); retransmissions get the last response again.

use super::key::{self, TransactionKey};
use super::message::{Request, Response};
use super::{
    State, Timer, Transaction, TransactionError, TransactionEvent, TransactionLayer, Transport,
    checked_code, is_invite, service_unavailable,
};
use bytes::Bytes;
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::StatusCode;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::Via;
use ezk_sip_types::print::AppendCtx;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl TransactionLayer {
    /// Sends `response` in the server transaction `key` and advances it (sec. 17.2.1, 17.2.2):
    /// a 1xx keeps it proceeding, a 2xx to an INVITE moves it to Accepted (and may be sent
    /// again there), any other final completes it.
    ///
    /// Returns [`TransactionError::InvalidState`] for a response after a non-2xx final (or,
    /// for INVITE, anything but a 2xx after a 2xx), and
    /// [`TransactionError::UnknownTransaction`] once the transaction ended.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Response,
    ) -> Result<(), TransactionError> {
        let code = checked_code(&response)?;
        let id = *self
            .index
            .get(key)
            .filter(|_| key.role == super::Role::Server)
            .ok_or_else(|| TransactionError::UnknownTransaction(key.clone()))?;
        let Some(txn) = self.transactions.get_mut(&id) else {
            return Err(TransactionError::UnknownTransaction(key.clone()));
        };
        let timers = self.config.timers;
        let transport = txn.transport;
        let peer = txn.peer;
        match (txn.invite, txn.state, code) {
            (_, State::Trying | State::Proceeding, 100..=199) => {
                txn.state = State::Proceeding;
            }
            (true, State::Proceeding, 200..=299) => {
                txn.state = State::Accepted;
                if let (Some(call_id), Some(cseq)) = (
                    key::call_id(&txn.request.headers),
                    key::cseq(&txn.request.headers),
                ) {
                    let dc = (call_id, cseq.cseq);
                    txn.dialog_cseq = Some(dc.clone());
                    self.accepted.insert(dc, id);
                }
                if !transport.is_reliable() {
                    self.set_retransmit(id, now + timers.t1, timers.t1, Timer::Retransmit2xx);
                }
                self.set_timeout(id, now + timers.timeout_64_t1(), Timer::L);
            }
            (true, State::Accepted, 200..=299) => {}
            (true, State::Proceeding, _) => {
                txn.state = State::Completed;
                if !transport.is_reliable() {
                    self.set_retransmit(id, now + timers.t1, timers.t1, Timer::G);
                }
                self.set_timeout(id, now + timers.timeout_64_t1(), Timer::H);
            }
            (false, State::Trying | State::Proceeding, _) => {
                txn.state = State::Completed;
                self.set_timeout(id, now + timers.timer_j(transport), Timer::J);
            }
            _ => return Err(TransactionError::InvalidState),
        }
        let bytes = response.to_bytes();
        if let Some(txn) = self.transactions.get_mut(&id) {
            if txn.to_tag.is_none() && code > 100 {
                txn.to_tag = key::to_tag(&response.headers);
            }
            txn.last_bytes = Some(bytes.clone());
        }
        self.transmit(peer, transport, bytes);
        self.prune_timers();
        Ok(())
    }

    /// Ends the transaction `key` at once, without sending anything (e.g. a client INVITE
    /// stuck in Proceeding whose CANCEL got no answer). Returns whether it existed.
    pub fn abandon(&mut self, key: &TransactionKey) -> bool {
        match self.index.get(key).copied() {
            Some(id) => {
                self.terminate(id);
                self.prune_timers();
                true
            }
            None => false,
        }
    }

    /// A request arrived: match it to a server transaction (sec. 17.2.3) or start one.
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        request: Request,
    ) {
        let is_ack = request.line.method == Method::ACK;
        // CSeq and Call-ID are parsed (the layer uses them); From and To only need to be
        // present here, their syntax matters to the dialog layer, which reports it.
        let complete = key::cseq(&request.headers).is_some()
            && key::call_id(&request.headers).is_some()
            && key::has_header(&request.headers, &Name::FROM)
            && key::has_header(&request.headers, &Name::TO);
        let key = match TransactionKey::for_incoming_request(&request) {
            Some(key) if complete => key,
            _ => {
                self.stats.malformed_requests += 1;
                if !is_ack && key::top_via(&request.headers).is_some() {
                    let response = Response::for_request(StatusCode::BAD_REQUEST, &request, None);
                    self.send_stateless_response(from, transport, &response);
                }
                return;
            }
        };
        if is_ack {
            self.on_ack(now, from, transport, key, request);
            return;
        }
        if let Some(&id) = self.index.get(&key) {
            self.on_retransmitted_request(id);
            return;
        }
        let mut request = request;
        stamp_received(&mut request, from);
        if self.at_capacity() {
            self.stats.rejected_capacity += 1;
            let response = service_unavailable(&request);
            self.send_stateless_response(from, transport, &response);
            return;
        }
        if request.line.method == Method::CANCEL {
            self.on_cancel(now, from, transport, key, request);
            return;
        }
        let invite = is_invite(&request.line.method);
        let mut txn = Transaction {
            key: key.clone(),
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            invite,
            transport,
            peer: from,
            request,
            request_bytes: Bytes::new(),
            last_bytes: None,
            to_tag: None,
            acked: false,
            dialog_cseq: None,
            retransmit: None,
            timeout: None,
        };
        if invite {
            let trying = Response::for_request(StatusCode::TRYING, &txn.request, None).to_bytes();
            txn.last_bytes = Some(trying.clone());
            self.transmit(from, transport, trying);
        }
        let request = txn.request.clone();
        self.insert(txn);
        self.events.push_back(TransactionEvent::IncomingRequest {
            key,
            request,
            source: from,
            transport,
        });
    }

    /// A retransmitted request (not ACK) for a live server transaction: resend what we last
    /// sent when the state says so, never pass it up.
    fn on_retransmitted_request(&mut self, id: u64) {
        self.stats.absorbed_requests += 1;
        let Some(txn) = self.transactions.get(&id) else {
            return;
        };
        let resend = match txn.state {
            // INVITE: last provisional (Proceeding) or the final (Completed). Accepted and
            // Confirmed absorb silently (RFC 6026 sec. 7.1). Non-INVITE: nothing in Trying.
            State::Proceeding | State::Completed => txn.last_bytes.clone(),
            _ => None,
        };
        if let Some(bytes) = resend {
            let (peer, transport) = (txn.peer, txn.transport);
            self.transmit(peer, transport, bytes);
        }
    }

    /// An ACK: confirms a Completed INVITE transaction, or is an ACK for a 2xx (passed up).
    fn on_ack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        key: TransactionKey,
        request: Request,
    ) {
        if let Some(&id) = self.index.get(&key) {
            if let Some(txn) = self.transactions.get_mut(&id) {
                match txn.state {
                    State::Completed => {
                        txn.state = State::Confirmed;
                        txn.retransmit = None;
                        let wait = self.config.timers.timer_t4(txn.transport);
                        self.set_timeout(id, now + wait, Timer::I);
                        self.prune_timers();
                        return;
                    }
                    State::Confirmed => {
                        self.stats.absorbed_requests += 1;
                        return;
                    }
                    _ => {}
                }
            }
        }
        // An ACK for a 2xx: stop our 2xx retransmissions and hand it to the dialog layer.
        if let (Some(call_id), Some(cseq)) =
            (key::call_id(&request.headers), key::cseq(&request.headers))
        {
            if let Some(&id) = self.accepted.get(&(call_id, cseq.cseq)) {
                if let Some(txn) = self.transactions.get_mut(&id) {
                    txn.acked = true;
                    txn.retransmit = None;
                }
                self.prune_timers();
            }
        }
        self.stats.stray_acks += 1;
        self.events.push_back(TransactionEvent::StrayAck {
            request,
            source: from,
            transport,
        });
    }

    /// A new CANCEL (sec. 9.2): 200 and 487 when it matches a pending INVITE, 481 otherwise.
    fn on_cancel(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        key: TransactionKey,
        request: Request,
    ) {
        let invite_key = key.with_method(Method::INVITE);
        let invite_id = self.index.get(&invite_key).copied();
        let invite_tag = invite_id
            .and_then(|id| self.transactions.get(&id))
            .map(|txn| txn.to_tag.clone());
        // The CANCEL's own non-INVITE server transaction absorbs its retransmissions.
        let id = self.insert(Transaction {
            key: key.clone(),
            state: State::Trying,
            invite: false,
            transport,
            peer: from,
            request,
            request_bytes: Bytes::new(),
            last_bytes: None,
            to_tag: None,
            acked: false,
            dialog_cseq: None,
            retransmit: None,
            timeout: None,
        });
        let (code, tag) = match invite_tag {
            Some(Some(tag)) => (StatusCode::OK, tag),
            Some(None) => {
                let tag = self.new_tag();
                if let Some(txn) = invite_id.and_then(|i| self.transactions.get_mut(&i)) {
                    txn.to_tag = Some(tag.clone());
                }
                (StatusCode::OK, tag)
            }
            None => (
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
                self.new_tag(),
            ),
        };
        let response = match self.transactions.get(&id) {
            Some(txn) => Response::for_request(code, &txn.request, Some(&tag)),
            None => return,
        };
        // Cannot fail: the transaction was just created in Trying.
        let _ = self.send_response(now, &key, response);
        let Some(invite_id) = invite_id else {
            return;
        };
        let pending = self
            .transactions
            .get(&invite_id)
            .filter(|txn| txn.state == State::Proceeding)
            .map(|txn| {
                Response::for_request(StatusCode::REQUEST_TERMINATED, &txn.request, Some(&tag))
            });
        if let Some(terminated) = pending {
            let _ = self.send_response(now, &invite_key, terminated);
            self.events
                .push_back(TransactionEvent::Cancelled { key: invite_key });
        }
    }

    /// Timer G or the 2xx retransmit timer fired at `at`.
    pub(super) fn server_retransmit(
        &mut self,
        at: Instant,
        id: u64,
        interval: Duration,
        timer: Timer,
    ) {
        let Some(txn) = self.transactions.get_mut(&id) else {
            return;
        };
        let due = match (timer, txn.state) {
            (Timer::G, State::Completed) => true,
            (Timer::Retransmit2xx, State::Accepted) => !txn.acked,
            _ => false,
        };
        let Some(bytes) = txn.last_bytes.clone().filter(|_| due) else {
            txn.retransmit = None;
            return;
        };
        let (peer, transport) = (txn.peer, txn.transport);
        self.stats.retransmissions += 1;
        self.transmit(peer, transport, bytes);
        let next = self.config.timers.next_capped(interval);
        self.set_retransmit(id, at + next, next, timer);
    }
}

/// Notes in the top Via where a new request really came from (sec. 18.2.1, RFC 3581): adds
/// `received` when the source IP differs from the sent-by or `rport` was asked for, and fills
/// `rport` with the source port. Responses copy this Via, so the peer sees its public address.
/// A first Via value holding a comma-separated list is left alone.
fn stamp_received(request: &mut Request, from: SocketAddr) {
    let mut values: Vec<_> = request.headers.get_raw(&Name::VIA).cloned().collect();
    let Some(first) = values.first() else {
        return;
    };
    let Ok((rest, mut via)) = Via::parse(first.as_ref(), first.as_str()) else {
        return;
    };
    if !rest.trim().is_empty() {
        return;
    }
    let wants_rport = via.params.get("rport").is_some();
    if !wants_rport && via.sent_by.ip() == Some(from.ip()) {
        return;
    }
    via.params.push_or_edit("received", from.ip().to_string());
    if wants_rport {
        via.params.push_or_edit("rport", from.port().to_string());
    }
    values[0] = via.default_print_ctx().to_string().into();
    request.headers.remove(&Name::VIA);
    let mut values = values.into_iter();
    if let Some(top) = values.next() {
        request.headers.insert_front(Name::VIA, top);
    }
    for value in values {
        request.headers.insert(Name::VIA, value);
    }
}
