//! Simulated-time tests of the call engine: a scripted peer talks to the pure engine through
//! datagrams; time jumps to the engine's deadlines (STYLE.md sec. 9.2).
//!
//! [`Sim`] owns the engine, a fake port pool and everything the engine emitted; [`Caller`]
//! scripts a far end that calls us (like SIPp's `uac`), [`reply`] answers the requests the
//! engine sends toward a trunk (like SIPp's `uas`). Peer messages are written as text.
//!
//! Beyond the scripted scenarios: property tests drive random interleavings of peer
//! messages, API commands, media events, duplicates and time (one call, and six at once) and
//! check that every call gets exactly one `Finish` and that no state is left; `lossy_calls`
//! and `lossy_outbound` put a far end with its own `TransactionLayer` behind a seeded lossy
//! network; random bytes and mutated INVITEs never panic nor disturb a live call.

use super::*;
use crate::clock::test_origin;
use crate::rtp::ports::PortPool;
use crate::sip::digest::{self, Algorithm, DigestResponse, Secret};
use crate::sip::message::{SipMessage, parse, parse_lenient};
use proptest::prelude::*;
use rand::Rng;

use std::sync::Mutex;

// ---- harness --------------------------------------------------------------------------------

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Our SIP address.
fn us() -> SocketAddr {
    addr("127.0.0.1:5060")
}

/// The caller of inbound calls (its INVITEs come from here).
fn caller_addr() -> SocketAddr {
    addr("127.0.0.1:5080")
}

/// The `local` trunk of the embedded config.
fn trunk_addr() -> SocketAddr {
    addr("127.0.0.1:5070")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A port pool the test can look into after handing it to the engine. A release of a port
/// the engine does not hold panics: double releases are bugs.
#[derive(Clone)]
struct SharedPorts(Arc<Mutex<PortPool>>);

impl MediaPorts for SharedPorts {
    fn allocate(&mut self) -> Option<u16> {
        self.0.lock().expect("pool lock").allocate().ok()
    }

    fn release(&mut self, port: u16) {
        self.0
            .lock()
            .expect("pool lock")
            .release(port)
            .expect("the engine releases only ports it holds, once");
    }
}

/// One message the engine put on the wire.
#[derive(Debug, Clone)]
struct Sent {
    to: SocketAddr,
    transport: Transport,
    payload: bytes::Bytes,
    at: Instant,
    msg: SipMessage,
}

impl Sent {
    fn req(&self) -> Option<&Request> {
        match &self.msg {
            SipMessage::Request(r) => Some(r),
            SipMessage::Response(_) => None,
        }
    }

    fn resp(&self) -> Option<&Response> {
        match &self.msg {
            SipMessage::Response(r) => Some(r),
            SipMessage::Request(_) => None,
        }
    }

    fn method(&self) -> Option<String> {
        self.req().map(|r| r.method().to_string())
    }

    fn code(&self) -> Option<u16> {
        self.resp().map(Response::code)
    }
}

fn codes(sent: &[Sent]) -> Vec<u16> {
    sent.iter().filter_map(Sent::code).collect()
}

fn methods(sent: &[Sent]) -> Vec<String> {
    sent.iter().filter_map(Sent::method).collect()
}

fn find_req<'a>(sent: &'a [Sent], method: &str) -> Option<&'a Request> {
    sent.iter()
        .filter_map(Sent::req)
        .find(|r| r.method().to_string() == method)
}

fn find_resp(sent: &[Sent], code: u16) -> Option<&Response> {
    sent.iter()
        .filter_map(Sent::resp)
        .find(|r| r.code() == code)
}

/// A finished call as the store writer would see it.
#[derive(Debug, Clone)]
struct Finished {
    id: Uuid,
    end: EndInfo,
    stats: RtpStats,
    at: Instant,
}

/// The engine in simulated time, with a media worker stand-in.
struct Sim {
    t0: Instant,
    now: Instant,
    engine: CallEngine,
    ports: Arc<Mutex<PortPool>>,
    wire: Vec<Sent>,
    seen: usize,
    actions: Vec<Action>,
    /// Media legs started: call -> port.
    legs: HashMap<Uuid, u16>,
    /// When set, every `Stop` is answered at once with `Stopped` carrying these counters.
    auto_stop: Option<RtpStats>,
    /// `Stop`s not answered yet (without `auto_stop`).
    pending_stops: Vec<Uuid>,
    /// Error responses that only the syntax-only parser reads (they echo damaged headers).
    lenient_only: usize,
    /// When false, any message the syntax-only parser reads is accepted (and counted in
    /// `lenient_only`): for peers whose damaged headers end up in our dialog.
    strict: bool,
    /// The last datagram delivered, to replay it (a network duplicate).
    last_in: Option<(SocketAddr, Vec<u8>)>,
}

fn tone_prompt() -> Prompt {
    Prompt {
        name: "tone".into(),
        samples: vec![1000i16; 800].into(),
    }
}

fn stats(n: u64) -> RtpStats {
    RtpStats {
        packets_in: n,
        packets_out: n + 1,
        packets_lost: 2,
        packets_late: 1,
        jitter_ms: 3.5,
    }
}

impl Sim {
    fn new() -> Self {
        Sim::with(Config::embedded(), 100, 20)
    }

    /// An engine on `config` with `max_calls` and `port_pairs` RTP ports.
    fn with(config: Config, max_calls: usize, port_pairs: u16) -> Self {
        let pool = PortPool::new(20_000, 20_000 + 2 * port_pairs - 1).expect("port range");
        let ports = Arc::new(Mutex::new(pool));
        let cfg = EngineConfig {
            sip_addr: us(),
            media_ip: us().ip(),
            user_agent: "trunkline-test".into(),
            max_calls,
            recordings_dir: std::path::PathBuf::from("rec"),
        };
        let mut prompts = HashMap::new();
        prompts.insert("tone".to_string(), tone_prompt());
        let engine = CallEngine::new(
            cfg,
            Arc::new(config),
            Box::new(SharedPorts(ports.clone())),
            prompts,
            7,
        );
        let t0 = test_origin();
        Sim {
            t0,
            now: t0,
            engine,
            ports,
            wire: Vec::new(),
            seen: 0,
            actions: Vec::new(),
            legs: HashMap::new(),
            auto_stop: None,
            pending_stops: Vec::new(),
            lenient_only: 0,
            strict: true,
            last_in: None,
        }
    }

    fn auto_stop(mut self) -> Self {
        self.auto_stop = Some(stats(0));
        self
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Drains every output of the engine (the single-mutation invariant), playing the media
    /// worker for `Stop` when `auto_stop` is set.
    fn drain(&mut self) {
        loop {
            while let Some(t) = self.engine.poll_transmit() {
                // An error answer to a damaged request (400, 505...) echoes its damaged
                // headers, so only its syntax is checked; everything else must pass the
                // validating parser.
                let msg = parse(&t.payload).unwrap_or_else(|e| match parse_lenient(&t.payload) {
                    Ok(SipMessage::Response(r)) if r.code() >= 400 => {
                        self.lenient_only += 1;
                        SipMessage::Response(r)
                    }
                    Ok(m) if !self.strict => {
                        self.lenient_only += 1;
                        m
                    }
                    Err(_)
                        if !self.strict
                            && (t.payload.starts_with(b"SIP/2.0 4")
                                || t.payload.starts_with(b"SIP/2.0 5")) =>
                    {
                        // An error answer echoing bytes even the syntax-only parser refuses.
                        self.lenient_only += 1;
                        SipMessage::Response(Response::new(
                            if t.payload.starts_with(b"SIP/2.0 4") {
                                400
                            } else {
                                500
                            },
                            Some("garbled"),
                        ))
                    }
                    _ => panic!(
                        "engine sent unparseable SIP ({e}):\n{}",
                        t.payload.escape_ascii()
                    ),
                });
                self.wire.push(Sent {
                    to: t.destination,
                    transport: t.transport,
                    payload: t.payload.clone(),
                    at: self.now,
                    msg,
                });
            }
            let mut stops = Vec::new();
            while let Some(a) = self.engine.poll_action() {
                match &a {
                    Action::Media(MediaCommand::Start { call_id, port, .. }) => {
                        self.legs.insert(*call_id, *port);
                    }
                    Action::Media(MediaCommand::Stop { call_id }) => {
                        if self.auto_stop.is_some() {
                            stops.push(*call_id);
                        } else {
                            self.pending_stops.push(*call_id);
                        }
                    }
                    _ => {}
                }
                self.actions.push(a);
            }
            if stops.is_empty() {
                break;
            }
            for id in stops {
                let st = self.auto_stop.unwrap_or_default();
                self.stopped(id, st);
            }
        }
    }

    /// The media worker reports the leg of `id` stopped.
    fn stopped(&mut self, id: Uuid, stats: RtpStats) {
        let port = *self.legs.get(&id).expect("a started leg");
        self.engine.handle_media_event(
            self.now,
            MediaEvent::Stopped {
                call_id: id,
                port,
                stats,
            },
        );
        self.drain();
    }

    fn media_event(&mut self, ev: MediaEvent) {
        self.engine.handle_media_event(self.now, ev);
        self.drain();
    }

    /// Messages sent since the last call.
    fn take_sent(&mut self) -> Vec<Sent> {
        let out = self.wire[self.seen..].to_vec();
        self.seen = self.wire.len();
        out
    }

    /// Delivers `text` from `from` over UDP and returns what the engine sent in response.
    fn deliver(&mut self, from: SocketAddr, text: &str) -> Vec<Sent> {
        self.deliver_bytes(from, text.as_bytes())
    }

    fn deliver_bytes(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<Sent> {
        self.last_in = Some((from, bytes.to_vec()));
        self.engine
            .handle_datagram(self.now, from, Transport::Udp, bytes);
        self.drain();
        self.take_sent()
    }

    /// Delivers the last datagram again (the network duplicated it).
    fn replay(&mut self) {
        if let Some((from, bytes)) = self.last_in.clone() {
            self.deliver_bytes(from, &bytes);
        }
    }

    fn originate(&mut self, o: Originate) -> Result<(), EngineError> {
        let r = self.engine.originate(self.now, o);
        self.drain();
        r
    }

    fn hangup(&mut self, id: Uuid) -> Result<(), EngineError> {
        let r = self.engine.hangup(self.now, id);
        self.drain();
        r
    }

    /// Jumps to the engine's next deadline and fires it; false when there is none.
    fn step(&mut self) -> bool {
        let Some(t) = self.engine.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(t);
        self.engine.handle_timeout(self.now);
        self.drain();
        true
    }

    /// Fires every deadline up to `now + d`, then sets the time to `now + d`.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.engine.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.engine.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// Runs deadlines until `done` holds (at most 10,000 steps).
    fn advance_until(&mut self, mut done: impl FnMut(&Sim) -> bool) {
        for _ in 0..10_000 {
            if done(self) {
                return;
            }
            assert!(
                self.step(),
                "no deadline left and the condition does not hold"
            );
        }
        panic!("condition not reached in 10000 steps");
    }

    fn finishes(&self) -> Vec<Finished> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Store(StoreOp::Finish {
                    call_id,
                    end,
                    stats,
                    at,
                }) => Some(Finished {
                    id: *call_id,
                    end: end.clone(),
                    stats: *stats,
                    at: *at,
                }),
                _ => None,
            })
            .collect()
    }

    fn finish_of(&self, id: Uuid) -> Vec<Finished> {
        self.finishes().into_iter().filter(|f| f.id == id).collect()
    }

    /// The one Finish of `id` (fails on none or several).
    fn the_finish(&self, id: Uuid) -> Finished {
        let f = self.finish_of(id);
        assert_eq!(f.len(), 1, "exactly one Finish for {id}: {f:?}");
        f[0].clone()
    }

    /// Kinds of every action, in order, e.g. `["Insert", "Ringing", "Answered", "Start"]`.
    fn kinds(&self) -> Vec<&'static str> {
        self.actions.iter().map(kind_of).collect()
    }

    fn inserted_ids(&self) -> Vec<Uuid> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Store(StoreOp::Insert { call, .. }) => Some(call.id),
                _ => None,
            })
            .collect()
    }

    fn media_starts(&self) -> Vec<(Uuid, u16, SessionConfig, LegMode)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Media(MediaCommand::Start {
                    call_id,
                    port,
                    session,
                    mode,
                    ..
                }) => Some((*call_id, *port, session.clone(), mode.clone())),
                _ => None,
            })
            .collect()
    }

    fn ports_in_use(&self) -> usize {
        self.ports.lock().expect("pool lock").in_use()
    }

    /// The media worker answers every outstanding `Stop`.
    fn answer_stops(&mut self) {
        while let Some(id) = self.pending_stops.pop() {
            self.stopped(id, stats(1));
        }
    }

    /// Per call, the actions come in a legal order: `Insert` first, at most one `Ringing`,
    /// `Answered`, `Start` and `Finish`, `Answered` before `Start`, nothing after `Finish`,
    /// and `Stop` only for a started leg.
    fn assert_orderly(&self) {
        let mut per: HashMap<Uuid, Vec<&'static str>> = HashMap::new();
        for a in &self.actions {
            let id = match a {
                Action::Store(StoreOp::Insert { call, .. }) => call.id,
                Action::Store(
                    StoreOp::Ringing { call_id, .. }
                    | StoreOp::Answered { call_id, .. }
                    | StoreOp::Finish { call_id, .. }
                    | StoreOp::Amd { call_id, .. }
                    | StoreOp::Event { call_id, .. },
                )
                | Action::Media(
                    MediaCommand::Start { call_id, .. }
                    | MediaCommand::Update { call_id, .. }
                    | MediaCommand::Play { call_id, .. }
                    | MediaCommand::Dtmf { call_id, .. }
                    | MediaCommand::StopPlay { call_id }
                    | MediaCommand::WatchSilence { call_id, .. }
                    | MediaCommand::Stop { call_id },
                ) => *call_id,
                // Rooms, recordings and inbound outcomes: checked by their own tests.
                Action::Media(MediaCommand::Room(_) | MediaCommand::Record(_))
                | Action::Store(
                    StoreOp::Conference(_)
                    | StoreOp::Recording(_)
                    | StoreOp::Inbound(_)
                    | StoreOp::Registration(_),
                ) => continue,
            };
            per.entry(id).or_default().push(kind_of(a));
        }
        for (id, kinds) in per {
            assert_eq!(kinds.first(), Some(&"Insert"), "{id}: {kinds:?}");
            for once in ["Insert", "Ringing", "Answered", "Start", "Finish", "Stop"] {
                let n = kinds.iter().filter(|k| **k == once).count();
                assert!(n <= 1, "{id}: {once} {n} times: {kinds:?}");
            }
            let pos = |k: &str| kinds.iter().position(|x| *x == k);
            if let Some(f) = pos("Finish") {
                assert_eq!(f, kinds.len() - 1, "{id}: nothing after Finish: {kinds:?}");
            }
            // A started leg was answered; with synchronous AMD the answer is published with
            // the verdict, after the leg started, but still before the end.
            if pos("Start").is_some() {
                assert!(pos("Answered").is_some(), "{id}: {kinds:?}");
            }
            if let Some(st) = pos("Stop") {
                assert!(pos("Start").is_some_and(|s| s < st), "{id}: {kinds:?}");
            }
            if let (Some(r), Some(a)) = (pos("Ringing"), pos("Answered")) {
                assert!(r < a, "{id}: {kinds:?}");
            }
        }
    }

    /// Long after the last call ended, nothing is left: no transaction in the layer, no
    /// call, no index entry, no timer (no state leaks per call).
    fn assert_no_state_left(&self) {
        let e = &self.engine;
        assert_eq!(e.layer.len(), 0, "transactions left in the layer");
        assert!(e.calls.is_empty(), "calls left");
        assert!(
            e.by_txn.is_empty(),
            "transaction index left: {:?}",
            e.by_txn
        );
        assert!(e.by_sip_call_id.is_empty(), "Call-ID index left");
        assert!(e.ring_deadline.is_empty(), "timers left");
        assert!(e.timers.is_empty(), "timer heap left");
        assert!(e.deferred_byes.is_empty(), "held BYEs left");
        assert!(e.rooms.rooms.is_empty(), "rooms left");
        assert!(e.rooms.recordings.is_empty(), "recordings left");
        assert_eq!(e.poll_timeout(), None, "no deadline left");
    }

    /// Every call ended, once, and every port is back.
    fn assert_all_settled(&self) {
        let ids = self.inserted_ids();
        for id in &ids {
            self.the_finish(*id);
        }
        assert_eq!(self.finishes().len(), ids.len(), "no Finish without Insert");
        assert_eq!(self.engine.active_calls(), 0, "no call left");
        assert_eq!(self.ports_in_use(), 0, "every port released");
        assert_eq!(
            self.lenient_only, 0,
            "every message sent passes the strict parser"
        );
    }
}

