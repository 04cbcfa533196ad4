#!/usr/bin/env bash
# Installs whatever notify-gateway needs on Debian 12 and is missing; idempotent.
# Usage: scripts/setup.sh [--with-browser] [--with-node] [--with-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config openssl
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev libjwt-dev libssl-dev libpcre2-dev libyaml-dev
  libsqlite3-dev sqlite3  # the embedded store; sqlite3: the shell to inspect notify.db
  libhiredis-dev redis-server redis-tools  # cluster mode (store_redis.c); redis-server for its tests
  clang libclang-rt-14-dev  # clang + its libFuzzer runtime: the rule-engine fuzzers
  libsystemd-dev  # sd_notify (Type=notify service)
  prometheus lintian dpkg-dev file man-db)  # ops tests: promtool check metrics, the .deb (dpkg-shlibdeps, lintian), man -l
want_node=0; want_browser=0; want_bench=0
for a in "$@"; do
  case "$a" in
    --with-node) want_node=1 ;;
    --with-browser) want_node=1; want_browser=1 ;;
    --with-bench) want_bench=1 ;;  # bench/run.sh's other server: nginx + nchan
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
[ $want_node = 1 ] && APT_PACKAGES+=(nodejs)
[ $want_browser = 1 ] && APT_PACKAGES+=(chromium firefox-esr)
[ $want_bench = 1 ] && APT_PACKAGES+=(nginx-light libnginx-mod-nchan)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs may come from another source than Debian's archive; a working node+npm is enough.
if [ $want_node = 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" npm 2>/dev/null ||
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ $want_node = 1 ] && [ -f tests/blackbox/package.json ]; then
  if [ ! -d tests/blackbox/node_modules ] || [ tests/blackbox/package-lock.json -nt tests/blackbox/node_modules ]; then
    (cd tests/blackbox && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

if [ $want_browser = 1 ] && [ -f tests/browser/package.json ]; then
  if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
