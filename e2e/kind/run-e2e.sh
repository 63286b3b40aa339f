#!/usr/bin/env bash
# Run the LLMasOS end-to-end check on a kind cluster (needs Docker, kind, kubectl, helm). Documented in README.md;
# not run in this repository's CI, which has no container engine (it uses the local control plane instead).
#
#   e2e/kind/run-e2e.sh            # create the cluster, build and load the images, install, run, keep the cluster
#   KEEP=0 e2e/kind/run-e2e.sh     # ... and delete the cluster at the end
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-llmasos}
TAG=${TAG:-e2e}
KEEP=${KEEP:-1}
NS=llmasos-system

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config e2e/kind/kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER"

echo "== images"
docker build -t "ghcr.io/llmasos/llmasos:$TAG" .
docker build -f worker_image/Dockerfile -t "ghcr.io/llmasos/worker:$TAG" .
kind load docker-image --name "$CLUSTER" "ghcr.io/llmasos/llmasos:$TAG" "ghcr.io/llmasos/worker:$TAG"

echo "== fake GPU capacity on the labelled workers (no GPUs in kind; the agents simulate them)"
for node in $(kubectl get nodes -l nvidia.com/gpu.present=true -o name); do
  count=$(kubectl get "$node" -o jsonpath='{.metadata.labels.nvidia\.com/gpu\.count}')
  kubectl patch "$node" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$count\"}]"
done

echo "== helm install"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=privileged --overwrite
helm upgrade --install llmasos charts/llmasos -n "$NS" \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set operator.settings.workerImage="ghcr.io/llmasos/worker:$TAG" \
  --set agent.gpuBackend=sim --set agent.gpuMapping=fallback \
  --wait --timeout 5m
kubectl -n "$NS" rollout status deploy/llmasos-operator --timeout=180s
kubectl -n "$NS" rollout status ds/llmasos-agent --timeout=180s

echo "== examples"
kubectl apply --dry-run=server -f examples/
kubectl apply -f examples/01-ddp-immediate.yaml -f examples/03-power-capped.yaml -f examples/07-compression.yaml
for job in gpt-small-ddp gpt-small-capped gpt-small-compress; do
  kubectl -n ml wait --for=condition=Succeeded "llmjob/$job" --timeout=30m
done
kubectl -n ml get llmjobs
kubectl -n "$NS" get configmaps -l llmasos.io/node-power-report=true

echo "== RBAC: what the operator and the agent must not do"
for check in "get secrets -A" "create pods -n ml" "patch nodes"; do
  # shellcheck disable=SC2086
  if [ "$(kubectl auth can-i $check --as=system:serviceaccount:$NS:llmasos-operator)" = yes ]; then
    echo "error: the operator may $check" >&2; exit 1
  fi
done
for check in "get secrets -A" "patch pods -n ml" "create configmaps -n default"; do
  # shellcheck disable=SC2086
  if [ "$(kubectl auth can-i $check --as=system:serviceaccount:$NS:llmasos-agent)" = yes ]; then
    echo "error: the agent may $check" >&2; exit 1
  fi
done
echo "e2e on kind: passed"

if [ "$KEEP" = 0 ]; then kind delete cluster --name "$CLUSTER"; fi
