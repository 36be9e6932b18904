//! SIP: message parse/print (ezk-sip-types), SDP offer/answer, transactions, dialogs, transport.

pub mod dialog;
pub mod transaction;
