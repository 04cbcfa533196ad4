#!/usr/bin/env bash
# Installs what is missing, builds, and starts notify-gateway on its embedded
# default (127.0.0.1:8080, example rules, development keys generated into
# ./.notify-gateway, the web demo at /). Extra arguments go to the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target notify-gateway
exec build/gateway/notify-gateway "$@"
