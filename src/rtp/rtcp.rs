//! RTCP packets: build and parse SR, RR, SDES CNAME and BYE, in compound packets (pure; RFC 3550
//! §6.4.1 SR, §6.4.2 RR, §6.5 SDES, §6.6 BYE, §6.1 compound packets, §A.2 validity checks, §4 NTP
//! timestamps).
//!
//! Building writes into a caller buffer through [`RtcpWriter`]; parsing iterates a compound packet
//! ([`parse_compound`]) yielding borrowed views, so neither allocates. Report blocks come out of
//! [`ReportBlocks`], an iterator over the borrowed bytes.
//!
//! Deliberate limits: SDES parsing reads the first chunk's CNAME only (that is all a leg needs:
//! the far end's canonical name); other SDES items and chunks are skipped. Packet types other than
//! 200-203 (APP, feedback, XR) are returned as [`RtcpPacket::Other`] and ignored by the session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;
/// Minimum interval between our reports (RFC 3550 §6.2, `T_min`).
pub const RTCP_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Report block length in bytes.
const BLOCK_LEN: usize = 24;
/// SDES item type of CNAME.
const SDES_CNAME: u8 = 1;
/// Seconds from 1900 (NTP era 0) to 1970 (Unix epoch).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// RTCP errors: malformed input (counted) or a buffer that cannot hold what we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Fewer bytes than a header or than the header's length says.
    #[error("rtcp packet truncated at byte {0}")]
    Truncated(usize),
    /// Version field other than 2.
    #[error("unsupported rtcp version {0}")]
    BadVersion(u8),
    /// A body shorter than its packet type requires.
    #[error("rtcp packet type {0} too short for its contents")]
    BadLength(u8),
    /// The output buffer is too small.
    #[error("output buffer too small for the rtcp packet")]
    BufferTooSmall,
    /// More than 31 report blocks or sources.
    #[error("too many rtcp report blocks or sources")]
    TooMany,
    /// CNAME or reason longer than 255 bytes.
    #[error("rtcp text item longer than 255 bytes")]
    TextTooLong,
}

/// A 64-bit NTP timestamp (§4) for a wall-clock time.
pub fn ntp_from_system(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET_SECS;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (the LSR field, §6.4.1).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in the 1/65536 s units of DLSR and round-trip times.
pub fn to_ntp_short(d: Duration) -> u32 {
    ((d.as_nanos() << 16) / 1_000_000_000).min(u128::from(u32::MAX)) as u32
}

/// A duration from 1/65536 s units.
pub fn from_ntp_short(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

/// Sender information of an SR (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp of the report.
    pub ntp: u64,
    /// RTP timestamp matching the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// One reception report block (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp from that source, 0 if none.
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s, 0 if none.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let second = w(4);
        // Sign-extend the 24-bit cumulative lost.
        let lost = ((second << 8) as i32) >> 8;
        ReportBlock {
            ssrc: w(0),
            fraction_lost: (second >> 24) as u8,
            cumulative_lost: lost,
            extended_highest_seq: w(8),
            jitter: w(12),
            last_sr: w(16),
            delay_since_last_sr: w(20),
        }
    }
}

/// Iterator over the report blocks of an SR or RR, borrowing the datagram.
#[derive(Debug, Clone, Copy)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.bytes.len() < BLOCK_LEN {
            return None;
        }
        let (b, rest) = self.bytes.split_at(BLOCK_LEN);
        self.bytes = rest;
        Some(ReportBlock::read(b))
    }
}

/// Iterator over the SSRCs of a BYE.
#[derive(Debug, Clone, Copy)]
pub struct Ssrcs<'a> {
    bytes: &'a [u8],
}

impl Iterator for Ssrcs<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let (b, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(u32::from_be_bytes(*b))
    }
}

