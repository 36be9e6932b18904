//! Test audio: WAVs made with sox, and measurements of recordings (pure functions plus a sox
//! driver).
//!
//! Measurements work on mono `i16` samples (the first channel of a file, or a chosen one):
//! the dominant frequency by FFT (`rustfft`, Hann window, parabolic peak interpolation), the
//! power at one frequency by a Goertzel filter, RMS in dBFS, and tone onset/duration from a
//! 10 ms energy envelope.

use std::path::Path;
use std::process::Command;

/// Samples of one channel of a WAV file and its sample rate.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Samples per second.
    pub rate: u32,
    /// Samples of the chosen channel.
    pub samples: Vec<i16>,
}

/// Errors making or reading audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// sox could not run or failed.
    #[error("sox failed: {0}")]
    Sox(String),
    /// The WAV could not be read.
    #[error("cannot read wav {path}: {message}")]
    Wav {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
}

fn sox(args: &[&str]) -> Result<(), AudioError> {
    // -D: no dither, so silence stays digital silence and tones stay clean.
    let out = Command::new("sox")
        .arg("-D")
        .args(args)
        .output()
        .map_err(|e| AudioError::Sox(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AudioError::Sox(format!(
            "sox {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Writes a 16-bit mono 8 kHz WAV of a sine at `freq_hz` for `secs` seconds, amplitude
/// `gain` (0..1 of full scale).
pub fn make_tone(path: &Path, freq_hz: f64, secs: f64, gain: f64) -> Result<(), AudioError> {
    sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &path.display().to_string(),
        "synth",
        &format!("{secs}"),
        "sine",
        &format!("{freq_hz}"),
        "vol",
        &format!("{gain}"),
    ])
}

/// Writes `secs` seconds of digital silence (16-bit mono 8 kHz).
pub fn make_silence(path: &Path, secs: f64) -> Result<(), AudioError> {
    sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &path.display().to_string(),
        "trim",
        "0",
        &format!("{secs}"),
    ])
}

/// Writes silence for `lead_secs`, then a tone, then silence for `tail_secs` (for onset and
/// duration checks, and to keep a baresip call up after the tone: its aufile source ends the
/// call when the file ends).
pub fn make_tone_between_silence(
    path: &Path,
    lead_secs: f64,
    freq_hz: f64,
    tone_secs: f64,
    tail_secs: f64,
    gain: f64,
) -> Result<(), AudioError> {
    let dir = tempfile::tempdir().map_err(|e| AudioError::Sox(e.to_string()))?;
    let a = dir.path().join("a.wav");
    let b = dir.path().join("b.wav");
    let c = dir.path().join("c.wav");
    make_silence(&a, lead_secs)?;
    make_tone(&b, freq_hz, tone_secs, gain)?;
    make_silence(&c, tail_secs)?;
    sox(&[
        &a.display().to_string(),
        &b.display().to_string(),
        &c.display().to_string(),
        &path.display().to_string(),
    ])
}

/// Reads channel `channel` (0 = left) of a 16-bit PCM WAV.
pub fn read_wav_channel(path: &Path, channel: u16) -> Result<Audio, AudioError> {
    let err = |m: String| AudioError::Wav {
        path: path.display().to_string(),
        message: m,
    };
    let mut r = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = r.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(err(format!(
            "{} bits {:?}, expected 16-bit PCM",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    if channel >= spec.channels {
        return Err(err(format!(
            "no channel {channel} in {} channels",
            spec.channels
        )));
    }
    let ch = usize::from(spec.channels);
    let samples = r
        .samples::<i16>()
        .enumerate()
        .filter(|(i, _)| i % ch == usize::from(channel))
        .map(|(_, s)| s.map_err(|e| err(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Audio {
        rate: spec.sample_rate,
        samples,
    })
}

/// Reads the first channel of a 16-bit PCM WAV.
pub fn read_wav(path: &Path) -> Result<Audio, AudioError> {
    read_wav_channel(path, 0)
}

impl Audio {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }

    /// The samples from `from_secs` to `to_secs` (clamped).
    pub fn slice(&self, from_secs: f64, to_secs: f64) -> &[i16] {
        let r = f64::from(self.rate);
        let a = ((from_secs * r) as usize).min(self.samples.len());
        let b = ((to_secs * r) as usize).clamp(a, self.samples.len());
        &self.samples[a..b]
    }

    /// RMS of the whole signal in dBFS.
    pub fn rms_dbfs(&self) -> f64 {
        rms_dbfs(&self.samples)
    }

    /// Dominant frequency of the whole signal (see [`dominant_frequency`]).
    pub fn dominant_frequency(&self) -> Option<f64> {
        dominant_frequency(&self.samples, self.rate)
    }

    /// The stretch where the 10 ms energy envelope is above `threshold_dbfs`: (onset, duration)
    /// in seconds, from the first to the last loud window.
    pub fn loud_span(&self, threshold_dbfs: f64) -> Option<(f64, f64)> {
        loud_span(&self.samples, self.rate, threshold_dbfs)
    }
}

/// RMS in dBFS (full scale = 32768); digital silence gives -inf.
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    20.0 * (rms / 32768.0).log10()
}

/// Dominant frequency in Hz by FFT over the whole slice (Hann window, parabolic
/// interpolation of the peak bin); `None` for silence or fewer than 64 samples.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> Option<f64> {
    use rustfft::{FftPlanner, num_complex::Complex};
    let n = samples.len();
    if n < 64 || samples.iter().all(|&s| s == 0) {
        return None;
    }
    let mut buf: Vec<Complex<f64>> = samples
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
            Complex::new(f64::from(s) * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let mags: Vec<f64> = buf[..n / 2].iter().map(|c| c.norm()).collect();
    let (k, _) = mags
        .iter()
        .enumerate()
        .skip(1)
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let offset = if k + 1 < mags.len() {
        let (a, b, c) = (mags[k - 1], mags[k], mags[k + 1]);
        let d = a - 2.0 * b + c;
        if d.abs() > f64::EPSILON {
            0.5 * (a - c) / d
        } else {
            0.0
        }
    } else {
        0.0
    };
    Some((k as f64 + offset) * f64::from(rate) / n as f64)
}

/// Power of one frequency relative to the signal's total power (0..1), by a Goertzel filter:
/// close to 1 for a clean tone at `freq_hz`.
pub fn tone_power_ratio(samples: &[i16], rate: u32, freq_hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if energy <= 0.0 {
        return 0.0;
    }
    // A pure sine of N samples gives power = (N/2)^2 * A^2 and energy = N * A^2 / 2.
    (2.0 * power / (samples.len() as f64 * energy)).min(1.0)
}

/// (onset, duration) in seconds of the span whose 10 ms windows are louder than
/// `threshold_dbfs`, from the first loud window to the last.
pub fn loud_span(samples: &[i16], rate: u32, threshold_dbfs: f64) -> Option<(f64, f64)> {
    let win = (rate as usize / 100).max(1);
    let loud: Vec<bool> = samples
        .chunks(win)
        .map(|c| rms_dbfs(c) > threshold_dbfs)
        .collect();
    let first = loud.iter().position(|&l| l)?;
    let last = loud.iter().rposition(|&l| l)?;
    let secs = win as f64 / f64::from(rate);
    Some((first as f64 * secs, (last + 1 - first) as f64 * secs))
}