fn kind_of(a: &Action) -> &'static str {
    match a {
        Action::Store(StoreOp::Insert { .. }) => "Insert",
        Action::Store(StoreOp::Ringing { .. }) => "Ringing",
        Action::Store(StoreOp::Answered { .. }) => "Answered",
        Action::Store(StoreOp::Finish { .. }) => "Finish",
        Action::Store(StoreOp::Amd { .. }) => "Amd",
        Action::Store(StoreOp::Event { .. }) => "Event",
        Action::Media(MediaCommand::Start { .. }) => "Start",
        Action::Media(MediaCommand::Update { .. }) => "Update",
        Action::Media(MediaCommand::Play { .. }) => "Play",
        Action::Media(MediaCommand::Dtmf { .. }) => "Dtmf",
        Action::Media(MediaCommand::Stop { .. }) => "Stop",
        Action::Media(MediaCommand::StopPlay { .. }) => "StopPlay",
        Action::Media(MediaCommand::Room(_)) => "Room",
        Action::Media(MediaCommand::Record(_)) => "Record",
        Action::Store(StoreOp::Conference(_)) => "Conference",
        Action::Store(StoreOp::Recording(_)) => "Recording",
        Action::Store(StoreOp::Inbound(_)) => "Inbound",
        Action::Media(MediaCommand::WatchSilence { .. }) => "WatchSilence",
        Action::Store(StoreOp::Registration(_)) => "Registration",
    }
}

// ---- scripted peers -------------------------------------------------------------------------

/// SDP of a SIPp-like peer: PCMU, PCMA and telephone-event on `port`.
fn peer_sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n"
    )
}

/// An offer with G.729 only.
fn g729_sdp() -> String {
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
        .to_string()
}

/// A far end that calls us, like SIPp's `uac` scenario.
struct Caller {
    addr: SocketAddr,
    user: String,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    invite_cseq: u32,
    branches: u32,
}

impl Caller {
    fn new(user: &str, n: u32) -> Self {
        Caller {
            addr: caller_addr(),
            user: user.to_string(),
            call_id: format!("call-{n}@127.0.0.1"),
            from_tag: format!("ftag{n}"),
            to_tag: None,
            cseq: 0,
            invite_cseq: 0,
            branches: 0,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-{}-{}", self.from_tag, self.branches)
    }

    /// A request with explicit CSeq and branch.
    fn text(&self, method: &str, cseq: u32, branch: &str, body: &str) -> String {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} sip:{user}@{us} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"sipp\" <sip:sipp@{a}>;tag={ftag}\r\n\
             To: <sip:{user}@{us}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:sipp@{a}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            user = self.user,
            us = us(),
            a = self.addr,
            ftag = self.from_tag,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// A new INVITE (or re-INVITE once the To tag is known) with `body`.
    fn invite(&mut self, body: &str) -> String {
        self.cseq += 1;
        self.invite_cseq = self.cseq;
        let b = self.branch();
        self.text("INVITE", self.cseq, &b, body)
    }

    /// ACK for the 2xx of the last INVITE.
    fn ack(&mut self) -> String {
        let b = self.branch();
        self.text("ACK", self.invite_cseq, &b, "")
    }

    /// Another in-dialog (or, without a To tag, out-of-dialog) request.
    fn request(&mut self, method: &str) -> String {
        self.cseq += 1;
        let b = self.branch();
        self.text(method, self.cseq, &b, "")
    }

    /// Learns the To tag from the engine's answer.
    fn learn(&mut self, sent: &[Sent]) {
        if let Some(t) = sent
            .iter()
            .filter_map(Sent::resp)
            .filter(|r| r.code() >= 180)
            .find_map(Response::to_tag)
        {
            self.to_tag = Some(t);
        }
    }
}

/// A response to `req` (Vias, From, To, Call-ID and CSeq copied), as a far end writes it.
fn reply(req: &Request, code: u16, to_tag: Option<&str>, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {}\r\n", reason(code));
    for v in req.headers.get_raw(&Name::VIA) {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!(
        "From: {}\r\n",
        req.header(&Name::FROM).unwrap_or("")
    ));
    let to = req.header(&Name::TO).unwrap_or("").to_string();
    match to_tag {
        Some(t) if !to.contains("tag=") => out.push_str(&format!("To: {to};tag={t}\r\n")),
        _ => out.push_str(&format!("To: {to}\r\n")),
    }
    out.push_str(&format!(
        "Call-ID: {}\r\n",
        req.header(&Name::CALL_ID).unwrap_or("")
    ));
    out.push_str(&format!(
        "CSeq: {}\r\n",
        req.header(&Name::CSEQ).unwrap_or("")
    ));
    if (200..300).contains(&code) || (101..200).contains(&code) {
        out.push_str(&format!("Contact: <sip:far@{}>\r\n", trunk_addr()));
    }
    out.push_str(extra);
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Whatever",
    }
}

/// An SDP answer from the trunk's far end.
fn far_sdp() -> String {
    "v=0\r\no=far 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
     a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        .to_string()
}

fn outbound(n: u128, to: &str, trunk: &str, ring_timeout: Duration) -> Originate {
    Originate {
        call: NewCall {
            id: Uuid::from_u128(n),
            direction: Direction::Outbound,
            from: "+15550100000".into(),
            to: to.into(),
            trunk: Some(trunk.into()),
            sip_call_id: None,
            status: CallStatus::Queued,
            status_callback: None,
            metadata: serde_json::json!({}),
            idempotency_key: None,
            api_key_id: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        },
        ring_timeout,
        amd: None,
        join: None,
        record: false,
    }
}

/// The `Authorization`/`Proxy-Authorization` value answering the challenge in `header` of
/// `resp` (401 or 407) for `method` on `uri` as `username`/`password`.
fn answer_challenge(
    resp: &Response,
    header: &Name,
    (username, password): (&str, &str),
    method: &str,
    uri: &str,
) -> String {
    use rand::SeedableRng;
    let challenge =
        crate::sip::digest::Challenge::best(resp.headers.get_raw(header).map(|v| v.as_str()))
            .expect("a challenge");
    let mut client = crate::sip::digest::DigestClient::new(crate::sip::digest::Credentials {
        username: username.into(),
        password: password.into(),
    });
    client.set_challenge(challenge);
    client
        .authorize(method, uri, &mut rand::rngs::StdRng::seed_from_u64(3))
        .expect("an answer to the challenge")
}

/// A config with the embedded server and numbers and the given trunks text.
fn config_with_trunks(trunks: &str) -> Config {
    Config::from_texts(
        crate::config::embedded::SERVER,
        trunks,
        crate::config::embedded::NUMBERS,
    )
    .expect("test config")
}

// ---- tests ----------------------------------------------------------------------------------

#[test]
fn final_status_mapping_follows_twilio_names() {
    assert_eq!(final_status_for(486), FinalStatus::Busy);
    assert_eq!(final_status_for(487), FinalStatus::NoAnswer);
    assert_eq!(final_status_for(503), FinalStatus::Failed);
}

/// Sets up an answered inbound call to `user`; returns the caller and the call id.
fn inbound_answered(sim: &mut Sim, user: &str, n: u32) -> (Caller, Uuid) {
    let mut c = Caller::new(user, n);
    let inv = c.invite(&peer_sdp(6000 + 2 * n as u16, "sendrecv"));
    let sent = sim.deliver(c.addr, &inv);
    assert_eq!(codes(&sent), vec![100, 180, 200], "{sent:#?}");
    c.learn(&sent);
    let ack = c.ack();
    let after_ack = sim.deliver(c.addr, &ack);
    assert!(
        after_ack.is_empty(),
        "nothing answers an ACK: {after_ack:?}"
    );
    let id = *sim.inserted_ids().last().expect("an inserted call");
    (c, id)
}

#[test]
fn inbound_echo_call_answers_and_ends_on_peer_bye_with_one_finish() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 180, 200]);
    assert!(
        sent.iter().all(|s| s.to == c.addr),
        "responses go to the source"
    );
    let ok = find_resp(&sent, 200).expect("200");
    let ringing = find_resp(&sent, 180).expect("180");
    assert!(ok.to_tag().is_some());
    assert_eq!(ok.to_tag(), ringing.to_tag(), "one To tag for the dialog");
    assert_eq!(ok.content_type(), Some("application/sdp"));
    assert!(ok.contact_uri().is_some(), "2xx carries a Contact");
    assert!(ok.header(&Name::ALLOW).is_some());
    let answer = SessionDescription::parse(ok.body()).expect("SDP answer");
    let m = &answer.media[0];
    assert!(
        m.port >= 20_000 && m.port < 20_040,
        "our RTP port: {}",
        m.port
    );
    assert_eq!(
        m.payload_types().next(),
        Some(0),
        "first offered codec (PCMU)"
    );
    assert_eq!(m.telephone_event_pt(), Some(101));

    assert_eq!(sim.kinds(), vec!["Insert", "Ringing", "Answered", "Start"]);
    let id = sim.inserted_ids()[0];
    let (sid, port, session, mode) = sim.media_starts()[0].clone();
    assert_eq!(sid, id);
    assert_eq!(port, m.port, "leg on the port in the SDP");
    assert_eq!(session.law, Law::Ulaw);
    assert_eq!(session.dtmf_pt, Some(101));
    assert_eq!(session.remote, Some(addr("127.0.0.1:6000")));
    assert!(matches!(mode, LegMode::Echo));
    assert_eq!(sim.ports_in_use(), 1);

    c.learn(&sent);
    assert!(sim.deliver(c.addr, &c.ack()).is_empty());
    // The 2xx is not retransmitted after the ACK.
    sim.advance(secs(40));
    assert!(
        sim.take_sent().is_empty(),
        "no 2xx retransmission after ACK"
    );

    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![200]);
    assert_eq!(sim.kinds().last(), Some(&"Stop"));
    assert!(
        sim.finishes().is_empty(),
        "Finish waits for the leg's counters"
    );
    sim.stopped(id, stats(500));
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.ended_by, EndedBy::Caller);
    assert_eq!(f.stats, stats(500));
    sim.assert_all_settled();
}

#[test]
fn tone_route_plays_and_hangs_up_when_the_prompt_ends() {
    let mut sim = Sim::new();
    let (_c, id) = inbound_answered(&mut sim, "tone", 1);
    let (_, _, _, mode) = sim.media_starts()[0].clone();
    match mode {
        LegMode::Play { prompt, repeat } => {
            assert_eq!(prompt.name, "tone");
            assert!(!repeat);
        }
        other => panic!("expected Play, got {other:?}"),
    }
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    let sent = sim.take_sent();
    let bye = find_req(&sent, "BYE").expect("the engine sends BYE");
    assert_eq!(sent[0].to, caller_addr());
    assert_eq!(bye.call_id(), Some("call-1@127.0.0.1"));
    assert_eq!(bye.to_tag().as_deref(), Some("ftag1"), "To is the caller");
    assert_eq!(sim.kinds().last(), Some(&"Stop"));
    sim.stopped(id, stats(7));
    // The caller answers the BYE.
    let bye = bye.clone();
    assert!(
        sim.deliver(caller_addr(), &reply(&bye, 200, None, "", ""))
            .is_empty()
    );
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.ended_by, EndedBy::System);
    assert_eq!(f.stats, stats(7));
    sim.assert_all_settled();
}

#[test]
fn unknown_number_gets_404_and_no_call() {
    let mut sim = Sim::new();
    let mut c = Caller::new("nobody", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 404]);
    assert!(sim.actions.is_empty());
    assert_eq!(sim.ports_in_use(), 0);
    assert_eq!(sim.engine.stats().unknown_number, 1);
}

#[test]
fn offer_without_common_codec_gets_488_and_releases_the_port() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&g729_sdp()));
    assert_eq!(codes(&sent), vec![100, 488]);
    assert!(sim.actions.is_empty(), "no call row for a refused offer");
    assert_eq!(sim.ports_in_use(), 0, "port back in the pool");
    assert_eq!(sim.engine.stats().no_common_codec, 1);
    assert_eq!(sim.engine.active_calls(), 0);
}

#[test]
fn busy_route_rejects_486_and_records_the_call() {
    let mut sim = Sim::new();
    let mut c = Caller::new("busy", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 486]);
    assert_eq!(sim.kinds(), vec!["Insert", "Finish"]);
    let id = sim.inserted_ids()[0];
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Busy);
    assert_eq!(f.end.code, Some(486));
    sim.assert_all_settled();
}

