"""Start, check and stop the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok).

Processes are started in their own sessions so that `make cluster-up` can return while they keep running; their
pids are kept in `e2e/.cluster/pids/` and each is checked against /proc before a signal is sent to it, so a
recycled pid is never killed. `up()` is idempotent: a healthy cluster is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster.control_plane import build_argv
from e2e.localcluster.node_config import NodeLayout
from e2e.localcluster.nodes import build_nodes, load_pools
from e2e.localcluster.pki import ensure_pki
from e2e.localcluster.realnode import EXECUTABLES, NODE_COMPONENTS, RealNode

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
ECOSYSTEM_COMPONENTS = ("ray-operator", "kueue")


class ClusterError(RuntimeError):
    """The local control plane could not be brought up or down; the message says which component and why."""


@dataclass(frozen=True)
class ClusterPaths:
    """Where the cluster keeps its state, and the ports it listens on (all on 127.0.0.1)."""

    root: Path = field(default_factory=lambda: Path(os.environ.get("LLMASOS_CLUSTER_DIR", REPO / "e2e" / ".cluster")))
    pools_file: Path = field(
        default_factory=lambda: Path(os.environ.get("LLMASOS_NODE_POOLS", REPO / "e2e" / "node-pools.yaml"))
    )
    port_offset: int = int(os.environ.get("LLMASOS_CLUSTER_PORT_OFFSET", "0"))
    # The real node (kubelet + containerd) beside the kwok pools; LLMASOS_REAL_NODE=0 leaves it out (kwok only).
    real_node: bool = os.environ.get("LLMASOS_REAL_NODE", "1") != "0"
    # Import the LLMasOS images `make images` built into the real node at cluster-up (the worker image is GBs:
    # clusters that run none of them, like the tests' secondary ones, leave this off; import_images() does it later).
    product_images: bool = True

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def port(self, name: str) -> int:
        # No two base ports differ by a multiple of 10, so clusters whose offsets are multiples of 10 never share a
        # port (with kwok at 16247 and the controller-manager at 16257, offsets 30 and 40 collided).
        base = {"etcd": 16379, "etcd-peer": 16380, "apiserver": 16443, "controller-manager": 16252,
                "scheduler": 16254, "kwok": 16231}[name]
        return base + self.port_offset

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port('apiserver')}"


def find_binaries(script: str = "build.sh") -> Path:
    """Build (or find in the cache) the Go binaries and return their directory (build-node.sh: the node's)."""
    out = subprocess.run(
        [str(REPO / "e2e" / "toolchain" / script)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


class LocalCluster:
    """The local control plane. `up()` returns the kubeconfig path; `down()` stops everything it started."""

    def __init__(self, paths: ClusterPaths | None = None, bin_dir: Path | None = None) -> None:
        self.paths = paths or ClusterPaths()
        self._bin_dir = bin_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # children of this process, reaped on stop
        self._node: RealNode | None = None

    # ----------------------------------------------------------------------------------------------- public
    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries()
        return self._bin_dir

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS + (NODE_COMPONENTS if self.paths.real_node else ())

    @property
    def node(self) -> RealNode:
        """The real node (its layout, set-up and teardown); built lazily because it needs the node's binaries."""
        if self._node is None:
            layout = NodeLayout(self.paths.root, find_binaries("build-node.sh"), self.paths.port_offset,
                                self.paths.port("apiserver"))
            self._node = RealNode(layout, self.paths.pki)
        return self._node

    def is_healthy(self) -> bool:
        return all(self._alive(c) for c in self.components) and self._readyz()

    def up(self, timeout: float = 120.0) -> Path:
        """Bring the cluster up (or keep the healthy one) and return the admin kubeconfig path."""
        if self.is_healthy():
            return self.paths.kubeconfig
        self.down()
        deadline = time.monotonic() + timeout
        for d in (self.paths.root, self.paths.logs, self.paths.pids):
            d.mkdir(parents=True, exist_ok=True)
        ensure_pki(self.paths.pki, (self.node.n.host_ip,) if self.paths.real_node else ())
        self._write_kubeconfigs()
        self._start("etcd")
        self._wait(lambda: self._http_ok(f"http://127.0.0.1:{self.paths.port('etcd')}/health"), "etcd", deadline)
        self._start("kube-apiserver")
        self._wait(self._readyz, "kube-apiserver", deadline)
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._start(component)
        self._create_nodes()
        if self.paths.real_node:
            deadline = self._start_real_node(deadline)
        self._wait(self._nodes_ready, "nodes Ready", deadline)
        self._wait(self._default_service_account, "default ServiceAccount", deadline)
        return self.paths.kubeconfig

    def down(self) -> None:
        """Stop every process this cluster started (TERM, then KILL), wipe etcd's data, check no port listens; the
        real node also removes its pods, mounts, network namespace and cgroups."""
        if self.paths.real_node:
            self.node.teardown(self._stop)
        for component in ECOSYSTEM_COMPONENTS:  # Kueue, ray-operator: when e2e/localcluster/ecosystem.py started them
            self._stop(component)
        for component in reversed(COMPONENTS):
            self._stop(component)
        shutil.rmtree(self.paths.root / "etcd-data", ignore_errors=True)
        busy = [p for p in self._all_ports() if _listening(p)]
        if busy:
            raise ClusterError(f"ports still listening after cluster-down: {busy}")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary("kubectl"), f"--kubeconfig={self.paths.kubeconfig}", *args],
            input=input, text=True, capture_output=True, check=check,
        )

    def restart(self, component: str, timeout: float = 60.0) -> None:
        """Stop and start one component (fault tests: apiserver or etcd restarts keep etcd's data)."""
        self._stop(component)
        self._start(component)
        self._wait(self._readyz, f"{component} after restart", time.monotonic() + timeout)

    def pid(self, component: str) -> int | None:
        f = self.paths.pids / f"{component}.pid"
        if not f.exists():
            return None
        pid = int(f.read_text().strip() or 0)
        return pid if self._is_ours(pid, component) else None

    # -------------------------------------------------------------------------------------------- processes
    def _spawn(self, component: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.paths.logs / f"{component}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.paths.root, env=env)
        log.close()
        # Between fork and exec /proc/<pid>/cmdline still shows python: wait for the exec, so that a liveness
        # check right after the spawn does not mistake the starting component for a dead one.
        end = time.monotonic() + 5
        while not self._is_ours(proc.pid, component) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
        (self.paths.pids / f"{component}.pid").write_text(str(proc.pid))
        self._procs[component] = proc
        # A component outlives this object when the cluster is left running (a developer's `make cluster-up` reused
        # by a test session that restarted one of its components): a reaper thread keeps the handle referenced and
        # collects the exit status whenever it comes, so the handle is never garbage-collected while the process
        # runs (Python's "subprocess is still running" ResourceWarning, an error under -W error).
        threading.Thread(target=proc.wait, name=f"reap-{component}-{proc.pid}", daemon=True).start()

    def _is_ours(self, pid: int, component: str) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except (FileNotFoundError, IndexError, ProcessLookupError):
            return False
        return Path(cmdline).name == EXECUTABLES.get(component, component) and state != "Z"

    def _alive(self, component: str) -> bool:
        return self.pid(component) is not None

    def _stop(self, component: str, grace: float = 10.0) -> None:
        pid = self.pid(component)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            end = time.monotonic() + grace
            while time.monotonic() < end and self._is_ours(pid, component):
                time.sleep(0.1)
            if self._is_ours(pid, component):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                while self._is_ours(pid, component):
                    time.sleep(0.05)
        (self.paths.pids / f"{component}.pid").unlink(missing_ok=True)
        child = self._procs.pop(component, None)
        if child is not None:
            child.wait(timeout=10)

    def _all_ports(self) -> list[int]:
        return [self.paths.port(n) for n in ("etcd", "etcd-peer", "apiserver", "controller-manager",
                                              "scheduler", "kwok")]

    # ---------------------------------------------------------------------------------------- components
    def _start(self, component: str) -> None:
        self._spawn(component, build_argv(component, self.paths, self.binary))

    # ---------------------------------------------------------------------------------------------- config
    def _write_kubeconfigs(self) -> None:
        k = self.paths.pki
        for stem, out in (("admin", "kubeconfig"), ("controller-manager", "controller-manager.kubeconfig"),
                          ("scheduler", "scheduler.kubeconfig"), ("kwok", "kwok.kubeconfig"),
                          ("operator", "operator.kubeconfig"), ("bench", "bench.kubeconfig")):
            doc = build_kubeconfig(self.paths.server, k / "ca.crt", k / f"{stem}.crt", k / f"{stem}.key", stem)
            (self.paths.root / out).write_text(yaml.safe_dump(doc))
            (self.paths.root / out).chmod(0o600)

    def _start_real_node(self, deadline: float) -> float:
        """Network, containerd (with the sandbox image and any built LLMasOS images), kubelet, kube-proxy, CoreDNS
        and the fake-GPU device plugin; returns once the node offers its GPUs, with the start's deadline. Importing
        the worker image into a new node (5.4 GB unpacked) took 20 s to 3 min depending on the machine's load: it
        does not count against the start's timeout, which then gives the node's processes a minute of their own."""
        node = self.node
        node.prepare(self._write_node_kubeconfig)
        node.apply_cluster_objects(self.kubectl)
        for component in ("apiserver-forward", "containerd"):
            self._spawn(component, *node.argv(component))
        self._wait(lambda: node.n.containerd_socket.exists(), "containerd", deadline)
        self.import_images(product=self.paths.product_images)
        deadline = max(deadline, time.monotonic() + 60.0)
        for component in ("kubelet", "kube-proxy", "coredns", "device-plugin"):
            self._spawn(component, *node.argv(component))
        self._wait(self._real_node_gpus, "the real node's GPUs (device plugin)", deadline)
        return deadline

    def import_images(self, product: bool = True) -> None:
        """The node's own images and (`product`) the LLMasOS images `make images` built for these sources into the
        real node's containerd, skipping those already there: also for a cluster that was up before they were built."""
        self.node.import_images([*self.node.own_archives(), *(built_image_archives() if product else [])])

    def _write_node_kubeconfig(self, path: Path, stem: str) -> None:
        k = self.paths.pki
        path.write_text(yaml.safe_dump(build_kubeconfig(self.node.n.server, k / "ca.crt", k / f"{stem}.crt",
                                                        k / f"{stem}.key", stem)))
        path.chmod(0o600)

    def _real_node_gpus(self) -> bool:
        node = self.get_json(f"/api/v1/nodes/{self.node.n.name}")
        return int(node.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", "0")) > 0

    def _create_nodes(self) -> None:
        nodes = build_nodes(load_pools(self.paths.pools_file))
        if nodes:
            self.kubectl("apply", "--server-side", "--field-manager=llmasos-localcluster", "-f", "-",
                         input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))

    # ------------------------------------------------------------------------------------------------ probes
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.paths.pki / "admin.crt"), str(self.paths.pki / "admin.key"))
        return ctx

    def _http_ok(self, url: str) -> bool:
        try:
            ctx = self._ssl() if url.startswith("https") else None
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _readyz(self) -> bool:
        return (self.paths.pki / "ca.crt").exists() and self._http_ok(f"{self.paths.server}/readyz")

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.paths.server}{path}", timeout=10, context=self._ssl()) as r:
            return json.load(r)

    def _nodes_ready(self) -> bool:
        expected = sum(p.count for p in load_pools(self.paths.pools_file)) + int(self.paths.real_node)
        items = self.get_json("/api/v1/nodes")["items"]
        ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in n.get("status", {}).get("conditions", []))]
        return len(ready) >= expected

    def _default_service_account(self) -> bool:
        try:
            self.get_json("/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError:
            return False
        return True

    def _wait(self, probe: Any, what: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if probe():
                    return
            except (OSError, urllib.error.URLError, KeyError):
                pass
            for c in self.components:
                f = self.paths.pids / f"{c}.pid"
                if f.exists() and not self._alive(c):
                    tail = (self.paths.logs / f"{c}.log").read_text(errors="replace")[-3000:]
                    raise ClusterError(f"{c} exited while waiting for {what}; last log lines:\n{tail}")
            time.sleep(0.2)
        raise ClusterError(f"timed out waiting for {what}; logs are in {self.paths.logs}")


def build_kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict[str, Any]:
    """A kubeconfig that authenticates with a client certificate (files referenced by absolute path)."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "llmasos-local",
        "clusters": [{"name": "llmasos-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "llmasos-local", "context": {"cluster": "llmasos-local", "user": user}}],
    }


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def built_image_archives() -> list[Path]:
    """The LLMasOS images `make images` built for the current sources, if it has (cluster-up never builds them)."""
    from e2e.images.build import cached_images

    return [image.archive for image in cached_images()]
