#!/usr/bin/env bash
# Generates trunkline's labelled AMD evaluation corpus, deterministically (fixed seed).
#
#   scripts/amd-corpus.sh OUT_DIR [--small] [--seed N] [--babble]
#
# Needs espeak-ng, sox and python3 (standard library only). Writes OUT_DIR/*.wav (8 kHz mono
# 16-bit PCM) and OUT_DIR/labels.csv; see scripts/amd_corpus.py for the categories, variants
# (clean, g711, impaired) and label columns. --small writes one clip per category, clean and
# impaired only, for the regression test. --seed N draws another corpus of the same design
# (the detector was tuned on the default seed; another seed is a held-out check). --babble adds
# people answering in a busy room (other talkers 12-20 dB under them), a harder set kept out
# of the default corpus and reported apart in BENCHMARKS.md.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [--small] [--seed N]" >&2
  exit 2
fi
for tool in espeak-ng sox python3; do
  command -v "$tool" >/dev/null || { echo "amd-corpus: $tool is required" >&2; exit 1; }
done
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$here/amd_corpus.py" "$@"
