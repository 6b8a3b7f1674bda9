# Sourced by scripts/ensure-*-deps.sh: installs one Debian package without leaving its service
# running. Callers set `log_prefix` (e.g. "ensure-test-deps") before sourcing.

policy_helper=/usr/sbin/policy-rc.d
created_policy_helper=false

fail() {
  echo "${log_prefix}: $*" >&2
  exit 1
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
    created_policy_helper=false
  fi
}

# Packages with a service (prometheus, haproxy) ask invoke-rc.d to start it from their postinst.
# Without an init system that hangs, fails the install or leaves a daemon holding a port. A
# policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d skip the start and succeed.
forbid_service_starts() {
  if [[ -e "$policy_helper" ]]; then
    return 0
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_helper" >/dev/null
  as_root chmod 0755 "$policy_helper"
  created_policy_helper=true
}

# Belt and braces: if an init system started the packaged service anyway, stop it, so that no
# daemon outlives the install (the tests and benchmarks start their own with generated configs).
# Usage: stop_packaged_daemon <service> <pidfile>
stop_packaged_daemon() {
  local service="$1" pidfile="$2"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    echo "${log_prefix}: stopping the $service service the package started" >&2
    as_root systemctl stop "$service" || true
  fi
  if [[ -f "$pidfile" ]]; then
    local pid
    pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      echo "${log_prefix}: stopping the $service service the package started (pid $pid)" >&2
      as_root kill -TERM "$pid" || true
    fi
  fi
}

# Usage: install_debian_package <package> <what-it-brings> <hint if it cannot be installed>
install_debian_package() {
  local package="$1" brings="$2" install_hint="$3"
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "$brings not found and apt-get is unavailable: $install_hint"
  fi
  if ! as_root true 2>/dev/null; then
    fail "$brings not found and this user is not root and has no passwordless sudo: $install_hint"
  fi
  echo "${log_prefix}: installing Debian's $package package ($brings)" >&2
  trap remove_policy_helper EXIT
  forbid_service_starts
  local log
  log="$(mktemp)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
    ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$package" </dev/null >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    fail "apt-get could not install '$package' (output above): $install_hint"
  fi
  rm -f "$log"
  remove_policy_helper
  trap - EXIT
}
