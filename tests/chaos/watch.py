"""Record every phase each LLMJob of a namespace goes through, from a real watch, across API server restarts.

A thread keeps a watch on the namespace's LLMJobs open (reconnecting from the last resourceVersion, relisting on
410 Gone or when the API server is down) and appends each phase change per job. `regressions()` then says which
jobs went backwards, e.g. Succeeded -> Running or Running -> Pending.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import httpx

from tests.integration.kube import AdminApi, llmjob_path

RANK = {"": 0, "Pending": 1, "Deferred": 1, "Suspended": 1, "Running": 2, "Succeeded": 3, "Failed": 3}
TERMINAL = ("Succeeded", "Failed")


class PhaseRecorder:
    def __init__(self, api: AdminApi, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.phases: dict[str, list[str]] = {}
        self.versions: dict[str, list[str]] = {}  # resourceVersion of each recorded phase change
        self.reconnects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"phases-{namespace}", daemon=True)

    def __enter__(self) -> PhaseRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _note(self, obj: dict[str, Any]) -> None:
        name = obj.get("metadata", {}).get("name", "")
        phase = str((obj.get("status") or {}).get("phase", ""))
        with self._lock:
            seq = self.phases.setdefault(name, [])
            if not seq or seq[-1] != phase:
                seq.append(phase)
                self.versions.setdefault(name, []).append(str(obj.get("metadata", {}).get("resourceVersion", "")))

    def _list(self) -> str:
        body = self.api.get(llmjob_path(self.ns))
        for item in body["items"]:
            self._note(item)
        return str(body["metadata"]["resourceVersion"])

    def _run(self) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "30"}
                with self.api.http.stream("GET", llmjob_path(self.ns), params=params,
                                          timeout=httpx.Timeout(10, read=40)) as r:
                    if r.status_code != 200:
                        rv = ""
                        time.sleep(0.5)
                        continue
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        if not line:
                            continue
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            rv = ""  # 410 Gone: relist
                            break
                        obj = ev.get("object", {})
                        rv = str(obj.get("metadata", {}).get("resourceVersion", rv))
                        if ev.get("type") in ("ADDED", "MODIFIED"):
                            self._note(obj)
            except (httpx.HTTPError, AssertionError, json.JSONDecodeError, KeyError):
                self.reconnects += 1
                time.sleep(0.5)

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v) for k, v in self.phases.items()}

    def regressions(self) -> dict[str, list[str]]:
        """Jobs whose phase went backwards (rank fell, or a terminal phase changed at all), each phase shown with
        the resourceVersion that carried it (increasing versions: real writes, not a replayed watch)."""
        bad: dict[str, list[str]] = {}
        with self._lock:
            history = {k: list(zip(v, self.versions.get(k, []), strict=False)) for k, v in self.phases.items()}
        for name, seq in history.items():
            real = [p for p, _ in seq if p]  # "" is only the moment before the first status write
            for before, after in itertools.pairwise(real):
                if before in TERMINAL or RANK.get(after, 0) < RANK.get(before, 0):
                    bad[name] = [f"{p}@{rv}" for p, rv in seq]
                    break
        return bad