#[test]
fn exhausted_ports_get_503_with_retry_after() {
    let mut sim = Sim::with(Config::embedded(), 100, 1);
    let (_c1, _) = inbound_answered(&mut sim, "echo", 1);
    let mut c2 = Caller::new("echo", 2);
    let sent = sim.deliver(c2.addr, &c2.invite(&peer_sdp(6002, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 503]);
    let r = find_resp(&sent, 503).expect("503");
    assert!(r.header(&Name::RETRY_AFTER).is_some(), "Retry-After on 503");
    assert_eq!(sim.engine.active_calls(), 1);
    assert_eq!(sim.engine.stats().refused_capacity, 1);
}

#[test]
fn over_max_calls_gets_503() {
    let mut sim = Sim::with(Config::embedded(), 1, 10);
    inbound_answered(&mut sim, "echo", 1);
    let mut c2 = Caller::new("echo", 2);
    let sent = sim.deliver(c2.addr, &c2.invite(&peer_sdp(6002, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 503]);
    assert!(
        find_resp(&sent, 503)
            .and_then(|r| r.header(&Name::RETRY_AFTER))
            .is_some()
    );
    assert_eq!(sim.ports_in_use(), 1);
    // Originate is refused too.
    let r = sim.originate(outbound(9, "+15551230000", "local", secs(30)));
    assert!(matches!(r, Err(EngineError::OverCapacity(_))), "{r:?}");
}

#[test]
fn after_stop_accepting_new_calls_get_503() {
    let mut sim = Sim::new();
    sim.engine.stop_accepting();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 503]);
    assert!(sim.actions.is_empty());
    let r = sim.originate(outbound(9, "+15551230000", "local", secs(30)));
    assert_eq!(r, Err(EngineError::ShuttingDown));
}

#[test]
fn options_subscribe_unknown_method_and_stray_bye() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.request("OPTIONS"));
    assert_eq!(codes(&sent), vec![200]);
    let allow = find_resp(&sent, 200)
        .and_then(|r| r.header(&Name::ALLOW))
        .expect("Allow on OPTIONS 200");
    assert!(allow.contains("INVITE") && allow.contains("BYE"));

    let sent = sim.deliver(c.addr, &c.request("SUBSCRIBE"));
    assert_eq!(codes(&sent), vec![405]);
    assert!(
        find_resp(&sent, 405)
            .and_then(|r| r.header(&Name::ALLOW))
            .is_some()
    );

    let sent = sim.deliver(c.addr, &c.request("FROBNICATE"));
    assert_eq!(codes(&sent), vec![501]);

    c.to_tag = Some("nosuchtag".into());
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![481]);
    assert!(sim.actions.is_empty());
}

#[test]
fn garbage_and_damaged_invites_get_400_or_nothing() {
    let mut sim = Sim::new();
    assert!(
        sim.deliver_bytes(caller_addr(), b"\x00\x01garbage\xff")
            .is_empty()
    );
    let mut c = Caller::new("echo", 1);
    let inv = c.invite(&peer_sdp(6000, "sendrecv"));
    // Truncated in the head: unanswerable or 400, never a call.
    let cut = &inv[..inv.find("Call-ID").expect("header")];
    let sent = sim.deliver(c.addr, cut);
    assert!(codes(&sent).iter().all(|c| *c == 400), "{sent:?}");
    // Missing Call-ID.
    let no_cid: String = inv
        .lines()
        .filter(|l| !l.starts_with("Call-ID"))
        .map(|l| format!("{l}\n"))
        .collect();
    let sent = sim.deliver(c.addr, &no_cid);
    assert!(codes(&sent).iter().all(|c| *c == 400), "{sent:?}");
    // Content-Length larger than the body.
    let bad_len = inv.replace("Content-Length: ", "Content-Length: 9");
    let sent = sim.deliver(c.addr, &bad_len);
    assert!(codes(&sent).iter().all(|c| *c == 400), "{sent:?}");
    assert!(sim.actions.is_empty());
    assert_eq!(sim.ports_in_use(), 0);
}

#[test]
fn reinvite_hold_and_resume_update_the_leg() {
    let mut sim = Sim::new();
    let (mut c, id) = inbound_answered(&mut sim, "echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendonly")));
    assert_eq!(codes(&sent), vec![100, 200]);
    let ok = find_resp(&sent, 200).expect("200");
    let answer = SessionDescription::parse(ok.body()).expect("SDP");
    assert_eq!(
        answer.direction_of(&answer.media[0]),
        sdp::Direction::RecvOnly,
        "hold: we answer recvonly"
    );
    match sim.actions.last() {
        Some(Action::Media(MediaCommand::Update {
            call_id,
            send,
            remote,
            ..
        })) => {
            assert_eq!(*call_id, id);
            assert!(!send, "we stop sending while held");
            assert_eq!(*remote, Some(addr("127.0.0.1:6000")));
        }
        other => panic!("expected Update, got {other:?}"),
    }
    assert!(sim.deliver(c.addr, &c.ack()).is_empty());
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    assert_eq!(codes(&sent), vec![100, 200]);
    let answer = SessionDescription::parse(find_resp(&sent, 200).expect("200").body()).unwrap();
    assert_eq!(
        answer.direction_of(&answer.media[0]),
        sdp::Direction::SendRecv
    );
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Update { send: true, .. }))
    ));
    assert!(sim.deliver(c.addr, &c.ack()).is_empty());
    assert!(sim.finishes().is_empty());
    assert_eq!(sim.kinds().iter().filter(|k| **k == "Start").count(), 1);
}

// ---- outbound -------------------------------------------------------------------------------

/// Originates call `n` on `local` and returns the INVITE the trunk got.
fn dial(sim: &mut Sim, n: u128, ring_timeout: Duration) -> Request {
    sim.originate(outbound(n, "+15551230000", "local", ring_timeout))
        .expect("originate");
    let sent = sim.take_sent();
    assert_eq!(methods(&sent), vec!["INVITE"]);
    assert_eq!(sent[0].to, trunk_addr());
    sent[0].req().expect("INVITE").clone()
}

/// Answers `invite` with 180 then 200 from the far end; returns what the engine sent.
fn answer_call(sim: &mut Sim, invite: &Request) -> Vec<Sent> {
    let mut sent = sim.deliver(trunk_addr(), &reply(invite, 180, Some("far1"), "", ""));
    sent.extend(sim.deliver(
        trunk_addr(),
        &reply(invite, 200, Some("far1"), "", &far_sdp()),
    ));
    sent
}

#[test]
fn outbound_call_rings_answers_and_hangs_up_by_api() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    assert_eq!(inv.request_uri_user(), Some("+15551230000"));
    assert_eq!(inv.header(&Name::MAX_FORWARDS), Some("70"));
    assert!(inv.from_tag().is_some(), "From tag");
    assert!(inv.contact_uri().is_some(), "Contact");
    assert!(inv.branch().is_some_and(|b| b.starts_with("z9hG4bK")));
    let via = inv.top_via().expect("Via");
    assert_eq!(
        via.sent_by.ip(),
        Some(us().ip()),
        "Via sent-by is our address"
    );
    assert_eq!(via.sent_by.port, Some(us().port()));
    assert_eq!(via.rport, Some(None), "Via asks for rport (RFC 3581)");
    let offer = SessionDescription::parse(inv.body()).expect("SDP offer");
    let codecs: Vec<u8> = offer.media[0].payload_types().collect();
    assert!(codecs.contains(&0) && codecs.contains(&8), "{codecs:?}");
    assert_eq!(sim.kinds(), vec!["Insert"]);
    match &sim.actions[0] {
        Action::Store(StoreOp::Insert { call, .. }) => {
            assert_eq!(call.sip_call_id.as_deref(), inv.call_id());
            assert_eq!(call.status, CallStatus::Initiated);
        }
        other => panic!("{other:?}"),
    }

    let sent = sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    assert!(sent.is_empty());
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    assert!(sent.is_empty());
    assert_eq!(
        sim.kinds(),
        vec!["Insert", "Ringing"],
        "two 180s, one Ringing"
    );

    let ok = reply(&inv, 200, Some("far1"), "", &far_sdp());
    let sent = sim.deliver(trunk_addr(), &ok);
    assert_eq!(methods(&sent), vec!["ACK"]);
    let ack = sent[0].req().expect("ACK");
    assert_eq!(sent[0].to, trunk_addr());
    assert_eq!(ack.cseq().map(|c| c.cseq), inv.cseq().map(|c| c.cseq));
    assert_eq!(ack.to_tag().as_deref(), Some("far1"));
    assert_eq!(sim.kinds(), vec!["Insert", "Ringing", "Answered", "Start"]);
    let (_, _, session, mode) = sim.media_starts()[0].clone();
    assert!(matches!(mode, LegMode::Silence));
    assert_eq!(session.law, Law::Alaw, "the far end chose PCMA");
    assert_eq!(session.remote, Some(addr("127.0.0.1:7000")));
    assert_eq!(session.dtmf_pt, Some(101));

    // A retransmitted 200 (lost ACK) is ACKed again, now and after the transaction ended.
    let sent = sim.deliver(trunk_addr(), &ok);
    assert_eq!(methods(&sent), vec!["ACK"]);
    sim.advance(secs(40));
    let sent = sim.deliver(trunk_addr(), &ok);
    assert_eq!(methods(&sent), vec!["ACK"], "ACK after Timer M too");
    assert_eq!(sim.kinds().len(), 4, "no new action for a retransmission");

    sim.hangup(id).expect("hangup");
    let sent = sim.take_sent();
    assert_eq!(methods(&sent), vec!["BYE"]);
    let bye = sent[0].req().expect("BYE").clone();
    assert_eq!(bye.call_id(), inv.call_id());
    assert!(bye.cseq().expect("cseq").cseq > inv.cseq().expect("cseq").cseq);
    assert_eq!(sim.kinds().last(), Some(&"Stop"));
    assert!(
        sim.deliver(trunk_addr(), &reply(&bye, 200, None, "", ""))
            .is_empty()
    );
    sim.stopped(id, stats(9));
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.ended_by, EndedBy::Api);
    assert_eq!(f.stats, stats(9));
    sim.assert_all_settled();
}

#[test]
fn ring_timeout_cancels_at_exactly_the_timeout() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(20));
    sim.advance(ms(300));
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    sim.advance_until(|s| {
        s.wire
            .iter()
            .any(|w| w.method().as_deref() == Some("CANCEL"))
    });
    let cancel = sim
        .wire
        .iter()
        .find(|w| w.method().as_deref() == Some("CANCEL"))
        .expect("CANCEL")
        .clone();
    assert_eq!(cancel.at - sim.t0, secs(20), "CANCEL at the ring timeout");
    let creq = cancel.req().expect("req");
    assert_eq!(
        creq.branch(),
        inv.branch(),
        "CANCEL has the INVITE's branch"
    );
    assert_eq!(creq.cseq().map(|c| c.cseq), inv.cseq().map(|c| c.cseq));
    assert!(sim.finishes().is_empty());
    sim.take_sent();
    sim.deliver(trunk_addr(), &reply(creq, 200, None, "", ""));
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 487, Some("far1"), "", ""));
    assert_eq!(methods(&sent), vec!["ACK"], "the 487 is ACKed");
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::NoAnswer);
    assert_eq!(f.end.ended_by, EndedBy::System);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn hangup_while_ringing_cancels_and_finishes_canceled() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    sim.hangup(id).expect("hangup");
    let sent = sim.take_sent();
    assert_eq!(methods(&sent), vec!["CANCEL"]);
    assert_eq!(
        sim.hangup(id)
            .map_err(|e| matches!(e, EngineError::Conflict(_))),
        Err(true),
        "a second hangup is a conflict"
    );
    let creq = sent[0].req().expect("CANCEL").clone();
    sim.deliver(trunk_addr(), &reply(&creq, 200, None, "", ""));
    sim.deliver(trunk_addr(), &reply(&inv, 487, Some("far1"), "", ""));
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Canceled);
    assert_eq!(f.end.ended_by, EndedBy::Api);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn hangup_before_any_provisional_waits_for_the_first_1xx() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    sim.hangup(id).expect("hangup");
    assert!(
        methods(&sim.take_sent()).is_empty(),
        "no CANCEL before a provisional (RFC 3261 sec. 9.1)"
    );
    sim.advance(ms(200));
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 100, None, "", ""));
    assert_eq!(
        methods(&sent),
        vec!["CANCEL"],
        "100 Trying is a provisional"
    );
    let creq = sent[0].req().expect("CANCEL").clone();
    sim.deliver(trunk_addr(), &reply(&creq, 200, None, "", ""));
    sim.deliver(trunk_addr(), &reply(&inv, 487, Some("far1"), "", ""));
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Canceled);
    assert_eq!(f.end.ended_by, EndedBy::Api);
    assert!(sim.kinds().iter().all(|k| *k != "Ringing"));
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn hangup_before_any_provisional_cancels_on_a_later_180() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    sim.hangup(id).expect("hangup");
    assert!(sim.take_sent().is_empty());
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    assert_eq!(methods(&sent), vec!["CANCEL"]);
    sim.deliver(trunk_addr(), &reply(&inv, 487, Some("far1"), "", ""));
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Canceled);
}

#[test]
fn final_error_responses_map_to_statuses() {
    for (n, code, status) in [
        (1u128, 486u16, FinalStatus::Busy),
        (2, 603, FinalStatus::Busy),
        (3, 480, FinalStatus::NoAnswer),
        (4, 503, FinalStatus::Failed),
        (5, 404, FinalStatus::Failed),
    ] {
        let mut sim = Sim::new();
        let inv = dial(&mut sim, n, secs(30));
        sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
        let sent = sim.deliver(trunk_addr(), &reply(&inv, code, Some("far1"), "", ""));
        assert_eq!(methods(&sent), vec!["ACK"], "non-2xx ACKed ({code})");
        let ack = sent[0].req().expect("ACK");
        assert_eq!(
            ack.branch(),
            inv.branch(),
            "non-2xx ACK in the INVITE's transaction"
        );
        let f = sim.the_finish(Uuid::from_u128(n));
        assert_eq!(f.end.status, status, "{code}");
        assert_eq!(f.end.code, Some(code));
        assert_eq!(f.end.ended_by, EndedBy::Callee);
        sim.advance(secs(60));
        sim.assert_all_settled();
        sim.assert_no_state_left();
    }
}

