//! The per-leg RTP session that the call engine's media clock drives (pure; RFC 3550 §5-§6 and
//! §A, RFC 4733, RFC 4961 symmetric RTP, RFC 3551 static payload types 0 and 8).
//!
//! # Shape
//! `handle_packet`/`handle_rtcp` take datagrams the driver read (`now` first), `poll_frame` and
//! `write_frame` run once per 20 ms media tick, `poll_rtcp` writes a report when
//! `poll_timeout` says so, and `poll_event` is drained after every call (STYLE.md sec. 2). The
//! session never touches a socket or reads the clock; it allocates only in [`RtpSession::new`].
//!
//! # Our stream
//! One SSRC for the life of the leg, random initial sequence number and timestamp (RFC 3550
//! §5.1), all drawn from the RNG passed in. Every `write_frame` advances the timestamp by 160 and
//! the sequence number by one per packet sent, whatever the audio source is (prompt, bridge,
//! conference, echo), so the far end sees one continuous stream. If the engine stops calling
//! `write_frame` for a while (hold, nothing to send), the next packet's timestamp jumps by the
//! elapsed time rounded to frames and carries the marker bit (start of a talkspurt, RFC 3551
//! §4.1); the very first packet carries it too.
//!
//! # Far end
//! Symmetric RTP ([`LatchMode`]): by default the first valid packet whose IP is the SDP peer's is
//! latched, its source becomes where we send, and packets from elsewhere are counted and dropped.
//! A new far-end SSRC resets the jitter buffer, the reception statistics and the DTMF receiver
//! and raises [`RtpEvent::SsrcChanged`]. Payload types 0 and 8 are decoded whichever was
//! negotiated (a peer that offered both may switch); the negotiated telephone-event type feeds
//! the DTMF receiver; any other type (comfort noise included) is counted and dropped.
//!
//! # Echo
//! [`RtpSession::echo_tick`] (for the `answer+echo` route) goes through the jitter buffer and the
//! media tick: it pops the frame played this tick and writes it back as our own packet. Decoding
//! and re-encoding cost about a microsecond per packet and buy what re-stamping payloads would
//! lose: reordering and duplicates are cleaned up, losses are concealed, packets of other sizes
//! are re-framed to 20 ms, and our SSRC, sequence numbers and timestamps stay continuous and
//! paced by our clock, even when the caller switches law or jitters. The cost is the jitter
//! buffer's delay (60 ms by default) on the echoed audio.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;

use crate::media::frame::{FRAME_DURATION, FRAME_SAMPLES, Frame};
use crate::media::g711::Law;

use super::dtmf::{DtmfError, DtmfReceiver, DtmfSender, DtmfTick};
use super::jitter::{Inserted, JitterBuffer, JitterConfig, Popped};
use super::packet::{self, HEADER_LEN, PacketError, RtpHeader};
use super::rtcp::{
    self, RTCP_MIN_INTERVAL, ReportBlock, RtcpPacket, RtcpWriter, SenderInfo, from_ntp_short,
    ntp_from_system, ntp_middle, to_ntp_short,
};
use super::stats::{ReceiverStats, RtpStats, arrival_ts};

/// Events waiting to be polled; more are counted and dropped (the engine drains after each call).
pub const EVENT_CAPACITY: usize = 16;
/// Smallest output buffer `write_frame` needs (header + 160 bytes of G.711).
pub const MIN_WRITE_BUFFER: usize = HEADER_LEN + FRAME_SAMPLES;
/// Largest RTCP compound packet we write.
pub const MAX_RTCP_LEN: usize = 200;

/// Where we accept RTP from and send it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// Accept packets from any source and send to the SDP address (no latching).
    Off,
    /// Latch the first valid packet from the SDP peer's IP (any port), then only that source.
    #[default]
    PeerIp,
    /// Latch the first valid packet from any source (a peer behind NAT whose SDP is wrong).
    AnySource,
}

