//! Spectral front end and tone tracker of the answering-machine detector (pure).
//!
//! Every 20 ms frame is analysed once: a 256-point real FFT (a 128-point complex rustfft,
//! planned once per detector, plus the even/odd split) over a Hann window of the last 256 samples (96 from the previous frame and the 160 new
//! ones, 31.25 Hz per bin). From the power spectrum come:
//!
//! - the band energy of 250..3,440 Hz in dBFS (0 dBFS = a full-scale sine), which feeds the
//!   voice activity detector; the band leaves out DC, mains hum and its first harmonics;
//! - a per-bin noise spectrum, tracked in frames that are neither voice nor tone;
//! - a **tone observation**: the strongest peak between 300 and 2,600 Hz (where beeps live) and
//!   the second strongest anywhere in the band, their frequencies refined by parabolic
//!   interpolation, and their *purity*: the share of the band's energy above the noise
//!   spectrum that the two peaks hold (each peak = 5 bins, the Hann main lobe). A sine, a dual
//!   tone or a square-ish tone (fundamental plus third harmonic) scores above 0.8; voiced speech
//!   spreads its energy over many harmonics and scores far less.
//!
//! The [`ToneTracker`] then joins tonal frames into segments: runs of stable frequency
//! (frame-to-frame drift of at most [`FREQ_TOLERANCE_HZ`]), allowing short gaps (a lost frame,
//! the phase reversals of ANSam) and changes of note (chimes). Whether a segment is a beep,
//! a fax tone or ringback is decided by its caller from the segment summary.

use crate::media::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// FFT length in samples.
pub const FFT_SIZE: usize = 256;
const HOP_OVERLAP: usize = FFT_SIZE - FRAME_SAMPLES;
/// Width of one FFT bin in Hz.
pub const BIN_HZ: f32 = SAMPLE_RATE_HZ as f32 / FFT_SIZE as f32;
/// First and last bins of the analysis band (250..3,440 Hz).
const BAND: (usize, usize) = (8, 110);
/// Bins where the main tone peak is searched (~300..2,600 Hz).
const TONE_BAND: (usize, usize) = (10, 83);
/// Half width of a peak in bins (Hann main lobe).
const PEAK_HALF: usize = 2;
/// A frame whose band energy is below this is treated as digital silence (e.g. a lost frame).
pub const DIGITAL_SILENCE_DB: f32 = -85.0;
/// Initial noise spectrum per bin, relative to a full-scale sine (about -90 dBFS over the band):
/// learnt upwards from the first frames that are neither voice nor tone.
const NOISE_INIT: f32 = 1e-11;
/// Largest frame-to-frame frequency drift inside one stable run of a tone.
pub const FREQ_TOLERANCE_HZ: f32 = 12.0;
/// Largest distance from the run's mean frequency of a frame that continues it.
pub const RUN_MEAN_TOLERANCE_HZ: f32 = 8.0;
/// Largest frame-to-frame level change inside one stable run (a lost frame costs up to ~8 dB).
const LEVEL_TOLERANCE_DB: f32 = 10.0;
/// Purity (share of the band's above-noise energy in the two main peaks) of a tonal frame.
const PURITY_MIN: f32 = 0.72;
/// Share of a run's frames that must be steady in frequency and in level for the run to be
/// steady.
pub const STEADY_SHARE: f32 = 0.75;
/// Frames of a run whose frequency and level are kept for the steadiness measures.
const RUN_CAP: usize = 160;
/// Frequency tolerance of a steady frame around the run's median, in Hz.
pub const STEADY_HZ: f32 = 6.0;
/// Level tolerance of a steady frame around the run's level trend, in dB.
pub const STEADY_DB: f32 = 2.5;
/// Steepest level trend of a steady run, in dB per frame (a chime note decays slower).
pub const MAX_SLOPE_DB: f32 = 1.5;
/// Frames of non-tone tolerated inside a tone segment.
const MAX_GAP_FRAMES: u32 = 2;

/// What the front end saw in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FrameFeatures {
    /// Band energy (250..3,440 Hz) in dBFS.
    pub energy_db: f32,
    /// The frame is digital silence (all zero or nearly), e.g. a lost packet.
    pub digital_silence: bool,
    /// The tone observation, if the frame is tonal.
    pub tone: Option<ToneObs>,
}

