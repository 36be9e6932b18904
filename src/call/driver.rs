//! The engine driver: the tokio task around [`CallEngine`], its SIP sockets, and the store writer.
//!
//! One task owns the engine. It waits on one `select!` over: UDP datagrams, TCP messages
//! (framed by per-connection reader tasks), API commands, media events, the engine's next
//! deadline, and shutdown; after each input it drains the engine: transmits go to the sockets,
//! media commands to the media worker, store operations to the store writer. No SIP decision
//! is made here.
//!
//! The store writer applies [`StoreOp`]s strictly in order, so a call's row is inserted before
//! it is updated and its events are published in order. It writes whatever is queued (up to
//! [`WRITER_BATCH`] ops) in one transaction and builds event payloads from the rows of live calls
//! it keeps in memory, since one database round trip per statement was the cost at high call
//! rates; it publishes `call.initiated`,
//! `call.ringing`, `call.answered` and `call.completed` (the last only when the row's final
//! status was set by this operation, so there is exactly one per call). Replies to `originate`
//! travel through the writer's queue, so the API answers after the call row exists.
//! Room and recording operations are rare: the writer flushes its batch, then writes each one
//! with its event ([`EventBus::publish`]); their events go to the room's or recording's
//! status callback and carry `conference_id` when about a room.

use super::engine::inbound::InboundOp;
use super::engine::{
    Action, CallEngine, ConferenceOp, MediaCommand, MediaEvent, RecordingOp, RegistrationOp,
    StoreOp,
};
use super::{EngineCommand, EngineError, RecordingStatus};
use crate::clock::Clock;
use crate::events::{EventBus, kinds};
use crate::sip::message::frame_stream;
use crate::sip::registrar::Binding;
use crate::sip::transaction::{Transmit, Transport};
use crate::store::{
    Call, CallChange, CallWrite, FinalStatus, NewConference, NewEvent, NewRecording,
    NewRegistration, RecordingSummaryRow, Registration, RegistrationTransport, new_id,
};
use crate::telemetry;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// Capacity of the channel from TCP connections to the engine.
pub const TCP_INBOUND_CAPACITY: usize = 4096;
/// Capacity of each TCP connection's outgoing queue; a full queue drops the message (SIP
/// retransmission or the transaction timeout handles it).
pub const TCP_OUTBOUND_CAPACITY: usize = 256;
/// Capacity of the store writer's queue.
pub const WRITER_CAPACITY: usize = 65_536;
/// Largest SIP message accepted on TCP before the connection is closed.
pub const MAX_TCP_MESSAGE: usize = 65_535;
/// Idle TCP connections are closed after this long.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// An operation for the store writer.
#[derive(Debug)]
pub enum WriterOp {
    /// Apply a store operation.
    Store(StoreOp),
    /// Answer an API command once everything queued before it is applied.
    Reply(
        oneshot::Sender<Result<(), EngineError>>,
        Result<(), EngineError>,
    ),
}

/// What the driver shares with the rest of the server.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    active: Arc<AtomicUsize>,
}

