//! Inbound calls: numbers with business hours, ring groups, voicemail and the missed-call
//! decision with its follow-up. Pure rules live here; the call engine
//! ([`crate::call::engine`]) runs them on its SIP legs, the store writes their outcome.
//!
//! - [`hours`]: weekly schedule, holidays and time zone: open or closed at an instant.
//! - [`ring`]: which ring-group members ring when, who wins, why nobody did ([`MissReason`]).
//! - [`tones`]: generated ringback and voicemail beep.
//! - [`followup`]: the follow-up text and what the store decides for it.
//! - [`sweeper`]: start-up sweep of undecided calls and pruning of old records (driver).
//!
//! # Exactly one `call.missed`
//!
//! A call to a number that tracks missed calls ([`crate::config::NumberConfig::tracks_missed_calls`])
//! gets an `inbound_calls` row when it arrives. When it ends without an agent having answered,
//! the engine emits one missed-call operation; the store inserts the `missed_calls` row (a
//! `UNIQUE` `call_id`), the `call.missed` event and the follow-up in one transaction, so a
//! second attempt for the same call (a retry, the sweeper after a restart) inserts nothing and
//! publishes nothing. At start-up the sweeper decides the calls a crash left undecided
//! (reason `restart`).

pub mod followup;
pub mod hours;
pub mod ring;
pub mod sweeper;
pub mod tones;

pub use ring::{MissReason, RingAction, RingGroup, RingStrategy};

use std::net::SocketAddr;

/// A static ring-group member: a literal `sip:user@IP:port` URI (no DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTarget {
    /// The URI as written (Request-URI and To of the INVITE).
    pub uri: String,
    /// Where the INVITE goes.
    pub addr: SocketAddr,
}

impl StaticTarget {
    /// Parses `sip:user@IP[:port][;params]` (port 5060 by default).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("sip:")?;
        let (_user, host) = rest.split_once('@')?;
        let host = host.split(';').next()?;
        let addr = host.parse::<SocketAddr>().ok().or_else(|| {
            host.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 5060))
        })?;
        Some(Self {
            uri: s.to_string(),
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_targets() {
        let t = StaticTarget::parse("sip:alice@127.0.0.1:5080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:5080".parse().unwrap());
        let t = StaticTarget::parse("sip:desk@10.0.0.2;transport=udp").unwrap();
        assert_eq!(t.addr.port(), 5060);
        assert!(StaticTarget::parse("sip:bob@pbx.example.com").is_none());
        assert!(StaticTarget::parse("alice").is_none());
    }
}