/// A tonal frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ToneObs {
    /// Frequency of the main peak (300..2,600 Hz), in Hz.
    pub freq_hz: f32,
    /// Frequency of the second peak, in Hz, when it holds at least a tenth of the main one.
    pub freq2_hz: Option<f32>,
    /// Level of the two peaks in dBFS.
    pub level_db: f32,
    /// Share of the above-noise band energy in the two peaks (0..1).
    pub purity: f32,
}

impl ToneObs {
    /// Whether all the frame's tonal energy sits in 380..520 Hz, where ringback lives (ITU-T
    /// E.180: 440+480 Hz in North America, 400+450 Hz in the UK, 425 Hz in most of Europe).
    /// Two tones 40-50 Hz apart beat and merge into one wobbling peak, so ringback is not
    /// steady, but unlike a voice it has no harmonics elsewhere.
    pub fn ringback_like(&self) -> bool {
        let band = 380.0..=520.0;
        band.contains(&self.freq_hz) && self.freq2_hz.is_none_or(|f| band.contains(&f))
    }

    /// Whether the two peaks are low harmonics (`a * F0` and `b * F0`, `1 <= a < b <= 4`) of a
    /// voice-range fundamental (70..300 Hz): voiced speech with a high pitch concentrates its
    /// energy in two neighbouring harmonics and would otherwise pass for a dual tone.
    pub fn voice_harmonics(&self) -> bool {
        let Some(f2) = self.freq2_hz else {
            return false;
        };
        let (lo, hi) = if f2 < self.freq_hz {
            (f2, self.freq_hz)
        } else {
            (self.freq_hz, f2)
        };
        for a in 1..=3u8 {
            for b in (a + 1)..=4u8 {
                let f0 = lo / f32::from(a);
                if (70.0..=300.0).contains(&f0) && (hi - f0 * f32::from(b)).abs() <= 0.04 * hi {
                    return true;
                }
            }
        }
        false
    }
}

/// The spectral front end: FFT, band energy, noise spectrum, tone observation.
pub struct SpectralFrontEnd {
    fft: Arc<dyn Fft<f32>>,
    window: [f32; FFT_SIZE],
    history: [f32; HOP_OVERLAP],
    buf: Vec<Complex32>,
    twiddle: [Complex32; FFT_SIZE / 2 + 1],
    scratch: Vec<Complex32>,
    power: [f32; FFT_SIZE / 2 + 1],
    prev_power: [f32; FFT_SIZE / 2 + 1],
    noise: [f32; FFT_SIZE / 2 + 1],
    /// Power of a full-scale sine summed over the band, for dBFS.
    full_scale: f32,
}

impl std::fmt::Debug for SpectralFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectralFrontEnd")
            .field(
                "noise_db",
                &self.to_db(self.noise[BAND.0..=BAND.1].iter().sum()),
            )
            .finish_non_exhaustive()
    }
}

impl Default for SpectralFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl SpectralFrontEnd {
    /// Plans the FFT and allocates every buffer (once, at call setup).
    pub fn new() -> Self {
        let fft = FftPlanner::<f32>::new().plan_fft_forward(FFT_SIZE / 2);
        let mut twiddle = [Complex32::default(); FFT_SIZE / 2 + 1];
        for (k, t) in twiddle.iter_mut().enumerate() {
            let a = -2.0 * std::f32::consts::PI * k as f32 / FFT_SIZE as f32;
            *t = Complex32::new(a.cos(), a.sin());
        }
        let scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        let mut window = [0.0f32; FFT_SIZE];
        for (n, w) in window.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / FFT_SIZE as f32).cos();
        }
        let sum_w2: f32 = window.iter().map(|w| w * w).sum();
        // Parseval: a sine of amplitude A puts (N/2) * (A^2/2) * sum(w^2) into the half spectrum.
        let a = 32_768.0f32;
        let full_scale = (FFT_SIZE as f32 / 2.0) * (a * a / 2.0) * sum_w2;
        SpectralFrontEnd {
            fft,
            window,
            history: [0.0; HOP_OVERLAP],
            buf: vec![Complex32::default(); FFT_SIZE / 2],
            twiddle,
            scratch,
            power: [0.0; FFT_SIZE / 2 + 1],
            prev_power: [0.0; FFT_SIZE / 2 + 1],
            noise: [full_scale * NOISE_INIT; FFT_SIZE / 2 + 1],
            full_scale,
        }
    }

    /// Forgets everything heard (new call); keeps the buffers.
    pub fn reset(&mut self) {
        self.history = [0.0; HOP_OVERLAP];
        self.power = [0.0; FFT_SIZE / 2 + 1];
        self.prev_power = [0.0; FFT_SIZE / 2 + 1];
        self.noise = [self.full_scale * NOISE_INIT; FFT_SIZE / 2 + 1];
    }

    fn to_db(&self, power: f32) -> f32 {
        10.0 * (power / self.full_scale + 1e-12).log10()
    }

    /// Analyses one frame. `learn` says whether the noise spectrum may learn from this frame
    /// (the caller's judgement: not during voice, nor during a tone segment, unless that tone
    /// has lasted far longer than any beep, like mains hum).
    pub fn analyze(&mut self, frame: &Frame, learn: bool) -> FrameFeatures {
        // Windowed input: the last HOP_OVERLAP samples of the previous frame, then this one,
        // less their mean (a DC offset would otherwise leak into the low bins; a recursive DC
        // blocker cost more than the FFT, being one long dependency chain).
        let mut raw = [0.0f32; FFT_SIZE];
        raw[..HOP_OVERLAP].copy_from_slice(&self.history);
        for (r, &s) in raw[HOP_OVERLAP..].iter_mut().zip(frame.iter()) {
            *r = f32::from(s);
        }
        self.history.copy_from_slice(&raw[FFT_SIZE - HOP_OVERLAP..]);
        let mean = raw.iter().sum::<f32>() / FFT_SIZE as f32;
        let mut xw = [0.0f32; FFT_SIZE];
        for ((x, r), w) in xw.iter_mut().zip(raw.iter()).zip(self.window.iter()) {
            *x = (r - mean) * w;
        }
        // Digital silence (a lost packet, a muted line): nothing to analyse.
        if xw.iter().all(|v| v.abs() < 0.5) {
            self.prev_power = self.power;
            self.power = [0.0; FFT_SIZE / 2 + 1];
            return FrameFeatures {
                energy_db: self.to_db(0.0),
                digital_silence: true,
                tone: None,
            };
        }
        // Real input through a half-size complex FFT: even samples as real parts, odd ones as
        // imaginary parts, then split (the usual packing; halves the FFT's cost).
        for (n, z) in self.buf.iter_mut().enumerate() {
            *z = Complex32::new(xw[2 * n], xw[2 * n + 1]);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        self.prev_power = self.power;
        let half = FFT_SIZE / 2;
        let mut band = 0.0f32;
        for k in 0..=half {
            let zk = self.buf[k % half];
            let zc = self.buf[(half - k) % half].conj();
            let even = (zk + zc) * 0.5;
            let odd = (zk - zc) * Complex32::new(0.0, -0.5);
            let p = (even + self.twiddle[k] * odd).norm_sqr();
            self.power[k] = p;
            if (BAND.0..=BAND.1).contains(&k) {
                band += p;
            }
        }
        let energy_db = self.to_db(band);
        let digital_silence = energy_db < DIGITAL_SILENCE_DB;
        if digital_silence {
            return FrameFeatures {
                energy_db,
                digital_silence,
                tone: None,
            };
        }
        let tone = self.tone_observation();
        // Noise spectrum: fast down everywhere, slow up only where the caller allows it and
        // this frame is not tonal itself.
        let learn = learn && tone.is_none();
        for k in BAND.0.saturating_sub(PEAK_HALF)..=(BAND.1 + PEAK_HALF).min(FFT_SIZE / 2) {
            let p = self.power[k];
            let n = self.noise[k];
            if p < n {
                self.noise[k] = 0.6 * n + 0.4 * p;
            } else if learn {
                self.noise[k] = 0.85 * n + 0.15 * p;
            } else {
                // Even under speech the noise estimate may creep up (about 1 dB per second),
                // so that a rise of stationary noise is eventually learnt.
                self.noise[k] = n * 1.012;
            }
        }
        FrameFeatures {
            energy_db,
            digital_silence,
            tone,
        }
    }

    /// How many times the noise spectrum the power around `freq_hz` is in the last frame
    /// (3 bins): tells whether a tone's fading tail is still there after it stopped being
    /// tonal enough to track.
    pub fn presence(&self, freq_hz: f32) -> f32 {
        let k = ((freq_hz / BIN_HZ).round() as usize).clamp(1, FFT_SIZE / 2 - 1);
        let p: f32 = self.power[k - 1..=k + 1].iter().sum();
        let n: f32 = self.noise[k - 1..=k + 1].iter().sum();
        p / n.max(f32::MIN_POSITIVE)
    }

    fn excess(&self, k: usize) -> f32 {
        // Two frames averaged: halves the variance of noise bins, barely blurs a tone.
        let p = 0.5 * (self.power[k] + self.prev_power[k]);
        (p - 2.0 * self.noise[k]).max(0.0)
    }

    fn peak_sum(&self, k: usize) -> (f32, f32) {
        let (lo, hi) = (k - PEAK_HALF, k + PEAK_HALF);
        let mut e = 0.0;
        let mut raw = 0.0;
        for j in lo..=hi {
            e += self.excess(j);
            raw += self.power[j];
        }
        (e, raw)
    }

    fn refine(&self, k: usize) -> f32 {
        // Parabolic interpolation on log power around the peak bin.
        let a = (self.power[k - 1] + 1e-9).ln();
        let b = (self.power[k] + 1e-9).ln();
        let c = (self.power[k + 1] + 1e-9).ln();
        let d = a - 2.0 * b + c;
        let off = if d.abs() > 1e-9 {
            (0.5 * (a - c) / d).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        (k as f32 + off) * BIN_HZ
    }

    fn tone_observation(&self) -> Option<ToneObs> {
        let mut total = 0.0f32;
        for k in BAND.0..=BAND.1 {
            total += self.excess(k);
        }
        if total <= 0.0 {
            return None;
        }
        let mut p1 = TONE_BAND.0;
        let mut best = -1.0f32;
        for k in TONE_BAND.0..=TONE_BAND.1 {
            let p = self.power[k];
            if p > best {
                best = p;
                p1 = k;
            }
        }
        // A slope into a stronger peak outside the tone band (a voice's fundamental) is not a
        // tone.
        if self.power[p1 - 1] > self.power[p1] || self.power[p1 + 1] > self.power[p1] {
            return None;
        }
        let (e1, raw1) = self.peak_sum(p1);
        let mut p2 = 0usize;
        let mut best2 = -1.0f32;
        for k in BAND.0..=BAND.1 {
            if k.abs_diff(p1) <= 2 * PEAK_HALF {
                continue;
            }
            let p = self.power[k];
            if p > best2 {
                best2 = p;
                p2 = k;
            }
        }
        let (e2, raw2) = if p2 > 0 {
            self.peak_sum(p2)
        } else {
            (0.0, 0.0)
        };
        let purity = ((e1 + e2) / total).min(1.0);
        if purity < PURITY_MIN || e1 < 0.45 * total {
            return None;
        }
        // The main peak must stand clear of the noise in its own bins (about 6 dB).
        let mut noise1 = 0.0;
        for j in p1 - PEAK_HALF..=p1 + PEAK_HALF {
            noise1 += self.noise[j];
        }
        if raw1 < 4.0 * noise1 {
            return None;
        }
        let freq2_hz = (p2 > 0 && e2 >= 0.1 * e1).then(|| self.refine(p2));
        let level = if freq2_hz.is_some() {
            raw1 + raw2
        } else {
            raw1
        };
        Some(ToneObs {
            freq_hz: self.refine(p1),
            freq2_hz,
            level_db: self.to_db(level),
            purity,
        })
    }
}

/// A finished (or ongoing) tone segment, as the tracker summarises it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ToneSegment {
    /// Index of the first tonal frame.
    pub start_frame: u32,
    /// Index of the last tonal frame.
    pub last_frame: u32,
    /// Tonal frames in the segment.
    pub tonal_frames: u32,
    /// Longest run of stable frequency, in frames.
    pub longest_run: u32,
    /// Mean frequency of the longest run, in Hz.
    pub run_freq_hz: f32,
    /// Second frequency seen in the longest run (dual tones), in Hz.
    pub run_freq2_hz: Option<f32>,
    /// Share of the longest run's frames within [`STEADY_HZ`] of its median frequency.
    pub run_freq_steady: f32,
    /// Share of the longest run's frames within [`STEADY_DB`] of its level trend.
    pub run_level_steady: f32,
    /// Tonal frames whose two peaks look like two harmonics of a voice (see
    /// [`ToneObs::voice_harmonics`]).
    pub harmonic_frames: u32,
    /// First frame of the segment's first steady run of at least 4 frames (the beep's onset
    /// when speech ran straight into it).
    pub steady_start_frame: Option<u32>,
    /// Tonal frames that look like ringback (see [`ToneObs::ringback_like`]).
    pub ringback_frames: u32,
    /// Number of distinct stable runs (notes) of at least 2 frames.
    pub notes: u32,
    /// Mean purity over tonal frames.
    pub mean_purity: f32,
    /// Highest level of a tonal frame, dBFS.
    pub max_level_db: f32,
}

