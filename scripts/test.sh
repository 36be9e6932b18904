#!/usr/bin/env bash
# The README's test command: installs missing test peers, makes sure PostgreSQL is reachable,
# then runs the lint gate and the whole suite (unit, simulated-time, loopback with real peers,
# SQLite and PostgreSQL). Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- test peers -------------------------------------------------------------------------------
need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip)
command -v sox >/dev/null || need+=(sox)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! pg_up; then
  log "starting PostgreSQL"
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if pg_up; then
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
  log "PostgreSQL tests use $DATABASE_URL"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable and CI=true: PostgreSQL tests must not be skipped" >&2
  exit 1
fi
# Integration tests read the PostgreSQL URL from here; the server itself is given explicit URLs.
export TRUNKLINE_TEST_PG="${DATABASE_URL:-}"
unset DATABASE_URL

# --- lint gate --------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
log "cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps --quiet

# --- the suite --------------------------------------------------------------------------------
log "cargo test (integration suites on SQLite; store suites on SQLite and PostgreSQL)"
cargo test --locked --all-targets
cargo test --locked --doc
# The integration suites (tests/it_*.rs: the real binary with real peers) once more, each
# server on a fresh PostgreSQL database.
if [ -n "$TRUNKLINE_TEST_PG" ]; then
  its=()
  for f in tests/it_*.rs; do its+=(--test "$(basename "$f" .rs)"); done
  log "cargo test ${its[*]} on PostgreSQL"
  TRUNKLINE_IT_DB=postgres cargo test --locked "${its[@]}"
fi
