#!/usr/bin/env bash
# bench/run.sh - notify-gateway vs nginx+nchan on the same machine, same load
# generator (bench/loadgen, C), same scenarios, one table with both rows and
# their ratio. Raw RESULT lines go to bench/results/<date>.txt.
#
#   bench/run.sh                 full run (~5 min on 2 cores)
#   bench/run.sh --smoke         a few seconds, gateway only; exit 1 unless
#                                every event is delivered exactly once
#   bench/run.sh --only gateway  skip nchan (or --only nchan)
#
# Options: --users-small N (1000) --users-large N (10000) --duration S (10)
#   --warmup S (3) --conns N (10000, idle-memory / connect scenario)
#   --broadcast N (1000) --gateway PATH --loadgen PATH (skip the build)
#   --build-dir DIR (build-bench) --workers N (gateway workers and nginx
#   worker_processes; default: nproc) --pin (taskset: servers on all CPUs,
#   loadgen too - see docs/performance.md) --keep (keep the temp dir)
#   --perf (perf record -g the gateway during targeted max, 1000 users)
#   --event-loop poll|epoll (the gateway's event_loop; default: its default)
#   --rate "N ..." (1000 3000) fixed-rate rows: targeted, --users-small and --users-large users,
#   16 keep-alive connections, open loop at N events/s, both servers; the
#   gateway once per --stores entry ("sqlite memory"; "" = its default store)
#   --rate-only (only the fixed-rate rows) --stores "KIND ..."
#
#   bench/run.sh --cluster "1 2 3"   cluster mode (issue 13): a real redis-server
#       (AOF everysec, temp dir, free port) and N gateway nodes on this machine
#       for each N, plus the embedded store (sqlite, durability fsync and os),
#       all in one table: intake, targeted max, targeted at --cluster-rate,
#       broadcast to --broadcast watchers; HTTP posts and websocket users spread
#       over every node; CPU per notification for the gateways (summed) and
#       Redis apart, Redis round trips per event; exit 1 unless every event was
#       delivered exactly once. With --smoke: a few seconds, exactly-once only.
#   --cluster-rate N (1000) --cluster-embedded "fsync os" ("" = no sqlite rows)
#   --cluster-scenarios "intake targeted-max targeted-rate broadcast" (all four)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0 ONLY="" USERS_S=1000 USERS_L=10000 DUR=10 WARM=3 CONNS=10000 BCAST=1000
RATES="1000 3000" RATE_ONLY=0 STORES="sqlite memory" GW_STORE=""
GW_BIN="" LG_BIN="" BUILD_DIR="$ROOT/build-bench" WORKERS=$(nproc) KEEP=0 PERF=0 EVENT_LOOP=""
CLUSTER="" CL_RATE=1000 CL_EMBEDDED="fsync os" REDIS_PID="" NODE_PIDS=()
CL_SCENARIOS="intake targeted-max targeted-rate broadcast"
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) SMOKE=1 ;;
	--only) ONLY=$2; shift ;;
	--users-small) USERS_S=$2; shift ;;
	--users-large) USERS_L=$2; shift ;;
	--duration) DUR=$2; shift ;;
	--warmup) WARM=$2; shift ;;
	--conns) CONNS=$2; shift ;;
	--broadcast) BCAST=$2; shift ;;
	--gateway) GW_BIN=$2; shift ;;
	--loadgen) LG_BIN=$2; shift ;;
	--build-dir) BUILD_DIR=$2; shift ;;
	--workers) WORKERS=$2; shift ;;
	--keep) KEEP=1 ;;
	--perf) PERF=1 ;;
	--event-loop) EVENT_LOOP=$2; shift ;;
	--rate) RATES=${2//,/ }; shift ;;
	--rate-only) RATE_ONLY=1 ;;
	--stores) STORES=${2//,/ }; shift ;;
	--cluster) CLUSTER=${2//,/ }; shift ;;
	--cluster-rate) CL_RATE=$2; shift ;;
	--cluster-embedded) CL_EMBEDDED=${2//,/ }; shift ;;
	--cluster-scenarios) CL_SCENARIOS=${2//,/ }; shift ;;
	-h|--help) sed -n '2,33p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ -z "$GW_BIN" ] || [ -z "$LG_BIN" ]; then
	echo "== building into $BUILD_DIR" >&2
	cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$BUILD_DIR" -j"$(nproc)" --target notify-gateway notify-loadgen >/dev/null
	GW_BIN=${GW_BIN:-$BUILD_DIR/gateway/notify-gateway}
	LG_BIN=${LG_BIN:-$BUILD_DIR/bench/loadgen/notify-loadgen}
