//! Prompts and playback (pure apart from [`Prompt::load`], which runs at config time).
//!
//! A [`Prompt`] is decoded once into 8 kHz mono samples held in an `Arc<[i16]>`, so any number of
//! calls share it; a [`Player`] is a cursor over one that fills one [`Frame`] per media tick.
//! Prompts are decoded when they are configured or requested, never mid-call, so a file that
//! cannot be decoded is an error at that moment.
//!
//! WAV (integer or float PCM), MP3, FLAC and Ogg/Vorbis at any rate and channel count are decoded
//! with `symphonia` (the container is recognised from the content, the file extension is only a
//! hint), mixed down to mono and resampled to 8 kHz with `rubato` while decoding, so memory is
//! bounded by the 8 kHz result. A prompt longer than [`MAX_PROMPT_SECONDS`] is refused.

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// The longest prompt accepted, in seconds (one hour: 57.6 MB of 8 kHz samples). Longer files
/// are refused with [`PromptError::Decode`] rather than decoded into unbounded memory.
pub const MAX_PROMPT_SECONDS: u32 = 3_600;

/// [`MAX_PROMPT_SECONDS`] in 8 kHz samples.
pub const MAX_PROMPT_SAMPLES: usize = MAX_PROMPT_SECONDS as usize * SAMPLE_RATE_HZ as usize;

/// File extensions a prompt may have, in the order [`PromptCache`] tries them for a bare name.
pub const PROMPT_EXTENSIONS: &[&str] = &["wav", "mp3", "flac", "ogg", "oga"];

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
    /// The name has an extension no decoder is built for.
    #[error("prompt {name:?} has an unsupported extension (allowed: {allowed})")]
    UnsupportedExtension {
        /// The name as requested.
        name: String,
        /// The allowed extensions, comma-separated.
        allowed: String,
    },
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
    /// Decodes an audio file held in memory (WAV, MP3, FLAC or Ogg/Vorbis, any rate, channels
    /// mixed down to mono). `ext_hint` (e.g. `Some("mp3")`) helps recognise the container; the
    /// content decides. Errors name `name` as the path.
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        ext_hint: Option<&str>,
    ) -> Result<Self, PromptError> {
        let source = std::io::Cursor::new(bytes.to_vec());
        let samples =
            decode_to_8k(Box::new(source), ext_hint).map_err(|reason| PromptError::Decode {
                path: PathBuf::from(name),
                reason,
            })?;
        Ok(Self {
            name: name.to_string(),
            samples: samples.into(),
        })
    }

    /// Decodes WAV bytes (any rate, channels mixed down to mono).
    pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Self, PromptError> {
        Self::from_bytes(name, bytes, Some("wav"))
    }

    /// Loads an audio file (WAV, MP3, FLAC or Ogg/Vorbis); its extension is a hint to the probe.
    pub fn load(name: &str, path: &Path) -> Result<Self, PromptError> {
        let err = |reason: String| PromptError::Decode {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let ext = path.extension().and_then(|e| e.to_str());
        let samples = decode_to_8k(Box::new(file), ext).map_err(err)?;
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

/// Decodes any supported file to 8 kHz mono `i16`. A panic inside the decoder (a bug in a
/// third-party parser fed a hostile file) becomes an error, never a crash of the server.
fn decode_to_8k(source: Box<dyn MediaSource>, ext_hint: Option<&str>) -> Result<Vec<i16>, String> {
    decode_bounded(source, ext_hint, MAX_PROMPT_SECONDS)
}

fn decode_bounded(
    source: Box<dyn MediaSource>,
    ext_hint: Option<&str>,
    max_seconds: u32,
) -> Result<Vec<i16>, String> {
    let ext_hint = ext_hint.map(str::to_ascii_lowercase);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_inner(source, ext_hint.as_deref(), max_seconds)
    }))
    .unwrap_or_else(|_| Err("corrupt data (the decoder failed)".into()))
}

