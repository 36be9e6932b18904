//! RFC 4733 telephone-event (DTMF) receive and send (pure; RFC 4733 §2.3 payload format, §2.5
//! sender and receiver procedures, events 0-15 of §3.2).
//!
//! **Receive** ([`DtmfReceiver`]): an event is identified by its RTP timestamp (§2.5.2.1). A digit
//! is reported once, when its first end packet arrives; the retransmitted end packets (same
//! timestamp) are ignored. If every end packet is lost, the digit is reported when a new event
//! starts or when no packet for it came for [`DTMF_END_TIMEOUT`] ([`DtmfReceiver::handle_timeout`]),
//! with the longest duration seen. Events other than 0-15 (flash, tones) are counted and ignored.
//!
//! **Send** ([`DtmfSender`]): a pure generator asked once per 20 ms media tick with the timestamp
//! an audio frame of that tick would carry. Each digit starts with a marker packet, sends updates
//! so that no two packets are more than [`DTMF_UPDATE_INTERVAL`] apart (every second 20 ms
//! tick), ends with three end packets on consecutive ticks (§2.5.1.4), all with the event's first
//! timestamp, then leaves [`DTMF_GAP_TICKS`] ticks of audio before the next digit. While a
//! digit plays, audio is muted (§2.5.1.3 allows either; muting keeps in-band detectors of the far
//! end from seeing half a tone). Digits wait in a fixed queue of [`DTMF_QUEUE_CAPACITY`].

use std::time::{Duration, Instant};

use thiserror::Error;

use super::sequence::ts_newer;

/// A digit is reported if its event gets no packet for this long (all end packets lost).
pub const DTMF_END_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest gap between two packets of one event we send.
pub const DTMF_UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// Ticks of audio between two digits we send (after the end packets).
pub const DTMF_GAP_TICKS: u8 = 3;
/// Digits that can wait to be sent.
pub const DTMF_QUEUE_CAPACITY: usize = 32;
/// Shortest digit we send.
pub const DTMF_MIN_DURATION: Duration = Duration::from_millis(40);
/// Longest digit we send (the 16-bit duration field holds 8.19 s at 8 kHz).
pub const DTMF_MAX_DURATION: Duration = Duration::from_secs(5);
/// Volume field we send: -10 dBm0.
pub const DTMF_VOLUME: u8 = 10;
/// Telephone-event payload length.
pub const DTMF_PAYLOAD_LEN: usize = 4;
const TICK_TS: u32 = 160;
const UPDATE_TS: u32 = 400;
const END_PACKETS: u8 = 3;
const RECEIVED_CAPACITY: usize = 8;

/// DTMF errors (sending requests and malformed payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// Not a DTMF digit (0-9, *, #, A-D).
    #[error("invalid dtmf digit {0:?}")]
    InvalidDigit(char),
    /// Duration outside 40 ms..=5 s.
    #[error("dtmf duration out of range")]
    BadDuration,
    /// Not enough room in the send queue for all the digits.
    #[error("dtmf send queue full")]
    QueueFull,
    /// The far end did not negotiate telephone-event.
    #[error("telephone-event not negotiated")]
    NotNegotiated,
    /// Telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes")]
    Malformed(usize),
}

/// The event code of a DTMF digit (§3.2), if it is one.
pub fn event_of(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The digit of an event code 0-15.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// A telephone-event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code.
    pub event: u8,
    /// End bit.
    pub end: bool,
    /// Volume in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4 bytes of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3f,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::Malformed(payload.len())),
        }
    }

    /// The 4-byte payload.
    pub fn to_bytes(&self) -> [u8; DTMF_PAYLOAD_LEN] {
        let d = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3f);
        [self.event, flags, d[0], d[1]]
    }
}

/// A digit received from the far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// The digit (0-9, *, #, A-D).
    pub digit: char,
    /// How long it was held.
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ts: u32,
    event: u8,
    duration: u16,
    reported: bool,
    last_packet: Instant,
}

/// Receives telephone-events of one source; see the module docs.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    current: Option<Current>,
    done: [Option<DtmfDigit>; RECEIVED_CAPACITY],
    done_head: usize,
    done_len: usize,
    /// Events that are not digits (ignored).
    pub other_events: u64,
    /// Digits dropped because nobody polled them.
    pub dropped_digits: u64,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new()
    }
}

fn ts_duration(ts_units: u16) -> Duration {
    Duration::from_micros(u64::from(ts_units) * 125)
}