impl EngineStatus {
    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// The bound SIP sockets.
#[derive(Debug)]
pub struct SipSockets {
    /// UDP.
    pub udp: Arc<UdpSocket>,
    /// TCP listener on the same address.
    pub tcp: TcpListener,
}

impl SipSockets {
    /// Binds UDP and TCP on `addr` (port 0: the OS picks one, the same for both when it can).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let udp = UdpSocket::bind(addr).await?;
        let local = udp.local_addr()?;
        let tcp = TcpListener::bind(local).await?;
        Ok(Self {
            udp: Arc::new(udp),
            tcp,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Shutdown phases told to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPhase {
    /// Running.
    Run,
    /// Take no new calls; let live ones end.
    Drain,
    /// Hang up whatever is left.
    HangupAll,
}

/// A TCP connection toward a peer: connecting (messages wait, bounded) or ready.
enum TcpConn {
    Connecting(Vec<bytes::Bytes>),
    Ready(mpsc::Sender<bytes::Bytes>),
}

/// The engine's SIP sockets and TCP connections, and where its outputs go.
struct SipIo {
    udp: Arc<UdpSocket>,
    tcp: HashMap<SocketAddr, TcpConn>,
    /// Messages read from TCP connections.
    tcp_in: mpsc::Sender<(SocketAddr, bytes::Bytes)>,
    /// Connections that closed.
    tcp_closed: mpsc::Sender<SocketAddr>,
    /// Outcomes of connection attempts started by `send_sip` (never awaited in the loop).
    tcp_connected: mpsc::Sender<(SocketAddr, Option<mpsc::Sender<bytes::Bytes>>)>,
    media: mpsc::Sender<MediaCommand>,
    writer: mpsc::Sender<WriterOp>,
}

/// Time allowed to connect to a TCP peer; the transactions toward it fail after that.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the engine until `shutdown` reaches [`ShutdownPhase::HangupAll`] and no call is left
/// (or the command channel closes).
#[allow(clippy::too_many_arguments)]
pub async fn run_engine(
    mut engine: CallEngine,
    clock: Arc<dyn Clock>,
    sockets: SipSockets,
    mut commands: mpsc::Receiver<EngineCommand>,
    mut media_events: mpsc::Receiver<MediaEvent>,
    media: mpsc::Sender<MediaCommand>,
    writer: mpsc::Sender<WriterOp>,
    mut shutdown: watch::Receiver<ShutdownPhase>,
    status: EngineStatus,
) {
    let (tcp_in_tx, mut tcp_in) = mpsc::channel(TCP_INBOUND_CAPACITY);
    let (tcp_closed_tx, mut tcp_closed) = mpsc::channel::<SocketAddr>(TCP_INBOUND_CAPACITY);
    let (tcp_connected_tx, mut tcp_connected) = mpsc::channel(TCP_INBOUND_CAPACITY);
    let mut io = SipIo {
        udp: sockets.udp,
        tcp: HashMap::new(),
        tcp_in: tcp_in_tx,
        tcp_closed: tcp_closed_tx,
        tcp_connected: tcp_connected_tx,
        media,
        writer,
    };
    let udp = io.udp.clone();
    let mut buf = vec![0u8; 65_536];
    // Whatever the engine queued before it was handed over (e.g. removing registrations that
    // expired while the server was down).
    dispatch(&mut engine, &clock, &mut io).await;
    let mut phase = ShutdownPhase::Run;
    loop {
        let deadline = engine.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    let now = clock.now();
                    engine.set_wall_clock(now, clock.utc());
                    engine.handle_datagram(now, from, Transport::Udp, &buf[..n]);
                }
            }
            Some((from, msg)) = tcp_in.recv() => {
                let now = clock.now();
                engine.set_wall_clock(now, clock.utc());
                engine.handle_datagram(now, from, Transport::Tcp, &msg);
            }
            Some(peer) = tcp_closed.recv() => {
                io.tcp.remove(&peer);
            }
            Some((peer, conn)) = tcp_connected.recv() => {
                match (conn, io.tcp.remove(&peer)) {
                    (Some(tx), Some(TcpConn::Connecting(queued))) => {
                        for m in queued {
                            let _ = tx.try_send(m);
                        }
                        io.tcp.insert(peer, TcpConn::Ready(tx));
                    }
                    (Some(tx), _) => { io.tcp.insert(peer, TcpConn::Ready(tx)); }
                    (None, _) => engine.handle_transport_error(clock.now(), peer, Transport::Tcp),
                }
            }
            accepted = sockets.tcp.accept() => {
                if let Ok((stream, peer)) = accepted {
                    let tx = spawn_connection(stream, peer, io.tcp_in.clone(), io.tcp_closed.clone());
                    io.tcp.insert(peer, TcpConn::Ready(tx));
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let now = clock.now();
                engine.set_wall_clock(now, clock.utc());
                match cmd {
                    EngineCommand::Originate(o, reply) => {
                        let r = engine.originate(now, *o);
                        dispatch(&mut engine, &clock, &mut io).await;
                        let _ = io.writer.send(WriterOp::Reply(reply, r)).await;
                    }
                    EngineCommand::OriginateAgent(o, reply) => {
                        let r = engine.originate_agent(now, *o);
                        dispatch(&mut engine, &clock, &mut io).await;
                        let _ = io.writer.send(WriterOp::Reply(reply, r)).await;
                    }
                    EngineCommand::Hangup(id, reply) => { let _ = reply.send(engine.hangup(now, id)); }
                    EngineCommand::Play { call_id, prompt, repeat, reply } => { let _ = reply.send(engine.play(now, call_id, prompt, repeat)); }
                    EngineCommand::Dtmf { call_id, digits, reply } => { let _ = reply.send(engine.dtmf(call_id, digits)); }
                    other => handle_room_command(&mut engine, now, other),
                }
            }
            Some(ev) = media_events.recv() => {
                let now = clock.now();
                engine.set_wall_clock(now, clock.utc());
                engine.handle_media_event(now, ev);
            }
            _ = sleep => {
                engine.handle_timeout(clock.now());
            }
            changed = shutdown.changed() => {
                if changed.is_err() { phase = ShutdownPhase::HangupAll; } else { phase = *shutdown.borrow(); }
                match phase {
                    ShutdownPhase::Run => {}
                    ShutdownPhase::Drain => engine.stop_accepting(),
                    ShutdownPhase::HangupAll => { engine.stop_accepting(); engine.hangup_all(clock.now()); }
                }
            }
        }
        dispatch(&mut engine, &clock, &mut io).await;
        status
            .active
            .store(engine.active_calls(), Ordering::Relaxed);
        metrics::gauge!(telemetry::ACTIVE_CALLS).set(engine.active_calls() as f64);
        if phase == ShutdownPhase::HangupAll && engine.active_calls() == 0 {
            // Give the last BYEs their transactions a moment (UDP retransmissions), bounded.
            let until = clock.now() + Duration::from_secs(2);
            while engine.poll_timeout().is_some_and(|t| t <= until) {
                let at = engine.poll_timeout().unwrap_or(until);
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                engine.handle_timeout(clock.now());
                dispatch(&mut engine, &clock, &mut io).await;
            }
            break;
        }
    }
}

/// Runs a room, recording or stop-play command (they answer at once; their store operations
/// follow in order through the writer).
fn handle_room_command(engine: &mut CallEngine, now: Instant, cmd: EngineCommand) {
    match cmd {
        EngineCommand::StopPlay { call_id, reply } => {
            let _ = reply.send(engine.stop_play(now, call_id));
        }
        EngineCommand::CreateConference(spec, reply) => {
            let _ = reply.send(engine.create_conference(now, *spec));
        }
        EngineCommand::Join {
            conference_id,
            call_id,
            options,
            reply,
        } => {
            let _ = reply.send(engine.join(now, conference_id, call_id, options));
        }
        EngineCommand::UpdateParticipant {
            conference_id,
            call_id,
            patch,
            reply,
        } => {
            let _ = reply.send(engine.update_participant(now, conference_id, call_id, patch));
        }
        EngineCommand::RemoveParticipant {
            conference_id,
            call_id,
            hangup,
            reply,
        } => {
            let _ = reply.send(engine.remove_participant(now, conference_id, call_id, hangup));
        }
        EngineCommand::EndConference {
            conference_id,
            reason,
            reply,
        } => {
            let _ = reply.send(engine.end_conference(now, conference_id, &reason));
        }
        EngineCommand::Bridge { a, b, reply } => {
            let _ = reply.send(engine.bridge(now, a, b));
        }
        EngineCommand::Conference(id, reply) => {
            let _ = reply.send(engine.conference(id));
        }
        EngineCommand::Conferences(reply) => {
            let _ = reply.send(Ok(engine.conferences()));
        }
        EngineCommand::PlayRoom {
            conference_id,
            prompt,
            repeat,
            reply,
        } => {
            let _ = reply.send(engine.play_room(now, conference_id, prompt, repeat));
        }
        EngineCommand::StartRecording(spec, reply) => {
            let _ = reply.send(engine.start_recording(now, spec));
        }
        EngineCommand::PauseRecording(id, reply) => {
            let _ = reply.send(engine.pause_recording(now, id));
        }
        EngineCommand::ResumeRecording(id, reply) => {
            let _ = reply.send(engine.resume_recording(now, id));
        }
        EngineCommand::StopRecording(id, reply) => {
            let _ = reply.send(engine.stop_recording(id));
        }
        EngineCommand::Recording(id, reply) => {
            let _ = reply.send(engine.recording(id));
        }
        EngineCommand::Originate(..)
        | EngineCommand::OriginateAgent(..)
        | EngineCommand::Hangup(..)
        | EngineCommand::Play { .. }
        | EngineCommand::Dtmf { .. } => {}
    }
}

/// Sends what the engine produced: SIP to the sockets, media commands, store operations.
async fn dispatch(engine: &mut CallEngine, clock: &Arc<dyn Clock>, io: &mut SipIo) {
    while let Some(t) = engine.poll_transmit() {
        count_response(&t);
        let (dest, transport) = (t.destination, t.transport);
        if !send_sip(io, t).await {
            engine.handle_transport_error(clock.now(), dest, transport);
        }
    }
    while let Some(a) = engine.poll_action() {
        match a {
            Action::Media(c) => {
                let _ = io.media.send(c).await;
            }
            Action::Store(op) => {
                let _ = io.writer.send(WriterOp::Store(op)).await;
            }
        }
    }
}

fn count_response(t: &Transmit) {
    let p = &t.payload;
    if p.len() > 12
        && p.starts_with(b"SIP/2.0 ")
        && let Ok(code) = std::str::from_utf8(&p[8..11])
    {
        metrics::counter!(telemetry::SIP_RESPONSES, "code" => code.to_string(), "direction" => "sent")
            .increment(1);
    }
}

/// Sends one message; `false` when the transport has already failed toward its destination.
/// Never waits for a TCP connection: a new one is started in its own task and the message
/// waits (bounded) until it is up.
async fn send_sip(io: &mut SipIo, t: Transmit) -> bool {
    match t.transport {
        Transport::Udp => {
            if let Err(e) = io.udp.send_to(&t.payload, t.destination).await {
                // UDP loss is what retransmissions are for; not a transport failure.
                tracing::debug!(to = %t.destination, error = %e, "sip udp send failed");
            }
            true
        }
        Transport::Tcp => match io.tcp.get_mut(&t.destination) {
            Some(TcpConn::Ready(tx)) => match tx.try_send(t.payload) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(to = %t.destination, "sip tcp queue full; dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    io.tcp.remove(&t.destination);
                    false
                }
            },
            Some(TcpConn::Connecting(queued)) => {
                if queued.len() < TCP_OUTBOUND_CAPACITY {
                    queued.push(t.payload);
                }
                true
            }
            None => {
                io.tcp
                    .insert(t.destination, TcpConn::Connecting(vec![t.payload]));
                let (dest, inbound, closed, done) = (
                    t.destination,
                    io.tcp_in.clone(),
                    io.tcp_closed.clone(),
                    io.tcp_connected.clone(),
                );
                tokio::spawn(async move {
                    let conn =
                        match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(dest))
                            .await
                        {
                            Ok(Ok(stream)) => Some(spawn_connection(stream, dest, inbound, closed)),
                            _ => {
                                tracing::debug!(to = %dest, "sip tcp connect failed");
                                None
                            }
                        };
                    let _ = done.send((dest, conn)).await;
                });
                true
            }
        },
    }
}

