#!/usr/bin/env bash
# Installs what is missing, builds with -Werror, and runs every test:
#   1. the whole ctest suite (C unit tests + black-box tests of the real binary
#      driven by Node's ws/jose clients);
#   2. the C unit tests and the black-box tests again on an AddressSanitizer +
#      UndefinedBehaviorSanitizer build.
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
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGW_WERROR=ON -DGW_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure
