//! Prompts and playback (pure apart from [`Prompt::load`], which runs at config time).
//!
//! A [`Prompt`] is decoded once into 8 kHz mono samples held in an `Arc<[i16]>`, so any number of
//! calls share it; a [`Player`] is a cursor over one that fills one [`Frame`] per media tick.
//! Prompts are decoded when they are configured or requested, never mid-call, so a file that
//! cannot be decoded is an error at that moment.
//!
//! WAV (integer or float PCM, any rate, any channel count) is read with `hound` and resampled
//! with `rubato`; other formats come with the media issue (symphonia).

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors loading a prompt.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// No such prompt in the prompts folder.
    #[error("prompt {0:?} not found")]
    NotFound(String),
    /// The file could not be decoded.
    #[error("cannot decode prompt {path}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The name would leave the prompts folder.
    #[error("invalid prompt name {0:?}")]
    InvalidName(String),
}

/// A decoded prompt: 8 kHz mono 16-bit samples.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Name it was requested by.
    pub name: String,
    /// Samples at 8 kHz.
    pub samples: Arc<[i16]>,
}

impl Prompt {
    /// Decodes WAV bytes (any rate, channels mixed down to mono).
    pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Self, PromptError> {
        let err = |reason: String| PromptError::Decode {
            path: PathBuf::from(name),
            reason,
        };
        let reader =
            hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| err(e.to_string()))?;
        let samples = decode_wav(reader).map_err(err)?;
        Ok(Self {
            name: name.to_string(),
            samples: samples.into(),
        })
    }

    /// Loads a WAV file.
    pub fn load(name: &str, path: &Path) -> Result<Self, PromptError> {
        let err = |reason: String| PromptError::Decode {
            path: path.to_path_buf(),
            reason,
        };
        let reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
        let samples = decode_wav(reader).map_err(err)?;
        Ok(Self {
            name: name.to_string(),
            samples: samples.into(),
        })
    }

    /// Duration in 20 ms frames, rounded up.
    pub fn frames(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }
}

/// Decodes any hound-readable WAV to 8 kHz mono `i16`.
pub fn decode_wav<R: std::io::Read>(mut reader: hound::WavReader<R>) -> Result<Vec<i16>, String> {
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let as_f32: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        }
    };
    let mono: Vec<f32> = as_f32
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    let resampled = resample_to_8k(&mono, spec.sample_rate)?;
    Ok(resampled
        .iter()
        .map(|&x| (x * 32_767.0).clamp(-32_768.0, 32_767.0) as i16)
        .collect())
}

/// Resamples mono `f32` audio from `rate` to 8 kHz (identity when already 8 kHz).
pub fn resample_to_8k(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    use rubato::{FftFixedIn, Resampler};
    if rate == SAMPLE_RATE_HZ || input.is_empty() {
        return Ok(input.to_vec());
    }
    if rate == 0 {
        return Err("sample rate 0".into());
    }
    let chunk = 1024;
    let mut rs = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE_HZ as usize, chunk, 2, 1)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(input.len() * SAMPLE_RATE_HZ as usize / rate as usize + chunk);
    let mut pos = 0;
    while pos + chunk <= input.len() {
        let frames = rs
            .process(&[&input[pos..pos + chunk]], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&frames[0]);
        pos += chunk;
    }
    let rest = rs
        .process_partial(Some(&[&input[pos..]]), None)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(&rest[0]);
    // Flush the resampler's delay so the tail is not cut.
    let tail = rs
        .process_partial::<&[f32]>(None, None)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(&tail[0]);
    let delay = rs.output_delay();
    let want = (input.len() as u64 * SAMPLE_RATE_HZ as u64 / rate as u64) as usize;
    let end = (delay + want).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}

/// Prompts by name, decoded once and shared.
#[derive(Debug, Default, Clone)]
pub struct PromptCache {
    dir: Option<PathBuf>,
    loaded: HashMap<String, Prompt>,
}