/// Starts reader and writer tasks for one TCP connection; returns its outgoing queue.
fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    inbound: mpsc::Sender<(SocketAddr, bytes::Bytes)>,
    closed: mpsc::Sender<SocketAddr>,
) -> mpsc::Sender<bytes::Bytes> {
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(TCP_OUTBOUND_CAPACITY);
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if wr.write_all(&msg).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            // Hand over every complete message in the buffer.
            loop {
                match frame_stream(&buf) {
                    Ok(Some(len)) if len <= buf.len() => {
                        let msg = buf.split_to(len).freeze();
                        if crate::sip::message::is_keepalive(&msg) {
                            continue;
                        }
                        if inbound.send((peer, msg)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => break,
                    Err(_) => {
                        // Unframeable stream: nothing after this can be trusted.
                        let _ = closed.send(peer).await;
                        return;
                    }
                }
            }
            if buf.len() > MAX_TCP_MESSAGE {
                let _ = closed.send(peer).await;
                return;
            }
            match tokio::time::timeout(TCP_IDLE_TIMEOUT, rd.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    let _ = closed.send(peer).await;
                    return;
                }
            }
        }
    });
    tx
}

/// Starts the driver's shared status.
pub fn new_status() -> EngineStatus {
    EngineStatus {
        active: Arc::new(AtomicUsize::new(0)),
    }
}

