#!/usr/bin/env bash
# Builds the ecosystem controllers the Kueue and KubeRay tests run against, from their Go modules, once:
# Kueue's manager (sigs.k8s.io/kueue/cmd/kueue) and KubeRay's ray-operator (github.com/ray-project/kuberay/ray-operator).
# Their CRDs (and Kueue's webhook configurations) are copied from the same module versions into crds/kueue,
# crds/kuberay and webhooks/, so the manifests always match the binaries.
#
# Like build.sh, the result is cached OUTSIDE the repository in a directory keyed by the two pins in versions.env
# (KUEUE_VERSION, KUBERAY_VERSION); the control plane's and the node's keys ignore these lines. While the key holds
# this only prints the directory.
#
# Output (stdout, last line): the directory holding kueue, ray-operator, crds/ and webhooks/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${LLMASOS_CACHE_DIR:-$HOME/.cache/llmasos}"
key="$(grep -E '^(KUEUE|KUBERAY)_VERSION=' "$here/versions.env" | sha256sum | cut -c1-16)"
bin="$cache_root/ecosystem-$key"

if [[ -f "$bin/.complete" && -f "$bin/webhooks/kueue-manifests.yaml" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin/crds/kueue" "$bin/crds/kuberay" "$bin/webhooks"
log() { echo "[toolchain/ecosystem] $*" >&2; }
start=$(date +%s)

module_dir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }

if [[ ! -x "$bin/kueue" ]]; then
  log "building kueue ${KUEUE_VERSION}"
  t=$(date +%s)
  GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=${KUEUE_VERSION}" \
    "sigs.k8s.io/kueue/cmd/kueue@${KUEUE_VERSION}"
  echo "$(( $(date +%s) - t ))" > "$bin/.build-seconds-kueue"
fi
if [[ ! -x "$bin/ray-operator" ]]; then
  log "building ray-operator ${KUBERAY_VERSION}"
  t=$(date +%s)
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" \
    "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}"
  echo "$(( $(date +%s) - t ))" > "$bin/.build-seconds-ray-operator"
fi
kueue_src="$(module_dir "sigs.k8s.io/kueue@${KUEUE_VERSION}")"
kuberay_src="$(module_dir "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}")"
install -m 0644 "$kueue_src"/config/components/crd/bases/*.yaml "$bin/crds/kueue/"
install -m 0644 "$kuberay_src"/config/crd/bases/*.yaml "$bin/crds/kuberay/"
install -m 0644 "$kueue_src/config/components/webhook/manifests.yaml" "$bin/webhooks/kueue-manifests.yaml"

[[ -f "$bin/.build-seconds" ]] || echo "$(( $(date +%s) - start ))" > "$bin/.build-seconds"
touch "$bin/.complete"
log "built in $(cat "$bin/.build-seconds")s into $bin"
echo "$bin"