/// One packet of a compound RTCP packet, borrowing the datagram.
#[derive(Debug, Clone, Copy)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender SSRC.
        ssrc: u32,
        /// Sender information.
        info: SenderInfo,
        /// Report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter SSRC.
        ssrc: u32,
        /// Report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Source description: the first chunk's CNAME.
    SourceDescription {
        /// SSRC of the first chunk, if any.
        ssrc: Option<u32>,
        /// Its CNAME, if present.
        cname: Option<&'a [u8]>,
    },
    /// Goodbye.
    Bye {
        /// Sources leaving.
        ssrcs: Ssrcs<'a>,
        /// Reason, if given.
        reason: Option<&'a [u8]>,
    },
    /// Any other packet type (APP, feedback, XR): skipped.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Iterator over the packets of a compound RTCP datagram.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

/// Parses a compound RTCP datagram lazily. Each item is one packet or the error that stops the
/// iteration (nothing after a malformed packet is trusted).
pub fn parse_compound(bytes: &[u8]) -> Compound<'_> {
    Compound {
        bytes,
        offset: 0,
        failed: false,
    }
}

/// Checks a whole compound packet (§A.2): version 2, lengths adding up, first packet SR or RR.
pub fn validate(bytes: &[u8]) -> Result<(), RtcpError> {
    let mut first = true;
    for p in parse_compound(bytes) {
        let p = p?;
        if first
            && !matches!(
                p,
                RtcpPacket::SenderReport { .. } | RtcpPacket::ReceiverReport { .. }
            )
        {
            return Err(RtcpError::BadLength(bytes.get(1).copied().unwrap_or(0)));
        }
        first = false;
    }
    if first {
        return Err(RtcpError::Truncated(0));
    }
    Ok(())
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let r = self.next_packet();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> Compound<'a> {
    fn next_packet(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let rest = &self.bytes[self.offset..];
        if rest.len() < 4 {
            return Err(RtcpError::Truncated(self.offset));
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let padding = rest[0] & 0x20 != 0;
        let count = usize::from(rest[0] & 0x1f);
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if rest.len() < len {
            return Err(RtcpError::Truncated(self.offset));
        }
        self.offset += len;
        let mut body = &rest[4..len];
        if padding {
            let pad = usize::from(*body.last().unwrap_or(&0));
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadLength(pt));
            }
            body = &body[..body.len() - pad];
        }
        match pt {
            PT_SR => {
                if body.len() < 24 + count * BLOCK_LEN {
                    return Err(RtcpError::BadLength(pt));
                }
                let ntp = (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8));
                Ok(RtcpPacket::SenderReport {
                    ssrc: be32(body, 0),
                    info: SenderInfo {
                        ntp,
                        rtp_timestamp: be32(body, 12),
                        packet_count: be32(body, 16),
                        octet_count: be32(body, 20),
                    },
                    blocks: ReportBlocks {
                        bytes: &body[24..24 + count * BLOCK_LEN],
                    },
                })
            }
            PT_RR => {
                if body.len() < 4 + count * BLOCK_LEN {
                    return Err(RtcpError::BadLength(pt));
                }
                Ok(RtcpPacket::ReceiverReport {
                    ssrc: be32(body, 0),
                    blocks: ReportBlocks {
                        bytes: &body[4..4 + count * BLOCK_LEN],
                    },
                })
            }
            PT_SDES => {
                if count == 0 {
                    return Ok(RtcpPacket::SourceDescription {
                        ssrc: None,
                        cname: None,
                    });
                }
                if body.len() < 4 {
                    return Err(RtcpError::BadLength(pt));
                }
                let ssrc = be32(body, 0);
                let mut items = &body[4..];
                let mut cname = None;
                while let [kind, item_len, tail @ ..] = items {
                    if *kind == 0 {
                        break;
                    }
                    let n = usize::from(*item_len);
                    if tail.len() < n {
                        return Err(RtcpError::BadLength(pt));
                    }
                    if *kind == SDES_CNAME {
                        cname = Some(&tail[..n]);
                        break;
                    }
                    items = &tail[n..];
                }
                Ok(RtcpPacket::SourceDescription {
                    ssrc: Some(ssrc),
                    cname,
                })
            }
            PT_BYE => {
                if body.len() < count * 4 {
                    return Err(RtcpError::BadLength(pt));
                }
                let (ssrcs, tail) = body.split_at(count * 4);
                let reason = match tail {
                    [n, text @ ..] if usize::from(*n) <= text.len() && *n > 0 => {
                        Some(&text[..usize::from(*n)])
                    }
                    _ => None,
                };
                Ok(RtcpPacket::Bye {
                    ssrcs: Ssrcs { bytes: ssrcs },
                    reason,
                })
            }
            other => Ok(RtcpPacket::Other { packet_type: other }),
        }
    }
}