impl PromptCache {
    /// A cache over a prompts folder (or none: only built-in prompts).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            loaded: HashMap::new(),
        }
    }

    /// Adds a prompt under a name (built-ins, tests).
    pub fn insert(&mut self, prompt: Prompt) {
        self.loaded.insert(prompt.name.clone(), prompt);
    }

    /// Returns a prompt, decoding `<dir>/<name>` or `<dir>/<name>.wav` on first use.
    pub fn get(&mut self, name: &str) -> Result<Prompt, PromptError> {
        if let Some(p) = self.loaded.get(name) {
            return Ok(p.clone());
        }
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name.starts_with('.')
            || name.contains("..")
        {
            return Err(PromptError::InvalidName(name.to_string()));
        }
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| PromptError::NotFound(name.to_string()))?;
        let candidates = [dir.join(name), dir.join(format!("{name}.wav"))];
        let path = candidates
            .iter()
            .find(|p| p.is_file())
            .ok_or_else(|| PromptError::NotFound(name.to_string()))?;
        let p = Prompt::load(name, path)?;
        self.loaded.insert(name.to_string(), p.clone());
        Ok(p)
    }
}

/// A cursor playing a prompt frame by frame.
#[derive(Debug, Clone)]
pub struct Player {
    prompt: Prompt,
    pos: usize,
    repeat: bool,
}

impl Player {
    /// Starts at the beginning; `repeat` loops forever.
    pub fn new(prompt: Prompt, repeat: bool) -> Self {
        Self {
            prompt,
            pos: 0,
            repeat,
        }
    }

    /// Name of the prompt playing.
    pub fn name(&self) -> &str {
        &self.prompt.name
    }

    /// Fills `out` with the next 20 ms (zero-padded at the end); returns `false` once finished
    /// (and leaves `out` silent).
    pub fn next_frame(&mut self, out: &mut Frame) -> bool {
        let s = &self.prompt.samples;
        if s.is_empty() || (self.pos >= s.len() && !self.repeat) {
            out.fill(0);
            return false;
        }
        for o in out.iter_mut() {
            if self.pos >= s.len() {
                if self.repeat {
                    self.pos = 0;
                } else {
                    *o = 0;
                    continue;
                }
            }
            *o = s[self.pos];
            self.pos += 1;
        }
        true
    }

    /// Whether a non-looping prompt has played to its end.
    pub fn finished(&self) -> bool {
        !self.repeat && self.pos >= self.prompt.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tone_prompt_decodes_to_two_seconds() {
        let p = Prompt::from_wav_bytes("tone", crate::config::embedded::TONE_WAV).unwrap();
        assert_eq!(p.samples.len(), 16_000);
        assert_eq!(p.frames(), 100);
    }

    #[test]
    fn player_plays_once_then_reports_finished() {
        let p = Prompt {
            name: "x".into(),
            samples: vec![1i16; 200].into(),
        };
        let mut pl = Player::new(p, false);
        let mut f = [0i16; FRAME_SAMPLES];
        assert!(pl.next_frame(&mut f));
        assert!(f.iter().all(|&s| s == 1));
        assert!(pl.next_frame(&mut f));
        assert_eq!(f[39], 1);
        assert_eq!(f[40], 0);
        assert!(pl.finished());
        assert!(!pl.next_frame(&mut f));
    }

    #[test]
    fn looping_player_wraps() {
        let p = Prompt {
            name: "x".into(),
            samples: (0..100).collect::<Vec<i16>>().into(),
        };
        let mut pl = Player::new(p, true);
        let mut f = [0i16; FRAME_SAMPLES];
        pl.next_frame(&mut f);
        assert_eq!(f[99], 99);
        assert_eq!(f[100], 0);
        assert_eq!(f[159], 59);
        assert!(!pl.finished());
    }

    #[test]
    fn resampling_16k_halves_the_length_and_keeps_the_tone() {
        let n = 16_000;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * 500.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let y = resample_to_8k(&x, 16_000).unwrap();
        assert_eq!(y.len(), 8_000);
        // Zero crossings of a 500 Hz tone over 1 s: about 1000.
        let zc = y
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((990..=1010).contains(&zc), "{zc}");
    }

    #[test]
    fn bad_names_and_missing_prompts_are_errors() {
        let mut c = PromptCache::new(None);
        assert!(matches!(
            c.get("../etc/passwd"),
            Err(PromptError::InvalidName(_))
        ));
        assert!(matches!(c.get("nope"), Err(PromptError::NotFound(_))));
        assert!(Prompt::from_wav_bytes("x", b"not a wav").is_err());
    }
}
