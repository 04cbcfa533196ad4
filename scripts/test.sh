#!/usr/bin/env bash
# Installs what is missing, builds with -Werror, and runs every test:
#   1. the whole ctest suite (C unit tests + black-box tests of the real binary
#      driven by Node's ws/jose clients);
#   2. the C unit tests and the black-box tests again on an AddressSanitizer +
#      UndefinedBehaviorSanitizer build;
#   3. the rule-engine fuzzers (libFuzzer, clang) for FUZZ_SECONDS each
#      (default 60), when clang and its fuzzer runtime are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
jobs=$(nproc)

echo "== build (-Werror)"
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON >/dev/null
cmake --build build-ci -j"$jobs"
echo "== tests"
ctest --test-dir build-ci -j"$jobs" --output-on-failure

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGW_WERROR=ON -DGW_SANITIZE=address,undefined,float-cast-overflow >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure

# ---- fuzz (rule engine) ------------------------------------------------------
# Built with clang in its own tree; tests/fuzz/CMakeLists.txt skips itself when
# the compiler is not clang or libFuzzer is missing, leaving no fuzz tests.
if command -v clang >/dev/null; then
  echo "== build (fuzz, clang)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz_expr fuzz_rules 2>/dev/null ||
    echo "fuzz: targets not built (no libFuzzer runtime?)"
  echo "== fuzz (seed ${FUZZ_SEED:-1}, at most ${FUZZ_SECONDS:=90} s per target)"
  FUZZ_SECONDS=$FUZZ_SECONDS ctest --test-dir build-fuzz -L fuzz --output-on-failure --no-tests=ignore
else
  echo "== fuzz: skipped (clang not installed; scripts/setup.sh installs it)"
fi
