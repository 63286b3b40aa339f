"""`python -m e2e.localcluster up|down|status|show|ecosystem-up|ecosystem-down`: the commands behind `make cluster-up`,
`cluster-down`, `demo`, `ecosystem-up` (Kueue and ray-operator on the cluster) and `ecosystem-down`."""

from __future__ import annotations

import argparse
import sys
import time

from e2e.localcluster.cluster import ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "show", "ecosystem-up", "ecosystem-down"])
    args = parser.parse_args(argv)
    cluster = LocalCluster()
    try:
        if args.command == "up":
            t0 = time.monotonic()
            kubeconfig = cluster.up()
            print(f"local control plane ready in {time.monotonic() - t0:.1f}s")
            print(f"kubeconfig: {kubeconfig}")
            print(f"  export KUBECONFIG={kubeconfig}")
        elif args.command == "down":
            cluster.down()
            print("local control plane stopped; no listener left")
        elif args.command == "ecosystem-up":
            from e2e.localcluster.ecosystem import Ecosystem

            t0 = time.monotonic()
            cluster.up()
            Ecosystem(cluster).up()
            print(f"Kueue and KubeRay's ray-operator ready in {time.monotonic() - t0:.1f}s")
        elif args.command == "ecosystem-down":
            from e2e.localcluster.ecosystem import Ecosystem

            Ecosystem(cluster).down()
            print("Kueue and ray-operator stopped; Kueue's webhooks and KubeRay's CRDs removed")
        elif args.command == "status":
            healthy = cluster.is_healthy()
            print("healthy" if healthy else "not running")
            return 0 if healthy else 1
        else:
            out = cluster.kubectl(
                "get", "nodes", "-L", "llmasos.io/pool,nvidia.com/gpu.product,nvidia.com/gpu.count,"
                "llmasos.io/carbon-zone,topology.kubernetes.io/zone",
            )
            print(out.stdout)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
