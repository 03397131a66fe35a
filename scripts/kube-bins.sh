#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl (k8s.io/kubernetes v1.37) and etcd
# (go.etcd.io/etcd/server/v3) from the Go module proxy, once per version pair, into
# ${EGS_KUBE_CACHE:-$HOME/.cache/egs/kube}/<kube>-etcd-<etcd>/, and prints that directory as its last
# line. A warm cache returns at once; a cold one took ~17 minutes on 2 busy cores (docs/kubernetes.md).
# The tools modules under scripts/kube/tools are outside go.work (GOWORK=off).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=kube/versions.env
. "$root/scripts/kube/versions.env"
cache=${EGS_KUBE_CACHE:-$HOME/.cache/egs/kube}
dir="$cache/$KUBE_VERSION-etcd-$ETCD_VERSION"

build() { # name module-dir package [ldflags]
  local name=$1 mod=$2 pkg=$3 ldflags=${4:-}
  [ -x "$dir/$name" ] && return 0
  local tmp start
  tmp=$(mktemp "$dir/.$name.XXXXXX")
  start=$(date +%s)
  echo "kube-bins: building $name ($pkg) ..." >&2
  (cd "$root/scripts/kube/tools/$mod" &&
    GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") ||
    { rm -f "$tmp"; return 1; }
  mv -f "$tmp" "$dir/$name" # atomic: a concurrent run sees the whole binary or none
  echo "kube-bins: $name built in $(($(date +%s) - start))s" >&2
}

mkdir -p "$dir"
build etcd etcd go.etcd.io/etcd/server/v3
v=${KUBE_VERSION#v} minor=${KUBE_VERSION#v*.}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
  -X k8s.io/component-base/version.gitMajor=${v%%.*} -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
for cmd in kube-apiserver kube-controller-manager kubectl; do
  build "$cmd" apiserver "k8s.io/kubernetes/cmd/$cmd" "$ldflags"
done
echo "$dir"
