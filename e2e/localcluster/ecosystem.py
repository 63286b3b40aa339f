"""Kueue and KubeRay's ray-operator against the local control plane, as plain processes like the rest of it.

Both are built from their Go modules by e2e/toolchain/build-ecosystem.sh, which also copies their CRDs from the same
module versions. What a cluster add-on normally gets from its Deployment and Service is done here by hand:

- **CRDs**: applied server-side from the build's `crds/` (KubeRay's are removed again by `down()`: a cluster without
  a running KubeRay serves no RayJob API, so LLMasOS gives its Ray jobs the Indexed Job); Kueue's CRDs that serve
  two versions get the conversion webhook Kueue's kustomize overlay would add, pointed at the local Kueue.
- **Webhooks**: Kueue's own webhook configurations (config/components/webhook/manifests.yaml of the module), each
  `clientConfig.service` replaced by a `url:` to https://127.0.0.1:<port> and the local CA as `caBundle`; the
  serving certificate comes from the local CA (pki.ensure_webhook_serving). Only the webhooks of the integrations
  enabled here (Kueue's own kinds, batch Jobs, Ray) are registered, so a stopped Kueue cannot block Pods or
  Deployments anywhere; `down()` deletes them before stopping the process, so it cannot block Jobs either.
- **Identity**: a client certificate each (pki.CLIENTS), like the other components.
- **KubeRay's dashboard client**: `-use-kubernetes-proxy` (the host cannot resolve cluster DNS names; it does route
  to the real node's pod IPs, which the API server's proxy dials).
- **Kueue's metrics certificate**: Kueue 0.17 reads one from the fixed path /etc/kueue/metrics/certs when its internal
  cert management is off, so a copy of the webhook's key pair is written there once (metrics themselves are off).

`python -m e2e.localcluster ecosystem-up|ecosystem-down` (make ecosystem-up / ecosystem-down) and the integration
tests' `ecosystem` fixture use :class:`Ecosystem`.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster.cluster import ClusterError, LocalCluster, build_kubeconfig, find_binaries
from e2e.localcluster.pki import ensure_webhook_serving

COMPONENTS = ("kueue", "ray-operator")
CRD_STAMP = "llmasos.io/ecosystem-build"
HEALTH_PORTS = {"kueue": "kueue-health", "ray-operator": "ray-health"}
KUEUE_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
KUEUE_NAMESPACE = "kueue-system"
# Base ports, shifted by LLMASOS_CLUSTER_PORT_OFFSET like the control plane's (all on 127.0.0.1).
PORTS = {"kueue-webhook": 16470, "kueue-health": 16471, "ray-metrics": 16472, "ray-health": 16473}
# Kueue integrations enabled here, and the API groups whose webhooks are registered for them.
KUEUE_FRAMEWORKS = ("batch/job", "ray.io/rayjob", "ray.io/raycluster")
WEBHOOK_GROUPS = frozenset({"kueue.x-k8s.io", "batch", "ray.io"})
# Kueue's CRDs that serve v1beta1 and v1beta2 (its kustomize patches/webhook_in_*.yaml).
KUEUE_CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
KUBERAY_CRDS = ("rayjobs.ray.io", "rayclusters.ray.io", "rayservices.ray.io")
WEBHOOK_CONFIG_NAMES = {"MutatingWebhookConfiguration": "llmasos-local-kueue-mutating",
                        "ValidatingWebhookConfiguration": "llmasos-local-kueue-validating"}


def _ensure_metrics_certs(certs: Path) -> None:
    """Kueue 0.17 without its internal cert management reads a metrics serving certificate from a fixed path,
    /etc/kueue/metrics/certs, and exits without one, even with metrics off. Any key pair does (metrics stay off
    here): a copy of the webhook's is written there once, and never overwritten (another local cluster may use it)."""
    target = KUEUE_METRICS_CERTS
    if (target / "tls.crt").exists() and (target / "tls.key").exists():
        return
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copyfile(certs / name, target / name)
        (target / "tls.key").chmod(0o600)
    except OSError as exc:
        raise ClusterError(f"Kueue needs a certificate in {target} (fixed in its main.go): {exc}") from exc


