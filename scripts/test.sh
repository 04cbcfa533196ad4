#!/usr/bin/env bash
# Installs what is missing, builds with -Werror, and runs every test:
#   1. the whole ctest suite (C unit tests + black-box tests of the real binary
#      driven by Node's ws/jose clients, browser tests);
#   2. the C unit tests and the black-box tests again on an AddressSanitizer +
#      UndefinedBehaviorSanitizer build;
#   3. the C unit tests and a few black-box tests (delivery, intake, burst,
#      reload) on a ThreadSanitizer build; any report fails the stage
#      (suppressions for uninstrumented libraries only: tests/tsan/);
#   4. the libFuzzer targets (tests/fuzz: rule engine, tokens, intake body,
#      websocket frames) for FUZZ_SECONDS each (default 45), $(nproc) at a
#      time. clang and its fuzzer runtime are required (setup.sh installs
#      them): a fuzzer that does not build fails the run.
# The four build trees are built at the same time (their logs are printed
# when a build fails); the test stages run one after another, each with
# ctest -j$(nproc). Each stage prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
jobs=$(nproc)
# stage NAME: ends the stage running (printing its wall time), starts NAME.
t_start=$SECONDS; stage_start=$SECONDS; stage_name=""
stage() {
  [ -z "$stage_name" ] || echo "-- $stage_name: $((SECONDS - stage_start)) s (total $((SECONDS - t_start)) s)"
  stage_name=$1; stage_start=$SECONDS
  [ "$1" = done ] || echo "== $1"
}

command -v clang >/dev/null || { echo "test.sh: clang is missing (scripts/setup.sh installs it)" >&2; exit 1; }

# ---- builds, in parallel ------------------------------------------------------
stage "configure + build: -Werror, ASan + UBSan, TSan, fuzz (clang), in parallel"
logs=$(mktemp -d)
build() { # name, cmake configure args...
  local name=$1; shift
  { cmake -S . -B "$name" "$@" && cmake --build "$name" -j"$jobs"; } >"$logs/$name.log" 2>&1
}
build build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON & p1=$!
build build-asan -DCMAKE_BUILD_TYPE=Debug -DGW_WERROR=ON -DGW_SANITIZE=address,undefined,float-cast-overflow & p2=$!
build build-tsan -DCMAKE_BUILD_TYPE=Debug -DGW_WERROR=ON -DGW_SANITIZE=thread -DGW_WITH_LOADGEN=OFF & p3=$!
# The fuzz tree builds its fuzzers only (target "fuzzers"); tests/fuzz makes
# no targets without clang's fuzzer runtime, so a missing runtime fails here.
{ CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WITH_LOADGEN=OFF &&
  cmake --build build-fuzz -j"$jobs" --target fuzzers; } >"$logs/build-fuzz.log" 2>&1 & p4=$!
failed=0
for b in "$p1:build-ci" "$p2:build-asan" "$p3:build-tsan" "$p4:build-fuzz"; do
  if ! wait "${b%%:*}"; then
    echo "== ${b#*:}: BUILD FAILED" >&2; tail -60 "$logs/${b#*:}.log" >&2; failed=1
  fi
done
[ $failed = 0 ] || exit 1
rm -rf "$logs"

stage "tests"
ctest --test-dir build-ci -j"$jobs" --output-on-failure

stage "tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure

# ---- ThreadSanitizer ----------------------------------------------------------
# Reports go to files as well as failing the process (halt_on_error): a
# gateway that dies at shutdown may go unnoticed by its test, its report not.
stage "tests under TSan (unit; black-box delivery, intake, burst, reload)"
tsan_logs=$PWD/build-tsan/tsan-reports
rm -rf "$tsan_logs"; mkdir -p "$tsan_logs"
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan/suppressions.txt halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_logs/report"
tsan_ok=1
ctest --test-dir build-tsan -j"$jobs" --output-on-failure -L unit || tsan_ok=0
ctest --test-dir build-tsan -j"$jobs" --output-on-failure \
  -R '^blackbox\.(delivery|intake|burst|reload)$' || tsan_ok=0
unset TSAN_OPTIONS
if compgen -G "$tsan_logs/report*" >/dev/null; then
  echo "== ThreadSanitizer reports:" >&2; cat "$tsan_logs"/report* >&2; tsan_ok=0
fi
[ $tsan_ok = 1 ] || { echo "== TSan stage failed" >&2; exit 1; }

# ---- fuzz ---------------------------------------------------------------------
stage "fuzz (seed ${FUZZ_SEED:-1}, at most ${FUZZ_SECONDS:=45} s per target, $jobs at a time)"
FUZZ_SECONDS=$FUZZ_SECONDS ctest --test-dir build-fuzz -L fuzz -j"$jobs" --output-on-failure --no-tests=error
stage "done"
