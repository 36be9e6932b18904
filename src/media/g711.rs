//! G.711 µ-law (PCMU) and A-law (PCMA) by table (pure, ITU-T G.711).
//!
//! Decoding is a 256-entry table per law. Encoding is a 16,384-entry table indexed by the top
//! 14 bits of the sample (µ-law works on 14-bit magnitudes, A-law on 13, so no precision is lost).
//! Both tables are built at compile time; per frame the work is one lookup per sample and nothing
//! allocates.

use super::frame::{FRAME_SAMPLES, Frame};

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0 (PCMU).
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA).
    Alaw,
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

const fn ulaw_encode_slow(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    if s > ULAW_CLIP {
        s = ULAW_CLIP;
    }
    s += ULAW_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && (s & mask) == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

const fn ulaw_decode_slow(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_encode_slow(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 { 0xD5 } else { 0x55 };
    if s < 0 {
        s = -s - 1;
    }
    if s > 32_767 {
        s = 32_767;
    }
    let byte = if s < 256 {
        s >> 4
    } else {
        let mut exponent = 7;
        let mut mask = 0x4000;
        while (s & mask) == 0 {
            exponent -= 1;
            mask >>= 1;
        }
        (exponent << 4) | ((s >> (exponent + 3)) & 0x0F)
    };
    (byte ^ sign) as u8
}

const fn alaw_decode_slow(byte: u8) -> i16 {
    let a = (byte ^ 0x55) as i32;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = a & 0x0F;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_decode(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Ulaw => ulaw_decode_slow(i as u8),
            Law::Alaw => alaw_decode_slow(i as u8),
        };
        i += 1;
    }
    t
}

/// Encode tables are indexed by `sample >> 2` as an unsigned 14-bit value.
const fn build_encode(law: Law) -> [u8; 16_384] {
    let mut t = [0u8; 16_384];
    let mut i = 0;
    while i < 16_384 {
        // Sample whose top 14 bits are `i` (sign-extended), low bits zero.
        let sample = ((i as i32) << 18 >> 16) as i16;
        t[i] = match law {
            Law::Ulaw => ulaw_encode_slow(sample),
            Law::Alaw => alaw_encode_slow(sample),
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = build_decode(Law::Ulaw);
static ALAW_DECODE: [i16; 256] = build_decode(Law::Alaw);
static ULAW_ENCODE: [u8; 16_384] = build_encode(Law::Ulaw);
static ALAW_ENCODE: [u8; 16_384] = build_encode(Law::Alaw);

impl Law {
    /// The static RTP payload type of this law.
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The law for a static RTP payload type (0 or 8).
    pub const fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        let idx = ((sample as u16) >> 2) as usize;
        match self {
            Law::Ulaw => ULAW_ENCODE[idx],
            Law::Alaw => ALAW_ENCODE[idx],
        }
    }

    /// Decodes one byte.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Ulaw => ULAW_DECODE[byte as usize],
            Law::Alaw => ALAW_DECODE[byte as usize],
        }
    }

    /// Encodes `samples` into `out`, returning the number of bytes written
    /// (`min(samples.len(), out.len())`).
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) -> usize {
        let n = samples.len().min(out.len());
        let table: &[u8; 16_384] = match self {
            Law::Ulaw => &ULAW_ENCODE,
            Law::Alaw => &ALAW_ENCODE,
        };
        for (o, &s) in out[..n].iter_mut().zip(&samples[..n]) {
            *o = table[((s as u16) >> 2) as usize];
        }
        n
    }

    /// Decodes `bytes` into `out`, returning the number of samples written
    /// (`min(bytes.len(), out.len())`).
    pub fn decode_into(self, bytes: &[u8], out: &mut [i16]) -> usize {
        let n = bytes.len().min(out.len());
        let table: &[i16; 256] = match self {
            Law::Ulaw => &ULAW_DECODE,
            Law::Alaw => &ALAW_DECODE,
        };
        for (o, &b) in out[..n].iter_mut().zip(&bytes[..n]) {
            *o = table[b as usize];
        }
        n
    }

    /// Encodes a whole frame into a 160-byte payload.
    pub fn encode_frame(self, frame: &Frame, out: &mut [u8; FRAME_SAMPLES]) {
        self.encode_into(frame, out);
    }

    /// Passes every sample through encode and decode (what a G.711 hop does to audio).
    pub fn round_trip_in_place(self, samples: &mut [i16]) {
        for s in samples {
            *s = self.decode(self.encode(*s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tables_agree_with_the_reference_algorithm() {
        for s in i16::MIN..=i16::MAX {
            // The table drops the two low bits, which neither law can represent.
            let q = s & !3;
            assert_eq!(Law::Ulaw.encode(s), ulaw_encode_slow(q), "ulaw {s}");
            assert_eq!(Law::Alaw.encode(s), alaw_encode_slow(q), "alaw {s}");
        }
    }

    #[test]
    fn known_code_points() {
        // Silence encodes to the well-known idle patterns.
        assert_eq!(Law::Ulaw.encode(0), 0xFF);
        assert_eq!(Law::Alaw.encode(0), 0xD5);
        assert_eq!(Law::Ulaw.decode(0xFF), 0);
        assert_eq!(Law::Ulaw.decode(0x00), -32_124);
        assert_eq!(Law::Ulaw.decode(0x80), 32_124);
        assert_eq!(Law::Alaw.decode(0xD5), 8);
        assert_eq!(Law::Alaw.decode(0x55), -8);
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for b in 0..=255u8 {
            let u = Law::Ulaw.decode(b);
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0 which encodes to 0xFF.
            if b != 0x7F {
                assert_eq!(Law::Ulaw.encode(u), b, "ulaw code {b:#x}");
            }
            assert_eq!(Law::Alaw.encode(Law::Alaw.decode(b)), b, "alaw code {b:#x}");
        }
    }

    proptest! {
        #[test]
        fn round_trip_error_is_bounded(s in any::<i16>()) {
            // Quantisation error is at most half a step, and a step is at most 1/16 of the
            // magnitude range of its segment (plus the clip for µ-law near full scale).
            for law in [Law::Ulaw, Law::Alaw] {
                let r = law.decode(law.encode(s)) as i32;
                let err = (r - s as i32).abs();
                let bound = (s as i32).abs() / 16 + 140;
                prop_assert!(err <= bound, "{law:?} {s} -> {r}");
            }
        }
    }
}
