# Shared helpers of the load scripts (sourced, not run). Bash; needs sipp, ss, perl (core only).
# Every process is started by these scripts, remembered by PID and ended by PID on exit.

set -euo pipefail

LOAD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LOAD_DIR/../.." && pwd)"
SCENARIOS="$REPO_DIR/tests/sipp"
CLK_TCK="$(getconf CLK_TCK)"
OWN_PIDS=()
WORK="$(mktemp -d -t trunkline-load-XXXXXX)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local p
  for p in "${OWN_PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true
  done
  if [ -n "${KEEP_WORK:-}" ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port (even) with PORT..PORT+LEN-1 free for UDP and TCP on 127.0.0.1, from the dynamic range.
free_ports() {
  local len="${1:-1}" try p used
  used=$(ss -Hlnua 2>/dev/null | awk '{n=split($4, a, ":"); print a[n]}'; ss -Hlnt 2>/dev/null | awk '{n=split($4, a, ":"); print a[n]}')
  for try in $(seq 1 200); do
    p=$(( (RANDOM * 32768 + RANDOM) % 20000 * 2 + 20000 ))
    [ $((p + len)) -le 65000 ] || continue
    if ! echo "$used" | awk -v lo="$p" -v hi="$((p + len - 1))" '$1 >= lo && $1 <= hi { found=1 } END { exit !found }'; then
      echo "$p"; return 0
    fi
  done
  die "no free ports"
}

# CPU ticks (user + system) of a PID, or empty if gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }
# Resident set size in kB of a PID, or empty.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# Samples a PID every 200 ms into FILE ("ticks rss_kb" per line) while it lives (background).
sample_pid() {
  local pid="$1" file="$2" t r
  ( while [ -d "/proc/$pid" ]; do
      t=$(cpu_ticks "$pid"); r=$(rss_kb "$pid")
      [ -n "$t" ] && echo "$t ${r:-0}" >> "$file"
      sleep 0.2
    done ) &
  OWN_PIDS+=("$!")
}
# Last CPU ticks and highest RSS recorded in a sample file.
last_ticks() { tail -n 1 "$1" 2>/dev/null | awk '{print $1+0}'; }
max_rss() { awk 'BEGIN{m=0} {if ($2>m) m=$2} END{print m+0}' "$1" 2>/dev/null || echo 0; }
# CPU percent of one core: ticks over seconds.
cpu_pct() { awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN{ if (s <= 0) print 0; else printf "%.1f", 100 * t / hz / s }'; }

# (rx_queue bytes, drops) of the UDP socket bound on 127.0.0.1:PORT, from /proc/net/udp.
udp_counters() {
  local hex line q
  hex=$(printf '0100007F:%04X' "$1")
  line=$(grep -m1 " $hex " /proc/net/udp || true)
  if [ -z "$line" ]; then echo "0 0"; return; fi
  read -r -a f <<< "$line"
  q=${f[4]#*:}
  echo "$((16#$q)) ${f[${#f[@]}-1]}"
}
# Samples udp_counters of PORT every 100 ms into FILE, keeping the largest values (background).
sample_udp() {
  local port="$1" file="$2"
  ( maxq=0; maxd=0
    while :; do
      read -r q d < <(udp_counters "$port")
      [ "$q" -gt "$maxq" ] && maxq=$q
      [ "$d" -gt "$maxd" ] && maxd=$d
      echo "$maxq $maxd" > "$file.tmp" && mv "$file.tmp" "$file"
      sleep 0.1
    done ) &
  OWN_PIDS+=("$!")
}

# Kernel bytes charged per queued datagram of SIZE bytes on loopback (perl, core modules).
udp_truesize() {
  perl -MIO::Socket::INET -e '
    my $rx = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "udp") or die;
    my $tx = IO::Socket::INET->new(Proto => "udp") or die;
    my $dst = pack_sockaddr_in($rx->sockport, inet_aton("127.0.0.1"));
    $tx->send("x" x $ARGV[0], 0, $dst) for 1..4;
    select(undef, undef, undef, 0.1);
    my $hex = sprintf("0100007F:%04X", $rx->sockport);
    open(my $f, "<", "/proc/net/udp") or die;
    while (<$f>) { my @c = split; if ($c[1] eq $hex) { my ($tq, $rq) = split(/:/, $c[4]); print int(hex($rq) / 4), "\n"; exit } }
    print "0\n";' "$1"
}

# Writes a pcap of SECONDS of A-law RTP (payload type 8, 20 ms, 160-byte payloads) to FILE, in the layout SIPp's play_pcap_audio reads (Ethernet/IPv4/UDP/RTP).
make_pcap() {
  perl -e '
    use strict; my ($secs, $out) = @ARGV; my $n = int($secs * 50);
    open(my $f, ">:raw", $out) or die "$out: $!";
    print $f pack("VvvVVVV", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1);
    # Payload: 160 bytes of A-law (a fixed pattern; its sound does not matter for load).
    my $payload = join("", map { chr((0xD5 + 16 * ($_ % 8)) & 0xff) } 0..159);
    for my $i (0 .. $n - 1) {
      my $rtp = pack("CCnNN", 0x80, 8, $i & 0xffff, ($i * 160) & 0xffffffff, 0x1234abcd) . $payload;
      my $udp = pack("nnnn", 6000, 6000, 8 + length($rtp), 0) . $rtp;
      my $ip = pack("CCnnnCCnNN", 0x45, 0, 20 + length($udp), 0, 0, 64, 17, 0, 0x7f000001, 0x7f000001) . $udp;
      my $eth = pack("H12H12n", "000000000000", "000000000000", 0x0800) . $ip;
      my $t = $i * 20000;
      print $f pack("VVVV", int($t / 1e6), $t % 1e6, length($eth), length($eth)), $eth;
    }
    close($f);' "$1" "$2"
}

# trunkline release binary: $TRUNKLINE_BIN, else built with cargo.
trunkline_bin() {
  if [ -n "${TRUNKLINE_BIN:-}" ]; then echo "$TRUNKLINE_BIN"; return; fi
  local target="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
  if [ ! -x "$target/release/trunkline" ] || [ -n "${REBUILD:-}" ]; then
    log "building the release binary"
    (cd "$REPO_DIR" && cargo build --release --quiet --bin trunkline) >&2
  fi
  echo "$target/release/trunkline"
}

# HTTP status of GET http://127.0.0.1:PORT/PATH (bash /dev/tcp; no curl needed).
http_status() {
  local port="$1" path="$2" line
  { exec 9<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || { echo 0; return; }
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&9
  IFS= read -r -t 2 line <&9 || line=""
  exec 9<&- 9>&-
  echo "$line" | awk '{print $2+0}'
}

# Starts trunkline with an echo route on loopback ports: start_trunkline [RTP_PORTS [TRUNK_ADDR]].
# With TRUNK_ADDR (ip:port), one trunk `load` points there (any destination, no concurrency or
# rate cap worth the name). Sets SERVER_PID, SERVER_SIP_PORT, SERVER_HTTP_PORT and SERVER_ARGS
# (the --config/--data arguments, for `trunkline apikey create` on the same database).
start_trunkline() {
  local cfg="$WORK/sip-config" data="$WORK/data" http rtp_min rtp_len="${1:-2000}" trunk="${2:-}"
  mkdir -p "$cfg/prompts" "$data"
  SERVER_SIP_PORT=$(free_ports 1); http=$(free_ports 1); rtp_min=$(free_ports "$rtp_len")
  SERVER_HTTP_PORT=$http
  SERVER_ARGS=(--config "$cfg" --data "$data")
  cat > "$cfg/numbers.toml" <<TOML
[[number]]
number = "echo"
route = { action = "echo" }
TOML
  : > "$cfg/trunks.toml"
  if [ -n "$trunk" ]; then
    cat > "$cfg/trunks.toml" <<TOML
[[trunk]]
name = "load"
address = "$trunk"
transport = "udp"
caller_id = "+15550100000"
max_concurrent = 100000
max_cps = 10000
allowed_prefixes = ["*"]
TOML
  fi
  cat > "$cfg/server.toml" <<TOML
[calls]
max_calls = 100000
TOML
  cp "$REPO_DIR/sip-config/prompts/tone.wav" "$cfg/prompts/" 2>/dev/null || true
  local bin; bin=$(trunkline_bin)
  RUST_LOG="${RUST_LOG:-warn}" "$bin" serve --config "$cfg" --data "$data" \
    --sip "127.0.0.1:$SERVER_SIP_PORT" --http "127.0.0.1:$http" \
    --rtp-ports "$rtp_min-$((rtp_min + rtp_len - 1))" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  OWN_PIDS+=("$SERVER_PID")
  local i
  for i in $(seq 1 150); do
    [ "$(http_status "$http" /healthz)" = 200 ] && { log "trunkline up (pid $SERVER_PID, sip $SERVER_SIP_PORT)"; return 0; }
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; die "trunkline exited"; }
    sleep 0.2
  done
  tail -20 "$WORK/server.log" >&2
  die "trunkline did not answer /healthz"
}

# Starts a SIPp far end (uas_load.xml, optionally -rtp_echo) as the reference server; sets
# SERVER_PID, SERVER_SIP_PORT, SERVER_MP (its media port).
start_sipp_uas() {
  local echo_flag="${1:-}" mp
  SERVER_SIP_PORT=$(free_ports 1); mp=$(free_ports 4); SERVER_MP=$mp
  (cd "$WORK" && exec sipp -sf "$SCENARIOS/uas_load.xml" -i 127.0.0.1 -p "$SERVER_SIP_PORT" -mp "$mp" \
      $echo_flag -buff_size 8388608 -nostdin -trace_err -error_file "$WORK/uas_errors.log" \
      > "$WORK/uas.out" 2>&1) &
  SERVER_PID=$!
  OWN_PIDS+=("$SERVER_PID")
  sleep 0.5
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/uas.out" >&2; die "sipp far end exited"; }
  log "sipp far end up (pid $SERVER_PID, sip $SERVER_SIP_PORT)"
}

# Value of a column of the last row of a SIPp stat CSV.
stat_col() {
  awk -F';' -v c="$2" 'NR==1 { for (i=1;i<=NF;i++) if ($i==c) k=i; next } NF>1 { v=$k } END { print v+0 }' "$1"
}

# Waits up to SECONDS for a PID to exit; kills it after that. Returns its exit code (or 137).
wait_pid() {
  local pid="$1" secs="$2" i
  for i in $(seq 1 $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still running after ${secs}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0; wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }

# Last errors of a SIPp error log, one event per line (SIPp writes them without newlines).
show_errors() {
  [ -f "$1" ] || return 0
  tail -c 2000 "$1" | sed 's/\(20[0-9][0-9]-[01][0-9]-[0-3][0-9]\t\)/\n\1/g' | tail -n 8 >&2
  echo >&2
}
