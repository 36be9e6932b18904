//! Media: frames, G.711, mixing, playback and recording.
//!
//! Pure parts work on [`frame::Frame`]s fed by the media clock; the recorder writes off the
//! media path.

pub mod frame;
pub mod g711;
pub mod mixer;
pub mod player;
pub mod recorder;
pub mod room;
pub mod worker;
