//! The media worker (driver): one 20 ms media clock for every leg, plus one receive task per leg.
//!
//! - **Receive**: each leg's receive task reads its RTP and RTCP sockets and hands every
//!   datagram to the leg's pure [`RtpSession`] at its arrival time (so jitter statistics see real
//!   arrival times), under a short `std` mutex that is never held across `.await`.
//! - **Tick**: every 20 ms, in four phases:
//!   1. every leg pulls one frame from its jitter buffer (silence when none) into its `rx`
//!      frame, and AMD (if running) takes it, whatever the leg is doing (so asynchronous AMD
//!      keeps working on a bridged call);
//!   2. every room (conference or bridge) copies its members' `rx` frames into its
//!      [`Mixer`] and mixes;
//!   3. every leg chooses what it sends (`tx`): a prompt playing on the call, else its room's
//!      mix for it, else the echo of `rx` (`echo` route), else silence; it writes one RTP
//!      packet with its own SSRC and continuous sequence numbers and timestamps, and sends it
//!      with a non-blocking `try_send_to` (a full socket buffer is counted, never awaited); it
//!      also sends RTCP when due and notices the no-media timeout;
//!   4. every recording takes this tick's frame pair: a call's recording `(rx, tx)`, a room's
//!      recording (its left participant's `rx`, the rest of the room), so both channels are
//!      aligned on the media clock. The [`crate::media::recorder::Recorder`] hands 500 ms
//!      chunks to its writer thread, never blocking; the thread's reports come back as
//!      [`MediaEvent::RecordingStopped`].
//!
//!   A far end that sends nothing, bursts or reorders only changes its own `rx` frame (its
//!   jitter buffer absorbs it): no leg or room ever waits for another.
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
use crate::call::engine::{
    LegMode, MediaCommand, MediaEvent, RecordCommand, RecordTarget, RecordingResult, RoomCommand,
};
use crate::clock::Clock;
use crate::media::frame::{FRAME_DURATION, Frame, SILENCE};
use crate::media::mixer::Mixer;
use crate::media::player::Player;
use crate::media::recorder::{RecorderReport, RecorderThread, ReportStatus};
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
    /// The room (conference or bridge) the leg is in: it hears the room's mix for it.
    room: Option<Uuid>,
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
    /// Voicemail: (quiet ticks needed, quiet ticks so far) before [`MediaEvent::Silence`].
    silence_watch: Option<(u32, u32)>,
}

/// A received frame whose mean absolute sample is below this is quiet (about -40 dBFS):
/// comfort noise and line hum stay under it, speech goes well above.
pub const SILENCE_LEVEL: u32 = 330;

/// Whether a frame is quiet (below [`SILENCE_LEVEL`]).
fn is_quiet(frame: &crate::media::frame::Frame) -> bool {
    let sum: u32 = frame.iter().map(|s| s.unsigned_abs() as u32).sum();
    sum / (frame.len() as u32) < SILENCE_LEVEL
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
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let recorder_thread = RecorderThread::spawn(report_tx);
    let mut media = MediaState {
        rooms: HashMap::new(),
        recordings: HashMap::new(),
        recorder: recorder_thread.recorder(),
        scratch: SILENCE,
    };
    let mut rng = SmallRng::from_entropy();
    let mut tick = tokio::time::interval(FRAME_DURATION);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut out = [0u8; 512];
    let mut pending_stopped: Vec<MediaEvent> = Vec::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                handle_command(&clock, &ports, &mut legs, &mut media, &mut rng, &events, &mut pending_stopped, cmd);
            }
            Some(report) = reports.recv() => {
                push_event(&events, &mut pending_stopped, recording_stopped(report));
            }
            _ = tick.tick() => {
                let now = clock.now();
                tick_all(now, &config, &mut legs, &mut media, &mut out, &events);
                pending_stopped.retain(|ev| events.try_send(ev.clone()).is_err());
            }
        }
    }
    for (_, leg) in legs.drain() {
        leg.recv_task.abort();
    }
    // Close every recording still open, so its file is finalized, then wait for the writer.
    drop(media);
    let _ = tokio::task::spawn_blocking(move || recorder_thread.join()).await;
}

