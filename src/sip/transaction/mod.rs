//! SIP transaction layer (pure): RFC 3261 sec. 17 with the RFC 6026 corrections, and the
//! CANCEL rules of sec. 9.
//!
//! [`TransactionLayer`] is a sans-IO state machine (STYLE.md sec. 2): it is fed
//! `(now, input)` through `handle_*` and `send_*`, and its outputs are drained with
//! [`poll_transmit`](TransactionLayer::poll_transmit), [`poll_event`](TransactionLayer::poll_event)
//! and [`poll_timeout`](TransactionLayer::poll_timeout). It never reads a clock, touches a socket
//! or spawns a timer; timers A to M are deadlines. After every `handle_*`/`send_*` call the
//! driver drains `poll_transmit` and `poll_event` to `None`, then sleeps until `poll_timeout`.
//!
//! The driver feeds whole messages: one datagram on UDP, one Content-Length-framed message on
//! TCP (framing is the transport's job). [`handle_datagram`](TransactionLayer::handle_datagram)
//! takes `&Bytes` so that parsed header values share the received buffer instead of copying it.
//!
//! # Who does what
//!
//! - **100 Trying**: the layer sends it at once for every new INVITE (sec. 17.2.1 allows
//!   waiting 200 ms; answering at once stops the caller's Timer A retransmissions early).
//! - **Retransmissions** of requests (A, E) and of non-2xx INVITE finals (G) are the layer's, on
//!   UDP only. Retransmitted requests are absorbed by resending the last response; they never
//!   reach the TU twice.
//! - **ACK for a non-2xx final** is built and sent by the client INVITE transaction
//!   (sec. 17.1.1.3) with the INVITE's branch. **ACK for a 2xx** is the TU's: every 2xx is passed
//!   up as [`TransactionEvent::Response`] while the client transaction is in Accepted (Timer M,
//!   RFC 6026), and as [`TransactionEvent::StrayResponse`] after it ended; the TU answers each
//!   one with the same ACK (from its dialog) via
//!   [`send_stateless_request`](TransactionLayer::send_stateless_request).
//! - **2xx retransmission at the UAS** (sec. 13.3.1.4, a UAS-core duty) is done by the layer on
//!   the TU's behalf: after the TU sends a 2xx to an INVITE, the server transaction is Accepted
//!   and, on UDP, resends that 2xx at T1, 2*T1, ... capped at T2 until an ACK with the same
//!   Call-ID and CSeq number arrives. The ACK is still delivered as
//!   [`TransactionEvent::StrayAck`] (every ACK for a 2xx is, whatever its branch). If no ACK
//!   comes within Timer L (64*T1), the layer reports [`TransactionEvent::AckTimeout`] and the TU
//!   should send BYE. The TU may also resend the 2xx itself with
//!   [`send_response`](TransactionLayer::send_response) while the transaction is Accepted.
//! - **CANCEL** (sec. 9.2) is answered entirely by the layer: a CANCEL matching a server INVITE
//!   transaction gets 200 OK, and if that INVITE has no final response yet the layer sends
//!   487 Request Terminated on it and reports [`TransactionEvent::Cancelled`] with the INVITE's
//!   key (the TU tears its call down; it must not answer that INVITE any more). A CANCEL that
//!   matches nothing gets 481. CANCELs never reach the TU as requests. On the client side,
//!   [`create_cancel`](TransactionLayer::create_cancel) and
//!   [`send_cancel`](TransactionLayer::send_cancel) build the CANCEL of a pending INVITE.
//! - **Responses** from server transactions go back to the source address of the request
//!   (symmetric response, as with RFC 3581 `rport`), on the transport it came in on.
//!
//! # Bounds
//!
//! At most [`TransactionConfig::max_transactions`] live transactions. Over the cap a new
//! incoming request gets `503 Service Unavailable` statelessly and
//! [`send_request`](TransactionLayer::send_request) returns
//! [`TransactionError::Capacity`]; both are counted in [`TransactionStats`].
//!
//! # Deliberate departures
//!
//! - The Via sent-by of a server transaction must match exactly (text of `host[:port]`), no
//!   default-port normalisation.
//! - RFC 2543 requests (branch without the magic cookie) are matched by Call-ID, From tag, CSeq
//!   number and sent-by (see [`key`]).
//! - Transport errors (sec. 17.1.4, 17.2.4) are reported by destination, not per message:
//!   [`handle_transport_error`](TransactionLayer::handle_transport_error) ends every
//!   transaction toward that address and transport with [`TransactionEvent::TransportError`];
//!   no backup destination is tried.

