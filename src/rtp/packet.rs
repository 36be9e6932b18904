//! RTP fixed header: parse into a borrowed view, write into a caller buffer (pure, RFC 3550 §5.1,
//! §5.3.1 header extension).
//!
//! The bit layout is handled by the `rtp-rs` crate named in DESIGN.md: its `RtpReader` validates
//! the whole header once (version, CSRC list, extension length, padding) without copying, and its
//! `RtpPacketBuilder::build_into` writes into a caller slice, so neither direction allocates. We
//! copy the fields into a small `Copy` view, [`RtpPacket`], whose `payload` borrows the datagram,
//! and map the crate's error into our own `Copy` [`PacketError`] (the caller counts it).
//!
//! Writing puts the header first and then encodes the payload straight into the rest of the
//! buffer ([`write_header`]), so audio goes from a frame to the wire with no intermediate copy.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};
use thiserror::Error;

/// Length of the RTP fixed header with no CSRC and no extension.
pub const HEADER_LEN: usize = 12;

/// Largest RTP datagram we read or write (an Ethernet MTU minus IP and UDP headers).
pub const MAX_DATAGRAM_LEN: usize = 1500 - 20 - 8;

/// Why a datagram is not a usable RTP packet. Cheap to copy and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer than 12 bytes.
    #[error("datagram too short for an rtp header: {0} bytes")]
    TooShort(usize),
    /// Version field other than 2.
    #[error("unsupported rtp version {0}")]
    BadVersion(u8),
    /// CSRC list or header extension runs past the end of the datagram.
    #[error("rtp header truncated: needs {needed} bytes, has {len}")]
    Truncated {
        /// Bytes the header claims.
        needed: usize,
        /// Bytes in the datagram.
        len: usize,
    },
    /// Padding count of 0 or longer than the payload.
    #[error("invalid rtp padding length {0}")]
    BadPadding(u8),
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small for the rtp packet")]
    BufferTooSmall,
    /// Payload type above 127.
    #[error("invalid rtp payload type {0}")]
    BadPayloadType(u8),
}

impl From<RtpReaderError> for PacketError {
    fn from(e: RtpReaderError) -> Self {
        match e {
            RtpReaderError::BufferTooShort(n) => PacketError::TooShort(n),
            RtpReaderError::UnsupportedVersion(v) => PacketError::BadVersion(v),
            RtpReaderError::HeadersTruncated {
                header_len,
                buffer_len,
            } => PacketError::Truncated {
                needed: header_len,
                len: buffer_len,
            },
            RtpReaderError::PaddingLengthInvalid(p) => PacketError::BadPadding(p),
        }
    }
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit (start of a talkspurt for audio, start of an event for RFC 4733).
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8 kHz units for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of CSRC entries (0..=15); read them with [`csrc`].
    pub csrc_count: u8,
    /// Padding bytes stripped from the end, if the padding bit was set.
    pub padding: Option<u8>,
    /// Header extension (profile-defined id, data), if present.
    pub extension: Option<(u16, &'a [u8])>,
    /// Payload, without header and padding.
    pub payload: &'a [u8],
}

/// Parses an RTP datagram. Never panics; every malformed input is a [`PacketError`].
pub fn parse(bytes: &[u8]) -> Result<RtpPacket<'_>, PacketError> {
    let r = RtpReader::new(bytes)?;
    Ok(RtpPacket {
        marker: r.mark(),
        payload_type: r.payload_type(),
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        csrc_count: r.csrc_count(),
        padding: r.padding(),
        extension: r.extension(),
        payload: r.payload(),
    })
}

/// The `index`-th CSRC of a datagram already accepted by [`parse`], if present.
pub fn csrc(bytes: &[u8], index: u8) -> Option<u32> {
    let r = RtpReader::new(bytes).ok()?;
    r.csrc().nth(usize::from(index))
}

/// Header fields for writing a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Our synchronisation source.
    pub ssrc: u32,
}

fn builder(h: &RtpHeader) -> RtpPacketBuilder<'static> {
    RtpPacketBuilder::new()
        .payload_type(h.payload_type)
        .marked(h.marker)
        .sequence(Seq::from(h.sequence))
        .timestamp(h.timestamp)
        .ssrc(h.ssrc)
}

