//! SIP: message parse/print (ezk-sip-types), SDP offer/answer, transactions, dialogs, transport.

// Message layer (pure): parse/print, SDP offer/answer, digest authentication.
pub mod digest;
pub mod message;
pub mod sdp;
