//! `trunkline amd FILE...`: the live detector run over WAV files (driver: reads files).
//!
//! Each file is decoded (PCM integer 8/16/24/32-bit or 32-bit float, any sample rate), its
//! **first channel** taken (in trunkline's own dual-channel recordings that is the far end),
//! resampled to 8 kHz with rubato when needed, optionally round-tripped through G.711, and fed
//! to [`AmdDetector`] 20 ms at a time; a last partial frame is padded with silence and the end
//! of the file is [`AmdDetector::finish`]. Reading stops at the final verdict.
//!
//! One JSON object per line per file on stdout:
//! `{"file", "class", "answered_by", "confidence", "decision_ms", "beep_ms", "drop_ms"}`, where
//! `class` is `human`, `machine`, `fax`, `silence` (unknown, and no speech was heard) or
//! `unknown`; `decision_ms` is the stream time of the first human, machine or fax verdict
//! (`null` if none); `beep_ms` the beep onset; `drop_ms` the earliest start of a voicemail drop.
//! A file that cannot be read gives `{"file", "error"}` on stdout and a line on stderr; the
//! other files are still processed and the exit code is 1 at the end.

use super::{AmdDetector, AmdMode, AmdParams, AnsweredBy, Verdict};
use crate::clock::{Clock, SystemClock};
use crate::media::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ};
use crate::media::g711::Law;
use clap::{Args, ValueEnum};
use rubato::{FftFixedIn, Resampler};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A G.711 law for `--g711`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum G711Arg {
    /// µ-law (PCMU).
    Ulaw,
    /// A-law (PCMA).
    Alaw,
}

/// `trunkline amd`: run the answering-machine detector over WAV files.
#[derive(Debug, Clone, Args)]
pub struct AmdArgs {
    /// Round-trip the audio through G.711 first, as it would arrive over RTP.
    #[arg(long, value_enum, value_name = "LAW")]
    pub g711: Option<G711Arg>,
    /// `detect_message_end` (wait for the beep or end-of-greeting silence) or `enable`.
    #[arg(long, default_value = "detect_message_end", value_parser = parse_mode)]
    pub mode: AmdMode,
    /// Total analysis time, ms (default 30000).
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Utterance length that makes a machine, ms (default 3600).
    #[arg(long, value_name = "MS")]
    pub speech_threshold_ms: Option<u64>,
    /// Silence after a short first utterance that makes a human, ms (default 600).
    #[arg(long, value_name = "MS")]
    pub speech_end_threshold_ms: Option<u64>,
    /// Initial silence that gives `unknown`, ms (default 5000).
    #[arg(long, value_name = "MS")]
    pub silence_timeout_ms: Option<u64>,
    /// Silence that ends a greeting without a beep, ms (default 1500).
    #[arg(long, value_name = "MS")]
    pub greeting_end_silence_ms: Option<u64>,
    /// Time after the beep before a voicemail drop may start, ms (default 100).
    #[arg(long, value_name = "MS")]
    pub beep_guard_ms: Option<u64>,
    /// WAV files to analyse.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn parse_mode(s: &str) -> Result<AmdMode, String> {
    match s {
        "enable" => Ok(AmdMode::Enable),
        "detect_message_end" | "detect-message-end" => Ok(AmdMode::DetectMessageEnd),
        other => Err(format!(
            "unknown mode {other:?}, expected enable or detect_message_end"
        )),
    }
}

impl AmdArgs {
    /// The detector parameters these flags ask for.
    pub fn params(&self) -> AmdParams {
        let d = AmdParams::default();
        let ms = |v: Option<u64>, def: Duration| v.map(Duration::from_millis).unwrap_or(def);
        AmdParams {
            mode: self.mode,
            timeout: ms(self.timeout_ms, d.timeout),
            speech_threshold: ms(self.speech_threshold_ms, d.speech_threshold),
            speech_end_threshold: ms(self.speech_end_threshold_ms, d.speech_end_threshold),
            silence_timeout: ms(self.silence_timeout_ms, d.silence_timeout),
            greeting_end_silence: ms(self.greeting_end_silence_ms, d.greeting_end_silence),
            beep_guard: ms(self.beep_guard_ms, d.beep_guard),
        }
    }
}