/// Runs the store writer until its channel closes.
///
/// Each round takes whatever is queued (at least one op, at most [`WRITER_BATCH`], without
/// waiting for more) and writes it in one transaction ([`EventBus::publish_batch`]). Event
/// payloads are built from each live call's row kept in memory (it has every field of the
/// insert and each change since), so no row is read back. Replies are sent once everything
/// queued before them is committed. A batch that fails is written again one op at a time, so
/// one bad row cannot lose the others.
pub async fn run_store_writer(
    bus: EventBus,
    clock: Arc<dyn Clock>,
    mut ops: mpsc::Receiver<WriterOp>,
    node: String,
) {
    // Past instants (event times) and future ones (a registration's expiry) alike.
    let wall = |at: Instant| {
        let now = clock.now();
        let utc = clock.utc();
        if at >= now {
            utc + chrono::TimeDelta::from_std(at - now).unwrap_or_default()
        } else {
            utc - chrono::TimeDelta::from_std(now - at).unwrap_or_default()
        }
    };
    let mut writer = StoreWriter {
        bus,
        live: HashMap::new(),
        batch: Batch::default(),
        node,
    };
    let mut queue: Vec<WriterOp> = Vec::with_capacity(WRITER_BATCH);
    let mut replies = Vec::new();
    while ops.recv_many(&mut queue, WRITER_BATCH).await > 0 {
        for op in queue.drain(..) {
            match op {
                WriterOp::Reply(tx, r) => replies.push((tx, r)),
                WriterOp::Store(op) => writer.push(&wall, op).await,
            }
        }
        writer.flush().await;
        for (tx, r) in replies.drain(..) {
            let _ = tx.send(r);
        }
    }
}

/// Most ops the store writer takes from its queue into one transaction. Larger batches only
/// form when ops arrive faster than a transaction commits, so an idle server still writes
/// each op at once; the cap bounds a transaction's length (and a failed batch's retry).
pub const WRITER_BATCH: usize = 256;

/// What one write of a batch does to the writer's memory once committed.
struct Pending {
    call_id: Option<Uuid>,
    /// The row after the change (`None`: the call is not kept, e.g. it ended).
    row: Option<Call>,
    /// The final status set, for the ended-calls counter.
    ended: Option<FinalStatus>,
}

#[derive(Default)]
struct Batch {
    writes: Vec<CallWrite>,
    pending: Vec<Pending>,
    /// Each call's row as it will be once the writes queued so far commit.
    rows: HashMap<Uuid, Call>,
}

struct StoreWriter {
    bus: EventBus,
    /// The row of every live call, as committed.
    live: HashMap<Uuid, Call>,
    batch: Batch,
    /// This node's name, on the inbound calls it holds.
    node: String,
}

impl StoreWriter {
    /// The row of `call_id` after the writes queued so far.
    fn row(&self, call_id: Uuid) -> Option<&Call> {
        self.batch
            .rows
            .get(&call_id)
            .or_else(|| self.live.get(&call_id))
    }

