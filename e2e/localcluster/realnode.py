"""The one real node of the local cluster: containerd, a kubelet, kube-proxy and CoreDNS that run real containers.

The kwok pools stay for scale; this node is where pods really run. Its processes are started by `LocalCluster`
(same pid files, logs and liveness checks as the control plane) inside the node's network namespace
(`node_config` says why). `down()` removes everything `up()` made: pods and their shims, mounts under the node
directory, the network namespace (with the bridge, veths and iptables rules inside it), the host's veth and route,
and the node's cgroups. Files under the node directory stay, except the kubelet's state; containerd's image store is
kept so a warm cluster-up does not import the images again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from e2e.localcluster import node_config as cfg
from e2e.localcluster.node_images import SANDBOX_REF, ensure_sandbox_image, ensure_toolbox_image

# Started in this order, stopped in the reverse one. containerd and the kubelet first: the kubelet registers the node.
NODE_COMPONENTS = ("apiserver-forward", "containerd", "kubelet", "kube-proxy", "coredns", "device-plugin")
# The executable each component's /proc/<pid>/cmdline starts with (liveness checks compare it).
EXECUTABLES = {"apiserver-forward": "socat", "device-plugin": "python"}
CGROUP_V1 = Path("/sys/fs/cgroup")
# Paths the node's programs hard-code, given the node's own directories inside its mount namespace: the kubelet's
# device-plugin directory (see node_config), and containerd's shim sockets and runc's state (/run/containerd/s,
# /run/containerd/runc). On the host they stay empty directories, the mount points.
HARD_CODED = {Path("/var/lib/kubelet/device-plugins"): "kubelet/device-plugins", Path("/run/containerd"): "run"}


class NodeError(RuntimeError):
    """The real node could not be set up or torn down; the message says which step and why."""


def _run(*argv: str, check: bool = True, ns: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = ["nsenter", f"--net={ns}", *argv] if ns is not None else list(argv)
    proc = subprocess.run(full, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(full)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class RealNode:
    """Set up, start and tear down one cluster's real node (`layout` says where everything lives)."""

    def __init__(self, layout: cfg.NodeLayout, pki: Path) -> None:
        self.n = layout
        self.pki = pki

    # ------------------------------------------------------------------------------------------------ set-up
    def prepare(self, write_kubeconfig: Callable[[Path, str], None]) -> None:
        """Directories, certificates' kubeconfigs, configuration files, network namespace and cgroup root."""
        n = self.n
        shutil.rmtree(n.kubelet_root, ignore_errors=True)
        for d in (n.root, n.kubelet_root, n.device_plugin_dir, n.pod_logs, n.root / "cni" / "net.d",
                  n.root / "containerd"):
            d.mkdir(parents=True, exist_ok=True)
        n.link_root()
        for stem in ("kubelet", "kube-proxy", "coredns"):
            write_kubeconfig(n.kubeconfig(stem), stem)
        ca = self.pki / "ca.crt"
        (n.root / "containerd.toml").write_text(cfg.build_containerd_config(n, SANDBOX_REF))
        (n.root / "cni" / "net.d" / "10-llmasos.conflist").write_text(cfg.dump_json(cfg.build_cni_config(n)))
        (n.root / "kubelet.yaml").write_text(cfg.dump_yaml(cfg.build_kubelet_config(n, ca)))
        (n.root / "kube-proxy.yaml").write_text(cfg.dump_yaml(cfg.build_kube_proxy_config(n)))
        (n.root / "Corefile").write_text(cfg.build_corefile(n))
        (n.root / "resolv.conf").write_text(f"nameserver {n.node_ip}\noptions ndots:5\n")
        self._ensure_mount_namespace()
        self._ensure_network()
        self._ensure_cgroup_root()

    def _ensure_mount_namespace(self) -> None:
        n = self.n
        if not _is_mountpoint(n.mntns):
            n.mntns.touch()
            _run("unshare", f"--mount={n.mntns}", "--propagation=private", "true")
        for target, source in HARD_CODED.items():
            target.mkdir(parents=True, exist_ok=True)  # an empty directory on the host: a mount point
            (n.root / source).mkdir(parents=True, exist_ok=True)
            _run("nsenter", f"--mount={n.mntns}", "mount", "--bind", str(n.root / source), str(target))

    def _ensure_network(self) -> None:
        n = self.n
        if not _is_mountpoint(n.netns):
            n.netns.touch()
            _run("unshare", f"--net={n.netns}", "true")
        if _run("ip", "link", "show", n.host_veth, check=False).returncode != 0:
            _run("ip", "link", "add", n.host_veth, "type", "veth", "peer", "name", "eth0", "netns", str(n.netns))
            _run("ip", "addr", "add", f"{n.host_ip}/24", "dev", n.host_veth)
            _run("ip", "link", "set", n.host_veth, "up")
            _run("ip", "route", "replace", n.pod_cidr, "via", n.node_ip, "dev", n.host_veth)
        ns = n.netns
        _run("ip", "link", "set", "lo", "up", ns=ns)
        _run("ip", "addr", "replace", f"{n.node_ip}/24", "dev", "eth0", ns=ns)
        _run("ip", "link", "set", "eth0", "up", ns=ns)
        # The node routes between its pods and the host; it has no default route, so nothing leaves the machine.
        _run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns=ns)
        _run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1", ns=ns)

    def _ensure_cgroup_root(self) -> None:
        for controller in _v1_controllers():
            path = CGROUP_V1 / controller / self.n.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            if controller == "cpuset":  # a new cpuset cgroup starts empty; take the parent's CPUs and memory nodes
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / f).read_text().strip():
                        (path / f).write_text((path.parent / f).read_text())

    # ------------------------------------------------------------------------------------------------- start
    def argv(self, component: str) -> tuple[list[str], dict[str, str] | None]:
        """The command line of one node component (run by LocalCluster._spawn) and its environment."""
        n, b = self.n, self.n.node_bin
        ns = ["nsenter", f"--mount={n.mntns}", f"--net={n.netns}"]
        env = {**os.environ, "PATH": f"{b}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        if component == "apiserver-forward":
            port = n.apiserver_port
            return ["socat", f"TCP-LISTEN:{port},bind={n.host_ip},fork,reuseaddr", f"TCP:127.0.0.1:{port}"], None
        if component == "containerd":
            return [*ns, str(b / "containerd"), f"--config={n.root / 'containerd.toml'}", "--log-level=warn"], env
        if component == "kubelet":
            labels = ",".join(f"{k}={v}" for k, v in cfg.node_labels().items())
            return [*ns, str(b / "kubelet"), f"--config={n.root / 'kubelet.yaml'}",
                    f"--kubeconfig={n.kubeconfig('kubelet')}", f"--root-dir={n.kubelet_root}",
                    f"--cert-dir={n.kubelet_root / 'pki'}", f"--hostname-override={n.name}",
                    f"--node-ip={n.node_ip}", f"--node-labels={labels}", "--v=1"], env
        if component == "kube-proxy":
            return [*ns, str(b / "kube-proxy"), f"--config={n.root / 'kube-proxy.yaml'}", "--v=1"], env
        if component == "coredns":
            return [*ns, str(b / "coredns"), "-conf", str(n.root / "Corefile")], None
        if component == "device-plugin":
            from e2e.deviceplugin import plugin_argv

            return plugin_argv(n.device_plugin_dir, cfg.GPU_COUNT, cfg.GPU_PRODUCT, node=n.name), None
        raise KeyError(component)

    def import_images(self, archives: list[Path]) -> None:
        """Import OCI archives into containerd's `k8s.io` namespace, unless an image of the same name and manifest
        digest is there already (a warm cluster-up imports nothing)."""
        ctr = [str(self.n.node_bin / "ctr"), f"--address={self.n.containerd_socket}", "--namespace=k8s.io"]
        have = {tuple(line.split()[:3:2]) for line in _run(*ctr, "images", "list").stdout.splitlines()[1:]}
        for archive in archives:
            if _archive_image(archive) not in have:
                _run(*ctr, "images", "import", str(archive))

    def own_archives(self) -> list[Path]:
        """The node's own images: the sandbox and the toolbox (node_images)."""
        return [ensure_sandbox_image(), ensure_toolbox_image()]

    # -------------------------------------------------------------------------------------------------- down
    def teardown(self, stop: Callable[[str], None]) -> None:
        """Stop the node and remove what it made on the machine (see the module docstring)."""
        n = self.n
        for component in ("device-plugin", "kubelet"):
            stop(component)
        if n.containerd_socket.exists():  # containerd may be gone already: the cgroup sweep below stops the rest
            _run(str(n.node_bin / "crictl"), "--timeout=20s", f"--runtime-endpoint=unix://{n.containerd_socket}",
                 "rmp", "--all", "--force", check=False)
        for component in ("coredns", "kube-proxy", "containerd", "apiserver-forward"):
            stop(component)
        self._kill_leftovers()
        self._unmount_all()
        self._remove_network()
        self._remove_cgroups()
        shutil.rmtree(n.kubelet_root, ignore_errors=True)
        shutil.rmtree(n.root / "cni" / "ipam", ignore_errors=True)
        shutil.rmtree(n.root / "containerd" / "state", ignore_errors=True)
        shutil.rmtree(n.root / "run", ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """SIGKILL every process in the node's cgroups, and containerd shims of this node's containerd."""
        sock = str(self.n.containerd_socket)
        for _ in range(50):
            pids = set(self._cgroup_pids())
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    with contextlib.suppress(OSError):
                        cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
                        if "containerd-shim" in cmd and sock in cmd:
                            pids.add(int(proc.name))
            pids.discard(os.getpid())
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        raise NodeError(f"processes of the real node survived SIGKILL: {sorted(pids)}")

    def _cgroup_pids(self) -> list[int]:
        pids: list[int] = []
        for controller in _v1_controllers():
            root = CGROUP_V1 / controller / self.n.cgroup_root.lstrip("/")
            if root.exists():
                for procs in root.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        pids += [int(p) for p in procs.read_text().split()]
        return pids

    def _unmount_all(self) -> None:
        """Unmount every mount point under the node directory, deepest first: the node's namespace files (the mounts
        inside its mount namespace go with it), and anything a component mounted on the host by mistake."""
        root = str(self.n.root.resolve())
        for _ in range(5):
            points = [p for p in _mount_points() if p == root or p.startswith(root + "/")]
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                _run("umount", "--lazy", point, check=False)
        left = [p for p in _mount_points() if p.startswith(root + "/")]
        if left:
            raise NodeError(f"mounts left under {root}: {left}")

    def _remove_network(self) -> None:
        n = self.n
        if _run("ip", "link", "show", n.host_veth, check=False).returncode == 0:
            deleted = _run("ip", "link", "delete", n.host_veth, check=False)
            # The kernel also removes the veth pair once the node's network namespace is gone, asynchronously: a
            # delete that lost that race finds no device, which is the outcome wanted. Seen once at teardown.
            if deleted.returncode != 0 and _run("ip", "link", "show", n.host_veth, check=False).returncode == 0:
                raise NodeError(f"ip link delete {n.host_veth} failed: {deleted.stderr.strip()}")
        n.netns.unlink(missing_ok=True)
        n.mntns.unlink(missing_ok=True)

    def _remove_cgroups(self) -> None:
        for controller in _v1_controllers():
            root = CGROUP_V1 / controller / self.n.cgroup_root.lstrip("/")
            if not root.exists():
                continue
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
            if root.exists():
                raise NodeError(f"cgroup {root} could not be removed")

    # -------------------------------------------------------------------------------------------- leftovers
    def leftovers(self) -> list[str]:
        """What of this node is still on the machine (empty after a clean `teardown`): used by the tests."""
        n, found = self.n, []
        root = str(n.root.resolve())
        found += [f"mount {p}" for p in _mount_points() if p == root or p.startswith(root + "/")]
        if _run("ip", "link", "show", n.host_veth, check=False).returncode == 0:
            found.append(f"veth {n.host_veth}")
        found += [f"namespace {f}" for f in (n.netns, n.mntns) if f.exists()]
        found += [f"route {line}" for line in _run("ip", "route", "show", n.pod_cidr).stdout.splitlines()]
        for controller in _v1_controllers():
            if (CGROUP_V1 / controller / n.cgroup_root.lstrip("/")).exists():
                found.append(f"cgroup {controller}{n.cgroup_root}")
        found += [f"process {pid}" for pid in self._cgroup_pids()]
        return found

    def apply_cluster_objects(self, kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
        """The objects the node's components need in the API: CoreDNS's RBAC and the `kubernetes` endpoints."""
        docs = [*cfg.build_coredns_rbac(), cfg.build_apiserver_endpoints(self.n)]
        kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=llmasos-localcluster", "-f", "-",
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def _archive_image(archive: Path) -> tuple[str, str]:
    """(name, manifest digest) of the image an OCI archive carries (index.json's io.containerd.image.name)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        index = json.load(member) if member else {}
    for m in index.get("manifests", []):
        name = m.get("annotations", {}).get("io.containerd.image.name")
        if name:
            return str(name), str(m.get("digest"))
    return "", ""


def _is_mountpoint(path: Path) -> bool:
    return str(path.resolve()) in _mount_points()


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(point.encode().decode("unicode_escape"))
    return points


def _v1_controllers() -> list[str]:
    """The cgroup v1 hierarchies mounted under /sys/fs/cgroup (read, never changed)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup" and fields[4].startswith(str(CGROUP_V1) + "/"):
            out.append(fields[4].rsplit("/", 1)[1])
    return out
