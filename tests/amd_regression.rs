//! AMD regression test: generates the small labelled corpus (`scripts/amd-corpus.sh --small`:
//! every category, clean and impaired) and runs the detector over it through the library,
//! checking the figures of issue 3 with a small-sample margin. Needs espeak-ng, sox and
//! python3: without them the test says so and passes, except under `CI=true`, where it fails.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use trunkline::amd::AmdParams;
use trunkline::amd::cli::analyze_file;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

struct Label {
    class: String,
    beep_onset_ms: Option<i64>,
    beep_end_ms: Option<i64>,
    utterance_end_ms: Option<i64>,
}

fn labels(dir: &Path) -> HashMap<String, Label> {
    let text = std::fs::read_to_string(dir.join("labels.csv")).expect("labels.csv");
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let num = |s: &str| s.parse::<i64>().ok();
        out.insert(
            c[0].to_string(),
            Label {
                class: c[1].to_string(),
                beep_onset_ms: num(c[2]),
                utterance_end_ms: num(c[3]),
                beep_end_ms: num(c[5]),
            },
        );
    }
    out
}

#[test]
fn amd_small_corpus_meets_thresholds() {
    let missing: Vec<&str> = ["espeak-ng", "sox", "python3"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        let msg = format!("amd regression test needs {missing:?} (scripts/test.sh installs them)");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/amd-corpus.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .arg("--small")
        .status()
        .expect("run amd-corpus.sh");
    assert!(status.success(), "amd-corpus.sh failed");
    let labels = labels(dir.path());
    assert!(
        labels.len() >= 50,
        "small corpus has {} files",
        labels.len()
    );

    let (mut n, mut ok) = (0, 0);
    let (mut humans, mut h2m, mut machines, mut m2h) = (0, 0, 0, 0);
    let (mut beeps, mut beep_ok, mut no_beep, mut false_beep, mut early_drop) = (0, 0, 0, 0, 0);
    let mut human_latency = Vec::new();
    let mut report = String::new();
    for (name, label) in &labels {
        let r = analyze_file(&dir.path().join(name), AmdParams::default(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let class = r.class();
        n += 1;
        ok += usize::from(class == label.class);
        if class != label.class {
            report += &format!(
                "\n  {name}: truth {} got {class} ({:?})",
                label.class, r.verdict
            );
        }
        match label.class.as_str() {
            "human" => {
                humans += 1;
                h2m += usize::from(class == "machine");
                if let (Some(end), Some(d), "human") = (label.utterance_end_ms, r.decision, class) {
                    human_latency.push(d.at.as_millis() as i64 - end);
                }
            }
            "machine" => {
                machines += 1;
                m2h += usize::from(class == "human");
            }
            _ => {}
        }
        let beep_ms = r.verdict.beep_onset.map(|d| d.as_millis() as i64);
        match label.beep_onset_ms {
            Some(onset) => {
                beeps += 1;
                beep_ok += usize::from(beep_ms.is_some_and(|b| (b - onset).abs() <= 100));
                if let (Some(drop), Some(end)) = (r.verdict.message_start, label.beep_end_ms) {
                    early_drop += usize::from((drop.as_millis() as i64) < end);
                }
            }
            None => {
                no_beep += 1;
                false_beep += usize::from(beep_ms.is_some());
            }
        }
    }
    human_latency.sort_unstable();
    let median = human_latency
        .get(human_latency.len() / 2)
        .copied()
        .unwrap_or(i64::MAX);
    let summary = format!(
        "accuracy {ok}/{n}, human->machine {h2m}/{humans}, machine->human {m2h}/{machines}, \
         beeps within 100 ms {beep_ok}/{beeps}, false beeps {false_beep}/{no_beep}, \
         early drops {early_drop}, human latency median {median} ms{report}"
    );
    eprintln!("{summary}");
    // Thresholds: issue 3's goals, loosened by one file where the small sample makes a single
    // miss worth several percent.
    assert!(ok * 100 >= n * 95, "{summary}");
    assert!(h2m <= 1, "{summary}");
    assert!(m2h <= 1, "{summary}");
    assert!(beep_ok * 100 >= beeps * 90, "{summary}");
    assert!(false_beep <= 1, "{summary}");
    assert_eq!(early_drop, 0, "{summary}");
    assert!(median <= 700, "{summary}");
}
