#!/bin/sh
# Runs one Switchyard worker: `switchyard-entrypoint <worker> [worker arguments...]`, e.g.
# `switchyard-entrypoint proxy --config /etc/switchyard/proxy.yaml`. exec, so that the worker is
# PID 1 and receives SIGTERM from the kubelet itself (its graceful shutdown, docs/telemetry.md).
set -eu

app_dir="${SWITCHYARD_APP_DIR:-/app}"
workers="proxy log-forwarder relay"

if [ "$#" -eq 0 ]; then
  echo "switchyard-entrypoint: name the worker to run as the first argument: one of: $workers" >&2
  exit 64
fi
worker="$1"
shift

case "$worker" in
  proxy | log-forwarder | relay) ;;
  *)
    echo "switchyard-entrypoint: unknown worker \"$worker\"; expected one of: $workers" >&2
    exit 64
    ;;
esac

main="$app_dir/packages/$worker/src/main.ts"
if [ ! -f "$main" ]; then
  echo "switchyard-entrypoint: worker \"$worker\" is not in this image: $main is missing" >&2
  exit 70
fi
cd "$app_dir"
exec node "packages/$worker/src/main.ts" "$@"
