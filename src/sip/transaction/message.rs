//! The message types of the transaction and dialog layers: those of [`crate::sip::message`]
//! (parse with validation, print, accessors), re-exported under the names these layers use.

pub use crate::sip::message::{ParseError as MessageError, Request, Response, SipMessage};