/// Configuration of one leg, from the negotiated SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Audio law (PCMU or PCMA).
    pub law: Law,
    /// Negotiated telephone-event payload type, if any.
    pub dtmf_pt: Option<u8>,
    /// The far end's RTP address from its SDP.
    pub remote: Option<SocketAddr>,
    /// Latching policy.
    pub latch: LatchMode,
    /// Jitter buffer policy.
    pub jitter: JitterConfig,
    /// Our RTCP CNAME (at most 255 bytes; longer is cut).
    pub cname: String,
}

impl SessionConfig {
    /// A configuration with the defaults for everything but the SDP values.
    pub fn new(law: Law, dtmf_pt: Option<u8>, remote: Option<SocketAddr>) -> Self {
        SessionConfig {
            law,
            dtmf_pt,
            remote,
            latch: LatchMode::default(),
            jitter: JitterConfig::default(),
            cname: String::from("trunkline"),
        }
    }
}

/// What happened to one received datagram. Everything but `Audio` and `Dtmf` is counted as a
/// drop in [`RtpStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketOutcome {
    /// Audio stored in the jitter buffer.
    Audio,
    /// Audio that restarted the jitter buffer's grid (confirmed sequence or timestamp jump).
    Resynced,
    /// Audio far from the stream, dropped unless the next packet confirms a restart.
    Stray,
    /// A telephone-event packet.
    Dtmf,
    /// Duplicate audio packet.
    Duplicate,
    /// Audio that came after its frame was played.
    Late,
    /// Empty or oversized audio payload.
    BadSize,
    /// Not RTP.
    Malformed(PacketError),
    /// Telephone-event payload too short.
    MalformedDtmf,
    /// From a source other than the latched one.
    WrongSource,
    /// A payload type we did not negotiate.
    UnknownPayloadType(u8),
}

/// What `poll_frame` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Received audio.
    Audio,
    /// Concealment of a lost or late frame.
    Concealed,
    /// Silence: nothing received (yet, or for a while).
    Silence,
}

/// Something the engine should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpEvent {
    /// A DTMF digit ended.
    DtmfReceived {
        /// The digit.
        digit: char,
        /// How long it was held.
        duration: Duration,
    },
    /// We latched onto this source and now send there.
    Latched {
        /// The far end's actual address.
        addr: SocketAddr,
    },
    /// The far end changed its SSRC (a new stream).
    SsrcChanged {
        /// Previous SSRC.
        old: u32,
        /// New SSRC.
        new: u32,
    },
    /// The far end sent an RTCP BYE.
    Bye {
        /// Its SSRC.
        ssrc: u32,
    },
}

/// The per-leg RTP session; see the module docs.
#[derive(Debug)]
pub struct RtpSession {
    law: Law,
    dtmf_pt: Option<u8>,
    sdp_remote: Option<SocketAddr>,
    latch: LatchMode,
    latched: Option<SocketAddr>,
    cname: String,

    ssrc: u32,
    seq_out: u16,
    ts_out: u32,
    last_write: Option<Instant>,
    marker_next: bool,

    remote_ssrc: Option<u32>,
    /// Expected, received and lost of earlier far-end SSRCs of this leg.
    previous_sources: (u64, u64, i64),
    rtcp_source: Option<SocketAddr>,
    jitter: JitterBuffer,
    rx: ReceiverStats,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: DtmfSender,
    events: VecDeque<RtpEvent>,
    events_dropped: u64,

    epoch: Instant,
    wall_at_epoch: SystemTime,
    last_received: Option<Instant>,
    next_rtcp: Instant,
    rtcp_rng: u64,
    last_sr: Option<(u32, Instant)>,
    octets_out: u32,

    stats: RtpStats,
}