mod client;
pub mod key;
pub mod message;
mod server;
pub mod timers;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::StatusCode;
use ezk_sip_types::header::typed::Via;
use ezk_sip_types::host::HostPort;
use ezk_sip_types::uri::params::Param;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use key::{MAGIC_COOKIE, Role, TransactionKey};
pub use message::{MessageError, Request, Response, SipMessage};
pub use timers::{Timer, Timers};

/// Default cap on live transactions (client and server together).
pub const MAX_TRANSACTIONS: usize = 65_536;

/// The transport a message travels on. Only UDP is unreliable: it alone gets retransmissions
/// and non-zero Timers D, I, J and K.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams.
    Udp,
    /// A reliable stream.
    Tcp,
}

impl Transport {
    /// Whether the transport delivers reliably (no retransmissions needed).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The name used in the Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Configuration of a [`TransactionLayer`].
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// T1, T2 and T4.
    pub timers: Timers,
    /// Our address for the Via sent-by of requests we originate.
    pub sent_by: HostPort,
    /// Cap on live transactions; over it, new ones are refused.
    pub max_transactions: usize,
}

impl TransactionConfig {
    /// Default timers (T1 500 ms, T2 4 s, T4 5 s) and [`MAX_TRANSACTIONS`].
    pub fn new(sent_by: SocketAddr) -> Self {
        TransactionConfig {
            timers: Timers::default(),
            sent_by: sent_by.into(),
            max_transactions: MAX_TRANSACTIONS,
        }
    }
}

/// A message to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Which transport to use.
    pub transport: Transport,
    /// The printed message.
    pub payload: Bytes,
}

/// What the layer reports to the transaction user (TU).
#[derive(Debug, Clone)]
pub enum TransactionEvent {
    /// A new request (never a retransmission, never ACK or CANCEL). Answer it with
    /// [`TransactionLayer::send_response`] and `key`. For INVITE, 100 Trying is already sent.
    IncomingRequest {
        /// The server transaction.
        key: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from (responses go back there).
        source: SocketAddr,
        /// The transport it came in on.
        transport: Transport,
    },
    /// A response for one of our client transactions: every 1xx, the first final response of a
    /// non-INVITE, the non-2xx final of an INVITE (already ACKed by the layer), and every 2xx of
    /// an INVITE (the TU ACKs each one).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Timer B or F (no final response) or H (no ACK for our non-2xx final) fired.
    Timeout {
        /// The transaction that timed out.
        key: TransactionKey,
        /// Which timer.
        timer: Timer,
    },
    /// A CANCEL matched this server INVITE transaction before its final response; the layer
    /// sent 200 to the CANCEL and 487 to the INVITE.
    Cancelled {
        /// The cancelled INVITE's server transaction.
        key: TransactionKey,
    },
    /// No ACK arrived for the 2xx we sent within 64*T1 (sec. 13.3.1.4): the TU should send BYE.
    AckTimeout {
        /// The INVITE's server transaction.
        key: TransactionKey,
    },
    /// An ACK for a 2xx (or any ACK matching no transaction): for the dialog layer.
    StrayAck {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
        /// The transport it came in on.
        transport: Transport,
    },
    /// A response matching no client transaction, e.g. a 2xx retransmission after Timer M:
    /// if it is a 2xx to an INVITE of a known dialog, the TU resends its ACK.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: SocketAddr,
    },
    /// The transport could not deliver to the transaction's peer (e.g. a TCP connection
    /// failed); the transaction is terminated.
    TransportError {
        /// The failed transaction.
        key: TransactionKey,
    },
    /// The transaction ended and its key is no longer valid.
    Terminated {
        /// The ended transaction.
        key: TransactionKey,
    },
}

