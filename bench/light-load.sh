#!/usr/bin/env bash
# bench/light-load.sh GATEWAY LABEL STORE RATE [gateway options...]
#
# One fixed-rate run as bench/run.sh's rate rows do it (1,000 users, 16
# keep-alive connections, warm-up 3 s, 10 s window), plus what run.sh does
# not print: context switches and task-clock per processed event (perf stat
# -p over the window) and signatures per event (/metrics before and after).
# One line on stdout. For interleaved before/after runs of two binaries
# (docs/performance.md, issue 15). LOADGEN=path overrides the generator
# (default build-bench's); PERTHREAD=1 adds perf stat --per-thread lines.
set -u
BIN=$1 LABEL=$2 STORE=$3 RATE=$4; shift 4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LG=${LOADGEN:-$ROOT/build-bench/bench/loadgen/notify-loadgen}
WARM=3 DUR=10
TMP=$(mktemp -d /tmp/light-load.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
sed -n '/^cat >"\$TMP\/rules.yml" <<.EOF.$/,/^EOF$/p' "$ROOT/bench/run.sh" | sed '1d;$d' >"$TMP/rules.yml"
"$BIN" --state-dir "$TMP/state" --listen 127.0.0.1:0 --rules "$TMP/rules.yml" --log-level warn --workers 2 \
	--limits-queue 100000 --store "$STORE" "$@" >"$TMP/gw.out" 2>"$TMP/gw.err" &
PID=$!
for _ in $(seq 100); do
	PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/gw.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
metrics() {
	curl -s "http://127.0.0.1:$PORT/metrics" |
		awk '/^notify_gateway_(signatures|events_processed)_total /{sub("notify_gateway_", "", $1); printf "%s=%s ", $1, $2}'
}
(
	sleep "$WARM"
	metrics >"$TMP/m0"
	perf stat -e context-switches,task-clock -x, -p "$PID" -o "$TMP/perf.txt" -- sleep "$DUR" &
	[ -n "${PERTHREAD:-}" ] &&
		perf stat --per-thread -e context-switches,task-clock -x, -p "$PID" -o "$TMP/thr.txt" -- sleep "$DUR" &
	wait
) &
PP=$!
"$LG" targeted --target gateway --port "$PORT" --state-dir "$TMP/state" --server-pid "$PID" --run-id "$LABEL" \
	--users 1000 --warmup "$WARM" --duration "$DUR" --rate "$RATE" --http-conns 16 >"$TMP/out" 2>"$TMP/err"
wait "$PP"
M0=$(cat "$TMP/m0") M1=$(metrics)
kill -TERM "$PID"
wait "$PID"
get() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
R=$(grep ^RESULT "$TMP/out")
EV=$(($(get "$M1" events_processed_total) - $(get "$M0" events_processed_total)))
SIG=$(($(get "$M1" signatures_total) - $(get "$M0" signatures_total)))
CS=$(grep context-switches "$TMP/perf.txt" | cut -d, -f1)
TC=$(grep task-clock "$TMP/perf.txt" | cut -d, -f1)
echo "$LABEL store=$STORE rate=$RATE delivered_per_s=$(get "$R" delivered_per_s) cpu_us=$(get "$R" cpu_ms_per_1k)" \
	"p50=$(get "$R" p50_ms) p99=$(get "$R" p99_ms) cs_per_ev=$(awk -v c="$CS" -v e="$EV" 'BEGIN{printf "%.2f", c/e}')" \
	"taskclk_us_per_ev=$(awk -v c="$TC" -v e="$EV" 'BEGIN{printf "%.0f", c*1000/e}')" \
	"sig_per_ev=$(awk -v c="$SIG" -v e="$EV" 'BEGIN{printf "%.3f", c/e}') other_cpu_s=$(get "$R" other_cpu_s)" \
	"missing=$(get "$R" missing) dups=$(get "$R" dups) misdelivered=$(get "$R" misdelivered) threads=$(get "$R" threads)"
[ -n "${PERTHREAD:-}" ] && awk -F, -v e="$EV" 'NF>3 && $2+0>0 {printf "  %s %s %.2f\n", $1, $4, ($4=="context-switches") ? $2/e : $2*1000/e}' "$TMP/thr.txt"
exit 0
