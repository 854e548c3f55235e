#!/usr/bin/env bash
# Builds and runs the demo: simulated kubelets and API server with the gateway behind them.
# Extra arguments go to `metrics-gateway demo` (e.g. --nodes 200 --pods-per-node 30).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked -p metrics-gateway -- demo "$@"
