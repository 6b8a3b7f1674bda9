#!/usr/bin/env bash
# Makes sure the binaries the cross-process tests run are on this machine: Prometheus' `prometheus`
# and `promtool` (from Debian's `prometheus` package) and the Go helpers that
# scripts/build-go-tools.sh builds. Safe to run again: when everything is present it only prints
# the versions it found.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log_prefix=ensure-test-deps
# shellcheck source=lib/debian-package.sh
source "$repo_root/scripts/lib/debian-package.sh"

have_prometheus_binaries() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
}

install_prometheus() {
  install_debian_package prometheus "promtool, prometheus" \
    "install Debian's 'prometheus' package (apt-get install prometheus), or put 'prometheus' and 'promtool' on PATH"
  stop_packaged_daemon prometheus /run/prometheus/prometheus.pid
  have_prometheus_binaries || fail "the prometheus package installed, but promtool/prometheus are still not on PATH"
}

first_line_version() {
  "$1" --version 2>&1 | head -n 1
}

if ! have_prometheus_binaries; then
  install_prometheus
fi

echo "ensure-test-deps: $(first_line_version promtool); $(first_line_version prometheus)"

bash "$repo_root/scripts/build-go-tools.sh"
# test/pipeline.test.ts: an OpenTelemetry Collector and Prometheus 3.x, built from Go modules at
# pinned versions and cached in .cache/ (minutes the first time, nothing while the pins hold).
bash "$repo_root/scripts/build-collector.sh"
bash "$repo_root/scripts/build-prometheus3.sh"