impl DtmfReceiver {
    /// A receiver with no event in progress.
    pub fn new() -> Self {
        DtmfReceiver {
            current: None,
            done: [None; RECEIVED_CAPACITY],
            done_head: 0,
            done_len: 0,
            other_events: 0,
            dropped_digits: 0,
        }
    }

    fn finish(&mut self, c: &mut Current) {
        if c.reported {
            return;
        }
        c.reported = true;
        let Some(digit) = digit_of(c.event) else {
            return;
        };
        if self.done_len == RECEIVED_CAPACITY {
            self.dropped_digits += 1;
            return;
        }
        let idx = (self.done_head + self.done_len) % RECEIVED_CAPACITY;
        self.done[idx] = Some(DtmfDigit {
            digit,
            duration: ts_duration(c.duration),
        });
        self.done_len += 1;
    }

    /// Handles one telephone-event packet with RTP timestamp `ts`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ts: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        if ev.event > 15 {
            self.other_events += 1;
            return Ok(());
        }
        match self.current {
            Some(mut c) if c.ts == ts => {
                c.duration = c.duration.max(ev.duration);
                c.last_packet = now;
                if ev.end {
                    self.finish(&mut c);
                }
                self.current = Some(c);
            }
            // A late packet of an earlier event.
            Some(c) if ts_newer(c.ts, ts) => {}
            prev => {
                if let Some(mut p) = prev {
                    self.finish(&mut p);
                }
                let mut c = Current {
                    ts,
                    event: ev.event,
                    duration: ev.duration,
                    reported: false,
                    last_packet: now,
                };
                if ev.end {
                    self.finish(&mut c);
                }
                self.current = Some(c);
            }
        }
        Ok(())
    }

    /// Reports an event whose end packets were all lost; call on each media tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(mut c) = self.current {
            if !c.reported && now.saturating_duration_since(c.last_packet) >= DTMF_END_TIMEOUT {
                self.finish(&mut c);
                self.current = Some(c);
            }
        }
    }

    /// When [`DtmfReceiver::handle_timeout`] would report an event in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .filter(|c| !c.reported)
            .map(|c| c.last_packet + DTMF_END_TIMEOUT)
    }

    /// Takes the next finished digit.
    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        if self.done_len == 0 {
            return None;
        }
        let d = self.done[self.done_head].take();
        self.done_head = (self.done_head + 1) % RECEIVED_CAPACITY;
        self.done_len -= 1;
        d
    }

    /// Forgets the event in progress (new source).
    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// What the sender wants for one media tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfTick {
    /// No digit playing: send audio as usual.
    Audio,
    /// A digit is playing but no packet is due this tick: send nothing.
    Silent,
    /// Send this telephone-event packet.
    Packet {
        /// Marker bit (first packet of the event).
        marker: bool,
        /// RTP timestamp: the event's start, the same for all its packets.
        timestamp: u32,
        /// Payload.
        event: TelephoneEvent,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    Idle,
    Playing {
        event: u8,
        start_ts: u32,
        total: u16,
        elapsed: u32,
        last_sent: u32,
    },
    Ending {
        event: u8,
        start_ts: u32,
        total: u16,
        remaining: u8,
    },
    Gap(u8),
}

/// Generates telephone-event packets, one decision per media tick; see the module docs.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    queue: [(u8, u16); DTMF_QUEUE_CAPACITY],
    head: usize,
    len: usize,
    state: SendState,
}

impl Default for DtmfSender {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfSender {
    /// A sender with an empty queue.
    pub fn new() -> Self {
        DtmfSender {
            queue: [(0, 0); DTMF_QUEUE_CAPACITY],
            head: 0,
            len: 0,
            state: SendState::Idle,
        }
    }

    /// Queues `digits`, each held for `duration`. Either all are queued or none.
    pub fn push(&mut self, digits: &str, duration: Duration) -> Result<(), DtmfError> {
        if !(DTMF_MIN_DURATION..=DTMF_MAX_DURATION).contains(&duration) {
            return Err(DtmfError::BadDuration);
        }
        let mut count = 0;
        for c in digits.chars() {
            event_of(c).ok_or(DtmfError::InvalidDigit(c))?;
            count += 1;
        }
        if self.len + count > DTMF_QUEUE_CAPACITY {
            return Err(DtmfError::QueueFull);
        }
        // Round up to whole ticks: the event lasts as many ticks as it covers.
        let ts = (duration.as_micros() / 125) as u32;
        let total = ts.div_ceil(TICK_TS) * TICK_TS;
        let total = total.min(u32::from(u16::MAX)) as u16;
        for c in digits.chars() {
            if let Some(e) = event_of(c) {
                let idx = (self.head + self.len) % DTMF_QUEUE_CAPACITY;
                self.queue[idx] = (e, total);
                self.len += 1;
            }
        }
        Ok(())
    }