    /// Adds `op` to the batch; an op on a call this writer does not know is written on its own
    /// after the batch so far (reading the row back as before).
    async fn push(&mut self, wall: &impl Fn(Instant) -> DateTime<Utc>, op: StoreOp) {
        let op = match op {
            StoreOp::Inbound(op) => {
                // Rare: written on their own, after the batch so far (the call row first).
                self.flush().await;
                if let Err(e) = write_inbound_op(&self.bus, wall, op, &self.node).await {
                    tracing::error!(error = %e, "store writer: inbound operation failed");
                }
                return;
            }
            StoreOp::Conference(_) | StoreOp::Recording(_) => {
                // Rare: written on their own, after the batch so far, each with its event.
                self.flush().await;
                if let Err(e) = write_room_op(&self.bus, wall, op, &self.node).await {
                    tracing::error!(error = %e, "store writer: room or recording operation failed");
                }
                return;
            }
            StoreOp::Registration(op) => {
                // Rare too (a REGISTER per agent and hour): on its own, with its event.
                self.flush().await;
                if let Err(e) = write_registration_op(&self.bus, wall, op).await {
                    tracing::error!(error = %e, "store writer: registration operation failed");
                }
                return;
            }
            op => op,
        };
        let (change, kind, at, payload) = match op {
            StoreOp::Insert { mut call, at } => {
                let at = wall(at);
                call.created_at = at;
                (CallChange::Insert(*call), kinds::CALL_INITIATED, at, None)
            }
            StoreOp::Ringing { call_id, at } => {
                let at = wall(at);
                (
                    CallChange::Ringing { call_id, at },
                    kinds::CALL_RINGING,
                    at,
                    None,
                )
            }
            StoreOp::Answered { call_id, at } => {
                let at = wall(at);
                (
                    CallChange::Answered { call_id, at },
                    kinds::CALL_ANSWERED,
                    at,
                    None,
                )
            }
            StoreOp::Finish {
                call_id,
                end,
                stats,
                at,
            } => {
                let at = wall(at);
                (
                    CallChange::Finish {
                        call_id,
                        status: end.status,
                        sip_code: end.code,
                        reason: Some(end.reason),
                        ended_by: end.ended_by,
                        stats,
                        at,
                    },
                    kinds::CALL_COMPLETED,
                    at,
                    None,
                )
            }
            StoreOp::Amd {
                call_id,
                amd,
                payload,
                at,
            } => (
                CallChange::Amd { call_id, amd },
                kinds::AMD_COMPLETED,
                wall(at),
                Some((call_id, payload)),
            ),
            StoreOp::Event {
                call_id,
                kind,
                payload,
                at,
            } => (CallChange::None, kind, wall(at), Some((call_id, payload))),
            StoreOp::Conference(_)
            | StoreOp::Recording(_)
            | StoreOp::Inbound(_)
            | StoreOp::Registration(_) => return,
        };
        let (call_id, payload, row, url) = match (&change, payload) {
            (CallChange::None, Some((call_id, payload))) => {
                let url = self.row(call_id).and_then(|r| r.status_callback.clone());
                (Some(call_id), payload, None, url)
            }
            (_, explicit) => {
                let Some(call_id) = change.call_id() else {
                    return;
                };
                let mut row = match (&change, self.row(call_id)) {
                    (CallChange::Insert(c), _) => Call::from_new(c),
                    (_, Some(r)) => r.clone(),
                    (_, None) => {
                        self.flush().await;
                        if let Err(e) = apply_unknown(&self.bus, change, kind, at).await {
                            tracing::error!(error = %e, %call_id, "store writer: operation failed");
                        }
                        return;
                    }
                };
                if !change.apply_to(&mut row) {
                    // The stored row would not change either: no write, no event.
                    return;
                }
                // A change with its own event payload (the AMD verdict) keeps it; the others
                // publish the row.
                let payload = match explicit {
                    Some((_, p)) => p,
                    None => serde_json::to_value(&row).unwrap_or_default(),
                };
                let url = row.status_callback.clone();
                (Some(call_id), payload, Some(row), url)
            }
        };
        let ended = match &change {
            CallChange::Finish { status, .. } => Some(*status),
            _ => None,
        };
        if let (Some(id), Some(r)) = (call_id, &row) {
            // Later ops of this call in the batch (even of an ended call) build on this row.
            self.batch.rows.insert(id, r.clone());
        }
        self.batch.pending.push(Pending {
            call_id,
            row: if ended.is_some() { None } else { row },
            ended,
        });
        self.batch.writes.push(CallWrite {
            change,
            event: NewEvent {
                id: new_id(at),
                kind: kind.to_owned(),
                call_id,
                payload,
                created_at: at,
                webhook_urls: url.into_iter().collect(),
            },
        });
    }

    /// Writes the batch in one transaction, or one write at a time if that fails.
    async fn flush(&mut self) {
        if self.batch.writes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.bus.publish_batch(&batch.writes).await {
            Ok(events) => {
                for (p, e) in batch.pending.into_iter().zip(events) {
                    self.committed(p, e.is_some());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.writes.len(), "store writer: batch failed; writing its ops one by one");
                for (p, w) in batch.pending.into_iter().zip(batch.writes) {
                    match self.bus.publish_batch(std::slice::from_ref(&w)).await {
                        Ok(events) => {
                            let applied = events.first().is_some_and(Option::is_some);
                            self.committed(p, applied);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, call_id = ?p.call_id, kind = %w.event.kind, "store writer: operation failed");
                        }
                    }
                }
            }
        }
    }

    /// Updates the writer's memory after a write committed (`applied`: its change applied).
    fn committed(&mut self, p: Pending, applied: bool) {
        let Some(call_id) = p.call_id else { return };
        if !applied {
            // The stored row differed from the one in memory: forget it, so later ops on
            // this call read it back.
            tracing::warn!(%call_id, "store writer: call row not as expected; reading it back from now on");
            self.live.remove(&call_id);
            return;
        }
        if let Some(status) = p.ended {
            metrics::counter!(telemetry::CALLS_ENDED, "status" => status.as_str()).increment(1);
            self.live.remove(&call_id);
        } else if let Some(row) = p.row {
            self.live.insert(call_id, row);
        }
    }
}

