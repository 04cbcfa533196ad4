#!/bin/sh
# run.sh FUZZER KIND WORKDIR SOURCE_DIR - runs one libFuzzer target for
# $FUZZ_SECONDS (else $FUZZ_SECONDS_DEFAULT, else 60) seconds on a seed corpus:
#   expr:  every expression of tests/unit/rules/cases/*.txt and of the
#          Jira-expressions conformance table (conformance/*.txt), one file each;
#   rules: docs/examples/*.yml, tests/fuzz/seeds/*.yml and the rule files under
#          tests/;
#   others: the committed seed corpus tests/fuzz/corpus/KIND/.
# New inputs go to WORKDIR/corpus (never into the source tree); a crash
# leaves its reproducer in WORKDIR and fails the test.
set -eu
fuzzer=$1 kind=$2 work=$3 src=$4
secs=${FUZZ_SECONDS:-${FUZZ_SECONDS_DEFAULT:-60}}
mkdir -p "$work/corpus" "$work/seeds"
if [ "$kind" = expr ]; then
  # a case is three lines (expression, event, expected); take the first
  # (conformance cases follow an "@ URL" line; a line ending in a backslash
  # continues the expression)
  awk -v dir="$work/seeds" '
    /^#/ && n == 0 { next }
    /^@ / && n == 0 { next }
    /^$/ { n = 0; next }
    n == 0 && /\\$/ { acc = acc substr($0, 1, length($0) - 1) "\n"; next }
    { if (n == 0) { f = sprintf("%s/case-%05d", dir, ++k); printf "%s", acc $0 > f; close(f); acc = "" } n++ }
  ' "$src"/tests/unit/rules/cases/*.txt "$src"/tests/unit/rules/conformance/*.txt
elif [ "$kind" = rules ]; then
  cp "$src"/docs/examples/*.yml "$src"/tests/fuzz/seeds/*.yml "$work/seeds/"
  find "$src/tests" -name '*.yml' -path '*fixtures*' -exec cp {} "$work/seeds/" \; 2>/dev/null || true
else
  cp "$src/tests/fuzz/corpus/$kind"/* "$work/seeds/"
fi
# Reproducible by default: a fixed seed and a fresh corpus each run, so a run
# explores the same inputs on every machine (FUZZ_SEED=0 picks a random seed
# for exploration). FUZZ_RUNS bounds the executions (defaults: about 50 s of
# work each on this machine); the time bounds slower machines, which then run
# a prefix of the same sequence.
rm -rf "$work/corpus" "$work"/fuzz-*-keys-*
mkdir -p "$work/corpus"
cd "$work"
case $kind in
  expr) runs=${FUZZ_RUNS:-1500000} ;;
  token) runs=${FUZZ_RUNS:-200000} ;; # the RS256 signing mode costs ~1 ms an input
  *) runs=${FUZZ_RUNS:-500000} ;;
esac
exec "$fuzzer" -seed="${FUZZ_SEED:-1}" -runs="$runs" -max_total_time="$secs" -timeout=10 \
  -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 corpus seeds