impl ToneSegment {
    /// Frames from first to last tonal frame, inclusive.
    pub fn span_frames(&self) -> u32 {
        self.last_frame - self.start_frame + 1
    }
}

/// What happened to the tone tracker in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToneEvent {
    /// Nothing new.
    None,
    /// A segment started in this frame.
    Started,
    /// The segment ended (it was last tonal a few frames ago).
    Ended(ToneSegment),
}

/// Joins tonal frames into segments.
#[derive(Debug, Clone)]
pub struct ToneTracker {
    active: bool,
    seg: ToneSegment,
    gap: u32,
    purity_sum: f32,
    run_len: u32,
    run_start: u32,
    run_ref_hz: f32,
    run_sum_hz: f32,
    run_hz: [f32; RUN_CAP],
    run_db: [f32; RUN_CAP],
    run_freq2_hz: Option<f32>,
    last_level_db: f32,
}

impl Default for ToneTracker {
    fn default() -> Self {
        ToneTracker {
            active: false,
            seg: ToneSegment::default(),
            gap: 0,
            purity_sum: 0.0,
            run_len: 0,
            run_start: 0,
            run_ref_hz: 0.0,
            run_sum_hz: 0.0,
            run_freq2_hz: None,
            last_level_db: 0.0,
            run_hz: [0.0; RUN_CAP],
            run_db: [0.0; RUN_CAP],
        }
    }
}

