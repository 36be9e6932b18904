//! Prompt decoding of every supported format from the committed fixtures
//! (`tests/fixtures/prompts/`, made with sox, see its README): pitch and length after the
//! conversion to 8 kHz mono, and no panic on truncated, damaged or random input.

use proptest::prelude::*;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;
use trunkline::media::player::{Prompt, PromptError};

const RATE: f64 = 8_000.0;

/// (file, extension hint, tone in Hz).
const FIXTURES: &[(&str, &str, f64)] = &[
    ("tone440_16k_stereo.wav", "wav", 440.0),
    ("tone1000_44k.mp3", "mp3", 1_000.0),
    ("tone660_48k.flac", "flac", 660.0),
    ("tone880_22k.ogg", "ogg", 880.0),
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prompts")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// Frequency from the zero crossings of the middle of the signal (edges skipped: encoder and
/// resampler ramps), each crossing placed by linear interpolation.
fn pitch_hz(s: &[i16]) -> f64 {
    let mid = &s[s.len() / 10..s.len() * 9 / 10];
    let mut crossings = Vec::new();
    for (i, w) in mid.windows(2).enumerate() {
        let (a, b) = (f64::from(w[0]), f64::from(w[1]));
        if (a < 0.0) != (b < 0.0) {
            crossings.push(i as f64 + a / (a - b));
        }
    }
    assert!(
        crossings.len() > 10,
        "no tone: {} crossings",
        crossings.len()
    );
    let span = (crossings[crossings.len() - 1] - crossings[0]) / RATE;
    (crossings.len() - 1) as f64 / 2.0 / span
}

/// Checks pitch (±10 Hz) and length (±40 ms) of a 1 s tone. The audible span (first to last
/// sample above a tenth of the peak) is checked for every format. The total length is checked
/// too, except that an MP3 may be up to 70 ms long: sox writes no LAME/Xing gapless header, so
/// the decoder cannot trim the encoder's delay (1105 samples at 44.1 kHz) and the padding of the
/// last 1152-sample frame (1.045 s for the fixture).
fn check_tone(p: &Prompt, want_hz: f64, mp3: bool) {
    let hz = pitch_hz(&p.samples);
    assert!(
        (hz - want_hz).abs() <= 10.0,
        "{}: {hz:.1} Hz, want {want_hz}",
        p.name
    );
    let peak = p.samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 8_000, "{}: peak {peak}", p.name);
    let loud = |s: &i16| s.unsigned_abs() > peak / 10;
    let first = p.samples.iter().position(loud).unwrap();
    let last = p.samples.iter().rposition(loud).unwrap();
    let audible = (last - first + 1) as f64 / RATE;
    assert!(
        (audible - 1.0).abs() <= 0.040,
        "{}: audible {audible:.3} s",
        p.name
    );
    let secs = p.samples.len() as f64 / RATE;
    let max = if mp3 { 1.070 } else { 1.040 };
    assert!((0.960..=max).contains(&secs), "{}: {secs:.3} s", p.name);
}

#[test]
fn every_fixture_decodes_to_8k_mono_with_its_pitch_and_length() {
    for &(file, ext, hz) in FIXTURES {
        let p = Prompt::from_bytes(file, &fixture(file), Some(ext))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        check_tone(&p, hz, file.ends_with(".mp3"));
    }
}

#[test]
fn every_fixture_loads_from_its_path() {
    for &(file, _, hz) in FIXTURES {
        let p = Prompt::load("x", &fixture_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        check_tone(&p, hz, file.ends_with(".mp3"));
    }
}

#[test]
fn the_content_decides_not_the_extension() {
    // A wrong hint (or none) still decodes: the probe reads the content.
    for &(file, _, hz) in FIXTURES {
        for hint in [None, Some("wav"), Some("mp3"), Some("txt")] {
            let p = Prompt::from_bytes(file, &fixture(file), hint)
                .unwrap_or_else(|e| panic!("{file} with hint {hint:?}: {e}"));
            check_tone(&p, hz, file.ends_with(".mp3"));
        }
    }
}

#[test]
fn a_missing_file_is_a_decode_error_naming_it() {
    let path = fixture_path("no_such_prompt.mp3");
    match Prompt::load("nope", &path) {
        Err(PromptError::Decode { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("cannot open"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts panics on this thread (even ones caught inside the decoder), so the tests below fail
/// if a decoder panics rather than returning an error; the previous hook still prints them.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Decodes and asserts no panic happened; returns whether it decoded.
fn decode_no_panic(what: &str, bytes: &[u8], hint: Option<&str>) -> bool {
    count_panics();
    let before = PANICS.with(Cell::get);
    let r = Prompt::from_bytes(what, bytes, hint);
    assert_eq!(
        PANICS.with(Cell::get),
        before,
        "{what}: the decoder panicked"
    );
    if let Ok(p) = &r {
        assert!(!p.samples.is_empty(), "{what}: Ok but empty");
    }
    r.is_ok()
}

#[test]
fn truncated_fixtures_decode_or_fail_cleanly() {
    for &(file, ext, _) in FIXTURES {
        let bytes = fixture(file);
        let n = bytes.len();
        let mut cuts = vec![0, 1, 4, 8, 12, 16, 36, 44, 64, 100, 200, 500, 1_000];
        cuts.extend((1..20).map(|k| n * k / 20));
        cuts.extend([n - 100, n - 10, n - 1]);
        for cut in cuts.into_iter().filter(|&c| c < n) {
            decode_no_panic(&format!("{file}[..{cut}]"), &bytes[..cut], Some(ext));
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for len in [0, 1, 3, 16, 100, 1_000, 10_000] {
        for hint in [None, Some("wav"), Some("mp3"), Some("flac"), Some("ogg")] {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            decode_no_panic(&format!("random {len}"), &bytes, hint);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Garbage after a valid magic number, so each demuxer gets past its probe.
    #[test]
    fn garbage_behind_a_magic_never_panics(
        magic in prop::sample::select(vec![
            &b"RIFF\x24\x08\x00\x00WAVEfmt "[..], &b"ID3\x03\x00"[..], &b"\xff\xfb\x90\x64"[..],
            &b"fLaC"[..], &b"OggS\x00\x02"[..],
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..4_096),
        hint in prop::sample::select(vec!["wav", "mp3", "flac", "ogg", "oga"]),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&tail);
        decode_no_panic("magic + garbage", &bytes, Some(hint));
    }

    /// A fixture with a few bytes overwritten at random places.
    #[test]
    fn damaged_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let (file, ext, _) = FIXTURES[which];
        let mut bytes = fixture(file);
        let n = bytes.len();
        for (at, b) in edits {
            bytes[at.index(n)] = b;
        }
        decode_no_panic(&format!("damaged {file}"), &bytes, Some(ext));
    }
}
