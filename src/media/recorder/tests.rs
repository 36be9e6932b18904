use super::*;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// A frame whose every sample encodes (channel, frame index): left = +i, right = -i - 1, so
/// a swap or a shift between channels shows.
fn pair(i: usize) -> (Frame, Frame) {
    let v = (i % 30_000) as i16;
    ([v; FRAME_SAMPLES], [-v - 1; FRAME_SAMPLES])
}

/// Pushes frame pair `i`, then waits until the recording has a free buffer again, as the 20 ms
/// between ticks would let the writer catch up: no chunk is dropped for want of a buffer.
fn push_one(rec: &mut Recorder, id: &Uuid, i: usize) {
    let (l, r) = pair(i);
    assert!(rec.push(id, &l, &r));
    while rec.spares.is_empty() {
        match rec.returns_rx.recv() {
            Ok(b) => rec.spares.push(b),
            Err(_) => break,
        }
    }
}

fn spawn() -> (RecorderHandle, UnboundedReceiver<RecorderReport>) {
    let (tx, rx) = unbounded_channel();
    (RecorderThread::spawn(tx), rx)
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("open with hound");
    let spec = r.spec();
    let s = r.samples::<i16>().map(|s| s.expect("sample")).collect();
    (spec, s)
}

fn sha_of(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

#[test]
fn relative_path_is_dated() {
    let id = Uuid::nil();
    let at = DateTime::parse_from_rfc3339("2026-03-07T23:59:59Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        relative_path(id, at),
        PathBuf::from(format!("2026/03/07/{id}.wav"))
    );
}

#[test]
fn frames_are_aligned_in_both_channels_and_the_report_matches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    // The recorder creates the dated directories.
    let path = dir.path().join("2026/01/02").join(format!("{id}.wav"));
    assert!(rec.start(id, path.clone()));
    assert!(!rec.start(id, path.clone()), "a second start is refused");
    // Not a whole number of chunks: the partial chunk is written at stop.
    let n = 3 * CHUNK_FRAMES + 7;
    for i in 0..n {
        push_one(&mut rec, &id, i);
        rec.poll();
    }
    assert!(rec.stop(&id));
    assert!(!rec.is_recording(&id));
    let report = reports.blocking_recv().expect("report");

    let (spec, samples) = read_wav(&path);
    assert_eq!(spec, wav_spec());
    assert_eq!(samples.len(), n * FRAME_SAMPLES * 2);
    for (k, lr) in samples.chunks_exact(2).enumerate() {
        let i = k / FRAME_SAMPLES;
        let (l, r) = pair(i);
        assert_eq!((lr[0], lr[1]), (l[0], r[0]), "sample {k} of frame {i}");
    }
    let size = fs::metadata(&path).unwrap().len();
    assert_eq!(size, WAV_HEADER_BYTES + (n * FRAME_SAMPLES * 4) as u64);
    assert_eq!(
        report,
        RecorderReport {
            id,
            path: path.clone(),
            frames: n as u64,
            duration_ms: n as u64 * 20,
            size_bytes: size,
            sha256: Some(sha_of(&path)),
            dropped_frames: 0,
            status: ReportStatus::Completed,
        }
    );
    drop(rec);
    handle.join();
}

#[test]
fn hound_writes_the_canonical_44_byte_header_for_our_format() {
    // repair() relies on locating `data`, but the recorder's own files have it at byte 36.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.wav");
    let mut w = hound::WavWriter::create(&path, wav_spec()).unwrap();
    w.write_sample(1i16).unwrap();
    w.write_sample(2i16).unwrap();
    w.finalize().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, WAV_HEADER_BYTES + 4);
    assert_eq!(&bytes[36..40], b"data");
    let mut empty = empty_header().to_vec();
    empty[4..8].copy_from_slice(&40u32.to_le_bytes());
    empty[40..44].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(&bytes[..44], &empty[..], "our empty header is hound's");
}

#[test]
fn paused_frames_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    let path = dir.path().join("p.wav");
    rec.start(id, path.clone());
    let mut expected = Vec::new();
    for i in 0..100 {
        if i == 30 {
            assert!(rec.pause(&id));
            assert!(rec.is_paused(&id));
        }
        if i == 70 {
            assert!(rec.resume(&id));
        }
        push_one(&mut rec, &id, i);
        if !(30..70).contains(&i) {
            expected.push(i);
        }
    }
    rec.stop(&id);
    let report = reports.blocking_recv().unwrap();
    assert_eq!(report.frames, 60);
    assert_eq!(report.duration_ms, 1_200);
    let (_, samples) = read_wav(&path);
    let frames: Vec<usize> = samples
        .chunks_exact(2 * FRAME_SAMPLES)
        .map(|f| f[0] as usize)
        .collect();
    assert_eq!(frames, expected);
    assert!(!rec.pause(&Uuid::new_v4()), "unknown id");
}

