//! RTP and RTCP for one call leg: packets, sequence arithmetic, jitter buffer, RFC 4733 DTMF,
//! RFC 3550 statistics and reports, the per-leg session, and the RTP port pool.
//!
//! Everything here is **pure** (STYLE.md sec. 2): no sockets, no clock, no tasks. The call
//! engine's media clock drives an [`session::RtpSession`] per leg with `(now, bytes)` in and
//! frames, datagrams and events out; the UDP driver only moves datagrams. On the per-packet and
//! per-frame path nothing allocates (STYLE.md sec. 4, `tests/no_alloc_media.rs`).
//!
//! - [`packet`]: RTP header parse/write (RFC 3550 §5.1).
//! - [`sequence`]: the one wrap-aware helper for sequence numbers and timestamps (§A.1).
//! - [`jitter`]: per-leg jitter buffer with concealment.
//! - [`dtmf`]: RFC 4733 telephone-event receive and send.
//! - [`stats`]: reception statistics (§A.1, §A.3, §A.8).
//! - [`rtcp`]: SR, RR, SDES CNAME, BYE, compound packets (§6).
//! - [`session`]: the per-leg session the engine drives.
//! - [`ports`]: the RTP port pool.

pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod ports;
pub mod rtcp;
pub mod sequence;
pub mod session;
pub mod stats;
