#!/usr/bin/env bash
# unit.sh SOURCE_DIR BINARY - packaging/notify-gateway.service passes
# `systemd-analyze verify` without a single complaint, and its sandboxing
# rates an exposure of 2.0 or lower in `systemd-analyze security`.
# verify checks that ExecStart exists, so the unit is verified with its
# ExecStart pointing at the built binary (nothing else changes); the man:
# links are checked by deb.sh (man -l), not here.
set -euo pipefail
src=$1 bin=$2
tmp=$(mktemp -d /tmp/ngw-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unit=$src/packaging/notify-gateway.service

grep -q '^ExecStart=/usr/bin/notify-gateway ' "$unit" || fail "unexpected ExecStart"
sed "s#^ExecStart=/usr/bin/notify-gateway #ExecStart=$bin #" "$unit" >"$tmp/notify-gateway.service"
systemd-analyze verify --man=no "$tmp/notify-gateway.service" >"$tmp/verify" 2>&1 || { cat "$tmp/verify"; fail "verify"; }
[ ! -s "$tmp/verify" ] || { cat "$tmp/verify"; fail "systemd-analyze verify complains"; }
echo "systemd-analyze verify: clean"

mkdir -p "$tmp/root/lib/systemd/system"
cp "$unit" "$tmp/root/lib/systemd/system/"
systemd-analyze security --offline=true --root="$tmp/root" notify-gateway.service >"$tmp/sec" 2>&1 || true
line=$(grep 'Overall exposure level' "$tmp/sec") || { cat "$tmp/sec"; fail "no exposure level"; }
echo "$line"
score=$(sed -n 's/.*notify-gateway.service: \([0-9.]*\).*/\1/p' <<<"$line")
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { grep '✗' "$tmp/sec"; fail "exposure $score > 2.0"; }
grep -q '^LimitNOFILE=65600$' "$unit" || fail "LimitNOFILE no longer limits.max_fds (65536) + 64"
grep -q '^  max_fds: 65536$' "$src/packaging/config.yml" || fail "config.yml's limits.max_fds no longer 65536"
echo "ok"
