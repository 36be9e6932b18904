//! The engine driver: the tokio task around [`CallEngine`], its SIP sockets, and the store writer.
//!
//! One task owns the engine. It waits on one `select!` over: UDP datagrams, TCP messages
//! (framed by per-connection reader tasks), API commands, media events, the engine's next
//! deadline, and shutdown; after each input it drains the engine: transmits go to the sockets,
//! media commands to the media worker, store operations to the store writer. No SIP decision
//! is made here.
//!
//! The store writer applies [`StoreOp`]s strictly in order, so a call's row is inserted before
//! it is updated and its events are published in order; it publishes `call.initiated`,
//! `call.ringing`, `call.answered` and `call.completed` (the last only when the row's final
//! status was set by this operation, so there is exactly one per call). Replies to `originate`
//! travel through the writer's queue, so the API answers after the call row exists.

use super::engine::{Action, CallEngine, MediaCommand, MediaEvent, StoreOp};
use super::{EngineCommand, EngineError};
use crate::clock::Clock;
use crate::events::{EventBus, kinds};
use crate::sip::message::frame_stream;
use crate::sip::transaction::{Transmit, Transport};
use crate::telemetry;
use bytes::BytesMut;
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
                    engine.handle_datagram(clock.now(), from, Transport::Udp, &buf[..n]);
                }
            }
            Some((from, msg)) = tcp_in.recv() => {
                engine.handle_datagram(clock.now(), from, Transport::Tcp, &msg);
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
                match cmd {
                    EngineCommand::Originate(o, reply) => {
                        let r = engine.originate(now, *o);
                        dispatch(&mut engine, &clock, &mut io).await;
                        let _ = io.writer.send(WriterOp::Reply(reply, r)).await;
                    }
                    EngineCommand::Hangup(id, reply) => { let _ = reply.send(engine.hangup(now, id)); }
                    EngineCommand::Play { call_id, prompt, repeat, reply } => { let _ = reply.send(engine.play(call_id, prompt, repeat)); }
                    EngineCommand::Dtmf { call_id, digits, reply } => { let _ = reply.send(engine.dtmf(call_id, digits)); }
                }
            }
            Some(ev) = media_events.recv() => {
                engine.handle_media_event(clock.now(), ev);
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
pub async fn run_store_writer(
    bus: EventBus,
    clock: Arc<dyn Clock>,
    mut ops: mpsc::Receiver<WriterOp>,
) {
    let store = bus.store().clone();
    let mut callbacks: HashMap<Uuid, Option<String>> = HashMap::new();
    let wall = |at: Instant| {
        let now = clock.now();
        let utc = clock.utc();
        utc - chrono::TimeDelta::from_std(now.saturating_duration_since(at)).unwrap_or_default()
    };
    while let Some(op) = ops.recv().await {
        let result = match op {
            WriterOp::Reply(tx, r) => {
                let _ = tx.send(r);
                continue;
            }
            WriterOp::Store(op) => apply(&store, &bus, &mut callbacks, &wall, op).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "store writer: operation failed");
        }
    }
}

async fn apply(
    store: &crate::store::Store,
    bus: &EventBus,
    callbacks: &mut HashMap<Uuid, Option<String>>,
    wall: &impl Fn(Instant) -> chrono::DateTime<chrono::Utc>,
    op: StoreOp,
) -> Result<(), crate::store::StoreError> {
    match op {
        StoreOp::Insert { mut call, at } => {
            let at = wall(at);
            call.created_at = at;
            callbacks.insert(call.id, call.status_callback.clone());
            let row = store.insert_call(&call).await?;
            let payload = serde_json::to_value(&row).unwrap_or_default();
            bus.publish(
                at,
                kinds::CALL_INITIATED,
                Some(row.id),
                payload,
                call.status_callback.as_deref(),
            )
            .await?;
        }
        StoreOp::Ringing { call_id, at } => {
            let at = wall(at);
            if store.mark_ringing(call_id, at).await? {
                publish_row(store, bus, callbacks, call_id, at, kinds::CALL_RINGING).await?;
            }
        }
        StoreOp::Answered { call_id, at } => {
            let at = wall(at);
            if store.mark_answered(call_id, at).await? {
                publish_row(store, bus, callbacks, call_id, at, kinds::CALL_ANSWERED).await?;
            }
        }
        StoreOp::Finish {
            call_id,
            end,
            stats,
            at,
        } => {
            let at = wall(at);
            let first = store
                .finish_call(
                    call_id,
                    end.status,
                    end.code,
                    Some(&end.reason),
                    end.ended_by,
                    &stats,
                    at,
                )
                .await?;
            if first {
                metrics::counter!(telemetry::CALLS_ENDED, "status" => end.status.as_str())
                    .increment(1);
                publish_row(store, bus, callbacks, call_id, at, kinds::CALL_COMPLETED).await?;
            }
            callbacks.remove(&call_id);
        }
        StoreOp::Event {
            call_id,
            kind,
            payload,
            at,
        } => {
            let at = wall(at);
            let url = callbacks.get(&call_id).cloned().flatten();
            bus.publish(at, kind, Some(call_id), payload, url.as_deref())
                .await?;
        }
    }
    Ok(())
}

async fn publish_row(
    store: &crate::store::Store,
    bus: &EventBus,
    callbacks: &HashMap<Uuid, Option<String>>,
    call_id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
    kind: &str,
) -> Result<(), crate::store::StoreError> {
    let row = store.get_call(call_id).await?;
    let payload = serde_json::to_value(&row).unwrap_or_default();
    let url = match callbacks.get(&call_id) {
        Some(u) => u.clone(),
        None => row.as_ref().and_then(|r| r.status_callback.clone()),
    };
    bus.publish(at, kind, Some(call_id), payload, url.as_deref())
        .await?;
    Ok(())
}
