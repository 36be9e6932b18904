#!/usr/bin/env bash
# Recorded two-party bridges: trunkline (its own release binary on loopback ports) dials 2N calls
# out through a trunk to a SIPp far end (tests/sipp/uas_answer.xml, playing A-law RTP at 50
# packets/s from a pcap made here), pairs them with POST /v1/calls/{a}/bridge, records each
# bridge (POST /v1/conferences/{id}/recordings), holds T seconds, hangs up (one leg of each
# bridge; the other follows) in the order the recordings started, and counts what completed.
#
# server_cpu_pct and sipp_cpu_pct are measured over the hold only (every bridge up and
# recording), 100 = one core; cpu_pct_per_bridge = server_cpu_pct / bridges held.
# rss_kb_per_bridge = (highest RSS - RSS before the first call) / bridges up.
# rec_dur_ms_min/max: duration_ms of the completed recordings (audio written: about T x 1000
# expected; the i-th recording also spans the requests after its own start in the recording
# phase and before its own hang-up; rec_start_s and hangup_s give those phases' lengths).
# chunks_dropped: the recorder's dropped-chunk counter (/metrics) at the end. Prints ONE line:
#   result kind=bridges bridges=.. seconds=.. calls_answered=.. bridges_up=.. recordings_started=..
#          bridges_held=.. recordings_completed=.. rec_dur_ms_min=.. rec_dur_ms_max=..
#          rec_start_s=.. hangup_s=..
#          chunks_dropped=.. server_cpu_pct=.. cpu_pct_per_bridge=.. server_rss_kb=..
#          rss_kb_per_bridge=.. sipp_cpu_pct=.. loadavg=.. loadavg_hold=.. duration_s=..
# (loadavg: the 1-minute load average read before the run, where other work on the machine
# shows; loadavg_hold: at the end of the hold, which also counts SIPp's pcap threads, one per
# playing call)
# Needs curl and jq besides lib.sh's tools.
#
# usage: scripts/load/bridges.sh [--bridges N] [--seconds T] [--ramp CPS]
source "$(dirname "$0")/lib.sh"

BRIDGES=10 SECS=10 RAMP=50
while [ $# -gt 0 ]; do
  case "$1" in
    --bridges) BRIDGES="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --ramp) RAMP="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ "$BRIDGES" -gt 0 ] && [ "$SECS" -gt 0 ] && [ "$RAMP" -gt 0 ] || die "--bridges, --seconds and --ramp must be positive"
[ "$BRIDGES" -le 250 ] || die "--bridges is at most 250 (one page of 500 calls)"
command -v curl > /dev/null && command -v jq > /dev/null || die "needs curl and jq"

CALLS=$((BRIDGES * 2))
LOADAVG=$(awk '{print $1}' /proc/loadavg)
# The far end plays RTP from its answer until the BYE: long enough for dialling, bridging,
# starting the recordings, the hold and the hang-ups.
DIAL_S=$(( (CALLS + RAMP - 1) / RAMP ))
# Each API request costs the script tens of milliseconds (curl, jq), more on a loaded machine:
# allow half a second per call, which also bounds the phases (a call left without RTP for
# [rtp] no_media_timeout_secs, 30 s, would be hung up by the server).
PCAP_S=$((SECS + DIAL_S + CALLS / 2 + 60))
make_pcap "$PCAP_S" "$WORK/rtp.pcap"
sed "s#/usr/share/sip-tester/g711a.pcap#$WORK/rtp.pcap#" "$SCENARIOS/uas_answer.xml" > "$WORK/uas_answer.xml"

# The SIPp far end (answers every INVITE, plays the pcap, answers the BYE).
FAR_PORT=$(free_ports 1); FAR_MP=$(free_ports 4)
(cd "$WORK" && exec sipp -sf "$WORK/uas_answer.xml" -i 127.0.0.1 -p "$FAR_PORT" -mp "$FAR_MP" \
    -buff_size 8388608 -nostdin -trace_err -error_file "$WORK/uas_errors.log" \
    > "$WORK/uas.out" 2>&1) &
