//! `trunkline amd FILE...` end to end: WAV formats and rates, the JSON line, bad files.

use std::path::Path;
use std::process::Command;

/// A "Hello?"-like burst (harmonic voice, 600 ms) after 400 ms of silence, then 3 s of silence.
fn hello(rate: u32) -> Vec<f32> {
    let n = |s: f32| (s * rate as f32) as usize;
    let mut out = vec![0.0f32; n(0.4)];
    for i in 0..n(0.6) {
        let t = i as f32 / rate as f32;
        let env = (std::f32::consts::PI * t / 0.6).sin();
        let f0 = 180.0 - 40.0 * t;
        let v: f32 = (1..12)
            .map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32)
            .sum();
        out.push(0.2 * env * v);
    }
    out.extend(vec![0.0; n(3.0)]);
    out
}

fn write(path: &Path, spec: hound::WavSpec, samples: &[f32]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        for _ in 0..spec.channels {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(s).unwrap(),
                (_, 16) => w.write_sample((s * 32_767.0) as i16).unwrap(),
                (_, bits) => w
                    .write_sample((s * ((1i64 << (bits - 1)) - 1) as f32) as i32)
                    .unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn formats_rates_json_lines_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("pcm16_8k.wav", 8_000, 1, 16, hound::SampleFormat::Int),
        (
            "pcm24_16k_stereo.wav",
            16_000,
            2,
            24,
            hound::SampleFormat::Int,
        ),
        ("float_44k.wav", 44_100, 1, 32, hound::SampleFormat::Float),
        ("pcm32_48k.wav", 48_000, 1, 32, hound::SampleFormat::Int),
    ];
    let mut args = Vec::new();
    for (name, rate, channels, bits, format) in cases {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let p = dir.path().join(name);
        write(&p, spec, &hello(rate));
        args.push(p);
    }
    let bad = dir.path().join("not_a_wav.wav");
    std::fs::write(&bad, b"this is not RIFF").unwrap();
    args.insert(1, bad);
    args.push(dir.path().join("missing.wav"));

    let out = Command::new(env!("CARGO_BIN_EXE_trunkline"))
        .arg("amd")
        .args(["--g711", "alaw"])
        .args(&args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a bad file makes the exit code non-zero"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), args.len(), "{stdout}");
    for ((line, raw), path) in lines.iter().zip(stdout.lines()).zip(&args) {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(line["file"].as_str().unwrap().ends_with(name));
        if name == "not_a_wav.wav" || name == "missing.wav" {
            assert!(line["error"].is_string(), "{line}");
            assert!(stderr.contains(name), "{stderr}");
            continue;
        }
        // The fields, in issue 3's order.
        let keys = [
            "file",
            "class",
            "answered_by",
            "confidence",
            "decision_ms",
            "beep_ms",
            "drop_ms",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| {
                raw.find(&format!("\"{k}\":"))
                    .unwrap_or_else(|| panic!("{k} in {raw}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{raw}");
        assert_eq!(line.as_object().unwrap().len(), keys.len());
        assert_eq!(line["class"], "human", "{name}: {line}");
        assert_eq!(line["answered_by"], "human");
        let decision = line["decision_ms"].as_u64().unwrap();
        assert!((1_300..=2_000).contains(&decision), "{name}: {line}");
        assert!(line["beep_ms"].is_null() && line["drop_ms"].is_null());
    }
}

#[test]
fn out_of_range_parameter_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkline"))
        .args(["amd", "--timeout-ms", "100", "x.wav"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("timeout_ms"), "{stderr}");
}
