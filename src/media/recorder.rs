//! Call and conference recordings: dual-channel 16-bit PCM WAV at 8 kHz, written off the media
//! path (driver: one blocking std thread; the media side is allocation-free and never blocks).
//!
//! # Shape
//!
//! ```text
//!  media worker (per tick)                      writer thread ("trunkline-recorder")
//!  Recorder::push(id, &left, &right)            owns every open hound::WavWriter by id
//!    interleave into the recording's buffer
//!    (CHUNK_FRAMES = 25 frames = 500 ms)
//!    full -> try_send(Chunk) ──── bounded ────► write samples, WavWriter::flush()
//!            (full channel: chunk dropped,       (header rewritten: the file on disk is a
//!             counted, never awaited)             valid WAV at every chunk boundary)
//!    ◄────────────── emptied buffers ─────────── returned for reuse
//!  Recorder::stop(id) -> Close(last chunk) ────► finalize, sha256 of the file,
//!                                                RecorderReport on the report channel
//! ```
//!
//! Left = the far end (what we receive), right = our side (what we send, or the rest of the
//! room). Both channels are filled from the same call of [`Recorder::push`], so a frame pair
//! pushed on one tick lands at the same sample index in both channels: alignment comes from the
//! media clock, never from arrival times (DESIGN.md, "Recording").
//!
//! # Crash safety
//!
//! `WavWriter::flush` (hound 3.5) rewrites the RIFF and `data` sizes and flushes the file after
//! every chunk, so a `kill -9` loses at most the chunk being filled (< 500 ms) plus the one
//! being written. What was written after the last flush is data the header does not count;
//! [`repair`] (run at start-up for recordings still `recording`/`paused`) rewrites the header
//! from the length actually on disk.
//!
//! # Deliberate choices
//!
//! - One [`Recorder`] per media worker, keyed by recording id, rather than one object per
//!   recording: control messages (open, close) must never be lost even when the channel is full,
//!   so the recorder keeps them pending and retries them from [`Recorder::poll`] (once per
//!   tick); only chunks of audio may be dropped.
//! - Buffers circulate: a full chunk is handed over only when a free buffer can replace it, so
//!   the memory in flight is bounded by the buffers allocated when recordings start.
//! - Each recording gets exactly one [`RecorderReport`]: when it is closed, or as soon as it
//!   fails (cannot create the directory or file, write error).
//! - The sha256 is computed by reading the finished file back (the header, written last, comes
//!   first in the file), on the writer thread.

use crate::media::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE_HZ};
use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use uuid::Uuid;

/// Channels in a recording: left = far end, right = our side.
pub const CHANNELS: u16 = 2;
/// Bits per sample in a recording.
pub const BITS_PER_SAMPLE: u16 = 16;
/// Frames (20 ms each) per chunk handed to the writer thread: 500 ms, the most a crash loses
/// from the chunk being filled.
pub const CHUNK_FRAMES: usize = 25;
/// Interleaved samples in a full chunk.
pub const CHUNK_SAMPLES: usize = CHUNK_FRAMES * FRAME_SAMPLES * CHANNELS as usize;
/// Messages the channel to the writer thread holds before chunks are dropped: at 2 chunks per
/// second per recording, 1,024 is about 5 s of backlog for 100 recordings.
pub const CHANNEL_CAPACITY: usize = 1_024;
/// Size of the canonical WAV header hound writes for 16-bit stereo PCM (`PCMWAVEFORMAT`).
pub const WAV_HEADER_BYTES: u64 = 44;
/// Capacity of the channel returning emptied buffers to one [`Recorder`]; a buffer that does
/// not fit is freed by the writer thread.
const RETURN_CAPACITY: usize = 4_096;
/// Bytes of one stereo 16-bit sample frame (`block_align`).
const BLOCK_ALIGN: u64 = (CHANNELS * BITS_PER_SAMPLE / 8) as u64;
/// Name of the writer thread (seen in `top -H`, panics and profiles).
const THREAD_NAME: &str = "trunkline-recorder";

/// The WAV format of every recording.
pub fn wav_spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: CHANNELS,
        sample_rate: SAMPLE_RATE_HZ,
        bits_per_sample: BITS_PER_SAMPLE,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Where a recording lives, relative to the recordings directory:
/// `<yyyy>/<mm>/<dd>/<recording id>.wav`, dated by `started_at` (UTC).
pub fn relative_path(id: Uuid, started_at: DateTime<Utc>) -> PathBuf {
    PathBuf::from(format!(
        "{:04}/{:02}/{:02}/{id}.wav",
        started_at.year(),
        started_at.month(),
        started_at.day()
    ))
}

/// How a recording ended, as the writer thread saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportStatus {
    /// Closed normally: the file is finalized.
    Completed,
    /// The file could not be created or written, or the recording was aborted; the file, if
    /// any, holds what was written before.
    Failed {
        /// Why, for the API and the store's `error` column.
        reason: String,
    },
}

/// The summary of one recording, sent once per recording on the report channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderReport {
    /// The recording id.
    pub id: Uuid,
    /// The file, as given to [`Recorder::start`].
    pub path: PathBuf,
    /// Frames (20 ms, both channels) written to the file.
    pub frames: u64,
    /// Duration of the audio in the file, in milliseconds.
    pub duration_ms: u64,
    /// File size in bytes (0 when there is no file).
    pub size_bytes: u64,
    /// Lowercase hex sha256 of the whole file (`None` when it cannot be read).
    pub sha256: Option<String>,
    /// Frames lost because the writer fell behind (chunks dropped on a full channel).
    pub dropped_frames: u64,
    /// Completed or failed.
    pub status: ReportStatus,
}

/// Messages from the media side to the writer thread.
#[derive(Debug)]
enum WriterMsg {
    /// Create the file (and its directories) for recording `id`; emptied buffers of this
    /// recording go back on `returns`.
    Open {
        id: Uuid,
        path: PathBuf,
        returns: SyncSender<Vec<i16>>,
    },
    /// Interleaved stereo samples (a whole number of frames) to append.
    Chunk { id: Uuid, buf: Vec<i16> },
    /// The last (possibly partial) chunk; finalize and report. `abort` turns the report into a
    /// failure with that reason (the file is kept).
    Close {
        id: Uuid,
        buf: Vec<i16>,
        dropped_frames: u64,
        abort: Option<String>,
    },
}

/// Starts the writer thread.
pub struct RecorderThread;

impl RecorderThread {
    /// Spawns the writer thread; reports go to `reports`. The thread ends when the returned
    /// handle and every [`Recorder`] made from it are dropped (see [`RecorderHandle::join`]).
    pub fn spawn(reports: tokio::sync::mpsc::UnboundedSender<RecorderReport>) -> RecorderHandle {
        Self::spawn_with_capacity(reports, CHANNEL_CAPACITY)
    }

    /// [`RecorderThread::spawn`] with a channel of `capacity` messages (tests, benches).
    pub fn spawn_with_capacity(
        reports: tokio::sync::mpsc::UnboundedSender<RecorderReport>,
        capacity: usize,
    ) -> RecorderHandle {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run_writer(rx, reports))
            .expect("spawn the recorder thread");
        RecorderHandle {
            tx,
            thread: Some(thread),
        }
    }
}

/// The writer thread's handle: makes [`Recorder`]s (one per media worker).
#[derive(Debug)]
pub struct RecorderHandle {
    tx: SyncSender<WriterMsg>,
    thread: Option<JoinHandle<()>>,
}

impl RecorderHandle {
    /// A new media-side recorder feeding this thread.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.tx.clone())
    }

    /// Waits for the writer thread to finish: it does once every [`Recorder`] made from this
    /// handle has been dropped and every queued message handled. Recordings still open then are
    /// finalized and reported as failed ("recorder shut down"). Blocking: call it from a
    /// blocking context at shutdown.
    pub fn join(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// One recording on the media side.
#[derive(Debug)]
struct Slot {
    /// The interleaved samples being filled (capacity [`CHUNK_SAMPLES`]).
    buf: Vec<i16>,
    /// The `Open` message while it could not be sent (full channel).
    pending_open: Option<WriterMsg>,
    /// Stop asked: `Some(abort reason)`; the slot goes once `Close` is sent.
    stopping: Option<Option<String>>,
    paused: bool,
    dropped_frames: u64,
}

/// The media-side recorder of one worker: a preallocated buffer per recording, filled one frame
/// pair per tick, handed to the writer thread 500 ms at a time. Never blocks, never allocates
/// in [`push`](Recorder::push) or [`poll`](Recorder::poll).
#[derive(Debug)]
pub struct Recorder {
    tx: SyncSender<WriterMsg>,
    returns_tx: SyncSender<Vec<i16>>,
    returns_rx: Receiver<Vec<i16>>,
    /// Empty buffers ready for reuse; its capacity covers every buffer this recorder made, so
    /// refilling it never reallocates.
    spares: Vec<Vec<i16>>,
    /// Buffers this recorder allocated (the capacity `spares` keeps).
    buffers: usize,
    slots: HashMap<Uuid, Slot>,
    dropped_chunks: u64,
}

impl Recorder {
    fn new(tx: SyncSender<WriterMsg>) -> Self {
        let (returns_tx, returns_rx) = mpsc::sync_channel(RETURN_CAPACITY);
        Recorder {
            tx,
            returns_tx,
            returns_rx,
            spares: Vec::new(),
            buffers: 0,
            slots: HashMap::new(),
            dropped_chunks: 0,
        }
    }

    /// Starts recording `id` into `path` (the writer creates the directories). Allocates this
    /// recording's buffers (a command, not per frame). Returns `false` if `id` is already
    /// recording.
    pub fn start(&mut self, id: Uuid, path: PathBuf) -> bool {
        if self.slots.contains_key(&id) {
            return false;
        }
        self.refill_spares();
        // Two buffers per recording: one filling, one in flight or spare. Buffers of stopped
        // recordings come back and serve new ones. `spares` can hold every buffer made, so
        // taking them back never reallocates on the media path.
        let wanted = 2 * (self.slots.len() + 1);
        let made = wanted.saturating_sub(self.buffers);
        self.buffers += made;
        self.spares
            .reserve(self.buffers.saturating_sub(self.spares.len()));
        for _ in 0..made {
            self.spares.push(Vec::with_capacity(CHUNK_SAMPLES));
        }
        let buf = self.spares.pop().unwrap_or_default();
        let open = WriterMsg::Open {
            id,
            path,
            returns: self.returns_tx.clone(),
        };
        let pending_open = match self.tx.try_send(open) {
            Ok(()) => None,
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Some(m),
        };
        self.slots.insert(
            id,
            Slot {
                buf,
                pending_open,
                stopping: None,
                paused: false,
                dropped_frames: 0,
            },
        );
        true
    }

    /// Appends one frame pair (left = far end, right = our side) to recording `id`: both land
    /// at the same sample index. A no-op while paused or stopping. Returns `false` for an
    /// unknown id.
    pub fn push(&mut self, id: &Uuid, left: &Frame, right: &Frame) -> bool {
        let Some(slot) = self.slots.get_mut(id) else {
            return false;
        };
        if slot.paused || slot.stopping.is_some() {
            return true;
        }
        // Within the buffer's capacity (a chunk is a whole number of frames): no allocation.
        let start = slot.buf.len();
        slot.buf.resize(start + 2 * FRAME_SAMPLES, 0);
        for (lr, (l, r)) in slot.buf[start..]
            .chunks_exact_mut(2)
            .zip(left.iter().zip(right.iter()))
        {
            lr[0] = *l;
            lr[1] = *r;
        }
        if slot.buf.len() >= CHUNK_SAMPLES {
            if slot.pending_open.is_some() {
                retry_open(&self.tx, slot);
            }
            let replacement = if slot.pending_open.is_none() {
                self.spares
                    .pop()
                    .or_else(|| self.returns_rx.try_recv().ok())
            } else {
                None
            };
            let sent = match replacement {
                Some(fresh) => {
                    let full = std::mem::replace(&mut slot.buf, fresh);
                    match self.tx.try_send(WriterMsg::Chunk { id: *id, buf: full }) {
                        Ok(()) => true,
                        Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => {
                            // Keep the buffers: the full one back in place, the fresh one spare.
                            if let WriterMsg::Chunk { buf, .. } = m {
                                let fresh = std::mem::replace(&mut slot.buf, buf);
                                self.spares.push(fresh);
                            }
                            false
                        }
                    }
                }
                None => false,
            };
            if !sent {
                slot.buf.clear();
                slot.dropped_frames += CHUNK_FRAMES as u64;
                self.dropped_chunks += 1;
                // Rare (the writer is seconds behind), so counted here rather than per tick.
                metrics::counter!(crate::telemetry::RECORDER_CHUNKS_DROPPED).increment(1);
            }
        }
        true
    }

    /// Pauses recording `id`: frames pushed while paused are not written. Returns `false` for
    /// an unknown id.
    pub fn pause(&mut self, id: &Uuid) -> bool {
        self.set_paused(id, true)
    }

    /// Resumes recording `id`. Returns `false` for an unknown id.
    pub fn resume(&mut self, id: &Uuid) -> bool {
        self.set_paused(id, false)
    }

    fn set_paused(&mut self, id: &Uuid, paused: bool) -> bool {
        match self.slots.get_mut(id) {
            Some(slot) if slot.stopping.is_none() => {
                slot.paused = paused;
                true
            }
            _ => false,
        }
    }

    /// Whether recording `id` is paused.
    pub fn is_paused(&self, id: &Uuid) -> bool {
        self.slots.get(id).is_some_and(|s| s.paused)
    }

    /// Stops recording `id`: the partial chunk is written, the file finalized and a
    /// [`ReportStatus::Completed`] report sent. Returns `false` for an unknown id or one
    /// already stopping.
    pub fn stop(&mut self, id: &Uuid) -> bool {
        self.begin_stop(id, None)
    }

    /// Ends recording `id` as failed with `reason` (the audio so far is kept in the file).
    /// Returns `false` for an unknown id or one already stopping.
    pub fn abort(&mut self, id: &Uuid, reason: impl Into<String>) -> bool {
        self.begin_stop(id, Some(reason.into()))
    }

    fn begin_stop(&mut self, id: &Uuid, abort: Option<String>) -> bool {
        match self.slots.get_mut(id) {
            Some(slot) if slot.stopping.is_none() => {
                slot.stopping = Some(abort);
                self.poll_slot(*id);
                true
            }
            _ => false,
        }
    }

    /// Once per tick: retries open and close messages a full channel refused, and takes back
    /// buffers the writer emptied. Never blocks.
    pub fn poll(&mut self) {
        self.refill_spares();
        // Only walk the slots when something is pending: the common tick does nothing here.
        if self
            .slots
            .values()
            .any(|s| s.pending_open.is_some() || s.stopping.is_some())
        {
            // Ids collected without allocating: retry in place, then drop the closed ones.
            let tx = &self.tx;
            self.slots.retain(|id, slot| !try_progress(tx, *id, slot));
        }
    }

    fn poll_slot(&mut self, id: Uuid) {
        if let Some(slot) = self.slots.get_mut(&id)
            && try_progress(&self.tx, id, slot)
        {
            self.slots.remove(&id);
        }
    }

    fn refill_spares(&mut self) {
        while self.spares.len() < self.spares.capacity() {
            match self.returns_rx.try_recv() {
                Ok(buf) => self.spares.push(buf),
                Err(_) => break,
            }
        }
    }

    /// Whether `id` is recording (paused included; not once stopped).
    pub fn is_recording(&self, id: &Uuid) -> bool {
        self.slots.get(id).is_some_and(|s| s.stopping.is_none())
    }

    /// Recordings this recorder still holds (stopping ones whose close is not yet sent
    /// included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether this recorder holds no recording.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Empty buffers ready for the next full chunks (taken back by [`poll`](Recorder::poll)).
    /// Fewer than [`len`](Recorder::len) means the writer thread is behind.
    pub fn free_buffers(&self) -> usize {
        self.spares.len()
    }

    /// Chunks dropped because the writer thread was behind, since this recorder was made.
    pub fn dropped_chunks(&self) -> u64 {
        self.dropped_chunks
    }
}

impl Drop for Recorder {
    /// Best effort: close every recording still open, so the thread finalizes and reports it.
    fn drop(&mut self) {
        let ids: Vec<Uuid> = self.slots.keys().copied().collect();
        for id in ids {
            let _ = self.begin_stop(&id, None);
        }
    }
}

/// Sends a pending `Open` if the channel has room.
fn retry_open(tx: &SyncSender<WriterMsg>, slot: &mut Slot) {
    if let Some(open) = slot.pending_open.take() {
        match tx.try_send(open) {
            Ok(()) => {}
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => {
                slot.pending_open = Some(m);
            }
        }
    }
}

/// Moves a slot's pending messages forward; `true` once its `Close` is sent (or the writer is
/// gone), meaning the slot can go.
fn try_progress(tx: &SyncSender<WriterMsg>, id: Uuid, slot: &mut Slot) -> bool {
    retry_open(tx, slot);
    if slot.pending_open.is_some() {
        return false;
    }
    let Some(abort) = slot.stopping.take() else {
        return false;
    };
    let close = WriterMsg::Close {
        id,
        buf: std::mem::take(&mut slot.buf),
        dropped_frames: slot.dropped_frames,
        abort,
    };
    match tx.try_send(close) {
        Ok(()) => true,
        Err(TrySendError::Disconnected(_)) => true,
        Err(TrySendError::Full(WriterMsg::Close { buf, abort, .. })) => {
            slot.buf = buf;
            slot.stopping = Some(abort);
            false
        }
        Err(TrySendError::Full(_)) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Writer thread.

type Writer = hound::WavWriter<BufWriter<File>>;

/// One open recording on the writer thread.
struct Entry {
    path: PathBuf,
    /// `None` once failed (reported already): later chunks are discarded.
    writer: Option<Writer>,
    /// Interleaved samples written.
    samples: u64,
    returns: SyncSender<Vec<i16>>,
}

fn run_writer(
    rx: Receiver<WriterMsg>,
    reports: tokio::sync::mpsc::UnboundedSender<RecorderReport>,
) {
    let mut open: HashMap<Uuid, Entry> = HashMap::new();
    let report = |r: RecorderReport| {
        if r.status != ReportStatus::Completed {
            tracing::warn!(id = %r.id, path = %r.path.display(), status = ?r.status, "recording failed");
        }
        let _ = reports.send(r);
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Open { id, path, returns } => {
                let writer = match create(&path) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        report(summary(
                            id,
                            &path,
                            0,
                            0,
                            failed(format!("cannot create: {e}")),
                        ));
                        None
                    }
                };
                open.insert(
                    id,
                    Entry {
                        path,
                        writer,
                        samples: 0,
                        returns,
                    },
                );
            }
            WriterMsg::Chunk { id, mut buf } => {
                let Some(entry) = open.get_mut(&id) else {
                    continue;
                };
                if let Err(e) = append(entry, &buf) {
                    entry.writer = None;
                    report(summary(
                        id,
                        &entry.path,
                        entry.samples,
                        0,
                        failed(format!("write: {e}")),
                    ));
                }
                buf.clear();
                let _ = entry.returns.try_send(buf);
            }
            WriterMsg::Close {
                id,
                mut buf,
                dropped_frames,
                abort,
            } => {
                let Some(mut entry) = open.remove(&id) else {
                    continue;
                };
                if entry.writer.is_some() {
                    let mut status = match append(&mut entry, &buf) {
                        Ok(()) => ReportStatus::Completed,
                        Err(e) => failed(format!("write: {e}")),
                    };
                    if let Some(w) = entry.writer.take()
                        && let Err(e) = w.finalize()
                        && status == ReportStatus::Completed
                    {
                        status = failed(format!("finalize: {e}"));
                    }
                    if let Some(reason) = abort
                        && status == ReportStatus::Completed
                    {
                        status = ReportStatus::Failed { reason };
                    }
                    report(summary(
                        id,
                        &entry.path,
                        entry.samples,
                        dropped_frames,
                        status,
                    ));
                }
                buf.clear();
                let _ = entry.returns.try_send(buf);
            }
        }
    }
    // Every sender is gone (shutdown): finalize what is still open.
    for (id, mut entry) in open {
        if let Some(w) = entry.writer.take() {
            let _ = w.finalize();
            report(summary(
                id,
                &entry.path,
                entry.samples,
                0,
                failed("recorder shut down".into()),
            ));
        }
    }
}

fn failed(reason: String) -> ReportStatus {
    ReportStatus::Failed { reason }
}

fn create(path: &Path) -> Result<Writer, hound::Error> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    hound::WavWriter::create(path, wav_spec())
}

/// Writes interleaved samples and flushes, so the header on disk counts them.
fn append(entry: &mut Entry, buf: &[i16]) -> Result<(), hound::Error> {
    let Some(w) = entry.writer.as_mut() else {
        return Ok(());
    };
    if buf.is_empty() {
        return Ok(());
    }
    // hound counts data bytes in a u32 (the RIFF limit): about 37 h of 8 kHz stereo.
    if (entry.samples + buf.len() as u64) * 2 > u64::from(u32::MAX) - WAV_HEADER_BYTES {
        return Err(hound::Error::IoError(io::Error::other(
            "the recording reached the 4 GiB limit of a WAV file",
        )));
    }
    let mut samples = w.get_i16_writer(buf.len() as u32);
    for s in buf {
        samples.write_sample(*s);
    }
    samples.flush()?;
    w.flush()?;
    entry.samples += buf.len() as u64;
    Ok(())
}

/// Builds the report of a recording from the file on disk.
fn summary(
    id: Uuid,
    path: &Path,
    samples: u64,
    dropped_frames: u64,
    status: ReportStatus,
) -> RecorderReport {
    let per_channel = samples / u64::from(CHANNELS);
    let (size_bytes, sha256) = match sha256_file(path) {
        Ok((size, hash)) => (size, Some(hash)),
        Err(_) => (0, None),
    };
    RecorderReport {
        id,
        path: path.to_path_buf(),
        frames: per_channel / FRAME_SAMPLES as u64,
        duration_ms: per_channel * 1_000 / u64::from(SAMPLE_RATE_HZ),
        size_bytes,
        sha256,
        dropped_frames,
        status,
    }
}

