#!/usr/bin/env bash
# Builds and runs the demo: simulated kubelets and API server with the gateway behind them,
# loading the shipped plugins. Extra arguments go to `metrics-gateway demo`
# (e.g. --nodes 200 --pods-per-node 30).
set -euo pipefail
cd "$(dirname "$0")/.."
# The plugins (the first build also builds Rust's std for wasm: a few minutes, once).
bash scripts/build-plugins.sh >&2
exec cargo run --locked -q -p metrics-gateway -- demo "$@"
