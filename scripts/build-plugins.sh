#!/usr/bin/env bash
# Builds every plugin shipped in this repository (and the test plugins) into components under
# target/plugins/ with `metrics-gateway plugin build`. When no wasm toolchain is present it
# installs Debian's (rustc-web, cargo-web, rust-web-src, rust-web-llvm, lld-22; the list of
# DEBIAN_PACKAGES in host/src/plugin_dev/build.rs; see docs/PLUGINS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
   && ! { [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] && [ -x /usr/bin/rust-lld ]; }; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing the wasm toolchain for plugins from Debian's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    rustc-web cargo-web rust-web-src rust-web-llvm lld-22 >/dev/null
fi

cargo build --locked -q -p metrics-gateway --bin metrics-gateway
for dir in plugins/*/ tests/plugins/*/; do
  ./target/debug/metrics-gateway plugin build --no-install "$dir" >/dev/null
done
echo "plugins built: $(cd target/plugins && ls *.wasm | tr '\n' ' ')" >&2