#[test]
fn a_crash_mid_recording_is_repaired_with_every_flushed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    let path = dir.path().join("c.wav");
    rec.start(id, path.clone());
    let flushed = 4 * CHUNK_FRAMES;
    // A chunk is flushed once the writer has handed its buffer back, which push_one waits for.
    for i in 0..flushed {
        push_one(&mut rec, &id, i);
    }
    // The file as a kill -9 leaves it: the flushed chunks, then part of the next chunk that
    // the BufWriter had passed on (more audio than the header counts, ending mid-sample).
    let crashed = dir.path().join("crashed.wav");
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(
        bytes.len() as u64,
        WAV_HEADER_BYTES + (flushed * FRAME_SAMPLES * 4) as u64,
        "the file on disk is complete at a chunk boundary"
    );
    read_wav(&path); // and valid as it stands
    bytes.extend(std::iter::repeat_n(7u8, 1_000 * 4 + 3));
    fs::write(&crashed, &bytes).unwrap();

    let recovered = repair(&crashed).unwrap();
    assert!(recovered.repaired);
    let (spec, samples) = read_wav(&crashed);
    assert_eq!(spec, wav_spec());
    assert_eq!(samples.len(), flushed * FRAME_SAMPLES * 2 + 2_000);
    for (k, lr) in samples[..flushed * FRAME_SAMPLES * 2]
        .chunks_exact(2)
        .enumerate()
    {
        let (l, r) = pair(k / FRAME_SAMPLES);
        assert_eq!((lr[0], lr[1]), (l[0], r[0]));
    }
    let size = fs::metadata(&crashed).unwrap().len();
    assert_eq!(size, bytes.len() as u64 - 3, "partial sample frame cut");
    assert_eq!(
        recovered,
        RecoveredFile {
            duration_ms: (flushed as u64 * 20) + 125,
            size_bytes: size,
            sha256: sha_of(&crashed),
            repaired: true,
        }
    );
    // Repairing again changes nothing.
    let again = repair(&crashed).unwrap();
    assert!(!again.repaired);
    assert_eq!(again.sha256, recovered.sha256);

    rec.stop(&id);
    assert_eq!(
        reports.blocking_recv().unwrap().status,
        ReportStatus::Completed
    );
}

#[test]
fn a_header_never_flushed_counts_the_data_on_disk() {
    // Crash before the first flush but after the BufWriter passed header + audio on: the
    // header says 0 bytes of data.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.wav");
    let mut bytes = empty_header().to_vec();
    for i in 0..1_000i16 {
        bytes.extend(i.to_le_bytes());
        bytes.extend((-i).to_le_bytes());
    }
    fs::write(&path, &bytes).unwrap();
    let rec = repair(&path).unwrap();
    assert_eq!(rec.duration_ms, 125);
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), 2_000);
    assert_eq!(&samples[..4], &[0, 0, 1, -1]);
}

#[test]
fn a_file_shorter_than_a_header_gets_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 3, 43] {
        let path = dir.path().join(format!("s{len}.wav"));
        fs::write(&path, &b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x40\x1f\0\0\0}\0\0\x04\0\x10\0data\0\0\0\0"[..len]).unwrap();
        let rec = repair(&path).unwrap();
        assert_eq!((rec.duration_ms, rec.size_bytes), (0, WAV_HEADER_BYTES));
        let (spec, samples) = read_wav(&path);
        assert_eq!(spec, wav_spec());
        assert!(samples.is_empty());
    }
}

#[test]
fn repair_finds_data_after_an_extensible_fmt_chunk() {
    // hound writes WAVE_FORMAT_EXTENSIBLE for more than 2 channels: data sits at byte 60.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.wav");
    let spec = hound::WavSpec {
        channels: 3,
        ..wav_spec()
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in 0..300i16 {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[60..64], b"data");
    bytes[64..68].copy_from_slice(&0u32.to_le_bytes()); // as if never flushed
    bytes.extend([1, 2, 3, 4, 5]); // less than a 6-byte sample frame
    fs::write(&path, &bytes).unwrap();
    let rec = repair(&path).unwrap();
    assert!(rec.repaired);
    let (got, samples) = read_wav(&path);
    assert_eq!(got.channels, 3);
    assert_eq!(samples, (0..300).collect::<Vec<i16>>());
}

#[test]
fn repair_refuses_what_is_not_a_wav_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.wav");
    let garbage: Vec<u8> = (0..200u8).collect();
    fs::write(&path, &garbage).unwrap();
    let err = repair(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(fs::read(&path).unwrap(), garbage, "left untouched");
    // A RIFF header whose chunk sizes run off the end: no data chunk, no panic.
    let mut bad = b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff".to_vec();
    bad.resize(64, 0);
    fs::write(&path, &bad).unwrap();
    assert_eq!(
        repair(&path).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert!(repair(&dir.path().join("missing.wav")).is_err());
}

#[test]
fn a_path_that_cannot_be_created_gives_one_failed_report() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    let blocker = dir.path().join("2026");
    fs::write(&blocker, b"not a directory").unwrap();
    let path = blocker.join("01/01/r.wav");
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    rec.start(id, path.clone());
    for i in 0..(2 * CHUNK_FRAMES + 3) {
        push_one(&mut rec, &id, i);
    }
    rec.stop(&id);
    drop(rec);
    handle.join();
    let report = reports.blocking_recv().unwrap();
    assert_eq!(report.id, id);
    assert_eq!(report.path, path);
    assert_eq!((report.frames, report.size_bytes), (0, 0));
    assert_eq!(report.sha256, None);
    assert!(
        matches!(&report.status, ReportStatus::Failed { reason } if reason.starts_with("cannot create")),
        "{report:?}"
    );
    assert!(reports.blocking_recv().is_none(), "exactly one report");
}

#[test]
fn abort_keeps_the_audio_and_reports_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    let path = dir.path().join("a.wav");
    rec.start(id, path.clone());
    for i in 0..10 {
        let (l, r) = pair(i);
        rec.push(&id, &l, &r);
    }
    assert!(rec.abort(&id, "call failed"));
    assert!(!rec.stop(&id), "already stopping");
    let report = reports.blocking_recv().unwrap();
    assert_eq!(
        report.status,
        ReportStatus::Failed {
            reason: "call failed".into()
        }
    );
    assert_eq!(report.frames, 10);
    assert_eq!(read_wav(&path).1.len(), 10 * FRAME_SAMPLES * 2);
}

