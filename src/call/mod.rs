//! The call engine: one owner task per call, commands in, events out.