#[test]
fn invite_into_total_loss_fails_on_timer_b_at_32_s() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let _inv = dial(&mut sim, 1, secs(120));
    sim.advance_until(|s| !s.finish_of(id).is_empty());
    let f = sim.the_finish(id);
    assert_eq!(f.at - sim.t0, secs(32), "Timer B = 64*T1");
    assert_eq!(sim.elapsed(), secs(32));
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(408));
    assert_eq!(f.end.ended_by, EndedBy::System);
    // Timer A: the INVITE is resent after T1, 2*T1, 4*T1... (RFC 3261 17.1.1.2; unlike
    // Timer E, Timer A has no T2 cap).
    let times: Vec<u64> = sim
        .wire
        .iter()
        .filter(|w| w.method().as_deref() == Some("INVITE"))
        .map(|w| (w.at - sim.t0).as_millis() as u64)
        .collect();
    assert_eq!(times, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    // The ring timer's stale heap entry goes at 120 s; then nothing is left.
    sim.advance(secs(100));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

// ---- digest authentication ------------------------------------------------------------------

const AUTH_TRUNK: &str = r#"
[[trunk]]
name = "auth"
address = "127.0.0.1:5070"
username = "alice"
password = "s3cret"
allowed_prefixes = ["*"]
"#;

/// Challenges the INVITE with `code` (401 or 407) and `algorithm`, and checks the retry.
fn digest_round(code: u16, algorithm: Algorithm) {
    let (challenge_header, answer_header) = if code == 407 {
        ("Proxy-Authenticate", Name::PROXY_AUTHORIZATION)
    } else {
        ("WWW-Authenticate", Name::AUTHORIZATION)
    };
    let mut sim = Sim::with(config_with_trunks(AUTH_TRUNK), 100, 10);
    let id = Uuid::from_u128(1);
    sim.originate(outbound(1, "+15551230000", "auth", secs(30)))
        .expect("originate");
    let first = sim.take_sent()[0].req().expect("INVITE").clone();
    assert!(first.header(&answer_header).is_none());
    let challenge = digest::make_challenge("trunk.test", "nonce-1", algorithm, Some("op"), false);
    let extra = format!("{challenge_header}: {challenge}\r\n");
    let sent = sim.deliver(trunk_addr(), &reply(&first, code, Some("far1"), &extra, ""));
    assert_eq!(
        methods(&sent),
        vec!["ACK", "INVITE"],
        "ACK the {code}, then retry"
    );
    let second = sent[1].req().expect("INVITE").clone();
    assert_eq!(second.call_id(), first.call_id(), "same Call-ID");
    assert_eq!(second.from_tag(), first.from_tag(), "same From tag");
    assert_eq!(second.to_tag(), None);
    assert_ne!(second.branch(), first.branch(), "new transaction");
    assert_eq!(
        second.cseq().map(|c| c.cseq),
        first.cseq().map(|c| c.cseq + 1),
        "CSeq + 1"
    );
    assert_eq!(second.body(), first.body(), "same offer");
    let value = second.header(&answer_header).expect("credentials");
    let resp = DigestResponse::parse(value).expect("digest response");
    assert_eq!(resp.username, "alice");
    assert_eq!(resp.nonce, "nonce-1");
    assert_eq!(resp.algorithm, algorithm);
    assert_eq!(resp.opaque.as_deref(), Some("op"));
    assert_eq!(resp.qop.as_deref(), Some("auth"));
    assert_eq!(
        resp.uri,
        uri_string(&second.line.uri),
        "digest uri = Request-URI"
    );
    assert!(
        digest::verify(&resp, "INVITE", "trunk.test", Secret::Password("s3cret")),
        "correct digest"
    );
    assert!(!digest::verify(
        &resp,
        "INVITE",
        "trunk.test",
        Secret::Password("wrong")
    ));
    // The authenticated INVITE is answered.
    answer_call(&mut sim, &second);
    assert_eq!(
        sim.kinds(),
        vec!["Insert", "Ringing", "Answered", "Start"],
        "one call, answered"
    );
    sim.hangup(id).expect("hangup");
    sim.stopped(id, stats(1));
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Completed);
}

#[test]
fn digest_401_md5_is_answered_with_authorization() {
    digest_round(401, Algorithm::Md5);
}

#[test]
fn digest_407_sha256_is_answered_with_proxy_authorization() {
    digest_round(407, Algorithm::Sha256);
}

#[test]
fn a_second_challenge_fails_the_call_without_a_loop() {
    let mut sim = Sim::with(config_with_trunks(AUTH_TRUNK), 100, 10);
    let id = Uuid::from_u128(1);
    sim.originate(outbound(1, "+15551230000", "auth", secs(30)))
        .expect("originate");
    let first = sim.take_sent()[0].req().expect("INVITE").clone();
    let ch = format!(
        "WWW-Authenticate: {}\r\n",
        digest::make_challenge("trunk.test", "n1", Algorithm::Md5, None, false)
    );
    let sent = sim.deliver(trunk_addr(), &reply(&first, 401, Some("t1"), &ch, ""));
    let second = sent[1].req().expect("INVITE").clone();
    let sent = sim.deliver(trunk_addr(), &reply(&second, 401, Some("t2"), &ch, ""));
    assert_eq!(methods(&sent), vec!["ACK"], "no third INVITE");
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(401));
    sim.advance(secs(60));
    assert!(methods(&sim.take_sent()).iter().all(|m| m == "ACK"));
    sim.assert_all_settled();
}

#[test]
fn a_challenge_on_a_trunk_without_credentials_fails() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    let ch = format!(
        "WWW-Authenticate: {}\r\n",
        digest::make_challenge("trunk.test", "n1", Algorithm::Md5, None, false)
    );
    let sent = sim.deliver(trunk_addr(), &reply(&inv, 401, Some("t1"), &ch, ""));
    assert_eq!(methods(&sent), vec!["ACK"]);
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Failed);
}

// ---- trunk caps -----------------------------------------------------------------------------

#[test]
fn trunk_caps_concurrency_rate_prefixes_and_names() {
    let trunks = r#"
[[trunk]]
name = "one"
address = "127.0.0.1:5070"
max_concurrent = 1
allowed_prefixes = ["*"]

[[trunk]]
name = "fast"
address = "127.0.0.1:5070"
max_cps = 2
allowed_prefixes = ["*"]

[[trunk]]
name = "us"
address = "127.0.0.1:5070"
allowed_prefixes = ["+1555"]
"#;
    let mut sim = Sim::with(config_with_trunks(trunks), 100, 20).auto_stop();
    // max_concurrent.
    sim.originate(outbound(1, "+15551230000", "one", secs(30)))
        .expect("first call");
    let inv1 = sim.take_sent()[0].req().expect("INVITE").clone();
    assert_eq!(
        sim.originate(outbound(2, "+15551230000", "one", secs(30))),
        Err(EngineError::TrunkAtCapacity("one".into()))
    );
    // Once the first call ends the trunk takes another.
    sim.deliver(trunk_addr(), &reply(&inv1, 486, Some("x"), "", ""));
    sim.the_finish(Uuid::from_u128(1));
    sim.originate(outbound(3, "+15551230000", "one", secs(30)))
        .expect("capacity back after the end");

    // max_cps: two in one simulated second, the third refused, OK a second later.
    sim.advance(secs(5));
    sim.originate(outbound(10, "+15551230000", "fast", secs(30)))
        .expect("1st");
    sim.advance(ms(400));
    sim.originate(outbound(11, "+15551230000", "fast", secs(30)))
        .expect("2nd");
    sim.advance(ms(500));
    assert_eq!(
        sim.originate(outbound(12, "+15551230000", "fast", secs(30))),
        Err(EngineError::TrunkRateLimited("fast".into()))
    );
    sim.advance(ms(100));
    sim.originate(outbound(13, "+15551230000", "fast", secs(30)))
        .expect("a second after the first");
    assert_eq!(
        sim.originate(outbound(14, "+15551230000", "fast", secs(30))),
        Err(EngineError::TrunkRateLimited("fast".into()))
    );
    sim.advance(secs(1));
    sim.originate(outbound(15, "+15551230000", "fast", secs(30)))
        .expect("next second");

    // allowed_prefixes.
    sim.originate(outbound(20, "+15559990000", "us", secs(30)))
        .expect("allowed prefix");
    assert!(matches!(
        sim.originate(outbound(21, "+442071234567", "us", secs(30))),
        Err(EngineError::DestinationNotAllowed { .. })
    ));
    // Unknown trunk.
    assert_eq!(
        sim.originate(outbound(30, "+15551230000", "nope", secs(30))),
        Err(EngineError::UnknownTrunk("nope".into()))
    );
    // Refused originates leave no trace.
    let refused = [2u128, 12, 14, 21, 30].map(Uuid::from_u128);
    assert!(sim.inserted_ids().iter().all(|i| !refused.contains(i)));
    // Everything placed ends (Timer B) and frees its port.
    sim.advance(secs(100));
    sim.assert_all_settled();
}

// ---- interleavings: exactly one Finish --------------------------------------------------------

/// An answered outbound call 1; returns its INVITE.
fn answered_outbound(sim: &mut Sim) -> Request {
    let inv = dial(sim, 1, secs(30));
    let sent = answer_call(sim, &inv);
    assert_eq!(methods(&sent), vec!["ACK"]);
    inv
}

/// The far end's in-dialog request (BYE, re-INVITE) toward us for the outbound call `inv`.
fn far_request(inv: &Request, method: &str, cseq: u32, body: &str) -> String {
    let from_tag = inv.from_tag().expect("our tag");
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:trunkline@{us} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {far};branch=z9hG4bK-far-{method}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15551230000@{far}>;tag=far1\r\n\
         To: <sip:+15550100000@{ip}>;tag={from_tag}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:far@{far}>\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        us = us(),
        far = trunk_addr(),
        ip = us().ip(),
        cid = inv.call_id().expect("Call-ID"),
        len = body.len(),
    )
}

#[test]
fn outbound_call_ended_by_the_far_end() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = answered_outbound(&mut sim);
    let sent = sim.deliver(trunk_addr(), &far_request(&inv, "BYE", 1, ""));
    assert_eq!(codes(&sent), vec![200]);
    sim.stopped(id, stats(3));
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.ended_by, EndedBy::Callee);
    sim.assert_all_settled();
}

#[test]
fn bye_crossing_our_bye_gives_one_finish() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = answered_outbound(&mut sim);
    sim.hangup(id).expect("hangup");
    let our_bye = sim.take_sent()[0].req().expect("BYE").clone();
    let sent = sim.deliver(trunk_addr(), &far_request(&inv, "BYE", 1, ""));
    assert_eq!(codes(&sent), vec![200], "their BYE is answered");
    sim.deliver(trunk_addr(), &reply(&our_bye, 481, None, "", ""));
    sim.stopped(id, stats(4));
    let f = sim.the_finish(id);
    assert_eq!(f.end.ended_by, EndedBy::Api, "the first decided end stays");
    assert_eq!(f.end.status, FinalStatus::Completed);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn caller_bye_crossing_our_prompt_bye_gives_one_finish() {
    let mut sim = Sim::new();
    let (mut c, id) = inbound_answered(&mut sim, "tone", 1);
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![200]);
    // A late media event changes nothing.
    sim.media_event(MediaEvent::NoMedia { call_id: id });
    sim.stopped(id, stats(2));
    let f = sim.the_finish(id);
    assert_eq!(f.end.ended_by, EndedBy::System);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn cancel_crossing_a_200_acks_and_byes_and_keeps_canceled() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    sim.hangup(id).expect("hangup");
    let cancel = sim.take_sent()[0].req().expect("CANCEL").clone();
    // The far end answered before it saw the CANCEL.
    let ok = reply(&inv, 200, Some("far1"), "", &far_sdp());
    let sent = sim.deliver(trunk_addr(), &ok);
    assert_eq!(methods(&sent), vec!["ACK", "BYE"]);
    let bye = sent[1].req().expect("BYE").clone();
    assert_eq!(bye.to_tag().as_deref(), Some("far1"));
    // Its 200 to the CANCEL, the 200 to the BYE, and a retransmitted 200 to the INVITE.
    sim.deliver(trunk_addr(), &reply(&cancel, 200, None, "", ""));
    sim.deliver(trunk_addr(), &reply(&bye, 200, None, "", ""));
    sim.deliver(trunk_addr(), &ok);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Canceled);
    assert_eq!(f.end.ended_by, EndedBy::Api);
    assert!(
        !sim.kinds().contains(&"Answered") && !sim.kinds().contains(&"Start"),
        "a cancelled call is never reported answered: {:?}",
        sim.kinds()
    );
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn ring_timeout_crossing_a_200_keeps_no_answer() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(10));
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    sim.advance(secs(10));
    assert_eq!(methods(&sim.take_sent()), vec!["CANCEL"]);
    let sent = sim.deliver(
        trunk_addr(),
        &reply(&inv, 200, Some("far1"), "", &far_sdp()),
    );
    assert_eq!(methods(&sent), vec!["ACK", "BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::NoAnswer);
    assert_eq!(f.end.ended_by, EndedBy::System);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn a_200_after_a_pending_cancel_is_acked_and_byed() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    sim.hangup(id).expect("hangup");
    let sent = sim.deliver(
        trunk_addr(),
        &reply(&inv, 200, Some("far1"), "", &far_sdp()),
    );
    assert_eq!(methods(&sent), vec!["ACK", "BYE"]);
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Canceled);
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn cancel_never_answered_ends_on_the_guard() {
    let mut sim = Sim::new().auto_stop();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(5));
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    // Nothing answers the CANCEL nor the INVITE.
    sim.advance_until(|s| !s.finish_of(id).is_empty());
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::NoAnswer);
    assert!(
        f.at - sim.t0 <= secs(5) + CANCEL_GUARD,
        "{:?}",
        f.at - sim.t0
    );
    sim.advance(secs(100));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn a_2xx_from_another_fork_is_acked_and_byed_without_touching_the_call() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = answered_outbound(&mut sim);
    let before = sim.kinds().len();
    let sent = sim.deliver(
        trunk_addr(),
        &reply(&inv, 200, Some("fork2"), "", &far_sdp()),
    );
    assert_eq!(methods(&sent), vec!["ACK", "BYE"]);
    assert!(
        sent.iter()
            .all(|s| s.req().and_then(Request::to_tag).as_deref() == Some("fork2"))
    );
    assert_eq!(sim.kinds().len(), before);
    assert!(sim.finishes().is_empty());
    sim.hangup(id).expect("call still up");
}

