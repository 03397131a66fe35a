#!/usr/bin/env bash
# Stops the control plane scripts/kube-up.sh started (its processes die with it) and removes its state.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${EGS_KUBE_DIR:-$root/.egs/kube}
pidfile="$state.pid"
if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  echo "kube-down: stopped pid $pid" >&2
else
  echo "kube-down: not running" >&2
fi
rm -rf "$state" "$pidfile" "$state.log"