/// Writes a compound RTCP packet into a caller buffer, packet by packet.
#[derive(Debug)]
pub struct RtcpWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        RtcpWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn header(&mut self, count: usize, pt: u8, body_len: usize) -> Result<&mut [u8], RtcpError> {
        if count > 31 {
            return Err(RtcpError::TooMany);
        }
        let total = 4 + body_len;
        debug_assert!(total % 4 == 0);
        let start = self.len;
        let out = self
            .buf
            .get_mut(start..start + total)
            .ok_or(RtcpError::BufferTooSmall)?;
        out[0] = 0x80 | count as u8;
        out[1] = pt;
        out[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
        self.len += total;
        Ok(&mut out[4..])
    }

    /// Appends a sender report.
    pub fn sender_report(
        &mut self,
        ssrc: u32,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<(), RtcpError> {
        let body = self.header(blocks.len(), PT_SR, 24 + blocks.len() * BLOCK_LEN)?;
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        body[4..12].copy_from_slice(&info.ntp.to_be_bytes());
        body[12..16].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        body[16..20].copy_from_slice(&info.packet_count.to_be_bytes());
        body[20..24].copy_from_slice(&info.octet_count.to_be_bytes());
        for (b, out) in blocks.iter().zip(body[24..].chunks_exact_mut(BLOCK_LEN)) {
            b.write(out);
        }
        Ok(())
    }

    /// Appends a receiver report.
    pub fn receiver_report(&mut self, ssrc: u32, blocks: &[ReportBlock]) -> Result<(), RtcpError> {
        let body = self.header(blocks.len(), PT_RR, 4 + blocks.len() * BLOCK_LEN)?;
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        for (b, out) in blocks.iter().zip(body[4..].chunks_exact_mut(BLOCK_LEN)) {
            b.write(out);
        }
        Ok(())
    }

    /// Appends an SDES packet with one chunk holding our CNAME (§6.5.1).
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &[u8]) -> Result<(), RtcpError> {
        if cname.len() > 255 {
            return Err(RtcpError::TextTooLong);
        }
        // SSRC, type, length, text, then at least one null octet, padded to 32 bits.
        let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
        let body = self.header(1, PT_SDES, chunk)?;
        body.fill(0);
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        body[4] = SDES_CNAME;
        body[5] = cname.len() as u8;
        body[6..6 + cname.len()].copy_from_slice(cname);
        Ok(())
    }

    /// Appends a BYE for `ssrcs` with an optional reason.
    pub fn bye(&mut self, ssrcs: &[u32], reason: Option<&[u8]>) -> Result<(), RtcpError> {
        let reason_len = match reason {
            Some(r) if r.len() > 255 => return Err(RtcpError::TextTooLong),
            Some(r) => (1 + r.len()).div_ceil(4) * 4,
            None => 0,
        };
        let body = self.header(ssrcs.len(), PT_BYE, ssrcs.len() * 4 + reason_len)?;
        body.fill(0);
        for (s, out) in ssrcs.iter().zip(body.chunks_exact_mut(4)) {
            out.copy_from_slice(&s.to_be_bytes());
        }
        if let Some(r) = reason {
            let at = ssrcs.len() * 4;
            body[at] = r.len() as u8;
            body[at + 1..at + 1 + r.len()].copy_from_slice(r);
        }
        Ok(())
    }

