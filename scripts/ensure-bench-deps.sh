#!/usr/bin/env bash
# Makes sure the binaries the proxy benchmark compares against are on this machine: HAProxy (from
# Debian's `haproxy` package). Safe to run again: when haproxy is present it only prints its version.
set -euo pipefail

log_prefix=ensure-bench-deps
# shellcheck source=lib/debian-package.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-package.sh"

# Debian installs haproxy in /usr/sbin, which is not on a non-root user's PATH.
haproxy_binary() {
  command -v haproxy 2>/dev/null || { [[ -x /usr/sbin/haproxy ]] && echo /usr/sbin/haproxy; }
}

install_haproxy() {
  install_debian_package haproxy haproxy \
    "install Debian's 'haproxy' package (apt-get install haproxy), or put 'haproxy' on PATH"
  stop_packaged_daemon haproxy /run/haproxy.pid
  haproxy_binary >/dev/null || fail "the haproxy package installed, but neither PATH nor /usr/sbin has 'haproxy'"
}

if ! haproxy_binary >/dev/null; then
  install_haproxy
fi

echo "ensure-bench-deps: $("$(haproxy_binary)" -v 2>&1 | head -n 1)"