fi

TMP=$(mktemp -d /tmp/notify-bench.XXXXXX)
SERVER_PID=""
cleanup() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	local p
	for p in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"} $REDIS_PID; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	[ "$KEEP" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/rules.yml" <<'EOF'
rules:
  # targeted: one notification per event, to the assignee, on the user's own context
  - key: bench-targeted
    events: [avi:jira:created:issue]
    notify:
      to: ["event.issue.fields.assignee.accountId"]
      context: "user:{{ event.issue.fields.assignee.accountId }}"
      title: "{{ event.issue.key }}"
      description: "{{ event.issue.fields.summary }}"
      actions: [{text: "Open", href: "/browse/{{ event.issue.key }}"}]
  # broadcast: every watcher listed in the event, one shared context
  - key: bench-broadcast
    events: [avi:jira:updated:issue]
    notify:
      to: ["event.watchers"]
      context: "{{ event.ctx }}"
      title: "{{ event.issue.key }}"
      description: "{{ event.issue.fields.summary }}"
# intake events (avi:jira:deleted:issue) match no rule on purpose.
EOF

# ---- servers -----------------------------------------------------------------
PORT=""
GW_EXTRA=() # store variant rows: --store memory, --durability os
DB_BYTES_PER_NOTE=""
start_gateway() {
	local out="$TMP/gw.out"
	: >"$out"
	# every run starts on an empty store (the keys in the state dir stay)
	rm -f "$TMP/state/notify.db" "$TMP/state/notify.db-wal" "$TMP/state/notify.db-shm"
	"$GW_BIN" --state-dir "$TMP/state" --listen 127.0.0.1:0 --rules "$TMP/rules.yml" \
		--log-level warn --workers "$WORKERS" --limits-queue 100000 \
		${EVENT_LOOP:+--event-loop "$EVENT_LOOP"} ${GW_STORE:+--store "$GW_STORE"} ${GW_EXTRA[@]+"${GW_EXTRA[@]}"} \
		>"$out" 2>>"$TMP/gw.err" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$out")
		[ -n "$PORT" ] && return 0
		sleep 0.05
	done
	echo "gateway did not start:" >&2; cat "$TMP/gw.err" >&2; exit 1
}

free_port() { # free_port [FIRST]: a port nobody listens on, FIRST..FIRST+100 (18090)
	local p
	for p in $(seq "${1:-18090}" $((${1:-18090} + 100))); do
		if ! ss -Htln "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "no free port" >&2; exit 1
}

start_nchan() {
	local pre="$TMP/nginx"
	rm -rf "$pre"; mkdir -p "$pre/tmp" "$pre/logs"
	PORT=$(free_port)
	sed -e "s|@PREFIX@|$pre|g" -e "s|@PORT@|$PORT|g" -e "s|@WORKERS@|$WORKERS|g" \
		"$ROOT/bench/nchan/nginx.conf" >"$pre/nginx.conf"
	nginx -p "$pre" -c "$pre/nginx.conf" 2>>"$TMP/nginx.err" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		if curl -s -o /dev/null -d x "http://127.0.0.1:$PORT/pub?id=probe"; then return 0; fi
		sleep 0.05
	done
	echo "nginx did not start:" >&2; cat "$TMP/nginx.err" "$pre/error.log" >&2; exit 1
}

stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}