/// Errors of the TU-facing calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No live transaction has this key.
    #[error("no transaction with key {0:?}")]
    UnknownTransaction(TransactionKey),
    /// The live transaction cap is reached.
    #[error("transaction limit of {0} reached")]
    Capacity(usize),
    /// The request lacks a header the layer needs (CSeq, Call-ID, From, To).
    #[error("request lacks the {0} header")]
    MissingHeader(&'static str),
    /// A client transaction with the same branch and method is already live.
    #[error("a transaction with key {0:?} already exists")]
    Duplicate(TransactionKey),
    /// ACK is not sent through a client transaction (use `send_stateless_request`).
    #[error("ack is not sent in a transaction")]
    AckNotATransaction,
    /// The response or CANCEL does not fit the transaction's state (e.g. a final after a final).
    #[error("operation not allowed in the transaction's current state")]
    InvalidState,
    /// The status code is outside 100..=699.
    #[error("status code {0} is out of range")]
    InvalidStatus(u16),
}

/// Counters (STYLE.md sec. 4.5: count, don't log, per message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionStats {
    /// Messages that could not be parsed.
    pub unparseable: u64,
    /// Requests missing mandatory headers (answered 400 when they have a Via).
    pub malformed_requests: u64,
    /// Requests and transactions refused because of the cap.
    pub rejected_capacity: u64,
    /// Retransmitted requests absorbed by an existing server transaction.
    pub absorbed_requests: u64,
    /// Retransmitted responses absorbed by an existing client transaction.
    pub absorbed_responses: u64,
    /// Requests and responses we retransmitted on a timer.
    pub retransmissions: u64,
    /// Responses matching no client transaction.
    pub stray_responses: u64,
    /// ACKs passed up as stray (ACKs for 2xx).
    pub stray_acks: u64,
    /// Timers B, F and H that fired.
    pub timeouts: u64,
}

/// States of RFC 3261 fig. 5 to 8 with RFC 6026's Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// Which of a transaction's two timer slots a heap entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Retransmit,
    Timeout,
}

/// One transaction, client or server, INVITE or not.
#[derive(Debug)]
struct Transaction {
    key: TransactionKey,
    state: State,
    invite: bool,
    transport: Transport,
    /// Where requests (client) or responses (server) go.
    peer: SocketAddr,
    /// The request that created the transaction.
    request: Request,
    /// Client: the printed request, resent by A/E. Server: unused (empty).
    request_bytes: Bytes,
    /// Server: the last response sent (resent on request retransmissions and by G/2xx timer).
    /// Client INVITE in Completed: the ACK, resent on final-response retransmissions.
    last_bytes: Option<Bytes>,
    /// Server: the To tag of our responses once chosen.
    to_tag: Option<String>,
    /// Server INVITE: an ACK for our 2xx arrived.
    acked: bool,
    /// Server INVITE in Accepted: (Call-ID, CSeq number) to match the 2xx's ACK.
    dialog_cseq: Option<(String, u32)>,
    retransmit: Option<(Instant, Duration, Timer)>,
    timeout: Option<(Instant, Timer)>,
}

/// The sans-IO transaction layer. See the module documentation for the division of work
/// between the layer and its TU.
#[derive(Debug)]
pub struct TransactionLayer {
    config: TransactionConfig,
    rng: SmallRng,
    transactions: HashMap<u64, Transaction>,
    index: HashMap<TransactionKey, u64>,
    /// Accepted server INVITE transactions by (Call-ID, CSeq number), to match 2xx ACKs.
    accepted: HashMap<(String, u32), u64>,
    next_id: u64,
    timers: BinaryHeap<Reverse<(Instant, u64, Slot)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
    stats: TransactionStats,
}

