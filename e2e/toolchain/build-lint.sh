#!/usr/bin/env bash
# Builds the chart's static checkers from their Go modules, once: kube-score (github.com/zegl/kube-score) and
# kubeconform (github.com/yannh/kubeconform). tests/chart/test_chart_lint.py runs them over every render.
#
# Like build.sh, the result is cached OUTSIDE the repository in a directory keyed by the two pins in versions.env;
# while the key holds this only prints the directory.
#
# Output (stdout, last line): the directory holding kube-score and kubeconform.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${LLMASOS_CACHE_DIR:-$HOME/.cache/llmasos}"
key="$(grep -E '^(KUBE_SCORE|KUBECONFORM)_VERSION=' "$here/versions.env" | sha256sum | cut -c1-16)"
bin="$cache_root/lint-$key"

if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"
log() { echo "[toolchain/lint] $*" >&2; }
start=$(date +%s)

if [[ ! -x "$bin/kube-score" ]]; then
  log "building kube-score ${KUBE_SCORE_VERSION}"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X main.version=${KUBE_SCORE_VERSION#v}" \
    "github.com/zegl/kube-score/cmd/kube-score@${KUBE_SCORE_VERSION}"
fi
if [[ ! -x "$bin/kubeconform" ]]; then
  log "building kubeconform ${KUBECONFORM_VERSION}"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" \
    "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
fi
echo "$(( $(date +%s) - start ))" > "$bin/.build-seconds"
touch "$bin/.complete"
log "built in $(cat "$bin/.build-seconds")s into $bin"
echo "$bin"
