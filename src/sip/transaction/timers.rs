//! RFC 3261 transaction timers (sec. 17 and table 4) and RFC 6026 Timers L and M (pure).
//!
//! Timers are deadlines (`Instant`s) reported by
//! [`TransactionLayer::poll_timeout`](super::TransactionLayer::poll_timeout), never sleeps.

use super::Transport;
use std::time::Duration;

/// RTT estimate, default 500 ms (sec. 17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum duration a message remains in the network, default 5 s.
pub const T4: Duration = Duration::from_secs(5);

/// The timer values of one [`TransactionLayer`](super::TransactionLayer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1, the RTT estimate.
    pub t1: Duration,
    /// T2, the cap on non-INVITE and INVITE-response retransmit intervals.
    pub t2: Duration,
    /// T4, how long a message may live in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1,
            t2: T2,
            t4: T4,
        }
    }
}

impl Timers {
    /// Timers B, F, H, J, L and M: 64 * T1 (32 s by default).
    pub fn timeout_64_t1(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: wait for response retransmissions, at least 32 s on UDP, 0 on TCP.
    pub fn timer_d(&self, transport: Transport) -> Duration {
        match transport {
            Transport::Udp => self.timeout_64_t1().max(Duration::from_secs(32)),
            Transport::Tcp => Duration::ZERO,
        }
    }

    /// Timers I and K: T4 on UDP, 0 on TCP.
    pub fn timer_t4(&self, transport: Transport) -> Duration {
        match transport {
            Transport::Udp => self.t4,
            Transport::Tcp => Duration::ZERO,
        }
    }

    /// Timer J: 64 * T1 on UDP, 0 on TCP.
    pub fn timer_j(&self, transport: Transport) -> Duration {
        match transport {
            Transport::Udp => self.timeout_64_t1(),
            Transport::Tcp => Duration::ZERO,
        }
    }

    /// Next interval of Timer E or G: doubled and capped at T2.
    pub fn next_capped(&self, current: Duration) -> Duration {
        (current * 2).min(self.t2)
    }
}

/// The timer kinds, named as in RFC 3261 table 4 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (client, UDP).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait for response retransmissions after a non-2xx final (INVITE client).
    D,
    /// Non-INVITE request retransmit (client, UDP).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE non-2xx final response retransmit (server, UDP).
    G,
    /// Wait for ACK receipt (INVITE server).
    H,
    /// Wait for ACK retransmissions (INVITE server, Confirmed).
    I,
    /// Wait for request retransmissions (non-INVITE server, Completed).
    J,
    /// Wait for response retransmissions (non-INVITE client, Completed).
    K,
    /// Wait for 2xx retransmissions to be absorbed (INVITE server, Accepted; RFC 6026).
    L,
    /// Wait for 2xx retransmissions from other branches (INVITE client, Accepted; RFC 6026).
    M,
    /// Retransmit the 2xx to an INVITE until the ACK comes (UAS core, sec. 13.3.1.4).
    Retransmit2xx,
}