#[test]
fn a_2xx_without_usable_sdp_fails_the_call_with_bye() {
    let mut sim = Sim::new().auto_stop();
    let id = Uuid::from_u128(1);
    let inv = dial(&mut sim, 1, secs(30));
    let sent = sim.deliver(
        trunk_addr(),
        &reply(&inv, 200, Some("far1"), "", &g729_sdp()),
    );
    assert_eq!(methods(&sent), vec!["ACK", "BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(488));
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn inbound_call_without_ack_is_hung_up_after_timer_l() {
    let mut sim = Sim::new().auto_stop();
    let mut c = Caller::new("echo", 1);
    sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    let id = sim.inserted_ids()[0];
    sim.advance_until(|s| !s.finish_of(id).is_empty());
    let sent = sim.take_sent();
    assert!(
        codes(&sent).iter().all(|c| *c == 200),
        "2xx retransmissions"
    );
    assert!(codes(&sent).len() >= 5, "2xx resent until Timer L");
    assert_eq!(methods(&sent), vec!["BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(408));
    assert_eq!(f.at - sim.t0, secs(32));
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn no_media_timeout_hangs_up() {
    let mut sim = Sim::new();
    let (_c, id) = inbound_answered(&mut sim, "echo", 1);
    sim.media_event(MediaEvent::NoMedia { call_id: id });
    assert_eq!(methods(&sim.take_sent()), vec!["BYE"]);
    sim.stopped(id, stats(0));
    let f = sim.the_finish(id);
    assert_eq!(f.end.ended_by, EndedBy::System);
    assert_eq!(f.end.status, FinalStatus::Completed);
}

#[test]
fn a_leg_that_stops_on_its_own_ends_the_call_once() {
    let mut sim = Sim::new();
    let (mut c, id) = inbound_answered(&mut sim, "echo", 1);
    // The media worker lost the leg (e.g. its socket failed) without being told to stop.
    sim.stopped(id, stats(6));
    assert_eq!(sim.ports_in_use(), 0);
    let sent = sim.take_sent();
    let f = sim.the_finish(id);
    assert_eq!(f.end.ended_by, EndedBy::System);
    assert_eq!(f.end.status, FinalStatus::Failed, "a media failure");
    assert_eq!(f.stats, stats(6));
    assert_eq!(methods(&sent), vec!["BYE"], "the caller is told");
    // The caller's own BYE later finds no call.
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![481]);
    assert_eq!(sim.finish_of(id).len(), 1);
}

#[test]
fn hangup_all_ends_every_call_once() {
    let mut sim = Sim::new().auto_stop();
    inbound_answered(&mut sim, "echo", 1);
    inbound_answered(&mut sim, "tone", 2);
    let ringing = dial(&mut sim, 10, secs(30));
    sim.deliver(trunk_addr(), &reply(&ringing, 180, Some("r"), "", ""));
    let _calling = dial(&mut sim, 11, secs(30));
    let answered = dial(&mut sim, 12, secs(30));
    answer_call(&mut sim, &answered);
    sim.engine.stop_accepting();
    sim.engine.hangup_all(sim.now);
    sim.drain();
    let sent = sim.take_sent();
    let m = methods(&sent);
    assert_eq!(m.iter().filter(|m| *m == "BYE").count(), 3, "{m:?}");
    assert_eq!(m.iter().filter(|m| *m == "CANCEL").count(), 1, "{m:?}");
    // The ringing one answers 487.
    sim.deliver(trunk_addr(), &reply(&ringing, 487, Some("r"), "", ""));
    sim.advance(secs(100));
    sim.assert_all_settled();
    assert_eq!(
        sim.the_finish(Uuid::from_u128(10)).end.status,
        FinalStatus::Canceled
    );
    assert_eq!(
        sim.the_finish(Uuid::from_u128(12)).end.status,
        FinalStatus::Completed
    );
}

// ---- property tests ---------------------------------------------------------------------------

/// What the far end of an outbound call, the API and the media worker may do, in any order.
#[derive(Debug, Clone)]
enum OutOp {
    /// The far end answers the latest INVITE with this code.
    Respond(u16),
    /// The far end answers our latest CANCEL or BYE with 200.
    AnswerOurs,
    /// The far end hangs up.
    FarBye,
    /// The API hangs up.
    Hangup,
    /// The media worker reports no media.
    NoMedia,
    /// The media worker answers outstanding Stops.
    WorkerStops,
    /// Simulated time passes (ms).
    Wait(u64),
    /// The network duplicates the last message to the engine.
    Replay,
}

fn out_op() -> impl Strategy<Value = OutOp> {
    prop_oneof![
        prop::sample::select(vec![100u16, 180, 183, 200, 401, 486, 487, 503, 603])
            .prop_map(OutOp::Respond),
        Just(OutOp::AnswerOurs),
        Just(OutOp::FarBye),
        Just(OutOp::Hangup),
        Just(OutOp::NoMedia),
        Just(OutOp::WorkerStops),
        (0u64..40_000).prop_map(OutOp::Wait),
        Just(OutOp::Replay),
    ]
}

/// One outbound call under a random script.
struct OutCall {
    id: Uuid,
    sip_call_id: String,
    far_cseq: u32,
}

/// Originates call `n` on the `auth` trunk (so a 401 is answered once).
fn start_out(sim: &mut Sim, n: u128) -> OutCall {
    sim.originate(outbound(n, "+15551230000", "auth", secs(20)))
        .expect("originate");
    let inv = sim.take_sent()[0].req().expect("INVITE").clone();
    OutCall {
        id: Uuid::from_u128(n),
        sip_call_id: inv.call_id().expect("Call-ID").to_string(),
        far_cseq: 0,
    }
}

/// The last `method` request the engine sent in the SIP call `sip_call_id`.
fn last_req(sim: &Sim, sip_call_id: &str, method: &str) -> Option<Request> {
    sim.wire
        .iter()
        .rev()
        .filter_map(Sent::req)
        .find(|r| r.method().to_string() == method && r.call_id() == Some(sip_call_id))
        .cloned()
}

fn apply_out(sim: &mut Sim, call: &mut OutCall, op: &OutOp) {
    let cid = call.sip_call_id.clone();
    match op {
        OutOp::Respond(code) => {
            let inv = last_req(sim, &cid, "INVITE").expect("an INVITE");
            let extra = if *code == 401 {
                format!(
                    "WWW-Authenticate: {}\r\n",
                    digest::make_challenge("r", "n", Algorithm::Md5, None, false)
                )
            } else {
                String::new()
            };
            let body = if *code == 200 {
                far_sdp()
            } else {
                String::new()
            };
            let tag = (*code != 100).then_some("far1");
            sim.deliver(trunk_addr(), &reply(&inv, *code, tag, &extra, &body));
        }
        OutOp::AnswerOurs => {
            for m in ["CANCEL", "BYE"] {
                if let Some(r) = last_req(sim, &cid, m) {
                    sim.deliver(trunk_addr(), &reply(&r, 200, None, "", ""));
                }
            }
        }
        OutOp::FarBye => {
            let inv = last_req(sim, &cid, "INVITE").expect("an INVITE");
            call.far_cseq += 1;
            sim.deliver(trunk_addr(), &far_request(&inv, "BYE", call.far_cseq, ""));
        }
        OutOp::Hangup => {
            let _ = sim.hangup(call.id);
        }
        OutOp::NoMedia => sim.media_event(MediaEvent::NoMedia { call_id: call.id }),
        OutOp::WorkerStops => sim.answer_stops(),
        OutOp::Wait(n) => sim.advance(ms(*n)),
        OutOp::Replay => sim.replay(),
    }
}

/// Lets everything run out: the far ends stop sending RTP at last, so the worker reports no
/// media for every call (also those a late replayed INVITE created); it answers Stops; timers
/// fire. Then every call has ended once.
fn run_out(sim: &mut Sim) {
    for id in sim.inserted_ids() {
        sim.media_event(MediaEvent::NoMedia { call_id: id });
    }
    for _ in 0..4 {
        sim.answer_stops();
        sim.advance(secs(100));
    }
    sim.answer_stops();
    sim.assert_orderly();
    sim.assert_all_settled();
    sim.advance(secs(400));
    sim.assert_no_state_left();
}

fn run_outbound(ops: &[OutOp]) {
    let mut sim = Sim::with(config_with_trunks(AUTH_TRUNK), 100, 4);
    let mut call = start_out(&mut sim, 1);
    for op in ops {
        apply_out(&mut sim, &mut call, op);
        sim.assert_orderly();
        assert!(sim.finish_of(call.id).len() <= 1);
    }
    run_out(&mut sim);
}

/// What the caller of an inbound call, the API and the media worker may do.
#[derive(Debug, Clone)]
enum InOp {
    Ack,
    Bye,
    Hold,
    Resume,
    Cancel,
    Options,
    Hangup,
    NoMedia,
    PlayFinished,
    WorkerStops,
    Wait(u64),
    Replay,
}

fn in_op() -> impl Strategy<Value = InOp> {
    prop_oneof![
        Just(InOp::Ack),
        Just(InOp::Bye),
        Just(InOp::Hold),
        Just(InOp::Resume),
        Just(InOp::Cancel),
        Just(InOp::Options),
        Just(InOp::Hangup),
        Just(InOp::NoMedia),
        Just(InOp::PlayFinished),
        Just(InOp::WorkerStops),
        (0u64..40_000).prop_map(InOp::Wait),
        Just(InOp::Replay),
    ]
}

/// One inbound call under a random script.
struct InCall {
    caller: Caller,
    id: Uuid,
}

/// Caller `n` calls `route`; the engine answers at once.
fn start_in(sim: &mut Sim, route: &str, n: u32) -> InCall {
    let mut caller = Caller::new(route, n);
    let inv = caller.invite(&peer_sdp(6000 + 2 * n as u16, "sendrecv"));
    let sent = sim.deliver(caller.addr, &inv);
    caller.learn(&sent);
    let id = *sim.inserted_ids().last().expect("a call");
    InCall { caller, id }
}

fn apply_in(sim: &mut Sim, call: &mut InCall, op: &InOp) {
    let c = &mut call.caller;
    match op {
        InOp::Ack => {
            let ack = c.ack();
            sim.deliver(c.addr, &ack);
        }
        InOp::Bye => {
            let bye = c.request("BYE");
            sim.deliver(c.addr, &bye);
        }
        InOp::Hold | InOp::Resume => {
            let dir = if matches!(op, InOp::Hold) {
                "sendonly"
            } else {
                "sendrecv"
            };
            let re = c.invite(&peer_sdp(6000, dir));
            sim.deliver(c.addr, &re);
        }
        InOp::Cancel => {
            // A CANCEL of the first INVITE (same branch and CSeq number).
            let first_branch = format!("z9hG4bK-{}-1", c.from_tag);
            let saved = c.to_tag.take();
            let cancel = c.text("CANCEL", 1, &first_branch, "");
            c.to_tag = saved;
            sim.deliver(c.addr, &cancel);
        }
        InOp::Options => {
            let o = c.request("OPTIONS");
            sim.deliver(c.addr, &o);
        }
        InOp::Hangup => {
            let _ = sim.hangup(call.id);
        }
        InOp::NoMedia => sim.media_event(MediaEvent::NoMedia { call_id: call.id }),
        InOp::PlayFinished => sim.media_event(MediaEvent::PlayFinished { call_id: call.id }),
        InOp::WorkerStops => sim.answer_stops(),
        InOp::Wait(n) => sim.advance(ms(*n)),
        InOp::Replay => sim.replay(),
    }
}

fn run_inbound(route: &str, ops: &[InOp]) {
    let mut sim = Sim::with(Config::embedded(), 100, 4);
    let mut call = start_in(&mut sim, route, 1);
    for op in ops {
        apply_in(&mut sim, &mut call, op);
        sim.assert_orderly();
        assert!(sim.finish_of(call.id).len() <= 1);
    }
    run_out(&mut sim);
}

/// A step of the many-calls property: which call, and what happens to it.
#[derive(Debug, Clone)]
enum AnyOp {
    Out(usize, OutOp),
    In(usize, InOp),
}

fn run_many(ops: &[AnyOp]) {
    let mut sim = Sim::with(config_with_trunks(AUTH_TRUNK), 100, 8);
    let mut outs: Vec<OutCall> = (1..=3).map(|n| start_out(&mut sim, n)).collect();
    let mut ins: Vec<InCall> = vec![
        start_in(&mut sim, "echo", 1),
        start_in(&mut sim, "tone", 2),
        start_in(&mut sim, "echo", 3),
    ];
    for op in ops {
        match op {
            AnyOp::Out(i, op) => {
                let n = outs.len();
                apply_out(&mut sim, &mut outs[i % n], op);
            }
            AnyOp::In(i, op) => {
                let n = ins.len();
                apply_in(&mut sim, &mut ins[i % n], op);
            }
        }
        sim.assert_orderly();
    }
    run_out(&mut sim);
}

/// A valid INVITE to `echo` for the mutation test.
fn valid_invite() -> String {
    Caller::new("echo", 99).invite(&peer_sdp(6100, "sendrecv"))
}

proptest! {
    // Failures are turned into plain tests below (`regressions_found_by_the_properties`), not
    // kept in a `proptest-regressions` folder at the top of the crate.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn outbound_interleavings_end_every_call_exactly_once(
        ops in prop::collection::vec(out_op(), 0..14)
    ) {
        run_outbound(&ops);
    }

    #[test]
    fn inbound_interleavings_end_every_call_exactly_once(
        tone in any::<bool>(),
        ops in prop::collection::vec(in_op(), 0..14)
    ) {
        run_inbound(if tone { "tone" } else { "echo" }, &ops);
    }

    #[test]
    fn random_bytes_never_panic_and_never_make_calls(
        bytes in prop::collection::vec(any::<u8>(), 0..600)
    ) {
        let mut sim = Sim::new();
        let sent = sim.deliver_bytes(caller_addr(), &bytes);
        prop_assert!(codes(&sent).iter().all(|c| *c == 400), "{:?}", sent);
        prop_assert!(sim.actions.is_empty());
        sim.advance(secs(400));
        sim.assert_no_state_left();
    }

    #[test]
    fn mutated_invites_get_400_or_a_call_and_never_disturb_a_live_call(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..5, any::<u8>()), 1..6)
    ) {
        let mut sim = Sim::new().auto_stop();
        // The validating parser lets some damage through (e.g. a NUL in the From value);
        // our answers and in-dialog requests echo it, so only their syntax is checked here.
        sim.strict = false;
        let (mut live, live_id) = inbound_answered(&mut sim, "echo", 1);
        let mut inv = valid_invite().into_bytes();
        for (at, kind, byte) in edits {
            if inv.is_empty() {
                break;
            }
            let i = at.index(inv.len());
            match kind {
                0 => inv[i] = byte,
                1 => { inv.remove(i); }
                2 => inv.insert(i, byte),
                3 => inv.truncate(i),
                _ => {
                    // Drop the line containing i.
                    let start = inv[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                    let end = inv[i..].iter().position(|b| *b == b'\n').map_or(inv.len(), |p| i + p + 1);
                    inv.drain(start..end);
                }
            }
        }
        let sent = sim.deliver_bytes(caller_addr(), &inv);
        sim.lenient_only = 0;
        for code in codes(&sent) {
            prop_assert!(
                matches!(code, 100 | 180 | 200) || (400..700).contains(&code),
                "unexpected {}", code
            );
        }
        // The live call is untouched and still ends normally.
        prop_assert!(sim.finish_of(live_id).is_empty());
        let bye = live.request("BYE");
        let sent = sim.deliver(live.addr, &bye);
        prop_assert_eq!(codes(&sent), vec![200]);
        prop_assert_eq!(sim.finish_of(live_id).len(), 1);
        // Whatever the mutant started ends too (no ACK: Timer L).
        sim.advance(secs(100));
        sim.assert_orderly();
        sim.lenient_only = 0;
        sim.assert_all_settled();
        sim.advance(secs(400));
        sim.assert_no_state_left();
    }
}

// ---- more inbound behaviour -------------------------------------------------------------------

#[test]
fn in_dialog_requests_must_match_the_dialog_tags() {
    let mut sim = Sim::new();
    let (mut c, id) = inbound_answered(&mut sim, "echo", 1);
    let good_tag = c.to_tag.clone();
    // Right Call-ID, wrong To tag: another dialog, which does not exist (RFC 3261 12.2.2).
    c.to_tag = Some("not-our-tag".into());
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![481]);
    // Right To tag, wrong From tag.
    c.to_tag = good_tag;
    let real_from = std::mem::replace(&mut c.from_tag, "intruder".into());
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![481]);
    assert!(sim.finishes().is_empty() && !sim.kinds().contains(&"Stop"));
    c.from_tag = real_from;
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![200]);
    sim.stopped(id, stats(1));
    sim.the_finish(id);
}