FAR_PID=$!
OWN_PIDS+=("$FAR_PID")
sleep 0.5
kill -0 "$FAR_PID" 2>/dev/null || { cat "$WORK/uas.out" >&2; die "sipp far end exited"; }
log "sipp far end up (pid $FAR_PID, sip $FAR_PORT)"

start_trunkline $((CALLS * 2 + 200)) "127.0.0.1:$FAR_PORT"
BIN=$(trunkline_bin)
KEY=$("$BIN" apikey create "${SERVER_ARGS[@]}" 2>>"$WORK/server.log" | tail -n 1 | tr -d '[:space:]')
[ -n "$KEY" ] || die "apikey create printed no key"
API="http://127.0.0.1:$SERVER_HTTP_PORT"
# api METHOD PATH [JSON]: the response body on stdout; fails on a non-2xx status.
api() {
  local args=(-s -f -m 10 -X "$1" -H "Authorization: Bearer $KEY")
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' -d "$3")
  curl "${args[@]}" "$API$2"
}
# Number of calls with STATUS (one page of at most 500).
count_calls() { api GET "/v1/calls?status=$1&limit=500" | jq '.calls | length' 2>/dev/null || echo 0; }
chunks_dropped() {
  curl -s -m 5 "$API/metrics" | awk '$1 ~ /^trunkline_recorder_chunks_dropped_total/ {s += $2} END {print s + 0}'
}

sleep 0.3
IDLE_RSS=$(rss_kb "$SERVER_PID"); IDLE_RSS=${IDLE_RSS:-0}
sample_pid "$SERVER_PID" "$WORK/server.samples"
start=$(now_s)

# 1. Dial 2N calls at RAMP per second.
log "dialling $CALLS calls at $RAMP/s through the trunk to 127.0.0.1:$FAR_PORT"
: > "$WORK/calls"
GAP=$(awk -v r="$RAMP" 'BEGIN{printf "%.4f", 1 / r}')
for i in $(seq 1 "$CALLS"); do
  id=$(api POST /v1/calls "{\"to\": \"+1555$(printf '%07d' "$i")\", \"trunk\": \"load\"}" | jq -r '.id // empty' 2>/dev/null || true)
  if [ -n "$id" ]; then echo "$id" >> "$WORK/calls"; else log "call $i: POST /v1/calls failed"; fi
  sleep "$GAP"
done

# 2. Wait (bounded) until every placed call is answered or has ended.
answered=0
for i in $(seq 1 $((DIAL_S * 10 + 300))); do
  answered=$(count_calls in-progress)
  ended=$(( $(count_calls failed) + $(count_calls no-answer) + $(count_calls busy) ))
  [ $((answered + ended)) -ge "$(wc -l < "$WORK/calls")" ] && break
  sleep 0.1
done
log "$answered calls answered"
api GET "/v1/calls?status=in-progress&limit=500" | jq -r '.calls[].id' | sort > "$WORK/answered"

# 3. Bridge the answered calls two by two (in dialling order), then record every bridge.
: > "$WORK/bridges"
mapfile -t placed < "$WORK/calls"
pair=()
for id in "${placed[@]}"; do
  grep -qx "$id" "$WORK/answered" || continue
  pair+=("$id")
  [ "${#pair[@]}" -eq 2 ] || continue
  conf=$(api POST "/v1/calls/${pair[0]}/bridge" "{\"call_id\": \"${pair[1]}\"}" | jq -r '.id // empty' 2>/dev/null || true)
  if [ -n "$conf" ]; then echo "$conf ${pair[0]}" >> "$WORK/bridges"; else log "bridge ${pair[0]} ${pair[1]} failed"; fi
  pair=()