impl RtpSession {
    /// A session for one leg. `now` and `wall` are the same instant on the two clocks (RTCP
    /// sender reports carry wall-clock NTP times); `rng` draws our SSRC, initial sequence number
    /// and timestamp, and the RTCP interval jitter.
    pub fn new(
        now: Instant,
        wall: SystemTime,
        config: SessionConfig,
        rng: &mut impl RngCore,
    ) -> Self {
        let mut cname = config.cname;
        while cname.len() > 255 {
            cname.pop();
        }
        let mut s = RtpSession {
            law: config.law,
            dtmf_pt: config.dtmf_pt,
            sdp_remote: config.remote,
            latch: config.latch,
            latched: None,
            cname,
            ssrc: rng.next_u32(),
            seq_out: rng.next_u32() as u16,
            ts_out: rng.next_u32(),
            last_write: None,
            marker_next: true,
            remote_ssrc: None,
            previous_sources: (0, 0, 0),
            rtcp_source: None,
            jitter: JitterBuffer::new(config.jitter),
            rx: ReceiverStats::new(),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: DtmfSender::new(),
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            events_dropped: 0,
            epoch: now,
            wall_at_epoch: wall,
            last_received: None,
            next_rtcp: now,
            rtcp_rng: rng.next_u64() | 1,
            last_sr: None,
            octets_out: 0,
            stats: RtpStats::default(),
        };
        // RFC 3550 §6.2: the first report after half the minimum interval.
        s.next_rtcp = now + s.rtcp_interval() / 2;
        s
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The far end's SSRC, once a packet came.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.remote_ssrc
    }

