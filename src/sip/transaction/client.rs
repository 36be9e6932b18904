//! Client transactions (pure): INVITE (RFC 3261 sec. 17.1.1 with RFC 6026's Accepted state)
//! and non-INVITE (sec. 17.1.2), plus building CANCEL for a pending INVITE (sec. 9.1).
//!
//! INVITE: Calling (Timer A from T1, doubling without cap, UDP only; Timer B = 64*T1) ->
//! Proceeding on 1xx -> Completed on 300-699 (ACK sent by the layer, Timer D) or Accepted on
//! 2xx (Timer M = 64*T1, every 2xx passed up). Non-INVITE: Trying (Timer E from T1 doubling to
//! T2, UDP only; Timer F = 64*T1) -> Proceeding on 1xx (E at T2) -> Completed on a final
//! (Timer K = T4 on UDP, 0 on TCP).

use super::key::{self, Role, TransactionKey};
use super::message::{Request, Response};
use super::{
    State, Timer, Transaction, TransactionError, TransactionEvent, TransactionLayer, Transport,
    is_invite,
};
use bytes::Bytes;
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::header::typed::{CSeq, MaxForwards};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl TransactionLayer {
    /// Starts a client transaction for `request` toward `destination`, sends it, and returns its
    /// key. Adds our top Via with a fresh branch if the request has none (or a branch to a
    /// top Via without one). The request must carry a CSeq whose method is the request's.
    ///
    /// ACK is refused ([`TransactionError::AckNotATransaction`]): an ACK for a 2xx goes through
    /// [`send_stateless_request`](Self::send_stateless_request), the one for a non-2xx is sent
    /// by the layer.
    pub fn send_request(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        transport: Transport,
        mut request: Request,
    ) -> Result<TransactionKey, TransactionError> {
        let method = request.line.method.clone();
        if method == Method::ACK {
            return Err(TransactionError::AckNotATransaction);
        }
        match key::cseq(&request.headers) {
            Some(cseq) if cseq.method == method => {}
            _ => return Err(TransactionError::MissingHeader("CSeq")),
        }
        if self.at_capacity() {
            self.stats.rejected_capacity += 1;
            return Err(TransactionError::Capacity(self.config.max_transactions));
        }
        let branch = self.ensure_via(transport, &mut request);
        let key = TransactionKey {
            role: Role::Client,
            branch,
            sent_by: String::new(),
            method: method.clone(),
        };
        if self.index.contains_key(&key) {
            return Err(TransactionError::Duplicate(key));
        }
        let invite = is_invite(&method);
        let request_bytes = request.to_bytes();
        self.transmit(destination, transport, request_bytes.clone());
        let id = self.insert(Transaction {
            key: key.clone(),
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            invite,
            transport,
            peer: destination,
            request,
            request_bytes,
            last_bytes: None,
            to_tag: None,
            acked: false,
            dialog_cseq: None,
            retransmit: None,
            timeout: None,
        });
        let timers = self.config.timers;
        if !transport.is_reliable() {
            let timer = if invite { Timer::A } else { Timer::E };
            self.set_retransmit(id, now + timers.t1, timers.t1, timer);
        }
        let timer = if invite { Timer::B } else { Timer::F };
        self.set_timeout(id, now + timers.timeout_64_t1(), timer);
        Ok(key)
    }

    /// Builds the CANCEL for the client INVITE transaction `invite` (sec. 9.1): same
    /// Request-URI, Call-ID, From, To, CSeq number and top Via (so the same branch), Route
    /// headers copied. Sec. 9.1 forbids sending it before a provisional response arrived, so
    /// it is refused ([`TransactionError::InvalidState`]) in Calling and after a final response.
    pub fn create_cancel(&self, invite: &TransactionKey) -> Result<Request, TransactionError> {
        let txn = self
            .index
            .get(invite)
            .and_then(|id| self.transactions.get(id))
            .ok_or_else(|| TransactionError::UnknownTransaction(invite.clone()))?;
        if invite.role != Role::Client || !txn.invite || txn.state != State::Proceeding {
            return Err(TransactionError::InvalidState);
        }
        let original = &txn.request;
        let mut cancel = Request::new(Method::CANCEL, original.line.uri.clone());
        let via = key::top_via(&original.headers).ok_or(TransactionError::MissingHeader("Via"))?;
        cancel.headers.insert_named(&via);
        for name in [Name::FROM, Name::TO, Name::CALL_ID] {
            original
                .headers
                .clone_into(&mut cancel.headers, name)
                .map_err(|_| TransactionError::MissingHeader("From, To or Call-ID"))?;
        }
        let cseq = key::cseq(&original.headers).ok_or(TransactionError::MissingHeader("CSeq"))?;
        cancel
            .headers
            .insert_named(&CSeq::new(cseq.cseq, Method::CANCEL));
        let _ = original
            .headers
            .clone_into(&mut cancel.headers, Name::ROUTE);
        cancel.headers.insert_named(&MaxForwards(70));
        Ok(cancel)
    }

    /// Builds the CANCEL of `invite` ([`create_cancel`](Self::create_cancel)) and sends it in
    /// its own client transaction to the INVITE's destination; returns the CANCEL's key. The
    /// INVITE then normally ends with a 487, passed up as a [`TransactionEvent::Response`].
    pub fn send_cancel(
        &mut self,
        now: Instant,
        invite: &TransactionKey,
    ) -> Result<TransactionKey, TransactionError> {
        let cancel = self.create_cancel(invite)?;
        let (peer, transport) = self
            .index
            .get(invite)
            .and_then(|id| self.transactions.get(id))
            .map(|txn| (txn.peer, txn.transport))
            .ok_or_else(|| TransactionError::UnknownTransaction(invite.clone()))?;
        self.send_request(now, peer, transport, cancel)
    }

    /// A response arrived: match it to a client transaction (sec. 17.1.3) and run the machine.
    pub(super) fn on_response(&mut self, now: Instant, from: SocketAddr, response: Response) {
        let code = response.code();
        let matched = TransactionKey::for_incoming_response(&response)
            .and_then(|key| self.index.get(&key).copied());
        let Some(id) = matched.filter(|_| (100..=699).contains(&code)) else {
            self.stats.stray_responses += 1;
            self.events.push_back(TransactionEvent::StrayResponse {
                response,
                source: from,
            });
            return;
        };
        let Some(txn) = self.transactions.get_mut(&id) else {
            return;
        };
        let key = txn.key.clone();
        let timers = self.config.timers;
        let transport = txn.transport;
        if txn.invite {
            match (txn.state, code) {
                (State::Calling | State::Proceeding, 100..=199) => {
                    txn.state = State::Proceeding;
                    txn.retransmit = None;
                    txn.timeout = None;
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                }
                (State::Calling | State::Proceeding, 200..=299) => {
                    txn.state = State::Accepted;
                    txn.retransmit = None;
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                    self.set_timeout(id, now + timers.timeout_64_t1(), Timer::M);
                }
                (State::Accepted, 200..=299) => {
                    // Retransmission or another fork's 2xx: the TU ACKs each one.
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                }
                (State::Calling | State::Proceeding, _) if code >= 300 => {
                    txn.state = State::Completed;
                    txn.retransmit = None;
                    let ack = ack_for_non_2xx(&txn.request, &response).to_bytes();
                    txn.last_bytes = Some(ack.clone());
                    let peer = txn.peer;
                    self.transmit(peer, transport, ack);
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                    let wait = timers.timer_d(transport);
                    self.set_timeout(id, now + wait, Timer::D);
                }
                (State::Completed, _) if code >= 300 => {
                    // A retransmitted final: resend the ACK, don't bother the TU.
                    self.stats.absorbed_responses += 1;
                    let peer = txn.peer;
                    if let Some(ack) = txn.last_bytes.clone() {
                        self.transmit(peer, transport, ack);
                    }
                }
                _ => self.stats.absorbed_responses += 1,
            }
        } else {
            match (txn.state, code) {
                (State::Trying | State::Proceeding, 100..=199) => {
                    txn.state = State::Proceeding;
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                }
                (State::Trying | State::Proceeding, _) => {
                    txn.state = State::Completed;
                    txn.retransmit = None;
                    self.events
                        .push_back(TransactionEvent::Response { key, response });
                    let wait = timers.timer_t4(transport);
                    self.set_timeout(id, now + wait, Timer::K);
                }
                _ => self.stats.absorbed_responses += 1,
            }
        }
    }

    /// Timer A or E fired at `at` with the interval that just elapsed.
    pub(super) fn client_retransmit(
        &mut self,
        at: Instant,
        id: u64,
        interval: Duration,
        timer: Timer,
    ) {
        let Some(txn) = self.transactions.get_mut(&id) else {
            return;
        };
        let next = match (timer, txn.state) {
            // Timer A doubles with no cap (sec. 17.1.1.2); B ends it.
            (Timer::A, State::Calling) => interval * 2,
            (Timer::E, State::Trying) => self.config.timers.next_capped(interval),
            (Timer::E, State::Proceeding) => self.config.timers.t2,
            _ => {
                txn.retransmit = None;
                return;
            }
        };
        let (peer, transport, bytes): (SocketAddr, Transport, Bytes) =
            (txn.peer, txn.transport, txn.request_bytes.clone());
        self.stats.retransmissions += 1;
        self.transmit(peer, transport, bytes);
        self.set_retransmit(id, at + next, next, timer);
    }
}

/// The ACK for a non-2xx final response (sec. 17.1.1.3): Request-URI, Call-ID, From and the top
/// Via of the INVITE, the To of the response, CSeq number of the INVITE with method ACK, and
/// the INVITE's Route headers.
fn ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::ACK, invite.line.uri.clone());
    if let Some(via) = key::top_via(&invite.headers) {
        ack.headers.insert_named(&via);
    }
    let _ = invite.headers.clone_into(&mut ack.headers, Name::FROM);
    let _ = response.headers.clone_into(&mut ack.headers, Name::TO);
    let _ = invite.headers.clone_into(&mut ack.headers, Name::CALL_ID);
    if let Some(cseq) = key::cseq(&invite.headers) {
        ack.headers.insert_named(&CSeq::new(cseq.cseq, Method::ACK));
    }
    let _ = invite.headers.clone_into(&mut ack.headers, Name::ROUTE);
    ack.headers.insert_named(&MaxForwards(70));
    ack
}