/// Writes one change of a call the writer does not hold in memory, reading the row back for
/// the event payload.
async fn apply_unknown(
    bus: &EventBus,
    change: CallChange,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<(), crate::store::StoreError> {
    let store = bus.store();
    let (call_id, applied) = match change {
        CallChange::Ringing { call_id, at } => (call_id, store.mark_ringing(call_id, at).await?),
        CallChange::Answered { call_id, at } => (call_id, store.mark_answered(call_id, at).await?),
        CallChange::Amd { call_id, amd } => (call_id, store.set_call_amd(call_id, &amd).await?),
        CallChange::Finish {
            call_id,
            status,
            sip_code,
            reason,
            ended_by,
            stats,
            at,
        } => {
            let first = store
                .finish_call(
                    call_id,
                    status,
                    sip_code,
                    reason.as_deref(),
                    ended_by,
                    &stats,
                    at,
                )
                .await?;
            if first {
                metrics::counter!(telemetry::CALLS_ENDED, "status" => status.as_str()).increment(1);
            }
            (call_id, first)
        }
        CallChange::Insert(_) | CallChange::None => return Ok(()),
    };
    if applied {
        let row = store.get_call(call_id).await?;
        let payload = serde_json::to_value(&row).unwrap_or_default();
        let url = row.as_ref().and_then(|r| r.status_callback.clone());
        bus.publish(at, kind, Some(call_id), payload, url.as_deref())
            .await?;
    }
    Ok(())
}

/// Writes one room or recording operation and publishes its event (to the room's or the
/// recording's status callback). A row change that does not apply (a room already ended, a
/// recording already finished) publishes nothing, so each event is stored at most once.
async fn write_room_op(
    bus: &EventBus,
    wall: &impl Fn(Instant) -> DateTime<Utc>,
    op: StoreOp,
    node: &str,
) -> Result<(), crate::store::StoreError> {
    let store = bus.store();
    let (kind, call_id, payload, callback, at) = match op {
        StoreOp::Conference(op) => match op {
            ConferenceOp::Insert { row, at } => {
                store
                    .insert_conference(&NewConference {
                        id: row.id,
                        name: row.name,
                        max_participants: row.max_participants,
                        options: row.options,
                        status_callback: row.status_callback,
                        created_at: wall(at),
                        node: Some(node.to_owned()),
                    })
                    .await?;
                return Ok(());
            }
            ConferenceOp::Started {
                conference_id,
                payload,
                callback,
                at,
            } => {
                if !store
                    .mark_conference_started(conference_id, wall(at))
                    .await?
                {
                    return Ok(());
                }
                (kinds::CONFERENCE_STARTED, None, payload, callback, at)
            }
            ConferenceOp::Ended {
                conference_id,
                reason,
                payload,
                callback,
                at,
            } => {
                if !store
                    .end_conference(conference_id, wall(at), &reason)
                    .await?
                {
                    return Ok(());
                }
                (kinds::CONFERENCE_ENDED, None, payload, callback, at)
            }
            ConferenceOp::Joined {
                conference_id,
                call_id,
                payload,
                callback,
                at,
            } => {
                store
                    .set_call_conference(call_id, Some(conference_id))
                    .await?;
                (
                    kinds::PARTICIPANT_JOINED,
                    Some(call_id),
                    payload,
                    callback,
                    at,
                )
            }
            ConferenceOp::Event {
                call_id,
                kind,
                payload,
                callback,
                at,
                ..
            } => (kind, call_id, payload, callback, at),
        },
        StoreOp::Recording(op) => match op {
            RecordingOp::Insert {
                row,
                payload,
                callback,
                at,
            } => {
                let at_utc = wall(at);
                store
                    .insert_recording(&NewRecording {
                        id: row.id,
                        call_id: row.call_id,
                        conference_id: row.conference_id,
                        path: row.path.to_string_lossy().into_owned(),
                        channels: row.channels,
                        sample_rate: row.sample_rate,
                        started_at: at_utc,
                        created_at: at_utc,
                        node: Some(node.to_owned()),
                    })
                    .await?;
                (kinds::RECORDING_STARTED, row.call_id, payload, callback, at)
            }
            RecordingOp::Status {
                recording_id,
                call_id,
                status,
                payload,
                callback,
                at,
            } => {
                if !store.set_recording_status(recording_id, status).await? {
                    return Ok(());
                }
                let kind = if status == RecordingStatus::Paused {
                    kinds::RECORDING_PAUSED
                } else {
                    kinds::RECORDING_RESUMED
                };
                (kind, call_id, payload, callback, at)
            }
            RecordingOp::Finish {
                recording_id,
                call_id,
                status,
                result,
                payload,
                callback,
                at,
            } => {
                let summary = RecordingSummaryRow {
                    status,
                    ended_at: wall(at),
                    duration_ms: Some(i64::try_from(result.duration_ms).unwrap_or(i64::MAX)),
                    size_bytes: Some(result.size_bytes),
                    sha256: result.sha256,
                    error: result.error,
                };
                if !store.finish_recording(recording_id, &summary).await? {
                    return Ok(());
                }
                (kinds::RECORDING_COMPLETED, call_id, payload, callback, at)
            }
        },
        _ => return Ok(()),
    };
    bus.publish(wall(at), kind, call_id, payload, callback.as_deref())
        .await?;
    Ok(())
}

/// Writes one inbound-call operation: the pending outcome, the answer, or the missed call
/// with its `call.missed` event and follow-up (once per call, by the store's unique constraint).
async fn write_inbound_op(
    bus: &EventBus,
    wall: &impl Fn(Instant) -> DateTime<Utc>,
    op: InboundOp,
    node: &str,
) -> Result<(), crate::store::StoreError> {
    let store = bus.store();
    match op {
        InboundOp::Start {
            call_id,
            number,
            caller,
            at,
        } => {
            store
                .insert_inbound_call(call_id, &number, &caller, wall(at), node)
                .await
        }
        InboundOp::Connected { call_id, agent, at } => store
            .mark_inbound_answered(call_id, &agent, wall(at))
            .await
            .map(|_| ()),
        InboundOp::Voicemail {
            call_id,
            payload,
            callback,
            at,
        } => bus
            .publish(
                wall(at),
                kinds::VOICEMAIL_CREATED,
                Some(call_id),
                payload,
                callback.as_deref(),
            )
            .await
            .map(|_| ()),
        InboundOp::Missed { missed, at } => {
            let r = bus.publish_missed(&missed, wall(at)).await?;
            if r.is_some() {
                metrics::counter!(telemetry::CALLS_MISSED, "reason" => missed.reason.as_str())
                    .increment(1);
            }
            Ok(())
        }
    }
}

/// The store row of a binding.
fn registration_row(
    b: &Binding,
    wall: &impl Fn(Instant) -> DateTime<Utc>,
    at: Instant,
) -> NewRegistration {
    let at = wall(at);
    NewRegistration {
        id: new_id(at),
        user: b.user.clone(),
        contact: b.contact.clone(),
        source: b.target.to_string(),
        transport: match b.transport {
            Transport::Udp => RegistrationTransport::Udp,
            Transport::Tcp => RegistrationTransport::Tcp,
        },
        expires_at: wall(b.expires_at),
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        user_agent: b.user_agent.clone(),
        at,
    }
}

/// The payload of `registration.created` and `registration.removed`.
fn registration_payload(r: &NewRegistration, reason: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "user": r.user,
        "contact": r.contact,
        "source": r.source,
        "transport": r.transport.as_str(),
        "expires_at": r.expires_at,
        "user_agent": r.user_agent,
    });
    if let Some(reason) = reason {
        v["reason"] = reason.into();
    }
    v
}

