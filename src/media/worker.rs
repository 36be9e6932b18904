//! The media worker (driver): one 20 ms media clock for every leg, plus one receive task per leg.
//!
//! - **Receive**: each leg's receive task reads its RTP and RTCP sockets and hands every
//!   datagram to the leg's pure [`RtpSession`] at its arrival time (so jitter statistics see real
//!   arrival times), under a short `std` mutex that is never held across `.await`.
//! - **Tick**: every 20 ms the worker takes each leg in turn: pulls one frame from its jitter
//!   buffer, chooses what to send (echo of that frame, the next prompt frame, or silence), writes
//!   one RTP packet with the leg's own SSRC and continuous sequence numbers and timestamps, and
//!   sends it with a non-blocking `try_send_to` (a full socket buffer is counted, never awaited).
//!   It also sends RTCP when due and notices the no-media timeout.
//! - **Commands** ([`MediaCommand`]) come from the call engine on a bounded channel; **events**
//!   ([`MediaEvent`]) go back on another. The tick never awaits the engine: events are sent
//!   with `try_send`; the channel is sized for every leg's worst case.
//!
//! - **AMD**: a leg started with AMD parameters owns an [`AmdDetector`], created at leg start,
//!   fed every received frame (silence when none arrived) until its final verdict; verdicts go
//!   to the engine as [`MediaEvent::Amd`]. A prompt given after a final verdict that has a
//!   `message_start` is held (silence is sent) until the stream reaches that time, so a
//!   voicemail drop never starts before the beep has ended. A leg stopped before the final
//!   verdict reports the detector's last word (`finish`) just before its `Stopped`.
//!
//! Metrics are summed per tick and added once per tick ([`crate::telemetry`]).

use crate::amd::AmdDetector;
use crate::call::engine::{LegMode, MediaCommand, MediaEvent};
use crate::clock::Clock;
use crate::media::frame::{FRAME_DURATION, Frame, SILENCE};
use crate::media::player::Player;
use crate::rtp::ports::PortPool;
use crate::rtp::session::{RtpEvent, RtpSession};
use crate::store::RtpStats;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Capacity of the command channel from the engine.
pub const COMMAND_CAPACITY: usize = 4096;
/// Capacity of the event channel to the engine; when full, events are counted and dropped
/// (a `Stopped` is never dropped: it is retried on the next tick).
pub const EVENT_CAPACITY: usize = 8192;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// Attempts to bind a port pair before reporting exhaustion.
const BIND_ATTEMPTS: usize = 32;

/// RTP ports with their sockets bound ahead of use, shared by the engine (allocate/release)
/// and the worker (take the sockets of a started leg).
#[derive(Debug, Clone)]
pub struct BoundPorts {
    inner: Arc<Mutex<BoundInner>>,
}

#[derive(Debug)]
struct BoundInner {
    pool: PortPool,
    ip: IpAddr,
    sockets: HashMap<u16, (std::net::UdpSocket, std::net::UdpSocket)>,
}

impl BoundPorts {
    /// Ports `min..=max` on `ip`.
    pub fn new(ip: IpAddr, min: u16, max: u16) -> anyhow::Result<Self> {
        let pool = PortPool::new(min, max).map_err(|e| anyhow::anyhow!("rtp port range: {e}"))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(BoundInner {
                pool,
                ip,
                sockets: HashMap::new(),
            })),
        })
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pool
            .available()
    }

    fn take(&self, port: u16) -> Option<(std::net::UdpSocket, std::net::UdpSocket)> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sockets
            .remove(&port)
    }
}

impl crate::call::engine::MediaPorts for BoundPorts {
    fn allocate(&mut self) -> Option<u16> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ip = g.ip;
        for _ in 0..BIND_ATTEMPTS {
            let port = g.pool.allocate().ok()?;
            let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, port));
            let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1));
            match (rtp, rtcp) {
                (Ok(a), Ok(b))
                    if a.set_nonblocking(true).is_ok() && b.set_nonblocking(true).is_ok() =>
                {
                    g.sockets.insert(port, (a, b));
                    return Some(port);
                }
                _ => {
                    // Taken by another program: leave it out of the pool for a while (the pool
                    // rotates), try the next.
                    tracing::debug!(port, "rtp port busy, trying the next");
                    let _ = g.pool.release(port);
                }
            }
        }
        None
    }

    fn release(&mut self, port: u16) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.sockets.remove(&port);
        let _ = g.pool.release(port);
    }
}

