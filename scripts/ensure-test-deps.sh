#!/usr/bin/env bash
# Makes sure the binaries the cross-process tests run are on this machine: Prometheus' `prometheus`
# and `promtool` (from Debian's `prometheus` package) and the Go helpers that
# scripts/build-go-tools.sh builds. Safe to run again: when everything is present it only prints
# the versions it found.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
policy_helper=/usr/sbin/policy-rc.d
created_policy_helper=false

fail() {
  echo "ensure-test-deps: $*" >&2
  exit 1
}

have_prometheus_binaries() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 127
  fi
}

remove_policy_helper() {
  if [[ "$created_policy_helper" == true ]]; then
    as_root rm -f "$policy_helper" || true
  fi
}

# Debian's package ships an init script, and its postinst runs `invoke-rc.d prometheus start`.
# Without an init system that would either hang, fail the install, or leave a daemon holding :9090.
# A policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d skip the start and succeed.
forbid_service_starts() {
  if [[ -e "$policy_helper" ]]; then
    return 0
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_helper" >/dev/null
  as_root chmod 0755 "$policy_helper"
  created_policy_helper=true
}

# Belt and braces: if some init system did start the packaged service anyway, stop it, so that no
# daemon outlives the install and squats on :9090.
stop_packaged_daemon() {
  local pidfile=/run/prometheus/prometheus.pid
  if [[ -f "$pidfile" ]]; then
    local pid
    pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      echo "ensure-test-deps: stopping the prometheus service the package started (pid $pid)" >&2
      as_root kill -TERM "$pid" || true
    fi
  fi
}

install_prometheus() {
  local install_hint="install Debian's 'prometheus' package (apt-get install prometheus), or put 'prometheus' and 'promtool' on PATH"
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "promtool/prometheus not found and apt-get is unavailable: $install_hint"
  fi
  if ! as_root true 2>/dev/null; then
    fail "promtool/prometheus not found and this user is not root and has no passwordless sudo: $install_hint"
  fi
  echo "ensure-test-deps: installing Debian's prometheus package (promtool, prometheus)" >&2
  trap remove_policy_helper EXIT
  forbid_service_starts
  local log
  log="$(mktemp)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
    ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold prometheus </dev/null >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    fail "apt-get could not install 'prometheus' (output above): $install_hint"
  fi
  rm -f "$log"
  remove_policy_helper
  trap - EXIT
  stop_packaged_daemon
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
