#!/usr/bin/env bash
# Builds every plugin shipped in this repository (and the test plugins) into components under
# target/plugins/, with `metrics-gateway plugin build`, which picks or installs the wasm toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q -p metrics-gateway --bin metrics-gateway
for dir in plugins/*/ tests/plugins/*/; do
  ./target/debug/metrics-gateway plugin build "$dir" >/dev/null
done
ls target/plugins/*.wasm | xargs -n1 basename | tr '\n' ' '
echo
