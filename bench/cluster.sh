# bench/cluster.sh - bench/run.sh --cluster "N ...": cluster mode (issue 13)
# on this machine. Sourced by run.sh (uses its options, $TMP, $GW_BIN, $LG_BIN,
# rules.yml, free_port, field); not run on its own.
#
# For each N: a real redis-server (AOF everysec, its own temp dir, a free port,
# started fresh for every scenario so that each starts on an empty store) and
# N gateway nodes sharing it (one rule file; the signing key, the dev FIT key
# and the dev subscriber secret copied from node 0, as
# tests/blackbox/cluster.test.mjs shares its keys). For each --cluster-embedded
# durability: one node on the embedded store (sqlite). notify-loadgen spreads
# its HTTP connections and websocket users round robin over the nodes
# (--port P1,P2,...), sums the nodes' CPU (--server-pid A,B,...) and reads
# Redis' apart (--redis-pid). Around each loadgen run the nodes' /metrics
# counters (redis_round_trips, events_processed, ...) and Redis'
# INFO commandstats are read; their deltas go into the RESULT line.

NODE_PORTS=()
REDIS_PORT=""

start_redis() {
	local dir="$TMP/redis"
	rm -rf "$dir"
	mkdir -p "$dir"
	REDIS_PORT=$(free_port 18300)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly yes \
		--appendfsync everysec --daemonize no >"$dir/log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.05
	done
	echo "redis-server did not start:" >&2; cat "$dir/log" >&2; exit 1
}

stop_redis() {
	if [ -n "$REDIS_PID" ]; then
		kill -TERM "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=""
	fi
	rm -rf "$TMP/redis"
}

# start_nodes N [gateway options...]: N nodes on $REDIS_PORT; N = 0: one node
# on the embedded store (a fresh notify.db).
start_nodes() {
	local n=$1 count i sd out port
	shift
	count=$n
	[ "$n" = 0 ] && count=1
	NODE_PIDS=() NODE_PORTS=()
	for i in $(seq 0 $((count - 1))); do
		sd="$TMP/node$i" out="$TMP/node$i.out"
		mkdir -p "$sd"
		: >"$out"
		: >"$TMP/node$i.err"
		rm -f "$sd/notify.db" "$sd/notify.db-wal" "$sd/notify.db-shm"
		# one cluster: every node signs with node 0's key and trusts its dev keys
		[ "$i" -gt 0 ] && cp -p "$TMP/node0/signing-key.pem" "$TMP/node0/dev-forge-key.pem" \
			"$TMP/node0/dev-forge-jwks.json" "$TMP/node0/dev-subscriber-secret" "$sd/"
		local cl=()
		[ "$n" != 0 ] && cl=(--redis "redis://127.0.0.1:$REDIS_PORT/0" --node-id "n$i")
		"$GW_BIN" --state-dir "$sd" --listen 127.0.0.1:0 --rules "$TMP/rules.yml" --log-level warn \
			--workers "$WORKERS" --limits-queue 100000 ${EVENT_LOOP:+--event-loop "$EVENT_LOOP"} \
			${cl[@]+"${cl[@]}"} "$@" >"$out" 2>>"$TMP/node$i.err" &
		NODE_PIDS+=($!)
		port=""
		for _ in $(seq 200); do
			port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$out")
			[ -n "$port" ] && break
			sleep 0.05
		done
		[ -n "$port" ] || { echo "node $i did not start:" >&2; cat "$TMP/node$i.err" >&2; exit 1; }
		NODE_PORTS+=("$port")
	done
}

stop_nodes() {
	local p
	for p in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
	for p in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
	NODE_PIDS=() NODE_PORTS=()
}

