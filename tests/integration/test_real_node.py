"""The local cluster's real node: real containers through kubelet, containerd and runc; cluster DNS through CoreDNS;
Services through kube-proxy; fake GPUs through the kubelet's device-plugin API; and a teardown that leaves nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.images.build import cached_images
from e2e.localcluster import LocalCluster
from e2e.localcluster.cluster import ClusterPaths
from e2e.localcluster.node_config import GPU_COUNT
from llmasos.agent.podresources import PodResourcesClient
from llmasos.agent.sim import sim_gpu_uuid
from tests.integration.realnode import apply, build_pod, get, logs, wait_pod_phase

NS = f"real-node-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def ns(cluster: LocalCluster) -> Iterator[str]:
    if not cluster.paths.real_node:
        pytest.fail("the local cluster runs without its real node (LLMASOS_REAL_NODE=0)")
    cluster.kubectl("create", "namespace", NS, check=False)
    yield NS
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_node_is_ready_with_a_real_runtime(cluster: LocalCluster) -> None:
    node = get(cluster, "", "node", cluster.node.n.name)
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    assert info["kubeletVersion"] == "v1.36.3"
    assert node["metadata"]["labels"]["llmasos.io/pool"] == "real"
    assert {"type": "InternalIP", "address": cluster.node.n.node_ip} in node["status"]["addresses"]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(GPU_COUNT)


def test_pod_output_comes_back_through_kubectl_logs(cluster: LocalCluster, ns: str) -> None:
    token = uuid.uuid4().hex
    apply(cluster, ns, build_pod("echo", ["sh", "-c", f"echo hello-{token}; cat /proc/1/cgroup | head -3"]))
    pod = wait_pod_phase(cluster, ns, "echo", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    out = logs(cluster, ns, "echo")
    assert f"hello-{token}" in out
    assert cluster.node.n.cgroup_root.lstrip("/") in out  # its own cgroups, under the node's cgroup root
    assert pod["status"]["podIP"].startswith(cluster.node.n.pod_cidr.rsplit(".", 2)[0])


def test_job_completes(cluster: LocalCluster, ns: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "count"},
           "spec": {"backoffLimit": 0, "template": build_pod("count", ["sh", "-c", "seq 1 3"])}}
    del job["spec"]["template"]["apiVersion"], job["spec"]["template"]["kind"]
    apply(cluster, ns, job)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/count", "--timeout=90s")


def test_service_names_resolve_and_connect_through_clusterip_and_headless(cluster: LocalCluster, ns: str) -> None:
    token = uuid.uuid4().hex
    server = build_pod("web", ["sh", "-c", f"mkdir -p /tmp/www && echo {token} > /tmp/www/index.html && "
                                           "exec httpd -f -p 8080 -h /tmp/www"])
    server["spec"]["restartPolicy"] = "Always"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-headless"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 8080}]}}
    apply(cluster, ns, server, svc, headless)
    web = wait_pod_phase(cluster, ns, "web", {"Running"})
    cluster_ip = get(cluster, ns, "service", "web")["spec"]["clusterIP"]
    # busybox is linked statically, and its wget crashes without glibc's NSS modules in the image: names are
    # resolved by busybox's nslookup, which asks CoreDNS through the pod's resolv.conf (short names through its
    # search path), and the page is fetched with nc.
    resolve = "nslookup {} | awk '/^Address: /{{a=$2}} END{{print a}}'"
    fetch = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} | tail -n 1"
    script = (
        f"cip=$({resolve.format('web')}); hip=$({resolve.format('web-headless')}); "
        "echo resolved web=$cip web-headless=$hip; "
        f"for i in $(seq 1 30); do {fetch.format('$cip 80')} > /tmp/a; test -s /tmp/a && break; sleep 1; done; "
        f"echo clusterip=$(cat /tmp/a); echo headless=$({fetch.format('$hip 8080')})"
    )
    apply(cluster, ns, build_pod("client", ["sh", "-c", script]))
    pod = wait_pod_phase(cluster, ns, "client", {"Succeeded", "Failed"}, timeout=120)
    out = logs(cluster, ns, "client")
    assert pod["status"]["phase"] == "Succeeded", out
    assert f"clusterip={token}" in out
    assert f"headless={token}" in out
    # the ClusterIP Service's name resolves to its ClusterIP, the headless one's to the pod itself
    assert f"resolved web={cluster_ip} web-headless={web['status']['podIP']}" in out


def test_gpu_pod_gets_two_devices_and_podresources_lists_them(cluster: LocalCluster, ns: str) -> None:
    pod = build_pod("gpu", ["sh", "-c", "echo ids=$NVIDIA_VISIBLE_DEVICES; sleep 300"],
                    container={"resources": {"limits": {"nvidia.com/gpu": 2}}})
    apply(cluster, ns, pod)
    wait_pod_phase(cluster, ns, "gpu", {"Running"})
    match = re.search(r"ids=(\S+)", _wait_logs(cluster, ns, "gpu", "ids="))
    assert match is not None
    ids = match.group(1).split(",")
    node = cluster.node.n.name
    all_ids = {sim_gpu_uuid(0, node, i) for i in range(GPU_COUNT)}
    assert len(set(ids)) == 2
    assert set(ids) <= all_ids
    client = PodResourcesClient(cluster.node.n.pod_resources_socket)
    try:
        listed = {(p.namespace, p.name): p for p in client.list()}
    finally:
        client.close()
    assert sorted(listed[(ns, "gpu")].device_ids("nvidia.com/gpu")) == sorted(ids)
    cluster.kubectl("delete", "-n", ns, "pod", "gpu", "--wait=false")


def _wait_logs(cluster: LocalCluster, ns: str, name: str, needle: str, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        out = logs(cluster, ns, name)
        if needle in out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"{needle!r} not in the logs of {ns}/{name}: {out!r}")


def test_a_second_cluster_runs_beside_and_its_down_leaves_nothing(cluster: LocalCluster) -> None:
    """A second cluster (own directory and port offset) runs a pod beside the shared one; its cluster-down leaves
    no process, mount, namespace, veth, route or cgroup of its node, and no listening port."""
    root = Path(tempfile.mkdtemp(prefix="llmasos-2nd-"))  # short: the node's unix socket paths live under it
    other = LocalCluster(ClusterPaths(root=root, port_offset=cluster.paths.port_offset + 911, real_node=True,
                                      product_images=False))
    try:
        other.up()
        other.kubectl("apply", "-f", "-", input=json.dumps(build_pod("sleeper", ["sleep", "600"])))
        wait_pod_phase(other, "default", "sleeper", {"Running"})
        assert other.node.leftovers(), "a running node must be visible to the leftover check"
        shims = _shims_of(other)
        assert shims, "the running pod must have a containerd shim"
    finally:
        other.down()
    assert other.node.leftovers() == []
    assert _shims_of(other) == []
    shutil.rmtree(root)
    assert get(cluster, "", "node", cluster.node.n.name)["status"]["allocatable"]["nvidia.com/gpu"] == str(GPU_COUNT)


def _shims_of(c: LocalCluster) -> list[int]:
    sock = str(c.node.n.containerd_socket)
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if sock in cmd:
                found.append(int(proc.name))
    return found


@pytest.mark.parametrize(("name", "expected"), [("operator", "usage: llmasos"), ("worker", "usage: llmasos-worker")])
def test_built_images_run_their_entry_points_in_a_pod(cluster: LocalCluster, ns: str, name: str,
                                                       expected: str) -> None:
    """The images `make images` built run on the real node: their entry point answers --help."""
    images = {image.name: image for image in cached_images()}
    assert name in images, "the LLMasOS images are not built: run `make images` (make test does)"
    cluster.import_images()
    pod = build_pod(f"help-{name}", [], image=images[name].ref)
    del pod["spec"]["containers"][0]["command"]  # the image's own entry point
    pod["spec"]["containers"][0]["args"] = ["--help"]
    apply(cluster, ns, pod)
    done = wait_pod_phase(cluster, ns, f"help-{name}", {"Succeeded", "Failed"}, timeout=180)
    out = logs(cluster, ns, f"help-{name}")
    assert done["status"]["phase"] == "Succeeded", out
    assert expected in out