/// Media settings of the worker.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Hang up after this long without RTP.
    pub no_media_timeout: Duration,
}

struct Shared {
    session: RtpSession,
    /// Set by the receive task when RTP arrives; cleared by the tick.
    received_since_tick: u64,
}

struct Leg {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    /// Echo what it receives when nothing else plays (the `echo` route).
    echo: bool,
    /// The prompt playing, if any (it takes precedence over the room's mix and echo).
    player: Option<Player>,
    /// What arrived this tick (silence when nothing did).
    rx: Frame,
    /// What was sent this tick.
    tx: Frame,
    /// Whether we send audio (false while the far end holds us).
    send: bool,
    started: Instant,
    recv_task: tokio::task::JoinHandle<()>,
    no_media_reported: bool,
    last_stats: crate::rtp::stats::RtpStats,
    /// Answering-machine detection, until its final verdict.
    amd: Option<Box<AmdDetector>>,
    /// Ticks to send silence before the prompt starts (held until the AMD `message_start`).
    play_hold_ticks: u32,
}

/// Runs the media worker until the command channel closes.
pub async fn run_media_worker(
    clock: Arc<dyn Clock>,
    config: MediaConfig,
    ports: BoundPorts,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::Sender<MediaEvent>,
) {
    let mut legs: HashMap<Uuid, Leg> = HashMap::new();
    let mut rng = SmallRng::from_entropy();
    let mut tick = tokio::time::interval(FRAME_DURATION);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut out = [0u8; 512];
    let mut pending_stopped: Vec<MediaEvent> = Vec::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                handle_command(&clock, &ports, &mut legs, &mut rng, &events, &mut pending_stopped, cmd);
            }
            _ = tick.tick() => {
                let now = clock.now();
                tick_all(now, &config, &mut legs, &mut out, &events);
                pending_stopped.retain(|ev| events.try_send(ev.clone()).is_err());
            }
        }
    }
    for (_, leg) in legs.drain() {
        leg.recv_task.abort();
    }
}

