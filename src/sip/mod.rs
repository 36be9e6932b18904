//! SIP: message parse/print (ezk-sip-types), SDP offer/answer, transactions, dialogs, transport.
