"""The real node's addresses and configuration files, as pure functions of the cluster's paths and port offset.

Everything a second cluster must not share is derived from the port offset (`NodeLayout.index`): the node's network
namespace addresses, its pod network, its cgroup root. Every file, socket and state directory lives under
`<cluster dir>/node/`, so two clusters with different `LLMASOS_CLUSTER_DIR` and `LLMASOS_CLUSTER_PORT_OFFSET` run
side by side.

The node's namespaces: the kubelet, containerd, kube-proxy and CoreDNS run inside a network namespace and a mount
namespace the project creates (files under the node directory). The mount namespace keeps the kubelet's and
containerd's mounts (pod volumes, container root filesystems) off the host, and gives each node its own
`/var/lib/kubelet/device-plugins`, a path the kubelet hard-codes whatever its --root-dir (kubernetes#120626): it is
bind-mounted from the node directory, where the fake-GPU device plugin (a host process) finds the kubelet's socket.
The network namespace is joined to the host by one veth pair. The pod bridge, kube-proxy's
iptables rules and the pods' own namespaces all live inside it, so deleting it removes them all, and since it has
no default route, a pod cannot reach anything but the node, the host side of the veth pair, and other pods.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster.nodes import (
    CARBON_ZONE_LABEL,
    GPU_COUNT_LABEL,
    GPU_PRODUCT_LABEL,
    POOL_LABEL,
    REAL_NODE_NAME,
)

SERVICE_CIDR = "10.0.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
POOL = "real"
GPU_PRODUCT = "nvidia-v100"
GPU_COUNT = 4
# The longest node socket is `<root>/kubelet/device-plugins/llmasos-fake-gpu.sock` (46 bytes past the root).
MAX_ROOT_CHARS = 54


@dataclass(frozen=True)
class NodeLayout:
    """Paths, addresses and names of one cluster's real node."""

    cluster_root: Path
    node_bin: Path
    port_offset: int
    apiserver_port: int

    @property
    def index(self) -> int:
        return self.port_offset % 251

    @property
    def name(self) -> str:
        return REAL_NODE_NAME

    @property
    def root(self) -> Path:
        """`<cluster dir>/node`; for a cluster directory so deep that a node socket path would pass the 108-byte
        limit of unix sockets, a short directory named by the cluster directory's hash (see `link_root`)."""
        inside = self.cluster_root / "node"
        if len(str(inside.resolve())) <= MAX_ROOT_CHARS:
            return inside
        digest = hashlib.sha256(str(self.cluster_root.resolve()).encode()).hexdigest()[:12]
        return Path(f"/tmp/llmasos-node-{digest}")

    def link_root(self) -> None:
        """When the node's directory is outside the cluster directory, leave a link to it there."""
        inside = self.cluster_root / "node"
        if self.root != inside and not inside.is_symlink():
            inside.symlink_to(self.root)

    # addresses ------------------------------------------------------------------------------------------------
    @property
    def host_ip(self) -> str:
        """The host's side of the veth pair: where the node reaches the API server (through a forwarder)."""
        return f"10.223.{self.index}.1"

    @property
    def node_ip(self) -> str:
        """The node's InternalIP, inside its network namespace; CoreDNS listens here too."""
        return f"10.223.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.224.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"10.224.{self.index}.1"

    @property
    def host_veth(self) -> str:
        return f"llmh{self.index}"

    @property
    def cgroup_root(self) -> str:
        return f"/llmasos-{self.index}"

    @property
    def server(self) -> str:
        return f"https://{self.host_ip}:{self.apiserver_port}"

    # paths ------------------------------------------------------------------------------------------------------
    @property
    def netns(self) -> Path:
        return self.root / "netns"

    @property
    def mntns(self) -> Path:
        return self.root / "mntns"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def device_plugin_dir(self) -> Path:
        return self.kubelet_root / "device-plugins"

    @property
    def pod_resources_socket(self) -> Path:
        return self.kubelet_root / "pod-resources" / "kubelet.sock"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    def kubeconfig(self, stem: str) -> Path:
        return self.root / f"{stem}.kubeconfig"


