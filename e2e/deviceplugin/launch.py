"""How the local cluster starts the fake-GPU device plugin: the argv of the host process, or the process itself.

The plugin stands in for NVIDIA's device-plugin DaemonSet on the local real node. It runs as a host process beside
the kubelet (as the kubelet, containerd and CoreDNS do), because it must reach the kubelet's device-plugins
directory before any pod can run, and a DaemonSet pod would need the very images and GPUs the node is being made
ready for. This module imports neither grpc nor llmasos, so the cluster code can import it for free.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def plugin_argv(plugin_dir: Path, count: int, product: str, *, node: str | None = None, seed: int = 0,
                python: str = sys.executable) -> list[str]:
    """`env PYTHONPATH=<repo> python -m e2e.deviceplugin ...`: runs from any working directory.

    `node` and `seed` must be the agent's `--node-name` and `--sim-seed`, so the device ids are its GPU UUIDs.
    """
    argv = ["env", f"PYTHONPATH={REPO}", python, "-m", "e2e.deviceplugin",
            "--device-plugin-dir", str(plugin_dir), "--count", str(count), "--product", product, "--seed", str(seed)]
    return argv + (["--node", node] if node else [])


def start_plugin(plugin_dir: Path, count: int, product: str, log_file: Path, *, node: str | None = None,
                 seed: int = 0) -> subprocess.Popen[bytes]:
    """Start the plugin in its own session, its log appended to `log_file`; stop it with SIGTERM."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(plugin_argv(plugin_dir, count, product, node=node, seed=seed),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