/// Writes a 12-byte header (no CSRC, no extension) into `out`, returning [`HEADER_LEN`]; the
/// payload goes into `out[HEADER_LEN..]` afterwards.
pub fn write_header(h: &RtpHeader, out: &mut [u8]) -> Result<usize, PacketError> {
    if h.payload_type > 127 {
        return Err(PacketError::BadPayloadType(h.payload_type));
    }
    if out.len() < HEADER_LEN {
        return Err(PacketError::BufferTooSmall);
    }
    Ok(builder(h).build_into_unchecked(out))
}

/// Writes header and payload into `out`, returning the packet length.
pub fn write(h: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Result<usize, PacketError> {
    if h.payload_type > 127 {
        return Err(PacketError::BadPayloadType(h.payload_type));
    }
    builder(h)
        .payload(payload)
        .build_into(out)
        .map_err(|e| match e {
            rtp_rs::RtpPacketBuildError::PayloadTypeInvalid => {
                PacketError::BadPayloadType(h.payload_type)
            }
            _ => PacketError::BufferTooSmall,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        let payload = [0x55u8; 160];
        let mut buf = [0u8; 200];
        let n = write(&header(), &payload, &mut buf).expect("fits");
        assert_eq!(n, HEADER_LEN + 160);
        let p = parse(&buf[..n]).expect("valid");
        assert!(p.marker);
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.sequence, 65_535);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.payload, &payload[..]);
        assert_eq!((p.csrc_count, p.padding, p.extension), (0, None, None));
    }

    #[test]
    fn write_header_then_payload_in_place() {
        let mut buf = [0u8; 172];
        let n = write_header(&header(), &mut buf).expect("fits");
        buf[n..].fill(7);
        let p = parse(&buf).expect("valid");
        assert_eq!(p.payload.len(), 160);
        assert!(p.payload.iter().all(|&b| b == 7));
    }

    #[test]
    fn csrc_extension_and_padding_are_parsed() {
        // V=2 P=1 X=1 CC=2, M=0 PT=0, seq 1, ts 2, ssrc 3
        let mut d = vec![0xB2, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 11]); // CSRCs
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        d.extend_from_slice(&[9, 9, 9]); // payload
        d.extend_from_slice(&[0, 0, 3]); // padding of 3
        let p = parse(&d).expect("valid");
        assert_eq!(p.csrc_count, 2);
        assert_eq!(csrc(&d, 1), Some(11));
        assert_eq!(p.extension, Some((0xBEDE, &[1u8, 2, 3, 4][..])));
        assert_eq!(p.padding, Some(3));
        assert_eq!(p.payload, &[9, 9, 9]);
    }

    #[test]
    fn malformed_packets_are_typed() {
        assert_eq!(parse(&[0x80; 5]), Err(PacketError::TooShort(5)));
        let mut d = [0u8; 12];
        d[0] = 0x40;
        assert_eq!(parse(&d), Err(PacketError::BadVersion(1)));
        d[0] = 0x81; // one CSRC, none present
        assert!(matches!(parse(&d), Err(PacketError::Truncated { .. })));
        let mut d = [0u8; 14];
        d[0] = 0xA0;
        d[13] = 0; // padding count 0
        assert_eq!(parse(&d), Err(PacketError::BadPadding(0)));
        d[13] = 9; // more padding than payload
        assert_eq!(parse(&d), Err(PacketError::BadPadding(9)));
        let mut small = [0u8; 20];
        assert_eq!(
            write(&header(), &[0; 160], &mut small),
            Err(PacketError::BufferTooSmall)
        );
        let bad = RtpHeader {
            payload_type: 200,
            ..header()
        };
        assert_eq!(
            write_header(&bad, &mut [0; 12]),
            Err(PacketError::BadPayloadType(200))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = parse(&bytes) {
                prop_assert!(p.payload.len() <= bytes.len());
                for i in 0..p.csrc_count {
                    prop_assert!(csrc(&bytes, i).is_some());
                }
            }
        }

        #[test]
        fn parse_never_panics_on_version_2(mut bytes in proptest::collection::vec(any::<u8>(), 12..100)) {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            let _ = parse(&bytes);
        }

        #[test]
        fn header_round_trips(marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32,
                              payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let mut buf = [0u8; 512];
            let n = write(&h, &payload, &mut buf).expect("fits");
            let p = parse(&buf[..n]).expect("valid");
            prop_assert_eq!((p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc),
                            (marker, pt, seq, ts, ssrc));
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
