"""The agent's crash-safe memory: which caps it applied, which GPUs belong to which pod, the energy it metered, and
where each pod's energyOptimal search stands.

A kill -9 must never strand a cap, so the record is written *before* a cap is applied (write-ahead) and the cap is
forgotten only *after* the default limit is back. At start-up every recorded cap whose pod is gone is restored.
Writes are atomic (temporary file, fsync, rename), so a crash mid-write leaves the previous record. The file lives
on a hostPath (default /var/lib/llmasos-agent/state.json) so it survives the agent's pod being replaced.
A search is kept without its open measurement window (a restarted agent measures that limit again after the
warm-up) and without its settings (the agent's own apply), so a restart costs one window, not a new search.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llmasos.agent.energy import EnergyLedger, MeterState, PodRef
from llmasos.agent.power_policy import GpuLimits, Probe, SearchSettings, SearchState

STATE_VERSION = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppliedCap:
    """A limit other than the default that the agent set (or is about to set) on one GPU."""

    gpu: int
    uuid: str
    default_mw: int
    applied_mw: int
    pod_uid: str


@dataclass(frozen=True)
class AgentState:
    node: str = ""
    caps: tuple[AppliedCap, ...] = ()
    assignments: tuple[tuple[str, tuple[int, ...]], ...] = ()  # pod uid -> GPU indices (fallback mapping)
    ledger: EnergyLedger = field(default_factory=EnergyLedger.empty)
    meters: tuple[tuple[int, MeterState], ...] = ()  # last reading per GPU, to meter across an agent restart
    ended: tuple[tuple[str, float], ...] = ()  # pod uid -> when it ended (retention of its report entry)
    searches: tuple[tuple[str, SearchState], ...] = ()  # pod uid -> its energyOptimal search (no open window)

    def cap_for(self, gpu: int) -> AppliedCap | None:
        return next((c for c in self.caps if c.gpu == gpu), None)


def to_json(state: AgentState) -> str:
    return json.dumps(
        {
            "version": STATE_VERSION,
            "node": state.node,
            "caps": [c.__dict__ for c in state.caps],
            "assignments": {uid: list(g) for uid, g in state.assignments},
            "ledger": [
                [gpu, *(_pod(p) if p else [None, None, None, None]), joules]
                for (gpu, p), joules in sorted(state.ledger.gpu_pod_joules.items(), key=lambda kv: _sort_key(kv[0]))
            ],
            "meters": [[gpu, m.t, m.power_w, m.counter_mj, m.counter_since] for gpu, m in state.meters],
            "ended": [[uid, t] for uid, t in state.ended],
            "searches": {uid: _search(search) for uid, search in state.searches},
        },
        indent=1,
        sort_keys=True,
    )


def from_json(text: str) -> AgentState:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported state version {data.get('version') if isinstance(data, dict) else data!r}")
    ledger: dict[tuple[int, PodRef | None], float] = {}
    for gpu, ns, name, uid, job, joules in data.get("ledger", []):
        ref = PodRef(ns, name, uid, job) if uid is not None else None
        ledger[(int(gpu), ref)] = float(joules)
    return AgentState(
        node=str(data.get("node", "")),
        caps=tuple(AppliedCap(**c) for c in data.get("caps", [])),
        assignments=tuple((uid, tuple(int(i) for i in g)) for uid, g in sorted(data.get("assignments", {}).items())),
        ledger=EnergyLedger(ledger),
        meters=tuple(_meter(m) for m in data["meters"]),
        ended=tuple((str(uid), float(t)) for uid, t in data.get("ended", [])),
        searches=tuple((str(uid), _read_search(raw)) for uid, raw in sorted(data.get("searches", {}).items())),
    )


def _search(s: SearchState) -> dict[str, Any]:
    return {
        "limits": [s.limits.min_w, s.limits.max_w, s.limits.default_w], "max_slowdown": s.max_slowdown,
        "phase": s.phase, "target_w": s.target_w, "changed_at": s.changed_at,
        "baseline": _probe(s.baseline), "probes": [_probe(p) for p in s.probes], "step_w": s.step_w,
        "queue": list(s.queue), "rounds_left": s.rounds_left, "chosen": _probe(s.chosen), "settled_at": s.settled_at,
        "recheck": s.recheck, "drifted": s.drifted, "searches": s.searches, "history": [_probe(p) for p in s.history],
    }  # fmt: skip


def _read_search(raw: dict[str, Any]) -> SearchState:
    """A saved search, with default settings and no window: the controller puts its own settings in."""
    low, high, default = (float(x) for x in raw["limits"])
    return SearchState(
        limits=GpuLimits(low, high, default), max_slowdown=float(raw["max_slowdown"]), settings=SearchSettings(),
        phase=str(raw["phase"]), target_w=float(raw["target_w"]), changed_at=float(raw["changed_at"]),
        baseline=_read_optional_probe(raw["baseline"]), probes=tuple(_read_probe(p) for p in raw["probes"]),
        step_w=float(raw["step_w"]), queue=tuple(float(q) for q in raw["queue"]), rounds_left=int(raw["rounds_left"]),
        chosen=_read_optional_probe(raw["chosen"]),
        settled_at=None if raw["settled_at"] is None else float(raw["settled_at"]),
        recheck=bool(raw["recheck"]), drifted=int(raw["drifted"]), searches=int(raw["searches"]),
        history=tuple(_read_probe(p) for p in raw["history"]),
    )  # fmt: skip


def _probe(p: Probe | None) -> list[float] | None:
    return None if p is None else [p.limit_w, p.throughput, p.power_w, p.seconds, p.rel_se]


def _read_probe(row: list[float]) -> Probe:
    return Probe(*(float(x) for x in row))


def _read_optional_probe(row: list[float] | None) -> Probe | None:
    return None if row is None else _read_probe(row)


def _meter(row: list[Any]) -> tuple[int, MeterState]:
    """[gpu, t, power, counter, counter_since]; files written before counter_since have four items."""
    gpu, t, power, counter, *rest = row
    since = rest[0] if rest else None
    return int(gpu), MeterState(float(t), float(power), None if counter is None else int(counter),
                                None if since is None else float(since))


def _pod(p: PodRef) -> list[str]:
    return [p.namespace, p.name, p.uid, p.llmjob]


def _sort_key(key: tuple[int, PodRef | None]) -> tuple[int, str]:
    return key[0], key[1].uid if key[1] else ""


class Store(Protocol):
    def load(self) -> AgentState: ...
    def save(self, state: AgentState) -> None: ...


class StateStore:
    """Loads and saves AgentState at `path`. A missing file is an empty state; a corrupt one is logged and moved
    aside (the start-up sweep then restores every GPU not owned by a capped pod, so nothing stays capped)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> AgentState:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return AgentState()
        try:
            return from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            log.error("state file %s is unreadable (%s); moved to %s, starting empty", self.path, exc, aside)
            os.replace(self.path, aside)
            return AgentState()

    def save(self, state: AgentState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(to_json(state))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class MemoryStateStore:
    """A StateStore kept in memory (tests that do not exercise the file)."""

    def __init__(self, state: AgentState | None = None) -> None:
        self.state = state or AgentState()
        self.saves = 0

    def load(self) -> AgentState:
        return self.state

    def save(self, state: AgentState) -> None:
        self.state = state
        self.saves += 1