/// Writes a registration's row and publishes `registration.created` (a new binding) or
/// `registration.removed` (with the reason; only when a row was deleted, so at most once).
async fn write_registration_op(
    bus: &EventBus,
    wall: &impl Fn(Instant) -> DateTime<Utc>,
    op: RegistrationOp,
) -> Result<(), crate::store::StoreError> {
    let store = bus.store();
    match op {
        RegistrationOp::Upsert {
            binding,
            created,
            at,
        } => {
            let row = registration_row(&binding, wall, at);
            store.upsert_registration(&row).await?;
            if created {
                let payload = registration_payload(&row, None);
                bus.publish(row.at, kinds::REGISTRATION_CREATED, None, payload, None)
                    .await?;
            }
        }
        RegistrationOp::Remove {
            binding,
            reason,
            at,
        } => {
            let row = registration_row(&binding, wall, at);
            if store
                .delete_registration(&binding.user, &binding.contact)
                .await?
                .is_some()
            {
                let payload = registration_payload(&row, Some(reason.as_str()));
                bus.publish(row.at, kinds::REGISTRATION_REMOVED, None, payload, None)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Stored registrations as registrar bindings (for [`CallEngine::restore_registrations`]):
/// expiry moved from wall time to the monotonic clock at `now` (`utc` is the same moment); a
/// row whose source does not parse is skipped.
pub fn bindings_from_rows(
    rows: Vec<Registration>,
    now: Instant,
    utc: DateTime<Utc>,
) -> Vec<Binding> {
    rows.into_iter()
        .filter_map(|r| {
            let Ok(target) = r.source.parse::<SocketAddr>() else {
                tracing::warn!(user = %r.user, source = %r.source, "stored registration has a bad source; skipped");
                return None;
            };
            let left = (r.expires_at - utc).to_std().unwrap_or_default();
            Some(Binding {
                user: r.user,
                contact: r.contact,
                target,
                transport: match r.transport {
                    RegistrationTransport::Udp => Transport::Udp,
                    RegistrationTransport::Tcp => Transport::Tcp,
                },
                expires_at: now + left,
                call_id: r.call_id,
                cseq: r.cseq,
                user_agent: r.user_agent,
                missed_pings: 0,
                next_ping: None,
            })
        })
        .collect()
}

/// What [`recover_unfinished`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Rooms left `waiting`/`active` by the previous process, now ended (reason `restart`).
    pub conferences: usize,
    /// Recordings left `recording`/`paused`, repaired and marked `interrupted`.
    pub interrupted: usize,
    /// Recordings whose file could not be repaired (missing, unreadable): marked `failed`.
    pub failed: usize,
}

/// At start-up, before the engine runs: no room or recording of this node is live in a new
/// process, so the rows a crash left open are closed: this node's, those of no node, and any
/// node's older than [`crate::inbound::sweeper::STALE_AFTER`] (another live node's rows on a
/// shared database are left alone). Rooms end with reason `restart` (`conference.ended`);
/// recordings get their file repaired ([`crate::media::recorder::repair`]: the header made to
/// match the audio on disk) and end `interrupted` with the repaired file's summary
/// (`recording.completed`), or `failed` if the file cannot be repaired.
pub async fn recover_unfinished(
    bus: &EventBus,
    now: DateTime<Utc>,
    recordings_dir: &std::path::Path,
    node: &str,
) -> Result<Recovered, crate::store::StoreError> {
    let store = bus.store();
    let mut out = Recovered::default();
    let stale_before = now - crate::inbound::sweeper::STALE_AFTER;
    for c in store.unfinished_conferences(node, stale_before).await? {
        if store.end_conference(c.id, now, "restart").await? {
            let payload = serde_json::json!({ "conference_id": c.id, "reason": "restart" });
            bus.publish(
                now,
                kinds::CONFERENCE_ENDED,
                None,
                payload,
                c.status_callback.as_deref(),
            )
            .await?;
            out.conferences += 1;
        }
    }
    for r in store.unfinished_recordings(node, stale_before).await? {
        let path = recordings_dir.join(&r.path);
        // File work off the async threads.
        let repaired =
            tokio::task::spawn_blocking(move || crate::media::recorder::repair(&path)).await;
        let summary = match repaired {
            Ok(Ok(f)) => RecordingSummaryRow {
                status: RecordingStatus::Interrupted,
                ended_at: now,
                duration_ms: Some(i64::try_from(f.duration_ms).unwrap_or(i64::MAX)),
                size_bytes: Some(f.size_bytes),
                sha256: Some(f.sha256),
                error: Some("interrupted: the server stopped while recording".into()),
            },
            Ok(Err(e)) => RecordingSummaryRow {
                status: RecordingStatus::Failed,
                ended_at: now,
                duration_ms: None,
                size_bytes: None,
                sha256: None,
                error: Some(format!("interrupted, and the file cannot be repaired: {e}")),
            },
            Err(e) => RecordingSummaryRow {
                status: RecordingStatus::Failed,
                ended_at: now,
                duration_ms: None,
                size_bytes: None,
                sha256: None,
                error: Some(format!("interrupted, and the repair did not finish: {e}")),
            },
        };
        if !store.finish_recording(r.id, &summary).await? {
            continue;
        }
        if summary.status == RecordingStatus::Interrupted {
            out.interrupted += 1;
        } else {
            out.failed += 1;
        }
        let callback = match (r.call_id, r.conference_id) {
            (Some(call), _) => store.get_call(call).await?.and_then(|c| c.status_callback),
            (None, Some(conf)) => store
                .get_conference(conf)
                .await?
                .and_then(|c| c.status_callback),
            (None, None) => None,
        };
        let payload = serde_json::json!({
            "id": r.id,
            "call_id": r.call_id,
            "conference_id": r.conference_id,
            "path": r.path,
            "status": summary.status,
            "duration_ms": summary.duration_ms,
            "size_bytes": summary.size_bytes,
            "sha256": summary.sha256,
            "error": summary.error,
            "channels": r.channels,
            "sample_rate": r.sample_rate,
            "started_at": r.started_at,
        });
        bus.publish(
            now,
            kinds::RECORDING_COMPLETED,
            r.call_id,
            payload,
            callback.as_deref(),
        )
        .await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConferenceStatus, Store, testing::fresh_sqlite_url};
    use chrono::TimeZone;

    fn recording(id: u128, path: &str, at: DateTime<Utc>) -> NewRecording {
        NewRecording {
            id: Uuid::from_u128(id),
            call_id: None,
            conference_id: None,
            path: path.into(),
            channels: 2,
            sample_rate: 8_000,
            started_at: at,
            created_at: at,
            node: None,
        }
    }

    #[tokio::test]
    async fn a_restart_ends_this_nodes_open_rooms_and_repairs_its_open_recordings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::connect(&fresh_sqlite_url(dir.path()))
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let bus = EventBus::new(store.clone());
        let at = Utc
            .with_ymd_and_hms(2026, 11, 21, 9, 0, 0)
            .single()
            .expect("date");
        let room = |id: u128, node: Option<&str>, created_at: DateTime<Utc>| NewConference {
            id: Uuid::from_u128(id),
            name: None,
            max_participants: None,
            options: serde_json::json!({}),
            status_callback: None,
            created_at,
            node: node.map(str::to_owned),
        };
        // A room of no node (written before nodes were recorded), one of this node, one of
        // another node that is live (left alone), and one of a node gone for hours.
        let conf = Uuid::from_u128(1);
        for r in [
            room(1, None, at),
            room(11, Some("this"), at),
            room(12, Some("other"), at),
            room(13, Some("other"), at - chrono::TimeDelta::hours(7)),
        ] {
            store.insert_conference(&r).await.expect("conference");
        }
        // A file cut short by a crash (here: not even a whole header), and a missing one.
        let recordings = dir.path().join("recordings");
        std::fs::create_dir_all(recordings.join("2026/11/21")).expect("dirs");
        std::fs::write(recordings.join("2026/11/21/a.wav"), b"RIFF\0\0").expect("file");
        store
            .insert_recording(&recording(2, "2026/11/21/a.wav", at))
            .await
            .expect("recording");
        store
            .insert_recording(&NewRecording {
                node: Some("this".into()),
                ..recording(3, "2026/11/21/gone.wav", at)
            })
            .await
            .expect("recording");
        // Another live node's recording: its file is being written there.
        store
            .insert_recording(&NewRecording {
                node: Some("other".into()),
                ..recording(4, "2026/11/21/elsewhere.wav", at)
            })
            .await
            .expect("recording");
        let later = at + chrono::TimeDelta::minutes(5);
        let r = recover_unfinished(&bus, later, &recordings, "this")
            .await
            .expect("recover");
        assert_eq!(
            r,
            Recovered {
                conferences: 3,
                interrupted: 1,
                failed: 1
            }
        );
        let live = store
            .get_conference(Uuid::from_u128(12))
            .await
            .expect("get")
            .expect("row");
        assert_ne!(live.status, ConferenceStatus::Ended, "another node's room");
        let elsewhere = store
            .get_recording(Uuid::from_u128(4))
            .await
            .expect("get")
            .expect("row");
        assert_eq!(elsewhere.status, RecordingStatus::Recording);
        for gone in [11, 13] {
            let c = store
                .get_conference(Uuid::from_u128(gone))
                .await
                .expect("get")
                .expect("row");
            assert_eq!(c.status, ConferenceStatus::Ended, "room {gone}");
        }
        let c = store.get_conference(conf).await.expect("get").expect("row");
        assert_eq!(c.status, ConferenceStatus::Ended);
        assert_eq!(c.end_reason.as_deref(), Some("restart"));
        let a = store
            .get_recording(Uuid::from_u128(2))
            .await
            .expect("get")
            .expect("row");
        assert_eq!(a.status, RecordingStatus::Interrupted);
        assert_eq!(a.ended_at, Some(later));
        assert!(a.sha256.is_some());
        let wav = hound::WavReader::open(recordings.join("2026/11/21/a.wav")).expect("playable");
        assert_eq!(wav.spec().channels, 2);
        let gone = store
            .get_recording(Uuid::from_u128(3))
            .await
            .expect("get")
            .expect("row");
        assert_eq!(gone.status, RecordingStatus::Failed);
        let kinds: Vec<String> = bus
            .events_since(0, 10)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                "conference.ended",
                "conference.ended",
                "conference.ended",
                "recording.completed",
                "recording.completed"
            ]
        );
        // A second start finds nothing left open.
        let again = recover_unfinished(&bus, later, &recordings, "this")
            .await
            .expect("recover");
        assert_eq!(again, Recovered::default());
    }
}