/// Size and lowercase hex sha256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

// ---------------------------------------------------------------------------------------------
// Repair after a crash.

/// What [`repair`] found and left on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredFile {
    /// Duration of the audio the repaired header counts, in milliseconds.
    pub duration_ms: u64,
    /// File size after the repair.
    pub size_bytes: u64,
    /// Lowercase hex sha256 of the repaired file.
    pub sha256: String,
    /// Whether the header (or length) had to change.
    pub repaired: bool,
}

/// Makes the header of a recording left by a crash match the audio actually on disk, so it
/// opens in any player; used at start-up for rows still `recording`/`paused`.
///
/// - The `data` chunk is located by walking the RIFF chunks (hound writes the 44-byte
///   `PCMWAVEFORMAT` header for 16-bit stereo, but a `WAVE_FORMAT_EXTENSIBLE` `fmt ` chunk is
///   handled the same way).
/// - A file whose RIFF size already matches its length is left alone (a finalized file, or one
///   with chunks after `data` written by another tool).
/// - Otherwise the data length is the rest of the file, truncated down to a whole sample frame
///   (`block_align`), and the RIFF and `data` sizes are rewritten.
/// - A file shorter than a WAV header (a crash before the first flush) gets a fresh, empty
///   header of the recorder's format.
///
/// Errors: the file cannot be opened or written, or it is not a RIFF/WAVE file with a `data`
/// chunk (`InvalidData`; nothing is written then).
pub fn repair(path: &Path) -> io::Result<RecoveredFile> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 12];
    if len < WAV_HEADER_BYTES {
        // Nothing of the audio survives: a valid empty WAV of our format.
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&empty_header())?;
        file.sync_all()?;
        drop(file);
        return finish(path, 0, BLOCK_ALIGN, SAMPLE_RATE_HZ, true);
    }
    file.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(invalid("not a RIFF/WAVE file"));
    }
    let riff_size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    // Walk the chunks up to `data`.
    let mut pos = 12u64;
    let mut block_align = BLOCK_ALIGN;
    let mut sample_rate = SAMPLE_RATE_HZ;
    let (data_start, data_size) = loop {
        if pos + 8 > len {
            return Err(invalid("no data chunk"));
        }
        let mut ch = [0u8; 8];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut ch)?;
        let size = u64::from(u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]));
        if &ch[0..4] == b"data" {
            break (pos + 8, size);
        }
        if &ch[0..4] == b"fmt " {
            if size < 16 || pos + 8 + 16 > len {
                return Err(invalid("short fmt chunk"));
            }
            let mut fmt = [0u8; 16];
            file.read_exact(&mut fmt)?;
            sample_rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            block_align = u64::from(u16::from_le_bytes([fmt[12], fmt[13]]));
            if block_align == 0 || sample_rate == 0 {
                return Err(invalid("fmt chunk with zero block align or rate"));
            }
        }
        // Chunks are padded to an even size.
        pos += 8 + size + (size & 1);
    };
    let consistent = riff_size + 8 == len && data_start + data_size <= len;
    if consistent {
        drop(file);
        return finish(path, data_size, block_align, sample_rate, false);
    }
    let max_data = u64::from(u32::MAX) - (data_start - 8);
    let real = ((len - data_start).min(max_data) / block_align) * block_align;
    file.set_len(data_start + real)?;
    file.seek(SeekFrom::Start(4))?;
    file.write_all(&((data_start - 8 + real) as u32).to_le_bytes())?;
    file.seek(SeekFrom::Start(data_start - 4))?;
    file.write_all(&(real as u32).to_le_bytes())?;
    file.sync_all()?;
    drop(file);
    finish(path, real, block_align, sample_rate, true)
}

fn finish(
    path: &Path,
    data_bytes: u64,
    block_align: u64,
    sample_rate: u32,
    repaired: bool,
) -> io::Result<RecoveredFile> {
    let (size_bytes, sha256) = sha256_file(path)?;
    Ok(RecoveredFile {
        duration_ms: data_bytes / block_align * 1_000 / u64::from(sample_rate),
        size_bytes,
        sha256,
        repaired,
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The 44-byte header of an empty recording (as hound writes it for our format).
fn empty_header() -> [u8; WAV_HEADER_BYTES as usize] {
    let mut h = [0u8; WAV_HEADER_BYTES as usize];
    let byte_rate = SAMPLE_RATE_HZ * BLOCK_ALIGN as u32;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&36u32.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE_HZ.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&(BLOCK_ALIGN as u16).to_le_bytes());
    h[34..36].copy_from_slice(&BITS_PER_SAMPLE.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    // data size 0
    h
}

#[cfg(test)]
mod tests;
