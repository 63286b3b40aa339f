#!/usr/bin/env bash
# Builds the local control plane's binaries from the official Go modules, once.
#
# Why a script and not a download: these machines reach only package registries, so etcd, the Kubernetes
# components, kwok and helm are compiled from the Go module proxy. A cold build takes tens of minutes on two
# cores, so the result is cached OUTSIDE the repository, in a directory keyed by a hash of the pins and of the
# wrapper modules; while that key holds, this script only prints the directory.
#
# Output (stdout, last line): the bin directory holding etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok and helm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${LLMASOS_CACHE_DIR:-$HOME/.cache/llmasos}"
# The key covers the pins and the wrapper modules (go.mod and go.sum), not this script: editing how the
# binaries are installed must not throw away a 30-minute build.
# Only the control plane's own pins count: the node's pins in the same file have their own key (build-node.sh).
key="$( { grep -E '^(K8S|ETCD|KWOK|HELM)_VERSION=' "$here/versions.env"
          cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum; } | sha256sum | cut -c1-16)"
bin="$cache_root/bin-$key"

if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"
log() { echo "[toolchain] $*" >&2; }
start=$(date +%s)

k8s_minor="${K8S_VERSION#v1.}"                 # 36.3
staging_version="v0.${k8s_minor}"              # v0.36.3
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${k8s_minor%%.*}"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

if [[ ! -x "$bin/kube-apiserver" || ! -x "$bin/kubectl" || ! -x "$bin/kube-scheduler" || ! -x "$bin/kube-controller-manager" ]]; then
  log "building Kubernetes ${K8S_VERSION} (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
  (cd "$here/k8s" && go build -trimpath -ldflags "$k8s_ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
fi
if [[ ! -x "$bin/etcd" ]]; then
  log "building etcd ${ETCD_VERSION}"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
fi
if [[ ! -x "$bin/kwok" ]]; then
  log "building kwok ${KWOK_VERSION}"
  GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
fi
if [[ ! -x "$bin/helm" ]]; then
  log "building helm ${HELM_VERSION}"
  GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
: "${staging_version}"
echo "$(( $(date +%s) - start ))" > "$bin/.build-seconds"
touch "$bin/.complete"
log "built in $(cat "$bin/.build-seconds")s into $bin"
echo "$bin"