#[test]
fn invite_retransmissions_are_absorbed_and_a_second_branch_is_a_loop() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let inv = c.invite(&peer_sdp(6000, "sendrecv"));
    assert_eq!(codes(&sim.deliver(c.addr, &inv)), vec![100, 180, 200]);
    // Same branch: the layer resends the 2xx, no new call.
    let sent = sim.deliver(c.addr, &inv);
    assert!(codes(&sent).iter().all(|c| *c == 200), "{sent:?}");
    // Same Call-ID, new branch, no To tag: a merged request.
    let again = c.text("INVITE", 1, "z9hG4bK-other", &peer_sdp(6000, "sendrecv"));
    assert_eq!(codes(&sim.deliver(c.addr, &again)), vec![100, 482]);
    assert_eq!(sim.inserted_ids().len(), 1);
    assert_eq!(sim.ports_in_use(), 1);
}

#[test]
fn offerless_invite_gets_our_offer_and_media_starts_on_the_ack() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(""));
    assert_eq!(codes(&sent), vec![100, 180, 200]);
    let offer = SessionDescription::parse(find_resp(&sent, 200).expect("200").body())
        .expect("our offer in the 200");
    assert!(offer.media[0].payload_types().any(|p| p == 0));
    assert!(
        !sim.kinds().contains(&"Start"),
        "no media before the answer"
    );
    c.learn(&sent);
    let b = c.branch();
    let ack = c.text("ACK", 1, &b, &far_sdp());
    assert!(sim.deliver(c.addr, &ack).is_empty());
    let (_, _, session, mode) = sim.media_starts()[0].clone();
    assert_eq!(session.law, Law::Alaw);
    assert_eq!(session.remote, Some(addr("127.0.0.1:7000")));
    assert!(matches!(mode, LegMode::Echo));
}

#[test]
fn offerless_invite_with_an_ack_without_answer_fails_with_bye() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(""));
    c.learn(&sent);
    let id = sim.inserted_ids()[0];
    let sent = sim.deliver(c.addr, &c.ack());
    assert_eq!(methods(&sent), vec!["BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(488));
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn in_dialog_cseq_out_of_order_gets_500_and_info_gets_200() {
    let mut sim = Sim::new();
    let (mut c, _id) = inbound_answered(&mut sim, "echo", 1);
    c.cseq = 10;
    assert_eq!(codes(&sim.deliver(c.addr, &c.request("INFO"))), vec![200]);
    c.cseq = 3;
    assert_eq!(codes(&sim.deliver(c.addr, &c.request("BYE"))), vec![500]);
    assert!(sim.finishes().is_empty());
}

#[test]
fn reinvite_without_common_codec_gets_488_and_the_call_goes_on() {
    let mut sim = Sim::new();
    let (mut c, id) = inbound_answered(&mut sim, "echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&g729_sdp()));
    assert_eq!(codes(&sent), vec![100, 488]);
    assert!(!sim.kinds().contains(&"Update"));
    let sent = sim.deliver(c.addr, &c.request("BYE"));
    assert_eq!(codes(&sent), vec![200]);
    sim.stopped(id, stats(1));
    assert_eq!(sim.the_finish(id).end.status, FinalStatus::Completed);
}

#[test]
fn inbound_call_row_and_dtmf_and_api_play() {
    let mut sim = Sim::new();
    assert!(matches!(
        sim.engine
            .play(sim.now, Uuid::from_u128(5), tone_prompt(), false),
        Err(EngineError::NotFound(_))
    ));
    let (mut c, id) = inbound_answered(&mut sim, "tone", 1);
    match &sim.actions[0] {
        Action::Store(StoreOp::Insert { call, .. }) => {
            assert_eq!(call.direction, Direction::Inbound);
            assert_eq!(call.to, "tone");
            assert_eq!(call.sip_call_id.as_deref(), Some("call-1@127.0.0.1"));
            assert!(call.from.contains("sipp"), "{}", call.from);
        }
        other => panic!("{other:?}"),
    }
    sim.media_event(MediaEvent::Dtmf {
        call_id: id,
        digit: '5',
        duration: ms(120),
    });
    match sim.actions.last() {
        Some(Action::Store(StoreOp::Event { kind, payload, .. })) => {
            assert_eq!(*kind, "call.dtmf");
            assert_eq!(payload["digit"], "5");
            assert_eq!(payload["duration_ms"], 120);
        }
        other => panic!("{other:?}"),
    }
    sim.engine.dtmf(id, "12#".into()).expect("dtmf");
    sim.engine
        .play(sim.now, id, tone_prompt(), true)
        .expect("play");
    sim.drain();
    assert_eq!(
        &sim.kinds()[sim.kinds().len() - 3..],
        ["Dtmf", "Play", "Event"],
        "the prompt, then play.started"
    );
    // An API prompt ending does not hang up (only the route's prompt does).
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    assert!(sim.take_sent().is_empty());
    assert!(sim.finishes().is_empty());
    assert_eq!(codes(&sim.deliver(c.addr, &c.request("BYE"))), vec![200]);
    sim.stopped(id, stats(1));
    assert_eq!(sim.the_finish(id).end.ended_by, EndedBy::Caller);
    assert!(matches!(
        sim.engine.dtmf(id, "1".into()),
        Err(EngineError::NotFound(_))
    ));
}

#[test]
fn inbound_call_over_tcp_answers_on_tcp_without_retransmissions() {
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let inv = c
        .invite(&peer_sdp(6000, "sendrecv"))
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    sim.engine
        .handle_datagram(sim.now, c.addr, Transport::Tcp, inv.as_bytes());
    sim.drain();
    let sent = sim.take_sent();
    assert_eq!(codes(&sent), vec![100, 180, 200]);
    let ok = find_resp(&sent, 200).expect("200");
    let contact = ok.header(&Name::CONTACT).expect("Contact");
    assert!(contact.contains("transport=tcp"), "{contact}");
    assert!(sent.iter().all(|s| s.transport == Transport::Tcp));
    // No ACK yet, but TCP is reliable: the layer does not resend the 2xx on a timer.
    sim.advance(secs(10));
    assert!(sim.take_sent().is_empty());
    c.learn(&sent);
    let ack = c.ack().replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    sim.engine
        .handle_datagram(sim.now, c.addr, Transport::Tcp, ack.as_bytes());
    sim.drain();
    let id = sim.inserted_ids()[0];
    sim.media_event(MediaEvent::NoMedia { call_id: id });
    let sent = sim.take_sent();
    assert_eq!(methods(&sent), vec!["BYE"]);
    assert_eq!(
        sent[0].transport,
        Transport::Tcp,
        "in-dialog requests on the same transport"
    );
}

// ---- more outbound behaviour ------------------------------------------------------------------

#[test]
fn session_progress_counts_as_ringing_and_a_sip_uri_destination_is_used_as_is() {
    let mut sim = Sim::new();
    sim.originate(outbound(1, "sip:alice@127.0.0.1:5070", "local", secs(30)))
        .expect("originate");
    let inv = sim.take_sent()[0].req().expect("INVITE").clone();
    assert_eq!(uri_string(&inv.line.uri), "sip:alice@127.0.0.1:5070");
    sim.deliver(trunk_addr(), &reply(&inv, 183, Some("far1"), "", ""));
    assert_eq!(sim.kinds(), vec!["Insert", "Ringing"]);
    sim.deliver(trunk_addr(), &reply(&inv, 180, Some("far1"), "", ""));
    assert_eq!(sim.kinds(), vec!["Insert", "Ringing"]);
}

#[test]
fn a_transport_error_fails_the_call() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    dial(&mut sim, 1, secs(30));
    sim.engine
        .handle_transport_error(sim.now, trunk_addr(), Transport::Udp);
    sim.drain();
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Failed);
    assert_eq!(f.end.code, Some(503));
    sim.assert_all_settled();
}

#[test]
fn api_commands_on_unanswered_or_unknown_calls() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    dial(&mut sim, 1, secs(30));
    assert!(matches!(
        sim.engine.dtmf(id, "1".into()),
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        sim.engine.play(sim.now, id, tone_prompt(), false),
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(
        sim.hangup(Uuid::from_u128(77)),
        Err(EngineError::NotFound(Uuid::from_u128(77)))
    );
}

proptest! {
    // Each case runs several calls to their end: fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    #[test]
    fn sipp_like_calls_at_any_loss_end_once_and_leave_nothing(
        seed in any::<u64>(),
        loss in 0.0f64..0.95,
    ) {
        let out = lossy_calls(seed, loss, 6);
        prop_assert!(out.finishes <= 6);
    }

    #[test]
    fn many_calls_interleaved_end_every_call_exactly_once(
        ops in prop::collection::vec(
            prop_oneof![
                (0usize..3, out_op()).prop_map(|(i, op)| AnyOp::Out(i, op)),
                (0usize..3, in_op()).prop_map(|(i, op)| AnyOp::In(i, op)),
            ],
            0..40,
        )
    ) {
        run_many(&ops);
    }
}

#[test]
fn far_end_reinvite_on_an_outbound_call_holds_and_resumes() {
    let mut sim = Sim::new();
    let id = Uuid::from_u128(1);
    let inv = answered_outbound(&mut sim);
    let sent = sim.deliver(
        trunk_addr(),
        &far_request(&inv, "INVITE", 1, &peer_sdp(7100, "sendonly")),
    );
    assert_eq!(codes(&sent), vec![100, 200]);
    let answer = SessionDescription::parse(find_resp(&sent, 200).expect("200").body()).unwrap();
    assert_eq!(
        answer.direction_of(&answer.media[0]),
        sdp::Direction::RecvOnly
    );
    match sim.actions.last() {
        Some(Action::Media(MediaCommand::Update {
            call_id,
            send,
            remote,
            ..
        })) => {
            assert_eq!(*call_id, id);
            assert!(!send);
            assert_eq!(*remote, Some(addr("127.0.0.1:7100")), "new far-end address");
        }
        other => panic!("{other:?}"),
    }
    // Inactive, then hold by c=0.0.0.0 (RFC 2543 style): still no sending.
    let sent = sim.deliver(
        trunk_addr(),
        &far_request(&inv, "INVITE", 2, &peer_sdp(7100, "inactive")),
    );
    let answer = SessionDescription::parse(find_resp(&sent, 200).expect("200").body()).unwrap();
    assert_eq!(
        answer.direction_of(&answer.media[0]),
        sdp::Direction::Inactive
    );
    let zero = peer_sdp(7100, "sendrecv").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let sent = sim.deliver(trunk_addr(), &far_request(&inv, "INVITE", 3, &zero));
    assert_eq!(codes(&sent), vec![100, 200]);
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Update {
            send: false,
            remote: None,
            ..
        }))
    ));
    let sent = sim.deliver(
        trunk_addr(),
        &far_request(&inv, "INVITE", 4, &peer_sdp(7100, "sendrecv")),
    );
    assert_eq!(codes(&sent), vec![100, 200]);
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Update { send: true, .. }))
    ));
    assert!(sim.finishes().is_empty());
}

// ---- a SIPp-like caller with its own transaction layer over a lossy network -------------------

/// A seeded in-memory UDP network: each datagram is lost with probability `loss`, else
/// delivered after a delay in `delay`.
struct LossyNet {
    rng: SmallRng,
    loss: f64,
    delay: (u64, u64),
    seq: u64,
    in_flight: Vec<(Instant, u64, SocketAddr, SocketAddr, bytes::Bytes)>,
}

impl LossyNet {
    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: bytes::Bytes) {
        if self.rng.gen_bool(self.loss) {
            return;
        }
        self.seq += 1;
        let d = ms(self.rng.gen_range(self.delay.0..=self.delay.1));
        self.in_flight.push((now + d, self.seq, from, to, payload));
    }

    fn next_at(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.0).min()
    }

    fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, bytes::Bytes)> {
        let i = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, p)| p.0 <= now)
            .min_by_key(|(_, p)| (p.0, p.1))
            .map(|(i, _)| i)?;
        let (_, _, from, to, payload) = self.in_flight.swap_remove(i);
        Some((from, to, payload))
    }
}

/// One call of the far-end UAC.
struct PeerCall {
    invite: Request,
    dialog: Option<Dialog>,
    ack: Option<Request>,
    bye_at: Option<Instant>,
    /// The call ended for the peer (BYE answered, final error, timeout, or BYE from us).
    done: bool,
}

/// Outcome counts of [`lossy_calls`].
#[derive(Debug, Default)]
struct LossyOutcome {
    finishes: usize,
    completed_by_caller: usize,
    peer_done: usize,
}

