//! SIP dialogs (pure), RFC 3261 sec. 12 to 15.