# ---- running ---------------------------------------------------------------------
RESULTS="$TMP/results.txt"
: >"$RESULTS"
# run TARGET LABEL SCENARIO [loadgen options...]: fresh server, one loadgen run,
# the RESULT line (with label=LABEL) appended to $RESULTS. Returns loadgen's status.
run() {
	local tg=$1 label=$2 sc=$3 rc=0
	shift 3
	if [ "$tg" = gateway ]; then start_gateway; else start_nchan; fi
	echo "== $tg $label: notify-loadgen $sc $*" >&2
	local perf_pid=""
	if [ "$PERF" = 1 ] && [ "$tg" = gateway ] && [ "$label" = "targeted-${USERS_S}-max" ]; then
		(sleep "$WARM"; exec perf record -F 999 -g -p "$SERVER_PID" -o "$TMP/perf.data" -- sleep "$DUR") \
			>/dev/null 2>&1 &
		perf_pid=$!
	fi
	"$LG_BIN" "$sc" --target "$tg" --port "$PORT" --state-dir "$TMP/state" --server-pid "$SERVER_PID" \
		--run-id "$label" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	[ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null || true
	sed 's/^/   /' "$TMP/err" | grep -v '^   $' >&2 || true
	sed "s/^RESULT /RESULT label=$label /" "$TMP/out" | tee -a "$RESULTS" >/dev/null
	stop_server
	if [ "$tg" = gateway ] && [ "$label" = "targeted-${USERS_S}-max" ] && command -v sqlite3 >/dev/null &&
		[ -f "$TMP/state/notify.db" ]; then
		# database growth per stored notification (after the stop: WAL checkpointed into the file)
		local notes bytes
		notes=$(sqlite3 "$TMP/state/notify.db" 'SELECT count(*) FROM notes' 2>/dev/null || echo 0)
		bytes=$(du -cb "$TMP/state"/notify.db* | tail -1 | cut -f1)
		[ "${notes:-0}" -gt 0 ] && DB_BYTES_PER_NOTE=$((bytes / notes))
	fi
	return $rc
}

field() { # field LABEL TARGET KEY
	{ grep "label=$1 " "$RESULTS" || true; } | { grep " target=$2 " || true; } | tail -1 | tr ' ' '\n' |
		sed -n "s/^$3=//p"
}

total() { # total TARGET KEY: the sum of KEY over every run of TARGET
	{ grep " target=$1 " "$RESULTS" || true; } | tr ' ' '\n' | sed -n "s/^$2=//p" | awk '{s+=$1} END {print s+0}'
}

if [ -n "$CLUSTER" ]; then # cluster mode (bench/cluster.sh): its own runs and table, then exit
	. "$ROOT/bench/cluster.sh"
	cl_main
fi

if [ "$SMOKE" = 1 ]; then
	rc=0
	run gateway smoke-targeted targeted --users 50 --events 500 --rate 1000 --warmup 0.1 \
		--duration 5 --drain 5 --expect-exact || rc=1
	run gateway smoke-broadcast broadcast --users 50 --events 20 --rate 50 --warmup 0.1 \
		--duration 5 --drain 5 --expect-exact || rc=1
	cat "$RESULTS"
	[ $rc = 0 ] && echo "bench smoke: every event delivered exactly once" || echo "bench smoke: FAILED" >&2
	exit $rc
fi

TARGETS="gateway nchan"
[ -n "$ONLY" ] && TARGETS=$ONLY
FRAME_BYTES=1080
for tg in $TARGETS; do
	common=(--warmup "$WARM" --duration "$DUR")
	extra=()
	[ "$tg" = nchan ] && extra=(--msg-size "$FRAME_BYTES")
	# fixed rate: the light, steady load real installations run (issue 15), at both user counts
	for n in "$USERS_S" "$USERS_L"; do
	u=""; [ "$n" = "$USERS_S" ] || u="-u$n" # label suffix: rate-R-STORE for --users-small
	for r in $RATES; do
		if [ "$tg" = gateway ]; then
			for st in ${STORES:-default}; do
				GW_STORE=$st; [ "$st" = default ] && GW_STORE=""
				run gateway "rate-$r-$st$u" targeted --users "$n" "${common[@]}" --rate "$r" \
					--http-conns 16 || true
				GW_STORE=""
				fb=$(field "rate-$r-$st$u" gateway avg_frame_bytes)
				[ -n "$fb" ] && [ "$fb" -gt 0 ] && FRAME_BYTES=$((fb - 30))
			done
		else
			run "$tg" "rate-$r$u" targeted --users "$n" "${common[@]}" --rate "$r" --http-conns 16 \
				"${extra[@]}" || true
		fi
	done
	done
	[ "$RATE_ONLY" = 1 ] && continue
	run "$tg" intake intake "${common[@]}" --http-conns 64 "${extra[@]}" || true
	for n in "$USERS_S" "$USERS_L"; do
		run "$tg" "targeted-$n-max" targeted --users "$n" "${common[@]}" --http-conns 64 --window 1024 \
			"${extra[@]}" || true
		if [ "$tg" = gateway ]; then
			# the gateway's nchan message size: its own average frame, so both carry the same bytes
			fb=$(field "targeted-$n-max" gateway avg_frame_bytes)
			[ -n "$fb" ] && [ "$fb" -gt 0 ] && FRAME_BYTES=$((fb - 30))
		fi
		# half the gateway's measured capacity, open loop, for both servers (same offered load)
		cap=$(field "targeted-$n-max" gateway delivered_per_s)
		[ -z "$cap" ] && cap=$(field "targeted-$n-max" "$tg" delivered_per_s)
		half=$(( ${cap:-2000} / 2 ))
		run "$tg" "targeted-$n-half" targeted --users "$n" "${common[@]}" --rate "$half" --http-conns 64 \
			"${extra[@]}" || true
	done
	# max: 16 events in flight; single: one event at a time (latency to every watcher, no queueing)
	run "$tg" "broadcast-$BCAST" broadcast --users "$BCAST" "${common[@]}" --window 16 "${extra[@]}" || true
	run "$tg" "broadcast-$BCAST-single" broadcast --users "$BCAST" "${common[@]}" --window 1 "${extra[@]}" ||
		true
	run "$tg" "conns-$CONNS" conns --users "$CONNS" --concurrency 256 --src-addrs 4 --settle 3 || true
	if [ "$tg" = gateway ]; then
		# the same targeted load with history in memory, and with durability os; "half" at the
		# default (sqlite, fsync) half rate, so CPU per delivered notification compares at one load
		half=$(field "targeted-$USERS_S-half" gateway rate)
		for v in memory os; do
			if [ "$v" = memory ]; then GW_EXTRA=(--store memory); else GW_EXTRA=(--durability os); fi
			run gateway "intake-$v" intake "${common[@]}" --http-conns 64 || true
			run gateway "targeted-$USERS_S-max-$v" targeted --users "$USERS_S" "${common[@]}" --http-conns 64 \
				--window 1024 || true
			run gateway "targeted-$USERS_S-half-$v" targeted --users "$USERS_S" "${common[@]}" \
				--rate "${half:-1000}" --http-conns 64 || true
			GW_EXTRA=()
		done
	fi
done

# ---- table --------------------------------------------------------------------------
ratio() { # a/b with 2 decimals, or -
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
row() { # row TITLE LABEL KEY [NCHAN_LABEL]
	local g n
	g=$(field "$2" gateway "$3"); n=$(field "${4:-$2}" nchan "$3")
	printf '%-52s %12s %12s %8s\n' "$1" "${g:--}" "${n:--}" "$(ratio "$g" "$n")"
}
thread_split() { # thread_split LABEL: the gateway's CPU per delivered notification, per thread
	local th w d
	th=$(field "$1" gateway threads); w=$(field "$1" gateway window_s); d=$(field "$1" gateway delivered_per_s)
	[ -z "$th" ] || [ -z "$d" ] || [ "$d" = 0 ] && { echo "-"; return; }
	# main<tid> is the lws service thread; name/<tid> a thread the gateway named; the rest are workers
	echo "$th" | tr ',' '\n' | awk -F: -v n="$(awk -v w="$w" -v d="$d" 'BEGIN{print w*d}')" '
		{ k = $1; if (k ~ /^main/) k = "service"; else if (k ~ /\//) sub(/\/.*/, "", k); else k = "worker"
		  v = sprintf("%.0f", $2 / n * 1e6); if (k in s) s[k] = s[k] "+" v; else s[k] = v; t += v }
		END { for (k in s) printf "%s %s, ", k, s[k]; printf "total %.0f\n", t }'
}
{
	echo "notify-gateway vs nginx+nchan  ($(date -u +%FT%TZ), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
	echo "gateway $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') $GW_BIN; $(nginx -v 2>&1); nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
	echo "workers=$WORKERS event_loop=${EVENT_LOOP:-default} duration=${DUR}s warmup=${WARM}s; nchan messages padded to the gateway's frame size (${FRAME_BYTES} B body)"
	printf '%-52s %12s %12s %8s\n' "metric" "gateway" "nchan" "gw/nchan"
	for n in "$USERS_S" "$USERS_L"; do
	u=""; [ "$n" = "$USERS_S" ] || u="-u$n"
	for r in $RATES; do
		for st in ${STORES:-default}; do
			row "(r) fixed $r ev/s, $n users, store $st: delivered/s" "rate-$r-$st$u" delivered_per_s "rate-$r$u"
			row "    CPU us per delivered (server)" "rate-$r-$st$u" cpu_ms_per_1k "rate-$r$u"
			row "    latency p50 ms" "rate-$r-$st$u" p50_ms "rate-$r$u"
			row "    latency p99 ms" "rate-$r-$st$u" p99_ms "rate-$r$u"
			echo "    gateway CPU us per delivered by thread: $(thread_split "rate-$r-$st$u")"
		done
	done
	done
	[ "$RATE_ONLY" = 1 ] || {
	row "(a) intake: accepted events/s (gw: FIT RS256 on)" intake accepted_per_s
	row "    server CPU us per accepted event" intake cpu_us_per_accepted
	for n in "$USERS_S" "$USERS_L"; do
		row "(b) targeted $n users, max: delivered/s" "targeted-$n-max" delivered_per_s
		row "    CPU ms per 1000 delivered (server)" "targeted-$n-max" cpu_ms_per_1k
		row "    latency p50 ms (at max, window 1024)" "targeted-$n-max" p50_ms
		row "    latency p99 ms (at max)" "targeted-$n-max" p99_ms
		row "    offered rate, half gw capacity (ev/s)" "targeted-$n-half" rate
		row "    delivered/s at that rate" "targeted-$n-half" delivered_per_s
		row "    latency p50 ms at half capacity" "targeted-$n-half" p50_ms
		row "    latency p99 ms at half capacity" "targeted-$n-half" p99_ms
		row "    latency p99.9 ms at half capacity" "targeted-$n-half" p999_ms
		row "    CPU ms per 1000 delivered at half" "targeted-$n-half" cpu_ms_per_1k
	done
	row "(c) broadcast to $BCAST watchers, max: delivered/s" "broadcast-$BCAST" delivered_per_s
	row "    CPU ms per 1000 delivered" "broadcast-$BCAST" cpu_ms_per_1k
	row "    latency p50 ms (POST -> each frame, 16 in flight)" "broadcast-$BCAST" p50_ms
	row "    one event at a time: events/s" "broadcast-$BCAST-single" accepted_per_s
	row "    one at a time: p50 ms POST -> frame" "broadcast-$BCAST-single" p50_ms
	row "    one at a time: max ms POST -> last frame" "broadcast-$BCAST-single" max_ms
	for v in memory os; do
		d="store: sqlite, durability: fsync (the rows above)"
		[ "$v" = memory ] && d="store: memory" || true
		[ "$v" = os ] && d="store: sqlite, durability: os" || true
		echo "$d"
		row "    (a) intake: accepted events/s" "intake-$v" accepted_per_s
		row "    (b) targeted $USERS_S users, max: delivered/s" "targeted-$USERS_S-max-$v" delivered_per_s
		row "        CPU ms per 1000 delivered" "targeted-$USERS_S-max-$v" cpu_ms_per_1k
		row "        at the default's half rate: delivered/s" "targeted-$USERS_S-half-$v" delivered_per_s
		row "        CPU ms per 1000 delivered at that rate" "targeted-$USERS_S-half-$v" cpu_ms_per_1k
		row "        latency p99 ms at that rate" "targeted-$USERS_S-half-$v" p99_ms
	done
	echo "store growth (sqlite, after targeted $USERS_S max): ${DB_BYTES_PER_NOTE:--} bytes per stored notification"
	row "(d) idle memory: bytes per subscribed ws ($CONNS)" "conns-$CONNS" bytes_per_conn
	row "(e) connects/s (gw: authenticated + subscribed)" "conns-$CONNS" connects_per_s
	row "    connect p99 ms" "conns-$CONNS" connect_p99_ms
	echo "gateway CPU us per delivered by thread, targeted $USERS_S max: $(thread_split "targeted-$USERS_S-max")"
	}
	echo "http errors (requests never answered, all runs): gateway $(total gateway http_errors), nchan $(total nchan http_errors); gateway answers re-armed by its sweep: $(grep -c 'unwritten after' "$TMP/gw.err" 2>/dev/null || true)"
	echo "delivery check (events not delivered exactly as expected, all runs): gateway $(total gateway bad_events), nchan $(total nchan bad_events)"
} >"$TMP/table.txt"

mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S).txt"
{ cat "$TMP/table.txt"; echo; echo "# raw"; cat "$RESULTS"; } >"$OUT"
cat "$TMP/table.txt"
echo "raw results: $OUT"
if [ "$PERF" = 1 ] && [ -f "$TMP/perf.data" ]; then
	perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' |
		head -40 >"$OUT.perf.txt" || true
	perf report -i "$TMP/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep '%' | head -15 \
		>>"$OUT.perf.txt" || true
	echo "perf profile (targeted ${USERS_S} max): $OUT.perf.txt"
fi