fn decode_inner(
    source: Box<dyn MediaSource>,
    ext_hint: Option<&str>,
    max_seconds: u32,
) -> Result<Vec<i16>, String> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext_hint {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => {
                "unsupported format (expected WAV, MP3, FLAC or Ogg/Vorbis)".to_string()
            }
            SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                "unsupported format or truncated file (expected WAV, MP3, FLAC or Ogg/Vorbis)"
                    .to_string()
            }
            e => format!("corrupt data: {e}"),
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let Some(CodecParameters::Audio(params)) = &track.codec_params else {
        return Err("no audio track".into());
    };
    let track_id = track.id;
    // Refuse up front when the container states a length well over the maximum.
    if let (Some(frames), Some(rate)) = (track.num_frames, params.sample_rate) {
        if frames > (u64::from(max_seconds) + 1) * u64::from(rate) {
            return Err(too_long(max_seconds));
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => "unsupported audio codec".to_string(),
            e => format!("corrupt data: {e}"),
        })?;

    let mut resampler: Option<To8k> = None;
    let mut out: Vec<i16> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut bad_packets = 0usize;
    let mut first_error: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A file cut short: keep what was decoded (an empty result is refused below).
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => {
                return Err("unsupported: the stream changes its tracks mid-way".into());
            }
            Err(e) => return Err(format!("corrupt data: {e}")),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // A damaged packet: skip it, as players do, but not forever.
            Err(SymphoniaError::DecodeError(e)) => {
                bad_packets += 1;
                first_error.get_or_insert_with(|| e.to_string());
                if bad_packets > 100 {
                    return Err(format!("corrupt data: {e}"));
                }
                continue;
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(format!("corrupt data: {e}")),
        };
        let channels = buf.spec().channels().count();
        let rate = buf.spec().rate();
        if channels == 0 || buf.frames() == 0 {
            continue;
        }
        let rs = match &mut resampler {
            Some(rs) if rs.rate != rate => {
                return Err("corrupt data: the sample rate changes mid-stream".into());
            }
            Some(rs) => rs,
            None => resampler.insert(To8k::new(rate)?),
        };
        buf.copy_to_vec_interleaved(&mut interleaved);
        mono.clear();
        mono.extend(
            interleaved
                .chunks(channels)
                .map(|c| c.iter().sum::<f32>() / channels as f32),
        );
        if rs.input_len + mono.len() as u64 > u64::from(max_seconds) * u64::from(rate) {
            return Err(too_long(max_seconds));
        }
        out.extend(rs.push(&mono)?.iter().map(|&x| to_i16(x)));
    }
    let Some(mut rs) = resampler else {
        return Err(match first_error {
            Some(e) => format!("corrupt data: {e}"),
            None => "empty: no audio samples".into(),
        });
    };
    out.extend(rs.finish()?.iter().map(|&x| to_i16(x)));
    out.truncate(rs.expected_len());
    if out.is_empty() {
        return Err("empty: no audio samples".into());
    }
    Ok(out)
}

fn too_long(max_seconds: u32) -> String {
    format!("longer than the maximum prompt length of {max_seconds} s")
}

fn to_i16(x: f32) -> i16 {
    (x * 32_767.0).clamp(-32_768.0, 32_767.0) as i16
}

/// Resamples mono `f32` audio from `rate` to 8 kHz (identity when already 8 kHz).
pub fn resample_to_8k(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE_HZ || input.is_empty() {
        return Ok(input.to_vec());
    }
    let mut rs = To8k::new(rate)?;
    let mut out = rs.push(input)?.to_vec();
    out.extend_from_slice(rs.finish()?);
    out.truncate(rs.expected_len());
    Ok(out)
}

/// Streaming mono resampler to 8 kHz: input is pushed as it is decoded, the output comes out
/// with the resampler's delay already dropped, and the caller cuts the total to
/// [`To8k::expected_len`] after [`To8k::finish`].
struct To8k {
    rate: u32,
    rs: Option<rubato::FftFixedIn<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    delay_left: usize,
    input_len: u64,
}

impl To8k {
    const CHUNK: usize = 1024;

