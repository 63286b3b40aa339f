#!/usr/bin/env bash
# Builds the real node's binaries from the official Go modules, once: kubelet and kube-proxy (k8s.io/kubernetes,
# wrapper module node/), containerd 2 with its runc shim and ctr, runc (cgo + libseccomp), the CNI plugins the node
# uses (bridge, host-local, loopback, portmap), CoreDNS and crictl.
#
# Why here and not Debian's packages: Kubernetes 1.36 needs containerd 2.x, and Debian's runc 1.1 and crun 1.8 fail
# under containerd 2.4 (see docs/development.md, "The real node"). Like build.sh, the result is cached OUTSIDE the
# repository in a directory keyed by the node's pins and its wrapper module; while the key holds this only prints it.
#
# Needs (Debian): libseccomp-dev and pkg-config for runc (`make system-deps` installs them).
# Output (stdout, last line): the directory holding the binaries; CNI plugins are in its cni/ subdirectory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
cache_root="${LLMASOS_CACHE_DIR:-$HOME/.cache/llmasos}"
key="$( { grep -E '^(K8S|CONTAINERD|RUNC|CNI_PLUGINS|COREDNS|CRICTL)_VERSION=' "$here/versions.env"
          cat "$here"/node/go.mod "$here"/node/go.sum; } | sha256sum | cut -c1-16)"
bin="$cache_root/node-$key"

if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin/cni"
log() { echo "[toolchain/node] $*" >&2; }
start=$(date +%s)

k8s_minor="${K8S_VERSION#v1.}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${k8s_minor%%.*}"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

if [[ ! -x "$bin/kubelet" || ! -x "$bin/kube-proxy" ]]; then
  log "building kubelet and kube-proxy ${K8S_VERSION}"
  (cd "$here/node" && CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
fi
if [[ ! -x "$bin/containerd" || ! -x "$bin/containerd-shim-runc-v2" || ! -x "$bin/ctr" ]]; then
  log "building containerd ${CONTAINERD_VERSION}"
  ver_pkg=github.com/containerd/containerd/v2/version
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X $ver_pkg.Version=${CONTAINERD_VERSION} -X $ver_pkg.Revision=${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}"
fi
if [[ ! -x "$bin/runc" ]]; then
  log "building runc ${RUNC_VERSION} (cgo, seccomp)"
  CGO_ENABLED=1 GOBIN="$bin" go install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@${RUNC_VERSION}"
fi
for plugin in main/bridge ipam/host-local main/loopback meta/portmap; do
  name="${plugin#*/}"
  if [[ ! -x "$bin/cni/$name" ]]; then
    log "building CNI plugin $name ${CNI_PLUGINS_VERSION}"
    CGO_ENABLED=0 GOBIN="$bin/cni" go install -trimpath -ldflags "-s -w" \
      "github.com/containernetworking/plugins/plugins/${plugin}@${CNI_PLUGINS_VERSION}"
  fi
done
if [[ ! -x "$bin/coredns" ]]; then
  log "building CoreDNS ${COREDNS_VERSION}"
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}"
fi
if [[ ! -x "$bin/crictl" ]]; then
  log "building crictl ${CRICTL_VERSION}"
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}" \
    "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
fi
echo "$(( $(date +%s) - start ))" > "$bin/.build-seconds"
touch "$bin/.complete"
log "built in $(cat "$bin/.build-seconds")s into $bin"
echo "$bin"