/// Rooms and recordings of the worker.
struct MediaState {
    /// One mixer per room, with its members.
    rooms: HashMap<Uuid, Room>,
    /// What each active recording records.
    recordings: HashMap<Uuid, RecordTarget>,
    /// The media side of the recorder (the writer runs on its own thread).
    recorder: crate::media::recorder::Recorder,
    /// A frame for recording taps.
    scratch: Frame,
}

/// A room in the worker: its mixer and the calls in it (kept beside the mixer so the tick can
/// copy each member's received frame in without borrowing the mixer twice).
struct Room {
    mixer: Mixer,
    members: Vec<Uuid>,
}

/// A recorder report as the engine's event.
fn recording_stopped(r: RecorderReport) -> MediaEvent {
    MediaEvent::RecordingStopped {
        recording_id: r.id,
        result: RecordingResult {
            path: r.path,
            frames: r.frames,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            error: match r.status {
                ReportStatus::Completed => None,
                ReportStatus::Failed { reason } => Some(reason),
            },
        },
    }
}

impl MediaState {
    fn room_command(&mut self, legs: &mut HashMap<Uuid, Leg>, cmd: RoomCommand) {
        match cmd {
            RoomCommand::Create {
                room_id,
                wait_music,
                hold_music,
            } => {
                let mut mixer = Mixer::new();
                mixer.set_wait_music(wait_music.map(|p| Player::new(p, true)));
                mixer.set_hold_music(hold_music.map(|p| Player::new(p, true)));
                self.rooms.insert(
                    room_id,
                    Room {
                        mixer,
                        members: Vec::new(),
                    },
                );
            }
            RoomCommand::Join {
                room_id,
                call_id,
                state,
            } => {
                // A call is in one room at a time.
                if let Some(old) = legs.get(&call_id).and_then(|l| l.room)
                    && old != room_id
                {
                    self.leave(legs, old, call_id);
                }
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    tracing::warn!(%room_id, %call_id, "join to an unknown room");
                    return;
                };
                if room.mixer.add(call_id, state) {
                    room.members.push(call_id);
                } else {
                    room.mixer.set_state(call_id, state);
                }
                if let Some(leg) = legs.get_mut(&call_id) {
                    leg.room = Some(room_id);
                }
            }
            RoomCommand::Update {
                room_id,
                call_id,
                state,
            } => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.mixer.set_state(call_id, state);
                }
            }
            RoomCommand::Leave { room_id, call_id } => self.leave(legs, room_id, call_id),
            RoomCommand::Started { room_id, started } => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.mixer.set_started(started);
                }
            }
            RoomCommand::Beep { room_id } => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.mixer.beep();
                }
            }
            RoomCommand::Play {
                room_id,
                prompt,
                repeat,
            } => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.mixer.play(prompt.map(|p| Player::new(p, repeat)));
                }
            }
            RoomCommand::End { room_id } => {
                if let Some(room) = self.rooms.remove(&room_id) {
                    for id in room.members {
                        if let Some(leg) = legs.get_mut(&id)
                            && leg.room == Some(room_id)
                        {
                            leg.room = None;
                        }
                    }
                }
                // The engine stops a room's recordings first; any left would record nothing.
                let left: Vec<Uuid> = self
                    .recordings
                    .iter()
                    .filter(|(_, t)| matches!(t, RecordTarget::Room { room_id: r, .. } if *r == room_id))
                    .map(|(id, _)| *id)
                    .collect();
                for id in left {
                    self.recordings.remove(&id);
                    self.recorder.stop(&id);
                }
            }
        }
    }

    fn leave(&mut self, legs: &mut HashMap<Uuid, Leg>, room_id: Uuid, call_id: Uuid) {
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.mixer.remove(call_id);
            room.members.retain(|m| *m != call_id);
        }
        if let Some(leg) = legs.get_mut(&call_id)
            && leg.room == Some(room_id)
        {
            leg.room = None;
        }
    }

    fn record_command(&mut self, cmd: RecordCommand) {
        match cmd {
            RecordCommand::Start {
                recording_id,
                target,
                path,
            } => {
                if self.recorder.start(recording_id, path) {
                    self.recordings.insert(recording_id, target);
                }
            }
            RecordCommand::Pause { recording_id } => {
                self.recorder.pause(&recording_id);
            }
            RecordCommand::Resume { recording_id } => {
                self.recorder.resume(&recording_id);
            }
            RecordCommand::Stop { recording_id } => {
                self.recordings.remove(&recording_id);
                self.recorder.stop(&recording_id);
            }
        }
    }

    /// Stops the recordings of a call whose leg stops (the engine normally has already).
    fn leg_stopped(&mut self, legs: &mut HashMap<Uuid, Leg>, call_id: Uuid, room: Option<Uuid>) {
        if let Some(room_id) = room {
            self.leave(legs, room_id, call_id);
        }
        if self
            .recordings
            .values()
            .any(|t| *t == RecordTarget::Call(call_id))
        {
            let ids: Vec<Uuid> = self
                .recordings
                .iter()
                .filter(|(_, t)| **t == RecordTarget::Call(call_id))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.recordings.remove(&id);
                self.recorder.stop(&id);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_command(
    clock: &Arc<dyn Clock>,
    ports: &BoundPorts,
    legs: &mut HashMap<Uuid, Leg>,
    media: &mut MediaState,
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
                    room: None,
                    send: true,
                    started: now,
                    recv_task,
                    no_media_reported: false,
                    last_stats: Default::default(),
                    amd: amd.map(|p| Box::new(AmdDetector::new(p))),
                    play_hold_ticks: 0,
                    silence_watch: None,
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
        MediaCommand::WatchSilence { call_id, after } => {
            if let Some(leg) = legs.get_mut(&call_id) {
                let ticks = (after.as_millis() / 20).max(1);
                leg.silence_watch = Some((u32::try_from(ticks).unwrap_or(u32::MAX), 0));
            }
        }
        MediaCommand::Room(cmd) => media.room_command(legs, cmd),
        MediaCommand::Record(cmd) => media.record_command(cmd),
        MediaCommand::Stop { call_id } => {
            let room = legs.get(&call_id).and_then(|l| l.room);
            media.leg_stopped(legs, call_id, room);
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
    media: &mut MediaState,
    out: &mut [u8; 512],
    events: &mpsc::Sender<MediaEvent>,
) {
    // Phase 1: every leg's received frame (and AMD on it).
    for (call_id, leg) in legs.iter_mut() {
        let mut g = leg.shared.lock().unwrap_or_else(|e| e.into_inner());
        g.received_since_tick = 0;
        let _kind = g.session.poll_frame(now, &mut leg.rx);
        drop(g);
        if let Some((needed, quiet)) = leg.silence_watch.as_mut() {
            *quiet = if is_quiet(&leg.rx) { *quiet + 1 } else { 0 };
            if *quiet >= *needed {
                leg.silence_watch = None;
                let _ = events.try_send(MediaEvent::Silence { call_id: *call_id });
            }
        }
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
    // Phase 2: every room mixes its members' frames.
    for (room_id, room) in media.rooms.iter_mut() {
        for id in &room.members {
            if let (Some(input), Some(leg)) = (room.mixer.input_mut(*id), legs.get(id)) {
                *input = leg.rx;
            }
        }
        if room.mixer.mix().play_finished {
            let _ = events.try_send(MediaEvent::RoomPlayFinished { room_id: *room_id });
        }
    }
    // Phase 3: what each leg sends, and the sending.
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
        } else if let Some(out) = leg
            .room
            .and_then(|r| media.rooms.get(&r))
            .and_then(|r| r.mixer.output(*call_id))
        {
            leg.tx = *out;
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
    // Phase 4: recordings take this tick's frames (left = far end, right = our side).
    let MediaState {
        rooms,
        recordings,
        recorder,
        scratch,
    } = media;
    for (rec_id, target) in recordings.iter() {
        match *target {
            RecordTarget::Call(call_id) => {
                if let Some(leg) = legs.get(&call_id) {
                    recorder.push(rec_id, &leg.rx, &leg.tx);
                }
            }
            RecordTarget::Room { room_id, left } => {
                if let Some(room) = rooms.get(&room_id) {
                    let l = room.mixer.input(left).copied().unwrap_or(SILENCE);
                    if !room.mixer.room_mix_without(left, scratch) {
                        *scratch = *room.mixer.room_mix();
                    }
                    recorder.push(rec_id, &l, scratch);
                }
            }
        }
    }
    recorder.poll();
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