/// Share of `values` within `tol` of `center`.
fn share_within(values: &[f32], center: f32, tol: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values
        .iter()
        .filter(|v| (**v - center).abs() <= tol)
        .count();
    n as f32 / values.len() as f32
}

/// Share of levels within [`STEADY_DB`] of their least-squares line, or 0 when the line
/// rises or falls faster than [`MAX_SLOPE_DB`] per frame. A beep holds its level, a chime note
/// decays smoothly, a vowel swells and fades.
fn level_steadiness(db: &[f32]) -> f32 {
    let n = db.len();
    if n < 3 {
        return 0.0;
    }
    let nf = n as f32;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = db.iter().sum::<f32>() / nf;
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    for (i, y) in db.iter().enumerate() {
        let dx = i as f32 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    if slope.abs() > MAX_SLOPE_DB {
        return 0.0;
    }
    let ok = db
        .iter()
        .enumerate()
        .filter(|(i, y)| (**y - (mean_y + slope * (*i as f32 - mean_x))).abs() <= STEADY_DB)
        .count();
    ok as f32 / nf
}

/// Median of at most `RUN_CAP` values, without allocating.
fn median(values: &[f32]) -> f32 {
    let mut buf = [0.0f32; RUN_CAP];
    let n = values.len().min(RUN_CAP);
    if n == 0 {
        return 0.0;
    }
    buf[..n].copy_from_slice(&values[..n]);
    buf[..n].sort_unstable_by(f32::total_cmp);
    buf[n / 2]
}

impl ToneTracker {
    /// Whether a segment is in progress.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The segment in progress, if any.
    pub fn current(&self) -> Option<&ToneSegment> {
        self.active.then_some(&self.seg)
    }

    /// The current stable run of the segment in progress: mean frequency (Hz) and length in
    /// frames.
    pub fn current_run(&self) -> Option<(f32, u32)> {
        (self.active && self.run_len > 0)
            .then(|| (self.run_sum_hz / self.run_len as f32, self.run_len))
    }

    /// Forgets any segment.
    pub fn reset(&mut self) {
        *self = ToneTracker::default();
    }

    fn close_run(&mut self) {
        if self.run_len >= 2 {
            self.seg.notes += 1;
        }
        if self.run_len >= 4 {
            let n = (self.run_len as usize).min(RUN_CAP);
            let hz = &self.run_hz[..n];
            let db = &self.run_db[..n];
            let freq_steady = share_within(hz, median(hz), STEADY_HZ);
            // The first and last frames of a run see the tone in part of their window only.
            let inner = if db.len() >= 5 {
                &db[1..db.len() - 1]
            } else {
                db
            };
            let level_steady = level_steadiness(inner);
            if self.seg.steady_start_frame.is_none()
                && freq_steady >= STEADY_SHARE
                && level_steady >= STEADY_SHARE
            {
                self.seg.steady_start_frame = Some(self.run_start);
            }
            if self.run_len > self.seg.longest_run {
                self.seg.run_freq_steady = freq_steady;
                self.seg.run_level_steady = level_steady;
            }
        }
        if self.run_len > self.seg.longest_run {
            if self.run_len < 4 {
                self.seg.run_freq_steady = 0.0;
                self.seg.run_level_steady = 0.0;
            }
            self.seg.longest_run = self.run_len;
            self.seg.run_freq_hz = self.run_sum_hz / self.run_len as f32;
            self.seg.run_freq2_hz = self.run_freq2_hz;
        }
        self.run_len = 0;
    }

    fn start_run(&mut self, obs: &ToneObs) {
        self.run_len = 1;
        self.run_ref_hz = obs.freq_hz;
        self.run_sum_hz = obs.freq_hz;
        self.run_hz[0] = obs.freq_hz;
        self.run_db[0] = obs.level_db;
        self.run_freq2_hz = obs.freq2_hz;
    }

    fn extend_run(&mut self, obs: &ToneObs) {
        // A dual tone's peaks may swap: follow whichever is near the reference.
        let f = match obs.freq2_hz {
            Some(f2) if (f2 - self.run_ref_hz).abs() < (obs.freq_hz - self.run_ref_hz).abs() => f2,
            _ => obs.freq_hz,
        };
        // Matched through the run's second tone: this frame says nothing new about the first.
        let f = if (f - self.run_ref_hz).abs() <= FREQ_TOLERANCE_HZ {
            f
        } else {
            self.run_ref_hz
        };
        if (self.run_len as usize) < RUN_CAP {
            self.run_hz[self.run_len as usize] = f;
            self.run_db[self.run_len as usize] = obs.level_db;
        }
        self.run_len += 1;
        self.run_sum_hz += f;
        // Frame to frame: two chime notes 20 Hz apart are two runs; a slow drift stays one run
        // but fails the steadiness measure.
        self.run_ref_hz = f;
        if self.run_freq2_hz.is_none() {
            self.run_freq2_hz = obs.freq2_hz;
        }
    }

    fn matches(&self, obs: &ToneObs) -> bool {
        // Near the last frame and near the run's mean: a glide of small steps (two chime notes
        // a few hertz apart, a voice) does not chain into one run.
        let mean = self.run_sum_hz / self.run_len.max(1) as f32;
        let near = |f: f32| {
            (f - self.run_ref_hz).abs() <= FREQ_TOLERANCE_HZ
                && (f - mean).abs() <= RUN_MEAN_TOLERANCE_HZ
        };
        // A dual tone's two peaks may swap places from frame to frame.
        let freq_ok = near(obs.freq_hz)
            || obs.freq2_hz.is_some_and(near)
            || self
                .run_freq2_hz
                .is_some_and(|f2| (obs.freq_hz - f2).abs() <= FREQ_TOLERANCE_HZ);
        freq_ok && (obs.level_db - self.last_level_db).abs() <= LEVEL_TOLERANCE_DB
    }

    /// Feeds one frame's observation (`None` = not tonal) at frame index `frame`.
    pub fn push(&mut self, frame: u32, obs: Option<&ToneObs>) -> ToneEvent {
        match obs {
            Some(obs) => {
                if !self.active {
                    self.active = true;
                    self.gap = 0;
                    self.seg = ToneSegment {
                        start_frame: frame,
                        last_frame: frame,
                        tonal_frames: 1,
                        harmonic_frames: u32::from(obs.voice_harmonics()),
                        ringback_frames: u32::from(obs.ringback_like()),
                        max_level_db: obs.level_db,
                        ..ToneSegment::default()
                    };
                    self.purity_sum = obs.purity;
                    self.start_run(obs);
                    self.run_start = frame;
                    self.last_level_db = obs.level_db;
                    return ToneEvent::Started;
                }
                if self.matches(obs) {
                    // Same note (possibly after a short dropout): the run continues.
                    self.extend_run(obs);
                } else {
                    self.close_run();
                    self.start_run(obs);
                    self.run_start = frame;
                }
                self.gap = 0;
                self.seg.last_frame = frame;
                self.seg.tonal_frames += 1;
                if obs.voice_harmonics() {
                    self.seg.harmonic_frames += 1;
                }
                if obs.ringback_like() {
                    self.seg.ringback_frames += 1;
                }
                self.purity_sum += obs.purity;
                self.seg.max_level_db = self.seg.max_level_db.max(obs.level_db);
                self.last_level_db = obs.level_db;
                ToneEvent::None
            }
            None => {
                if !self.active {
                    return ToneEvent::None;
                }
                self.gap += 1;
                if self.gap > MAX_GAP_FRAMES {
                    ToneEvent::Ended(self.finish())
                } else {
                    ToneEvent::None
                }
            }
        }
    }

    /// Ends the segment in progress (if any) and returns it.
    pub fn finish(&mut self) -> ToneSegment {
        self.close_run();
        self.active = false;
        self.gap = 0;
        self.seg.mean_purity = self.purity_sum / self.seg.tonal_frames.max(1) as f32;
        self.seg
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A frame of a sum of sines `(freq_hz, amplitude)` starting at sample `offset`.
    pub(crate) fn tone_frame(parts: &[(f32, f32)], offset: usize) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (offset + i) as f32 / SAMPLE_RATE_HZ as f32;
            let v: f32 = parts
                .iter()
                .map(|(hz, a)| a * (2.0 * std::f32::consts::PI * hz * t).sin())
                .sum();
            *s = v.clamp(-32_768.0, 32_767.0) as i16;
        }
        f
    }

    #[test]
    fn full_scale_sine_is_near_zero_dbfs_and_tonal() {
        let mut fe = SpectralFrontEnd::new();
        let mut last = FrameFeatures::default();
        for i in 0..5 {
            last = fe.analyze(&tone_frame(&[(1_000.0, 32_000.0)], i * FRAME_SAMPLES), true);
        }
        assert!((last.energy_db - 0.0).abs() < 1.0, "{}", last.energy_db);
        let tone = last.tone.expect("a sine is tonal");
        assert!((tone.freq_hz - 1_000.0).abs() < 8.0, "{}", tone.freq_hz);
        assert!(tone.purity > 0.9);
    }

    #[test]
    fn dual_tone_reports_both_frequencies() {
        let mut fe = SpectralFrontEnd::new();
        let mut last = FrameFeatures::default();
        for i in 0..5 {
            let f = tone_frame(&[(697.0, 8_000.0), (1_477.0, 8_000.0)], i * FRAME_SAMPLES);
            last = fe.analyze(&f, true);
        }
        let tone = last.tone.expect("dual tone is tonal");
        let mut fs = [tone.freq_hz, tone.freq2_hz.expect("second peak")];
        fs.sort_by(f32::total_cmp);
        assert!(
            (fs[0] - 697.0).abs() < 10.0 && (fs[1] - 1_477.0).abs() < 10.0,
            "{fs:?}"
        );
    }

    #[test]
    fn tracker_joins_a_tone_with_one_lost_frame() {
        let mut fe = SpectralFrontEnd::new();
        let mut tr = ToneTracker::default();
        let mut ended = None;
        for i in 0..30u32 {
            let frame = if (5..20).contains(&i) && i != 11 {
                tone_frame(&[(850.0, 6_000.0)], i as usize * FRAME_SAMPLES)
            } else {
                [0; FRAME_SAMPLES]
            };
            let feat = fe.analyze(&frame, !tr.active());
            if let ToneEvent::Ended(seg) = tr.push(i, feat.tone.as_ref()) {
                ended = Some(seg);
            }
        }
        let seg = ended.expect("segment ended");
        assert!(seg.start_frame.abs_diff(5) <= 1, "{seg:?}");
        assert!(seg.last_frame.abs_diff(19) <= 1, "{seg:?}");
        assert!(seg.longest_run >= 12, "{seg:?}");
        assert!((seg.run_freq_hz - 850.0).abs() < 10.0);
    }
}
