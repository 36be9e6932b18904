//! Wrap-aware arithmetic for RTP sequence numbers and timestamps (pure, RFC 3550 §A.1).
//!
//! This is the one place where 16-bit sequence numbers and 32-bit media timestamps are compared
//! or extended (STYLE.md sec. 4.6). Everything else in `rtp` works on the extended `u64` values
//! returned here, which never wrap in the life of a call.
//!
//! An [`Extender`] maps each wrapping value onto the `u64` line by choosing the candidate nearest
//! to the highest value seen so far (a difference is read as signed: up to half the range ahead
//! or behind). The first value is placed at `EXTENDED_ORIGIN + value`, far from zero, so that
//! packets reordered before the first one never underflow.

/// Where the first extended value lies: one full 32-bit cycle above zero, so that any value up
/// to half a cycle behind the first one still has a non-negative extended position.
pub const EXTENDED_ORIGIN: u64 = 1 << 32;

/// Signed distance `a - b` between two 16-bit sequence numbers, read modulo 2^16.
#[inline]
pub fn seq_delta(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Signed distance `a - b` between two 32-bit RTP timestamps, read modulo 2^32.
#[inline]
pub fn ts_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Forward distance from `b` to `a` modulo 2^16 (RFC 3550 §A.1 `udelta = seq - max_seq`).
#[inline]
pub fn seq_forward(a: u16, b: u16) -> u16 {
    a.wrapping_sub(b)
}

/// Forward distance from `b` to `a` modulo 2^32 (wrapping timestamp subtraction).
#[inline]
pub fn ts_forward(a: u32, b: u32) -> u32 {
    a.wrapping_sub(b)
}

/// True if sequence number `a` comes after `b` (wrap-aware).
#[inline]
pub fn seq_newer(a: u16, b: u16) -> bool {
    seq_delta(a, b) > 0
}

/// True if timestamp `a` comes after `b` (wrap-aware).
#[inline]
pub fn ts_newer(a: u32, b: u32) -> bool {
    ts_delta(a, b) > 0
}

/// A wrapping counter width: `u16` sequence numbers or `u32` timestamps.
pub trait Wrapping: Copy {
    /// Signed distance `self - other` modulo the width, widened to `i64`.
    fn delta(self, other: Self) -> i64;
    /// The low bits of an extended value.
    fn truncate(extended: u64) -> Self;
    /// The value as `u64`.
    fn widen(self) -> u64;
}

impl Wrapping for u16 {
    #[inline]
    fn delta(self, other: Self) -> i64 {
        i64::from(seq_delta(self, other))
    }
    #[inline]
    fn truncate(extended: u64) -> Self {
        extended as u16
    }
    #[inline]
    fn widen(self) -> u64 {
        u64::from(self)
    }
}

impl Wrapping for u32 {
    #[inline]
    fn delta(self, other: Self) -> i64 {
        i64::from(ts_delta(self, other))
    }
    #[inline]
    fn truncate(extended: u64) -> Self {
        extended as u32
    }
    #[inline]
    fn widen(self) -> u64 {
        u64::from(self)
    }
}

/// Extends wrapping sequence numbers (`Extender<u16>`) or timestamps (`Extender<u32>`) to `u64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extender<T> {
    highest: Option<u64>,
    _width: core::marker::PhantomData<T>,
}

impl<T: Wrapping> Extender<T> {
    /// An extender that has seen nothing yet.
    pub const fn new() -> Self {
        Extender {
            highest: None,
            _width: core::marker::PhantomData,
        }
    }

    /// The extended position of `value`, without recording it.
    pub fn extend(&self, value: T) -> u64 {
        match self.highest {
            None => EXTENDED_ORIGIN + value.widen(),
            Some(h) => {
                let d = value.delta(T::truncate(h));
                // `h >= EXTENDED_ORIGIN - 2^31` always holds: it only grows from its start.
                h.saturating_add_signed(d)
            }
        }
    }

    /// Extends `value` and records it; the highest value seen moves forward if it is newer.
    pub fn observe(&mut self, value: T) -> u64 {
        let e = self.extend(value);
        match self.highest {
            Some(h) if h >= e => {}
            _ => self.highest = Some(e),
        }
        e
    }

    /// The highest extended value recorded, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets everything (a new stream starts).
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

/// Extender for 16-bit RTP sequence numbers.
pub type SeqExtender = Extender<u16>;
/// Extender for 32-bit RTP timestamps.
pub type TsExtender = Extender<u32>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deltas_wrap() {
        assert_eq!(seq_delta(2, 65_534), 4);
        assert_eq!(seq_delta(65_534, 2), -4);
        assert!(seq_newer(0, 65_535));
        assert!(!seq_newer(65_535, 0));
        assert_eq!(ts_delta(100, u32::MAX - 59), 160);
        assert!(ts_newer(5, u32::MAX));
    }

    #[test]
    fn sequence_extends_across_wrap() {
        let mut x = SeqExtender::new();
        let a = x.observe(65_534);
        let b = x.observe(65_535);
        let c = x.observe(0);
        let d = x.observe(1);
        assert_eq!((b - a, c - b, d - c), (1, 1, 1));
        // A reordered packet from before the wrap stays before it.
        assert_eq!(x.observe(65_535), b);
        assert_eq!(x.highest(), Some(d));
    }

    #[test]
    fn reordered_before_first_does_not_underflow() {
        let mut x = SeqExtender::new();
        let a = x.observe(0);
        let b = x.observe(65_535);
        assert_eq!(a - b, 1);
    }

    proptest! {
        #[test]
        fn consecutive_steps_stay_consecutive(start: u32, steps in 1usize..2000, step in 1u32..2000) {
            let mut x = TsExtender::new();
            let mut ts = start;
            let mut prev = x.observe(ts);
            for _ in 0..steps {
                ts = ts.wrapping_add(step);
                let e = x.observe(ts);
                prop_assert_eq!(e - prev, u64::from(step));
                prev = e;
            }
        }

        #[test]
        fn order_is_kept_under_bounded_reordering(start: u16, swaps in proptest::collection::vec(0usize..200, 0..50)) {
            let mut seqs: Vec<u16> = (0..200u16).map(|i| start.wrapping_add(i)).collect();
            for s in swaps {
                let j = (s + 3).min(199);
                seqs.swap(s, j);
            }
            let mut x = SeqExtender::new();
            let base = x.extend(start);
            for s in seqs {
                let e = x.observe(s);
                prop_assert_eq!(e - base, u64::from(s.wrapping_sub(start)));
            }
        }
    }
}