def build_containerd_config(n: NodeLayout, sandbox_image: str) -> str:
    """containerd 2 (config version 3): own root, state and sockets; runc from the node's build; CRI settings this
    machine needs (it withholds CAP_SYS_RESOURCE, so oom_score_adj may only be raised; the sandbox image is local)."""
    c = n.root / "containerd"
    cri_runtime = 'plugins."io.containerd.cri.v1.runtime"'
    return "\n".join([
        "version = 3",
        f'root = "{c / "root"}"',
        f'state = "{c / "state"}"',
        "[grpc]",
        f'  address = "{n.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{n.containerd_socket}.ttrpc"',
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{c / "opt"}"',
        '[plugins."io.containerd.nri.v1.nri"]',
        "  disable = true",
        f"[{cri_runtime}]",
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        "  enable_cdi = false",
        f"[{cri_runtime}.containerd]",
        '  default_runtime_name = "runc"',
        f"[{cri_runtime}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri_runtime}.containerd.runtimes.runc.options]",
        f'  BinaryName = "{n.node_bin / "runc"}"',
        "  SystemdCgroup = false",
        f"[{cri_runtime}.cni]",
        f'  bin_dirs = ["{n.node_bin / "cni"}"]',
        f'  conf_dir = "{n.root / "cni" / "net.d"}"',
        '[plugins."io.containerd.cri.v1.images"]',
        '  snapshotter = "overlayfs"',
        '[plugins."io.containerd.cri.v1.images".pinned_images]',
        f'  sandbox = "{sandbox_image}"',
        "",
    ])


def build_cni_config(n: NodeLayout) -> dict[str, Any]:
    """A bridge with the node as gateway, no masquerade (pods reach only the node and each other), host-local
    IPAM whose state stays under the node directory, and portmap for hostPort."""
    return {
        "cniVersion": "1.0.0", "name": "llmasos-node",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(n.root / "cni" / "ipam"),
                      "ranges": [[{"subnet": n.pod_cidr, "gateway": n.pod_gateway}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def build_kubelet_config(n: NodeLayout, ca: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        # This machine mounts cgroup v1 (never remounted): the 1.36 kubelet refuses it unless told.
        "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": n.cgroup_root,
        "containerRuntimeEndpoint": f"unix://{n.containerd_socket}",
        "address": n.node_ip, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [n.node_ip], "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(n.root / "resolv.conf"),
        "podLogsDir": str(n.pod_logs),
        "failSwapOn": False, "serializeImagePulls": False, "maxPods": 110,
        # The images are imported, never pulled: never collect them, and never evict on this shared disk.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "nodeStatusUpdateFrequency": "5s", "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }


def build_kube_proxy_config(n: NodeLayout) -> dict[str, Any]:
    """iptables mode inside the node's namespace. The conntrack settings are 0 so that kube-proxy writes none of the
    machine-wide conntrack sysctls; localhost NodePorts are off so it does not set route_localnet."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(n.kubeconfig("kube-proxy"))},
        "mode": "iptables", "clusterCIDR": n.pod_cidr, "hostnameOverride": n.name,
        "bindAddress": n.node_ip, "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }


def build_corefile(n: NodeLayout) -> str:
    """Cluster names only: no `forward` plugin, so nothing is ever asked of a resolver outside this machine."""
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {n.node_ip}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {n.kubeconfig("coredns")} llmasos-local
        pods insecure
        fallthrough in-addr.arpa
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {n.node_ip}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def build_coredns_rbac() -> list[dict[str, Any]]:
    rules = [
        {"apiGroups": [""], "resources": ["services", "namespaces", "pods"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "llmasos-local:coredns"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "llmasos-local:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "llmasos-local:coredns"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "llmasos-coredns"}]},
    ]


def build_apiserver_endpoints(n: NodeLayout) -> dict[str, Any]:
    """The `kubernetes` Service's endpoints: the API server as pods reach it (the host side of the veth pair).

    The API server runs with `--endpoint-reconciler-type=none` (it listens on loopback, which no pod can reach), so
    this slice is written once at cluster-up."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes",
                                "endpointslice.kubernetes.io/managed-by": "llmasos-localcluster"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [n.host_ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": n.apiserver_port, "protocol": "TCP"}],
    }


def node_labels() -> dict[str, str]:
    return {POOL_LABEL: POOL, GPU_PRODUCT_LABEL: GPU_PRODUCT, GPU_COUNT_LABEL: str(GPU_COUNT),
            CARBON_ZONE_LABEL: "DE", "llmasos.io/real-node": "true",
            # What GPU Feature Discovery puts on a GPU node; the chart's agent DaemonSet selects it by default.
            "nvidia.com/gpu.present": "true"}


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def dump_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1)
