#!/usr/bin/env bash
# Calls per second: a SIPp caller (tests/sipp/uac_load.xml) places INVITE -> 200 -> ACK -> BYE
# calls to the `echo` number at a fixed rate, bounded in calls and seconds, against trunkline
# (its own release binary on loopback ports) or, with --target sipp, against a SIPp far end
# (tests/sipp/uas_load.xml) as the reference. Prints ONE machine-readable line:
#   result kind=cps target=.. rate=.. calls=.. ok=.. failed=.. duration_s=.. achieved_cps=..
#          server_cpu_pct=.. sipp_cpu_pct=.. server_rss_kb=.. setup_ms_p50=.. setup_ms_p99=..
# CPU is read from /proc of both PIDs (100 = one core); both share the machine's cores.
#
# usage: scripts/load/cps.sh [--target trunkline|sipp] [--rate CPS] [--seconds S] [--hold-ms MS]
source "$(dirname "$0")/lib.sh"

TARGET=trunkline RATE=100 SECONDS_RUN=10 HOLD_MS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) TARGET="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --hold-ms) HOLD_MS="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
CALLS=$(awk -v r="$RATE" -v s="$SECONDS_RUN" 'BEGIN{printf "%d", r * s}')
[ "$CALLS" -gt 0 ] || die "rate x seconds must be at least 1 call"

case "$TARGET" in
  # Each call holds an RTP port pair from its INVITE until its media leg has stopped: give the
  # server room for the rate (twice the rate in ports, 2,000 to 10,000), or calls get
  # 503 RTP Ports Exhausted, which uac_load.xml does not expect.
  trunkline) ports=$((RATE * 2)); [ "$ports" -lt 2000 ] && ports=2000; [ "$ports" -gt 10000 ] && ports=10000
             start_trunkline "$ports" ;;
  sipp) start_sipp_uas "" ;;
  *) die "--target is trunkline or sipp" ;;
esac
sample_pid "$SERVER_PID" "$WORK/server.samples"

UAC_PORT=$(free_ports 1); UAC_MP=$(free_ports 4)
log "sipp caller: $CALLS calls at $RATE cps (hold ${HOLD_MS} ms) -> 127.0.0.1:$SERVER_SIP_PORT"
start=$(now_s)
(cd "$WORK" && exec sipp -sf "$SCENARIOS/uac_load.xml" -s echo -i 127.0.0.1 -p "$UAC_PORT" -mp "$UAC_MP" \
    -r "$RATE" -m "$CALLS" -d "$HOLD_MS" -buff_size 8388608 -default_behaviors all,-abortunexp \
    -nostdin -timeout "$((SECONDS_RUN + 30))s" -trace_stat -stf "$WORK/uac.csv" -fd 1 \
    -trace_err -error_file "$WORK/uac_errors.log" -trace_rtt -rtt_freq 100 \
    "127.0.0.1:$SERVER_SIP_PORT" > "$WORK/uac.out" 2>&1) &
UAC_PID=$!
OWN_PIDS+=("$UAC_PID")
sample_pid "$UAC_PID" "$WORK/uac.samples"
rc=0; wait_pid "$UAC_PID" $((SECONDS_RUN + 45)) || rc=$?
end=$(now_s)
dur=$(elapsed "$start" "$end")
sleep 0.3

ok=$(stat_col "$WORK/uac.csv" 'SuccessfulCall(C)')
failed=$(stat_col "$WORK/uac.csv" 'FailedCall(C)')
achieved=$(awk -v o="$ok" -v d="$dur" 'BEGIN{ if (d > 0) printf "%.1f", o / d; else print 0 }')
server_cpu=$(cpu_pct "$(last_ticks "$WORK/server.samples")" "$dur")
sipp_cpu=$(cpu_pct "$(last_ticks "$WORK/uac.samples")" "$dur")
rss=$(max_rss "$WORK/server.samples")
# Setup latency: INVITE sent -> 200 received, per call (SIPp's rtd, 1 ms resolution).
read -r lat_p50 lat_p99 < <(tail -q -n +2 "$WORK"/uac_load_*_rtt.csv 2>/dev/null | cut -d';' -f2 | sort -n |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a n/a"; exit }
        i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++;
        print v[i50], v[i99] }')
if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
  log "sipp caller exit code $rc; last errors:"; show_errors "$WORK/uac_errors.log"
elif [ "${failed:-0}" != 0 ]; then
  log "failed calls; last errors:"; show_errors "$WORK/uac_errors.log"
fi
echo "result kind=cps target=$TARGET rate=$RATE calls=$CALLS ok=$ok failed=$failed duration_s=$dur achieved_cps=$achieved server_cpu_pct=$server_cpu sipp_cpu_pct=$sipp_cpu server_rss_kb=$rss setup_ms_p50=$lat_p50 setup_ms_p99=$lat_p99 sipp_exit=$rc"
