#!/usr/bin/env bash
# Regenerates the Helm chart (config/deploy/helm/metrics-gateway) from the kustomize base
# (config/deploy/base), the primary manifests. Run after changing the base; the deploy tests
# fail while the chart is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked -q -p metrics-gateway-testkit --bin gen-helm-chart