done
bridges_up=$(wc -l < "$WORK/bridges")
log "$bridges_up bridges up; starting their recordings"
recs=0
: > "$WORK/recorded"
rec0=$(now_s)
while read -r conf leg; do
  rec=$(api POST "/v1/conferences/$conf/recordings" '{}' | jq -r '.id // empty' 2>/dev/null || true)
  if [ -n "$rec" ]; then recs=$((recs + 1)); echo "$conf $leg" >> "$WORK/recorded"; else log "recording of $conf failed to start"; fi
done < "$WORK/bridges"

rec_phase=$(elapsed "$rec0" "$(now_s)")

# 4. Hold T seconds (the measured window), then hang up in the order the recordings started.
UAS_T0=$(cpu_ticks "$FAR_PID"); SRV_T0=$(cpu_ticks "$SERVER_PID"); hold0=$(now_s)
log "holding $bridges_up bridges ($recs recording) for ${SECS}s"
sleep "$SECS"
UAS_T1=$(cpu_ticks "$FAR_PID"); SRV_T1=$(cpu_ticks "$SERVER_PID"); hold1=$(now_s)
LOADAVG_HOLD=$(awk '{print $1}' /proc/loadavg)
held=$(( $(count_calls in-progress) / 2 ))
hold_s=$(elapsed "$hold0" "$hold1")
hang0=$(now_s)
while read -r conf leg; do
  api POST "/v1/calls/$leg/hangup" '{}' > /dev/null || log "hangup of $leg failed"
done < "$WORK/bridges"
hang_phase=$(elapsed "$hang0" "$(now_s)")
log "recordings started in ${rec_phase}s, hang-ups sent in ${hang_phase}s"

# 5. Wait (bounded) for the recordings to complete.
completed=0
for i in $(seq 1 300); do
  completed=$(api GET "/v1/recordings?status=completed&limit=500" | jq '.recordings | length' 2>/dev/null || echo 0)
  live=$(( $(api GET "/v1/recordings?status=recording&limit=500" | jq '.recordings | length' 2>/dev/null || echo 0) ))
  [ "$live" -eq 0 ] && break
  sleep 0.1
done
end=$(now_s)
dur=$(elapsed "$start" "$end")
read -r dmin dmax < <(api GET "/v1/recordings?status=completed&limit=500" \
  | jq -r '[.recordings[].duration_ms // 0] | if length > 0 then "\(min) \(max)" else "n/a n/a" end' 2>/dev/null || echo "n/a n/a")
dropped=$(chunks_dropped)
# Recordings that ended otherwise (failed, interrupted) or never ended, for the log.
api GET "/v1/recordings?limit=500" | jq -r '.recordings[] | select(.status != "completed") | "\(.id) \(.status) \(.error // "")"' 2>/dev/null \
  | while read -r line; do log "recording not completed: $line"; done

server_cpu=$(cpu_pct "$(( ${SRV_T1:-0} - ${SRV_T0:-0} ))" "$hold_s")
sipp_cpu=$(cpu_pct "$(( ${UAS_T1:-0} - ${UAS_T0:-0} ))" "$hold_s")
per_bridge=$(awk -v c="$server_cpu" -v n="$held" 'BEGIN{ if (n > 0) printf "%.3f", c / n; else print "n/a" }')
rss=$(max_rss "$WORK/server.samples")
rss_per_bridge=$(awk -v p="$rss" -v i="$IDLE_RSS" -v n="$bridges_up" 'BEGIN{ if (n > 0) printf "%.0f", (p - i) / n; else print "n/a" }')
echo "result kind=bridges bridges=$BRIDGES seconds=$SECS calls_answered=$answered bridges_up=$bridges_up recordings_started=$recs bridges_held=$held recordings_completed=$completed rec_dur_ms_min=$dmin rec_dur_ms_max=$dmax rec_start_s=$rec_phase hangup_s=$hang_phase chunks_dropped=$dropped server_cpu_pct=$server_cpu cpu_pct_per_bridge=$per_bridge server_rss_kb=$rss rss_kb_per_bridge=$rss_per_bridge sipp_cpu_pct=$sipp_cpu loadavg=$LOADAVG loadavg_hold=$LOADAVG_HOLD duration_s=$dur"
