"""`make test` must never touch a cluster left up by `make demo` or `make cluster-up`: its pytest runs with its own
cluster directory and port offset (the README promises both commands work, in either order)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["test", "test-integration", "chaos"])
def test_test_targets_run_pytest_on_their_own_cluster(target: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMASOS_CLUSTER")}
    dry = subprocess.run(["make", "-n", "-s", target], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True).stdout
    line = next(x for x in dry.splitlines() if "-m pytest" in x)
    script = re.sub(r"\s+-m pytest.*", "", line).replace(".venv/bin/python", "").strip()
    shown = subprocess.run(["bash", "-c", f"{script} env"], env=env, capture_output=True, text=True,
                           check=True).stdout
    values = dict(kv.split("=", 1) for kv in shown.splitlines() if kv.startswith("LLMASOS_CLUSTER"))
    # What `make demo` and `make cluster-up` use: the defaults, read in a clean environment.
    demo = subprocess.run([sys.executable, "-c", "from e2e.localcluster.cluster import ClusterPaths as P; "
                           "p = P(); print(p.root.resolve(), p.port_offset)"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True).stdout.split()
    assert Path(values["LLMASOS_CLUSTER_DIR"]).resolve() != Path(demo[0])
    assert int(values["LLMASOS_CLUSTER_PORT_OFFSET"]) != int(demo[1])