    /// The compound packet's length.
    pub fn finish(self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: lost,
            extended_highest_seq: 70_000,
            jitter: 33,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65_536,
        }
    }

    #[test]
    fn compound_round_trip() {
        let mut buf = [0u8; 512];
        let mut w = RtcpWriter::new(&mut buf);
        let info = SenderInfo {
            ntp: 0xAABB_CCDD_1122_3344,
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        };
        w.sender_report(7, &info, &[block(9, 3), block(10, -2)])
            .expect("fits");
        w.sdes_cname(7, b"leg-7@trunkline").expect("fits");
        w.bye(&[7], Some(b"hangup")).expect("fits");
        let n = w.finish();
        assert_eq!(n % 4, 0);
        assert_eq!(validate(&buf[..n]), Ok(()));
        let packets: Vec<_> = parse_compound(&buf[..n])
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(packets.len(), 3);
        match packets[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: i,
                blocks,
            } => {
                assert_eq!((ssrc, i), (7, info));
                let b: Vec<_> = blocks.collect();
                assert_eq!(b, vec![block(9, 3), block(10, -2)]);
            }
            ref p => panic!("unexpected {p:?}"),
        }
        match packets[1] {
            RtcpPacket::SourceDescription { ssrc, cname } => {
                assert_eq!(ssrc, Some(7));
                assert_eq!(cname, Some(&b"leg-7@trunkline"[..]));
            }
            ref p => panic!("unexpected {p:?}"),
        }
        match packets[2] {
            RtcpPacket::Bye { ssrcs, reason } => {
                assert_eq!(ssrcs.collect::<Vec<_>>(), vec![7]);
                assert_eq!(reason, Some(&b"hangup"[..]));
            }
            ref p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn receiver_report_round_trip_and_errors() {
        let mut buf = [0u8; 64];
        let mut w = RtcpWriter::new(&mut buf);
        w.receiver_report(5, &[block(6, 0x7f_ffff)]).expect("fits");
        assert_eq!(
            w.receiver_report(5, &[block(6, 0), block(7, 0)]),
            Err(RtcpError::BufferTooSmall)
        );
        let n = w.finish();
        let p = parse_compound(&buf[..n])
            .next()
            .expect("one")
            .expect("valid");
        match p {
            RtcpPacket::ReceiverReport { ssrc, mut blocks } => {
                assert_eq!(ssrc, 5);
                assert_eq!(blocks.next(), Some(block(6, 0x7f_ffff)));
                assert_eq!(blocks.next(), None);
            }
            p => panic!("unexpected {p:?}"),
        }
        assert_eq!(validate(&buf[..n - 1]), Err(RtcpError::Truncated(0)));
        let mut bad = buf;
        bad[0] = 0x40;
        assert_eq!(validate(&bad[..n]), Err(RtcpError::BadVersion(1)));
        assert_eq!(validate(&[]), Err(RtcpError::Truncated(0)));
    }

    #[test]
    fn ntp_conversions() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        let ntp = ntp_from_system(t);
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET_SECS + 1);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        assert_eq!(
            ntp_middle(ntp),
            (((NTP_UNIX_OFFSET_SECS + 1) as u32) << 16) | 0x8000
        );
        assert_eq!(to_ntp_short(Duration::from_millis(500)), 32_768);
        assert_eq!(from_ntp_short(32_768), Duration::from_millis(500));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate(&bytes);
            for p in parse_compound(&bytes) {
                if let Ok(RtcpPacket::SenderReport { blocks, .. } | RtcpPacket::ReceiverReport { blocks, .. }) = p {
                    prop_assert!(blocks.count() <= 31);
                }
            }
        }

        #[test]
        fn report_block_round_trip(ssrc: u32, fraction: u8, lost in -0x80_0000i32..=0x7f_ffff, seq: u32, jitter: u32, lsr: u32, dlsr: u32) {
            let b = ReportBlock { ssrc, fraction_lost: fraction, cumulative_lost: lost,
                                  extended_highest_seq: seq, jitter, last_sr: lsr, delay_since_last_sr: dlsr };
            let mut out = [0u8; BLOCK_LEN];
            b.write(&mut out);
            prop_assert_eq!(ReportBlock::read(&out), b);
        }
    }
}