fn handle_command(
    clock: &Arc<dyn Clock>,
    ports: &BoundPorts,
    legs: &mut HashMap<Uuid, Leg>,
    rng: &mut SmallRng,
    events: &mpsc::Sender<MediaEvent>,
    pending: &mut Vec<MediaEvent>,
    cmd: MediaCommand,
) {
    match cmd {
        MediaCommand::Start {
            call_id,
            port,
            session,
            mode,
            amd,
        } => {
            let stopped = MediaEvent::Stopped {
                call_id,
                port,
                stats: RtpStats::default(),
            };
            let Some((rtp, rtcp)) = ports.take(port) else {
                tracing::warn!(%call_id, port, "media start without bound sockets");
                push_event(events, pending, stopped);
                return;
            };
            let (rtp, rtcp) = match (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp)) {
                (Ok(a), Ok(b)) => (Arc::new(a), Arc::new(b)),
                _ => {
                    push_event(events, pending, stopped);
                    return;
                }
            };
            let now = clock.now();
            let session = RtpSession::new(now, clock.wall(), session, rng);
            let shared = Arc::new(Mutex::new(Shared {
                session,
                received_since_tick: 0,
            }));
            let recv_task = tokio::spawn(receive(
                clock.clone(),
                shared.clone(),
                rtp.clone(),
                rtcp.clone(),
            ));
            let player = match &mode {
                LegMode::Play { prompt, repeat } => Some(Player::new(prompt.clone(), *repeat)),
                _ => None,
            };
            legs.insert(
                call_id,
                Leg {
                    port,
                    shared,
                    rtp,
                    rtcp,
                    echo: matches!(mode, LegMode::Echo),
                    player,
                    rx: SILENCE,
                    tx: SILENCE,
                    send: true,
                    started: now,
                    recv_task,
                    no_media_reported: false,
                    last_stats: Default::default(),
                    amd: amd.map(|p| Box::new(AmdDetector::new(p))),
                    play_hold_ticks: 0,
                },
            );
        }
        MediaCommand::Update {
            call_id,
            remote,
            law,
            dtmf_pt,
            send,
        } => {
            if let Some(leg) = legs.get_mut(&call_id) {
                leg.send = send && remote.is_some();
                if let Some(addr) = remote {
                    let mut g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
                    g.session.set_remote(addr, law, dtmf_pt);
                }
            }
        }
        MediaCommand::Play {
            call_id,
            prompt,
            repeat,
        } => {
            if let Some(leg) = legs.get_mut(&call_id) {
                leg.play_hold_ticks = leg.amd.as_deref().map_or(0, hold_ticks);
                leg.player = Some(Player::new(prompt, repeat));
            }
        }
        MediaCommand::StopPlay { call_id } => {
            if let Some(leg) = legs.get_mut(&call_id) {
                leg.player = None;
                leg.play_hold_ticks = 0;
            }
        }
        MediaCommand::Dtmf { call_id, digits } => {
            if let Some(leg) = legs.get_mut(&call_id) {
                let mut g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = g.session.send_dtmf(&digits, Duration::from_millis(160)) {
                    tracing::info!(%call_id, error = %e, "dtmf not sent");
                }
            }
        }
        // Rooms and recordings are not created by the engine yet.
        MediaCommand::Room(_) | MediaCommand::Record(_) => {}
        MediaCommand::Stop { call_id } => {
            if let Some(mut leg) = legs.remove(&call_id) {
                leg.recv_task.abort();
                // A stream that stops mid-analysis still gets a final verdict.
                if let Some(det) = leg.amd.as_deref_mut()
                    && det.final_verdict().is_none()
                {
                    let verdict = det.finish(clock.now());
                    push_event(events, pending, MediaEvent::Amd { call_id, verdict });
                }
                let stats = {
                    let g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
                    row_stats(&g.session.stats())
                };
                // Dropping the sockets closes them before the port is released.
                drop(leg.rtp);
                drop(leg.rtcp);
                push_event(
                    events,
                    pending,
                    MediaEvent::Stopped {
                        call_id,
                        port: leg.port,
                        stats,
                    },
                );
            }
        }
    }
}

/// Ticks until the final AMD verdict's `message_start`, counted from the detector's stream
/// time (0 when there is no such verdict or the time has passed).
fn hold_ticks(det: &AmdDetector) -> u32 {
    let Some(start) = det.final_verdict().and_then(|v| v.message_start) else {
        return 0;
    };
    ticks_until(start, det.stream_time())
}

/// Whole frames from stream time `now` until `start`, rounded up (0 once `start` has passed).
fn ticks_until(start: Duration, now: Duration) -> u32 {
    let left = start.saturating_sub(now);
    let ticks = left.as_micros().div_ceil(FRAME_DURATION.as_micros());
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

fn push_event(events: &mpsc::Sender<MediaEvent>, pending: &mut Vec<MediaEvent>, ev: MediaEvent) {
    // Behind earlier pending events, keep the order (an AMD verdict before its `Stopped`).
    if !pending.is_empty() || events.try_send(ev.clone()).is_err() {
        pending.push(ev);
    }
}

/// The counters a call row keeps, from the session's.
pub fn row_stats(s: &crate::rtp::stats::RtpStats) -> RtpStats {
    RtpStats {
        packets_in: s.packets_in,
        packets_out: s.packets_out,
        packets_lost: s.lost.max(0) as u64,
        packets_late: s.late,
        jitter_ms: s.jitter_ms,
    }
}

async fn receive(
    clock: Arc<dyn Clock>,
    shared: Arc<Mutex<Shared>>,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
) {
    let mut a = [0u8; MAX_DATAGRAM];
    let mut b = [0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = rtp.recv_from(&mut a) => {
                let Ok((n, from)) = r else { continue };
                let now = clock.now();
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                g.session.handle_packet(now, from, &a[..n]);
                g.received_since_tick += 1;
            }
            r = rtcp.recv_from(&mut b) => {
                let Ok((n, from)) = r else { continue };
                let now = clock.now();
                let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                g.session.handle_rtcp(now, from, &b[..n]);
            }
        }
    }
}