    /// True while a digit (or its end packets) is being sent: audio is muted.
    pub fn is_sending(&self) -> bool {
        matches!(
            self.state,
            SendState::Playing { .. } | SendState::Ending { .. }
        )
    }

    /// True if nothing is queued or playing.
    pub fn is_idle(&self) -> bool {
        self.len == 0 && matches!(self.state, SendState::Idle)
    }

    /// Digits still waiting.
    pub fn queued(&self) -> usize {
        self.len
    }

    /// Drops every queued digit and the one playing (ends it at once with no end packet).
    pub fn clear(&mut self) {
        self.len = 0;
        self.state = SendState::Idle;
    }

    /// Decides this tick. `tick_ts` is the RTP timestamp an audio frame of this tick would carry.
    pub fn tick(&mut self, tick_ts: u32) -> DtmfTick {
        match self.state {
            SendState::Gap(n) => {
                self.state = if n <= 1 {
                    SendState::Idle
                } else {
                    SendState::Gap(n - 1)
                };
                DtmfTick::Audio
            }
            SendState::Idle => {
                if self.len == 0 {
                    return DtmfTick::Audio;
                }
                let (event, total) = self.queue[self.head];
                self.head = (self.head + 1) % DTMF_QUEUE_CAPACITY;
                self.len -= 1;
                self.state = SendState::Playing {
                    event,
                    start_ts: tick_ts,
                    total,
                    elapsed: TICK_TS,
                    last_sent: TICK_TS,
                };
                self.packet(true, tick_ts, event, false, TICK_TS as u16)
            }
            SendState::Playing {
                event,
                start_ts,
                total,
                elapsed,
                last_sent,
            } => {
                let elapsed = elapsed + TICK_TS;
                if elapsed >= u32::from(total) {
                    self.state = SendState::Ending {
                        event,
                        start_ts,
                        total,
                        remaining: END_PACKETS - 1,
                    };
                    self.packet(false, start_ts, event, true, total)
                } else if elapsed - last_sent + TICK_TS > UPDATE_TS {
                    self.state = SendState::Playing {
                        event,
                        start_ts,
                        total,
                        elapsed,
                        last_sent: elapsed,
                    };
                    self.packet(false, start_ts, event, false, elapsed as u16)
                } else {
                    self.state = SendState::Playing {
                        event,
                        start_ts,
                        total,
                        elapsed,
                        last_sent,
                    };
                    DtmfTick::Silent
                }
            }
            SendState::Ending {
                event,
                start_ts,
                total,
                remaining,
            } => {
                self.state = if remaining <= 1 {
                    SendState::Gap(DTMF_GAP_TICKS)
                } else {
                    SendState::Ending {
                        event,
                        start_ts,
                        total,
                        remaining: remaining - 1,
                    }
                };
                self.packet(false, start_ts, event, true, total)
            }
        }
    }

