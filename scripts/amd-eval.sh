#!/usr/bin/env bash
# Scores trunkline's answering-machine detector on a corpus made by scripts/amd-corpus.sh.
#
#   scripts/amd-eval.sh CORPUS_DIR [extra `trunkline amd` flags...]
#
# Builds the release binary if needed (TRUNKLINE_BIN overrides it), runs `trunkline amd` over
# every WAV in CORPUS_DIR (default mode detect_message_end) and prints the figures of
# scripts/amd_eval.py, ending with one `AMD_EVAL_SUMMARY {...}` line.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 CORPUS_DIR [trunkline amd flags...]" >&2
  exit 2
fi
corpus="$1"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
if [ ! -f "$corpus/labels.csv" ]; then
  echo "amd-eval: $corpus/labels.csv not found (make a corpus with scripts/amd-corpus.sh)" >&2
  exit 1
fi
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
if [ -n "${TRUNKLINE_BIN:-}" ]; then
  run=("$TRUNKLINE_BIN")
else
  # `cargo run` rebuilds when the binary in a shared target directory is not this tree's.
  run=(cargo run --release --quiet --manifest-path "$root/Cargo.toml" --bin trunkline --)
fi
# One process for the whole corpus; a file that fails still gives a JSON line.
find "$corpus" -maxdepth 1 -name '*.wav' -print0 | sort -z \
  | xargs -0 "${run[@]}" amd "$@" >"$results" || true
python3 "$here/amd_eval.py" "$corpus/labels.csv" "$results"