impl TransactionLayer {
    /// A layer with `config`; `rng_seed` seeds the branch and tag generator (use a random seed
    /// in production, a fixed one in tests).
    pub fn new(config: TransactionConfig, rng_seed: u64) -> Self {
        TransactionLayer {
            config,
            rng: SmallRng::seed_from_u64(rng_seed),
            transactions: HashMap::new(),
            index: HashMap::new(),
            accepted: HashMap::new(),
            next_id: 0,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: TransactionStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> TransactionStats {
        self.stats
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// A fresh branch with the magic cookie (sec. 8.1.1.7).
    pub fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{:016x}", self.rng.r#gen::<u64>())
    }

    /// A fresh random token for From/To tags and Call-IDs (sec. 19.3).
    pub fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.r#gen::<u64>())
    }

    /// Parses and validates `bytes` (`crate::sip::message::parse_with`) and handles the
    /// message. A request too damaged to process but answerable (its Via, From, To, Call-ID and
    /// CSeq are readable) gets `400 Bad Request` with the reason, statelessly; anything else is
    /// counted and returned as an error (the driver just drops it). Never panics.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) -> Result<(), MessageError> {
        let framing = if transport.is_reliable() {
            crate::sip::message::Framing::Stream
        } else {
            crate::sip::message::Framing::Datagram
        };
        match crate::sip::message::parse_with(bytes, framing) {
            Ok(msg) => {
                self.handle_message(now, from, transport, msg);
                Ok(())
            }
            Err(e) => {
                match e.response() {
                    Some(response) => {
                        self.stats.malformed_requests += 1;
                        self.send_stateless_response(from, transport, &response);
                    }
                    None => self.stats.unparseable += 1,
                }
                Err(e)
            }
        }
    }

