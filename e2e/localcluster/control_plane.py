"""The command lines of the control plane's processes (etcd, kube-apiserver, controller-manager, scheduler, kwok).

Kept apart from `cluster.py`, which starts, checks and stops the processes: these functions only say how each is
run (ports, certificates and kubeconfigs from `ClusterPaths`), so a flag can be read and changed in one place.
`audit_flags` is the one with a side effect: with LLMASOS_AUDIT=1 it writes the audit policy it points to.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from e2e.localcluster.cluster import ClusterPaths

KWOK_STAGES = Path(__file__).resolve().parents[1] / "kwok" / "stages.yaml"  # e2e/kwok/stages.yaml
Binary = Callable[[str], str]  # a component's name -> the path of its built binary


def build_argv(component: str, paths: ClusterPaths, binary: Binary) -> list[str]:
    """The command line that runs `component` of the cluster at `paths`."""
    builders = {"etcd": etcd_argv, "kube-apiserver": apiserver_argv,
                "kube-controller-manager": controller_manager_argv, "kube-scheduler": scheduler_argv,
                "kwok": kwok_argv}
    if component not in builders:
        raise ValueError(f"no control-plane component {component!r} (known: {', '.join(builders)})")
    return builders[component](paths, binary)


def etcd_argv(p: ClusterPaths, binary: Binary) -> list[str]:
    return [
        binary("etcd"), "--name=local", f"--data-dir={p.root / 'etcd-data'}",
        f"--listen-client-urls=http://127.0.0.1:{p.port('etcd')}",
        f"--advertise-client-urls=http://127.0.0.1:{p.port('etcd')}",
        f"--listen-peer-urls=http://127.0.0.1:{p.port('etcd-peer')}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{p.port('etcd-peer')}",
        f"--initial-cluster=local=http://127.0.0.1:{p.port('etcd-peer')}",
        "--listen-metrics-urls=", "--quota-backend-bytes=4294967296", "--log-level=warn",
        "--unsafe-no-fsync=true",  # a throwaway test cluster: durability across host crashes is not needed
    ]


def apiserver_argv(p: ClusterPaths, binary: Binary) -> list[str]:
    k = p.pki
    return [
        binary("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{p.port('etcd')}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={p.port('apiserver')}",
        f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
        f"--client-ca-file={k / 'ca.crt'}",
        f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true", "--endpoint-reconciler-type=none", "--profiling=false",
        "--event-ttl=2h", "--v=1", *audit_flags(p),
        # The API server's client identity towards kubelets (logs, exec, port-forward on the real node).
        f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def audit_flags(p: ClusterPaths) -> list[str]:
    """With LLMASOS_AUDIT=1, log one line per request of the operator and bench identities (per-client counts)."""
    if os.environ.get("LLMASOS_AUDIT") != "1":
        return []
    policy = p.root / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": ["llmasos-operator-dev", "llmasos-bench"]},
                  {"level": "None"}],
    }))
    return [f"--audit-policy-file={policy}", f"--audit-log-path={p.logs / 'audit.log'}",
            "--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-maxsize=500"]


def controller_manager_argv(p: ClusterPaths, binary: Binary) -> list[str]:
    k = p.pki
    kc = str(p.root / "controller-manager.kubeconfig")
    return [
        binary("kube-controller-manager"), f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1", f"--secure-port={p.port('controller-manager')}",
        "--controllers=*", "--use-service-account-credentials=true", "--leader-elect=false",
        f"--service-account-private-key-file={k / 'sa.key'}", f"--root-ca-file={k / 'ca.crt'}",
        f"--cluster-signing-cert-file={k / 'ca.crt'}", f"--cluster-signing-key-file={k / 'ca.key'}",
        "--node-monitor-grace-period=60s", "--concurrent-job-syncs=20", "--kube-api-qps=100",
        "--kube-api-burst=200", "--v=1",
    ]


def scheduler_argv(p: ClusterPaths, binary: Binary) -> list[str]:
    kc = str(p.root / "scheduler.kubeconfig")
    return [
        binary("kube-scheduler"), f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1", f"--secure-port={p.port('scheduler')}", "--leader-elect=false", "--v=1",
    ]


def kwok_argv(p: ClusterPaths, binary: Binary) -> list[str]:
    return [
        binary("kwok"), f"--kubeconfig={p.root / 'kwok.kubeconfig'}",
        f"--config={KWOK_STAGES}",
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--server-address=127.0.0.1:{p.port('kwok')}", "--node-ip=127.0.0.1",
        "--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40",
    ]