/// Why a file could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AmdFileError {
    /// hound could not open or decode it (not a WAV, not PCM/float, truncated...).
    #[error("cannot read wav: {0}")]
    Wav(#[from] hound::Error),
    /// The resampler refused the sample rate.
    #[error("cannot resample from {rate} Hz: {reason}")]
    Resample {
        /// The file's sample rate.
        rate: u32,
        /// rubato's reason.
        reason: String,
    },
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileResult {
    /// The final verdict.
    pub verdict: Verdict,
    /// The first human, machine or fax verdict, interim or final.
    pub decision: Option<Verdict>,
}

impl FileResult {
    /// The evaluation class: `human`, `machine`, `fax`, `silence` or `unknown`.
    pub fn class(&self) -> &'static str {
        class_of(&self.verdict)
    }
}

/// The evaluation class of a final verdict.
pub fn class_of(v: &Verdict) -> &'static str {
    match v.answered_by {
        AnsweredBy::Human => "human",
        AnsweredBy::Fax => "fax",
        AnsweredBy::Unknown if v.speech.is_zero() => "silence",
        AnsweredBy::Unknown => "unknown",
        _ => "machine",
    }
}

/// Feeds 8 kHz samples (`-1..1`) to a detector frame by frame.
struct Feeder {
    det: AmdDetector,
    law: Option<Law>,
    /// Wall time is irrelevant to a file; the detector counts stream time from frames.
    now: Instant,
    frame: Frame,
    fill: usize,
    decision: Option<Verdict>,
    done: bool,
}

impl Feeder {
    fn push(&mut self, samples: &[f32]) {
        for &s in samples {
            if self.done {
                return;
            }
            self.frame[self.fill] = (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
            self.fill += 1;
            if self.fill == FRAME_SAMPLES {
                self.fill = 0;
                self.flush_frame();
            }
        }
    }

    fn flush_frame(&mut self) {
        if let Some(law) = self.law {
            law.round_trip_in_place(&mut self.frame);
        }
        if let Some(v) = self.det.push_frame(self.now, &self.frame) {
            if self.decision.is_none() && v.answered_by != AnsweredBy::Unknown {
                self.decision = Some(v);
            }
            self.done = v.is_final;
        }
    }

    fn finish(mut self) -> FileResult {
        if self.fill > 0 && !self.done {
            self.frame[self.fill..].fill(0);
            self.fill = 0;
            self.flush_frame();
        }
        let verdict = self.det.finish(self.now);
        let decision = self
            .decision
            .or((verdict.answered_by != AnsweredBy::Unknown).then_some(verdict));
        FileResult { verdict, decision }
    }
}

/// Runs the detector over one WAV file.
pub fn analyze_file(
    path: &Path,
    params: AmdParams,
    law: Option<Law>,
) -> Result<FileResult, AmdFileError> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let mut feeder = Feeder {
        det: AmdDetector::new(params),
        law,
        now: SystemClock.now(),
        frame: [0; FRAME_SAMPLES],
        fill: 0,
        decision: None,
        done: false,
    };
    let scale = match spec.sample_format {
        hound::SampleFormat::Float => 1.0,
        hound::SampleFormat::Int => 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32,
    };
    let mut resampler = if spec.sample_rate == SAMPLE_RATE_HZ {
        None
    } else {
        let r = FftFixedIn::<f32>::new(
            spec.sample_rate as usize,
            SAMPLE_RATE_HZ as usize,
            1_024,
            2,
            1,
        )
        .map_err(|e| AmdFileError::Resample {
            rate: spec.sample_rate,
            reason: e.to_string(),
        })?;
        Some(r)
    };
    let mut delay = resampler.as_ref().map_or(0, |r| r.output_delay());
    let mut input: Vec<f32> = Vec::with_capacity(4_096);
    let mut output = resampler
        .as_ref()
        .map(|r| vec![vec![0.0f32; r.output_frames_max()]; 1])
        .unwrap_or_default();
    let emit = |feeder: &mut Feeder, out: &[f32], delay: &mut usize| {
        let skip = (*delay).min(out.len());
        *delay -= skip;
        feeder.push(&out[skip..]);
    };
    let resample_err = |e: rubato::ResampleError| AmdFileError::Resample {
        rate: spec.sample_rate,
        reason: e.to_string(),
    };

