#!/usr/bin/env bash
# Makes sure the binaries the proxy benchmark compares against are on this machine: HAProxy (from
# Debian's `haproxy` package). Safe to run again: when haproxy is present it only prints its version.
set -euo pipefail

policy_helper=/usr/sbin/policy-rc.d
created_policy_helper=false

fail() {
  echo "ensure-bench-deps: $*" >&2
  exit 1
}

# Debian installs haproxy in /usr/sbin, which is not on a non-root user's PATH.
haproxy_binary() {
  command -v haproxy 2>/dev/null || { [[ -x /usr/sbin/haproxy ]] && echo /usr/sbin/haproxy; }
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

# Debian's package ships a systemd unit and an init script, and its postinst asks invoke-rc.d to
# start the service. A policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d skip the
# start and succeed, so that no haproxy daemon outlives the install and competes for the 2 cores.
forbid_service_starts() {
  if [[ -e "$policy_helper" ]]; then
    return 0
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_helper" >/dev/null
  as_root chmod 0755 "$policy_helper"
  created_policy_helper=true
}

# Belt and braces: if some init system started the packaged service anyway, stop it. The bench
# starts its own haproxy with a generated config, and a second one would skew its CPU figures.
stop_packaged_daemon() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
    echo "ensure-bench-deps: stopping the haproxy service the package started" >&2
    as_root systemctl stop haproxy || true
  fi
  local pidfile=/run/haproxy.pid
  if [[ -f "$pidfile" ]]; then
    local pid
    pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      echo "ensure-bench-deps: stopping the haproxy service the package started (pid $pid)" >&2
      as_root kill -TERM "$pid" || true
    fi
  fi
}

install_haproxy() {
  local install_hint="install Debian's 'haproxy' package (apt-get install haproxy), or put 'haproxy' on PATH"
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "haproxy not found and apt-get is unavailable: $install_hint"
  fi
  if ! as_root true 2>/dev/null; then
    fail "haproxy not found and this user is not root and has no passwordless sudo: $install_hint"
  fi
  echo "ensure-bench-deps: installing Debian's haproxy package" >&2
  trap remove_policy_helper EXIT
  forbid_service_starts
  local log
  log="$(mktemp)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
    ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold haproxy </dev/null >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    fail "apt-get could not install 'haproxy' (output above): $install_hint"
  fi
  rm -f "$log"
  remove_policy_helper
  trap - EXIT
  stop_packaged_daemon
  haproxy_binary >/dev/null || fail "the haproxy package installed, but neither PATH nor /usr/sbin has 'haproxy'"
}

if ! haproxy_binary >/dev/null; then
  install_haproxy
fi

echo "ensure-bench-deps: $("$(haproxy_binary)" -v 2>&1 | head -n 1)"