# node_counters: "name=value ..." of the counters below, summed over the nodes
CL_COUNTERS="redis_round_trips events_processed events_accepted redis_seq_conflicts cluster_resigned_passes redis_claimed redis_errors redis_broker_received redis_broker_dropped cluster_resume_closes redis_busy_timeouts events_rejected_store events_rejected_queue_full events_rejected_busy events_rejected_body_budget events_rejected_unverified_cap events_rejected_body_timeout"
node_counters() {
	local p
	for p in "${NODE_PORTS[@]}"; do curl -s -m 5 "http://127.0.0.1:$p/metrics" || true; done |
		awk -v want="$CL_COUNTERS" '
			BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) s[w[i]] = 0 }
			/^notify_gateway_[a-z_]*_total / { k = $1; sub(/^notify_gateway_/, "", k); sub(/_total$/, "", k)
				if (k in s) s[k] += $2 }
			# a family (metrics.c): events_rejected_total{reason="store"} is stats.h events_rejected_store
			/^notify_gateway_[a-z_]*_total\{[a-z]*="[a-z_]*"\} / { k = $1; sub(/^notify_gateway_/, "", k)
				sub(/_total\{[a-z]*="/, "_", k); sub(/"\}$/, "", k); if (k in s) s[k] += $2 }
			END { for (i = 1; i <= n; i++) printf "%s=%d ", w[i], s[w[i]] }'
}

kv() { # kv "a=1 b=2" KEY
	echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# run_cluster LABEL N SCENARIO [loadgen options...]: fresh Redis (N > 0) and
# nodes, one loadgen run over all of them, the RESULT line with the counters'
# deltas appended to $RESULTS. N = 0: the embedded store, GW_EXTRA options.
run_cluster() {
	local label=$1 n=$2 sc=$3 rc=0
	shift 3
	[ "$n" != 0 ] && start_redis
	start_nodes "$n" ${GW_EXTRA[@]+"${GW_EXTRA[@]}"}
	local ports pids
	ports=$(IFS=,; echo "${NODE_PORTS[*]}")
	pids=$(IFS=,; echo "${NODE_PIDS[*]}")
	# one idle second: the claim threads' polling, subtracted below as idle round trips
	local c0 c1 c2 t1 t2
	c0=$(node_counters)
	sleep 1
	c1=$(node_counters)
	t1=$(date +%s.%N)
	[ "$n" != 0 ] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
	echo "== cluster $label (nodes on ${ports}): notify-loadgen $sc $*" >&2
	"$LG_BIN" "$sc" --target gateway --port "$ports" --state-dir "$TMP/node0" --server-pid "$pids" \
		${REDIS_PID:+--redis-pid "$REDIS_PID"} --run-id "$label" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	t2=$(date +%s.%N)
	c2=$(node_counters)
	sed 's/^/   /' "$TMP/err" | grep -v '^   $' >&2 || true
	local extra="store=$([ "$n" = 0 ] && echo "sqlite-${CL_DUR:-fsync}" || echo redis) nodes=$((n > 0 ? n : 1))"
	local k d idle
	for k in $CL_COUNTERS; do
		d=$(($(kv "$c2" "$k") - $(kv "$c1" "$k")))
		extra="$extra d_$k=$d"
	done
	idle=$(awk -v a="$(kv "$c0" redis_round_trips)" -v b="$(kv "$c1" redis_round_trips)" \
		'BEGIN { printf "%.0f", b - a }')
	extra="$extra idle_rt_per_s=$idle run_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')"
	if [ "$n" != 0 ]; then
		# Redis' own account: calls and CPU (usec) per command, scripts' inner commands included
		redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$TMP/cmdstats-$label.txt" || true
		extra="$extra $(awk -F'[:,=]' '{ c = $1; sub(/^cmdstat_/, "", c); gsub(/\|/, "_", c)
			printf "cs_%s=%s/%s ", c, $3, $5 }' "$TMP/cmdstats-$label.txt")"
		extra="$extra redis_used_memory=$(redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')"
	fi
	stop_nodes
	stop_redis
	# the nodes' log lines (--log-level warn) beyond the development-mode notices, kept with the results
	grep -hv 'development mode' "$TMP"/node*.err >"$TMP/nodelog-$label.txt" 2>/dev/null || true
	extra="$extra gw_log_lines=$(wc -l <"$TMP/nodelog-$label.txt")"
	awk -v x="label=$label $extra" 'sub(/^RESULT /, "") { print "RESULT " x " " $0 }' "$TMP/out" >>"$RESULTS"
	return $rc
}