class Ecosystem:
    """Kueue and ray-operator for one LocalCluster: `up()` is idempotent, `down()` stops both and unregisters
    Kueue's webhooks."""

    def __init__(self, cluster: LocalCluster, bin_dir: Path | None = None, ray: bool = True) -> None:
        self.cluster = cluster
        self._bin_dir = bin_dir
        # ray=False: Kueue alone (its tests need no ray-operator; KubeRay's CRDs are applied all the same).
        self.components = COMPONENTS if ray else ("kueue",)

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries("build-ecosystem.sh")
        return self._bin_dir

    def port(self, name: str) -> int:
        return PORTS[name] + self.cluster.paths.port_offset

    @property
    def kueue_dir(self) -> Path:
        return self.cluster.paths.root / "kueue"

    def is_healthy(self) -> bool:
        return (all(self.cluster.pid(c) is not None for c in self.components)
                and all(self._ready(HEALTH_PORTS[c]) for c in self.components))

    def up(self, timeout: float = 180.0) -> None:
        if self.is_healthy():
            return
        self.down()
        try:
            self._start(timeout)
        except Exception:
            self.down()  # a failed start leaves no ray.io API without KubeRay running (see down()) for later tests
            raise

    def _start(self, timeout: float) -> None:
        paths = self.cluster.paths
        certs = ensure_webhook_serving(paths.pki, "kueue-webhook")
        for stem in COMPONENTS:
            kc = paths.root / f"{stem}.kubeconfig"
            kc.write_text(yaml.safe_dump(build_kubeconfig(paths.server, paths.pki / "ca.crt",
                                                          paths.pki / f"{stem}.crt", paths.pki / f"{stem}.key",
                                                          stem)))
            kc.chmod(0o600)
        _ensure_metrics_certs(certs)
        self._apply_crds()
        deadline = time.monotonic() + timeout  # for the components, once their CRDs are served
        self.cluster.kubectl("create", "namespace", KUEUE_NAMESPACE, check=False)
        self.kueue_dir.mkdir(parents=True, exist_ok=True)
        config = self.kueue_dir / "config.yaml"
        config.write_text(yaml.safe_dump(self._kueue_config(certs)))
        self.cluster._spawn("kueue", [
            str(self.bin_dir / "kueue"), f"--config={config}", "--feature-gates=VisibilityOnDemand=false",
            f"--kubeconfig={paths.root / 'kueue.kubeconfig'}", "--zap-log-level=info",
        ])
        self._wait(lambda: self._ready("kueue-health"), "kueue /readyz", deadline)
        self._apply_webhooks()
        if "ray-operator" not in self.components:
            return
        self.cluster._spawn("ray-operator", [
            str(self.bin_dir / "ray-operator"), f"--kubeconfig={paths.root / 'ray-operator.kubeconfig'}",
            f"-metrics-addr=127.0.0.1:{self.port('ray-metrics')}",
            f"-health-probe-bind-address=127.0.0.1:{self.port('ray-health')}",
            "-enable-leader-election=false", "-log-stdout-encoder=console",
            # KubeRay follows a RayJob through the head's dashboard at <head-svc>.<ns>.svc.cluster.local:8265, a
            # name only the cluster's DNS resolves; on the host this fails ("lookup ...: no such host"). Through
            # the API server's services/proxy it reaches the head pod's IP, which the host routes to the real node.
            "-use-kubernetes-proxy",
        ])
        self._wait(lambda: self._ready("ray-health"), "ray-operator /readyz", deadline)

    def down(self) -> None:
        """Stop both, unregister Kueue's webhooks and remove KubeRay's CRDs (while the ray-operator still runs to
        clear its finalizers): without KubeRay running, the ray.io API must not be served either, or the operator
        would give `strategy: ray` jobs RayJobs that nothing runs (a later test's Indexed-Job Ray jobs included)."""
        if self.cluster._readyz():
            for kind, name in WEBHOOK_CONFIG_NAMES.items():
                self.cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)
            self.cluster.kubectl("delete", "crd", *KUBERAY_CRDS, "--ignore-not-found", "--timeout=60s", check=False)
        for component in reversed(COMPONENTS):
            self.cluster._stop(component)

    # ---------------------------------------------------------------------------------------------- objects
    def _kueue_config(self, certs: Path) -> dict[str, Any]:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
            "namespace": KUEUE_NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.port('kueue-health')}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"port": self.port("kueue-webhook"), "host": "127.0.0.1", "certDir": str(certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "manageJobsWithoutQueueName": False,
            "clientConnection": {"qps": 50, "burst": 100},
            "integrations": {"frameworks": list(KUEUE_FRAMEWORKS)},
        }

    def _webhook_client(self, path: str) -> dict[str, Any]:
        ca = (self.cluster.paths.pki / "ca.crt").read_bytes()
        return {"url": f"https://127.0.0.1:{self.port('kueue-webhook')}{path}",
                "caBundle": base64.b64encode(ca).decode()}

    def _apply_crds(self) -> None:
        docs: list[dict[str, Any]] = []
        for group in ("kueue", "kuberay"):
            for f in sorted((self.bin_dir / "crds" / group).glob("*.yaml")):
                docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
        stamp = f"{self.bin_dir.name}/{self.port('kueue-webhook')}"  # the build and the webhook URL they point at
        # Only those not there already (KubeRay's after a `down()`): applying 3 MB of schemas costs 20-60 s here.
        present = self._stamped_crds(stamp)
        docs = [d for d in docs if d["metadata"]["name"] not in present]
        if not docs:
            return
        for crd in docs:
            crd["metadata"].setdefault("annotations", {})[CRD_STAMP] = stamp
            if crd["spec"]["group"] == "kueue.x-k8s.io" and crd["spec"]["names"]["plural"] in KUEUE_CONVERTED:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": self._webhook_client("/convert"), "conversionReviewVersions": ["v1"]}}
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=llmasos-ecosystem",
                             "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        names = [f"crd/{d['metadata']['name']}" for d in docs]
        # 180 s: applying them alone can take a minute here, and a CI run once saw 60 s pass for KubeRay's, just
        # re-created after the Kueue suite's down() had deleted them. Say what the API server shows if it fails.
        waited = self.cluster.kubectl("wait", "--for=condition=Established", *names, "--timeout=180s", check=False)
        if waited.returncode != 0:
            shown = self.cluster.kubectl("get", *names, "-o",
                                         "jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{'\\n'}{end}",
                                         check=False)
            raise RuntimeError(f"CRDs not Established: {waited.stderr.strip()}; {shown.stdout}{shown.stderr}")

    def _stamped_crds(self, stamp: str) -> set[str]:
        """Names of the CRDs applied by this build (their metadata only: the full list is megabytes)."""
        req = urllib.request.Request(
            f"{self.cluster.paths.server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"})
        with urllib.request.urlopen(req, timeout=30, context=self.cluster._ssl()) as r:
            items = json.load(r).get("items") or []  # null, not [], on a cluster without CRDs
        return {i["metadata"]["name"] for i in items
                if (i["metadata"].get("annotations") or {}).get(CRD_STAMP) == stamp}

    def _apply_webhooks(self) -> None:
        manifests = self._kueue_source_manifests()
        items = []
        for doc in manifests:
            hooks = []
            for hook in doc.get("webhooks", []):
                groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
                if not groups or not groups <= WEBHOOK_GROUPS:
                    continue
                hook["clientConfig"] = self._webhook_client(hook["clientConfig"]["service"]["path"])
                hooks.append(hook)
            doc["metadata"] = {"name": WEBHOOK_CONFIG_NAMES[doc["kind"]]}
            doc["webhooks"] = hooks
            items.append(doc)
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=llmasos-ecosystem",
                             "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def _kueue_source_manifests(self) -> list[dict[str, Any]]:
        path = self.bin_dir / "webhooks" / "kueue-manifests.yaml"
        return [d for d in yaml.safe_load_all(path.read_text()) if d]

    # ----------------------------------------------------------------------------------------------- probes
    def _ready(self, port_name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(port_name)}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _wait(self, probe: Any, what: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if probe():
                return
            for c in COMPONENTS:
                if (self.cluster.paths.pids / f"{c}.pid").exists() and self.cluster.pid(c) is None:
                    tail = (self.cluster.paths.logs / f"{c}.log").read_text(errors="replace")[-3000:]
                    raise ClusterError(f"{c} exited while waiting for {what}; last log lines:\n{tail}")
            time.sleep(0.2)
        raise ClusterError(f"timed out waiting for {what}; logs are in {self.cluster.paths.logs}")
