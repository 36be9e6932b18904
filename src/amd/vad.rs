//! Adaptive noise floor and voice activity for the answering-machine detector (pure).
//!
//! The noise floor is a minimum statistic over the band energy of the last 2.4 s (12 blocks of
//! 10 frames; R. Martin, "Noise power spectral density estimation based on optimal smoothing
//! and minimum statistics", 2001, in its simplest form): speech always dips between syllables,
//! stationary noise, hum and comfort noise do not, so the minimum follows the noise and not the
//! voice. Each block contributes its third-lowest frame, so that one or two lost packets (digital
//! silence, counted at the lowest floor) or partial frames next to them do not drag the floor
//! down, while leading digital silence before the first word does keep it down.
//!
//! A frame is *active* when its energy is at least [`ONSET_DB`] above the floor (or
//! [`HOLD_DB`] while already active: hysteresis) and above [`ABSOLUTE_MIN_DB`]. Whether active
//! sound is speech or a tone is the caller's business (see `tones`). A frame is *faint* when
//! it is at least [`FAINT_DB`] above the floor: too weak to start a word, but not silence
//! either (a soft syllable under line noise).

/// Frames per block of the minimum statistic.
const BLOCK_FRAMES: u32 = 10;
/// Blocks kept (2.4 s of history with 20 ms frames).
const BLOCKS: usize = 12;
/// Energy above the floor, in dB, that starts activity.
pub const ONSET_DB: f32 = 9.0;
/// Energy above the floor, in dB, that keeps activity going.
pub const HOLD_DB: f32 = 6.0;
/// Energy above the floor, in dB, of a faint frame.
pub const FAINT_DB: f32 = 4.0;
/// Nothing quieter than this (band energy, dBFS) is voice, whatever the floor.
pub const ABSOLUTE_MIN_DB: f32 = -62.0;
/// Lowest floor considered (dBFS): below it the line is digitally silent.
const FLOOR_MIN_DB: f32 = -80.0;

/// Minimum-statistics noise floor plus a hysteresis voice activity decision.
#[derive(Debug, Clone)]
pub struct Vad {
    blocks: [f32; BLOCKS],
    filled: usize,
    next: usize,
    /// The three lowest energies of the block so far, ascending.
    block_low: [f32; 3],
    in_block: u32,
    active: bool,
    faint: bool,
}

impl Default for Vad {
    fn default() -> Self {
        Vad {
            blocks: [f32::INFINITY; BLOCKS],
            filled: 0,
            next: 0,
            block_low: [f32::INFINITY; 3],
            in_block: 0,
            active: false,
            faint: false,
        }
    }
}

impl Vad {
    /// Forgets the floor (new call).
    pub fn reset(&mut self) {
        *self = Vad::default();
    }

    /// The current noise floor in dBFS.
    pub fn floor_db(&self) -> f32 {
        let mut m = self.block_value();
        for b in &self.blocks[..self.filled] {
            m = m.min(*b);
        }
        if m.is_finite() {
            m.max(FLOOR_MIN_DB)
        } else {
            FLOOR_MIN_DB
        }
    }

    /// A block's value: its third-lowest energy, so that one or two odd frames (a lost packet
    /// decoded as near-silence, a partial window next to it) do not drag the floor down. Until
    /// three frames are in, the lowest so far.
    fn block_value(&self) -> f32 {
        if self.block_low[2].is_finite() {
            self.block_low[2]
        } else if self.filled == 0 {
            self.block_low[0]
        } else {
            f32::INFINITY
        }
    }

    /// Whether the last frame was active.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Whether the last frame was at least [`FAINT_DB`] above the floor (every active frame
    /// is faint too).
    pub fn faint(&self) -> bool {
        self.faint
    }

    /// Feeds one frame's band energy; returns whether the frame is active.
    pub fn push(&mut self, energy_db: f32, digital_silence: bool) -> bool {
        {
            // Digital silence votes as the lowest floor: leading silence before the first
            // word then keeps the floor down, and the third-lowest rule ignores a lost frame.
            let energy_db = if digital_silence {
                FLOOR_MIN_DB
            } else {
                energy_db
            };
            let low = &mut self.block_low;
            if energy_db < low[2] {
                low[2] = energy_db;
                if low[2] < low[1] {
                    low.swap(1, 2);
                    if low[1] < low[0] {
                        low.swap(0, 1);
                    }
                }
            }
        }
        self.in_block += 1;
        if self.in_block >= BLOCK_FRAMES {
            let v = self.block_value();
            if v.is_finite() {
                self.blocks[self.next] = v;
                self.next = (self.next + 1) % BLOCKS;
                self.filled = (self.filled + 1).min(BLOCKS);
            }
            self.block_low = [f32::INFINITY; 3];
            self.in_block = 0;
        }
        if digital_silence {
            self.active = false;
            self.faint = false;
            return false;
        }
        let floor = self.floor_db();
        let margin = if self.active { HOLD_DB } else { ONSET_DB };
        self.active = energy_db >= floor + margin && energy_db >= ABSOLUTE_MIN_DB;
        self.faint = energy_db >= floor + FAINT_DB && energy_db >= ABSOLUTE_MIN_DB;
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stationary_noise_is_not_active_but_a_burst_above_it_is() {
        let mut v = Vad::default();
        for i in 0..100 {
            let e = -40.0 + if i % 2 == 0 { 0.5 } else { -0.5 };
            assert!(!v.push(e, false) || i == 0, "frame {i}");
        }
        assert!((v.floor_db() + 40.5).abs() < 0.01);
        // One odd quiet frame does not move the floor.
        v.push(-75.0, false);
        assert!((v.floor_db() + 40.5).abs() < 0.01);
        assert!(v.push(-25.0, false));
        assert!(v.push(-33.0, false), "hysteresis keeps it active");
        assert!(!v.push(-36.0, false));
        assert!(v.faint(), "6 dB over the floor is faint");
        v.push(-38.0, false);
        assert!(!v.faint(), "2.5 dB over the floor is not");
        v.push(-200.0, true);
        assert!(!v.faint(), "a lost frame is not");
    }

    #[test]
    fn lost_frames_do_not_drag_the_floor_down() {
        let mut v = Vad::default();
        for i in 0..100 {
            if i % 10 == 3 {
                v.push(-200.0, true);
            } else {
                v.push(-45.0, false);
            }
        }
        assert!((v.floor_db() + 45.0).abs() < 0.01);
    }

    #[test]
    fn quiet_line_stays_inactive() {
        let mut v = Vad::default();
        for _ in 0..50 {
            assert!(!v.push(-70.0, false));
        }
    }
}