    fn packet(
        &self,
        marker: bool,
        timestamp: u32,
        event: u8,
        end: bool,
        duration: u16,
    ) -> DtmfTick {
        DtmfTick::Packet {
            marker,
            timestamp,
            event: TelephoneEvent {
                event,
                end,
                volume: DTMF_VOLUME,
                duration,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    #[test]
    fn digits_map_both_ways() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(event_of(c), Some(i as u8));
            assert_eq!(digit_of(i as u8), Some(c));
        }
        assert_eq!(event_of('e'), None);
        assert_eq!(digit_of(16), None);
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1234,
        };
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::Malformed(2)));
    }

    /// Runs a sender for `ticks` ticks and collects (tick, packet) pairs.
    fn run(sender: &mut DtmfSender, ticks: u32) -> Vec<(u32, DtmfTick)> {
        (0..ticks)
            .map(|i| (i, sender.tick(1000 + i * 160)))
            .collect()
    }

    #[test]
    fn sender_follows_rfc4733_procedure() {
        let mut s = DtmfSender::new();
        s.push("5", Duration::from_millis(100)).expect("valid");
        let out = run(&mut s, 12);
        let packets: Vec<_> = out
            .iter()
            .filter_map(|(i, t)| match t {
                DtmfTick::Packet {
                    marker,
                    timestamp,
                    event,
                } => Some((*i, *marker, *timestamp, *event)),
                _ => None,
            })
            .collect();
        // start with marker, an update after >= 50 ms, end at 100 ms, 3 end packets
        assert_eq!(packets[0].0, 0);
        assert!(packets[0].1);
        assert!(packets.iter().all(|p| p.2 == 1000 && p.3.event == 5));
        assert!(packets[1..].iter().all(|p| !p.1));
        let ends: Vec<_> = packets.iter().filter(|p| p.3.end).collect();
        assert_eq!(ends.len(), 3);
        assert!(ends.iter().all(|p| p.3.duration == 800));
        assert_eq!(ends.iter().map(|p| p.0).collect::<Vec<_>>(), vec![4, 5, 6]);
        // gaps between packets never exceed 50 ms
        for w in packets.windows(2) {
            assert!((w[1].0 - w[0].0) * 20 <= 50);
        }
        assert_eq!(out[1].1, DtmfTick::Silent);
        assert_eq!(out[7].1, DtmfTick::Audio);
        assert!(s.is_idle());
    }

    #[test]
    fn push_validates_everything_first() {
        let mut s = DtmfSender::new();
        assert_eq!(
            s.push("12x", Duration::from_millis(100)),
            Err(DtmfError::InvalidDigit('x'))
        );
        assert_eq!(s.queued(), 0);
        assert_eq!(
            s.push("1", Duration::from_millis(10)),
            Err(DtmfError::BadDuration)
        );
        let many: String = std::iter::repeat_n('1', 33).collect();
        assert_eq!(
            s.push(&many, Duration::from_millis(100)),
            Err(DtmfError::QueueFull)
        );
        assert!(s.push(&many[..32], Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn round_trip_sender_to_receiver() {
        let t0 = crate::clock::test_origin();
        let mut s = DtmfSender::new();
        let mut r = DtmfReceiver::new();
        s.push("1*9#", Duration::from_millis(120)).expect("valid");
        let mut got = Vec::new();
        for i in 0..60u32 {
            let now = t0 + TICK * i;
            if let DtmfTick::Packet {
                timestamp, event, ..
            } = s.tick(i * 160)
            {
                r.handle_packet(now, timestamp, &event.to_bytes())
                    .expect("valid");
            }
            r.handle_timeout(now);
            while let Some(d) = r.poll_digit() {
                got.push(d);
            }
        }
        assert_eq!(got.iter().map(|d| d.digit).collect::<String>(), "1*9#");
        assert!(got.iter().all(|d| d.duration == Duration::from_millis(120)));
    }

    #[test]
    fn lost_end_packets_are_reported_once_by_timeout() {
        let t0 = crate::clock::test_origin();
        let mut r = DtmfReceiver::new();
        let start = TelephoneEvent {
            event: 3,
            end: false,
            volume: 10,
            duration: 160,
        };
        r.handle_packet(t0, 5000, &start.to_bytes()).expect("valid");
        let upd = TelephoneEvent {
            duration: 640,
            ..start
        };
        r.handle_packet(t0 + TICK * 3, 5000, &upd.to_bytes())
            .expect("valid");
        assert_eq!(r.poll_timeout(), Some(t0 + TICK * 3 + DTMF_END_TIMEOUT));
        r.handle_timeout(t0 + TICK * 4);
        assert_eq!(r.poll_digit(), None);
        r.handle_timeout(t0 + TICK * 3 + DTMF_END_TIMEOUT);
        assert_eq!(
            r.poll_digit(),
            Some(DtmfDigit {
                digit: '3',
                duration: Duration::from_millis(80)
            })
        );
        // A late end packet of the same event does not report it again.
        let end = TelephoneEvent { end: true, ..upd };
        r.handle_packet(t0 + TICK * 30, 5000, &end.to_bytes())
            .expect("valid");
        assert_eq!(r.poll_digit(), None);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_new_event_closes_one_without_end_and_old_events_are_ignored() {
        let t0 = crate::clock::test_origin();
        let mut r = DtmfReceiver::new();
        let a = TelephoneEvent {
            event: 1,
            end: false,
            volume: 10,
            duration: 400,
        };
        let b = TelephoneEvent { event: 2, ..a };
        r.handle_packet(t0, 100, &a.to_bytes()).expect("valid");
        r.handle_packet(t0, 2000, &b.to_bytes()).expect("valid");
        r.handle_packet(t0, 100, &TelephoneEvent { end: true, ..a }.to_bytes())
            .expect("valid");
        assert_eq!(r.poll_digit().map(|d| d.digit), Some('1'));
        assert_eq!(r.poll_digit(), None);
        let flash = TelephoneEvent { event: 16, ..a };
        r.handle_packet(t0, 9000, &flash.to_bytes()).expect("valid");
        assert_eq!(r.other_events, 1);
    }
}