    /// Where to send: the latched source, else the SDP address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp_remote)
    }

    /// Where to send RTCP: the source of the far end's valid RTCP when latching, else the RTP
    /// destination's port + 1 (RFC 3550 §11).
    pub fn rtcp_remote(&self) -> Option<SocketAddr> {
        self.rtcp_source.or_else(|| {
            self.remote()
                .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
        })
    }

    /// When the last valid RTP packet arrived (for the no-media timeout).
    pub fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    /// The negotiated law.
    pub fn law(&self) -> Law {
        self.law
    }

    /// Applies a new SDP (re-INVITE). A new address drops the latch; the next packet latches
    /// again. Without telephone-event, queued digits are dropped.
    pub fn set_remote(&mut self, addr: SocketAddr, law: Law, dtmf_pt: Option<u8>) {
        if self.sdp_remote != Some(addr) {
            self.sdp_remote = Some(addr);
            self.latched = None;
            self.rtcp_source = None;
        }
        self.law = law;
        self.dtmf_pt = dtmf_pt;
        if dtmf_pt.is_none() {
            self.dtmf_tx.clear();
        }
    }

    fn push_event(&mut self, e: RtpEvent) {
        if self.events.len() < EVENT_CAPACITY {
            self.events.push_back(e);
        } else {
            self.events_dropped += 1;
        }
    }

    fn drain_digits(&mut self) {
        while let Some(d) = self.dtmf_rx.poll_digit() {
            self.push_event(RtpEvent::DtmfReceived {
                digit: d.digit,
                duration: d.duration,
            });
        }
    }

    /// Whether a datagram from `from` may be used, and whether accepting it latches.
    fn source_ok(&self, from: SocketAddr) -> (bool, bool) {
        match (self.latch, self.latched) {
            (LatchMode::Off, _) => (true, false),
            (_, Some(l)) => (l == from, false),
            (LatchMode::PeerIp, None) => {
                let ok = self.sdp_remote.is_none_or(|r| r.ip() == from.ip());
                (ok, ok)
            }
            (LatchMode::AnySource, None) => (true, true),
        }
    }

    /// Handles one datagram from the RTP port.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> PacketOutcome {
        self.stats.packets_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let (ok, latch) = self.source_ok(from);
        if !ok {
            self.stats.wrong_source += 1;
            return PacketOutcome::WrongSource;
        }
        let p = match packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return PacketOutcome::Malformed(e);
            }
        };
        if latch {
            self.latched = Some(from);
            self.push_event(RtpEvent::Latched { addr: from });
        }
        self.last_received = Some(now);
        if self.remote_ssrc != Some(p.ssrc) {
            if let Some(old) = self.remote_ssrc {
                self.push_event(RtpEvent::SsrcChanged { old, new: p.ssrc });
                self.jitter.reset();
                // Keep the call's totals: what the old source got adds to the new one's.
                self.previous_sources.0 += u64::from(self.rx.expected());
                self.previous_sources.1 += u64::from(self.rx.received());
                self.previous_sources.2 += i64::from(self.rx.cumulative_lost());
                self.rx = ReceiverStats::new();
                self.dtmf_rx.reset();
                self.last_sr = None;
            }
            self.remote_ssrc = Some(p.ssrc);
        }
        self.rx
            .update(p.sequence, p.timestamp, arrival_ts(self.epoch, now));
        if Some(p.payload_type) == self.dtmf_pt {
            let r = self.dtmf_rx.handle_packet(now, p.timestamp, p.payload);
            self.drain_digits();
            return match r {
                Ok(()) => PacketOutcome::Dtmf,
                Err(_) => {
                    self.stats.malformed += 1;
                    PacketOutcome::MalformedDtmf
                }
            };
        }
        let Some(law) = Law::from_payload_type(p.payload_type) else {
            self.stats.unknown_payload_type += 1;
            return PacketOutcome::UnknownPayloadType(p.payload_type);
        };
        match self
            .jitter
            .insert(now, p.sequence, p.timestamp, p.payload, law)
        {
            Inserted::Accepted => PacketOutcome::Audio,
            Inserted::Resynced => PacketOutcome::Resynced,
            Inserted::Stray => PacketOutcome::Stray,
            Inserted::Duplicate => PacketOutcome::Duplicate,
            Inserted::Late => PacketOutcome::Late,
            Inserted::BadSize => PacketOutcome::BadSize,
        }
    }

    /// Plays this tick's far-end frame into `out`; call once per 20 ms media tick.
    pub fn poll_frame(&mut self, now: Instant, out: &mut Frame) -> FrameKind {
        self.dtmf_rx.handle_timeout(now);
        self.drain_digits();
        match self.jitter.pop(now, out) {
            Popped::Frame => FrameKind::Audio,
            Popped::Missing => FrameKind::Concealed,
            Popped::Empty => FrameKind::Silence,
        }
    }

    /// Writes this tick's packet into `out` (at least [`MIN_WRITE_BUFFER`] bytes) and returns its
    /// length: `frame` encoded with our SSRC and the next sequence number and timestamp, or a
    /// telephone-event packet while a digit plays. Returns 0 when nothing is to be sent this tick
    /// (a digit is playing between its updates) or `out` is too small. Call once per tick.
    pub fn write_frame(&mut self, now: Instant, frame: &Frame, out: &mut [u8]) -> usize {
        if out.len() < MIN_WRITE_BUFFER {
            return 0;
        }
        if let Some(last) = self.last_write {
            // Up to half a frame of tick jitter is tolerated before a call counts as a gap.
            let gap = now.saturating_duration_since(last);
            let frames = ((gap + FRAME_DURATION / 2).as_micros() / FRAME_DURATION.as_micros())
                .min(u128::from(u32::MAX / 160)) as u32;
            if gap >= FRAME_DURATION * 5 / 2 && frames > 1 {
                self.ts_out = self
                    .ts_out
                    .wrapping_add((frames - 1) * FRAME_SAMPLES as u32);
                self.marker_next = true;
            }
        }
        self.last_write = Some(now);
        let tick_ts = self.ts_out;
        self.ts_out = self.ts_out.wrapping_add(FRAME_SAMPLES as u32);
        let (header, payload_len) = match (self.dtmf_tx.tick(tick_ts), self.dtmf_pt) {
            (DtmfTick::Silent, _) => return 0,
            (
                DtmfTick::Packet {
                    marker,
                    timestamp,
                    event,
                },
                Some(pt),
            ) => {
                out[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&event.to_bytes());
                let h = RtpHeader {
                    marker,
                    payload_type: pt,
                    sequence: self.seq_out,
                    timestamp,
                    ssrc: self.ssrc,
                };
                (h, 4)
            }
            _ => {
                let n = self.law.encode_into(frame, &mut out[HEADER_LEN..]);
                let h = RtpHeader {
                    marker: self.marker_next,
                    payload_type: self.law.payload_type(),
                    sequence: self.seq_out,
                    timestamp: tick_ts,
                    ssrc: self.ssrc,
                };
                self.marker_next = false;
                (h, n)
            }
        };
        if packet::write_header(&header, out).is_err() {
            return 0;
        }
        self.seq_out = self.seq_out.wrapping_add(1);
        let n = HEADER_LEN + payload_len;
        self.stats.packets_out += 1;
        self.stats.bytes_out += n as u64;
        self.octets_out = self.octets_out.wrapping_add(payload_len as u32);
        n
    }

    /// One echo tick: the frame played from the far end this tick, written back as our packet
    /// (see the module docs). `scratch` holds the frame; returns the packet length in `out`.
    pub fn echo_tick(&mut self, now: Instant, scratch: &mut Frame, out: &mut [u8]) -> usize {
        self.poll_frame(now, scratch);
        self.write_frame(now, scratch, out)
    }

    /// Queues DTMF digits to send as telephone-events, each held for `duration`.
    pub fn send_dtmf(&mut self, digits: &str, duration: Duration) -> Result<(), DtmfError> {
        if self.dtmf_pt.is_none() {
            return Err(DtmfError::NotNegotiated);
        }
        self.dtmf_tx.push(digits, duration)
    }

    /// True while digits are queued or playing.
    pub fn dtmf_sending(&self) -> bool {
        !self.dtmf_tx.is_idle()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RtpEvent> {
        self.events.pop_front()
    }

    /// When `poll_rtcp` next has a report to write.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_rtcp)
    }

    fn rtcp_interval(&mut self) -> Duration {
        // xorshift64: cheap jitter for the report interval (§6.3.1: 0.5..1.5 times the interval).
        let mut x = self.rtcp_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rtcp_rng = x;
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        RTCP_MIN_INTERVAL.mul_f64(0.5 + unit)
    }

    fn ntp_at(&self, now: Instant) -> u64 {
        ntp_from_system(self.wall_at_epoch + now.saturating_duration_since(self.epoch))
    }

    /// Our RTP timestamp for `now` (the next frame's timestamp, adjusted by the time since it
    /// was written), for SR sender info.
    fn rtp_ts_at(&self, now: Instant) -> u32 {
        match self.last_write {
            Some(last) => {
                let since = now.saturating_duration_since(last);
                let samples = (since.as_micros() * 8 / 1000) as u32;
                self.ts_out
                    .wrapping_sub(FRAME_SAMPLES as u32)
                    .wrapping_add(samples)
            }
            None => self.ts_out,
        }
    }

    fn write_report(
        &mut self,
        now: Instant,
        w: &mut RtcpWriter<'_>,
    ) -> Result<(), rtcp::RtcpError> {
        let mut blocks = [ReportBlock::default(); 1];
        let n = match self.remote_ssrc {
            Some(ssrc) if self.rx.started() => {
                let r = self.rx.report();
                let (last_sr, dlsr) = match self.last_sr {
                    Some((lsr, at)) => (lsr, to_ntp_short(now.saturating_duration_since(at))),
                    None => (0, 0),
                };
                blocks[0] = ReportBlock {
                    ssrc,
                    fraction_lost: r.fraction_lost,
                    cumulative_lost: r.cumulative_lost,
                    extended_highest_seq: r.extended_highest_seq,
                    jitter: r.jitter,
                    last_sr,
                    delay_since_last_sr: dlsr,
                };
                1
            }
            _ => 0,
        };
        if self.stats.packets_out > 0 {
            let info = SenderInfo {
                ntp: self.ntp_at(now),
                rtp_timestamp: self.rtp_ts_at(now),
                packet_count: self.stats.packets_out as u32,
                octet_count: self.octets_out,
            };
            w.sender_report(self.ssrc, &info, &blocks[..n])?;
        } else {
            w.receiver_report(self.ssrc, &blocks[..n])?;
        }
        w.sdes_cname(self.ssrc, self.cname.as_bytes())
    }

    /// Writes a compound RTCP report (SR or RR, SDES CNAME) into `out` when it is due; returns
    /// its length. Send it to [`RtpSession::rtcp_remote`]. Reports are due every 5 s
    /// (`RTCP_MIN_INTERVAL`, RFC 3550 §6.2 `T_min`) times a random factor in 0.5..1.5 (§6.3.1),
    /// the first one after half of that.
    pub fn poll_rtcp(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if now < self.next_rtcp {
            return None;
        }
        self.next_rtcp = now + self.rtcp_interval();
        let mut w = RtcpWriter::new(out);
        self.write_report(now, &mut w).ok()?;
        self.stats.rtcp_out += 1;
        Some(w.finish())
    }

    /// Writes a final compound RTCP packet with BYE (hang-up) into `out`; returns its length.
    pub fn write_bye(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let mut w = RtcpWriter::new(out);
        self.write_report(now, &mut w).ok()?;
        w.bye(&[self.ssrc], None).ok()?;
        self.stats.rtcp_out += 1;
        Some(w.finish())
    }

    /// Handles one datagram from the RTCP port.
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.rtcp_in += 1;
        let expected_ip = self.latched.or(self.sdp_remote).map(|a| a.ip());
        if self.latch != LatchMode::Off && expected_ip.is_some_and(|ip| ip != from.ip()) {
            self.stats.wrong_source += 1;
            return;
        }
        if rtcp::validate(bytes).is_err() {
            self.stats.rtcp_malformed += 1;
            return;
        }
        if self.latch != LatchMode::Off {
            self.rtcp_source = Some(from);
        }
        let ours = self.ssrc;
        for p in rtcp::parse_compound(bytes).flatten() {
            let blocks = match p {
                RtcpPacket::SenderReport { ssrc, info, blocks } => {
                    if Some(ssrc) == self.remote_ssrc {
                        self.last_sr = Some((ntp_middle(info.ntp), now));
                    }
                    blocks
                }
                RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                RtcpPacket::Bye { ssrcs, .. } => {
                    for s in ssrcs {
                        if Some(s) == self.remote_ssrc {
                            self.push_event(RtpEvent::Bye { ssrc: s });
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            for b in blocks.filter(|b| b.ssrc == ours) {
                self.stats.remote_fraction_lost = f32::from(b.fraction_lost) / 256.0;
                self.stats.remote_lost = b.cumulative_lost;
                self.stats.remote_jitter_ms = f64::from(b.jitter) / 8.0;
                if b.last_sr != 0 {
                    // §6.4.1: RTT = A - LSR - DLSR, in 1/65536 s.
                    let a = ntp_middle(self.ntp_at(now));
                    let rtt = a
                        .wrapping_sub(b.last_sr)
                        .wrapping_sub(b.delay_since_last_sr);
                    if rtt < 1 << 31 {
                        self.stats.rtt_ms = Some(from_ntp_short(rtt).as_secs_f64() * 1000.0);
                    }
                }
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RtpStats {
        let j = self.jitter.stats();
        RtpStats {
            expected: self.previous_sources.0 + u64::from(self.rx.expected()),
            received: self.previous_sources.1 + u64::from(self.rx.received()),
            lost: self.previous_sources.2 + i64::from(self.rx.cumulative_lost()),
            stray: j.strays,
            fraction_lost: f32::from(self.rx.last_fraction_lost()) / 256.0,
            jitter_ts: self.rx.jitter(),
            jitter_ms: f64::from(self.rx.jitter()) / 8.0,
            late: j.late,
            duplicates: j.duplicates,
            frames_played: j.frames_played,
            frames_concealed: j.frames_concealed,
            ..self.stats
        }
    }

    /// Events dropped because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }
}

#[cfg(test)]
mod tests;
