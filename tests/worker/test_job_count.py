"""Inference's count shared by every rank: adds batched in time, the job's total read back by each rank, and the
store a real two-rank process group already runs (so no rank waits for another to report progress)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from torch.distributed import HashStore, TCPStore

from llmasos_worker.job_count import JobCounter
from tests.worker.helpers import free_port, worker_env


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_adds_are_batched_in_time_and_answer_the_jobs_total() -> None:
    clock, store = Clock(), HashStore()
    seen: list[int] = []
    mine = JobCounter(store, seen.append, interval=0.5, clock=clock)
    other = JobCounter(store, lambda total: None, interval=0.5, clock=clock)
    mine.add(4)
    other.add(7)
    assert seen == [], "nothing sent before the interval"
    clock.now = 0.5
    other.add(1)  # the other rank's 8 reach the store
    mine.add(2)
    assert seen == [14]
    assert mine.flush() == 14, "a flush with nothing pending reads the total"
    assert seen[-1] == 14


def test_ranks_on_one_tcp_store_each_read_the_jobs_total() -> None:
    port = free_port()
    server = TCPStore("127.0.0.1", port, 2, True, timedelta(seconds=10), wait_for_workers=False)
    client = TCPStore("127.0.0.1", port, 2, False, timedelta(seconds=10))
    totals: list[int] = []
    JobCounter(server, totals.append, interval=0).add(3)
    JobCounter(client, totals.append, interval=0).add(5)
    assert totals == [3, 8]


def test_without_a_process_group_the_count_is_the_ranks_own() -> None:
    seen: list[int] = []
    counter = JobCounter(None, seen.append, interval=0)
    counter.add(2)
    counter.add(3)
    assert seen == [2, 5]


RANK = """
import json, os, sys
from datetime import timedelta
import torch.distributed as dist
from llmasos_worker.job_count import JobCounter, job_store
rank = int(os.environ["RANK"])
dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
totals = []
counter = JobCounter(job_store(), totals.append, interval=0)
counter.add(10 if rank == 0 else 32)
dist.barrier()
counter.flush()
dist.destroy_process_group()
print(json.dumps(totals))
"""


def test_the_default_process_groups_store_is_shared_by_its_ranks() -> None:
    env = worker_env("inference")
    procs = [subprocess.Popen([sys.executable, "-c", RANK], env={**env, "RANK": str(r), "WORLD_SIZE": "2"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    finals = [json.loads(out.strip().splitlines()[-1])[-1] for out, _ in outs]
    assert finals == [42, 42], "after the barrier, each rank reads both ranks' adds"