#[test]
fn a_full_channel_drops_and_counts_chunks_and_never_blocks() {
    // No writer thread: the channel holds one message and nobody reads it.
    let (tx, rx) = mpsc::sync_channel(1);
    let mut rec = Recorder::new(tx);
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    rec.start(a, PathBuf::from("a.wav")); // takes the only slot
    rec.start(b, PathBuf::from("b.wav")); // open pending
    for i in 0..3 * CHUNK_FRAMES {
        let (l, r) = pair(i);
        rec.push(&a, &l, &r);
        rec.push(&b, &l, &r);
        rec.poll();
    }
    assert_eq!(rec.dropped_chunks(), 6);
    // Stop both: the closes wait for room, they are not lost.
    rec.stop(&a);
    rec.stop(&b);
    assert_eq!(rec.len(), 2);
    let mut got = Vec::new();
    for _ in 0..10 {
        if let Ok(m) = rx.try_recv() {
            got.push(m);
        }
        rec.poll();
    }
    assert!(rec.is_empty());
    // Per recording, in order (the order between recordings is not specified).
    let of = |want: Uuid| -> Vec<(&str, u64)> {
        got.iter()
            .filter_map(|m| match m {
                WriterMsg::Open { id, .. } if *id == want => Some(("open", 0)),
                WriterMsg::Chunk { id, .. } if *id == want => Some(("chunk", 0)),
                WriterMsg::Close {
                    id, dropped_frames, ..
                } if *id == want => Some(("close", *dropped_frames)),
                _ => None,
            })
            .collect()
    };
    let dropped = 3 * CHUNK_FRAMES as u64;
    assert_eq!(of(a), vec![("open", 0), ("close", dropped)]);
    assert_eq!(of(b), vec![("open", 0), ("close", dropped)]);
}

#[test]
fn buffers_come_back_and_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    rec.start(id, dir.path().join("b.wav"));
    for i in 0..40 * CHUNK_FRAMES {
        push_one(&mut rec, &id, i);
    }
    assert_eq!(rec.buffers, 2, "no buffer allocated after start");
    assert_eq!(rec.dropped_chunks(), 0);
    rec.stop(&id);
    assert_eq!(reports.blocking_recv().unwrap().frames, 40 * 25);
}

#[test]
fn each_recording_brings_a_spare_buffer() {
    // Every recording can hand over a full chunk on the same tick without waiting for the
    // writer to return a buffer.
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        rec.start(*id, dir.path().join(format!("{id}.wav")));
    }
    assert_eq!((rec.buffers, rec.free_buffers()), (6, 3));
    for i in 0..CHUNK_FRAMES {
        let (l, r) = pair(i);
        for id in &ids {
            rec.push(id, &l, &r);
        }
    }
    assert_eq!(rec.dropped_chunks(), 0);
    for id in &ids {
        rec.stop(id);
    }
    for _ in &ids {
        assert_eq!(reports.blocking_recv().unwrap().frames, CHUNK_FRAMES as u64);
    }
}

#[test]
fn dropping_the_recorder_closes_its_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut reports) = spawn();
    let mut rec = handle.recorder();
    let id = Uuid::new_v4();
    rec.start(id, dir.path().join("d.wav"));
    let (l, r) = pair(1);
    rec.push(&id, &l, &r);
    drop(rec);
    handle.join();
    let report = reports.blocking_recv().unwrap();
    assert_eq!((report.frames, report.status), (1, ReportStatus::Completed));
}
