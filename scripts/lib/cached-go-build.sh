# Sourced by scripts/build-go-tools.sh, build-collector.sh and build-prometheus3.sh: finds Go, and
# keeps one binary in .cache/ per build key (a SHA-256 over what defines the build), so that a binary
# is built once and reused until its definition changes. Callers set `log_prefix` before sourcing.

fail() {
  echo "${log_prefix}: $*" >&2
  exit 1
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    fail "no 'go' on PATH or at /usr/local/go/bin/go: install Go 1.26 or newer"
  fi
}

# Usage: build_key <text> <file>...  prints the SHA-256 of the text followed by the files' contents.
build_key() {
  local text="$1"
  shift
  { printf '%s\n' "$text"; cat "$@"; } | sha256sum | cut -d ' ' -f 1
}

# Usage: is_current <binary> <key>  succeeds when the binary exists and was built for this key.
is_current() {
  [[ -x "$1" && -f "$1.key" && "$(cat "$1.key")" == "$2" ]]
}

# Usage: install_built <fresh binary> <binary> <key>  puts a finished build in place, then its key.
install_built() {
  mv -f "$1" "$2"
  printf '%s\n' "$3" >"$2.key"
}

# Usage: exit_if_current <binary> <key> <mode>
# Mode `check`: prints the binary's path and exits 0 when it is current, exits 1 naming the fix when
# not. Mode `build`: exits 0 when it is current, returns (so that the caller builds) when not.
exit_if_current() {
  local binary="$1" key="$2" mode="$3"
  if is_current "$binary" "$key"; then
    if [[ "$mode" == check ]]; then
      echo "$binary"
    else
      echo "${log_prefix}: $binary is current (key ${key:0:12})" >&2
    fi
    exit 0
  fi
  if [[ "$mode" == check ]]; then
    fail "$binary is missing or was built from another definition: run scripts/${log_prefix}.sh"
  fi
}

# Go never downloads another toolchain here; modules come from the Go module proxy and are checked
# against the checksum database.
go_build_env() {
  export GOTOOLCHAIN=local
  export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
  export GOFLAGS=-buildvcs=false
}
