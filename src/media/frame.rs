//! The media frame: 20 ms of 8 kHz mono audio, 160 `i16` samples (pure).
//!
//! Every media component (jitter buffer output, mixer, AMD, recorder, player) works on this
//! fixed-size array so that nothing allocates per frame (STYLE.md sec. 4).

use std::time::Duration;

/// Sample rate inside the server, in Hz.
pub const SAMPLE_RATE_HZ: u32 = 8_000;
/// Samples per frame (20 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// One frame of 8 kHz mono 16-bit audio.
pub type Frame = [i16; FRAME_SAMPLES];
/// A frame of silence.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];