    /// Handles a parsed message from the network.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        msg: SipMessage,
    ) {
        match msg {
            SipMessage::Request(request) => self.on_request(now, from, transport, request),
            SipMessage::Response(response) => self.on_response(now, from, response),
        }
        self.prune_timers();
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, slot))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(txn) = self.transactions.get(&id) else {
                continue;
            };
            match slot {
                Slot::Retransmit => match txn.retransmit {
                    Some((due, interval, timer)) if due == at => {
                        self.on_retransmit_timer(at, id, interval, timer)
                    }
                    _ => {}
                },
                Slot::Timeout => match txn.timeout {
                    Some((due, timer)) if due == at => self.on_timeout_timer(id, timer),
                    _ => {}
                },
            }
        }
        self.prune_timers();
    }

    /// The driver could not send to `destination` over `transport` (connection refused or
    /// lost, ICMP unreachable): every transaction with that peer ends with
    /// [`TransactionEvent::TransportError`] then [`TransactionEvent::Terminated`].
    pub fn handle_transport_error(
        &mut self,
        _now: Instant,
        destination: SocketAddr,
        transport: Transport,
    ) {
        let mut failed: Vec<(u64, TransactionKey)> = self
            .transactions
            .iter()
            .filter(|(_, txn)| txn.peer == destination && txn.transport == transport)
            .map(|(id, txn)| (*id, txn.key.clone()))
            .collect();
        // Deterministic order (creation order) whatever the map's iteration order.
        failed.sort_by_key(|(id, _)| *id);
        for (id, key) in failed {
            self.events
                .push_back(TransactionEvent::TransportError { key });
            self.terminate(id);
        }
        self.prune_timers();
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU, if any.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Sends `request` without a transaction: an ACK for a 2xx (or its retransmission). Adds
    /// our top Via with a fresh branch if the request has none (in place, so a resend of the
    /// same request reuses it).
    pub fn send_stateless_request(
        &mut self,
        destination: SocketAddr,
        transport: Transport,
        request: &mut Request,
    ) {
        self.ensure_via(transport, request);
        self.transmits.push_back(Transmit {
            destination,
            transport,
            payload: request.to_bytes(),
        });
    }

    /// Sends `response` without a transaction (e.g. a 400 to a request the layer could not key).
    pub fn send_stateless_response(
        &mut self,
        destination: SocketAddr,
        transport: Transport,
        response: &Response,
    ) {
        self.transmits.push_back(Transmit {
            destination,
            transport,
            payload: response.to_bytes(),
        });
    }

    /// Makes sure the top Via is ours-with-branch: inserts one if missing, adds a branch if the
    /// top Via has none. Returns the branch.
    fn ensure_via(&mut self, transport: Transport, request: &mut Request) -> String {
        if let Some(branch) = key::top_branch(&request.headers) {
            return branch;
        }
        let branch = self.new_branch();
        match key::top_via(&request.headers) {
            Some(mut top) => {
                let raw: Vec<_> = request.headers.get_raw(&Name::VIA).cloned().collect();
                // The TU gave a Via without a branch: keep it, add the branch.
                top.params.push(Param::value("branch", branch.clone()));
                request.headers.remove(&Name::VIA);
                request.headers.insert_named_front(&top);
                // A first raw value holding several comma-separated Vias keeps the rest out;
                // a TU never builds that, so only whole extra values are kept.
                for value in raw.into_iter().skip(1) {
                    request.headers.insert(Name::VIA, value);
                }
            }
            None => {
                let mut via = Via::new(
                    transport.via_name(),
                    self.config.sent_by.clone(),
                    branch.clone(),
                );
                via.params.push(Param::name("rport"));
                request.headers.insert_named_front(&via);
            }
        }
        branch
    }

    /// Registers a new transaction; the caller checked the cap and the key's uniqueness.
    fn insert(&mut self, txn: Transaction) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.index.insert(txn.key.clone(), id);
        self.transactions.insert(id, txn);
        id
    }

    fn at_capacity(&self) -> bool {
        self.transactions.len() >= self.config.max_transactions
    }

    /// Removes a transaction and reports it.
    fn terminate(&mut self, id: u64) {
        if let Some(txn) = self.transactions.remove(&id) {
            self.index.remove(&txn.key);
            if let Some(dc) = &txn.dialog_cseq {
                self.accepted.remove(dc);
            }
            self.events
                .push_back(TransactionEvent::Terminated { key: txn.key });
        }
    }

    /// Arms (or re-arms) the retransmit slot of `id`.
    fn set_retransmit(&mut self, id: u64, at: Instant, interval: Duration, timer: Timer) {
        if let Some(txn) = self.transactions.get_mut(&id) {
            txn.retransmit = Some((at, interval, timer));
            self.timers.push(Reverse((at, id, Slot::Retransmit)));
        }
    }

    /// Arms (or re-arms) the timeout slot of `id`.
    fn set_timeout(&mut self, id: u64, at: Instant, timer: Timer) {
        if let Some(txn) = self.transactions.get_mut(&id) {
            txn.timeout = Some((at, timer));
            self.timers.push(Reverse((at, id, Slot::Timeout)));
        }
    }

    /// Drops heap entries at the top that no longer match a live deadline, so that
    /// [`poll_timeout`](Self::poll_timeout) reports a real deadline.
    fn prune_timers(&mut self) {
        while let Some(Reverse((at, id, slot))) = self.timers.peek().copied() {
            let live = self.transactions.get(&id).is_some_and(|txn| match slot {
                Slot::Retransmit => txn.retransmit.is_some_and(|(due, _, _)| due == at),
                Slot::Timeout => txn.timeout.is_some_and(|(due, _)| due == at),
            });
            if live {
                break;
            }
            self.timers.pop();
        }
    }

    fn transmit(&mut self, destination: SocketAddr, transport: Transport, payload: Bytes) {
        self.transmits.push_back(Transmit {
            destination,
            transport,
            payload,
        });
    }

    fn on_retransmit_timer(&mut self, at: Instant, id: u64, interval: Duration, timer: Timer) {
        match timer {
            Timer::A | Timer::E => self.client_retransmit(at, id, interval, timer),
            _ => self.server_retransmit(at, id, interval, timer),
        }
    }

    fn on_timeout_timer(&mut self, id: u64, timer: Timer) {
        match timer {
            Timer::B | Timer::F | Timer::H => {
                self.stats.timeouts += 1;
                if let Some(txn) = self.transactions.get(&id) {
                    self.events.push_back(TransactionEvent::Timeout {
                        key: txn.key.clone(),
                        timer,
                    });
                }
                self.terminate(id);
            }
            Timer::L => {
                if let Some(txn) = self.transactions.get(&id) {
                    if !txn.acked {
                        self.events.push_back(TransactionEvent::AckTimeout {
                            key: txn.key.clone(),
                        });
                    }
                }
                self.terminate(id);
            }
            _ => self.terminate(id),
        }
    }
}

/// A status code checked to be in 100..=699.
fn checked_code(response: &Response) -> Result<u16, TransactionError> {
    let code = response.code();
    if (100..=699).contains(&code) {
        Ok(code)
    } else {
        Err(TransactionError::InvalidStatus(code))
    }
}

/// The 503 we send when the cap is reached.
fn service_unavailable(request: &Request) -> Response {
    let mut response = Response::for_request(StatusCode::SERVICE_UNAVAILABLE, request, None);
    response.headers.insert(Name::RETRY_AFTER, "5");
    response
}

/// `method` is INVITE.
fn is_invite(method: &Method) -> bool {
    *method == Method::INVITE
}
