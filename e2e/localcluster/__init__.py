"""A real local Kubernetes control plane, run as plain processes on 127.0.0.1.

Why: LLMasOS is only real when it runs against a real API server, and these machines have no container engine.
etcd, kube-apiserver, kube-controller-manager and kube-scheduler are built from the official Go modules
(see e2e/toolchain/build.sh); kwok plays the kubelets of fake GPU nodes. `make cluster-up`, `make cluster-down`
and the pytest session fixture all use :class:`LocalCluster`.
"""

from e2e.localcluster.cluster import ClusterPaths, LocalCluster

__all__ = ["ClusterPaths", "LocalCluster"]
