#!/usr/bin/env bash
# Builds every Go module under test/tools/ into .cache/go-tools/<module dir name>, but only when the
# binary is missing or older than any file of its module. Dependencies come from the Go module proxy,
# checked against the committed go.sum.
#
# Two optional files in a module dir shape its build: `build-package` names the package to build
# when it is not the module's own main package (e.g. `tailscale.com/cmd/derper`, a dependency
# pinned by the module's go.mod), and `build-tags` lists Go build tags (e.g. `ts_debug_websockets`).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="$repo_root/test/tools"
bin_dir="$repo_root/.cache/go-tools"
log_prefix=build-go-tools
# shellcheck source=lib/cached-go-build.sh
source "$repo_root/scripts/lib/cached-go-build.sh"

is_stale() {
  local module_dir="$1" binary="$2"
  [[ ! -x "$binary" ]] && return 0
  [[ -n "$(find "$module_dir" -type f -newer "$binary" -print -quit)" ]]
}

go_bin=""
mkdir -p "$bin_dir"
for go_mod in "$tools_dir"/*/go.mod; do
  [[ -e "$go_mod" ]] || continue
  module_dir="$(dirname "$go_mod")"
  binary="$bin_dir/$(basename "$module_dir")"
  is_stale "$module_dir" "$binary" || continue
  go_bin="${go_bin:-$(find_go)}"
  package="."
  [[ -f "$module_dir/build-package" ]] && package="$(tr -d '[:space:]' <"$module_dir/build-package")"
  tags=""
  [[ -f "$module_dir/build-tags" ]] && tags="$(tr -s '[:space:]' ',' <"$module_dir/build-tags" | sed 's/^,//; s/,$//')"
  echo "build-go-tools: building $(basename "$module_dir") ($package${tags:+, tags $tags})" >&2
  # GOTOOLCHAIN=local: never download another toolchain; -mod=mod tolerates a go.mod that a newer
  # Go would tidy differently, while go.sum still pins every checksum.
  (
    cd "$module_dir"
    GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOTOOLCHAIN=local GOFLAGS=-mod=mod \
      "$go_bin" build -buildvcs=false -trimpath -tags "$tags" -o "$binary.tmp" "$package"
  )
  mv -f "$binary.tmp" "$binary"
done
