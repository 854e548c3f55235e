#!/usr/bin/env bash
# Measures issue 2's figures on this machine (see docs/PERFORMANCE.md):
#   1. installs Prometheus from Debian's packages when absent (the CPU comparison needs it);
#   2. builds the release binaries (metrics-gateway, sim-cluster, bench-collection,
#      bench-adapter);
#   3. runs the criterion benches of the collection hot path, the parser, the plugin runtime
#      (wasm vs native), the Summary API decoder and the cluster-state samples;
#   4. runs bench-collection: 5,000 simulated kubelets, the gateway and Prometheus side by side;
#   5. runs bench-collection again without Prometheus, once without plugins and once with the
#      shipped plugins (config/demo-plugins.toml), for the CPU the plugins add to a cycle;
#   6. runs bench-adapter: issue 4's figures for the prometheus-adapter-compat plugin against a
#      real Prometheus (HPA request latency over 2,000 pods, queries per cycle, memory with
#      100,000 discovered series).
# Extra arguments go to bench-collection (e.g. --nodes 500 --cycles 3 for a quick look; see
# `target/release/bench-collection --help`). Set SKIP_CRITERION=1 to skip step 3.
# Results: target/bench/collection.md (the end-to-end report), target/bench/plugins-{off,on}.md,
# target/bench/adapter.md and target/criterion/ (criterion).
# Stop other heavy work first: every figure is measured on the machine's 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing prometheus from Debian's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The Debian package starts a system Prometheus on :9090; it would compete for the CPU.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  echo "note: a system prometheus service is running and will disturb the figures" >&2
fi

cargo build --release --locked -p metrics-gateway --bin metrics-gateway
cargo build --release --locked -p metrics-gateway-testkit --bin sim-cluster --bin bench-collection \
  --bin bench-adapter
bash scripts/build-plugins.sh

if [ "${SKIP_CRITERION:-0}" != 1 ]; then
  cargo bench --locked -p metrics-gateway --bench collection
  cargo bench --locked -p metrics-gateway --bench promtext
  cargo bench --locked -p metrics-gateway --bench plugins
  cargo bench --locked -p metrics-gateway --bench summary
  cargo bench --locked -p metrics-gateway --bench cluster_samples
  cargo bench --locked -p metrics-gateway --bench auth
fi

mkdir -p target/bench
target/release/bench-collection \
  --sim-bin target/release/sim-cluster \
  --gateway-bin target/release/metrics-gateway \
  --out target/bench/collection.md "$@"
for plugins in off on; do
  flags=()
  [ "$plugins" = on ] && flags=(--plugins-dir target/plugins)
  target/release/bench-collection --no-prometheus \
    --sim-bin target/release/sim-cluster \
    --gateway-bin target/release/metrics-gateway \
    --out "target/bench/plugins-$plugins.md" "${flags[@]}" "$@"
done
target/release/bench-adapter \
  --sim-bin target/release/sim-cluster \
  --gateway-bin target/release/metrics-gateway \
  --plugin target/plugins/prometheus-adapter-compat.wasm \
  --out target/bench/adapter.md
echo "results: target/bench/collection.md (end to end), target/bench/plugins-{off,on}.md," \
  "target/bench/adapter.md, target/criterion/ (criterion benches)" >&2