# ---- the runs --------------------------------------------------------------------
cl_configs() { # "redis:N" for each N, "sqlite:D" for each embedded durability
	local n d
	for d in $CL_EMBEDDED; do echo "sqlite:$d"; done
	for n in $CLUSTER; do echo "redis:$n"; done
}

cl_want() { # cl_want SCENARIO: in --cluster-scenarios
	case " $CL_SCENARIOS " in *" $1 "*) return 0 ;; esac
	return 1
}

cl_all() {
	local cfg kind arg n tag rc=0
	for cfg in $(cl_configs); do
		kind=${cfg%%:*} arg=${cfg#*:}
		GW_EXTRA=() CL_DUR=""
		if [ "$kind" = sqlite ]; then
			n=0 tag="sqlite-$arg" CL_DUR=$arg
			GW_EXTRA=(--durability "$arg")
		else
			n=$arg tag="redis-$arg"
		fi
		if [ "$SMOKE" = 1 ]; then
			run_cluster "$tag-smoke-targeted" "$n" targeted --users 50 --events 500 --rate 1000 --warmup 0.1 \
				--duration 5 --drain 10 --expect-exact || rc=1
			run_cluster "$tag-smoke-broadcast" "$n" broadcast --users 50 --events 20 --rate 50 --warmup 0.1 \
				--duration 5 --drain 10 --expect-exact || rc=1
			continue
		fi
		local common=(--warmup "$WARM" --duration "$DUR" --drain 20)
		cl_want intake && run_cluster "$tag-intake" "$n" intake "${common[@]}" --http-conns 64 || true
		cl_want targeted-max && run_cluster "$tag-targeted-max" "$n" targeted --users "$USERS_S" \
			"${common[@]}" --http-conns 64 --window 1024 || true
		cl_want targeted-rate && run_cluster "$tag-targeted-$CL_RATE" "$n" targeted --users "$USERS_S" \
			"${common[@]}" --rate "$CL_RATE" --http-conns 16 || true
		cl_want broadcast && run_cluster "$tag-broadcast" "$n" broadcast --users "$BCAST" "${common[@]}" \
			--window 16 || true
	done
	GW_EXTRA=()
	return $rc
}

# ---- the table ------------------------------------------------------------------------
cl_row() { # cl_row LABEL SCENARIO-TITLE
	local l=$1 line
	line=$({ grep "label=$l " "$RESULTS" || true; } | tail -1)
	[ -z "$line" ] && { printf '%-14s %-17s %s\n' "${l%%-[it]*}" "$2" "(no result)"; return; }
	echo "$line" | tr ' ' '\n' | awk -F= -v title="$2" -v label="$l" '
		NF >= 2 { v[$1] = substr($0, length($1) + 2) }
		END {
			cfg = label; sub(/-(intake|targeted-.*|broadcast)$/, "", cfg)
			intake = v["scenario"] == "intake"
			rate = intake ? v["accepted_per_s"] : v["delivered_per_s"]
			units = (intake ? v["accepted_per_s"] : v["delivered_per_s"]) * v["window_s"]
			gw = units > 0 ? v["server_cpu_s"] / units * 1e6 : 0
			rd = units > 0 ? v["redis_cpu_s"] / units * 1e6 : 0
			ev = v["d_events_processed"]
			net = v["d_redis_round_trips"] - v["idle_rt_per_s"] * v["run_s"]
			if (net < 0) net = 0
			rt = ev > 0 ? sprintf("%.2f/%.2f", v["d_redis_round_trips"] / ev, net / ev) : "-"
			if (v["store"] != "redis") rt = "-"
			cf = ev > 0 && v["store"] == "redis" ? sprintf("%.3f", v["d_redis_seq_conflicts"] / ev) : "-"
			ok = v["bad_events"] + v["dups"] + v["misdelivered"] + v["unmatched"]
			printf "%-14s %-17s %9.0f %8.1f %8.1f %11s %8s %8.2f %8.2f %7.2f %6s %5d %5d\n", cfg, title, rate, gw,
				rd, rt, cf, v["p50_ms"], v["p99_ms"], v["other_cpu_s"], ok == 0 ? "yes" : "NO " ok, v["rejected"],
				v["d_cluster_resume_closes"]
		}'
}

cl_table() {
	echo "notify-gateway cluster bench  ($(date -u +%FT%TZ), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
	echo "gateway $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') $GW_BIN; $(redis-server --version | cut -d' ' -f1-3) (AOF everysec, one per run, same machine)"
	echo "workers=$WORKERS per node, duration=${DUR}s warmup=${WARM}s; users $USERS_S (targeted), $BCAST watchers (broadcast); HTTP and websockets round robin over the nodes"
	echo "rate: delivered/s (intake: accepted/s); gw/redis us: CPU per delivered notification (intake: per accepted event), gateways summed"
	echo "rt/ev: gateway->Redis round trips per processed event, all / minus the idle claim polling; conflicts: seq conflicts per event"
	echo "exact: every event answered 202 delivered exactly once (and each 503'd one fully or not at all); other_s: CPU-s of other processes in the window"
	echo "1012: websockets a node closed with 1012 'resume with since' (its Redis subscriber was made again: docs/cluster.md); notify-loadgen does not resume, so their later notifications count as missing"
	printf '%-14s %-17s %9s %8s %8s %11s %8s %8s %8s %7s %6s %5s %5s\n' config scenario rate "gw us" "redis us" "rt/ev" \
		conflicts "p50 ms" "p99 ms" "other_s" "exact" "503" "1012"
	local cfg tag
	for cfg in $(cl_configs); do
		tag="${cfg%%:*}-${cfg#*:}"
		cl_want intake && cl_row "$tag-intake" intake
		cl_want targeted-max && cl_row "$tag-targeted-max" "targeted max"
		cl_want targeted-rate && cl_row "$tag-targeted-$CL_RATE" "targeted $CL_RATE/s"
		cl_want broadcast && cl_row "$tag-broadcast" "broadcast $BCAST"
	done
	echo "delivery check (events answered 202 not delivered exactly once, all runs): $(total gateway bad_events) bad, $(total gateway dups) duplicate frames, $(total gateway misdelivered) misdelivered; http errors $(total gateway http_errors)"
	echo "answered 503 (not lost: Forge retries; each delivered fully or not at all): $(total gateway rejected) ($(total gateway d_events_rejected_store) store: journal not answered within cluster.timeout; $(total gateway d_redis_busy_timeouts) calls gave up waiting for a shard's connection)"
}

cl_main() {
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
		{ echo "run.sh --cluster: redis-server and redis-cli are needed (scripts/setup.sh installs them)" >&2; exit 2; }
	local rc=0
	cl_all || rc=1
	if [ "$SMOKE" = 1 ]; then
		cat "$RESULTS"
		[ $rc = 0 ] && echo "bench cluster smoke: every event delivered exactly once" ||
			echo "bench cluster smoke: FAILED" >&2
		exit $rc
	fi
	cl_table >"$TMP/table.txt"
	mkdir -p "$ROOT/bench/results"
	local out
	out="$ROOT/bench/results/cluster-$(date -u +%Y%m%d-%H%M%S).txt"
	{ cat "$TMP/table.txt"; echo; echo "# raw"; cat "$RESULTS"; echo; echo "# INFO commandstats per run"
		for f in "$TMP"/cmdstats-*.txt; do [ -f "$f" ] && { echo "## ${f##*/cmdstats-}"; cat "$f"; }; done
		echo; echo "# the nodes' log lines per run (first 20)"
		for f in "$TMP"/nodelog-*.txt; do [ -s "$f" ] && { echo "## ${f##*/nodelog-}"; head -20 "$f"; }; done; } >"$out"
	cat "$TMP/table.txt"
	echo "raw results: $out"
	[ "$(total gateway bad_events)" = 0 ] && [ "$(total gateway dups)" = 0 ] &&
		[ "$(total gateway misdelivered)" = 0 ] || exit 1
	exit 0
}
