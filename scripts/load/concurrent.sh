#!/usr/bin/env bash
# Concurrent calls carrying G.711 both ways: a SIPp caller (tests/sipp/uac_echo.xml) holds N
# calls to the `echo` number, each playing T seconds of A-law RTP at 50 packets/s (a pcap made
# here), against trunkline (its own release binary on loopback ports) or, with --target sipp,
# against a SIPp far end echoing RTP (uas_load.xml with -rtp_echo) as the reference.
#
# Loss is measured on the caller's media socket, which SIPp never reads: echoed packets queue
# there and, once its buffer is full, are counted as drops by the kernel (/proc/net/udp), so
#   received = drops + rx_queue / truesize,  sent = ok calls x T x 50,  loss = 1 - received/sent.
# cpu_pct_per_call = 100 x server CPU seconds / (ok calls x T): the share of one core a call
# costs while it carries media (signalling included). Prints ONE machine-readable line:
#   result kind=concurrent target=.. calls=.. seconds=.. ok=.. failed=.. rtp_sent=..
#          rtp_received=.. loss_pct=.. server_cpu_pct=.. cpu_pct_per_call=..
#          server_rss_kb=.. rss_kb_per_100_calls=.. sipp_cpu_pct=.. far_drops=.. duration_s=..
# (far_drops: with --target sipp, packets the SIPp echo's own socket dropped; n/a otherwise)
#
# usage: scripts/load/concurrent.sh [--target trunkline|sipp] [--calls N] [--seconds T] [--ramp CPS]
source "$(dirname "$0")/lib.sh"

TARGET=trunkline CALLS=100 SECS=10 RAMP=200
while [ $# -gt 0 ]; do
  case "$1" in
    --target) TARGET="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --ramp) RAMP="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ "$CALLS" -gt 0 ] && [ "$SECS" -gt 0 ] || die "--calls and --seconds must be positive"

PKTS_PER_CALL=$((SECS * 50))
make_pcap "$SECS" "$WORK/rtp.pcap"
sed "s#/usr/share/sip-tester/g711a.pcap#$WORK/rtp.pcap#" "$SCENARIOS/uac_echo.xml" > "$WORK/uac_echo.xml"
TRUESIZE=$(udp_truesize 172)
[ "$TRUESIZE" -gt 0 ] || die "cannot measure the UDP truesize"

case "$TARGET" in
  trunkline) start_trunkline $((CALLS * 2 + 200)) ;;
  sipp) start_sipp_uas "-rtp_echo"; sample_udp "$SERVER_MP" "$WORK/far_udp.samples" ;;
  *) die "--target is trunkline or sipp" ;;
esac
sleep 0.3
IDLE_RSS=$(rss_kb "$SERVER_PID"); IDLE_RSS=${IDLE_RSS:-0}
sample_pid "$SERVER_PID" "$WORK/server.samples"

UAC_PORT=$(free_ports 1); UAC_MP=$(free_ports 4)
sample_udp "$UAC_MP" "$WORK/udp.samples"
HOLD_MS=$((SECS * 1000 + 1000))
RAMP_S=$(( (CALLS + RAMP - 1) / RAMP ))
log "sipp caller: $CALLS calls at $RAMP cps, each ${SECS}s of RTP -> 127.0.0.1:$SERVER_SIP_PORT"
start=$(now_s)
(cd "$WORK" && exec sipp -sf "$WORK/uac_echo.xml" -s echo -i 127.0.0.1 -p "$UAC_PORT" -mp "$UAC_MP" \
    -r "$RAMP" -l "$CALLS" -m "$CALLS" -d "$HOLD_MS" -buff_size 8388608 \
    -default_behaviors all,-abortunexp -nostdin -timeout "$((SECS + RAMP_S + 60))s" \
    -trace_stat -stf "$WORK/uac.csv" -fd 1 -trace_err -error_file "$WORK/uac_errors.log" \
    "127.0.0.1:$SERVER_SIP_PORT" > "$WORK/uac.out" 2>&1) &
UAC_PID=$!
OWN_PIDS+=("$UAC_PID")
sample_pid "$UAC_PID" "$WORK/uac.samples"
rc=0; wait_pid "$UAC_PID" $((SECS + RAMP_S + 90)) || rc=$?
end=$(now_s)
dur=$(elapsed "$start" "$end")
sleep 0.3

ok=$(stat_col "$WORK/uac.csv" 'SuccessfulCall(C)')
failed=$(stat_col "$WORK/uac.csv" 'FailedCall(C)')
read -r rxq drops < "$WORK/udp.samples" || { rxq=0; drops=0; }
# With --target sipp: packets the SIPp echo itself dropped (its socket buffer overflowed).
far_drops=n/a
[ -f "$WORK/far_udp.samples" ] && read -r _ far_drops < "$WORK/far_udp.samples"
sent=$((ok * PKTS_PER_CALL))
received=$((drops + rxq / TRUESIZE))
loss=$(awk -v s="$sent" -v r="$received" 'BEGIN{ if (s > 0) { l = 100 * (s - r) / s; if (l < 0) l = 0; printf "%.3f", l } else print "n/a" }')
server_ticks=$(last_ticks "$WORK/server.samples")
server_cpu=$(cpu_pct "$server_ticks" "$dur")
# Share of one core per call while it carries media: CPU seconds over call-seconds of RTP.
per_call=$(awk -v t="${server_ticks:-0}" -v hz="$CLK_TCK" -v n="$ok" -v s="$SECS" 'BEGIN{ if (n > 0) printf "%.4f", 100 * t / hz / (n * s); else print "n/a" }')
sipp_cpu=$(cpu_pct "$(last_ticks "$WORK/uac.samples")" "$dur")
rss=$(max_rss "$WORK/server.samples")
rss_per_100=$(awk -v p="$rss" -v i="$IDLE_RSS" -v n="$CALLS" 'BEGIN{printf "%.0f", (p - i) * 100 / n}')
if [ "$rc" != 0 ]; then
  log "sipp caller exit code $rc; last errors:"; show_errors "$WORK/uac_errors.log"
fi
echo "result kind=concurrent target=$TARGET calls=$CALLS seconds=$SECS ok=$ok failed=$failed rtp_sent=$sent rtp_received=$received loss_pct=$loss server_cpu_pct=$server_cpu cpu_pct_per_call=$per_call server_rss_kb=$rss rss_kb_per_100_calls=$rss_per_100 sipp_cpu_pct=$sipp_cpu far_drops=$far_drops duration_s=$dur sipp_exit=$rc"
