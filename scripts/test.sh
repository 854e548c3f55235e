#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (kubectl, Prometheus) from
# Debian's packages when absent, then formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing ${missing[*]} from Debian's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