    macro_rules! read_samples {
        ($t:ty) => {{
            let mut idx = 0usize;
            for s in reader.samples::<$t>() {
                let s = s?;
                if idx % channels == 0 {
                    input.push(s as f32 * scale);
                }
                idx += 1;
                match resampler.as_mut() {
                    None => {
                        if input.len() >= 1_024 {
                            feeder.push(&input);
                            input.clear();
                        }
                    }
                    Some(r) => {
                        if input.len() >= r.input_frames_next() {
                            let (_, n) = r
                                .process_into_buffer(&[&input[..]], &mut output, None)
                                .map_err(resample_err)?;
                            emit(&mut feeder, &output[0][..n], &mut delay);
                            input.clear();
                        }
                    }
                }
                if feeder.done {
                    break;
                }
            }
        }};
    }
    match spec.sample_format {
        hound::SampleFormat::Float => read_samples!(f32),
        hound::SampleFormat::Int => read_samples!(i32),
    }
    if !feeder.done {
        match resampler.as_mut() {
            None => feeder.push(&input),
            Some(r) => {
                let (_, n) = r
                    .process_partial_into_buffer(Some(&[&input[..]]), &mut output, None)
                    .map_err(resample_err)?;
                emit(&mut feeder, &output[0][..n], &mut delay);
                let (_, n) = r
                    .process_partial_into_buffer(None::<&[&[f32]]>, &mut output, None)
                    .map_err(resample_err)?;
                emit(&mut feeder, &output[0][..n], &mut delay);
            }
        }
    }
    Ok(feeder.finish())
}

fn ms_of(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One line of `trunkline amd` output (fields in this order).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultLine<'a> {
    /// The file as given on the command line.
    pub file: &'a str,
    /// `human`, `machine`, `fax`, `silence` or `unknown`.
    pub class: &'static str,
    /// The final verdict's name.
    pub answered_by: &'static str,
    /// The final verdict's confidence, 3 decimals.
    pub confidence: f64,
    /// Stream time of the first human/machine/fax verdict, ms.
    pub decision_ms: Option<u64>,
    /// Beep onset, ms.
    pub beep_ms: Option<u64>,
    /// Earliest start of a voicemail drop, ms.
    pub drop_ms: Option<u64>,
}

/// The JSON line for a file that could not be analysed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorLine<'a> {
    /// The file as given on the command line.
    pub file: &'a str,
    /// Why it could not be analysed.
    pub error: String,
}

/// The JSON line for one analysed file.
pub fn result_line<'a>(file: &'a str, r: &FileResult) -> ResultLine<'a> {
    ResultLine {
        file,
        class: r.class(),
        answered_by: r.verdict.answered_by.as_str(),
        confidence: (f64::from(r.verdict.confidence) * 1000.0).round() / 1000.0,
        decision_ms: ms_of(r.decision.map(|v| v.at)),
        beep_ms: ms_of(r.verdict.beep_onset),
        drop_ms: ms_of(r.verdict.message_start),
    }
}

/// Runs `trunkline amd`; returns the process exit code (1 if any file failed or the
/// parameters are out of range).
pub fn run(args: AmdArgs) -> ExitCode {
    let params = args.params();
    if let Err(e) = params.validate() {
        eprintln!("trunkline amd: {e}");
        return ExitCode::from(2);
    }
    let law = args.g711.map(|g| match g {
        G711Arg::Ulaw => Law::Ulaw,
        G711Arg::Alaw => Law::Alaw,
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for path in &args.files {
        let name = path.display().to_string();
        let line = match analyze_file(path, params, law) {
            Ok(r) => serde_json::to_string(&result_line(&name, &r)),
            Err(e) => {
                failed = true;
                eprintln!("trunkline amd: {name}: {e}");
                serde_json::to_string(&ErrorLine {
                    file: &name,
                    error: e.to_string(),
                })
            }
        };
        let Ok(line) = line else {
            return ExitCode::FAILURE;
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
