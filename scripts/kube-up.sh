#!/usr/bin/env bash
# Starts a local Kubernetes control plane for demos and manual tests: etcd, kube-apiserver and
# kube-controller-manager on random loopback ports (no kubelet, no scheduler), built from source and
# cached by scripts/kube-bins.sh. State lives in ${EGS_KUBE_DIR:-.egs/kube}; stop it with
# scripts/kube-down.sh. The last line of output is the path of the admin kubeconfig:
#   export KUBECONFIG=$(make -s kube-up | tail -1)
#   EGS_KUBECONFIG=$KUBECONFIG make run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${EGS_KUBE_DIR:-$root/.egs/kube}
pidfile="$state.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && [ -f "$state/ready" ]; then
  echo "kube-up: already running (pid $(cat "$pidfile"))" >&2
  cat "$state/ready"
  exit 0
fi
bins=$("$root/scripts/kube-bins.sh" | tail -1)
mkdir -p "$root/bin" "$(dirname "$state")"
(cd "$root" && go build -o bin/kubeup ./libs/testkit/kubetest/kubeup)
EGS_KUBE_BIN_DIR=$bins setsid nohup "$root/bin/kubeup" -dir "$state" >"$state.log" 2>&1 </dev/null &
echo $! >"$pidfile"
for _ in $(seq 1200); do
  [ -f "$state/ready" ] && break
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "kube-up: control plane failed to start; $state.log says:" >&2
    tail -40 "$state.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -f "$state/ready" ] || { echo "kube-up: not ready after 120s; see $state.log" >&2; exit 1; }
echo "kube-up: control plane running (pid $(cat "$pidfile")), logs in $state; stop with make kube-down" >&2
cat "$state/ready"
