#!/usr/bin/env bash
# Builds the OpenTelemetry Collector that test/pipeline.test.ts runs, with the Collector builder
# (ocb) from test/tools/otelcol/builder-config.yaml, into .cache/otelcol/otelcol-switchyard. The
# binary is keyed on a hash of the manifest and the builder version: while neither changes, the
# cached binary is reused and this script only says so.
#
#   scripts/build-collector.sh           build when missing or stale
#   scripts/build-collector.sh --check   print the binary's path if it is current, fail otherwise
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log_prefix=build-collector
# shellcheck source=lib/cached-go-build.sh
source "$repo_root/scripts/lib/cached-go-build.sh"

# Must equal the version of the core (v0.x) modules in the manifest.
builder_version=v0.161.0
manifest="$repo_root/test/tools/otelcol/builder-config.yaml"
cache_dir="$repo_root/.cache/otelcol"
binary="$cache_dir/otelcol-switchyard"
key="$(build_key "ocb $builder_version" "$manifest")"

mode=build
[[ "${1:-}" == --check ]] && mode=check
exit_if_current "$binary" "$key" "$mode"

go_bin="$(find_go)"
export PATH="$(dirname "$go_bin"):$PATH"
go_build_env
mkdir -p "$cache_dir/bin"
builder="$cache_dir/bin/ocb-$builder_version"
if [[ ! -x "$builder" ]]; then
  echo "$log_prefix: installing the Collector builder $builder_version" >&2
  GOBIN="$cache_dir/bin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version"
  mv -f "$cache_dir/bin/builder" "$builder"
fi

echo "$log_prefix: building the Collector from $manifest (the first build takes several minutes)" >&2
started=$SECONDS
rm -rf "$cache_dir/src"
# ocb writes its generated sources to the manifest's output_path, relative to the working directory.
(cd "$cache_dir" && "$builder" --config "$manifest")
install_built "$cache_dir/src/otelcol-switchyard" "$binary" "$key"
echo "$log_prefix: built $binary in $((SECONDS - started)) s" >&2