/// `calls` calls from a UAC with a real transaction layer (retransmissions, ACK per 2xx)
/// to `echo`, one every 50 ms, each hung up 2 s after the answer, over a network losing
/// `loss` of the datagrams. Checks that every call the engine saw ends exactly once and that
/// no state is left, and returns the outcome counts.
fn lossy_calls(seed: u64, loss: f64, calls: u32) -> LossyOutcome {
    let mut sim = Sim::new().auto_stop();
    let peer_addr = caller_addr();
    let mut peer = TransactionLayer::new(TransactionConfig::new(peer_addr), seed);
    let mut net = LossyNet {
        rng: SmallRng::seed_from_u64(seed),
        loss,
        delay: (5, 40),
        seq: 0,
        in_flight: Vec::new(),
    };
    let mut pcalls: HashMap<String, PeerCall> = HashMap::new();
    let mut next_call = 0u32;
    let mut steps = 0u32;
    loop {
        steps += 1;
        assert!(steps < 200_000, "the simulation does not settle");
        let now = sim.now;
        // Start due calls.
        while next_call < calls && sim.t0 + ms(50 * u64::from(next_call)) <= now {
            next_call += 1;
            let mut c = Caller::new("echo", next_call);
            let text = c.invite(&peer_sdp(6000, "sendrecv"));
            let no_via: String = text
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with("Via:"))
                .collect();
            let Ok(SipMessage::Request(invite)) = parse_lenient(no_via.as_bytes()) else {
                panic!("test INVITE");
            };
            peer.send_request(now, us(), Transport::Udp, invite.clone())
                .expect("peer INVITE");
            pcalls.insert(
                c.call_id.clone(),
                PeerCall {
                    invite,
                    dialog: None,
                    ack: None,
                    bye_at: None,
                    done: false,
                },
            );
        }
        // Hang up calls whose hold time is over.
        for pc in pcalls.values_mut() {
            if pc.bye_at.is_some_and(|t| t <= now) {
                pc.bye_at = None;
                if let Some(d) = pc.dialog.as_mut() {
                    let bye = d.create_request(Method::BYE);
                    peer.send_request(now, us(), Transport::Udp, bye)
                        .expect("peer BYE");
                }
            }
        }
        // Everything sent goes on the network.
        for s in sim.take_sent() {
            net.send(now, us(), s.to, s.payload);
        }
        while let Some(t) = peer.poll_transmit() {
            net.send(now, peer_addr, t.destination, t.payload);
        }
        // The peer's TU.
        while let Some(ev) = peer.poll_event() {
            match ev {
                TransactionEvent::IncomingRequest { key, request, .. } => {
                    // A BYE (or anything) from the engine: accept it.
                    let r = response_to(&request, 200, None, None);
                    peer.send_response(now, &key, r).expect("peer response");
                    if let Some(pc) = request.call_id().and_then(|c| pcalls.get_mut(c)) {
                        pc.done = true;
                        pc.bye_at = None;
                    }
                }
                TransactionEvent::Response { response, .. }
                | TransactionEvent::StrayResponse { response, .. } => {
                    let Some(pc) = response.call_id().and_then(|c| pcalls.get_mut(c)) else {
                        continue;
                    };
                    let method = response.cseq().map(|c| c.method.to_string());
                    let code = response.code();
                    if method.as_deref() == Some("INVITE") && (200..300).contains(&code) {
                        if pc.dialog.is_none() {
                            let mut d = Dialog::new_uac(&pc.invite, &response, None)
                                .expect("dialog from the engine's 2xx");
                            pc.ack = Some(d.create_ack());
                            pc.dialog = Some(d);
                            pc.bye_at = Some(now + secs(2));
                        }
                        if let Some(ack) = pc.ack.as_mut() {
                            peer.send_stateless_request(us(), Transport::Udp, ack);
                        }
                    } else if code >= 300 || method.as_deref() == Some("BYE") && code >= 200 {
                        pc.done = true;
                    }
                }
                TransactionEvent::Timeout { key, .. } => {
                    // INVITE or BYE never answered: the peer gives up on that call.
                    let _ = key;
                }
                _ => {}
            }
        }
        while let Some(t) = peer.poll_transmit() {
            net.send(now, peer_addr, t.destination, t.payload);
        }
        // Next moment anything happens.
        let start = (next_call < calls).then(|| sim.t0 + ms(50 * u64::from(next_call)));
        let byes = pcalls.values().filter_map(|p| p.bye_at).min();
        let Some(next) = [
            sim.engine.poll_timeout(),
            peer.poll_timeout(),
            net.next_at(),
            start,
            byes,
        ]
        .into_iter()
        .flatten()
        .min() else {
            // Quiet: a call whose far end gave up (its BYE lost for good) would now hit the
            // no-media timeout in the worker, as no RTP comes any more.
            let live: Vec<Uuid> = sim
                .inserted_ids()
                .into_iter()
                .filter(|id| sim.finish_of(*id).is_empty())
                .collect();
            if live.is_empty() {
                break;
            }
            sim.now += secs(30);
            for id in live {
                sim.media_event(MediaEvent::NoMedia { call_id: id });
            }
            continue;
        };
        sim.now = sim.now.max(next);
        let now = sim.now;
        while let Some((from, to, payload)) = net.pop_due(now) {
            if to == us() {
                sim.engine
                    .handle_datagram(now, from, Transport::Udp, &payload);
                sim.drain();
            } else {
                let _ = peer.handle_datagram(now, from, Transport::Udp, &payload);
            }
        }
        sim.engine.handle_timeout(now);
        sim.drain();
        peer.handle_timeout(now);
    }
    sim.assert_orderly();
    sim.assert_all_settled();
    sim.assert_no_state_left();
    let fin = sim.finishes();
    LossyOutcome {
        finishes: fin.len(),
        completed_by_caller: fin
            .iter()
            .filter(|f| f.end.status == FinalStatus::Completed && f.end.ended_by == EndedBy::Caller)
            .count(),
        peer_done: pcalls.values().filter(|p| p.done).count(),
    }
}

#[test]
fn sipp_like_calls_over_a_clean_network_all_complete() {
    let out = lossy_calls(1, 0.0, 20);
    assert_eq!(out.finishes, 20);
    assert_eq!(out.completed_by_caller, 20, "{out:?}");
    assert_eq!(out.peer_done, 20);
}

#[test]
fn sipp_like_calls_over_a_lossy_network_end_once_each() {
    for seed in 1..=6 {
        let out = lossy_calls(seed, 0.2, 20);
        // Retransmissions carry almost every call through 20 % loss.
        assert!(out.completed_by_caller >= 15, "seed {seed}: {out:?}");
        assert!(out.finishes <= 20, "seed {seed}: {out:?}");
    }
}

#[test]
fn sipp_like_calls_over_a_very_lossy_network_still_end_once_and_leave_nothing() {
    // Half or more of the datagrams lost: calls fail in every way (Timer B at the caller,
    // no ACK for our 2xx, BYEs never answered); each one the engine saw still ends once.
    for (seed, loss) in [(11, 0.5), (12, 0.5), (13, 0.7), (14, 0.7), (15, 0.9)] {
        let out = lossy_calls(seed, loss, 20);
        assert!(out.finishes <= 20, "{out:?}");
    }
}

/// What the far end of outbound call `n` does in [`lossy_outbound`].
fn far_behaviour(n: u32) -> &'static str {
    match n % 4 {
        0 => "answer",
        1 => "busy",
        2 => "never",
        _ => "answer-late",
    }
}

/// `calls` outbound calls to a far end with a real transaction layer, over a network losing
/// `loss` of the datagrams: it rings, then answers (at once or after 3 s), rejects 486, or
/// never answers (our ring timeout of 5 s cancels). Answered calls are hung up through the
/// API 2 s later. Checks every call ends exactly once and no state is left; returns the
/// final statuses.
fn lossy_outbound(seed: u64, loss: f64, calls: u32) -> Vec<(u32, FinalStatus)> {
    let trunks = r#"
[[trunk]]
name = "far"
address = "127.0.0.1:5070"
max_cps = 1000
max_concurrent = 1000
allowed_prefixes = ["*"]
"#;
    let mut sim = Sim::with(config_with_trunks(trunks), 100, 40).auto_stop();
    let far_addr = trunk_addr();
    let mut far = TransactionLayer::new(TransactionConfig::new(far_addr), seed ^ 0xfa);
    let mut net = LossyNet {
        rng: SmallRng::seed_from_u64(seed),
        loss,
        delay: (5, 40),
        seq: 0,
        in_flight: Vec::new(),
    };
    // Far end: INVITE server transactions waiting for their answer time.
    let mut pending: Vec<(Instant, TransactionKey, Request, &'static str)> = Vec::new();
    let mut hangups: Vec<(Instant, Uuid)> = Vec::new();
    let mut seen_answered = 0usize;
    let mut next_call = 0u32;
    let mut steps = 0u32;
    loop {
        steps += 1;
        assert!(steps < 200_000, "the simulation does not settle");
        let now = sim.now;
        while next_call < calls && sim.t0 + ms(100 * u64::from(next_call)) <= now {
            next_call += 1;
            let o = outbound(u128::from(next_call), "+15551230000", "far", secs(5));
            sim.originate(o).expect("originate");
        }
        // The API hangs up answered calls 2 s after the answer.
        let answered: Vec<Uuid> = sim
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Store(StoreOp::Answered { call_id, .. }) => Some(*call_id),
                _ => None,
            })
            .collect();
        for id in &answered[seen_answered..] {
            hangups.push((now + secs(2), *id));
        }
        seen_answered = answered.len();
        let due: Vec<Uuid> = hangups
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect();
        hangups.retain(|(t, _)| *t > now);
        for id in due {
            let _ = sim.hangup(id);
        }
        // The far end answers what is due.
        let mut i = 0;
        while i < pending.len() {
            if pending[i].0 <= now {
                let (_, key, req, how) = pending.swap_remove(i);
                let r = if how == "busy" {
                    response_to(&req, 486, None, Some("far"))
                } else {
                    let mut ok = response_to(&req, 200, None, Some("far"));
                    ok.headers
                        .insert(Name::CONTACT, format!("<sip:far@{far_addr}>"));
                    ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
                    ok.body = far_sdp().into_bytes().into();
                    ok
                };
                // The INVITE may have been cancelled meanwhile: then this fails, as it should.
                let _ = far.send_response(now, &key, r);
            } else {
                i += 1;
            }
        }
        for s in sim.take_sent() {
            net.send(now, us(), s.to, s.payload);
        }
        while let Some(ev) = far.poll_event() {
            if let TransactionEvent::IncomingRequest { key, request, .. } = ev {
                if request.method() == &Method::INVITE {
                    let ringing = response_to(&request, 180, None, Some("far"));
                    let _ = far.send_response(now, &key, ringing);
                    // The behaviour of call n, found by its Call-ID.
                    let n = sim
                        .actions
                        .iter()
                        .find_map(|a| match a {
                            Action::Store(StoreOp::Insert { call, .. })
                                if call.sip_call_id.as_deref() == request.call_id() =>
                            {
                                Some(call.id.as_u128() as u32)
                            }
                            _ => None,
                        })
                        .expect("an INVITE of a placed call");
                    let how = far_behaviour(n);
                    let at = match how {
                        "answer" => Some(now + ms(300)),
                        "answer-late" => Some(now + secs(3)),
                        "busy" => Some(now + ms(500)),
                        _ => None,
                    };
                    if let Some(at) = at {
                        pending.push((at, key, request, how));
                    }
                } else {
                    let r = response_to(&request, 200, None, None);
                    let _ = far.send_response(now, &key, r);
                }
            }
        }
        while let Some(t) = far.poll_transmit() {
            net.send(now, far_addr, t.destination, t.payload);
        }
        let start = (next_call < calls).then(|| sim.t0 + ms(100 * u64::from(next_call)));
        let Some(next) = [
            sim.engine.poll_timeout(),
            far.poll_timeout(),
            net.next_at(),
            start,
            pending.iter().map(|p| p.0).min(),
            hangups.iter().map(|h| h.0).min(),
        ]
        .into_iter()
        .flatten()
        .min() else {
            let live: Vec<Uuid> = sim
                .inserted_ids()
                .into_iter()
                .filter(|id| sim.finish_of(*id).is_empty())
                .collect();
            if live.is_empty() {
                break;
            }
            sim.now += secs(30);
            for id in live {
                sim.media_event(MediaEvent::NoMedia { call_id: id });
            }
            continue;
        };
        sim.now = sim.now.max(next);
        let now = sim.now;
        while let Some((from, to, payload)) = net.pop_due(now) {
            if to == us() {
                sim.engine
                    .handle_datagram(now, from, Transport::Udp, &payload);
                sim.drain();
            } else {
                let _ = far.handle_datagram(now, from, Transport::Udp, &payload);
            }
        }
        sim.engine.handle_timeout(now);
        sim.drain();
        far.handle_timeout(now);
    }
    sim.assert_orderly();
    sim.assert_all_settled();
    sim.assert_no_state_left();
    (1..=calls)
        .map(|n| (n, sim.the_finish(Uuid::from_u128(u128::from(n))).end.status))
        .collect()
}

#[test]
fn outbound_calls_over_a_clean_network_end_as_the_far_end_decides() {
    let out = lossy_outbound(1, 0.0, 12);
    for (n, status) in out {
        let expected = match far_behaviour(n) {
            "busy" => FinalStatus::Busy,
            "never" => FinalStatus::NoAnswer,
            _ => FinalStatus::Completed,
        };
        assert_eq!(status, expected, "call {n} ({})", far_behaviour(n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(48)
    })]

    #[test]
    fn outbound_calls_at_any_loss_end_once_and_leave_nothing(
        seed in any::<u64>(),
        loss in 0.0f64..0.9,
    ) {
        let out = lossy_outbound(seed, loss, 8);
        prop_assert_eq!(out.len(), 8);
    }
}

#[test]
fn a_caller_behind_nat_gets_answers_and_our_bye_at_its_source_address() {
    let mut sim = Sim::new();
    let mut c = Caller::new("tone", 1);
    let inv = c.invite(&peer_sdp(6000, "sendrecv")).replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5080",
        "Via: SIP/2.0/UDP 10.0.0.5:5062",
    );
    let sent = sim.deliver(c.addr, &inv);
    assert_eq!(codes(&sent), vec![100, 180, 200]);
    assert!(
        sent.iter().all(|s| s.to == caller_addr()),
        "to the source, not the Via"
    );
    let via = find_resp(&sent, 200)
        .and_then(Response::top_via)
        .expect("Via");
    assert_eq!(
        via.received,
        Some(caller_addr().ip()),
        "received (RFC 3581)"
    );
    assert_eq!(
        via.rport,
        Some(Some(caller_addr().port())),
        "rport filled in"
    );
    c.learn(&sent);
    sim.deliver(c.addr, &c.ack());
    let id = sim.inserted_ids()[0];
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    let sent = sim.take_sent();
    assert_eq!(methods(&sent), vec!["BYE"]);
    assert_eq!(sent[0].to, caller_addr());
}

