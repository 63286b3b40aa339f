"""Measure the local control plane: warm start time (binaries cached) and resident memory per component.

Usage: .venv/bin/python -m bench.cluster_start [--nodes N]
With --nodes, the a100/h100/l4 pools are scaled so the cluster has about N fake GPU nodes. Prints figures; asserts
nothing. The cold build time is recorded by e2e/toolchain/build.sh in <cache>/.build-seconds and printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

from e2e.localcluster import ClusterPaths, LocalCluster
from e2e.localcluster.cluster import COMPONENTS, REPO


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scaled_pools(total: int) -> Path:
    doc = yaml.safe_load((REPO / "e2e" / "node-pools.yaml").read_text())
    per = max(1, total // len(doc["pools"]))
    for pool in doc["pools"]:
        pool["count"] = per
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="pools-")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=0, help="scale the pools to about this many nodes")
    args = parser.parse_args()
    paths = ClusterPaths(pools_file=scaled_pools(args.nodes)) if args.nodes else ClusterPaths()
    cluster = LocalCluster(paths)
    print(f"binaries: {cluster.bin_dir} (cold build took {(cluster.bin_dir / '.build-seconds').read_text().strip()}s)")
    cluster.down()
    t0 = time.monotonic()
    cluster.up()
    elapsed = time.monotonic() - t0
    nodes = len(cluster.get_json("/api/v1/nodes")["items"])
    print(f"warm start: {elapsed:.1f}s until all {nodes} nodes Ready")
    time.sleep(5)
    total = 0
    for c in COMPONENTS:
        pid = cluster.pid(c)
        kib = rss_kib(pid) if pid else 0
        total += kib
        print(f"  {c:<24} RSS {kib / 1024:7.1f} MiB")
    print(f"  {'total':<24} RSS {total / 1024:7.1f} MiB")
    cluster.down()


if __name__ == "__main__":
    main()
