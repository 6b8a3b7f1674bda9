#!/usr/bin/env bash
# Builds Prometheus 3.x from its Go module (test/tools/prometheus3/build.env pins the version) into
# .cache/prometheus3/prometheus, for test/pipeline.test.ts; Debian's 2.x stays on PATH for the other
# tests. The binary is keyed on a hash of build.env: while it is unchanged, the cached binary is
# reused and this script only says so.
#
#   scripts/build-prometheus3.sh           build when missing or stale
#   scripts/build-prometheus3.sh --check   print the binary's path if it is current, fail otherwise
#
# Built without the `builtinassets` tag: the web UI's compiled assets are not part of the Go module
# (the release process builds them with npm), so this binary serves the HTTP API but no UI pages.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log_prefix=build-prometheus3
# shellcheck source=lib/cached-go-build.sh
source "$repo_root/scripts/lib/cached-go-build.sh"

pins="$repo_root/test/tools/prometheus3/build.env"
cache_dir="$repo_root/.cache/prometheus3"
binary="$cache_dir/prometheus"
key="$(build_key "go install" "$pins")"

mode=build
[[ "${1:-}" == --check ]] && mode=check
exit_if_current "$binary" "$key" "$mode"

# shellcheck source=../test/tools/prometheus3/build.env
source "$pins"
go_bin="$(find_go)"
go_build_env
mkdir -p "$cache_dir/tmp"
echo "$log_prefix: building Prometheus $PROMETHEUS_VERSION ($PROMETHEUS_MODULE@$PROMETHEUS_MODULE_VERSION; the first build takes several minutes)" >&2
started=$SECONDS
version_pkg=github.com/prometheus/common/version
GOBIN="$cache_dir/tmp" "$go_bin" install -trimpath \
  -ldflags "-s -w -X $version_pkg.Version=$PROMETHEUS_VERSION -X $version_pkg.Branch=v$PROMETHEUS_VERSION -X $version_pkg.Revision=$PROMETHEUS_MODULE_VERSION" \
  "$PROMETHEUS_MODULE/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
install_built "$cache_dir/tmp/prometheus" "$binary" "$key"
echo "$log_prefix: built $binary in $((SECONDS - started)) s" >&2
