//! RTP and RTCP: packets, sessions, jitter buffer, RFC 4733 DTMF, port pool.
