//! SIP: message parse/print (ezk-sip-types), SDP offer/answer, transactions, dialogs, the
//! registrar.

// Message layer (pure): parse/print, SDP offer/answer, digest authentication.
pub mod digest;
pub mod message;
pub mod registrar;
pub mod sdp;

// Transaction and dialog layers (pure): RFC 3261 sec. 12-17, RFC 6026.
pub mod dialog;
pub mod transaction;
