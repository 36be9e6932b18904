//! The RTP port pool over the configured range (pure; RFC 3550 §11: RTP on an even port, RTCP on
//! the next odd one).
//!
//! Free ports wait in a FIFO queue: [`PortPool::allocate`] takes the one freed longest ago and
//! [`PortPool::release`] puts a port at the back, so a just-freed port is not handed out again
//! while late packets of the old call may still arrive. A held port is never handed out twice.
//! When the queue is empty the engine answers new calls `503` with `Retry-After`
//! ([`PortError::Exhausted`]). If the driver cannot bind an allocated port (another program holds
//! it), it should release it and allocate again; the failed port goes to the back.
//!
//! Allocation happens at call setup, not per packet, so the queue is a plain `VecDeque`.

use std::collections::VecDeque;

use thiserror::Error;

/// Port pool errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PortError {
    /// Every RTP port of the range is held.
    #[error("rtp port range exhausted")]
    Exhausted,
    /// The port was not handed out by this pool, or was already released.
    #[error("rtp port {0} is not held")]
    NotHeld(u16),
    /// The range holds no even port with room for RTCP above it.
    #[error("rtp port range {0}-{1} holds no even port pair")]
    EmptyRange(u16, u16),
}

/// Hands out even RTP ports (RTCP = port + 1) from an inclusive range.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    free: VecDeque<u16>,
    held: Vec<bool>,
}

impl PortPool {
    /// A pool over `min..=max`: every even port `p` with `p + 1 <= max`.
    pub fn new(min: u16, max: u16) -> Result<Self, PortError> {
        let first = min.saturating_add(min & 1);
        let free: VecDeque<u16> = (first..max)
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|r| r <= max))
            .collect();
        if free.is_empty() {
            return Err(PortError::EmptyRange(min, max));
        }
        let held = vec![false; free.len()];
        Ok(PortPool { first, free, held })
    }

    fn index(&self, port: u16) -> Option<usize> {
        if port < self.first || port & 1 == 1 {
            return None;
        }
        let i = usize::from((port - self.first) / 2);
        (i < self.held.len()).then_some(i)
    }

    /// Takes the free port that was released longest ago.
    pub fn allocate(&mut self) -> Result<u16, PortError> {
        let port = self.free.pop_front().ok_or(PortError::Exhausted)?;
        if let Some(i) = self.index(port) {
            self.held[i] = true;
        }
        Ok(port)
    }

    /// Gives a port back; it is handed out again only after every other free port.
    pub fn release(&mut self, port: u16) -> Result<(), PortError> {
        match self.index(port) {
            Some(i) if self.held[i] => {
                self.held[i] = false;
                self.free.push_back(port);
                Ok(())
            }
            _ => Err(PortError::NotHeld(port)),
        }
    }

    /// Ports currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Ports currently held.
    pub fn in_use(&self) -> usize {
        self.held.len() - self.free.len()
    }

    /// Number of RTP ports (pairs) in the range.
    pub fn capacity(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hands_out_even_ports_until_exhausted() {
        let mut pool = PortPool::new(10_001, 10_008).expect("range");
        // 10002, 10004, 10006 (10008 has no room for RTCP)
        assert_eq!(pool.capacity(), 3);
        assert_eq!(pool.allocate(), Ok(10_002));
        assert_eq!(pool.allocate(), Ok(10_004));
        assert_eq!(pool.allocate(), Ok(10_006));
        assert_eq!(pool.allocate(), Err(PortError::Exhausted));
        assert_eq!(pool.in_use(), 3);
        assert_eq!(pool.release(10_004), Ok(()));
        assert_eq!(pool.release(10_004), Err(PortError::NotHeld(10_004)));
        assert_eq!(pool.release(10_005), Err(PortError::NotHeld(10_005)));
        assert_eq!(pool.release(9_000), Err(PortError::NotHeld(9_000)));
        assert_eq!(pool.allocate(), Ok(10_004));
    }

    #[test]
    fn just_freed_port_goes_to_the_back() {
        let mut pool = PortPool::new(20_000, 20_009).expect("range");
        let a = pool.allocate().expect("free");
        pool.release(a).expect("held");
        let b = pool.allocate().expect("free");
        assert_ne!(a, b);
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn empty_range_is_an_error() {
        assert_eq!(
            PortPool::new(5, 5).map(|_| ()),
            Err(PortError::EmptyRange(5, 5))
        );
        assert!(PortPool::new(65_534, 65_535).is_ok());
        assert!(PortPool::new(65_535, 65_535).is_err());
    }

    proptest! {
        #[test]
        fn never_hands_out_a_held_port(ops in proptest::collection::vec(any::<bool>(), 1..300)) {
            let mut pool = PortPool::new(30_000, 30_040).expect("range");
            let mut held: Vec<u16> = Vec::new();
            for alloc in ops {
                if alloc || held.is_empty() {
                    match pool.allocate() {
                        Ok(p) => {
                            prop_assert!(!held.contains(&p));
                            prop_assert_eq!(p % 2, 0);
                            held.push(p);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, PortError::Exhausted);
                            prop_assert_eq!(held.len(), pool.capacity());
                        }
                    }
                } else {
                    let p = held.remove(0);
                    prop_assert_eq!(pool.release(p), Ok(()));
                }
                prop_assert_eq!(pool.in_use(), held.len());
            }
        }
    }
}