    fn new(rate: u32) -> Result<Self, String> {
        if rate == 0 {
            return Err("sample rate 0".into());
        }
        let rs = if rate == SAMPLE_RATE_HZ {
            None
        } else {
            Some(
                rubato::FftFixedIn::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE_HZ as usize,
                    Self::CHUNK,
                    2,
                    1,
                )
                .map_err(|e| e.to_string())?,
            )
        };
        let delay_left = rs.as_ref().map_or(0, rubato::Resampler::output_delay);
        Ok(Self {
            rate,
            rs,
            pending: Vec::with_capacity(2 * Self::CHUNK),
            scratch: Vec::new(),
            delay_left,
            input_len: 0,
        })
    }

    /// Output samples due for all the input so far.
    fn expected_len(&self) -> usize {
        (self.input_len * u64::from(SAMPLE_RATE_HZ) / u64::from(self.rate)) as usize
    }

    /// Feeds input; returns the output it completed.
    fn push(&mut self, input: &[f32]) -> Result<&[f32], String> {
        use rubato::Resampler;
        self.input_len += input.len() as u64;
        self.scratch.clear();
        let Some(rs) = &mut self.rs else {
            self.scratch.extend_from_slice(input);
            return Ok(&self.scratch);
        };
        self.pending.extend_from_slice(input);
        let mut pos = 0;
        while pos + Self::CHUNK <= self.pending.len() {
            let frames = rs
                .process(&[&self.pending[pos..pos + Self::CHUNK]], None)
                .map_err(|e| e.to_string())?;
            Self::emit(&mut self.scratch, &mut self.delay_left, &frames[0]);
            pos += Self::CHUNK;
        }
        self.pending.drain(..pos);
        Ok(&self.scratch)
    }

    /// Flushes the partial chunk and the resampler's delay, so the tail is not cut.
    fn finish(&mut self) -> Result<&[f32], String> {
        use rubato::Resampler;
        self.scratch.clear();
        let Some(rs) = &mut self.rs else {
            return Ok(&self.scratch);
        };
        if !self.pending.is_empty() {
            let rest = rs
                .process_partial(Some(&[&self.pending[..]]), None)
                .map_err(|e| e.to_string())?;
            Self::emit(&mut self.scratch, &mut self.delay_left, &rest[0]);
            self.pending.clear();
        }
        let tail = rs
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        Self::emit(&mut self.scratch, &mut self.delay_left, &tail[0]);
        Ok(&self.scratch)
    }

    fn emit(out: &mut Vec<f32>, delay_left: &mut usize, frames: &[f32]) {
        let skip = (*delay_left).min(frames.len());
        *delay_left -= skip;
        out.extend_from_slice(&frames[skip..]);
    }
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

    /// Returns a prompt, decoding it on first use from `<dir>/<name>` when `name` has one of the
    /// [`PROMPT_EXTENSIONS`], or else from the first of `<dir>/<name>`, `<dir>/<name>.wav`, `.mp3`, `.flac`,
    /// `.ogg`, `.oga` that exists. Names that would leave the folder are refused.
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
        let ext = Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if let Some(e) = &ext {
            if !PROMPT_EXTENSIONS.contains(&e.as_str()) {
                return Err(PromptError::UnsupportedExtension {
                    name: name.to_string(),
                    allowed: PROMPT_EXTENSIONS.join(", "),
                });
            }
        }
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| PromptError::NotFound(name.to_string()))?;
        let candidates: Vec<PathBuf> = if ext.is_some() {
            vec![dir.join(name)]
        } else {
            std::iter::once(dir.join(name))
                .chain(
                    PROMPT_EXTENSIONS
                        .iter()
                        .map(|e| dir.join(format!("{name}.{e}"))),
                )
                .collect()
        };
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

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/prompts");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
    }

    /// 8 kHz mono 16-bit WAV of `secs` seconds of a 440 Hz tone.
    fn wav_8k(secs: u32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cur = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..secs * 8_000 {
            let x = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8_000.0).sin();
            w.write_sample((x * 8_000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
        cur.into_inner()
    }

    #[test]
    fn a_prompt_over_the_maximum_length_is_refused_while_decoding() {
        let two = wav_8k(2);
        let err = decode_bounded(Box::new(std::io::Cursor::new(two.clone())), None, 1).unwrap_err();
        assert!(err.contains("longer than the maximum"), "{err}");
        // Exactly at the limit is fine, and samples at 8 kHz pass through unchanged in length.
        let one = wav_8k(1);
        let ok = decode_bounded(Box::new(std::io::Cursor::new(one)), None, 1).unwrap();
        assert_eq!(ok.len(), 8_000);
        // The real limit is one hour: two seconds decode.
        assert_eq!(
            Prompt::from_bytes("x", &two, None).unwrap().samples.len(),
            16_000
        );
    }

    #[test]
    fn a_header_announcing_more_than_an_hour_is_refused_without_decoding() {
        // A WAV header whose RIFF and data chunks claim ~4 GB (74 h at 8 kHz 16-bit) over 2 s of
        // data.
        let mut wav = wav_8k(2);
        wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        wav[40..44].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        let err = Prompt::from_bytes("huge", &wav, Some("wav")).unwrap_err();
        let PromptError::Decode { path, reason } = err else {
            panic!("{err:?}")
        };
        assert_eq!(path, PathBuf::from("huge"));
        assert!(reason.contains("longer than the maximum"), "{reason}");
    }

    #[test]
    fn decode_errors_say_why() {
        let reason = |bytes: &[u8], hint: Option<&str>| match Prompt::from_bytes("p", bytes, hint) {
            Err(PromptError::Decode { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let r = reason(b"this is plain text, not audio at all", Some("mp3"));
        assert!(r.contains("unsupported format"), "{r}");
        let r = reason(b"", None);
        assert!(r.contains("unsupported format"), "{r}");
        // A WAV header with no samples.
        let empty = wav_8k(0);
        let r = reason(&empty, Some("wav"));
        assert!(r.contains("empty"), "{r}");
    }

    #[test]
    fn the_cache_finds_every_format_with_or_without_its_extension() {
        let dir = tempfile::tempdir().unwrap();
        for (file, as_name) in [
            ("tone440_16k_stereo.wav", "a.wav"),
            ("tone1000_44k.mp3", "b.mp3"),
            ("tone660_48k.flac", "c.flac"),
            ("tone880_22k.ogg", "d.ogg"),
            ("tone880_22k.ogg", "e.oga"),
            ("tone1000_44k.mp3", "F.MP3"),
        ] {
            std::fs::write(dir.path().join(as_name), fixture(file)).unwrap();
        }
        let mut c = PromptCache::new(Some(dir.path().to_path_buf()));
        for name in [
            "a", "a.wav", "b", "b.mp3", "c", "c.flac", "d", "d.ogg", "e", "e.oga",
        ] {
            let p = c.get(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
            assert!((7_600..=8_400).contains(&p.samples.len()), "{name}");
        }
        assert!(c.get("F.MP3").is_ok());
    }

    #[test]
    fn the_cache_refuses_unknown_extensions_and_names_leaving_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.aiff"), b"FORM").unwrap();
        let mut c = PromptCache::new(Some(dir.path().to_path_buf()));
        let err = c.get("x.aiff").unwrap_err();
        assert!(matches!(err, PromptError::UnsupportedExtension { .. }));
        let msg = err.to_string();
        for ext in PROMPT_EXTENSIONS {
            assert!(msg.contains(ext), "{msg}");
        }
        for bad in ["../x.wav", "a/b.mp3", "..", ".hidden.ogg", "a\\b.flac", ""] {
            assert!(
                matches!(c.get(bad), Err(PromptError::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            c.get("missing.flac"),
            Err(PromptError::NotFound(_))
        ));
    }

    #[test]
    fn streaming_resampler_matches_the_length_rule_for_odd_pushes() {
        let x: Vec<f32> = (0..44_100)
            .map(|i| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 44_100.0).sin())
            .collect();
        let mut rs = To8k::new(44_100).unwrap();
        let mut out = Vec::new();
        for piece in x.chunks(577) {
            out.extend_from_slice(rs.push(piece).unwrap());
        }
        out.extend_from_slice(rs.finish().unwrap());
        out.truncate(rs.expected_len());
        assert_eq!(out.len(), 8_000);
        assert_eq!(out, resample_to_8k(&x, 44_100).unwrap());
    }
}
