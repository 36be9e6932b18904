//! Fax tone recognition from tone segments (pure).
//!
//! - **CNG** (ITU-T T.30 sec. 5.3.1, calling tone): 1,100 Hz, 0.5 s on, 3 s off. A calling fax
//!   answering our call is rare, but a fax *server* answering plays CNG or CED.
//! - **CED** (ITU-T T.30 sec. 5.3.1.2) 2,100 Hz for 2.6..4 s, and **ANSam** (ITU-T V.8 / V.25)
//!   the same tone amplitude-modulated at 15 Hz with phase reversals every 450 ms.
//!
//! A tone is taken for fax only when no speech came before it: a greeting followed by a
//! 2,100 Hz beep is a voicemail, not a fax.

use super::tones::ToneSegment;
use crate::media::frame::FRAME_DURATION;

/// Frames in one second.
const FRAMES_PER_SECOND: u32 = (1_000 / FRAME_DURATION.as_millis()) as u32;

/// Which fax tone a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaxTone {
    /// 1,100 Hz calling tone.
    Cng,
    /// 2,100 Hz answer tone (CED or ANSam).
    Ced,
}

fn near(f: f32, target: f32, tol: f32) -> bool {
    (f - target).abs() <= tol
}

/// Whether a finished (or ongoing) segment is a fax tone. CNG needs 0.35..=0.9 s of stable
/// 1,100 Hz; CED/ANSam needs at least 0.7 s of 2,100 Hz (so the verdict need not wait for the
/// whole 2.6 s tone).
pub fn classify(seg: &ToneSegment) -> Option<FaxTone> {
    let run = seg.longest_run;
    if near(seg.run_freq_hz, 1_100.0, 30.0)
        && seg
            .run_freq2_hz
            .is_none_or(|f| near(f, 1_100.0, 60.0) || f > 3_000.0)
        && run * 100 >= FRAMES_PER_SECOND * 35
        && seg.span_frames() * 100 <= FRAMES_PER_SECOND * 90
    {
        return Some(FaxTone::Cng);
    }
    if near(seg.run_freq_hz, 2_100.0, 30.0) && seg.tonal_frames * 10 >= FRAMES_PER_SECOND * 7 {
        return Some(FaxTone::Ced);
    }
    None
}

/// Whether a segment in progress, whose current stable run is `run_len` frames at `run_hz`, is
/// already long enough to be CED/ANSam (0.7 s), so that the verdict need not wait for its end.
pub fn ced_in_progress(run_hz: f32, run_len: u32) -> bool {
    near(run_hz, 2_100.0, 30.0) && run_len * 10 >= FRAMES_PER_SECOND * 7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(freq: f32, frames: u32) -> ToneSegment {
        ToneSegment {
            start_frame: 0,
            last_frame: frames - 1,
            tonal_frames: frames,
            longest_run: frames,
            run_freq_hz: freq,
            run_freq2_hz: None,
            run_freq_steady: 1.0,
            run_level_steady: 1.0,
            harmonic_frames: 0,
            ringback_frames: 0,
            steady_start_frame: None,
            notes: 1,
            mean_purity: 0.95,
            max_level_db: -20.0,
        }
    }

    #[test]
    fn cng_and_ced_by_frequency_and_length() {
        assert_eq!(classify(&seg(1_100.0, 25)), Some(FaxTone::Cng));
        assert_eq!(classify(&seg(1_100.0, 10)), None, "too short for CNG");
        assert_eq!(classify(&seg(1_100.0, 100)), None, "too long for CNG");
        assert_eq!(classify(&seg(2_100.0, 40)), Some(FaxTone::Ced));
        assert_eq!(classify(&seg(2_100.0, 20)), None);
        assert_eq!(classify(&seg(1_000.0, 25)), None);
    }
}