/// Shrunk failures the properties found (each was a bug in the engine or in this harness).
#[test]
fn regressions_found_by_the_properties() {
    // 100 Trying, then the ring timeout: the CANCEL got no answer and the INVITE transaction
    // stayed in the layer forever (fixed: abandoned on the guard timer).
    run_outbound(&[OutOp::Respond(100)]);
    // Hang up before any provisional, then 100 Trying: the CANCEL must go out then.
    run_outbound(&[OutOp::Hangup, OutOp::Respond(100), OutOp::AnswerOurs]);
    // An answered call with nothing more: it ends on the no-media timeout.
    run_inbound("echo", &[InOp::Ack]);
    // A replayed INVITE long after its call ended starts a new call, which ends too.
    run_many(&[
        AnyOp::In(0, InOp::Wait(32_000)),
        AnyOp::Out(0, OutOp::WorkerStops),
        AnyOp::Out(0, OutOp::Replay),
        AnyOp::In(2, InOp::Ack),
    ]);
}

#[test]
fn no_bye_before_the_ack_of_our_2xx() {
    // RFC 3261 sec. 15: the callee sends no BYE before the ACK of its 2xx arrives (or its
    // wait for it ends), or the BYE may overtake the 2xx.
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    c.learn(&sent);
    let id = sim.inserted_ids()[0];
    sim.hangup(id).expect("hangup");
    assert!(methods(&sim.take_sent()).is_empty(), "BYE held for the ACK");
    assert_eq!(sim.kinds().last(), Some(&"Stop"), "media stops at once");
    sim.stopped(id, stats(2));
    let f = sim.the_finish(id);
    assert_eq!(
        f.end.ended_by,
        EndedBy::Api,
        "the outcome is decided at the hangup"
    );
    // The ACK releases the BYE, although the call has finished.
    let sent = sim.deliver(c.addr, &c.ack());
    assert_eq!(methods(&sent), vec!["BYE"]);
    assert_eq!(sent[0].to, caller_addr());
    let bye = sent[0].req().expect("BYE").clone();
    assert_eq!(bye.to_tag().as_deref(), Some("ftag1"));
    sim.deliver(c.addr, &reply(&bye, 200, None, "", ""));
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn a_held_bye_goes_when_the_ack_never_comes() {
    let mut sim = Sim::new().auto_stop();
    let mut c = Caller::new("tone", 1);
    sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendrecv")));
    let id = sim.inserted_ids()[0];
    sim.advance(ms(100));
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    assert!(methods(&sim.take_sent()).is_empty());
    assert_eq!(sim.the_finish(id).end.ended_by, EndedBy::System);
    sim.advance_until(|s| s.wire.iter().any(|w| w.method().as_deref() == Some("BYE")));
    let bye_at = sim
        .wire
        .iter()
        .find(|w| w.method().as_deref() == Some("BYE"))
        .map(|w| w.at - sim.t0);
    assert_eq!(bye_at, Some(secs(32)), "BYE when Timer L ends the wait");
    sim.advance(secs(60));
    sim.assert_all_settled();
    sim.assert_no_state_left();
}

#[test]
fn a_call_that_starts_on_hold_does_not_send_until_resumed() {
    // Inbound: the offer is sendonly (the caller holds us from the start).
    let mut sim = Sim::new();
    let mut c = Caller::new("echo", 1);
    let sent = sim.deliver(c.addr, &c.invite(&peer_sdp(6000, "sendonly")));
    assert_eq!(codes(&sent), vec![100, 180, 200]);
    assert_eq!(
        sim.kinds(),
        vec!["Insert", "Ringing", "Answered", "Start", "Update"]
    );
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Update { send: false, .. }))
    ));
    // Outbound: the far end answers inactive (it neither sends nor receives).
    let mut sim = Sim::new();
    let inv = dial(&mut sim, 1, secs(30));
    let answer = far_sdp().replace("a=sendrecv", "a=inactive");
    sim.deliver(trunk_addr(), &reply(&inv, 200, Some("far1"), "", &answer));
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Update { send: false, .. }))
    ));
    // An ordinary answer adds no Update.
    let mut sim = Sim::new();
    let inv = dial(&mut sim, 1, secs(30));
    sim.deliver(
        trunk_addr(),
        &reply(&inv, 200, Some("far1"), "", &far_sdp()),
    );
    assert_eq!(sim.kinds(), vec!["Insert", "Answered", "Start"]);
}

// ---- answering-machine detection ------------------------------------------------------------

fn amd_call(n: u128, on_machine: OnMachine, asynchronous: bool) -> Originate {
    let mut o = outbound(n, "+15551230000", "local", secs(30));
    o.amd = Some(CallAmd {
        params: AmdParams::default(),
        asynchronous,
        on_machine,
    });
    o
}

/// Dials `o`, answers it, and returns its id and INVITE.
fn amd_answered(sim: &mut Sim, o: Originate) -> (Uuid, Request) {
    let id = o.call.id;
    sim.originate(o).expect("originate");
    let sent = sim.take_sent();
    let inv = sent[0].req().expect("INVITE").clone();
    assert_eq!(methods(&answer_call(sim, &inv)), vec!["ACK"]);
    (id, inv)
}

fn verdict(answered_by: crate::amd::AnsweredBy, is_final: bool) -> Verdict {
    let beep = answered_by == crate::amd::AnsweredBy::MachineEndBeep;
    Verdict {
        answered_by,
        confidence: 0.9,
        at: ms(4_200),
        beep_onset: beep.then(|| ms(3_700)),
        beep_end: beep.then(|| ms(4_100)),
        message_start: beep.then(|| ms(4_200)),
        speech: ms(2_900),
        is_final,
    }
}

fn amd_events(sim: &Sim) -> Vec<(&'static str, serde_json::Value)> {
    sim.actions
        .iter()
        .filter_map(|a| match a {
            Action::Store(StoreOp::Event { kind, payload, .. }) if kind.starts_with("amd.") => {
                Some((*kind, payload.clone()))
            }
            Action::Store(StoreOp::Amd { payload, amd, .. }) => {
                // The row keeps the same verdict the event carries.
                assert_eq!(payload["answered_by"], amd.result.as_str());
                assert_eq!(payload["decision_ms"], amd.decision_ms.unwrap_or(-1));
                Some(("amd.completed", payload.clone()))
            }
            _ => None,
        })
        .collect()
}

fn plays(sim: &Sim) -> Vec<String> {
    sim.actions
        .iter()
        .filter_map(|a| match a {
            Action::Media(MediaCommand::Play { prompt, .. }) => Some(prompt.name.clone()),
            _ => None,
        })
        .collect()
}

fn voicemail_prompt() -> Prompt {
    Prompt {
        name: "vm".into(),
        samples: vec![500i16; 1600].into(),
    }
}

#[test]
fn amd_leg_starts_with_the_detector_and_hangup_ends_a_machine_call() {
    use crate::amd::AnsweredBy::*;
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(&mut sim, amd_call(1, OnMachine::Hangup, false));
    let starts: Vec<Option<AmdParams>> = sim
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Media(MediaCommand::Start { amd, .. }) => Some(*amd),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![Some(AmdParams::default())]);

    // The interim machine_start is recorded and changes nothing.
    sim.advance(ms(2_400));
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineStart, false),
    });
    assert!(sim.take_sent().is_empty());
    let ev = amd_events(&sim);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0, "amd.machine_start");
    assert_eq!(ev[0].1["final"], false);

    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineEndBeep, true),
    });
    let ev = amd_events(&sim);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].0, "amd.completed");
    let p = &ev[1].1;
    assert_eq!(p["answered_by"], "machine_end_beep");
    assert_eq!(p["decision_ms"], 4_200);
    assert_eq!(p["beep_ms"], 3_700);
    assert_eq!(p["message_start_ms"], 4_200);
    assert_eq!(p["speech_ms"], 2_900);
    assert_eq!(p["final"], true);
    assert!((p["confidence"].as_f64().expect("confidence") - 0.9).abs() < 1e-6);
    assert_eq!(methods(&sim.take_sent()), vec!["BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.reason, "answering machine");
    assert_eq!(f.end.ended_by, EndedBy::System);
    assert!(plays(&sim).is_empty());
}

#[test]
fn amd_continue_only_reports_the_machine() {
    use crate::amd::AnsweredBy::*;
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(&mut sim, amd_call(1, OnMachine::Continue, true));
    sim.advance(ms(4_200));
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineEndSilence, true),
    });
    assert!(sim.take_sent().is_empty(), "no BYE");
    assert_eq!(amd_events(&sim)[0].1["answered_by"], "machine_end_silence");
    assert!(sim.finishes().is_empty());
    assert!(plays(&sim).is_empty());
    // A repeated final verdict is ignored.
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(Human, true),
    });
    assert_eq!(amd_events(&sim).len(), 1);
    sim.hangup(id).expect("hangup");
    assert_eq!(methods(&sim.take_sent()), vec!["BYE"]);
    assert_eq!(sim.the_finish(id).end.ended_by, EndedBy::Api);
}

#[test]
fn amd_voicemail_drop_plays_after_the_final_verdict_then_hangs_up() {
    use crate::amd::AnsweredBy::*;
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(
        &mut sim,
        amd_call(1, OnMachine::VoicemailDrop(voicemail_prompt()), false),
    );
    sim.advance(ms(2_400));
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineStart, false),
    });
    assert!(plays(&sim).is_empty(), "no drop on the interim verdict");
    sim.advance(ms(1_800));
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineEndBeep, true),
    });
    assert_eq!(plays(&sim), vec!["vm"]);
    assert!(matches!(
        sim.actions.last(),
        Some(Action::Media(MediaCommand::Play { repeat: false, .. }))
    ));
    assert!(sim.take_sent().is_empty());
    // While the voicemail plays, the API cannot replace it.
    assert!(matches!(
        sim.engine.play(sim.now, id, tone_prompt(), false),
        Err(EngineError::Conflict(_))
    ));
    sim.advance(ms(200));
    sim.media_event(MediaEvent::PlayFinished { call_id: id });
    assert_eq!(methods(&sim.take_sent()), vec!["BYE"]);
    let f = sim.the_finish(id);
    assert_eq!(f.end.status, FinalStatus::Completed);
    assert_eq!(f.end.reason, "voicemail dropped");
    assert_eq!(f.end.ended_by, EndedBy::System);
}

#[test]
fn amd_human_keeps_the_call_up_whatever_on_machine_says() {
    use crate::amd::AnsweredBy::*;
    for on_machine in [
        OnMachine::Hangup,
        OnMachine::VoicemailDrop(voicemail_prompt()),
    ] {
        let mut sim = Sim::new().auto_stop();
        let (id, _) = amd_answered(&mut sim, amd_call(1, on_machine, false));
        sim.advance(ms(1_300));
        sim.media_event(MediaEvent::Amd {
            call_id: id,
            verdict: verdict(Human, true),
        });
        assert_eq!(amd_events(&sim)[0].1["answered_by"], "human");
        assert!(sim.take_sent().is_empty());
        assert!(sim.finishes().is_empty());
        assert!(plays(&sim).is_empty());
        // A later PlayFinished (an API prompt) does not hang up.
        sim.engine
            .play(sim.now, id, tone_prompt(), false)
            .expect("play");
        sim.drain();
        assert_eq!(plays(&sim), vec!["tone"]);
        sim.media_event(MediaEvent::PlayFinished { call_id: id });
        assert!(sim.take_sent().is_empty());
    }
}

#[test]
fn amd_synchronous_holds_prompts_until_the_verdict_async_does_not() {
    use crate::amd::AnsweredBy::*;
    // Synchronous: held, then played when the human verdict arrives.
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(&mut sim, amd_call(1, OnMachine::Continue, false));
    sim.engine
        .play(sim.now, id, tone_prompt(), false)
        .expect("play");
    sim.drain();
    assert!(plays(&sim).is_empty(), "held until the verdict");
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(Human, true),
    });
    assert_eq!(plays(&sim), vec!["tone"]);

    // Synchronous with hangup: a machine ends the call and the held prompt never plays.
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(&mut sim, amd_call(2, OnMachine::Hangup, false));
    sim.engine
        .play(sim.now, id, tone_prompt(), false)
        .expect("play");
    sim.drain();
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(MachineEndOther, true),
    });
    assert!(plays(&sim).is_empty());
    assert_eq!(sim.the_finish(id).end.reason, "answering machine");
    // A verdict after the end is ignored.
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(Human, true),
    });
    assert_eq!(amd_events(&sim).len(), 1);

    // Asynchronous: the prompt goes out at once, the verdict is still reported.
    let mut sim = Sim::new().auto_stop();
    let (id, _) = amd_answered(&mut sim, amd_call(3, OnMachine::Continue, true));
    sim.engine
        .play(sim.now, id, tone_prompt(), false)
        .expect("play");
    sim.drain();
    assert_eq!(plays(&sim), vec!["tone"]);
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(Human, true),
    });
    assert_eq!(amd_events(&sim)[0].0, "amd.completed");
    assert_eq!(plays(&sim), vec!["tone"], "nothing more to play");
}

#[test]
fn amd_verdict_for_a_call_without_amd_is_ignored() {
    let mut sim = Sim::new().auto_stop();
    let inv = dial(&mut sim, 1, secs(30));
    answer_call(&mut sim, &inv);
    let n = sim.actions.len();
    sim.media_event(MediaEvent::Amd {
        call_id: Uuid::from_u128(1),
        verdict: verdict(crate::amd::AnsweredBy::Human, true),
    });
    assert_eq!(sim.actions.len(), n);
}

#[test]
fn amd_verdict_of_a_leg_stopped_mid_analysis_is_recorded_but_not_acted_on() {
    let mut sim = Sim::new();
    let (id, _) = amd_answered(
        &mut sim,
        amd_call(1, OnMachine::VoicemailDrop(voicemail_prompt()), false),
    );
    sim.advance(ms(1_000));
    sim.hangup(id).expect("hangup");
    assert_eq!(methods(&sim.take_sent()), vec!["BYE"]);
    // The worker reports the detector's last word before `Stopped`.
    sim.media_event(MediaEvent::Amd {
        call_id: id,
        verdict: verdict(crate::amd::AnsweredBy::MachineEndOther, true),
    });
    let ev = amd_events(&sim);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].1["answered_by"], "machine_end_other");
    assert!(plays(&sim).is_empty(), "no drop on an ending call");
    sim.answer_stops();
    assert_eq!(sim.the_finish(id).end.ended_by, EndedBy::Api);
    sim.assert_all_settled();
}

mod agent_calls;
mod inbound;
mod registrar;
mod rooms;