fn tick_all(
    now: Instant,
    config: &MediaConfig,
    legs: &mut HashMap<Uuid, Leg>,
    out: &mut [u8; 512],
    events: &mpsc::Sender<MediaEvent>,
) {
    // Phase 1: every leg's received frame (and AMD on it).
    for (call_id, leg) in legs.iter_mut() {
        let mut g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
        g.received_since_tick = 0;
        let _kind = g.session.poll_frame(now, &mut leg.rx);
        drop(g);
        if let Some(det) = leg.amd.as_deref_mut()
            && det.final_verdict().is_none()
            && let Some(verdict) = det.push_frame(now, &leg.rx)
        {
            let _ = events.try_send(MediaEvent::Amd {
                call_id: *call_id,
                verdict,
            });
        }
    }
    // Phase 2: what each leg sends, and the sending.
    let (mut pkts_in, mut pkts_out, mut late, mut dropped, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0i64);
    for (call_id, leg) in legs.iter_mut() {
        let mut play_finished = false;
        if leg.player.is_some() && leg.play_hold_ticks > 0 {
            leg.play_hold_ticks -= 1;
            leg.tx = SILENCE;
        } else if let Some(p) = leg.player.as_mut() {
            if !p.next_frame(&mut leg.tx) {
                play_finished = true;
                leg.player = None;
            }
        } else if leg.echo {
            leg.tx = leg.rx;
        } else {
            leg.tx = SILENCE;
        }
        let mut g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
        if leg.send
            && let Some(to) = g.session.remote()
        {
            let n = g.session.write_frame(now, &leg.tx, out);
            if n > 0 {
                let _ = leg.rtp.try_send_to(&out[..n], to);
            }
        }
        if let Some(to) = g.session.rtcp_remote()
            && let Some(n) = g.session.poll_rtcp(now, out)
        {
            let _ = leg.rtcp.try_send_to(&out[..n], to);
        }
        while let Some(ev) = g.session.poll_event() {
            if let RtpEvent::DtmfReceived { digit, duration } = ev {
                let _ = events.try_send(MediaEvent::Dtmf {
                    call_id: *call_id,
                    digit,
                    duration,
                });
            }
        }
        let idle_since = g.session.last_received().unwrap_or(leg.started);
        if !leg.no_media_reported
            && now.saturating_duration_since(idle_since) >= config.no_media_timeout
        {
            leg.no_media_reported = true;
            let _ = events.try_send(MediaEvent::NoMedia { call_id: *call_id });
        }
        let s = g.session.stats();
        pkts_in += s.packets_in - leg.last_stats.packets_in;
        pkts_out += s.packets_out - leg.last_stats.packets_out;
        late += s.late - leg.last_stats.late;
        dropped += (s.malformed + s.wrong_source + s.unknown_payload_type)
            - (leg.last_stats.malformed
                + leg.last_stats.wrong_source
                + leg.last_stats.unknown_payload_type);
        lost += s.lost - leg.last_stats.lost;
        leg.last_stats = s;
        drop(g);
        if play_finished {
            let _ = events.try_send(MediaEvent::PlayFinished { call_id: *call_id });
        }
    }
    use crate::telemetry as t;
    if pkts_in > 0 {
        metrics::counter!(t::RTP_PACKETS, "direction" => "in").increment(pkts_in);
    }
    if pkts_out > 0 {
        metrics::counter!(t::RTP_PACKETS, "direction" => "out").increment(pkts_out);
    }
    if late > 0 {
        metrics::counter!(t::RTP_LATE).increment(late);
    }
    if dropped > 0 {
        metrics::counter!(t::RTP_DROPPED).increment(dropped);
    }
    if lost > 0 {
        metrics::counter!(t::RTP_LOST).increment(lost as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_prompt_waits_whole_frames_until_message_start() {
        let ms = Duration::from_millis;
        assert_eq!(ticks_until(ms(7_680), ms(7_680)), 0);
        assert_eq!(ticks_until(ms(7_680), ms(8_000)), 0, "already passed");
        assert_eq!(ticks_until(ms(7_700), ms(7_600)), 5);
        assert_eq!(
            ticks_until(ms(7_610), ms(7_600)),
            1,
            "a part frame counts whole"
        );
    }

    #[test]
    fn a_detector_without_a_final_verdict_holds_nothing() {
        let det = AmdDetector::new(crate::amd::AmdParams::default());
        assert_eq!(hold_ticks(&det), 0);
    }
}
